"""``--sandbox`` and ``l4kit demo``: the responder in a throw-away network namespace.

Decision: re-exec, not ``setns``. The parent creates ``l4kit-<pid>`` with
``ip netns add``, brings its ``lo`` up, and runs
``ip netns exec l4kit-<pid> <python> -m l4kit respond <same options>`` as a child.
``ip netns exec`` also remounts ``/sys`` for the namespace, so everything that
reads interfaces (``/sys/class/net``, Scapy's interface list, ``ip``) sees the
namespace's, which a ``setns`` inside an already-initialised Python process
would not give. The firewall rule and the sysctls are then changed only inside
the namespace, and vanish with it.

Always deleted: the parent forwards SIGINT/SIGTERM/SIGHUP to the child (which
is in a session of its own, so a terminal's Ctrl-C reaches it once, through the
parent), waits for it (killing it if it does not stop in time), then deletes
the namespace in a ``finally``. If the parent itself is killed, the child gets
SIGTERM from the kernel (``PR_SET_PDEATHSIG``) and restores what it changed;
``l4kit cleanup`` deletes the orphaned namespace, recognisable by the dead pid
in its name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from l4kit.errors import ConfigError, L4kitError
from l4kit.live.host import SANDBOX_NETNS_PREFIX
from l4kit.live.privileges import Capability, require_capabilities
from l4kit.live.report import DemoResult
from l4kit.live.state import StateStore
from l4kit.live.system import delete_netns

PR_SET_PDEATHSIG = 1
SANDBOX_ENV = "L4KIT_SANDBOX"  # tells the child which namespace it runs in (for its hints)
READY_PATTERN = re.compile(r"listening on \S+ \(")
STOP_GRACE = 10.0


def sandbox_name(pid: int | None = None) -> str:
    return f"{SANDBOX_NETNS_PREFIX}{os.getpid() if pid is None else pid}"


def _run_ip(argv: list[str]) -> None:
    if shutil.which("ip") is None:
        raise ConfigError("the ip command is missing (ip netns)", hint="apt-get install iproute2")
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise L4kitError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def sandbox_namespace(name: str | None = None) -> Iterator[str]:
    """A new network namespace with ``lo`` up; deleted on leaving the block,
    together with any state file a responder inside it left behind."""
    name = name or sandbox_name()
    if os.path.exists(f"/run/netns/{name}"):
        raise ConfigError(f"network namespace {name} already exists", hint="l4kit cleanup")
    _run_ip(["netns", "add", name])
    try:
        _run_ip(["-n", name, "link", "set", "lo", "up"])
        yield name
    finally:
        delete_netns(name)
        store = StateStore()
        for path in list(store.directory.glob(f"{name}-*.json")) if store.directory.is_dir() else []:
            store.remove(path)


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the parent dies (prctl(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def netns_exec_argv(name: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


def l4kit_argv(*args: str) -> list[str]:
    """This interpreter running this l4kit (so a virtualenv install is used)."""
    return [sys.executable, "-m", "l4kit", *args]


def spawn_in_namespace(
    name: str, argv: list[str], *, env_extra: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(env_extra or {})
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        netns_exec_argv(name, argv),
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - called before any thread of ours starts
        env=env,
        text=True,
        **popen,
    )


def stop_child(child: subprocess.Popen[str], sig: int = signal.SIGINT, grace: float = STOP_GRACE) -> int:
    """Signal the child, wait ``grace`` seconds, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(sig)
    try:
        return child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def run_sandboxed(respond_args: list[str], *, port: int, notice: Callable[[str], None]) -> int:
    """``l4kit respond --sandbox``: the same command inside a new namespace.
    Returns the child's exit code."""
    require_capabilities(
        "l4kit respond --sandbox",
        [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN, Capability.CAP_SYS_ADMIN],
    )
    with sandbox_namespace() as name:
        notice(
            f"sandbox: network namespace {name} (deleted on exit); reach it with:\n"
            f"  ip netns exec {name} nc 127.0.0.1 {port}"
        )
        child = spawn_in_namespace(name, l4kit_argv("respond", *respond_args), env_extra={SANDBOX_ENV: name})
        first_signal: list[float] = []

        def forward(signum: int, _frame: FrameType | None) -> None:
            if not first_signal:
                first_signal.append(time.monotonic())
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

        previous = {
            sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            while True:
                try:
                    return child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    if first_signal and time.monotonic() - first_signal[0] > STOP_GRACE:
                        child.kill()
        finally:
            if child.poll() is None:
                stop_child(child, signal.SIGTERM)
            for sig, old in previous.items():
                signal.signal(sig, old)


# ---------------------------------------------------------------- demo


class _LineReader:
    """Reads a child's output lines on a thread, so waits can be bounded."""

    def __init__(self, stream: object) -> None:
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern: re.Pattern[str], deadline: float) -> tuple[str | None, list[str]]:
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, seen
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None, seen
            if line is None:
                return None, seen
            seen.append(line)
            if pattern.search(line):
                return line, seen

    def rest(self, deadline: float) -> list[str]:
        out: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            out.append(line)
        return out


def run_demo(
    message: str,
    port: int,
    expected: str,
    *,
    progress: Callable[[str], None],
    ready_timeout: float = 20.0,
    client_timeout: float = 5.0,
) -> DemoResult:
    """The responder in a sandbox, then ``echo MESSAGE | nc 127.0.0.1 PORT`` in it."""
    require_capabilities(
        "l4kit demo", [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN, Capability.CAP_SYS_ADMIN]
    )
    if shutil.which("nc") is None:
        raise ConfigError(
            "the demo's client is nc, which is not installed", hint="apt-get install netcat-openbsd"
        )
    result = DemoResult(expected=expected)
    with sandbox_namespace() as name:
        result.namespace = name
        # The child's output is a pipe; keep the tables as wide (and as colourful)
        # as this terminal.
        env_extra = {"COLUMNS": str(shutil.get_terminal_size((110, 24)).columns)}
        if sys.stdout.isatty():
            env_extra["FORCE_COLOR"] = "1"
        child = spawn_in_namespace(
            name,
            l4kit_argv("respond", "--port", str(port), "--duration", "60"),
            env_extra=env_extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=1,
        )
        reader = _LineReader(child.stdout)
        try:
            ready, seen = reader.until(READY_PATTERN, time.monotonic() + ready_timeout)
            if ready is None:
                result.failure = "the responder did not start:\n" + "".join(seen).rstrip()
                return result
            result.ready_line = ready.rstrip()
            progress(result.ready_line)
            progress(f"$ echo {message} | nc 127.0.0.1 {port}     # inside {name}")
            started = time.monotonic()
            try:
                client = subprocess.run(
                    netns_exec_argv(name, ["nc", "-w", str(int(client_timeout)), "127.0.0.1", str(port)]),
                    input=message + "\n",
                    capture_output=True,
                    text=True,
                    timeout=client_timeout + 2,
                    check=False,
                )
                result.client_output = client.stdout
                result.client_exit = client.returncode
            except subprocess.TimeoutExpired:
                result.failure = f"nc did not exit within {client_timeout + 2:.0f} s"
            result.client_seconds = time.monotonic() - started
        finally:
            result.responder_exit = stop_child(child)
            result.responder_output = reader.rest(time.monotonic() + 2.0)
    return result

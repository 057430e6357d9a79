"""Network namespaces for the live and reliability tests, and what runs in them.

Nothing here touches the host's firewall or sysctls: every command runs through
``ip netns exec`` in a namespace made for one test (:func:`namespace`), which is
always deleted afterwards, with whatever still runs inside killed.

- :class:`Namespace`: ``ns.run(argv)`` / ``ns.popen(argv)`` run a command inside;
  ``ns.python(code, *args)`` runs ``python -c code`` (pytest's interpreter);
  ``ns.sysctl(key)``, ``ns.firewall_snapshot()`` are what the host-preparation tests
  compare; ``ns.respond(*args)`` starts ``l4kit respond`` and waits for its ready line
  (never a sleep), returning a :class:`RunningResponder`, whose ``stop()`` first waits
  until the responder has read every frame queued for it (``settle``).
- :class:`Tcpdump`: a capture of the namespace's ``lo`` that loses nothing.
- ``ns.clients(count, request, parallel=N)``: the load client (``tests/loadclient.py``,
  Python sockets with bounded timeouts), ``parallel`` at a time; a :class:`ClientRun`
  counts what they got.

The fixtures that use these live in ``tests/live/conftest.py`` and
``tests/reliability/conftest.py``; ``tests`` is on ``sys.path`` (pyproject's
``pythonpath``), so both import this module by name.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapReader

READY = re.compile(r"^listening on (\S+):(\d+) \((\S+)\)")
# What respond sets (lo's own two) and what it must never touch (all, default), watched together.
LOOPBACK_SYSCTL_KEYS = tuple(
    f"net/ipv4/conf/{conf}/{name}"
    for name in ("route_localnet", "accept_local")
    for conf in ("all", "default", "lo")
)
LOAD_CLIENT = Path(__file__).with_name("loadclient.py")
_counter = itertools.count()


def live_capable() -> str | None:
    """Why live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "live tests need root (network namespaces, packet sockets)"
    if shutil.which("ip") is None:
        return "live tests need iproute2 (ip netns)"
    return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/PID/task/TID/children``): with ``--sandbox``
    the responder is a child of the process the test started."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def packet_socket_queues(pid: int) -> list[int]:
    """The bytes waiting in the receive queue of each packet socket open in ``pid``
    or its descendants: the ``Rmem`` column of ``/proc/PID/net/packet`` (the table of
    the process's own namespace) for the sockets among its file descriptors."""
    queues = []
    for member in process_tree(pid):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{member}/fd").iterdir()]
            lines = Path(f"/proc/{member}/net/packet").read_text().splitlines()
        except OSError:  # gone, or a descriptor closed while listing
            continue
        inodes = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
        columns = lines[0].split()
        for line in lines[1:]:
            row = dict(zip(columns, line.split(), strict=True))
            if row["Inode"] in inodes:
                queues.append(int(row["Rmem"]))
    return queues


def sniffer_waiting(pid: int) -> bool:
    """Whether a thread of ``pid`` or its descendants is asleep in ``select`` or ``poll``
    (its ``wchan``). The responder's sniffer thread sleeps there only while its receive
    ring and socket hold no frame: with a frame there, it does not call ``select``, and a
    frame that arrives wakes it. Its other threads wait on locks and timers instead."""
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(OSError):
                    wchan = (task / "wchan").read_text()
                    if "poll" in wchan or "select" in wchan:
                        return True
    return False


class RunningResponder:
    """A ``l4kit respond`` process; its output is read on a thread, line by line."""

    def __init__(self, process: subprocess.Popen[str], ready_timeout: float = 30.0) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready_line = self.wait_for(READY, ready_timeout)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The first new line matching ``pattern``; fails with the output so far
        if the process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern.pattern!r}; output so far:\n{self.output}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=10)
                raise AssertionError(
                    f"responder exited ({self.process.returncode}) before {pattern.pattern!r}:\n{self.output}"
                )
            self.lines.append(line)
            if pattern.search(line):
                return line

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def settle(self, *, quiet: float = 0.25, timeout: float = 10.0, strict: bool = False) -> float:
        """Wait until the responder has read every frame queued for it: for ``quiet``
        seconds, its sniffer thread sleeps waiting for a frame at every look and its
        packet socket's receive queue stays empty (the frames too long for its receive
        ring wait there). Returns the seconds waited.

        A client is done when it has its reply, not when the responder has read its
        closing segments; the responder may also still be working through a backlog
        (a flood, the Scapy codec). A stop in between leaves those frames unread at
        exit and their connections open, and counts that differ from run to run.
        ``strict``: fail if the queue is not empty within ``timeout`` (otherwise give up
        quietly) or if the responder has no packet socket to look at."""
        start = time.monotonic()
        empty_since = None
        while self.process.poll() is None:
            now = time.monotonic()
            queues = packet_socket_queues(self.process.pid)
            if strict:
                assert queues, f"no packet socket in responder process {self.process.pid}"
            if any(queues) or not sniffer_waiting(self.process.pid):
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= quiet:
                break
            if now - start > timeout:
                if strict:
                    raise AssertionError(f"the responder still had frames queued after {timeout:.0f} s")
                break
            time.sleep(0.02)
        return time.monotonic() - start

    def stop(
        self, sig: int = signal.SIGINT, timeout: float = 20.0, *, settle: bool = True
    ) -> tuple[int, str]:
        """Signal, wait for exit, return (exit code, whole output). With ``settle``
        (the default) the signal waits until the responder has read what is queued
        for it (:meth:`settle`, at most 10 s)."""
        if settle:
            self.settle()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"responder ignored {signal.Signals(sig).name}:\n{self.output}") from None
        self._reader.join(timeout=10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code, self.output


@dataclass
class Namespace:
    name: str
    state_dir: Path
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["L4KIT_STATE_DIR"] = str(self.state_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["COLUMNS"] = "160"
        return env

    def run(
        self, argv: list[str], *, timeout: float = 30, check: bool = True, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            self.argv(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self.env(),
            **kw,
        )

    def popen(self, argv: list[str], **kw: object) -> subprocess.Popen[str]:
        process: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            self.argv(argv), text=True, env=self.env(), **kw
        )
        self.children.append(process)
        return process

    def python(
        self, code: str, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", code, *args], timeout=timeout, input=input)

    def l4kit(self, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "l4kit", *args], timeout=timeout, check=check)

    def clients(self, count: int, request: bytes, **kw: Any) -> ClientRun:
        """``count`` kernel clients (Python sockets), one ``request`` per connection, each
        read to EOF, ``parallel`` at a time (default 1: one after the other); every
        outcome is counted, none raises (see :func:`client_argv` for the options)."""
        done = self.run(client_argv(count, request, **kw), timeout=600)
        return ClientRun.from_json(done.stdout)

    def respond(self, *args: str, ready_timeout: float = 30.0) -> RunningResponder:
        process = self.popen(
            [sys.executable, "-m", "l4kit", "respond", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=1,
            start_new_session=True,
        )
        return RunningResponder(process, ready_timeout)

    def sysctl(self, key: str) -> str:
        return self.run(["cat", f"/proc/sys/{key}"]).stdout.strip()

    def set_sysctl(self, key: str, value: str) -> None:
        self.run(["sh", "-c", f"echo {value} > /proc/sys/{key}"])

    def loopback_sysctls(self) -> dict[str, str]:
        return {key: self.sysctl(key) for key in LOOPBACK_SYSCTL_KEYS}

    def firewall_snapshot(self) -> dict[str, str]:
        """The whole text of ``nft list ruleset``, ``iptables-save`` and ``ip6tables-save``.

        Only the save commands' ``#`` comment lines are left out: they carry the time
        of the run (``# Generated by iptables-save v1.8.9 (nf_tables) on ...``)."""
        out = {"nft": self.run(["nft", "list", "ruleset"]).stdout}
        for binary in ("iptables-save", "ip6tables-save"):
            if shutil.which(binary):
                text = self.run([binary]).stdout
                out[binary] = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
        return out

    def host_snapshot(self) -> dict[str, object]:
        return {"firewall": self.firewall_snapshot(), "sysctls": self.loopback_sysctls()}

    def state_files(self) -> list[Path]:
        return sorted(self.state_dir.glob("*.json")) if self.state_dir.is_dir() else []

    def kill_all(self) -> None:
        for process in self.children:
            if process.poll() is None:
                process.kill()
                process.wait()
        # Anything else still inside (a client a test started by other means).
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def namespace(prefix: str, state_dir: Path) -> Iterator[Namespace]:
    """A fresh network namespace named ``<prefix>-<pid>-<n>`` with ``lo`` up;
    always deleted, with everything still running inside it killed."""
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ns = Namespace(name, state_dir)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield ns
    finally:
        ns.kill_all()
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def captured_frames(path: Path) -> int:
    """Frames in a capture that tcpdump may still be writing (a torn last record is not counted)."""
    count = 0
    with contextlib.suppress(EOFError, OSError, ValueError, Scapy_Exception):
        for _frame in RawPcapReader(str(path)):
            count += 1
    return count


def late_client_segments(path: Path, client: str = "127.0.0.1", port: int = 8888) -> int:
    """Segments from ``client`` to ``port`` that reached the responder after a later one
    of the same connection, counted in the responder's own ``--pcap`` (written in the
    order it received them).

    Loopback can hand the responder a client's segments out of order: the kernel
    queues the client's ACK of the SYN-ACK on the CPU that sent the SYN-ACK (the
    responder's) and its data on the client's own CPU. The late segment is old
    (SEG.SEQ < RCV.NXT): RFC 9293 §3.10.7.4 drops it as unacceptable and answers with
    an ACK (Linux does the same), which tshark calls a duplicate ACK."""
    done = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", f"ip.src == {client} && tcp.dstport == {port}",
         "-T", "fields", "-E", "separator=|", "-e", "tcp.stream", "-e", "tcp.seq", "-e", "tcp.len",
         "-e", "tcp.flags.syn", "-e", "tcp.flags.fin"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    ends: dict[str, int] = {}
    late = 0
    for line in done.stdout.splitlines():
        stream, seq, length, syn, fin = line.split("|")
        end = int(seq) + int(length) + (syn in ("1", "True")) + (fin in ("1", "True"))
        if end < ends.get(stream, 0):
            late += 1
        ends[stream] = max(end, ends.get(stream, 0))
    return late


class Tcpdump:
    """tcpdump on the namespace's ``lo``, started once it says it is listening.

    ``-U --immediate-mode``: each frame is written as it comes. ``-B 65536`` (KiB): with
    immediate mode and the default buffer the kernel drops frames of a short burst
    (seen here: 12 of 198 frames) and the capture silently misses what the wire
    carried. ``-Z root``: tcpdump would otherwise switch to its own user before opening
    the file, in a directory only root may write.
    """

    def __init__(self, ns: Namespace, path: Path, bpf: str = "tcp") -> None:
        self.path = path
        self.process = ns.popen(
            ["tcpdump", "-Z", "root", "--immediate-mode", "-B", "65536", "-i", "lo", "-U", "-n", "-w",
             str(path), bpf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.process.stderr.readline()
            if not line:
                break
            seen += line
            if "listening on lo" in line:
                return
        self.process.kill()
        raise AssertionError(f"tcpdump did not start: {seen}")

    def stop(self, *, until: Callable[[Path], bool] | None = None, timeout: float = 20) -> str:
        """SIGINT and wait; return tcpdump's closing lines (its packet counts).

        ``until``: first wait (bounded) for the file to satisfy it, e.g.
        ``lambda p: captured_frames(p) >= n``: on a loaded machine tcpdump can lag
        behind the traffic, and what is still in its socket at SIGINT is lost.
        """
        if until is not None:
            deadline = time.monotonic() + timeout
            while not until(self.path) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stderr is not None
        return self.process.stderr.read()

    @staticmethod
    def kernel_dropped(closing: str) -> int:
        match = re.search(r"(\d+) packets? dropped by kernel", closing)
        return int(match.group(1)) if match else 0


@dataclass
class ClientRun:
    """What a client run reports: its seconds, each outcome's count (``ok`` or the
    socket error's name), each reply's count (the ``ok`` ones), the slowest exchange."""

    elapsed: float
    outcomes: Counter[str]
    replies: Counter[bytes]
    slowest: float

    @classmethod
    def from_json(cls, text: str) -> ClientRun:
        data = json.loads(text.strip().splitlines()[-1])
        replies = Counter({base64.b64decode(k): v for k, v in data["replies"].items()})
        return cls(float(data["elapsed"]), Counter(data["outcomes"]), replies, float(data["slowest"]))


def client_argv(count: int, request: bytes, *, parallel: int = 1, timeout: float = 20.0,
                port: int = 8888, progress_every: int = 0) -> list[str]:  # fmt: skip
    """The command line of the load client (tests/loadclient.py) run inside a namespace:
    ``count`` connections, one ``request`` each, ``parallel`` at a time."""
    return [sys.executable, str(LOAD_CLIENT), "--port", str(port), "--count", str(count),
            "--parallel", str(parallel), "--timeout", str(timeout),
            "--request-b64", base64.b64encode(request).decode(),
            "--progress-every", str(progress_every)]  # fmt: skip

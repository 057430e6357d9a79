"""``l4kit demo`` and ``l4kit respond --sandbox``: their own namespace, always deleted.

These make their namespaces themselves (``l4kit-<pid>``), so the tests check
that no namespace of that shape is left over afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from namespaces import RunningResponder

pytestmark = pytest.mark.live

READY = re.compile(r"^listening on 127\.0\.0\.1:8888 \(lo\)")
SANDBOX_LINE = re.compile(r"sandbox: network namespace (l4kit-\d+)")


def sandboxes() -> set[str]:
    return (
        {name for name in os.listdir("/run/netns") if name.startswith("l4kit-")}
        if os.path.isdir("/run/netns")
        else set()
    )


@pytest.fixture
def state_dir(tmp_path: Path, spawn_l4kit: Callable[..., RunningResponder]) -> Iterator[dict[str, str]]:
    """The environment for l4kit (a private state directory); checks that no sandbox
    namespace outlives the test."""
    before = sandboxes()
    env = dict(os.environ, L4KIT_STATE_DIR=str(tmp_path / "state"), PYTHONUNBUFFERED="1", COLUMNS="160")
    yield env
    leftover = sandboxes() - before
    for name in leftover:  # never leave one behind, even when the test failed
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert not leftover, f"sandbox namespaces left behind: {leftover}"


def test_demo_shows_the_whole_thing_and_exits_zero(state_dir: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=state_dir,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "listening on 127.0.0.1:8888 (lo)" in out
    assert "  hello world" in out  # what nc printed
    assert "LISTEN → SYN-RECEIVED" in out and "→ TIME-WAIT" in out
    assert "l4kit respond: summary" in out
    assert "ok: nc printed 'hello world\\n'" in out


def test_demo_names_a_next_command_that_runs(state_dir: dict[str, str]) -> None:
    # As sudo runs it: a PATH without the virtualenv (sudo's secure_path), so "l4kit"
    # alone would not be found.
    env = dict(state_dir, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("next: ")]
    program = line.removeprefix("next: ").split(" respond --sandbox")[0].removeprefix("sudo ")
    assert program == f"{sys.executable} -m l4kit", line
    shown = subprocess.run(
        [*shlex.split(program), "respond", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert shown.returncode == 0 and "--sandbox" in shown.stdout, shown.stderr


def test_demo_compares_with_the_string_servers_answer(state_dir: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "demo", "--message", "ping", "--port", "7777"],
        capture_output=True, text=True, timeout=60, env=state_dir, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  pong" in done.stdout
    assert "ok: nc printed 'pong\\n'" in done.stdout


def test_demo_with_an_empty_message_gets_the_error_line_and_the_close(state_dir: dict[str, str]) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "demo", "--message", "", "--port", "7778"],
        capture_output=True, text=True, timeout=60, env=state_dir, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  error: empty request (try: help)" in done.stdout
    assert "ok: nc printed 'error: empty request (try: help)\\n'" in done.stdout
    assert time.monotonic() - started < 20  # the server closed: nc did not wait for a timeout


def start_sandbox(
    spawn: Callable[..., RunningResponder], env: dict[str, str], *args: str
) -> tuple[RunningResponder, str]:
    running = spawn("respond", "--sandbox", *args, env=env)
    match = SANDBOX_LINE.search(running.output)
    assert match, running.output
    assert READY.search(running.ready_line)
    return running, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sandbox_is_reachable_then_deleted(
    state_dir: dict[str, str], spawn_l4kit: Callable[..., RunningResponder], sig: int
) -> None:
    running, name = start_sandbox(spawn_l4kit, state_dir)
    assert f"ip netns exec {name} nc 127.0.0.1 8888" in running.output
    done = subprocess.run(
        ["ip", "netns", "exec", name, "nc", "127.0.0.1", "8888"], input="toppage\n",
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert done.stdout == "hello world\n"
    # The host itself was not prepared: no l4kit table outside the sandbox.
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    assert "l4kit_8888" not in tables
    code, output = running.stop(sig)
    assert code == 0, output
    assert "l4kit respond: summary" in output
    assert name not in sandboxes()


def test_killed_sandbox_parent_is_cleaned_up(
    state_dir: dict[str, str], spawn_l4kit: Callable[..., RunningResponder]
) -> None:
    running, name = start_sandbox(spawn_l4kit, state_dir)
    running.process.kill()
    running.process.wait()
    # The child got SIGTERM from the kernel (PR_SET_PDEATHSIG) and restored what it
    # changed inside; the namespace itself is for l4kit cleanup.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids_out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
        pids = pids_out.stdout.split()
        if not pids:
            break
        time.sleep(0.05)
    assert not pids, f"the sandboxed responder outlived its parent: {pids}"
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "cleanup"],
        capture_output=True, text=True, env=state_dir, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"deleted network namespace {name}" in done.stdout
    assert name not in sandboxes()

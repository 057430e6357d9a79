"""Helpers for the reliability tests: the live tests' namespace machinery, plus what load,
flood, fault and security tests need on top (the ``netns`` fixture is in conftest.py).

The namespace machinery (``Namespace``, ``RunningResponder``, ``ns.respond``, ``Tcpdump``
...) is ``tests/namespaces.py``'s, shared with the live tests and re-exported here.

Added here:

- :class:`Summary`: the exit summary of ``l4kit respond`` parsed into numbers.
- :func:`silence`: an nft ``input`` rule inside the namespace that drops what is
  addressed to a spoofed network or to a scripted peer's ports, so that the
  kernel neither answers l4kit's replies with RST nor delivers them anywhere: the
  peers "vanish" exactly as a spoofed flood source or a dead client does.
- :func:`send_frames`: pre-built frames through one packet socket (``rawframes.py``).
- :func:`tshark_fields`: what the judge reads from a :class:`~namespaces.Tcpdump` capture.
- :func:`memory`: VmRSS/VmHWM of a process, from ``/proc/PID/status``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rawframes

from namespaces import Namespace, RunningResponder

HERE = Path(__file__).resolve().parent
RAWFRAMES = HERE / "rawframes.py"
PEER = HERE / "peer.py"


def needs(*tools: str) -> pytest.MarkDecorator:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


# ---------------------------------------------------------------- the exit summary


@dataclass
class Summary:
    """The numbers of ``l4kit respond``'s exit summary (views/live.py ``summary_table``)."""

    text: str
    connections: int = 0
    aborted_at_exit: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    frames_matched: int = 0
    retransmissions: int = 0
    # how they came about (the row's detail): loss recovery by kind
    fast_retransmits: int = 0
    sack_recoveries: int = 0
    loss_probes: int = 0
    timeouts: int = 0
    cookies_sent: int = 0
    cookies_accepted: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    checksums_offloaded: int = 0
    kernel_rsts_dropped: int | None = None
    send_errors: int = 0
    drops_total: int = 0
    drops: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, output: str) -> Summary:
        start = output.rfind("l4kit respond: summary")
        assert start >= 0, f"no exit summary in:\n{output}"
        text = output[start:]

        def row(label: str) -> list[int]:
            match = re.search(rf"^\s*{re.escape(label)}\s+(.*)$", text, re.M)
            assert match, f"no {label!r} row in:\n{text}"
            return [int(x) for x in re.findall(r"\d+", match.group(1))]

        summary = cls(text)
        summary.connections, summary.aborted_at_exit = row("connections")[:2]
        summary.bytes_in, summary.bytes_out = row("bytes in / out")[:2]
        frames = row("frames in / out")
        summary.frames_in, summary.frames_out = frames[:2]
        summary.frames_matched = frames[2] if len(frames) > 2 else 0
        summary.retransmissions = row("retransmissions")[0]
        detail = re.search(r"^\s*retransmissions\s+\d+(.*)$", text, re.M)
        for attr, name in (
            ("fast_retransmits", "fast retransmit"),
            ("sack_recoveries", "SACK recover"),
            ("loss_probes", "TLP"),
            ("timeouts", "RTO"),
        ):
            found = re.search(rf"(\d+) {name}", detail.group(1) if detail else "")
            setattr(summary, attr, int(found.group(1)) if found else 0)
        summary.cookies_sent, summary.cookies_accepted = row("SYN cookies")[:2]
        summary.resets_sent, summary.resets_received = row("resets")[:2]
        summary.checksums_offloaded = row("checksums offloaded")[0]
        if "kernel RSTs dropped" in text:
            summary.kernel_rsts_dropped = row("kernel RSTs dropped")[0]
        if "send errors" in text:
            summary.send_errors = row("send errors")[0]
        summary.drops_total = row("drops")[0]
        after_drops = text[text.index("\n drops") :].splitlines()[1:]
        for line in after_drops:
            match = re.match(r"^\s+(\d+)\s+(\S+)\s*$", line)
            if match:
                summary.drops[match.group(2)] += int(match.group(1))
        assert sum(summary.drops.values()) == summary.drops_total, text
        return summary


# ---------------------------------------------------------------- namespace plumbing


def silence(ns: Namespace, *, daddr: str | None = None, dports: str | None = None) -> None:
    """Drop, on the namespace's ``input`` hook, TCP to ``daddr`` (a network) or to
    ``dports`` (``"40000-40999"``): l4kit's replies still pass every packet socket
    (taps come before netfilter), but the kernel never sees them, so it neither
    answers with RST nor completes anything. The namespace goes with the test."""
    tables = ns.run(["nft", "list", "tables"]).stdout
    if "reliability_silence" not in tables:
        ns.run(["nft", "add", "table", "inet", "reliability_silence"])
        ns.run(["nft", "add", "chain", "inet", "reliability_silence", "in",
                "{ type filter hook input priority -10; }"])  # fmt: skip
    if dports:
        # The kernel's own clients (nc, Python sockets) must never draw a silenced port
        # as their ephemeral port (the default range 32768-60999 includes 40000-40999):
        # start the namespace's range above every port the tests script peers on.
        ns.set_sysctl("net/ipv4/ip_local_port_range", "50000 60999")
    match = ["ip", "daddr", daddr] if daddr else ["tcp", "dport", dports or ""]
    ns.run(
        ["nft", "add", "rule", "inet", "reliability_silence", "in", *match, "meta", "l4proto", "tcp", "drop"]
    )


def send_frames(
    ns: Namespace, frames: Iterable[bytes], workdir: Path, *, name: str = "frames"
) -> dict[str, float]:
    """Send ``frames`` from inside ``ns`` through one packet socket; returns the sender's report."""
    path = workdir / f"{name}.bin"
    rawframes.write_frames(path, frames)
    done = ns.run([sys.executable, str(RAWFRAMES), "send", "--file", str(path)], timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def start_sender(
    ns: Namespace, frames: Iterable[bytes], workdir: Path, *, mark: int
) -> subprocess.Popen[str]:
    """Start sending in the background; returns once the sender printed ``mark``
    (after ``mark`` frames), so the test knows the flood is under way."""
    path = workdir / "flood.bin"
    rawframes.write_frames(path, frames)
    process = ns.popen(
        [sys.executable, str(RAWFRAMES), "send", "--file", str(path), "--mark", str(mark)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the mark (or EOF if the sender failed)
    assert line.strip() == "mark", (line, process.stderr.read() if process.stderr else "")
    return process


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of ``pid`` in KiB, from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def responder_pid(responder: RunningResponder) -> int:
    """The pid of the Python process that runs the responder.

    ``ip netns exec NS cmd`` enters the namespace and then ``execvp``s ``cmd``, so
    the pid Popen returns is the responder itself, not a parent; checked here
    (the command line and the namespace), not assumed.
    """
    pid = int(responder.process.pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"l4kit" in cmdline and b"respond" in cmdline, cmdline
    assert os.path.realpath(f"/proc/{pid}/exe").startswith(os.path.realpath(sys.base_exec_prefix)) or (
        "python" in os.path.basename(os.path.realpath(f"/proc/{pid}/exe"))
    ), os.path.realpath(f"/proc/{pid}/exe")
    assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    return pid


def netstat_counter(ns: Namespace, name: str) -> int:
    """A TcpExt counter of the namespace's kernel (``/proc/net/netstat``), e.g. TCPSynRetrans."""
    lines = ns.run(["cat", "/proc/net/netstat"]).stdout.splitlines()
    for header, values in itertools.pairwise(lines):
        if header.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(header.split()[1:], values.split()[1:], strict=True))
            return int(table[name])
    raise AssertionError("no TcpExt in /proc/net/netstat")


# ---------------------------------------------------------------- captures


def tshark_fields(path: Path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    if display_filter:
        argv += ["-Y", display_filter]
    for name in fields:
        argv += ["-e", name]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
    return [line.split("|") for line in done.stdout.splitlines()]


def tshark_count(path: Path, display_filter: str) -> int:
    return len(tshark_fields(path, "frame.number", display_filter=display_filter))


# ---------------------------------------------------------------- scripted peers


def start_peer(ns: Namespace, sport: int, plan: list[list[object]]) -> subprocess.Popen[str]:
    """``peer.py`` inside ``ns`` (see its docstring); read its result with :func:`peer_result`."""
    return ns.popen(
        [sys.executable, str(PEER), "--sport", str(sport), "--plan", json.dumps(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def peer_result(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, object]:
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    assert result["error"] is None, (result, err)
    return result

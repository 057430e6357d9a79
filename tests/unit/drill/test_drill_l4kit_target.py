"""``l4kit drill --target l4kit``: the project's scripts against l4kit's own core, on a
virtual clock (no root, no network): verdicts, determinism, blocking calls, and the
lines the core has no counterpart for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drill_scripts import FAILING, PASSING, SCRIPTS
from l4kit.drill.run.settings import build_config
from l4kit.drill.run.virtual import run_script
from l4kit.drill.script import parse


def line_of(script: str, text: str) -> int:
    lines = (SCRIPTS / script).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def run_text(text: str, name: str = "t.pkt"):  # type: ignore[no-untyped-def]
    script = parse(text, name)
    return run_script(script, build_config([(o.name, o.value) for o in script.options], {}))


def test_project_scripts_verdicts_without_privileges(tmp_path: Path) -> None:
    capture = tmp_path / "run.pcap"
    command = [sys.executable, "-m", "l4kit", "drill", "--target", "l4kit", "--format", "json"]
    done = subprocess.run(
        [*command, "--pcap", str(capture), *sorted(PASSING | FAILING)],
        capture_output=True, text=True, timeout=120, check=False, cwd=SCRIPTS,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["target"] == "l4kit"
    verdicts = {entry["path"]: entry for entry in document["scripts"]}
    assert {name for name, entry in verdicts.items() if entry["verdict"] == "pass"} == PASSING, {
        name: entry["failure"] for name, entry in verdicts.items() if entry["verdict"] != "pass"
    }
    # The core's SACK block for out-of-order data, with the TSecr RFC 7323 §4.3 asks for.
    options = {line["line"]: line for line in verdicts["options.pkt"]["lines"]}
    sack = options[line_of("options.pkt", "sack 11:21")]
    assert sack["ok"] and sack["actual"].endswith("<nop,nop,TS val 900 ecr 110,nop,nop,sack 11:21>")
    ack = verdicts["fails-on-ack.pkt"]["failure"]
    assert (ack["line"], ack["field"], ack["expected"], ack["actual"]) == (
        line_of("fails-on-ack.pkt", "ack 2"), "tcp_ack_seq", "2", "11",
    )  # fmt: skip
    # Times are the script's own, to the microsecond: the first retransmission comes 300 ms
    # after the data (RTO = SRTT + 4 * RTTVAR with the 100 ms RTT of the handshake).
    lines = {line["line"]: line for line in verdicts["retransmit.pkt"]["lines"]}
    data, first = line_of("retransmit.pkt", "+0 > P."), line_of("retransmit.pkt", "+.3~+.34 > P.")
    assert lines[first]["time_s"] - lines[data]["time_s"] == pytest.approx(0.3, abs=1e-6)
    assert capture.stat().st_size > 24


def test_runs_are_deterministic() -> None:
    text = (SCRIPTS / "passive-open.pkt").read_text()
    first, second = run_text(text), run_text(text)
    assert first.passed and second.passed
    assert [(r.line, r.time_us, r.actual) for r in first.lines] == [
        (r.line, r.time_us, r.actual) for r in second.lines
    ]


BLOCKING = """0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0...0.1 accept(3, ..., ...) = 4
+.1 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+0 < . 1:1(0) ack 1 win 65535
+0...0.2 read(4, ..., 100) = 10
+.2 < P. 1:11(10) ack 1 win 65535
+0 > . 1:1(0) ack 11
"""


def test_blocking_calls_return_when_what_they_wait_for_arrives() -> None:
    result = run_text(BLOCKING)
    assert result.passed, result.failure
    returned = {record.line: record.time_us for record in result.lines}
    assert (returned[4], returned[8]) == (100_000, 300_000)
    # The same read written without its return time would block with nothing to wake it.
    result = run_text(BLOCKING + "+0 read(4, ..., 100) = 5\n")
    failure = result.failure
    assert failure is not None and failure.line == 11 and failure.field == "blocking"
    assert failure.message.startswith("runtime error in read call: the call would block (nothing to read)")


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("+0 epoll_create(1) = 5", "unsupported: epoll_create() on the l4kit target"),
        ("+0 setsockopt(3, SOL_SOCKET, SO_SNDBUF, [4096], 4) = 0",
         "unsupported: setsockopt(SOL_SOCKET, SO_SNDBUF) on the l4kit target"),
        ("+0 < icmp unreachable frag_needed mtu 1000", "unsupported: ICMP messages on the l4kit target"),
    ],
)  # fmt: skip
def test_what_the_core_has_no_counterpart_for_is_unsupported(line: str, what: str) -> None:
    prefix = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n"
    prefix += "+0 < S 0:0(0) win 65535\n+0 > S. 0:0(0) ack 1 <...>\n"
    result = run_text(prefix + line + "\n")
    assert result.failure is not None and result.failure.unsupported, result.failure
    assert result.failure.message == what


def test_shell_commands_are_not_run() -> None:
    result = run_text("`exit 1`\n0 `exit 1`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert result.passed
    assert result.lines[0].actual == "not run: the l4kit target runs no shell"


def test_a_call_still_blocked_at_the_end_leaves_no_thread_behind() -> None:
    import threading

    text = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0.1...0.3 accept(3, ..., ...) = 4
"""
    before = threading.active_count()
    for _ in range(3):
        result = run_text(text)
        assert not result.passed
        assert result.failure is not None and result.failure.line == 4
    assert threading.active_count() == before

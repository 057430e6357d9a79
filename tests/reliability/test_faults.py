"""Faults: peers that vanish, stall or reset, and a stop in the middle of load.

Scripted peers (``peer.py``) do what kernel clients cannot be made to do: stop
answering mid-handshake, after their request, or right before acknowledging the
FIN; hold a zero window; reset the connection in each state. Their ports are
silenced for the kernel (``silence``), so only l4kit and the peer see l4kit's
segments, and the kernel never answers them with RST.

Timers (RFC 6298): the initial RTO is 1 s and doubles at each retransmission; the
tests run with ``--synack-retries 2 --retries 2`` so a give-up comes after
1 + 2 + 4 = 7 s instead of 63 s (the soak test waits for the default 63 s). The
times are read from a tcpdump capture. A timer cannot fire early, so the lower
bounds are tight (5 %); it can fire late on a loaded machine, so the upper bounds
allow LATE seconds.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import rawframes
from reliability_helpers import (
    Summary,
    needs,
    peer_result,
    silence,
    start_peer,
    tshark_fields,
)

from namespaces import ClientRun, Tcpdump, client_argv

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = [pytest.mark.live, pytest.mark.reliability, needs("tcpdump", "tshark", "nft")]

LATE = 1.5  # seconds a timer may fire late on a busy two-core machine
SA, RA, PA, FA, A = (rawframes.flags_value(f) for f in ("SA", "RA", "PA", "FA", "A"))


def server_segments(path: Path, port: int) -> list[tuple[float, int, int, int]]:
    """(time, flags, relative seq, length) of every segment l4kit sent to ``port``."""
    rows = tshark_fields(
        path, "frame.time_relative", "tcp.flags", "tcp.seq", "tcp.len",
        display_filter=f"tcp.srcport == 8888 && tcp.dstport == {port}",
    )  # fmt: skip
    return [(float(t), int(flags, 16), int(seq), int(length)) for t, flags, seq, length in rows]


def assert_backoff(times: list[float], *, initial_rto: float = 1.0) -> list[float]:
    """Consecutive gaps of ``times`` are the RTO doubling from ``initial_rto`` (RFC 6298 §5.5)."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for k, gap in enumerate(gaps):
        expected = initial_rto * 2**k
        assert expected * 0.95 <= gap <= expected + LATE, (k, gaps)
    return gaps


# ---------------------------------------------------------------- peers that go silent


SILENT_PEERS = {
    # SYN, then nothing: SYN-ACK retransmitted, then given up (RST).
    40001: [["syn"], ["expect", "SA", 10], ["expect", "R", 60]],
    # The request, then nothing: the reply is retransmitted, then the connection reset.
    40002: [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "R", 60]],
    # Takes the reply, never acknowledges the FIN: the FIN is retransmitted, then reset.
    40003: [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "F", 10],
            ["ack", {"ack": "data"}], ["expect", "R", 60]],
    # A zero window: the reply waits, persist probes ask for a window update
    # (RFC 9293 §3.8.6.1); two are answered with the window still shut, then it opens.
    40004: [["syn"], ["expect", "SA", 10], ["ack", {"window": 0}], ["data", "toppage\n", {"window": 0}],
            ["answer_probes", 2, 30, 0], ["ack", {"window": 65535}], ["expect", "F", 10], ["ack"], ["fin"],
            ["expect", "A", 10]],
}  # fmt: skip


def test_silent_peers_get_retransmissions_with_backoff_then_a_reset(netns: Namespace, tmp_path: Path) -> None:
    silence(netns, dports="40000-40999")
    before = netns.host_snapshot()
    capture = Tcpdump(netns, tmp_path / "faults.pcap", "tcp port 8888")
    responder = netns.respond("--verbose", "--synack-retries", "2", "--retries", "2")
    peers = {port: start_peer(netns, port, plan) for port, plan in SILENT_PEERS.items()}
    results = {port: peer_result(process) for port, process in peers.items()}
    code, output = responder.stop()
    capture.stop()
    assert code == 0, output
    assert netns.host_snapshot() == before

    # Mid-handshake: SYN-ACK at 0, 1, 3 s, then the give-up RST at 7 s.
    sent = server_segments(capture.path, 40001)
    assert [flags for _, flags, _, _ in sent] == [SA, SA, SA, RA]
    gaps = assert_backoff([t for t, _, _, _ in sent])
    print(f"SYN-ACK retransmission gaps: {[round(g, 3) for g in gaps]}")

    # After the request: the reply (seq 1) at 0, 1, 3 s; RST at 7 s. The FIN went once.
    sent = server_segments(capture.path, 40002)
    replies = [t for t, flags, seq, length in sent if flags == PA and seq == 1 and length == 12]
    (reset,) = [t for t, flags, _, _ in sent if flags == RA]
    gaps = assert_backoff([*replies, reset])
    assert len(replies) == 3 and sum(1 for s in sent if s[1] == FA) == 1
    print(f"data retransmission gaps: {[round(g, 3) for g in gaps]}")

    # The FIN never acknowledged: the FIN (seq 13) at 0, 1, 3 s; RST at 7 s.
    sent = server_segments(capture.path, 40003)
    fins = [t for t, flags, seq, _ in sent if flags == FA and seq == 13]
    (reset,) = [t for t, flags, _, _ in sent if flags == RA]
    gaps = assert_backoff([*fins, reset])
    assert len(fins) == 3 and sum(1 for s in sent if s[1] == PA) == 1
    print(f"FIN retransmission gaps: {[round(g, 3) for g in gaps]}")

    # Zero window: probes one RTO after the window closed, then doubling; no data until
    # the window opened; then the normal close (the peer saw the reply and the FIN).
    sent = server_segments(capture.path, 40004)
    probes = [t for t, flags, seq, length in sent if flags == A and seq == 0 and length == 0]
    (reply,) = [t for t, flags, _, length in sent if flags == PA and length == 12]
    window_closed_at = min(t for t, _, _, _ in sent if t > 0)  # the ACK of the request
    assert len(probes) == 2
    gaps = assert_backoff([window_closed_at, *probes])
    assert reply > probes[-1]
    received = results[40004]["received"]
    assert "hello world\n" in [segment["payload"] for segment in received]  # type: ignore[union-attr]
    print(f"zero-window probe gaps: {[round(g, 3) for g in gaps]}")

    summary = Summary.parse(output)
    assert summary.retransmissions == 3 * 2  # persist probes are not retransmissions
    assert summary.resets_sent == 3 and summary.connections == 3 and summary.aborted_at_exit == 0
    assert re.search(r"40004 → .*TIME-WAIT", output)  # the zero-window connection closed normally
    assert output.count("reset by l4kit: no ACK after 2 retransmissions") == 3  # one caption each


# ---------------------------------------------------------------- a RST in every state

RST_IN_STATE = {
    "SYN-RECEIVED": [["syn"], ["expect", "SA", 10], ["rst"]],
    "ESTABLISHED": [["syn"], ["expect", "SA", 10], ["ack"], ["rst"]],
    "FIN-WAIT-1": [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "F", 10],
                   ["rst"]],
    "FIN-WAIT-2": [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "F", 10],
                   ["ack"], ["rst"]],
    "CLOSING": [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "F", 10],
                ["fin", {"ack": "data"}], ["expect", "A", 10], ["rst"]],
    "LAST-ACK": [["syn"], ["expect", "SA", 10], ["ack"], ["fin"], ["expect", "F", 10], ["rst"]],
    "TIME-WAIT": [["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\n"], ["expect", "F", 10], ["ack"],
                  ["fin"], ["expect", "A", 10], ["rst"]],
}  # fmt: skip


def test_a_reset_in_every_state_closes_the_connection_and_the_next_client_is_served(
    netns: Namespace,
) -> None:
    silence(netns, dports="40000-40999")
    responder = netns.respond("--verbose")
    ports = {}
    for index, (state, plan) in enumerate(RST_IN_STATE.items()):
        port = 40100 + index
        ports[state] = port
        peer_result(start_peer(netns, port, plan))
        # The RST was the peer's last segment; wait for l4kit to have processed it.
        responder.wait_for(re.compile(rf"127\.0\.0\.1:{port} → 127\.0\.0\.1:8888"), 20)
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    for state, port in ports.items():
        # The row of the peer's RST in that connection's table: "<state> → CLOSED", except
        # that a passively opened connection in SYN-RECEIVED returns to LISTEN (RFC 9293
        # §3.10.7.4, second check): the listener goes on; the connection is gone either way.
        after = "LISTEN" if state == "SYN-RECEIVED" else "CLOSED"
        table = output[output.rindex(f"127.0.0.1:{port} → 127.0.0.1:8888") :]
        assert re.search(rf"│ client → │ R\s+│.*{state} → {after}", table), (state, table[:3000])
    summary = Summary.parse(output)
    assert summary.resets_received == len(RST_IN_STATE)
    assert summary.aborted_at_exit == 0 and summary.resets_sent == 0
    assert "internal-error" not in summary.drops


# ---------------------------------------------------------------- SIGINT under load


def test_sigint_in_the_middle_of_load(netns: Namespace, tmp_path: Path) -> None:
    before = netns.host_snapshot()
    own = tmp_path / "own.pcap"
    responder = netns.respond("--quiet", "--pcap", str(own))
    total = 600
    clients = netns.popen(
        client_argv(total, b"toppage\n", parallel=50, timeout=10, progress_every=50), stdout=subprocess.PIPE
    )
    assert clients.stdout is not None
    for line in clients.stdout:  # the clients report every 50 finished connections
        if line.strip() == "progress 150":
            break
    code, output = responder.stop(signal.SIGINT)
    rest, _ = clients.communicate(timeout=180)
    result = ClientRun.from_json(rest)
    assert code == 0, output
    summary = Summary.parse(output)

    # Every client finished: served, reset by the abort at exit, or refused once the
    # kernel's RST was allowed again. None hung (each has a 10 s timeout, none used).
    assert sum(result.outcomes.values()) == total
    ended = {"ok", "ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError"}
    assert set(result.outcomes) <= ended, result.outcomes  # no TimeoutError: nobody was left hanging
    assert result.outcomes["ok"] >= 150
    assert set(result.replies) == {b"hello world\n"}
    print(f"SIGINT after {result.outcomes['ok']} served: {dict(result.outcomes)}; "
          f"{summary.aborted_at_exit} aborted at exit, {summary.drops.get('unprocessed-at-exit', 0)} "
          f"frames unprocessed")  # fmt: skip

    # The host is as before, and the capture is complete: tshark reads every frame the
    # summary counted, and nothing after the last one.
    assert netns.host_snapshot() == before
    assert netns.state_files() == []
    done = subprocess.run(["tshark", "-n", "-r", str(own), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    complaints = [line for line in done.stderr.splitlines() if "Running as user" not in line]
    assert complaints == []  # e.g. "appears to have been cut short in the middle of a packet"
    assert len(done.stdout.split()) == summary.frames_in + summary.frames_out


# ---------------------------------------------------------------- soak: the default give-up


@pytest.mark.soak
def test_soak_default_give_up_after_63_seconds(netns: Namespace, tmp_path: Path) -> None:
    """With the defaults (5 SYN-ACK and 5 data retransmissions, Linux's tcp_synack_retries):
    retransmissions after 1, 2, 4, 8, 16 s, the give-up 32 s later, 63 s in all."""
    silence(netns, dports="40000-40999")
    capture = Tcpdump(netns, tmp_path / "give-up.pcap", "tcp port 8888")
    responder = netns.respond("--quiet")
    patient = {  # wait up to 120 s for the RST (the plans above wait 60 s)
        port: [["expect", "R", 120] if step[:2] == ["expect", "R"] else step for step in SILENT_PEERS[port]]
        for port in (40001, 40002, 40003)
    }
    peers = {port: start_peer(netns, port, plan) for port, plan in patient.items()}
    for process in peers.values():
        peer_result(process, timeout=180)
    code, output = responder.stop()
    capture.stop()
    assert code == 0, output
    for port, (flags, seq) in {40001: (SA, 0), 40002: (PA, 1), 40003: (FA, 13)}.items():
        sent = server_segments(capture.path, port)
        times = [t for t, f, s, _ in sent if f == flags and s == seq]
        (reset,) = [t for t, f, _, _ in sent if f == RA]
        gaps = assert_backoff([*times, reset])
        assert len(times) == 6 and reset - times[0] >= 63 * 0.95
        print(f"port {port}: gaps {[round(g, 2) for g in gaps]}, reset after {reset - times[0]:.1f} s")
    summary = Summary.parse(output)
    assert summary.retransmissions == 3 * 5 and summary.resets_sent == 3

"""Load: 1,000 sequential and 200 concurrent (50 at a time) kernel clients.

Every reply must be exactly what the string server (run sans-IO on the same
request) answers; no client may hang (each socket has a 10 s timeout, and a
timeout fails the test); and a tcpdump capture of the whole run must show no
retransmission storm.

The retransmission threshold, and why: on ``lo`` nothing is lost, so a segment is
retransmitted only when its answer comes later than the sender's timer: 1 s for
l4kit's RTO (RFC 6298's minimum), 200 ms for the kernel's data segments (Linux's
TCP_RTO_MIN) and 1 s for its SYNs. A responder that falls behind by that much
now and then on a busy two-core machine costs a few retransmissions; a storm (a
responder that answers twice, ACKs the wrong sequence number or stops reading)
costs one or more per connection. So: at most 1 % of the connections may see a
retransmission (tshark's ``tcp.analysis.retransmission``, both directions). l4kit
itself (its own counter and the capture agree) may send only tail-loss probes:
a probe goes out when an ACK is later than max(2 SRTT, 10 ms) (RFC 8985, as Linux
does), which a loaded machine's scheduler alone can cause on a loopback whose
SRTT is tens of microseconds; a timeout or a loss recovery would mean a segment
was lost or mishandled, and none may happen.

Connections per second are printed (``-s``); they are a measurement, not an
assertion (benchmarks/ compares speeds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from reliability_helpers import Summary, needs, tshark_count

from l4kit.core import Routes, StringServer
from namespaces import Tcpdump

if TYPE_CHECKING:
    from namespaces import ClientRun, Namespace

pytestmark = [pytest.mark.live, pytest.mark.reliability, needs("tcpdump", "tshark")]

RETRANSMISSION_SHARE = 0.01


def expected_reply(request: bytes) -> bytes:
    """What the core's string server answers, computed without the network."""
    return StringServer(Routes.default()).on_data(request).data


def check_run(run: ClientRun, count: int, request: bytes) -> None:
    assert run.outcomes == {"ok": count}, run.outcomes
    assert run.replies == {expected_reply(request): count}


def load(ns: Namespace, workdir: Path, *, codec: str, sequential: int, concurrent: int) -> dict[str, float]:
    capture = Tcpdump(ns, workdir / f"load-{codec}.pcap", "tcp port 8888")
    responder = ns.respond("--quiet", "--codec", codec)
    one_by_one = ns.clients(sequential, b"toppage\n", parallel=1, timeout=10)
    many = ns.clients(concurrent, b"ping\n", parallel=50, timeout=10)
    code, output = responder.stop()
    closing = capture.stop()
    assert code == 0, output
    check_run(one_by_one, sequential, b"toppage\n")
    check_run(many, concurrent, b"ping\n")
    summary = Summary.parse(output)
    connections = sequential + concurrent
    assert summary.connections == connections
    assert summary.drops.get("kernel-buffer-full", 0) == 0
    assert capture.kernel_dropped(closing) == 0  # the capture is complete: its counts mean something

    retransmitted = tshark_count(capture.path, "tcp.analysis.retransmission")
    by_l4kit = tshark_count(capture.path, "tcp.analysis.retransmission && tcp.srcport == 8888")
    rates = {
        "sequential conn/s": sequential / one_by_one.elapsed,
        "concurrent conn/s": concurrent / many.elapsed,
        "retransmissions": retransmitted,
        "slowest connection s": max(one_by_one.slowest, many.slowest),
    }
    print(f"\n[{codec}] {rates}")
    assert summary.retransmissions == by_l4kit <= summary.loss_probes, summary.text
    assert summary.timeouts == summary.fast_retransmits == summary.sack_recoveries == 0, summary.text
    assert retransmitted <= RETRANSMISSION_SHARE * connections, retransmitted
    return rates


@pytest.mark.parametrize("codec", ["scapy", "fast"])
def test_1000_sequential_and_200_concurrent_clients(netns: Namespace, tmp_path: Path, codec: str) -> None:
    load(netns, tmp_path, codec=codec, sequential=1000, concurrent=200)


@pytest.mark.soak
def test_soak_load(netns: Namespace, tmp_path: Path) -> None:
    scale = int(os.environ.get("L4KIT_SOAK_LOAD_SCALE", "10"))
    load(netns, tmp_path, codec="scapy", sequential=1000 * scale, concurrent=200 * scale)

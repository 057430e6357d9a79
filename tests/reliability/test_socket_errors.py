"""A sniffer that loses its interface: the responder stops with one clear line and
puts the host back as it was.

When an interface goes down (or is deleted), the kernel sets ``ENETDOWN`` on every
packet socket bound to it (``packet_notifier``). Scapy's sniff loop catches the
failed ``recv``, closes the socket and only logs a warning; l4kit must notice, say
why, exit non-zero, remove its firewall rule and restore the sysctls.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from reliability_helpers import Summary, needs

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = [pytest.mark.live, pytest.mark.reliability, needs("nft")]


def stop_reason(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_loopback_going_down_stops_the_responder_cleanly(netns: Namespace) -> None:
    before = netns.host_snapshot()
    responder = netns.respond("--quiet")
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    netns.run(["ip", "link", "set", "lo", "down"])
    code = responder.process.wait(timeout=30)
    _, output = responder.stop()
    assert code == 1, output
    assert "Traceback" not in output
    line = stop_reason(output)
    assert re.search(r"receiving on lo failed: Network is down", line), line
    assert "ip link show lo" in line  # the hint says where to look
    netns.run(["ip", "link", "set", "lo", "up"])
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_a_deleted_interface_stops_the_responder_cleanly(netns: Namespace) -> None:
    netns.run(["ip", "link", "add", "rel0", "type", "veth", "peer", "name", "rel1"])
    netns.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "rel0"])
    netns.run(["ip", "link", "set", "rel0", "up"])
    netns.run(["ip", "link", "set", "rel1", "up"])
    before = netns.host_snapshot()
    responder = netns.respond("--quiet", "--iface", "rel0", "--address", "10.77.0.1")
    assert "table inet l4kit_8888" in netns.firewall_snapshot()["nft"]
    netns.run(["ip", "link", "del", "rel0"])  # takes its peer rel1 with it
    code = responder.process.wait(timeout=30)
    _, output = responder.stop()
    assert code == 1, output
    assert "Traceback" not in output
    assert "receiving on rel0 failed" in stop_reason(output)
    assert netns.host_snapshot() == before  # the nft table is gone again
    assert netns.state_files() == []


def test_a_stop_before_any_failure_still_prints_the_summary(netns: Namespace) -> None:
    # The contrast: the same run stopped by SIGINT exits 0 with its summary.
    responder = netns.respond("--quiet")
    code, output = responder.stop()
    assert code == 0
    assert Summary.parse(output).frames_in == 0

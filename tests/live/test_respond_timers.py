"""Timers are served while no frame arrives, and IPv6 works the same way."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.live

# A SYN from a port no kernel socket owns; an input rule hides the SYN-ACK from
# the kernel (which would otherwise answer it with RST), so the half-open
# connection stays unanswered and only the retransmission timer can move it.
SILENT_PEER = r"""
import socket
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
syn = bytes(Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
            / IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=40005, dport=8888, flags="S", seq=7))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("lo", 0))
s.send(syn)
"""


def test_syn_ack_is_retransmitted_while_idle(netns: Namespace) -> None:
    netns.run(["nft", "add", "table", "inet", "silence"])
    netns.run(["nft", "add", "chain", "inet", "silence", "in", "{ type filter hook input priority 0; }"])
    netns.run(["nft", "add", "rule", "inet", "silence", "in", "tcp", "dport", "40005", "drop"])
    responder = netns.respond("--verbose")
    netns.python(SILENT_PEER)
    # RFC 6298 §2.1: the first retransmission after an initial RTO of 1 s. Nothing else
    # arrives, so only the core's timer (served through the sniffer's select) can send it.
    responder.wait_for(re.compile(r"timer.*retransmission.*40005|40005.*retransmission"), 15)
    code, output = responder.stop()
    assert code == 0, output
    summary = output[output.index("l4kit respond: summary") :]
    retransmissions = int(re.search(r"retransmissions\s+(\d+)", summary).group(1))  # type: ignore[union-attr]
    assert retransmissions >= 1
    assert "retransmission" in output[: output.index("l4kit respond: summary")]  # the table row's note


def test_ipv6_loopback(netns: Namespace) -> None:
    if "::1" not in netns.run(["ip", "-6", "addr", "show", "dev", "lo"]).stdout:
        pytest.skip("no IPv6 on lo here")
    responder = netns.respond("--address", "::1")
    assert "listening on [::1]:8888 (lo)" in responder.ready_line
    assert "ip6 saddr ::1 tcp sport 8888" in netns.firewall_snapshot()["nft"]
    assert netns.loopback_sysctls() == dict.fromkeys(
        netns.loopback_sysctls(), "0"
    )  # IPv4-only sysctls untouched
    done = netns.run(["nc", "::1", "8888"], input="toppage\n", timeout=10)
    assert done.stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    assert "[::1]:" in output and "→ TIME-WAIT" in output


# A client that connects and says nothing, then reads until the server closes.
IDLE_CLIENT = r"""
import socket, time
s = socket.create_connection(("127.0.0.1", 8888), timeout=20)
started = time.monotonic()
data = s.recv(100)
print(f"{data!r} after {time.monotonic() - started:.1f} s")
s.close()
"""


def test_an_idle_client_is_closed_with_fin_and_counted(netns: Namespace) -> None:
    responder = netns.respond("--idle-timeout", "2")
    done = netns.python(IDLE_CLIENT, timeout=30)
    said, seconds = re.fullmatch(r"(.*) after ([\d.]+) s\n", done.stdout).groups()  # type: ignore[union-attr]
    assert said == "b''"  # end-of-file: the server's FIN, not a reset
    assert 1.5 <= float(seconds) < 6
    code, output = responder.stop()
    assert code == 0, output
    summary = output[output.index("l4kit respond: summary") :]
    assert re.search(r"idle timeouts\s+1 closed \(FIN\)\s+0 reset", summary), summary
    assert "ESTABLISHED → FIN-WAIT-1" in output

"""A burst faster than the sniffer: drops are counted, never silent.

A client inside the namespace injects N identical frames (an ACK for a
connection that does not exist) on lo through a packet socket, as fast as
Python can write them, at a responder whose socket buffer is tiny. Each frame
the responder reads is answered with RST (RFC 9293 §3.10.7.1); the kernel
quietly discards those. So exactly N frames match the sniffer's filter, and the
exit summary must account for every one of them: processed, or dropped by the
kernel for a full buffer, or still queued at exit.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = [pytest.mark.live, pytest.mark.reliability]

BURST = r"""
import socket, sys
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
count = int(sys.argv[1])
frame = bytes(Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
              / IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=40001, dport=8888, flags="A", seq=1, ack=1))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("lo", 0))
sent = 0
for _ in range(count):
    sent += s.send(frame) == len(frame)
print(sent)
"""


def number(summary: str, label: str, index: int = 0) -> int:
    match = re.search(rf"^\s*{re.escape(label)}\s+(.*)$", summary, re.M)
    assert match, summary
    return int(re.findall(r"\d+", match.group(1))[index])


def drop_count(summary: str, reason: str) -> int:
    match = re.search(rf"^\s+(\d+)\s+{re.escape(reason)}\s*$", summary, re.M)
    return int(match.group(1)) if match else 0


def test_every_frame_of_a_burst_is_processed_or_counted_as_dropped(netns: Namespace) -> None:
    count = 5000
    responder = netns.respond("--quiet", "--rcvbuf", "1")  # the kernel's minimum buffer
    sent = int(netns.python(BURST, str(count), timeout=120).stdout)
    assert sent == count
    code, output = responder.stop(settle=False)  # at once: what is still queued is counted as unread
    assert code == 0, output
    summary = output[output.index("l4kit respond: summary") :]
    frames_in = number(summary, "frames in / out", 0)
    matched = number(summary, "frames in / out", 2)
    kernel = drop_count(summary, "kernel-buffer-full")
    unread = drop_count(summary, "unprocessed-at-exit")
    print(f"burst of {count}: {frames_in} processed, {kernel} dropped by the kernel, {unread} unread at exit")
    assert matched == count  # the kernel's own count of frames the filter matched
    assert frames_in + kernel + unread == count  # and every one of them is in the summary
    assert kernel > 0  # a buffer of a few frames cannot keep up with this burst
    # Every processed frame was an ACK for no connection: dropped by the core, answered with RST.
    assert drop_count(summary, "no-connection") == frames_in


INJECT = r"""
import socket
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
base = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / IP(src="127.0.0.1", dst="127.0.0.1")
good = bytes(base / TCP(sport=40002, dport=8888, flags="S", seq=1000))
bad = bytearray(bytes(base / TCP(sport=40003, dport=8888, flags="S", seq=2000)))
bad[14 + 20 + 16] ^= 0xFF  # the TCP checksum field: one octet flipped
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("lo", 0))
s.send(bytes(bad))
s.send(good)
"""


def test_a_corrupt_segment_is_dropped_and_a_correct_one_answered(netns: Namespace) -> None:
    # Frames injected from a packet socket carry a complete checksum (no
    # TP_STATUS_CSUMNOTREADY), so the responder verifies it from the bytes.
    responder = netns.respond("--verbose")
    netns.python(INJECT)
    responder.wait_for(re.compile(r"SYN-ACK|server ← .*SA|LISTEN → SYN-RECEIVED"), 10)
    code, output = responder.stop()
    assert code == 0, output
    summary = output[output.index("l4kit respond: summary") :]
    assert drop_count(summary, "bad-checksum") == 1
    assert "drop bad-checksum" in output  # shown as it happened (--verbose)
    assert "40002" in output and "LISTEN → SYN-RECEIVED" in output  # the good SYN got its SYN-ACK
    assert "127.0.0.1:40003 → " not in output  # the corrupt one never reached a connection
    assert number(summary, "checksums offloaded") == 0  # injected frames carry complete checksums

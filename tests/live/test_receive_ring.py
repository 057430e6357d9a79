"""The sniffer's receive ring against the kernel: what goes into ``lo`` comes out of the
ring, in order, byte for byte, long frames included, and every frame it could not hold
is counted.

Each test runs a script in the test's namespace: it opens :class:`InboundTcpSocket`
(the BPF filter, the TPACKET_V2 ring) on ``lo``, writes frames with a second packet
socket, reads them back as the sniffer does (``recv_batch``) and prints what it read
as JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from l4kit.live.ring import FRAME_SIZE, ring_geometry

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.live

READ_BACK = r"""
import json, socket, sys, time
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from l4kit.live.capture import InboundTcpSocket, TIMER_DUE, bpf_filter_text, compile_bpf

ring_bytes, sizes = int(sys.argv[1]), [int(n) for n in sys.argv[2].split(",")]
program = compile_bpf(bpf_filter_text("127.0.0.1", 8888), "lo")
capture = InboundTcpSocket("lo", program, buffer_bytes=ring_bytes)
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind(("lo", 0))
base = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / IP(src="127.0.0.1", dst="127.0.0.1")
sent = []
for i, size in enumerate(sizes):
    frame = bytes(base / TCP(sport=40000 + i, dport=8888, flags="A", seq=i) / (bytes([i % 251]) * size))
    out.send(frame)
    sent.append(frame.hex())
# A frame for another port: the filter keeps it out of the ring.
out.send(bytes(base / TCP(sport=40000, dport=9999, flags="A")))
started = time.time()
read = []
while True:
    batch = capture.recv_batch()
    if batch[0] is TIMER_DUE:
        break
    read += [(f.data.hex(), f.wall_time, f.checksum_partial, f.checksum_valid) for f in batch]
packets, drops = capture.read_kernel_statistics()
print(json.dumps({
    "sent": sent, "read": read, "started": started, "slots": capture.ring.slots,
    "packets": packets, "drops": drops, "truncated": capture.truncated, "left": capture.drain(),
}))
capture.close()
"""


def read_back(ns: Namespace, ring_bytes: int, sizes: list[int]) -> dict[str, Any]:
    done = ns.python(READ_BACK, str(ring_bytes), ",".join(str(n) for n in sizes))
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_geometry_is_whole_slots_in_whole_blocks_at_least_one_page() -> None:
    block, blocks, slots = ring_geometry(16 * 1024 * 1024)
    assert (block * blocks, slots) == (16 * 1024 * 1024, 16 * 1024 * 1024 // FRAME_SIZE)
    block, blocks, slots = ring_geometry(1)  # --rcvbuf 1: the smallest ring there is
    assert blocks == 1 and block >= 4096 and slots == block // FRAME_SIZE


def test_frames_come_out_in_order_byte_for_byte_long_ones_through_the_socket(netns: Namespace) -> None:
    # Short frames fit a slot; the 3,000- and 60,000-octet ones do not: the kernel marks
    # their slot TP_STATUS_COPY and queues them whole on the socket.
    sizes = [0, 8, 900, 3000, 60_000, 1, 2000]
    result = read_back(netns, 1 << 20, sizes)
    assert [data for data, *_ in result["read"]] == result["sent"]
    assert result["packets"] == len(sizes) and result["drops"] == 0 and result["truncated"] == 0
    assert result["left"] == 0
    for _data, wall_time, partial, valid in result["read"]:
        # The kernel's timestamp (wall clock) of each frame, taken after the script started.
        assert result["started"] - 1 < wall_time < result["started"] + 30
        # Frames injected through a packet socket carry the checksum they were built
        # with: the kernel marks them neither partial nor verified.
        assert not partial and not valid


def test_a_full_ring_drops_and_the_kernel_counts_every_drop(netns: Namespace) -> None:
    # A one-page ring (a few slots), 40 frames written before anything is read.
    result = read_back(netns, 1, [10] * 40)
    slots = result["slots"]
    assert slots == ring_geometry(1)[2]
    assert len(result["read"]) == slots  # the first ones, in order
    assert [data for data, *_ in result["read"]] == result["sent"][:slots]
    assert result["packets"] == 40 and result["drops"] == 40 - slots

"""Reference: the floor of l4kit's architecture, a responder without a TCP state machine.

The same receive and send path as ``l4kit respond`` (Scapy's AsyncSniffer over
l4kit's BPF packet socket and its receive ring, ``InboundTcpSocket`` read in batches
by ``FrameBatches``; one packet socket to send) with
the least possible logic between them: SYN -> SYN-ACK, data -> reply + FIN,
FIN -> ACK, read and packed with ``struct`` directly (no ``Segment``, no options,
checksums by :func:`l4kit.checksum.internet_checksum`). No state machine, no timers,
no retransmission, no events: what is left is the cost of moving frames between the
kernel and Python. l4kit's own figures against these are what its wire layer and its
TCP cost. Run inside a namespace that drops the kernel's RSTs and has
route_localnet/accept_local set (as for ``_naive_scapy.py``).
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time

from scapy.sendrecv import AsyncSniffer

from l4kit.checksum import internet_checksum
from l4kit.live.capture import FrameBatches, InboundTcpSocket, bpf_filter_text, compile_bpf
from l4kit.live.ring import CapturedFrame

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
ROUTES = {b"toppage": b"hello world\n", b"ping": b"pong\n"}
IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")
TCP_IN = struct.Struct("!HHIIH")

capture = InboundTcpSocket("lo", compile_bpf(bpf_filter_text("127.0.0.1", PORT), "lo"))
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
out.bind(("lo", 0))
ethernet = capture.mac + capture.mac + b"\x08\x00"
next_seq: dict[int, int] = {}


def reply(  # noqa: PLR0917 - the header fields, in wire order
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b""
) -> None:
    total = 40 + len(data)
    header = bytearray(
        IP_TCP.pack(
            0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst, sport, dport, seq, ack, 0x5000 | flags, 65535, 0, 0
        )
    )
    struct.pack_into("!H", header, 10, internet_checksum(header[:20]))
    pseudo = int.from_bytes(src + dst, "big") + 6 + total - 20
    struct.pack_into("!H", header, 36, internet_checksum(bytes(header[20:]) + data, pseudo))
    out.send(ethernet + header + data)


def handle(item: object) -> None:
    if not isinstance(item, CapturedFrame):
        return
    frame = item.data
    src, dst = frame[26:30], frame[30:34]
    sport, dport, seq, _ack, offset_flags = TCP_IN.unpack_from(frame, 34)
    flags = offset_flags & 0x1FF
    data = frame[34 + (offset_flags >> 12) * 4 : 14 + int.from_bytes(frame[16:18], "big")]
    if flags & 0x02:
        isn = random.getrandbits(32)
        next_seq[sport] = isn + 1
        reply(dst, src, dport, sport, isn, seq + 1, 0x12)
    elif data and sport in next_seq:
        answer = ROUTES.get(data.split(b"\n", 1)[0].rstrip(b"\r"), b"error: unknown command\n")
        ours, ack = next_seq[sport], seq + len(data)
        reply(dst, src, dport, sport, ours, ack, 0x18, answer)
        reply(dst, src, dport, sport, ours + len(answer), ack, 0x11)
        next_seq[sport] = ours + len(answer) + 1
    elif flags & 0x01 and sport in next_seq:
        reply(dst, src, dport, sport, next_seq.pop(sport), seq + 1, 0x10)


sniffer = AsyncSniffer(
    opened_socket=capture,
    session=FrameBatches,
    prn=handle,
    store=False,
    started_callback=lambda: print("ready", flush=True),
)
sniffer.start()
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    sniffer.stop()

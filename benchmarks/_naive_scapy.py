"""Reference: the naive Scapy responder of the original exercise.

Sniff, dissect every frame with Scapy, build each reply with Scapy layers and
send it with sendp through one reused L2 socket. No state machine, no timers:
SYN -> SYN-ACK, data -> ACK + reply + FIN, FIN -> ACK. It is what people write
by hand before they reach for a tool, and the floor l4kit's Scapy codec aims to
beat by 2x (docs/performance.md). Run inside a throw-away namespace that already drops the
kernel's RSTs and has route_localnet/accept_local set.
"""

from __future__ import annotations

import random
import sys
import time

from scapy.all import IP, TCP, AsyncSniffer, Ether, Raw, conf

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
ROUTES = {b"toppage": b"hello world\n", b"ping": b"pong\n"}
sock = conf.L2socket(iface="lo")
isns: dict[tuple[str, int], int] = {}


def reply(pkt, flags: str, seq: int, ack: int, payload: bytes = b"") -> None:
    ip, tcp = pkt[IP], pkt[TCP]
    frame = (
        Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
        / IP(src=ip.dst, dst=ip.src)
        / TCP(sport=tcp.dport, dport=tcp.sport, flags=flags, seq=seq, ack=ack)
    )
    if payload:
        frame = frame / Raw(payload)
    sock.send(frame)


def handle(pkt) -> None:
    if IP not in pkt or TCP not in pkt:
        return
    ip, tcp = pkt[IP], pkt[TCP]
    key = (ip.src, tcp.sport)
    flags = tcp.flags
    if flags.S and not flags.A:
        isn = isns[key] = random.getrandbits(32)
        reply(pkt, "SA", isn, tcp.seq + 1)
    elif key in isns and len(tcp.payload) and isinstance(tcp.payload, Raw):
        data = bytes(tcp.payload)
        line = data.split(b"\n", 1)[0].rstrip(b"\r")
        answer = ROUTES.get(line, b"error: unknown command\n")
        seq = isns[key] + 1
        ack = tcp.seq + len(data)
        reply(pkt, "PA", seq, ack, answer)
        reply(pkt, "FA", seq + len(answer), ack)
        isns[key] = seq + len(answer)  # the FIN's seq; its ACK comes next
    elif key in isns and flags.F:
        reply(pkt, "A", isns.pop(key) + 1, tcp.seq + 1)


sniffer = AsyncSniffer(
    iface="lo",
    filter=f"inbound and tcp dst port {PORT}",
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

"""A scripted TCP peer for fault tests: it does exactly what its plan says, and nothing else.

Runs inside the test's namespace (root: a packet socket on ``lo``)::

    python peer.py --sport 40001 --plan '[["syn"], ["expect", "SA", 10], ["ack"], ["data", "toppage\\n"],
                                          ["expect", "R", 60]]'

A kernel socket cannot be told to vanish mid-handshake, hold a zero window or
never ACK a FIN; this peer can. It sends frames built by :mod:`rawframes` through
one packet socket and reads l4kit's replies from another (the packet tap comes
before netfilter, so the test's ``silence`` rule can hide the replies from the
kernel, which would otherwise answer them with RST, without hiding them from
the peer). It keeps the little TCP state a script needs: its own ISN and
SND.NXT, the server's ISN (from the SYN-ACK) and RCV.NXT.

Steps (JSON lists):

- ``["syn"]``: SYN with an MSS option, ISN random.
- ``["expect", LETTERS, TIMEOUT]``: read until a segment whose flags include all
  of ``LETTERS`` (``""`` matches any); fail if ``TIMEOUT`` seconds pass.
- ``["ack", {"window": W, "ack": "all" | "data"}]``: an ACK; ``"data"``
  acknowledges the data but not a FIN received after it.
- ``["data", TEXT, {"window": W}]``, ``["fin", {"ack": "all" | "data"}]``, ``["rst"]``
  (RST at SND.NXT, the exact sequence number RFC 5961 §3.2 accepts).
- ``["answer_probes", COUNT, TIMEOUT, WINDOW]``: answer ``COUNT`` zero-window probes
  (an ACK one below RCV.NXT, no data) with an ACK advertising ``WINDOW``.

It prints one JSON object: the server's ISN and every segment received from
the server (time, flags, sequence and acknowledgment numbers relative to the
ISNs, length, window).
"""

from __future__ import annotations

import argparse
import json
import random
import select
import socket
import struct
import sys
import time
from typing import Any

import rawframes

PACKET_OUTGOING = 4


class Peer:
    def __init__(self, sport: int, server: str, port: int, address: str) -> None:
        self.sport, self.server, self.port, self.address = sport, server, port, address
        self.out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.out.bind(("lo", 0))
        self.inp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(rawframes.ETH_P_IP))
        self.inp.bind(("lo", rawframes.ETH_P_IP))
        self.iss = random.getrandbits(32)
        self.snd_nxt = self.iss
        self.server_isn: int | None = None
        self.rcv_nxt = 0
        self.fin_received_at: int | None = None
        self.received: list[dict[str, Any]] = []
        self.started = time.monotonic()

    # --- sending ---------------------------------------------------------------------

    def send(self, flags: str, payload: bytes = b"", *, window: int = 65535, ack: int | None = None) -> None:
        value = rawframes.flags_value(flags)
        options = rawframes.tcp_option_mss(1460) if "S" in flags else b""
        frame = rawframes.ipv4_tcp(
            self.address, self.server, self.sport, self.port, seq=self.snd_nxt,
            ack=(self.rcv_nxt if ack is None else ack) if "A" in flags else 0,
            flags=value, window=window, options=options, payload=payload,
        )  # fmt: skip
        self.out.send(frame)
        self.snd_nxt = (self.snd_nxt + len(payload) + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF

    # --- receiving -------------------------------------------------------------------

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next segment from the server to this peer, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.inp], [], [], remaining)[0]:
                return None
            frame, address = self.inp.recvfrom(65536)
            if address[2] == PACKET_OUTGOING:
                continue
            segment = self.parse(frame[14:])
            if segment is not None:
                return segment

    def parse(self, packet: bytes) -> dict[str, Any] | None:
        if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != rawframes.IPPROTO_TCP:
            return None
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        src = socket.inet_ntoa(packet[12:16])
        tcp = packet[ihl:total]
        sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", tcp)
        if src != self.server or sport != self.port or dport != self.sport:
            return None
        flags = offset_flags & 0x1FF
        payload = tcp[(offset_flags >> 12) * 4 :]
        letters = rawframes.flags_letters(flags)
        if "S" in letters:
            self.server_isn = seq
            self.rcv_nxt = (seq + 1) & 0xFFFFFFFF
        if payload and seq == self.rcv_nxt:
            self.rcv_nxt = (self.rcv_nxt + len(payload)) & 0xFFFFFFFF
        if "F" in letters and (seq + len(payload)) & 0xFFFFFFFF == self.rcv_nxt:
            self.fin_received_at = self.rcv_nxt
            self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
        isn = self.server_isn if self.server_isn is not None else seq
        record = {
            "t": time.monotonic() - self.started,
            "flags": letters,
            "seq": (seq - isn) & 0xFFFFFFFF,
            "seq_abs": seq,
            "ack": (ack - self.iss) & 0xFFFFFFFF if "A" in letters else None,
            "len": len(payload),
            "window": window,
            "payload": payload.decode("latin-1"),
        }
        self.received.append(record)
        return record

    def expect(self, letters: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            segment = self.receive(deadline - time.monotonic())
            if segment is None:
                raise TimeoutError(f"no segment with flags {letters!r} within {timeout} s")
            if all(letter in segment["flags"] for letter in letters):
                return segment

    def expect_probe(self, timeout: float) -> dict[str, Any]:
        """A zero-window probe: ``<SEQ=SND.UNA-1><CTL=ACK>`` with no data (what l4kit and
        Linux send; RFC 9293 §3.8.6.1 allows one new octet instead, which this also takes)."""
        deadline = time.monotonic() + timeout
        while True:
            segment = self.expect("A", deadline - time.monotonic())
            old = segment["seq_abs"] == (self.rcv_nxt - 1) & 0xFFFFFFFF and segment["len"] == 0
            if old or (segment["seq_abs"] == self.rcv_nxt and segment["len"] == 1):
                segment["probe"] = True
                return segment

    # --- the plan --------------------------------------------------------------------

    def run(self, plan: list[list[Any]]) -> None:
        for step in plan:
            kind, args = step[0], step[1:]
            options = args[-1] if args and isinstance(args[-1], dict) else {}
            window = int(options.get("window", 65535))
            if kind == "syn":
                self.send("S", window=window)
            elif kind == "expect":
                self.expect(args[0], float(args[1]))
            elif kind == "ack":
                ack = self.rcv_nxt
                if options.get("ack") == "data" and self.fin_received_at is not None:
                    ack = self.fin_received_at
                self.send("A", window=window, ack=ack)
            elif kind == "data":
                self.send("PA", args[0].encode(), window=window)
            elif kind == "fin":
                ack = self.rcv_nxt
                if options.get("ack") == "data" and self.fin_received_at is not None:
                    ack = self.fin_received_at  # our FIN without acknowledging theirs: CLOSING
                self.send("FA", window=window, ack=ack)
            elif kind == "rst":
                self.send("R")
            elif kind == "answer_probes":
                count, timeout, answer_window = int(args[0]), float(args[1]), int(args[2])
                for _ in range(count):
                    self.expect_probe(timeout)
                    self.send("A", window=answer_window)
            else:
                raise ValueError(f"unknown step {step!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description="a scripted TCP peer (see the module docstring)")
    parser.add_argument("--sport", type=int, required=True)
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--address", default="127.0.0.1", help="the peer's own address")
    parser.add_argument("--plan", required=True)
    args = parser.parse_args()
    peer = Peer(args.sport, args.server, args.port, args.address)
    error = None
    try:
        peer.run(json.loads(args.plan))
    except TimeoutError as exc:
        error = str(exc)
    print(json.dumps({"server_isn": peer.server_isn, "received": peer.received, "error": error}))
    sys.exit(1 if error else 0)


if __name__ == "__main__":
    main()

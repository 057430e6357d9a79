"""What the responder's packet thread costs per connection with no I/O at all, phase by phase.

The responder benchmark (``bench_responder``) measures whole connections through
the kernel, the sniffer and the wire. This one feeds the frames of one
``echo toppage | nc`` connection (SYN, ACK, request, FIN, last ACK: the five
frames a kernel client sends) straight into the code ``l4kit respond --codec
fast`` runs on its packet thread, with a clock that advances 1 ms per
connection and a sender that keeps the frames in a list, and times:

* ``decode``: ``FastCodec.decode`` of the five frames;
* ``core``: ``Listener.receive`` of the five segments (the TCP state machine, the
  string server, the events; a fresh 4-tuple per connection, as from a client);
* ``packet thread``: ``Responder.on_sniffed`` of the five frames: decode, core,
  encoding and "sending" the four replies, the bookkeeping around them.

Only the calls under test are timed (the client's frames are built between
them, untimed). Both builds, each in its own process: compiled by mypyc (what
``pip install .`` gives) and pure Python. What it is for: the sequential rate of
a server is one connection's work end to end, so this is the part of the
responder's time per connection that is l4kit's own, next to what the sniffer
and the kernel add (``bench_responder``'s floor and kernel servers).

The frames are those of a Linux client by default: the SYN offers MSS, SACK,
timestamps and window scale (Linux's layout: MSS, SACK-permitted, Timestamps,
NOP, window scale), every later segment carries NOP, NOP, Timestamps echoing the
server's latest TSval, and windows are scaled. ``--bare`` sends the same
conversation with no TCP options at all (the core then runs without window
scale, timestamps and SACK).

Run: ``python benchmarks/responder_phases.py [--connections N] [--bare]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

PHASES = ("decode", "core", "packet thread")


def measure(connections: int, bare: bool) -> None:
    """In the build PYTHONPATH chose: print ``NAME<TAB>SECONDS`` per phase, best of three.
    ``bare``: the client's frames carry no TCP options."""
    from l4kit.codecs.fast import FastCodec
    from l4kit.core.listener import Listener, ListenerConfig
    from l4kit.live.apps import load_app_factory
    from l4kit.live.capture import ETHERNET_HEADER_LEN
    from l4kit.live.packet_thread import Responder
    from l4kit.live.ring import CapturedFrame
    from l4kit.live.sender import frame_encoder
    from l4kit.wire.flags import TcpFlags
    from l4kit.wire.options import (
        MaxSegmentSize,
        NoOperation,
        SackPermitted,
        TcpOption,
        Timestamps,
        WindowScale,
    )
    from l4kit.wire.segment import Endpoint, Segment
    from l4kit.wire.seqnum import SeqNum

    mac = bytes(6)
    client = FastCodec()
    syn, ack, psh, fin = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.PSH, TcpFlags.FIN
    request = b"toppage\n"

    class KeptFrames:
        """The sender: keeps what the responder sends (its ``send`` is all the packet thread calls)."""

        def __init__(self) -> None:
            self.frames: list[bytes] = []

        def send(self, frame: bytes) -> bool:
            self.frames.append(frame)
            return True

    def listener() -> Listener:
        config = ListenerConfig(local=Endpoint("127.0.0.1", 8888), secret=os.urandom(32))
        return Listener(config, load_app_factory(None, False))

    # A Linux client's options: its SYN offers all four (window 65495 unscaled), every later
    # segment carries NOP, NOP, Timestamps and a window scaled by 2**7.
    nop = NoOperation()

    def options_of(flags: TcpFlags, tsval: int, tsecr: int) -> tuple[tuple[TcpOption, ...], int]:
        if bare:
            return (), 65495
        if flags & syn:
            return (MaxSegmentSize(65495), SackPermitted(), Timestamps(tsval, 0), nop, WindowScale(7)), 65495
        return (nop, nop, Timestamps(tsval, tsecr)), 512

    def frame(
        port: int,
        seq: int,
        ack_no: SeqNum,
        flags: TcpFlags,
        payload: bytes = b"",
        *,
        tsval: int,
        tsecr: int = 0,
    ) -> bytes:
        options, window = options_of(flags, tsval, tsecr)
        segment = Segment(
            src="127.0.0.1", dst="127.0.0.1", sport=port, dport=8888, seq=SeqNum(seq), ack=ack_no,
            flags=flags, window=window, options=options, payload=payload,
        )  # fmt: skip
        return client.encode_frame(segment, mac, mac)

    def echoed(replies: list[Segment]) -> int:
        """The TSecr a client sends: the latest TSval it received (0 before any)."""
        for reply in reversed(replies):
            for option in reply.options:
                if isinstance(option, Timestamps):
                    return option.tsval
        return 0

    def conversation(port: int, prepare: Any, deliver: Any, replies_of: Any) -> float:
        """One connection's five client frames: each goes through ``prepare`` (untimed),
        then ``deliver`` (timed), whose result ``replies_of`` turns into the server's
        segments (untimed). Returns the seconds spent in ``deliver``."""
        spent = 0.0
        isn = 1000
        replies: list[Segment] = []

        def send(data: bytes) -> None:
            nonlocal spent, replies
            item = prepare(data)
            start = time.perf_counter()
            out = deliver(item)
            spent += time.perf_counter() - start
            replies = replies_of(out)

        tsval = port  # the client's clock, one tick a segment
        send(frame(port, isn, SeqNum(0), syn, tsval=tsval))
        server_next, tsecr = replies[-1].seq + 1, echoed(replies)
        send(frame(port, isn + 1, server_next, ack, tsval=tsval + 1, tsecr=tsecr))
        send(frame(port, isn + 1, server_next, ack | psh, request, tsval=tsval + 2, tsecr=tsecr))
        tsecr = echoed(replies) or tsecr
        send(frame(port, isn + 1 + len(request), server_next, ack | fin, tsval=tsval + 3, tsecr=tsecr))
        last, tsecr = replies[-1], echoed(replies) or tsecr
        send(frame(port, isn + 2 + len(request), last.seq + last.seg_len, ack, tsval=tsval + 4, tsecr=tsecr))
        return spent

    def decode_phase() -> float:
        # The five frames of one connection, decoded as the responder decodes them.
        frames = [
            frame(40000, 1000, SeqNum(0), syn, tsval=1),
            frame(40000, 1001, SeqNum(5001), ack, tsval=2, tsecr=7),
            frame(40000, 1001, SeqNum(5001), ack | psh, request, tsval=3, tsecr=7),
            frame(40000, 1009, SeqNum(5001), ack | fin, tsval=4, tsecr=8),
            frame(40000, 1010, SeqNum(5014), ack, tsval=5, tsecr=9),
        ]
        decoder = FastCodec()
        start = time.perf_counter()
        for _ in range(connections):
            for data in frames:
                decoder.decode(data[ETHERNET_HEADER_LEN:])
        return time.perf_counter() - start

    def core_phase() -> float:
        core, decoder, clock = listener(), FastCodec(), [1000.0]
        total = 0.0
        for i in range(connections):
            total += conversation(
                10000 + i % 50000,
                lambda data: decoder.decode(data[ETHERNET_HEADER_LEN:]),
                lambda segment: core.receive(segment, clock[0]),
                lambda out: out.segments,
            )
            clock[0] += 0.001
        return total

    def packet_thread_phase() -> float:
        sender = KeptFrames()
        clock = [1000.0]
        responder = Responder(
            listener(), mac=mac, encode=frame_encoder("fast"), sender=sender,
            clock=lambda: clock[0],
        )  # fmt: skip

        def replies_of(_: None) -> list[Segment]:
            replies = [client.decode(sent[ETHERNET_HEADER_LEN:]) for sent in sender.frames]
            sender.frames.clear()
            return replies

        total = 0.0
        for i in range(connections):
            total += conversation(
                10000 + i % 50000,
                lambda data: CapturedFrame(data, 0.0, False, True),
                responder.on_sniffed,
                replies_of,
            )
            clock[0] += 0.001
        return total

    best = [min(phase() for _ in range(3)) for phase in (decode_phase, core_phase, packet_thread_phase)]
    for name, seconds in zip(PHASES, best, strict=True):
        print(f"{name}\t{seconds:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=20_000)
    ap.add_argument(
        "--bare", action="store_true", help="client frames without TCP options (default: a Linux client's)"
    )
    ap.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the child's side
    args = ap.parse_args()
    if args.measure:
        measure(args.measure, args.bare)
        return

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_replay

    extra = ["--bare"] if args.bare else []
    results = bench_replay.phases_in_each_build(__file__, str(args.connections), *extra)
    n = args.connections
    client = "no TCP options" if args.bare else "a Linux client's options"
    print(f"{n} connections of 5 client frames ({client}; 4 replies each), no I/O")
    print("µs per connection, best of 3")
    print(f"{'phase':<16} {'compiled':>9} {'pure':>9}")
    for name in PHASES:
        c, p = results["compiled"][name], results["pure"][name]
        print(f"{name:<16} {c / n * 1e6:>9.1f} {p / n * 1e6:>9.1f}")


if __name__ == "__main__":
    main()

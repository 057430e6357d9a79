"""``--through-responder``: what l4kit's own responder would have answered.

For each connection, the client's captured segments are fed, in capture order
and at their capture times, into a fresh :class:`~l4kit.core.listener.Listener`
running the string server (the same core and application ``l4kit respond``
runs), and its replies are compared with the server's captured segments.

Three choices make the comparison meaningful:

* the responder's ISN is the captured server's ISN (taken from its SYN-ACK), so
  the client's captured acknowledgments are acceptable to it and sequence
  numbers can be compared directly. A capture of l4kit's own responder then
  replays with no difference at all, which makes a capture file a regression
  test of the responder;
* segments are compared by flags, relative sequence and acknowledgment numbers
  and payload — not by window, options or timing, which differ between any two
  TCP stacks without meaning anything;
* the two lists are aligned with :class:`difflib.SequenceMatcher`, so one extra
  or missing segment is reported as such instead of shifting every later
  comparison.

Timers run too: before each client segment, :meth:`Listener.tick` is called
for every deadline that passed (retransmissions appear as replies, labelled with
what the core said they were: "fast retransmit (3 duplicate ACKs)", "SACK recovery",
"TLP", "retransmission 1 (RTO 1 s)").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from l4kit.checksum import ChecksumStatus
from l4kit.core import Event, Listener, ListenerConfig, RecoveryStep, Routes, make_app_factory
from l4kit.drivers.transitions import SegmentRow, TransitionRecorder
from l4kit.errors import L4kitError, ParseError
from l4kit.replay.liveplay import StreamCollector, play
from l4kit.replay.model import FLAG_LETTERS, preview
from l4kit.wire.flags import ACK_BIT as _ACK
from l4kit.wire.flags import SYN_BIT as _SYN
from l4kit.wire.packet import decode_packet
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import MASK, SeqNum

if TYPE_CHECKING:
    from l4kit.replay.model import ConnectionReport

MAX_SEGMENTS: Final = 10_000  # per connection and direction: the comparison stays bounded
# A pipe answers within the call that sent (no wire, no delay): what has not arrived when
# a socket call returns never will, unless a timer sends it; this is only that margin.
PIPE_TIMEOUT: Final = 0.05


class Collector(Protocol):
    """What the replay engine hands each shown connection's packets to, in capture
    order (``client_packet``/``server_packet`` with the IP packet's bytes), and the
    connection's report when it is finished."""

    def client_packet(self, t: float, frame: int, ip_packet: bytes) -> None: ...

    def server_packet(self, t: float, frame: int, ip_packet: bytes) -> None: ...

    def finish(self, report: ConnectionReport) -> None: ...


@dataclass(frozen=True, slots=True)
class _Seen:
    """A segment reduced to what is compared."""

    flags: int
    seq: int  # relative to the server's ISN (s2c) or the client's (c2s)
    ack: int | None
    payload: bytes

    def text(self) -> str:
        parts = [FLAG_LETTERS[self.flags] or ".", f"seq={self.seq}"]
        if self.ack is not None:
            parts.append(f"ack={self.ack}")
        if self.payload:
            parts.append(f"len={len(self.payload)} {preview(self.payload[:33], len(self.payload))!r}")
        return " ".join(parts)


_RECOVERY_WHYS: Final = tuple(step.value for step in RecoveryStep)


def _label(row: SegmentRow) -> str:
    """The responder's states around a reply, and, for a step of loss recovery or any
    retransmission, what the core said it was ("fast retransmit (3 duplicate ACKs)",
    "SACK recovery", "TLP", "retransmission 1 (RTO 1 s)"), as the live tables say it."""
    label = f"{row.before} → {row.after}" if row.before is not row.after else str(row.after)
    if row.why and (row.retransmission or row.why.startswith(_RECOVERY_WHYS)):
        label += f"; {row.why}"
    return label


class ThroughResponder:
    """Collects one connection's segments, then replays its client side into the core."""

    __slots__ = (
        "client",
        "client_segments",
        "routes",
        "server",
        "server_isn",
        "server_segments",
        "stream",
        "truncated",
    )

    def __init__(self, routes: Routes, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.routes = routes
        self.client = client
        self.server = server
        self.client_segments: list[tuple[float, int, Segment]] = []  # (time, frame, segment)
        self.server_segments: list[tuple[int, int, int, int, bytes]] = []  # (frame, flags, seq, ack, payload)
        self.server_isn: int | None = None
        self.truncated = False
        # The same packets cut into turns, for the liveplay run through the core.
        self.stream = StreamCollector(0, client, server)

    def client_packet(self, t: float, frame: int, ip_packet: bytes) -> None:
        """A captured client-to-server packet (decoded again in full: options matter)."""
        self.stream.client_packet(t, frame, ip_packet)
        if len(self.client_segments) >= MAX_SEGMENTS:
            self.truncated = True
            return
        try:
            segment = decode_packet(ip_packet)
        except ParseError:
            return  # not a segment the responder would ever see
        self.client_segments.append((t, frame, segment))

    def server_packet(self, t: float, frame: int, ip_packet: bytes) -> None:
        """A captured server-to-client packet (only what is compared is kept)."""
        self.stream.server_packet(t, frame, ip_packet)
        try:
            segment = decode_packet(ip_packet)
        except ParseError:
            return
        flags, seq, ack, payload = int(segment.flags), segment.seq.value, segment.ack.value, segment.payload
        if flags & _SYN and flags & _ACK and self.server_isn is None:
            self.server_isn = seq
        if len(self.server_segments) >= MAX_SEGMENTS:
            self.truncated = True
            return
        self.server_segments.append((frame, flags, seq, ack, payload))

    # ------------------------------------------------------------------ replay

    def _client_isn(self) -> int:
        for _, _, seg in self.client_segments:
            if seg.flags & _SYN:
                return seg.seq.value
        return (self.client_segments[0][2].seq.value - 1) & MASK if self.client_segments else 0

    def replies(self) -> list[tuple[int, SegmentRow]]:
        """What the responder sends, each with the frame of the client segment (or
        timer) that made it send it, and the responder's states around it (the one
        rule of :class:`~l4kit.drivers.transitions.TransitionRecorder`)."""
        isn = SeqNum(self.server_isn if self.server_isn is not None else 0)
        config = ListenerConfig(local=Endpoint(*self.server), secret=b"l4kit replay --through-responder")

        def fixed_isn(key: FourTuple, now: float) -> SeqNum:
            return isn

        listener = Listener(config, make_app_factory(self.routes, keep_open=False), isn=fixed_isn)
        recorder = TransitionRecorder()

        def sent(events: list[Event]) -> list[SegmentRow]:
            return [row for row in recorder.feed_all(events) if not row.received]

        out: list[tuple[int, SegmentRow]] = []
        last_frame = 0
        for t, frame, segment in self.client_segments:
            due = listener.poll_at()
            while due is not None and due <= t:
                out += [(last_frame, row) for row in sent(listener.tick(due).events)]
                nxt = listener.poll_at()
                if nxt is not None and nxt <= due:
                    break  # a timer that does not move forward: stop rather than spin
                due = nxt
            if segment.checksum is ChecksumStatus.BAD:
                last_frame = frame
                continue
            out += [(frame, row) for row in sent(listener.receive(segment, t).events)]
            last_frame = frame
        return out

    def finish(self, report: ConnectionReport) -> None:
        report.differences = self.differences()
        report.liveplay = self.liveplay(report.id)

    def liveplay(self, cid: int) -> dict[str, Any]:
        """The client's turns played against the responder's core through a sans-IO pipe,
        by liveplay's own code (:func:`l4kit.replay.liveplay.play`): sent and received
        octets against the capture's, the first difference, how it ended."""
        from l4kit.drivers.pipe import PipeClient

        self.stream.finish()
        captured = self.stream.captured
        captured.id = cid
        config = ListenerConfig(local=Endpoint(*self.server), secret=b"l4kit replay --through-responder")
        listener = Listener(config, make_app_factory(self.routes, keep_open=False))
        with PipeClient(listener) as pipe:
            result = play(captured, pipe, self.server[0], self.server[1], timeout=PIPE_TIMEOUT)
        return result.outcome()

    def differences(self) -> list[str]:
        """Where the responder's replies differ from the captured server's (empty: none)."""
        try:
            replies = self.replies()
        except L4kitError as exc:
            return [f"the responder could not be run: {exc}"]
        server_base = self.server_isn if self.server_isn is not None else 0
        client_base = self._client_isn()

        def seen(flags: int, seq: int, ack: int, payload: bytes) -> _Seen:
            return _Seen(
                flags & 0x1FF,
                (seq - server_base) & MASK,
                ((ack - client_base) & MASK) if flags & _ACK else None,
                payload,
            )

        captured = [seen(f, s, a, p) for _, f, s, a, p in self.server_segments]
        produced = [
            seen(int(r.segment.flags), r.segment.seq.value, r.segment.ack.value, r.segment.payload)
            for _, r in replies
        ]
        states = [_label(r) for _, r in replies]
        frames = [frame for frame, *_ in self.server_segments]
        causes = [frame for frame, _ in replies]

        def missing(i: int) -> str:
            return f"frame {frames[i]}: server sent {captured[i].text()}; the responder does not"

        def extra(j: int) -> str:
            return (
                f"after frame {causes[j]}: the responder sends {produced[j].text()} ({states[j]}); "
                "the server did not"
            )

        lines: list[str] = []
        matcher = difflib.SequenceMatcher(a=captured, b=produced, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "replace":
                for k in range(max(a1 - a0, b1 - b0)):
                    i, j = a0 + k, b0 + k
                    if i < a1 and j < b1:
                        lines.append(
                            f"frame {frames[i]}: server sent {captured[i].text()}; "
                            f"the responder sends {produced[j].text()} ({states[j]})"
                        )
                    else:
                        lines.append(missing(i) if i < a1 else extra(j))
            elif op == "delete":
                lines += [missing(i) for i in range(a0, a1)]
            elif op == "insert":
                lines += [extra(j) for j in range(b0, b1)]
        if self.truncated:
            lines.append(f"only the first {MAX_SEGMENTS} segments of each direction were compared")
        return lines

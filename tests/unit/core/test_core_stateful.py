"""Hypothesis stateful test: random clients against the listener.

A few clients send valid and invalid segments (any flags, sequence and
acknowledgment numbers near or far from the right ones), and the network loses,
duplicates and reorders them; time jumps by small and large steps. After every
step:

* nothing raised, and nothing was reported as an internal error;
* every octet delivered to an application is the right octet for its place in the
  stream, so nothing is delivered twice, out of order, or from the wrong
  incarnation: every client segment carries ``byte_at(seq)`` for each sequence
  number it covers, whoever sent it and whatever the connection thinks of it, so
  the n-th octet delivered on a connection with IRS ``irs`` must be ``byte_at(irs + 1 + n)``;
* SND.UNA <= SND.NXT, and the table, half-open count, TIME-WAIT records and each
  out-of-order buffer stay within their configured bounds (``check_invariants``);
* after ``tick(now)``, no timer is left due at ``now``.
"""

from __future__ import annotations

from typing import Any

from core_trace import ISS, ReplyApp, Trace, check_invariants
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from l4kit.core import AppReply, ConnectionClosed, DataReceived, State, StateChanged
from l4kit.wire import Endpoint, FourTuple, MaxSegmentSize, Segment, TcpFlags

CLIENTS = [Endpoint("10.0.0.2", 40000 + i) for i in range(3)]
CLIENT_ISN = 1000


def byte_at(seq: int) -> int:
    """The octet every client sends at sequence number ``seq`` (a fixed, non-periodic-looking pattern)."""
    return ((seq % 2**32) * 2654435761 >> 11) & 0xFF


def stream(seq: int, length: int) -> bytes:
    return bytes(byte_at(seq + i) for i in range(length))


class Talker(ReplyApp):
    """Replies to some data and closes after a while, to exercise both directions."""

    def __init__(self) -> None:
        self.received = 0

    def on_data(self, data: bytes) -> AppReply:
        self.received += len(data)
        return AppReply(b"r" * (len(data) % 300), close=self.received >= 60)

    def on_peer_closed(self) -> AppReply:
        return AppReply(b"bye", close=True)


FLAG_SETS = ["S", "A", "PA", "FA", "R", "RA", "SA", "", "F", "FPA", "SF", "SR", "U", "A"]
SEQ_SHIFTS = [0, 0, 0, 1, -1, 5, 60, 127, 128, 500, -500, 70000, 2**31, 2**32 - 3]


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.trace = Trace(
            app_factory=lambda key: Talker(),
            max_connections=3,
            max_half_open=2,
            max_time_wait=2,
            max_out_of_order_segments=3,
            max_out_of_order_bytes=100,
            window=128,
            challenge_acks_per_second=3,
            syn_cookie_period=8.0,
            idle_timeout=20.0,
            time_wait_timeout=5.0,
            fin_wait_2_timeout=10.0,
            max_retransmissions=3,
            syn_ack_retries=2,
        )
        self.now = 0.0
        self.network: list[Segment] = []
        # per client: the sequence number it is at, and what it learned from the server
        self.client_next = {c: CLIENT_ISN + 1 for c in CLIENTS}
        self.server_next: dict[Endpoint, int] = {c: ISS + 1 for c in CLIENTS}
        # per connection: IRS and octets delivered so far
        self.delivered: dict[FourTuple, tuple[int, int]] = {}

    # ------------------------------------------------------------------ client actions

    @rule(
        client=st.sampled_from(CLIENTS),
        shift=st.sampled_from([0, 0, 100, 5000, 2**20]),
        mss=st.sampled_from([None, 1, 88, 1460]),
    )
    def syn(self, client: Endpoint, shift: int, mss: int | None) -> None:
        seq = CLIENT_ISN + shift
        self.client_next[client] = seq + 1
        options = () if mss is None else (MaxSegmentSize(mss),)
        self.network.append(self.trace.segment("S", seq=seq, client=client, options=options))

    @rule(
        client=st.sampled_from(CLIENTS),
        offset=st.integers(-20, 200),
        length=st.integers(0, 150),
        fin=st.booleans(),
        window=st.sampled_from([0, 1, 64, 65535]),
    )
    def data(self, client: Endpoint, offset: int, length: int, fin: bool, window: int) -> None:
        seq = self.client_next[client] + offset
        flags = "FPA" if fin else ("PA" if length else "A")
        self.network.append(
            self.trace.segment(
                flags,
                seq=seq,
                ack=self.server_next[client],
                payload=stream(seq, length),
                window=window,
                client=client,
            )
        )

    @rule(
        client=st.sampled_from(CLIENTS),
        flags=st.sampled_from(FLAG_SETS),
        seq_shift=st.sampled_from(SEQ_SHIFTS),
        ack_shift=st.sampled_from(SEQ_SHIFTS),
        length=st.sampled_from([0, 0, 1, 10]),
    )
    def anything(self, client: Endpoint, flags: str, seq_shift: int, ack_shift: int, length: int) -> None:
        seq = (self.client_next[client] + seq_shift) % 2**32
        ack = (self.server_next[client] + ack_shift) % 2**32
        self.network.append(
            self.trace.segment(flags, seq=seq, ack=ack, payload=stream(seq, length), client=client)
        )

    @rule(client=st.sampled_from(CLIENTS), mss=st.sampled_from([None, 100, 1460]))
    def handshake(self, client: Endpoint, mss: int | None) -> None:
        """SYN and its ACK straight through (random segments alone rarely get this far)."""
        self.client_next[client] += 70_000
        seq = self.client_next[client]
        options = () if mss is None else (MaxSegmentSize(mss),)
        self._feed(self.trace.segment("S", seq=seq, client=client, options=options))
        self._feed(self.trace.segment("A", seq=seq + 1, ack=self.server_next[client], client=client))

    @rule(
        client=st.sampled_from(CLIENTS),
        length=st.integers(0, 120),
        fin=st.booleans(),
        window=st.sampled_from([0, 64, 65535, 65535]),
        reply=st.booleans(),
    )
    def in_order(self, client: Endpoint, length: int, fin: bool, window: int, reply: bool) -> None:
        """The next octets of the client's stream, acknowledging all the server sent."""
        seq = self.client_next[client]
        flags = ("F" if fin else "") + ("PA" if length else "A")
        segment = self.trace.segment(
            flags,
            seq=seq,
            ack=self.server_next[client],
            payload=stream(seq, length),
            window=window,
            client=client,
        )
        if reply:
            self._feed(segment)
        else:
            self.network.append(segment)

    # ------------------------------------------------------------------ the network

    @precondition(lambda self: self.network)
    @rule(index=st.integers(0, 7), duplicate=st.booleans())
    def deliver(self, index: int, duplicate: bool) -> None:
        segment = self.network[index % len(self.network)]
        if not duplicate:
            self.network.remove(segment)
        self._feed(segment)

    @precondition(lambda self: self.network)
    @rule(index=st.integers(0, 7))
    def lose(self, index: int) -> None:
        del self.network[index % len(self.network)]

    @rule(step=st.sampled_from([0.001, 0.2, 1.0, 3.0, 9.0, 30.0]))
    def time_passes(self, step: float) -> None:
        self.now += step
        due = self.trace.listener.poll_at()
        out = self.trace.tick(self.now)
        self._observe(out.events, out.segments)
        after = self.trace.listener.poll_at()
        assert after is None or after > self.now, f"a timer is still due: {after} <= {self.now} (was {due})"

    def _feed(self, segment: Segment) -> None:
        out = self.trace.deliver(self.now, segment)
        self._observe(out.events, out.segments)

    def _observe(self, events: list[Any], sent: list[Segment]) -> None:
        for event in events:
            if (
                isinstance(event, StateChanged)
                and event.before is State.LISTEN
                and event.after is not State.LISTEN
                and event.cause is not None
            ):
                # A new connection: its IRS is the SYN's sequence number (SEG.SEQ - 1 of a cookie ACK).
                seg = event.cause
                irs = seg.seq.value if seg.flags & TcpFlags.SYN else (seg.seq - 1).value
                assert event.key not in self.delivered
                self.delivered[event.key] = (irs, 0)
            elif isinstance(event, DataReceived):
                irs, count = self.delivered[event.key]
                expected = stream(irs + 1 + count, len(event.data))
                assert event.data == expected, "data delivered twice, out of order, or from elsewhere"
                self.delivered[event.key] = (irs, count + len(event.data))
            elif isinstance(event, ConnectionClosed):
                self.delivered.pop(event.key, None)
        for segment in sent:
            client = Endpoint(segment.dst, segment.dport)
            if client in self.server_next and not segment.flags & TcpFlags.RST:
                self.server_next[client] = (segment.seq + segment.seg_len).value
                if segment.flags & TcpFlags.ACK:
                    self.client_next[client] = segment.ack.value
        self.trace.pending.clear()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def within_bounds(self) -> None:
        check_invariants(self.trace.listener, self.trace.last, None)
        listener = self.trace.listener
        for info in listener.connections():
            assert info.key in self.delivered
        assert len(self.network) < 10_000


CoreMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoreStateful = CoreMachine.TestCase

"""A packet-trace harness for the core, in the style of smoltcp's socket tests.

A test reads like the trace it checks::

    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA", seq=ISS, ack=1001)
    t.send(0.1, "A", seq=1001, ack=ISS + 1)
    t.recv_nothing()

``send`` feeds one client segment to the listener at time ``t``; what the listener
sends back queues up, and ``recv`` pops the next one and checks the fields it is
given (omitted fields are not checked). ``tick`` runs timers. Every call also
checks the invariants that must hold after *any* input, so each scenario test
checks them too:

* every segment in ``Output.segments`` appears, in order, as a ``SegmentSent`` event;
* every ``StateChanged`` is a change that ``TRANSITIONS`` allows;
* a RST is never answered with a RST;
* for every connection in the table, SND.UNA <= SND.NXT, and the out-of-order
  buffer is within its bounds; the table, half-open count and TIME-WAIT records
  are within theirs;
* nothing was reported as an internal error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from l4kit.checksum import ChecksumStatus
from l4kit.core import (
    TRANSITIONS,
    Application,
    AppReply,
    Connection,
    DataReceived,
    DropReason,
    Event,
    Listener,
    ListenerConfig,
    Output,
    SegmentDropped,
    SegmentSent,
    State,
    StateChanged,
    make_app_factory,
)
from l4kit.wire import Endpoint, FourTuple, Segment, SeqNum, TcpFlags, TcpOption

SERVER = Endpoint("10.0.0.1", 8888)
CLIENT = Endpoint("10.0.0.2", 40000)
ISS = 5000  # the server's ISN in every trace (injected, as smoltcp fixes its ISN)
SECRET = b"trace-secret"


def key_of(client: Endpoint = CLIENT, server: Endpoint = SERVER) -> FourTuple:
    return FourTuple(server, client)


class ReplyApp:
    """An application written as answers (``on_data`` and ``on_peer_closed`` return an
    :class:`AppReply`); ``on_readable`` makes the socket calls, as the string server does."""

    def on_data(self, data: bytes) -> AppReply:
        return AppReply()

    def on_peer_closed(self) -> AppReply:
        return AppReply(close=True)

    def on_readable(self, conn: Connection) -> None:
        while conn.readable:
            data = conn.recv(1 << 20)
            reply = self.on_data(data) if data else self.on_peer_closed()
            if reply.data:
                self.took(conn.send(reply.data))
            if reply.close:
                conn.close()
                return
            if not data:
                return

    def took(self, octets: int) -> None:
        """How much of a reply ``send`` took."""


class Recorder(ReplyApp):
    """An application that records what it gets and answers as told (``reply`` maps what
    arrived to an :class:`AppReply`)."""

    def __init__(
        self, reply: Callable[[bytes], AppReply] | None = None, close_on_peer_close: bool = True
    ) -> None:
        self.received = bytearray()
        self.sent = 0  # octets send() took
        self.peer_closed = 0
        self._reply = reply
        self._close_on_peer_close = close_on_peer_close

    def on_data(self, data: bytes) -> AppReply:
        self.received += data
        return self._reply(data) if self._reply is not None else AppReply()

    def on_peer_closed(self) -> AppReply:
        self.peer_closed += 1
        return AppReply(close=self._close_on_peer_close)

    def took(self, octets: int) -> None:
        self.sent += octets


class Trace:
    def __init__(
        self,
        *,
        app_factory: Callable[[FourTuple], Application] | None = None,
        isn: int | None = ISS,
        keep_open: bool = False,
        **config: Any,
    ) -> None:
        config.setdefault("secret", SECRET)
        self.config = ListenerConfig(local=config.pop("local", SERVER), **config)
        factory = app_factory if app_factory is not None else make_app_factory(keep_open=keep_open)
        isn_source = (lambda key, now: SeqNum(isn)) if isn is not None else None
        self.listener = Listener(self.config, factory, isn=isn_source)
        self.pending: deque[Segment] = deque()
        self.events: list[Event] = []
        self.last = Output()
        self.now = 0.0
        self.allow_internal_errors = False

    # ------------------------------------------------------------------ input

    def segment(
        self,
        flags: str,
        *,
        seq: int,
        ack: int = 0,
        payload: bytes = b"",
        window: int = 65535,
        options: Sequence[TcpOption] = (),
        checksum: ChecksumStatus = ChecksumStatus.OK,
        client: Endpoint = CLIENT,
        server: Endpoint = SERVER,
    ) -> Segment:
        return Segment(
            src=client.addr,
            dst=server.addr,
            sport=client.port,
            dport=server.port,
            seq=SeqNum(seq),
            ack=SeqNum(ack),
            flags=TcpFlags.parse(flags),
            window=window,
            options=tuple(options),
            payload=payload,
            checksum=checksum,
        )

    def send(self, t: float, flags: str, *, seq: int, **fields: Any) -> Output:
        """The client sends one segment at time ``t``."""
        return self.deliver(t, self.segment(flags, seq=seq, **fields))

    def deliver(self, t: float, segment: Segment) -> Output:
        self.now = t
        out = self.listener.receive(segment, t)
        self._take(out, received=segment)
        return out

    def tick(self, t: float) -> Output:
        self.now = t
        out = self.listener.tick(t)
        self._take(out)
        return out

    def _take(self, out: Output, received: Segment | None = None) -> None:
        self.last = out
        self.events.extend(out.events)
        self.pending.extend(out.segments)
        check_invariants(self.listener, out, received, allow_internal_errors=self.allow_internal_errors)

    # ------------------------------------------------------------------ expectations

    def recv(
        self,
        flags: str,
        *,
        seq: int | None = None,
        ack: int | None = None,
        payload: bytes | None = None,
        window: int | None = None,
    ) -> Segment:
        """Pop the next segment the listener sent and check the given fields."""
        assert self.pending, f"expected a [{flags}] segment, the listener sent nothing"
        got = self.pending.popleft()
        expected = TcpFlags.parse(flags)
        assert got.flags == expected, f"expected [{expected.letters}], got {got}"
        if seq is not None:
            assert got.seq == SeqNum(seq), f"expected seq={seq % 2**32}, got {got}"
        if ack is not None:
            assert got.ack == SeqNum(ack), f"expected ack={ack % 2**32}, got {got}"
        if payload is not None:
            assert got.payload == payload, f"expected payload {payload!r}, got {got.payload!r}"
        if window is not None:
            assert got.window == window, f"expected win={window}, got {got}"
        return got

    def recv_nothing(self) -> None:
        assert not self.pending, f"expected nothing, the listener sent {[str(s) for s in self.pending]}"

    # ------------------------------------------------------------------ looking at events

    def state(self, client: Endpoint = CLIENT) -> State:
        return self.listener.state_of(key_of(client))

    def dropped(self) -> list[DropReason]:
        """Drop reasons in the last output."""
        return [e.reason for e in self.last.events if isinstance(e, SegmentDropped)]

    def of_type(self, kind: type[Any], *, last: bool = False) -> list[Any]:
        return [e for e in (self.last.events if last else self.events) if isinstance(e, kind)]

    def delivered(self, client: Endpoint = CLIENT) -> bytes:
        key = key_of(client)
        return b"".join(e.data for e in self.events if isinstance(e, DataReceived) and e.key == key)

    def handshake(self, t: float = 0.0, *, client_isn: int = 1000, window: int = 65535, **syn: Any) -> None:
        """SYN, SYN-ACK, ACK: the connection is ESTABLISHED at ``t``."""
        client = syn.get("client", CLIENT)
        self.send(t, "S", seq=client_isn, window=window, **syn)
        self.recv("SA", seq=ISS, ack=client_isn + 1)
        self.send(t, "A", seq=client_isn + 1, ack=ISS + 1, window=window, client=client)
        self.recv_nothing()
        assert self.state(client) is State.ESTABLISHED


def check_invariants(
    listener: Listener, out: Output, received: Segment | None, *, allow_internal_errors: bool = False
) -> None:
    sent_events = [e.segment for e in out.events if isinstance(e, SegmentSent)]
    assert sent_events == out.segments, "Output.segments and SegmentSent events disagree"
    for event in out.events:
        if isinstance(event, StateChanged):
            assert event.after in TRANSITIONS[event.before], (
                f"illegal transition {event.before} -> {event.after}"
            )
        if isinstance(event, SegmentDropped):
            assert allow_internal_errors or event.reason is not DropReason.INTERNAL_ERROR, event.detail
    if received is not None and received.flags & TcpFlags.RST:
        assert not any(s.flags & TcpFlags.RST for s in out.segments), "a RST was answered with a RST"
    config = listener.config
    stats = listener.stats
    assert stats.connections_open <= config.max_connections
    assert stats.half_open <= config.max_half_open
    assert stats.time_wait <= config.max_time_wait
    assert allow_internal_errors or stats.internal_errors == 0
    half_open = 0
    for info in listener.connections():
        assert info.snd_una <= info.snd_nxt, f"SND.UNA > SND.NXT in {info}"
        assert info.out_of_order_bytes <= config.max_out_of_order_bytes
        assert info.out_of_order_segments <= config.max_out_of_order_segments
        assert info.send_buffered <= config.max_send_buffer
        half_open += info.state is State.SYN_RECEIVED
    assert half_open == stats.half_open

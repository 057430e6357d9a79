"""Active open and the socket API, as packet traces (RFC 9293 §3.10.7.3, RFC 5961, RFC 6298).

The client side is a :class:`Stack` whose segments the test reads and answers by hand,
or two stacks wired to each other (:class:`Pair`).
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Sequence

import pytest

from l4kit.core import (
    POLLERR,
    POLLHUP,
    POLLOUT,
    SHUT_WR,
    Connection,
    ConnectionReset,
    DropReason,
    Output,
    SegmentDropped,
    Stack,
    StackConfig,
    State,
)
from l4kit.wire import Endpoint, FourTuple, MaxSegmentSize, Segment, SeqNum, TcpFlags

HERE = Endpoint("10.0.0.2", 40000)
THERE = Endpoint("10.0.0.1", 80)
ISS = 7000
PEER_ISS = 300


def client(**config: object) -> Stack:
    config.setdefault("secret", b"k")
    return Stack(StackConfig(**config), isn=lambda key, now: SeqNum(ISS))  # type: ignore[arg-type]


def peer(
    flags: str, seq: int, ack: int = 0, payload: bytes = b"", window: int = 65535, mss: int | None = 1460
) -> Segment:
    options = (MaxSegmentSize(mss),) if mss is not None and "S" in flags else ()
    return Segment(
        src=THERE.addr, dst=HERE.addr, sport=THERE.port, dport=HERE.port, seq=SeqNum(seq), ack=SeqNum(ack),
        flags=TcpFlags.parse(flags), window=window, options=options, payload=payload,
    )  # fmt: skip


def flags_of(out: Output) -> list[str]:
    return [s.flags.letters for s in out.segments]


def connected(stack: Stack) -> Connection:
    conn = stack.connect(HERE, THERE)
    [syn] = stack.flush(0.0).segments
    out = stack.receive(peer("SA", PEER_ISS, ISS + 1), 0.01)
    assert flags_of(out) == ["A"]
    assert syn.seq == SeqNum(ISS)
    return conn


def test_connect_sends_a_syn_with_our_mss_and_establishes_on_the_syn_ack() -> None:
    stack = client(mss=1400, window_scale=False, timestamps=False, sack=False)
    conn = stack.connect(HERE, THERE)
    assert conn.state is State.SYN_SENT and not conn.connected and not conn.poll() & POLLOUT
    out = stack.flush(0.0)
    [syn] = out.segments
    assert (syn.flags.letters, syn.seq, syn.options) == ("S", SeqNum(ISS), (MaxSegmentSize(1400),))
    assert (syn.src, syn.sport, syn.dst, syn.dport) == (HERE.addr, HERE.port, THERE.addr, THERE.port)
    out = stack.receive(peer("SA", PEER_ISS, ISS + 1), 0.05)
    [ack] = out.segments
    assert (ack.flags.letters, ack.seq, ack.ack) == ("A", SeqNum(ISS + 1), SeqNum(PEER_ISS + 1))
    assert conn.state is State.ESTABLISHED and conn.connected and conn.poll() & POLLOUT
    info = conn.info()
    assert info.srtt == pytest.approx(0.05) and info.send_mss == 1400 and not info.passive
    assert conn.send(b"GET /\n") == 6
    [data] = stack.flush().segments
    assert (data.flags.letters, data.seq, data.payload) == ("PA", SeqNum(ISS + 1), b"GET /\n")
    with pytest.raises(BlockingIOError):
        conn.recv()
    stack.receive(peer("PA", PEER_ISS + 1, ISS + 7, b"200 OK\n"), 0.1)
    assert conn.readable and conn.recv() == b"200 OK\n"


def test_a_reset_that_acknowledges_the_syn_is_connection_refused() -> None:
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    out = stack.receive(peer("RA", 0, ISS + 1), 0.01)
    assert out.segments == []  # a RST is never answered
    assert conn.state is State.CLOSED and conn.error == errno.ECONNREFUSED
    assert conn.poll() & POLLERR and conn.poll() & POLLHUP
    [reset] = [e for e in out.events if isinstance(e, ConnectionReset)]
    assert reset.by_peer and reset.why == "connection refused"
    with pytest.raises(ConnectionRefusedError) as info:
        conn.recv()
    assert info.value.errno == errno.ECONNREFUSED
    assert stack.stats.connections_open == 0


@pytest.mark.parametrize(
    ("flags", "ack", "answer"),
    [
        ("R", 0, []),  # no ACK: ignored (RFC 9293 §3.10.7.3, RFC 5961 §3.2)
        ("RA", ISS, []),  # an ACK of something else: ignored
        ("RA", ISS + 2, []),
        ("A", ISS + 5, ["R"]),  # an ACK of something never sent: <SEQ=SEG.ACK><CTL=RST>
        ("SA", ISS + 5, ["R"]),
        ("A", ISS + 1, []),  # neither SYN nor RST: dropped
    ],
)
def test_syn_sent_refuses_what_does_not_acknowledge_the_syn(flags: str, ack: int, answer: list[str]) -> None:
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    out = stack.receive(peer(flags, PEER_ISS, ack), 0.01)
    assert flags_of(out) == answer
    if answer:
        assert out.segments[0].seq == SeqNum(ack)
    assert conn.state is State.SYN_SENT and conn.error == 0
    assert any(isinstance(e, SegmentDropped) for e in out.events)
    stack.receive(peer("SA", PEER_ISS, ISS + 1), 0.02)
    assert conn.state is State.ESTABLISHED  # the real answer still works


def test_syn_is_retransmitted_with_backoff_then_the_connect_times_out() -> None:
    stack = client(syn_retries=3)
    conn = stack.connect(HERE, THERE)
    sent = [(0.0, flags_of(stack.flush(0.0)))]
    while (when := stack.poll_at()) is not None:
        out = stack.tick(when)
        sent.append((when, flags_of(out)))
    # RFC 6298 §5.5: the RTO doubles, from 1 s (§2.1): 1, 3, 7, then give up at 15.
    assert sent == [(0.0, ["S"]), (1.0, ["S"]), (3.0, ["S"]), (7.0, ["S"]), (15.0, [])]
    assert conn.state is State.CLOSED
    with pytest.raises(TimeoutError) as info:
        conn.send(b"x")
    assert info.value.errno == errno.ETIMEDOUT


def test_a_retransmitted_syn_makes_the_first_rto_three_seconds() -> None:
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    stack.tick(1.0)
    stack.receive(peer("SA", PEER_ISS, ISS + 1), 1.2)
    assert conn.connected
    assert conn.info().rto == 3.0  # RFC 6298 §5.7; no RTT sample from the retransmitted SYN (Karn)
    assert conn.info().srtt is None


def test_simultaneous_open() -> None:
    """RFC 9293 §3.5 figure 7: both SYNs cross; each side answers with SYN-ACK."""
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    out = stack.receive(peer("S", PEER_ISS), 0.01)
    [syn_ack] = out.segments
    assert (syn_ack.flags.letters, syn_ack.seq, syn_ack.ack) == ("SA", SeqNum(ISS), SeqNum(PEER_ISS + 1))
    assert conn.state is State.SYN_RECEIVED
    out = stack.receive(peer("SA", PEER_ISS, ISS + 1), 0.02)
    assert out.segments == []
    assert conn.state is State.ESTABLISHED


def test_a_reset_in_syn_received_of_an_active_open_is_connection_refused() -> None:
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    stack.receive(peer("S", PEER_ISS), 0.01)
    stack.receive(peer("R", PEER_ISS + 1), 0.02)
    assert conn.state is State.CLOSED and conn.error == errno.ECONNREFUSED


def test_closing_while_connecting_sends_nothing() -> None:
    stack = client()
    conn = stack.connect(HERE, THERE)
    stack.flush(0.0)
    conn.close()
    out = stack.flush(0.1)
    assert out.segments == [] and conn.state is State.CLOSED
    assert stack.poll_at() is None
    with pytest.raises(OSError) as info:
        conn.recv()
    assert info.value.errno == errno.EBADF


def test_half_close_then_the_peer_finishes() -> None:
    stack = client(idle_timeout=None)
    conn = connected(stack)
    conn.send(b"q")
    conn.shutdown(SHUT_WR)
    assert flags_of(stack.flush(0.02)) == ["PA", "FA"]
    assert conn.state is State.FIN_WAIT_1
    with pytest.raises(BrokenPipeError):
        conn.send(b"more")
    stack.receive(peer("A", PEER_ISS + 1, ISS + 3), 0.03)
    assert conn.state is State.FIN_WAIT_2
    stack.receive(peer("PA", PEER_ISS + 1, ISS + 3, b"answer"), 0.04)  # still readable
    out = stack.receive(peer("FA", PEER_ISS + 7, ISS + 3), 0.05)
    assert flags_of(out) == ["A"] and conn.state is State.TIME_WAIT
    assert conn.recv() == b"answer" and conn.recv() == b""
    assert stack.state_of(FourTuple(HERE, THERE)) is State.TIME_WAIT
    with pytest.raises(OSError) as info:
        stack.connect(HERE, THERE)  # the 4-tuple is in TIME-WAIT
    assert info.value.errno == errno.EADDRINUSE


def test_rfc_6528_isns_differ_by_4_tuple_and_grow_with_time() -> None:
    stack = Stack(StackConfig(secret=b"secret"))
    a = stack.connect(Endpoint(HERE.addr, 1111), THERE)
    b = stack.connect(Endpoint(HERE.addr, 2222), THERE)
    assert a.iss != b.iss
    a.abort()
    later = Stack(StackConfig(secret=b"secret"))
    later.flush(10.0)
    c = later.connect(Endpoint(HERE.addr, 1111), THERE)
    assert c.iss - a.iss == 10 * 250_000  # M, the 4-microsecond timer (RFC 6528 §3)


def test_ephemeral_ports_are_distinct_and_in_range() -> None:
    stack = client(ephemeral_ports=(50000, 50003))
    ports = {stack.connect(Endpoint(HERE.addr, 0), THERE).key.local.port for _ in range(4)}
    assert ports == {50000, 50001, 50002, 50003}
    with pytest.raises(OSError) as info:
        stack.connect(Endpoint(HERE.addr, 0), THERE)
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_bad_calls_are_errno_errors() -> None:
    stack = client()
    with pytest.raises(OSError) as info:
        stack.connect(Endpoint("nonsense", 1), THERE)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        stack.connect(Endpoint("::1", 1), THERE)
    assert info.value.errno == errno.EINVAL
    conn = stack.connect(HERE, THERE)
    with pytest.raises(BlockingIOError):
        conn.send(b"x")  # not connected yet
    stack.listen("10.0.0.2", 80)
    with pytest.raises(OSError) as info:
        stack.listen("10.0.0.2", 80)
    assert info.value.errno == errno.EADDRINUSE


# ----------------------------------------------------------------------------- two stacks


class Pair:
    """A client stack and a server stack, their segments carried at once (or held)."""

    def __init__(self, **config: object) -> None:
        config.setdefault("idle_timeout", None)
        self.client = Stack(StackConfig(secret=b"c", **config))  # type: ignore[arg-type]
        self.server = Stack(StackConfig(secret=b"s", **config))  # type: ignore[arg-type]
        self.now = 0.0
        self.log: list[tuple[str, str]] = []  # (who sent, flags)

    def run(self, *, until: float = 5.0) -> None:
        """Carry segments both ways until nothing moves (timers too, up to ``until``)."""
        queue: deque[tuple[Stack, Segment]] = deque()
        for stack, other in ((self.client, self.server), (self.server, self.client)):
            queue += [(other, s) for s in self._sent(stack, stack.flush(self.now))]
        while True:
            while queue:
                to, segment = queue.popleft()
                self.now += 0.001
                out = to.receive(segment, self.now)
                other = self.server if to is self.client else self.client
                queue += [(other, s) for s in self._sent(to, out)]
            due = [t for t in (self.client.poll_at(), self.server.poll_at()) if t is not None]
            if not due or min(due) > until:
                return
            self.now = max(self.now, min(due))
            for stack, other in ((self.client, self.server), (self.server, self.client)):
                queue += [(other, s) for s in self._sent(stack, stack.tick(self.now))]

    def _sent(self, stack: Stack, out: Output) -> Sequence[Segment]:
        who = "client" if stack is self.client else "server"
        self.log += [(who, s.flags.letters) for s in out.segments]
        return out.segments


def test_two_stacks_connect_exchange_and_close() -> None:
    pair = Pair()
    listening = pair.server.listen(THERE.addr, THERE.port, backlog=4)
    conn = pair.client.connect(HERE, THERE)
    pair.run()
    assert conn.connected and listening.readable
    accepted = listening.accept()
    assert accepted.state is State.ESTABLISHED and accepted.key == FourTuple(THERE, HERE)
    assert pair.log[:3] == [("client", "S"), ("server", "SA"), ("client", "A")]
    conn.send(b"ping\n")
    pair.run()
    assert accepted.recv() == b"ping\n"
    accepted.send(b"pong\n")
    accepted.close()
    pair.run()
    assert conn.recv() == b"pong\n" and conn.recv() == b""
    assert accepted.state is State.FIN_WAIT_2 and conn.state is State.CLOSE_WAIT
    conn.close()
    pair.run()
    assert conn.state is State.CLOSED  # LAST-ACK -> CLOSED
    assert pair.server.state_of(accepted.key) is State.TIME_WAIT  # the active closer waits


def test_a_closed_port_refuses() -> None:
    pair = Pair()
    conn = pair.client.connect(HERE, THERE)
    pair.run()
    assert pair.log == [("client", "S"), ("server", "RA")]
    assert conn.error == errno.ECONNREFUSED


def test_a_full_backlog_drops_the_handshake_ack_until_accept_makes_room() -> None:
    pair = Pair()
    listening = pair.server.listen(THERE.addr, THERE.port, backlog=1)
    first = pair.client.connect(HERE, THERE)
    second = pair.client.connect(Endpoint(HERE.addr, 40001), THERE)
    pair.run(until=0.5)
    assert first.connected and second.connected  # the client cannot tell
    drops = pair.server.stats.drops
    assert drops.get(DropReason.ACCEPT_QUEUE_FULL) == 1
    assert len(listening.queue) == 1
    listening.accept()
    second.send(b"x")  # its ACK completes the handshake now
    pair.run(until=0.5)
    assert listening.accept().recv() == b"x"
    assert pair.server.stats.half_open == 0


def test_unread_data_at_close_is_a_reset() -> None:
    pair = Pair()
    listening = pair.server.listen(THERE.addr, THERE.port)
    conn = pair.client.connect(HERE, THERE)
    pair.run()
    conn.send(b"unread")
    pair.run()
    accepted = listening.accept()
    accepted.close()  # RFC 2525 §2.17, as Linux: the peer must learn that data was lost
    pair.run()
    assert pair.log[-1] == ("server", "RA")
    with pytest.raises(ConnectionResetError):
        conn.recv()

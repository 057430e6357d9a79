"""TIME-WAIT: the responder closes first, so every connection ends here on our side.

The records live outside the connection table (so short connections cannot fill
it), are bounded on their own, answer stragglers, and let a new SYN with a higher
sequence number reopen the 4-tuple (RFC 9293 §3.6.1, RFC 6191).
"""

from __future__ import annotations

from core_trace import ISS, Trace

from l4kit.core import ConnectionClosed, DropReason, SegmentSent, State
from l4kit.wire import Endpoint, SeqNum


def close_one(t: Trace, now: float, client: Endpoint, client_isn: int = 1000) -> None:
    """A whole `echo toppage | nc` exchange ending with us in TIME-WAIT."""
    c = client_isn
    t.send(now, "S", seq=c, client=client)
    iss = t.recv("SA", ack=c + 1).seq.value
    t.send(now, "A", seq=c + 1, ack=iss + 1, client=client)
    t.send(now, "PA", seq=c + 1, ack=iss + 1, payload=b"toppage\n", client=client)
    t.recv("PA", payload=b"hello world\n")
    t.recv("FA", seq=iss + 13)
    t.send(now, "FA", seq=c + 9, ack=iss + 14, client=client)
    t.recv("A", seq=iss + 14, ack=c + 10)
    assert t.state(client) is State.TIME_WAIT


def test_sequential_clients_never_fill_the_connection_table() -> None:
    t = Trace(max_connections=8)
    for i in range(1000):
        close_one(t, i * 0.001, Endpoint("10.0.0.2", 10000 + i))
    stats = t.listener.stats
    assert stats.connections_open == 0
    assert stats.time_wait == 1000
    assert stats.connections_established == 1000
    assert stats.drops_total == 0


def test_time_wait_records_are_bounded_oldest_dropped_first() -> None:
    t = Trace(max_time_wait=4)
    clients = [Endpoint("10.0.0.2", 10000 + i) for i in range(6)]
    for i, client in enumerate(clients):
        close_one(t, i, client)
    assert t.listener.stats.time_wait == 4
    assert t.listener.stats.time_wait_evicted == 2
    assert [t.state(c) for c in clients] == [State.LISTEN] * 2 + [State.TIME_WAIT] * 4
    closed = [e.key.remote for e in t.of_type(ConnectionClosed)]
    assert closed == clients[:2]


def test_retransmitted_fin_is_acked_again_and_restarts_the_timer() -> None:
    t = Trace()
    close_one(t, 0, Endpoint("10.0.0.2", 40000))
    assert t.listener.poll_at() == 60
    t.send(10, "FA", seq=1009, ack=ISS + 14)  # our last ACK was lost
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.listener.poll_at() == 70
    assert t.state() is State.TIME_WAIT


def test_segments_in_time_wait() -> None:
    t = Trace()
    close_one(t, 0, Endpoint("10.0.0.2", 40000))
    t.send(1, "A", seq=1010, ack=ISS + 14)  # a late duplicate ACK: nothing to say
    t.recv_nothing()
    t.send(1, "PA", seq=1010, ack=ISS + 14, payload=b"late")
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.dropped() == [DropReason.DATA_AFTER_FIN]
    t.send(1, "A", seq=1010, ack=ISS + 99)
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.dropped() == [DropReason.ACK_OUT_OF_RANGE]
    t.send(1, "R", seq=1010 + 5)
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.dropped() == [DropReason.RST_IN_WINDOW]
    t.send(1, "R", seq=1010 + 100_000)
    t.recv_nothing()
    t.send(1, "R", seq=1010)
    t.recv_nothing()
    assert t.state() is State.LISTEN  # RFC 9293: an acceptable RST ends TIME-WAIT


def test_new_syn_with_higher_sequence_reopens_time_wait_with_a_higher_isn() -> None:
    t = Trace()
    close_one(t, 0, Endpoint("10.0.0.2", 40000))
    # The injected ISN source says 5000 again, which is not above the old SND.NXT
    # (5014); the listener must pick a higher one (RFC 9293 §3.6.1, MAY-2).
    t.send(5, "S", seq=50_000)
    syn_ack = t.recv("SA", ack=50_001)
    assert syn_ack.seq > SeqNum(ISS + 14)
    assert t.state() is State.SYN_RECEIVED
    assert t.listener.stats.time_wait == 0
    t.send(5, "A", seq=50_001, ack=syn_ack.seq.value + 1)
    assert t.state() is State.ESTABLISHED


def test_default_isn_is_used_when_it_is_already_higher() -> None:
    t = Trace(isn=None)  # RFC 6528: the clock part has moved on by 250,000 per second
    client = Endpoint("10.0.0.2", 40000)
    close_one(t, 0, client)
    old_isn = next(e.segment.seq for e in t.of_type(SegmentSent) if e.segment.flags.letters == "SA")
    t.send(5, "S", seq=50_000)
    new_isn = t.recv("SA", ack=50_001).seq
    assert new_isn - old_isn == 5 * 250_000


def test_old_syn_in_time_wait_gets_a_challenge_ack() -> None:
    t = Trace()
    close_one(t, 0, Endpoint("10.0.0.2", 40000))
    t.send(5, "S", seq=1000)  # the old incarnation's SYN, or a guess: not above RCV.NXT
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.dropped() == [DropReason.SYN_IN_WINDOW]
    assert t.state() is State.TIME_WAIT

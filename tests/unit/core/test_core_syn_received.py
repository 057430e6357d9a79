"""SYN-RECEIVED: the handshake, its failures and the SYN-ACK retransmission timer."""

from __future__ import annotations

from core_trace import ISS, Trace

from l4kit.core import (
    ConnectionClosed,
    ConnectionReset,
    DropReason,
    SegmentSent,
    State,
    TimerFired,
    TimerKind,
)
from l4kit.wire import SeqNum


def test_handshake_ack_establishes() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA", seq=ISS, ack=1001)
    t.send(0.05, "A", seq=1001, ack=ISS + 1)
    t.recv_nothing()
    assert t.state() is State.ESTABLISHED
    assert t.listener.stats.half_open == 0
    assert t.listener.stats.connections_established == 1


def test_retransmitted_syn_gets_the_same_syn_ack_not_a_new_connection() -> None:
    isns = iter([5000, 9999])  # a second ISN would show up if a second connection were made
    t = Trace(isn=None)
    t.listener._isn = lambda key, now: SeqNum(next(isns))
    t.send(0, "S", seq=1000)
    t.recv("SA", seq=5000, ack=1001)
    t.send(0.5, "S", seq=1000)
    t.recv("SA", seq=5000, ack=1001)
    [again] = [e for e in t.of_type(SegmentSent, last=True)]
    assert again.retransmission
    assert t.listener.stats.connections_open == 1
    t.send(0.6, "A", seq=1001, ack=5001)
    assert t.state() is State.ESTABLISHED


def test_handshake_ack_with_wrong_ack_gets_rst_and_connection_stays() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA", seq=ISS, ack=1001)
    t.send(0.1, "A", seq=1001, ack=ISS + 7)
    t.recv("R", seq=ISS + 7)  # RFC 9293 §3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    assert t.dropped() == [DropReason.BAD_HANDSHAKE_ACK]
    assert t.state() is State.SYN_RECEIVED
    t.send(0.2, "A", seq=1001, ack=ISS + 1)
    assert t.state() is State.ESTABLISHED


def test_segment_without_ack_in_syn_received_is_dropped() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0.1, "P", seq=1001, payload=b"toppage\n")
    t.recv_nothing()
    assert t.dropped() == [DropReason.NO_ACK]
    assert t.delivered() == b""


def test_exact_rst_in_syn_received_returns_to_listen() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0.1, "R", seq=1001)
    t.recv_nothing()
    assert t.state() is State.LISTEN
    assert t.listener.stats.connections_open == 0
    assert t.listener.stats.half_open == 0
    [reset] = t.of_type(ConnectionReset, last=True)
    assert reset.by_peer
    assert t.of_type(ConnectionClosed, last=True)


def test_in_window_rst_in_syn_received_gets_challenge_ack() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0.1, "R", seq=1500)
    t.recv("A", seq=ISS + 1, ack=1001)
    assert t.dropped() == [DropReason.RST_IN_WINDOW]
    assert t.state() is State.SYN_RECEIVED


def test_new_syn_in_syn_received_returns_to_listen() -> None:
    # RFC 9293 §3.10.7.4 fourth: a SYN (in window) on a passive-open SYN-RECEIVED
    # returns the connection to LISTEN; the client's next SYN starts afresh.
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0.1, "S", seq=1200)
    t.recv_nothing()
    assert t.dropped() == [DropReason.SYN_IN_SYN_RECEIVED]
    assert t.state() is State.LISTEN
    t.send(0.2, "S", seq=1200)
    t.recv("SA", seq=ISS, ack=1201)


def test_syn_ack_is_retransmitted_with_backoff_then_given_up() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA", seq=ISS, ack=1001)
    # RFC 6298: RTO 1 s, doubled each time; 5 retransmissions (Linux tcp_synack_retries).
    expected_times = [1, 3, 7, 15, 31]
    for n, when in enumerate(expected_times, start=1):
        assert t.listener.poll_at() == when
        t.tick(when - 0.001)
        t.recv_nothing()
        t.tick(when)
        t.recv("SA", seq=ISS, ack=1001)
        [timer] = t.of_type(TimerFired, last=True)
        assert (timer.timer, timer.attempt) == (TimerKind.RETRANSMISSION, n)
    assert t.listener.poll_at() == 63
    t.tick(63)
    t.recv("RA", seq=ISS + 1, ack=1001)
    [reset] = t.of_type(ConnectionReset, last=True)
    assert not reset.by_peer
    assert t.state() is State.LISTEN
    assert t.listener.poll_at() is None
    assert t.listener.stats.retransmissions == 5
    assert t.listener.stats.half_open == 0


def test_handshake_after_syn_ack_retransmission_starts_data_with_rto_of_3s() -> None:
    t = Trace()
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.tick(1)
    t.recv("SA")
    t.send(1.5, "A", seq=1001, ack=ISS + 1)
    info = t.listener.connection_info(next(iter(t.listener._connections)))
    assert info is not None
    assert info.rto == 3.0  # RFC 6298 §5.7 (and Karn: no RTT sample from the ambiguous ACK)
    assert info.srtt is None

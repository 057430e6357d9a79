"""Timers: retransmission with backoff and give-up (RFC 6298), zero-window probes
(RFC 1122 §4.2.2.17), and the FIN-WAIT-2, idle and TIME-WAIT timeouts."""

from __future__ import annotations

import pytest
from core_trace import ISS, Trace, key_of

from l4kit.core import ConnectionReset, Routes, SegmentSent, State, TimerFired, TimerKind, make_app_factory
from l4kit.wire import MaxSegmentSize

BACKOFF = [1, 3, 7, 15, 31]  # RTO 1 s doubling: 1, 2, 4, 8, 16; give up 32 s after the last


def timers(t: Trace) -> list[tuple[TimerKind, int]]:
    return [(e.timer, e.attempt) for e in t.of_type(TimerFired, last=True)]


def test_data_is_retransmitted_with_backoff_then_the_connection_is_reset() -> None:
    t = Trace()
    t.handshake(0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", seq=ISS + 1, payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13)
    for n, when in enumerate(BACKOFF, start=1):
        assert t.listener.poll_at() == when
        t.tick(when)
        # RFC 6298 §5.4: only the earliest unacknowledged segment is retransmitted.
        t.recv("PA", seq=ISS + 1, ack=1009, payload=b"hello world\n")
        t.recv_nothing()
        assert timers(t) == [(TimerKind.RETRANSMISSION, n)]
        [sent] = t.of_type(SegmentSent, last=True)
        assert sent.retransmission
    t.tick(63)
    t.recv("RA", seq=ISS + 14, ack=1009)
    [reset] = t.of_type(ConnectionReset, last=True)
    assert not reset.by_peer
    assert t.state() is State.LISTEN
    assert t.listener.stats.retransmissions == 5


def test_fin_is_retransmitted_with_backoff_then_given_up() -> None:
    t = Trace()
    t.handshake(0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA")
    t.recv("FA", seq=ISS + 13)
    t.send(0.5, "A", seq=1009, ack=ISS + 13)  # the data is acknowledged, the FIN is not
    t.recv_nothing()
    # The ACK restarted the timer (RFC 6298 §5.3) with RTO still 1 s (min_rto).
    for when in [0.5 + b for b in BACKOFF]:
        assert t.listener.poll_at() == pytest.approx(when)
        t.tick(when)
        t.recv("FA", seq=ISS + 13, ack=1009)
    t.tick(63.5)
    t.recv("RA", seq=ISS + 14, ack=1009)
    assert t.state() is State.LISTEN


def test_retransmission_limit_and_rto_are_configurable() -> None:
    t = Trace(max_retransmissions=1, initial_rto=0.5, min_rto=0.5, max_rto=0.75)
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0, "A", seq=1001, ack=ISS + 1)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA")
    t.recv("FA")
    assert t.listener.poll_at() == 0.5
    t.tick(0.5)
    t.recv("PA")
    assert t.listener.poll_at() == 1.25  # backed off to 1.0, capped at max_rto 0.75
    t.tick(1.25)
    t.recv("RA")


def test_rtt_is_measured_and_karn_ignores_retransmitted_segments() -> None:
    t = Trace(min_rto=0.2)
    t.send(0, "S", seq=1000)
    t.recv("SA")
    t.send(0.1, "A", seq=1001, ack=ISS + 1)
    info = t.listener.connection_info(key_of())
    assert info is not None
    # RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR = 0.1 + 0.2
    assert info.srtt == pytest.approx(0.1)
    assert info.rto == pytest.approx(0.3)
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA")
    t.recv("FA")
    t.tick(0.5)
    t.recv("PA")  # retransmitted; the ACK below is ambiguous
    t.send(0.9, "A", seq=1006, ack=ISS + 7)
    assert t.state() is State.FIN_WAIT_2
    info = t.listener.connection_info(key_of())
    assert info is not None
    assert info.srtt == pytest.approx(0.1)  # a sample of 0.7 s would have moved it to 0.175
    assert info.rto == pytest.approx(0.6)  # still backed off (0.3 doubled), until a clean sample


def test_partial_ack_after_timeout_retransmits_the_next_segment_at_once() -> None:
    routes = Routes.from_mapping({"big": "x" * 249})
    t = Trace(app_factory=make_app_factory(routes))
    t.handshake(0, options=[MaxSegmentSize(100)])
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    assert [s.seq.value - ISS for s in t.pending] == [1, 101, 201, 251]
    t.pending.clear()
    t.tick(1)
    t.recv("A", seq=ISS + 1)  # all lost; the first is retransmitted
    t.send(1.1, "A", seq=1005, ack=ISS + 101)
    t.recv("A", seq=ISS + 101)  # partial ACK: the next one goes at once
    t.send(1.2, "A", seq=1005, ack=ISS + 201)
    t.recv("PA", seq=ISS + 201)
    t.send(1.3, "A", seq=1005, ack=ISS + 251)
    t.recv("FA", seq=ISS + 251)
    t.send(1.4, "A", seq=1005, ack=ISS + 252)
    t.recv_nothing()
    assert t.state() is State.FIN_WAIT_2


def test_zero_window_gets_persist_probes_with_backoff_until_it_opens() -> None:
    t = Trace()
    t.handshake(0, window=0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n", window=0)
    t.recv("A", seq=ISS + 1, ack=1009)  # the request is acknowledged, the reply must wait
    t.recv_nothing()
    for n, when in enumerate([1, 3, 7], start=1):
        assert t.listener.poll_at() == when
        t.tick(when)
        # <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>: old, so the peer must answer with its window.
        t.recv("A", seq=ISS, ack=1009, payload=b"")
        assert timers(t) == [(TimerKind.PERSIST, n)]
        t.send(when, "A", seq=1009, ack=ISS + 1, window=0)  # the peer's answer: still zero
        t.recv_nothing()
    t.send(8, "A", seq=1009, ack=ISS + 1, window=65535)  # window update
    t.recv("PA", seq=ISS + 1, payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13)
    assert t.listener.stats.retransmissions == 0


def test_window_that_stays_shut_ends_in_the_idle_timeout() -> None:
    # The reply and the FIN wait behind a zero window; the application has closed, so
    # the idle timeout (60 s) has nothing to close gracefully and resets at once.
    t = Trace()
    t.handshake(0, window=0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n", window=0)
    t.recv("A")
    probes = []
    while (when := t.listener.poll_at()) is not None and when < 60:
        t.tick(when)
        probes.append(when)
        t.pending.clear()
    assert probes == [1, 3, 7, 15, 31]  # then 63 > 60
    t.tick(60)
    t.recv("RA", seq=ISS + 1, ack=1009)
    assert [(e.timer, e.attempt) for e in t.of_type(TimerFired, last=True)] == [(TimerKind.IDLE, 2)]


def test_idle_client_is_closed_with_fin_then_reset_if_it_does_not_finish() -> None:
    # A client that connects and sends nothing: FIN after idle_timeout; it acknowledges
    # the FIN but never sends its own, so idle_timeout after that ACK it is reset.
    t = Trace(idle_timeout=30)
    t.handshake(0)
    assert t.listener.poll_at() == 30
    t.tick(29.9)
    t.recv_nothing()
    t.tick(30)
    t.recv("FA", seq=ISS + 1, ack=1001)
    assert t.state() is State.FIN_WAIT_1
    assert [(e.timer, e.attempt) for e in t.of_type(TimerFired, last=True)] == [(TimerKind.IDLE, 1)]
    t.send(30.5, "A", seq=1001, ack=ISS + 2)
    assert t.state() is State.FIN_WAIT_2
    assert t.listener.poll_at() == pytest.approx(60.5)
    t.tick(60.5)
    t.recv("RA", seq=ISS + 2, ack=1001)
    assert t.state() is State.LISTEN
    [reset] = t.of_type(ConnectionReset, last=True)
    assert reset.why == "idle timeout"
    assert t.listener.stats.idle_closed == 1


def test_idle_client_that_finishes_closes_normally() -> None:
    t = Trace(idle_timeout=30)
    t.handshake(0)
    t.tick(30)
    t.recv("FA", seq=ISS + 1, ack=1001)
    t.send(30.1, "FA", seq=1001, ack=ISS + 2)  # nc: end-of-file, closes too
    t.recv("A", seq=ISS + 2, ack=1002)
    assert t.state() is State.TIME_WAIT
    assert not t.of_type(ConnectionReset)
    assert t.listener.stats.idle_closed == 1


def test_idle_close_sends_queued_data_first() -> None:
    # keep-open: a request without its newline, then silence. The FIN follows nothing
    # queued; a half line is not answered (the peer did not finish it).
    t = Trace(idle_timeout=10, keep_open=True)
    t.handshake(0)
    t.send(1, "PA", seq=1001, ack=ISS + 1, payload=b"top")
    t.recv("A", ack=1004)
    assert t.listener.poll_at() == 11
    t.tick(11)
    t.recv("FA", seq=ISS + 1, ack=1004)
    t.recv_nothing()


def test_progress_pushes_the_idle_timeout_back() -> None:
    t = Trace(idle_timeout=30, keep_open=True)
    t.handshake(0)
    t.send(20, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA")
    t.send(20.1, "A", seq=1006, ack=ISS + 6)
    assert t.listener.poll_at() == pytest.approx(50.1)


def test_the_default_idle_timeout_is_60_seconds() -> None:
    t = Trace()
    t.handshake(0)
    assert t.listener.poll_at() == 60


def test_idle_timeout_can_be_switched_off() -> None:
    t = Trace(idle_timeout=None)
    t.handshake(0)
    assert t.listener.poll_at() is None


def test_fin_wait_2_times_out() -> None:
    t = Trace()
    t.handshake(0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA")
    t.recv("FA")
    t.send(0.1, "A", seq=1009, ack=ISS + 14)
    assert t.state() is State.FIN_WAIT_2
    assert t.listener.poll_at() == pytest.approx(60.1)
    t.tick(60.1)
    t.recv("RA", seq=ISS + 14, ack=1009)
    assert [e.timer for e in t.of_type(TimerFired, last=True)] == [TimerKind.FIN_WAIT_2]
    assert t.state() is State.LISTEN


def test_time_wait_times_out() -> None:
    t = Trace(time_wait_timeout=30)
    t.handshake(0)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA")
    t.recv("FA")
    t.send(1, "FA", seq=1009, ack=ISS + 14)
    t.recv("A")
    assert t.state() is State.TIME_WAIT
    assert t.listener.stats.time_wait == 1
    assert t.listener.stats.connections_open == 0
    assert t.listener.poll_at() == 31
    t.tick(30.9)
    assert t.state() is State.TIME_WAIT
    t.tick(31)
    assert t.state() is State.LISTEN
    assert [e.timer for e in t.of_type(TimerFired, last=True)] == [TimerKind.TIME_WAIT]
    assert t.listener.poll_at() is None


def test_poll_at_is_the_earliest_deadline_over_many_connections() -> None:
    from l4kit.wire import Endpoint

    t = Trace(idle_timeout=None)
    for i in range(50):
        client = Endpoint("10.0.0.2", 20000 + i)
        t.send(i * 0.01, "S", seq=1000, client=client)  # SYN-ACK timers: i*0.01 + 1
    t.pending.clear()
    assert t.listener.poll_at() == pytest.approx(1.0)
    for i in range(10):  # the first ten complete: their timers stop
        t.send(0.5, "A", seq=1001, ack=ISS + 1, client=Endpoint("10.0.0.2", 20000 + i))
    assert t.listener.poll_at() == pytest.approx(1.10)
    t.tick(1.10)
    assert len(t.pending) == 1  # exactly one SYN-ACK was due

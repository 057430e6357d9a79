"""Loss recovery, as packet traces: fast retransmit and NewReno (RFC 5681 §3.2, RFC 6582),
limited transmit (RFC 3042), SACK-based recovery (RFC 6675) with RACK (RFC 8985 §6), tail
loss probes (RFC 8985 §7), and the timeout as the last resort (RFC 6298, RFC 5681 §3.1).

The server answers ``big`` with a reply of whole 1000-octet segments (the client's MSS)
and closes, so segment k of the reply starts at ``ISS + 1 + (k - 1) * 1000``. The
handshake's ACK comes 0.1 s after the SYN-ACK: SRTT 0.1 s, RTO 1 s (the minimum).
"""

from __future__ import annotations

from typing import Any

import pytest
from core_trace import ISS, Trace, key_of

from l4kit.core import (
    ConnectionInfo,
    LossRecovery,
    RecoveryStep,
    Routes,
    SegmentSent,
    Stack,
    StackConfig,
    State,
    TimerFired,
    TimerKind,
    make_app_factory,
)
from l4kit.wire import Endpoint, MaxSegmentSize, NoOperation, Sack, SackPermitted, Segment, SeqNum

MSS = 1000
REQUEST = 1001  # the client's ISN + 1
REQUEST_END = REQUEST + 4  # after "big\n"


def seg(k: int) -> int:
    """The sequence number of the reply's k-th segment (1-based)."""
    return ISS + 1 + (k - 1) * MSS


def reply_trace(segments: int, *, sack: bool, rtt: float = 0.1, **config: Any) -> Trace:
    """A connection whose client asked for ``segments`` full segments at ``rtt``; the reply
    (as much as the initial window of 10 segments lets out) and maybe the FIN are pending."""
    routes = Routes.from_mapping({"big": "x" * (segments * MSS - 1)})
    t = Trace(app_factory=make_app_factory(routes), **config)
    options: list[Any] = [MaxSegmentSize(MSS)]
    if sack:
        options += [NoOperation(), NoOperation(), SackPermitted()]
    t.send(0, "S", seq=REQUEST - 1, options=options)
    t.recv("SA", seq=ISS, ack=REQUEST)
    t.send(rtt, "A", seq=REQUEST, ack=ISS + 1)
    t.send(rtt, "PA", seq=REQUEST, ack=ISS + 1, payload=b"big\n")
    return t


def ack(t: Trace, when: float, upto: int, *blocks: tuple[int, int]) -> None:
    """The client acknowledges up to ``upto``, SACKing ``blocks`` (most recent first)."""
    options = [NoOperation(), NoOperation(), Sack(blocks)] if blocks else []
    t.send(when, "A", seq=REQUEST_END, ack=upto, options=options)


def sent_now(t: Trace) -> list[Segment]:
    """What the last call sent (and take it off the queue)."""
    out = list(t.pending)
    t.pending.clear()
    return out


def steps(t: Trace) -> list[RecoveryStep]:
    return [e.step for e in t.of_type(LossRecovery)]


def why(t: Trace, *, last: bool = True) -> list[str]:
    return [e.why for e in t.of_type(SegmentSent, last=last)]


def info(t: Trace) -> ConnectionInfo:
    found = t.listener.connection_info(key_of())
    assert found is not None
    return found


def tick_due(t: Trace) -> float:
    """Run the next timer, at its deadline; returns when that was."""
    due = t.listener.poll_at()
    assert due is not None
    t.tick(due)
    return due


def rto_fired(t: Trace) -> bool:
    return any(e.timer is TimerKind.RETRANSMISSION for e in t.of_type(TimerFired))


# ----------------------------------------------------------------------------- fast retransmit


def test_three_duplicate_acks_retransmit_once_and_recover() -> None:
    """RFC 5681 §3.2, no SACK: segment 2 of 6 is lost. The third duplicate ACK retransmits
    it at once (ssthresh = FlightSize/2, cwnd = ssthresh + 3 segments); later duplicates
    only inflate the window; the ACK of everything ends the recovery."""
    t = reply_trace(6, sack=False)
    assert [s.seq.value for s in sent_now(t)] == [seg(k) for k in range(1, 7)] + [seg(7)]  # + FIN
    ack(t, 0.2, seg(2))  # segment 1 arrived; 2 did not
    ack(t, 0.2, seg(2))  # 3 -> duplicate 1
    ack(t, 0.2, seg(2))  # 4 -> duplicate 2
    t.recv_nothing()
    assert info(t).ca_state == "disorder"
    ack(t, 0.2, seg(2))  # 5 -> duplicate 3
    again = t.recv("A", seq=seg(2), payload=b"x" * MSS)
    t.recv_nothing()
    [sent] = t.of_type(SegmentSent, last=True)
    assert sent.retransmission and sent.why == "fast retransmit (3 duplicate ACKs)"
    [entered] = t.of_type(LossRecovery, last=True)
    flight = 5 * MSS + 1  # segments 2-6 and the FIN
    assert (entered.step, entered.ssthresh, entered.cwnd) == (
        RecoveryStep.FAST_RETRANSMIT,
        flight // 2,
        flight // 2 + 3 * MSS,
    )
    ack(t, 0.2, seg(2))  # 6 -> duplicate 4: the window grows by one segment, nothing to send
    ack(t, 0.2, seg(2))  # FIN -> duplicate 5
    t.recv_nothing()
    assert info(t).cwnd == flight // 2 + 5 * MSS
    assert info(t).ca_state == "recovery"
    ack(t, 0.3, again.seq.value + 5 * MSS + 1)  # everything, FIN included
    assert steps(t) == [RecoveryStep.FAST_RETRANSMIT, RecoveryStep.RECOVERED]
    assert t.state() is State.FIN_WAIT_2
    i = info(t)
    assert (i.ca_state, i.fast_retransmits, i.total_retransmissions, i.timeouts) == ("open", 1, 1, 0)
    assert not rto_fired(t)
    assert t.listener.stats.retransmissions == 1


def test_partial_acks_retransmit_the_next_hole_at_once() -> None:
    """NewReno (RFC 6582 §3.2 step 5): segments 2 and 5 of 8 are lost. The ACK of the fast
    retransmission covers up to 5 only (a partial ACK): 5 goes at once, without waiting
    for three more duplicates or the timer, and the window is deflated by what was
    acknowledged, less one segment; the full ACK sets cwnd to min(ssthresh, FlightSize + 1
    segment) (step 6)."""
    t = reply_trace(8, sack=False)
    sent_now(t)
    ack(t, 0.2, seg(2))
    for _ in range(3):  # segments 3, 4, 6 arrive
        ack(t, 0.2, seg(2))
    t.recv("A", seq=seg(2))
    cwnd = info(t).cwnd
    ack(t, 0.2, seg(2))  # 7
    ack(t, 0.2, seg(2))  # 8
    ack(t, 0.2, seg(2))  # FIN
    assert info(t).cwnd == cwnd + 3 * MSS
    ack(t, 0.3, seg(5))  # the retransmitted 2 filled the first hole: 3 segments acknowledged
    again = t.recv("A", seq=seg(5), payload=b"x" * MSS)
    t.recv_nothing()
    assert why(t) == ["fast retransmit (partial ACK)"]
    assert info(t).cwnd == cwnd + 3 * MSS - 3 * MSS + MSS
    assert info(t).ca_state == "recovery"
    ack(t, 0.4, seg(9) + 1)  # the full ACK
    assert info(t).cwnd == min((7 * MSS + 1) // 2, MSS + MSS)
    assert steps(t) == [RecoveryStep.FAST_RETRANSMIT, RecoveryStep.RECOVERED]
    assert not rto_fired(t) and info(t).total_retransmissions == 2
    assert again.seq.value == seg(5)


def test_limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() -> None:
    """RFC 3042: with the initial window full (10 segments out of 14) and segment 1 lost,
    each of the first two duplicate ACKs lets one new segment out beyond cwnd, and the
    third brings the fast retransmit; without it the window would stay full until then."""
    t = reply_trace(14, sack=False)
    assert len(sent_now(t)) == 10  # the initial window: min(10 * MSS, max(2 * MSS, 14600))
    ack(t, 0.2, seg(1))  # 2 -> duplicate 1
    t.recv("A", seq=seg(11))
    t.recv_nothing()
    ack(t, 0.2, seg(1))  # 3 -> duplicate 2
    t.recv("A", seq=seg(12))
    t.recv_nothing()
    assert info(t).cwnd == 10 * MSS  # limited transmit leaves the window as it is
    ack(t, 0.2, seg(1))  # 4 -> duplicate 3
    t.recv("A", seq=seg(1))
    assert why(t) == ["fast retransmit (3 duplicate ACKs)"]
    assert all(not s.retransmission for s in t.of_type(SegmentSent)[:-1])


def test_a_timeout_ends_fast_recovery_and_later_duplicates_start_none() -> None:
    """RFC 6582 §3.2 step 2: after a timeout, duplicate ACKs that do not acknowledge more
    than the recovery point are the echo of the go-back-N retransmissions, not a new loss:
    no second fast retransmit."""
    t = reply_trace(6, sack=False)
    sent_now(t)
    t.tick(1.1)  # nothing came back: RTO
    t.recv("A", seq=seg(1))
    assert steps(t) == [RecoveryStep.RTO] and info(t).ca_state == "loss"
    for _ in range(4):
        ack(t, 1.2, ISS + 1)  # duplicates of the old ACK
    t.recv_nothing()
    assert info(t).fast_retransmits == 0


def test_after_a_timeout_slow_start_resends_what_is_presumed_lost() -> None:
    """RFC 5681 §3.1 and RFC 8985 §6.3: everything outstanding is presumed lost at the
    timeout; the window restarts at one segment and each ACK (a partial one, RFC 6582)
    lets more of it out again, two segments for one acknowledged, until the recovery
    point; then the connection is open again."""
    routes = Routes.from_mapping({"big": "x" * 249})
    t = Trace(app_factory=make_app_factory(routes))
    t.handshake(0, options=[MaxSegmentSize(100)])
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    assert [s.seq.value - ISS for s in t.pending] == [1, 101, 201, 251]
    t.pending.clear()
    t.tick(1)
    t.recv("A", seq=ISS + 1)  # all lost; the first is sent again, cwnd one segment
    t.recv_nothing()
    assert (info(t).cwnd, info(t).lost_bytes) == (100, 151)
    t.send(1.1, "A", seq=1005, ack=ISS + 101)
    # slow start: cwnd 200 octets for the 100 acknowledged; the rest (151) fits
    t.recv("A", seq=ISS + 101)
    t.recv("PA", seq=ISS + 201)
    t.recv("FA", seq=ISS + 251)
    t.recv_nothing()
    t.send(1.2, "A", seq=1005, ack=ISS + 252)
    t.recv_nothing()
    assert t.state() is State.FIN_WAIT_2
    assert steps(t) == [RecoveryStep.RTO, RecoveryStep.RECOVERED]
    assert [e.why for e in t.of_type(SegmentSent) if e.retransmission] == [
        "retransmission 1 (RTO 1 s)",
        "RTO recovery",
        "RTO recovery",
        "RTO recovery",
    ]


# ----------------------------------------------------------------------------- SACK


def test_sack_holes_are_retransmitted_and_sacked_data_is_not() -> None:
    """RFC 6675 with RACK: segments 2 and 4 of 8 are lost. Once three segments are SACKed
    above the first hole (DupThresh), both holes are presumed lost: SACK recovery begins
    (ssthresh = cwnd = FlightSize/2), the first hole goes at once, the second as soon as
    the pipe (what is in the network: the flight less what is SACKed or lost) is below
    cwnd. Nothing SACKed is sent again."""
    t = reply_trace(8, sack=True)
    sent_now(t)
    ack(t, 0.2, seg(2))  # 1
    ack(t, 0.2, seg(2), (seg(3), seg(4)))  # 3
    t.recv_nothing()
    assert info(t).ca_state == "disorder" and info(t).sacked_bytes == MSS
    ack(t, 0.2, seg(2), (seg(5), seg(6)), (seg(3), seg(4)))  # 5
    ack(t, 0.2, seg(2), (seg(5), seg(7)), (seg(3), seg(4)))  # 6: three SACKed above hole 2
    flight = 7 * MSS + 1  # segments 2-8 and the FIN
    [entered] = t.of_type(LossRecovery, last=True)
    assert entered.step is RecoveryStep.SACK_RECOVERY
    assert entered.cwnd == entered.ssthresh == flight // 2
    assert entered.detail == "2 segments lost, 3 SACKed"
    t.recv("A", seq=seg(2), payload=b"x" * MSS)
    # pipe = flight - SACKed - lost = 7001 - 3000 - 2000 + 1000 (the resent 2) = 3001
    # < cwnd 3500 by less than a segment: hole 4 waits.
    t.recv_nothing()
    i = info(t)
    assert (i.sacked_bytes, i.lost_bytes, i.ca_state) == (3 * MSS, MSS, "recovery")
    ack(t, 0.2, seg(2), (seg(5), seg(8)), (seg(3), seg(4)))  # 7: pipe 2001
    t.recv("A", seq=seg(4), payload=b"x" * MSS)
    t.recv_nothing()
    assert why(t) == ["SACK recovery"]
    ack(t, 0.3, seg(4), (seg(5), seg(9) + 1))  # the resent 2, and 8 and the FIN SACKed
    t.recv_nothing()  # no rescue: nothing is left that was not SACKed or resent
    ack(t, 0.3, seg(9) + 1)
    assert steps(t) == [RecoveryStep.SACK_RECOVERY, RecoveryStep.RECOVERED]
    i = info(t)
    assert (i.sack_recoveries, i.total_retransmissions, i.timeouts, i.cwnd) == (1, 2, 0, flight // 2)
    assert not rto_fired(t)
    assert t.state() is State.FIN_WAIT_2


def test_one_sack_above_a_hole_is_a_loss_once_the_reordering_window_passes() -> None:
    """RACK (RFC 8985 §6.2): no need for three duplicates. Segment 5 of 6 is lost and 6 is
    SACKed: 5 was sent before 6, so once RACK.rtt plus the reordering window (a quarter
    of the least RTT seen) has passed since 5 went out, it is lost. The reordering timer
    says when; nothing waits for the retransmission timer."""
    t = reply_trace(6, sack=True)
    sent_now(t)  # at 0.1
    ack(t, 0.2, seg(5))  # 1-4: RTT 0.1
    ack(t, 0.2, seg(5), (seg(6), seg(7)))  # 6 arrived, 5 did not
    t.recv_nothing()
    # 5 went out at 0.1; RACK.rtt 0.1, reordering window 0.1 / 4: lost at 0.225.
    assert t.listener.poll_at() == pytest.approx(0.225)
    tick_due(t)
    t.recv("A", seq=seg(5), payload=b"x" * MSS)
    assert [e.timer for e in t.of_type(TimerFired, last=True)] == [TimerKind.REORDER]
    assert steps(t) == [RecoveryStep.SACK_RECOVERY]
    ack(t, 0.33, seg(7) + 1)  # 5, 6 and the FIN
    assert steps(t) == [RecoveryStep.SACK_RECOVERY, RecoveryStep.RECOVERED]
    assert not rto_fired(t)


def test_a_lost_retransmission_is_found_by_rack() -> None:
    """RFC 8985 §6 finds what duplicate-ACK counting cannot: the retransmission of hole 2 is
    lost too. The SACK of segment 8, sent after that retransmission, shows it: RACK marks
    it lost again and it goes a third time, with no timeout."""
    t = reply_trace(14, sack=True)
    sent_now(t)  # 1-10
    ack(t, 0.2, seg(2), (seg(3), seg(6)))  # 3-5 SACKed: 2 is lost
    assert [s.seq.value for s in sent_now(t)] == [seg(2)]  # the pipe (6 segments) > cwnd 4.5
    ack(t, 0.3, seg(2), (seg(3), seg(11)))  # 6-10, all sent before the retransmission
    assert [s.seq.value for s in sent_now(t)] == [seg(11), seg(12), seg(13)]
    assert info(t).total_retransmissions == 1
    ack(t, 0.31, seg(2), (seg(3), seg(12)))  # 11, sent after the retransmission of 2
    again = sent_now(t)
    assert again[0].seq.value == seg(2) and len(again[0].payload) == MSS
    assert info(t).total_retransmissions == 2
    assert not rto_fired(t)


# ----------------------------------------------------------------------------- tail loss


def test_a_lost_fin_is_recovered_by_a_probe_not_a_timeout() -> None:
    """RFC 8985 §7: the reply's two segments arrive, its FIN does not. With nothing SACKed
    and no recovery under way, a probe timeout is armed at each ACK (2*SRTT, plus the
    200 ms of a delayed ACK when one segment is out): it retransmits the last segment,
    the FIN, long before the 1 s retransmission timeout would."""
    t = reply_trace(2, sack=True)
    assert [s.flags.letters for s in sent_now(t)] == ["A", "PA", "FA"]
    ack(t, 0.2, seg(3))  # the data, not the FIN
    assert tick_due(t) == pytest.approx(0.2 + 2 * 0.1 + 0.2)
    t.recv("FA", seq=seg(3))
    t.recv_nothing()
    assert why(t) == ["TLP"]
    assert [e.timer for e in t.of_type(TimerFired, last=True)] == [TimerKind.LOSS_PROBE]
    assert steps(t) == [RecoveryStep.TLP]
    assert t.listener.poll_at() == pytest.approx(0.6 + 1.0)  # the RTO guards the probe
    ack(t, 0.7, seg(3) + 1)
    assert t.state() is State.FIN_WAIT_2
    assert not rto_fired(t)
    assert t.listener.stats.retransmissions == 1


def test_a_lost_tail_is_shown_by_the_probe_s_sack() -> None:
    """RFC 8985 §7.4: segments 3 and 4 of 4 and the FIN are lost. The probe (the FIN
    again) arrives; the peer SACKs it, which shows RACK that 3 and 4, sent before it,
    are lost: SACK recovery resends them, without a timeout."""
    t = reply_trace(4, sack=True)
    sent_now(t)
    ack(t, 0.2, seg(3))  # 1 and 2
    assert tick_due(t) == pytest.approx(0.4)  # 2*SRTT: three segments are still out
    t.recv("FA", seq=seg(5))
    ack(t, 0.52, seg(3), (seg(5), seg(5) + 1))  # the FIN arrived, out of order
    # RACK: 3 and 4 went at 0.1, the FIN (delivered, RTT 0.12) at 0.4: 0.1 + 0.12 plus a
    # reordering window of 0.1 / 4 is long past.
    got = sent_now(t)
    assert [s.seq.value for s in got] == [seg(3), seg(4)]
    assert why(t) == ["SACK recovery", "SACK recovery"]
    assert steps(t) == [RecoveryStep.TLP, RecoveryStep.SACK_RECOVERY]
    ack(t, 0.7, seg(5) + 1)
    assert steps(t)[-1] is RecoveryStep.RECOVERED
    assert not rto_fired(t)


def test_a_probe_sends_new_data_when_the_window_holds_some_back() -> None:
    """RFC 8985 §7.3: a probe is new data when there is some and the peer's window takes
    it, whatever the congestion window says. The initial window let 10 of 12 segments
    out; every ACK of them is lost."""
    t = reply_trace(12, sack=True)
    assert len(sent_now(t)) == 10
    assert tick_due(t) == pytest.approx(0.3)  # 2*SRTT after the last segment went
    probe = t.recv("A", seq=seg(11), payload=b"x" * MSS)
    t.recv_nothing()
    [sent] = t.of_type(SegmentSent, last=True)
    assert sent.why == "TLP" and not sent.retransmission
    [step] = t.of_type(LossRecovery, last=True)
    assert (step.step, step.detail) == (RecoveryStep.TLP, "new data")
    ack(t, 0.4, seg(12))  # it all arrived; the probe's ACK opens the window again
    assert [s.seq.value for s in sent_now(t)] == [seg(12), seg(13)]  # the last and the FIN
    assert probe.seq.value == seg(11) and info(t).total_retransmissions == 0


def test_a_probe_that_repaired_a_loss_reduces_the_window() -> None:
    """RFC 8985 §7.4.2 (Linux's tcp_process_tlp_ack): the probe resent the last segment of
    a reply, the peer's ACK of it carries no D-SACK, and an ACK beyond it follows (the next
    reply's): the probe repaired a loss, and the window is halved as for any loss."""
    routes = Routes.from_mapping({"big": "x" * (2 * MSS - 1)})
    t = Trace(app_factory=make_app_factory(routes, keep_open=True))
    options = [MaxSegmentSize(MSS), NoOperation(), NoOperation(), SackPermitted()]
    t.send(0, "S", seq=REQUEST - 1, options=options)
    t.recv("SA")
    t.send(0.1, "A", seq=REQUEST, ack=ISS + 1)
    t.send(0.1, "PA", seq=REQUEST, ack=ISS + 1, payload=b"big\n")
    sent_now(t)  # two segments, no FIN: the connection stays open
    ack(t, 0.2, seg(2))  # the first arrived; the second was lost
    assert tick_due(t) == pytest.approx(0.6)  # 2*SRTT + 200 ms: one segment out
    t.recv("PA", seq=seg(2))
    ack(t, 0.7, seg(3))  # the probe filled the hole (no D-SACK)
    cwnd = info(t).cwnd
    t.send(0.8, "PA", seq=REQUEST_END, ack=seg(3), payload=b"big\n")
    sent_now(t)
    t.send(0.9, "A", seq=REQUEST_END + 4, ack=seg(5))
    assert steps(t) == [RecoveryStep.TLP, RecoveryStep.TLP_RECOVERY]
    i = info(t)
    assert (i.loss_probes, i.loss_probe_recoveries) == (1, 1)
    assert i.cwnd == max((cwnd + MSS) // 2, 2 * MSS)  # slow start's segment for the ACK, then halved


def test_a_redundant_probe_is_told_by_a_dsack_and_reduces_nothing() -> None:
    """RFC 8985 §7.4.2: the ACK of the FIN was only late. The peer reports the probe's
    copy as a duplicate (D-SACK, RFC 2883): no loss, the window stays."""
    t = reply_trace(2, sack=True)
    sent_now(t)
    ack(t, 0.2, seg(3))
    tick_due(t)
    t.recv("FA")
    cwnd = info(t).cwnd
    ack(t, 0.65, seg(3) + 1)  # the first FIN's ACK, late
    ack(t, 0.7, seg(3) + 1, (seg(3), seg(3) + 1))  # the probe's: a D-SACK below SEG.ACK
    assert steps(t) == [RecoveryStep.TLP]
    assert info(t).cwnd == cwnd and info(t).loss_probe_recoveries == 0


def test_probes_need_sack_and_can_be_switched_off() -> None:
    """RFC 8985 §7.2: no probe without SACK (the timeout guards the tail), nor with
    ``tail_loss_probes=False``."""
    for trace in (reply_trace(2, sack=False), reply_trace(2, sack=True, tail_loss_probes=False)):
        sent_now(trace)
        ack(trace, 0.2, seg(3))
        assert trace.listener.poll_at() == pytest.approx(1.2)


# ----------------------------------------------------------------------------- the window


def test_the_ack_of_a_syn_grows_no_window() -> None:
    """RFC 5681 §3.1 counts data octets: the handshake's ACK leaves cwnd at the initial
    window (RFC 6928: min(10 * MSS, max(2 * MSS, 14600))), on both sides; and after a
    SYN-ACK or SYN that had to be sent again, the initial window is one segment."""
    t = reply_trace(1, sack=False)
    assert info(t).cwnd == 10 * MSS
    t2 = Trace()
    t2.send(0, "S", seq=1000, options=[MaxSegmentSize(1460)])
    t2.recv("SA")
    t2.send(0.05, "A", seq=1001, ack=ISS + 1)
    assert info(t2).cwnd == 14600
    t3 = Trace()
    t3.send(0, "S", seq=1000, options=[MaxSegmentSize(1460)])
    t3.recv("SA")
    t3.tick(1.0)
    t3.recv("SA")
    t3.send(1.05, "A", seq=1001, ack=ISS + 1)
    assert info(t3).cwnd == 1460
    # The active side: the SYN-ACK's ACK is ours; cwnd is the initial window, then one
    # segment after a retransmitted SYN.
    for retransmitted in (False, True):
        client = Stack(StackConfig(secret=b"c"), isn=lambda key, now: SeqNum(ISS))
        conn = client.connect(Endpoint("10.0.0.2", 40000), Endpoint("10.0.0.1", 80))
        client.flush(0.0)
        if retransmitted:
            client.tick(1.0)
        syn_ack = Trace().segment(
            "SA",
            seq=300,
            ack=ISS + 1,
            options=[MaxSegmentSize(1460)],
            client=Endpoint("10.0.0.1", 80),
            server=Endpoint("10.0.0.2", 40000),
        )
        client.receive(syn_ack, 1.1)
        assert conn.info().cwnd == (1460 if retransmitted else 14600)


def test_a_tail_lost_after_a_recovery_is_probed_though_something_is_sacked() -> None:
    """A recovery can end with a loss RACK cannot see: segments 11 and 12 of 12, sent in
    the recovery, are lost; the FIN is SACKed, but only its rescue retransmission's copy,
    whose quick SACK may be for either copy (RFC 8985 §6.2 step 2), so RACK learns
    nothing from it. The ACK that ends the recovery leaves the FIN SACKed and 11 and 12
    outstanding: a probe, after 2*SRTT, resends the last segment not SACKed, instead of
    the 1 s retransmission timeout."""
    t = reply_trace(12, sack=True)
    sent_now(t)  # 1-10 at 0.1
    ack(t, 0.2, seg(2), (seg(3), seg(6)))  # 3-5: 2 is lost, it goes again
    assert [s.seq.value for s in sent_now(t)] == [seg(2)]
    ack(t, 0.3, seg(6), (seg(7), seg(10)))  # 2-5 and 7-9: 6 goes again, then 11, 12, the FIN
    assert [s.seq.value for s in sent_now(t)] == [seg(6), seg(11), seg(12), seg(13)]
    ack(t, 0.31, seg(6), (seg(10), seg(11)), (seg(7), seg(10)))  # 10: nothing new to send
    [rescue] = sent_now(t)
    assert rescue.flags.letters == "FA" and why(t) == ["SACK recovery: rescue retransmission"]
    ack(t, 0.32, seg(6), (seg(13), seg(13) + 1), (seg(7), seg(11)))  # the FIN, 10 ms later
    ack(t, 0.33, seg(11), (seg(13), seg(13) + 1))  # the second 6: the recovery is over
    assert steps(t)[-1] is RecoveryStep.RECOVERED
    i = info(t)
    assert (i.ca_state, i.lost_bytes) == ("disorder", 0)
    assert tick_due(t) == pytest.approx(0.33 + 2 * 0.1)
    t.recv("PA", seq=seg(12), payload=b"x" * (MSS - 1) + b"\n")
    t.recv_nothing()
    assert why(t) == ["TLP"]
    ack(t, 0.64, seg(11), (seg(12), seg(13) + 1))  # the probe's SACK shows 11 is lost
    t.recv("A", seq=seg(11), payload=b"x" * MSS)
    ack(t, 0.75, seg(13) + 1)
    assert t.state() is State.FIN_WAIT_2
    assert not rto_fired(t)

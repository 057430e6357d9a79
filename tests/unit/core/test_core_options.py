"""RFC 7323 (window scaling, timestamps: RTTM, PAWS) and RFC 2018 (SACK), as packet traces."""

from __future__ import annotations

import pytest
from core_trace import ISS, Trace, key_of

from l4kit.core import DropReason, Stack, StackConfig, State
from l4kit.wire import (
    Endpoint,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    SeqNum,
    Timestamps,
    WindowScale,
)

# What a Linux client's SYN carries (tcp_syn_options): MSS, SACK-permitted, timestamps, window scale 7.
LINUX_SYN = [MaxSegmentSize(65495), SackPermitted(), Timestamps(1000, 0), NoOperation(), WindowScale(7)]


def ts(tsval: int, tsecr: int) -> list[object]:
    return [NoOperation(), NoOperation(), Timestamps(tsval, tsecr)]


def linux_handshake(t: Trace, **syn: object) -> Timestamps:
    """The handshake of a Linux client; returns the SYN-ACK's timestamps."""
    t.send(0.0, "S", seq=1000, options=LINUX_SYN, **syn)  # type: ignore[arg-type]
    syn_ack = t.recv("SA", seq=ISS, ack=1001)
    [stamps] = [o for o in syn_ack.options if isinstance(o, Timestamps)]
    t.send(0.010, "A", seq=1001, ack=ISS + 1, window=512, options=ts(1010, stamps.tsval))
    assert t.state() is State.ESTABLISHED
    return stamps


def test_a_linux_syn_gets_a_syn_ack_with_sack_timestamps_and_window_scale() -> None:
    t = Trace(mss=1460)
    t.send(0.0, "S", seq=1000, options=LINUX_SYN)
    syn_ack = t.recv("SA", seq=ISS, ack=1001, window=65535)  # a SYN-ACK's window is never scaled
    assert [type(o).__name__ for o in syn_ack.options] == [
        "MaxSegmentSize", "SackPermitted", "Timestamps", "NoOperation", "WindowScale",
    ]  # fmt: skip
    stamps = next(o for o in syn_ack.options if isinstance(o, Timestamps))
    assert stamps.tsecr == 1000  # the SYN's TSval echoed (RFC 7323 §3.2)
    assert syn_ack.window_scale == 0  # our 65535-octet buffer needs no scaling
    info = t.listener.connection_info(key_of())
    assert info is not None and (info.snd_wscale, info.timestamps, info.sack) == (7, True, True)
    assert info.send_mss == 1460 - 12  # the timestamps take 12 octets of every segment


@pytest.mark.parametrize(
    ("switch", "gone"),
    [("window_scale", "WindowScale"), ("timestamps", "Timestamps"), ("sack", "SackPermitted")],
)
def test_each_option_can_be_switched_off(switch: str, gone: str) -> None:
    t = Trace(**{switch: False})
    t.send(0.0, "S", seq=1000, options=LINUX_SYN)
    syn_ack = t.recv("SA")
    names = [type(o).__name__ for o in syn_ack.options]
    assert gone not in names and "MaxSegmentSize" in names


def test_windows_are_scaled_both_ways() -> None:
    t = Trace(window=1 << 18)  # a 256 KiB buffer: scale 3 (RFC 7323 §2.3)
    t.send(0.0, "S", seq=1000, options=LINUX_SYN)
    syn_ack = t.recv("SA")
    assert syn_ack.window_scale == 3 and syn_ack.window == 65535
    t.send(0.01, "A", seq=1001, ack=ISS + 1, window=512, options=ts(1010, 0))
    info = t.listener.connection_info(key_of())
    assert info is not None and info.snd_wnd == 512 << 7
    t.send(0.02, "PA", seq=1001, ack=ISS + 1, window=512, payload=b"toppage\n", options=ts(1020, 0))
    reply = t.recv("PA")
    # The 8 octets the string server read are free again, but the right edge moves on only
    # by at least one MSS (receiver silly window avoidance, RFC 9293 §3.8.6.2.2).
    assert reply.window == ((1 << 18) - 8) >> 3


def test_timestamps_are_echoed_and_measure_the_rtt() -> None:
    t = Trace(keep_open=True)
    stamps = linux_handshake(t)
    t.send(0.020, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n", options=ts(1020, stamps.tsval))
    reply = t.recv("PA", payload=b"pong\n")
    [ours] = [o for o in reply.options if isinstance(o, Timestamps)]
    assert ours.tsecr == 1020  # TS.Recent: the request's TSval
    # The handshake ACK echoed the SYN-ACK's TSval 10 ms later; the ACK of the reply echoes
    # its TSval 250 ms later: two RTT samples (RFC 7323 §4.1, RFC 6298 §2.3).
    t.send(0.270, "A", seq=1006, ack=ISS + 6, options=ts(1270, ours.tsval))
    info = t.listener.connection_info(key_of())
    assert info is not None and info.srtt == pytest.approx(0.875 * 0.010 + 0.125 * 0.250, abs=0.002)


def test_paws_drops_an_old_timestamp_with_an_ack() -> None:
    t = Trace(keep_open=True)
    stamps = linux_handshake(t)
    t.send(0.02, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n", options=ts(1020, stamps.tsval))
    t.recv("PA", payload=b"pong\n")
    # An old duplicate: in the window, but its TSval is below TS.Recent (RFC 7323 §5.3).
    t.send(0.03, "PA", seq=1006, ack=ISS + 6, payload=b"ping\n", options=ts(900, stamps.tsval))
    t.recv("A", seq=ISS + 6, ack=1006)
    assert t.dropped() == [DropReason.PAWS]
    assert t.delivered() == b"ping\n"


def test_out_of_order_data_is_reported_with_sack_blocks_most_recent_first() -> None:
    t = Trace(keep_open=True)
    stamps = linux_handshake(t)
    echo = ts(1020, stamps.tsval)
    t.send(0.02, "A", seq=1011, ack=ISS + 1, payload=b"b" * 5, options=echo)  # 1011-1016
    ack = t.recv("A", ack=1001)
    assert Sack(((1011, 1016),)) in ack.options
    t.send(0.03, "A", seq=1021, ack=ISS + 1, payload=b"c" * 5, options=echo)  # 1021-1026
    ack = t.recv("A", ack=1001)
    assert Sack(((1021, 1026), (1011, 1016))) in ack.options  # RFC 2018 §4: the latest first


def test_an_rto_retransmits_only_what_was_not_sacked() -> None:
    stack = Stack(StackConfig(secret=b"s", idle_timeout=None), isn=lambda key, now: SeqNum(ISS))
    listening = stack.listen("10.0.0.1", 80)
    here, there = Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 5000)
    t = Trace()  # only for its segment builder
    syn = t.segment("S", seq=1000, options=LINUX_SYN, client=there, server=here)
    stack.receive(syn, 0.0)
    stack.receive(
        t.segment("A", seq=1001, ack=ISS + 1, window=512, options=ts(1010, 0), client=there, server=here), 0.0
    )
    conn = listening.accept()
    mss = conn.info().send_mss
    conn.send(b"d" * (4 * mss))
    sent = stack.flush(0.0).segments
    assert len(sent) == 4
    # The peer got the 2nd and 4th segments, not the 1st and 3rd.
    blocks = ((ISS + 1 + mss, ISS + 1 + 2 * mss), (ISS + 1 + 3 * mss, ISS + 1 + 4 * mss))
    sack = [NoOperation(), NoOperation(), Sack(blocks)]
    stack.receive(
        t.segment("A", seq=1001, ack=ISS + 1, window=512, options=sack, client=there, server=here), 0.1
    )
    assert conn.info().sacked_bytes == 2 * mss
    out = stack.tick(stack.poll_at() or 0.0)
    [again] = out.segments
    assert again.seq == SeqNum(ISS + 1) and len(again.payload) == mss
    partial = t.segment("A", seq=1001, ack=ISS + 1 + mss, window=512, options=sack, client=there, server=here)
    [hole] = stack.receive(partial, 1.2).segments  # the next hole, not the SACKed 2nd segment
    assert hole.seq == SeqNum(ISS + 1 + 2 * mss)


def test_an_active_open_takes_up_what_the_syn_ack_agrees_to() -> None:
    stack = Stack(StackConfig(secret=b"c", window=1 << 20), isn=lambda key, now: SeqNum(ISS))
    conn = stack.connect(Endpoint("10.0.0.2", 40000), Endpoint("10.0.0.1", 80))
    [syn] = stack.flush(0.0).segments
    assert syn.window_scale == 5 and syn.sack_permitted and syn.timestamps is not None
    assert syn.window == 65535
    # A peer without window scaling or SACK: neither is used (RFC 7323 §2.2, RFC 2018 §2).
    t = Trace()
    options = [MaxSegmentSize(1000), *ts(77, syn.timestamps.tsval)]
    syn_ack = t.segment(
        "SA", seq=300, ack=ISS + 1, window=8000, options=options,  # type: ignore[arg-type]
        client=Endpoint("10.0.0.1", 80), server=Endpoint("10.0.0.2", 40000),
    )  # fmt: skip
    stack.receive(syn_ack, 0.03)
    info = conn.info()
    assert (info.state, info.snd_wscale, info.rcv_wscale, info.timestamps, info.sack) == (
        State.ESTABLISHED, 0, 0, True, False,
    )  # fmt: skip
    assert info.send_mss == 1000 - 12 and info.snd_wnd == 8000
    assert info.srtt == pytest.approx(0.03, abs=0.002)  # from the echoed TSval


def test_the_receiver_moves_its_right_edge_by_an_mss_or_more() -> None:
    """Receiver silly window avoidance (RFC 9293 §3.8.6.2.2, MUST-39): the window offered
    shrinks as unread data piles up; reading a little opens nothing, reading at least
    min(half the buffer, one MSS) sends a window update at once."""
    stack = Stack(StackConfig(secret=b"s", window=8192, idle_timeout=None), isn=lambda key, now: SeqNum(ISS))
    listening = stack.listen("10.0.0.1", 80)
    here, there = Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 5000)
    t = Trace()
    syn = t.segment("S", seq=1000, options=[MaxSegmentSize(1000)], client=there, server=here)
    stack.receive(syn, 0.0)
    stack.receive(t.segment("A", seq=1001, ack=ISS + 1, client=there, server=here), 0.0)
    conn = listening.accept()
    [ack] = stack.receive(
        t.segment("A", seq=1001, ack=ISS + 1, payload=b"a" * 5000, client=there, server=here), 0.1
    ).segments
    assert ack.window == 8192 - 5000  # nothing read yet
    conn.recv(100)
    assert stack.flush(0.2).segments == []  # 100 octets: no update
    conn.recv(1000)
    [update] = stack.flush(0.3).segments
    assert update.window == 8192 - 3900 and update.ack == SeqNum(6001)

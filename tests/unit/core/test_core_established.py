"""ESTABLISHED: requests and replies, duplicates, reordering, RST/SYN/ACK hardening."""

from __future__ import annotations

import pytest
from core_trace import ISS, Recorder, Trace, key_of

from l4kit.core import (
    AppReply,
    ConnectionReset,
    DataReceived,
    DropReason,
    PeerClosed,
    Routes,
    SegmentSent,
    State,
    StateChanged,
    make_app_factory,
)
from l4kit.wire import Endpoint, MaxSegmentSize


def recorder_trace(**config: object) -> tuple[Trace, Recorder]:
    app = Recorder()
    return Trace(app_factory=lambda key: app, **config), app  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the exercise


def test_the_original_exercise_happy_path() -> None:
    """echo toppage | nc: SYN, SYN-ACK, ACK, "toppage", "hello world", FIN-ACK, ACK, closed."""
    t = Trace()
    t.send(0.000, "S", seq=1000)
    t.recv("SA", seq=ISS, ack=1001)
    t.send(0.001, "A", seq=1001, ack=ISS + 1)
    t.send(0.002, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", seq=ISS + 1, ack=1009, payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13, ack=1009)
    t.recv_nothing()
    assert t.state() is State.FIN_WAIT_1
    t.send(0.003, "A", seq=1009, ack=ISS + 14)
    t.recv_nothing()
    assert t.state() is State.FIN_WAIT_2
    t.send(0.004, "FA", seq=1009, ack=ISS + 14)
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.state() is State.TIME_WAIT
    t.tick(60.004)
    assert t.state() is State.LISTEN  # the record is gone: the 4-tuple is free
    changes = [(e.before, e.after) for e in t.of_type(StateChanged)]
    assert changes == [
        (State.LISTEN, State.SYN_RECEIVED),
        (State.SYN_RECEIVED, State.ESTABLISHED),
        (State.ESTABLISHED, State.FIN_WAIT_1),
        (State.FIN_WAIT_1, State.FIN_WAIT_2),
        (State.FIN_WAIT_2, State.TIME_WAIT),
        (State.TIME_WAIT, State.CLOSED),
    ]
    assert t.delivered() == b"toppage\n"


def test_the_peer_s_fin_is_reported_once() -> None:
    t = Trace(keep_open=True)
    t.handshake()
    t.send(0.01, "FA", seq=1001, ack=ISS + 1)
    t.recv("FA", seq=ISS + 1, ack=1002)  # the string server closes when the client does
    assert t.of_type(PeerClosed) == [PeerClosed(0.01, key_of())]
    t.send(0.02, "FA", seq=1001, ack=ISS + 1)  # the same FIN again: acknowledged, not reported
    t.recv("A", seq=ISS + 2, ack=1002)
    assert len(t.of_type(PeerClosed)) == 1


def test_client_fin_that_also_acks_our_fin_goes_straight_to_time_wait() -> None:
    t = Trace()
    t.handshake()
    t.send(0.01, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13)
    t.send(0.02, "FA", seq=1009, ack=ISS + 14)
    t.recv("A", seq=ISS + 14, ack=1010)
    assert t.state() is State.TIME_WAIT


def test_request_split_over_segments() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"top")
    t.recv("A", seq=ISS + 1, ack=1004)  # acknowledged, nothing to answer yet
    t.send(0.2, "PA", seq=1004, ack=ISS + 1, payload=b"pa")
    t.recv("A", ack=1006)
    t.send(0.3, "PA", seq=1006, ack=ISS + 1, payload=b"ge\r\n")
    t.recv("PA", seq=ISS + 1, ack=1010, payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13, ack=1010)


def test_pipelined_requests_in_one_segment_are_answered_together_then_closed() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\nping\nnope\n")
    t.recv("PA", payload=b"hello world\npong\nerror: unknown command 'nope' (try: help)\n")
    t.recv("FA")
    t.recv_nothing()


def test_keep_open_answers_each_line_until_the_client_closes() -> None:
    t = Trace(keep_open=True)
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", seq=ISS + 1, ack=1009, payload=b"hello world\n")
    t.recv_nothing()
    t.send(0.2, "PA", seq=1009, ack=ISS + 13, payload=b"ping\n")
    t.recv("PA", seq=ISS + 13, ack=1014, payload=b"pong\n")
    t.send(0.3, "FA", seq=1014, ack=ISS + 18)
    # Our FIN carries the ACK of theirs: CLOSE-WAIT and straight on to LAST-ACK.
    t.recv("FA", seq=ISS + 18, ack=1015)
    assert t.state() is State.LAST_ACK
    t.send(0.4, "A", seq=1015, ack=ISS + 19)
    t.recv_nothing()
    assert t.state() is State.LISTEN  # passive close: no TIME-WAIT on our side
    changes = [(e.before, e.after) for e in t.of_type(StateChanged)][2:]
    assert changes == [
        (State.ESTABLISHED, State.CLOSE_WAIT),
        (State.CLOSE_WAIT, State.LAST_ACK),
        (State.LAST_ACK, State.CLOSED),
    ]


def test_unterminated_request_is_answered_when_the_client_closes() -> None:
    """printf toppage | nc -N: no newline, then FIN."""
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage")
    t.recv("A", ack=1008)
    t.send(0.2, "FA", seq=1008, ack=ISS + 1)
    t.recv("PA", seq=ISS + 1, ack=1009, payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13, ack=1009)
    assert t.state() is State.LAST_ACK


def test_data_and_fin_in_one_segment() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "FPA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA", seq=ISS + 1, ack=1007, payload=b"pong\n")
    t.recv("FA", seq=ISS + 6, ack=1007)
    # TCP processes the whole segment first (the FIN: CLOSE-WAIT), then the application
    # reads the request, answers and closes (LAST-ACK), as a socket server would.
    assert t.state() is State.LAST_ACK
    t.send(0.2, "A", seq=1007, ack=ISS + 7)
    assert t.state() is State.LISTEN  # LAST-ACK -> CLOSED: the TCB is gone, no TIME-WAIT for us


def test_a_reply_that_fits_the_window_goes_out_before_the_close() -> None:
    """The application answers and closes in one go; as a socket application's send()
    then close(), the reply leaves in ESTABLISHED and only the FIN in FIN-WAIT-1."""
    t = Trace()
    t.handshake()
    out = t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA", payload=b"pong\n")
    t.recv("FA")
    sent = [(e.segment.flags.letters, e.state) for e in out.events if isinstance(e, SegmentSent)]
    assert sent == [("PA", State.ESTABLISHED), ("FA", State.FIN_WAIT_1)]
    changes = [(e.before, e.after, e.cause, e.why) for e in out.events if isinstance(e, StateChanged)]
    assert changes == [(State.ESTABLISHED, State.FIN_WAIT_1, None, "application closed")]


# ----------------------------------------------------------------------------- duplicates and order


def test_duplicate_data_is_acked_and_never_delivered_twice() -> None:
    t = Trace(keep_open=True)
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA", payload=b"pong\n")
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")  # a retransmission
    t.recv("A", seq=ISS + 6, ack=1006)
    assert t.dropped() == [DropReason.UNACCEPTABLE]
    assert t.delivered() == b"ping\n"


def test_overlapping_retransmission_delivers_only_the_new_octets() -> None:
    t, app = recorder_trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"hel")
    t.recv("A", ack=1004)
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"hello")
    t.recv("A", ack=1006)
    assert bytes(app.received) == b"hello"
    assert [e.data for e in t.of_type(DataReceived)] == [b"hel", b"lo"]


def test_out_of_order_halves_are_held_and_delivered_once_in_order() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1004, ack=ISS + 1, payload=b"page\n")
    t.recv("A", seq=ISS + 1, ack=1001)  # duplicate ACK: the gap starts at 1001
    assert t.delivered() == b""
    info = t.listener.connection_info(key_of())
    assert info is not None and info.out_of_order_bytes == 5
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"top")
    t.recv("PA", ack=1009, payload=b"hello world\n")
    t.recv("FA")
    assert t.delivered() == b"toppage\n"
    assert [e.data for e in t.of_type(DataReceived)] == [b"toppage\n"]


def test_out_of_order_fin_waits_for_the_gap() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "FA", seq=1008, ack=ISS + 1)  # FIN after "toppage" that has not arrived
    t.recv("A", ack=1001)
    assert t.state() is State.ESTABLISHED
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"toppage")
    t.recv("PA", ack=1009, payload=b"hello world\n")
    t.recv("FA", ack=1009)
    assert t.state() is State.LAST_ACK


def test_out_of_order_buffer_is_bounded_by_segments() -> None:
    t, app = recorder_trace(max_out_of_order_segments=2)
    t.handshake()
    t.send(0.1, "A", seq=1011, ack=ISS + 1, payload=b"a")
    t.send(0.1, "A", seq=1021, ack=ISS + 1, payload=b"b")
    t.pending.clear()
    t.send(0.1, "A", seq=1031, ack=ISS + 1, payload=b"c")
    t.recv("A", ack=1001)  # still ACKed, so the peer learns where the gap is
    assert t.dropped() == [DropReason.OUT_OF_ORDER_FULL]
    t.send(0.2, "A", seq=1001, ack=ISS + 1, payload=b"0123456789")
    assert bytes(app.received) == b"0123456789a"


def test_out_of_order_buffer_is_bounded_by_octets() -> None:
    t, _app = recorder_trace(max_out_of_order_bytes=10)
    t.handshake()
    t.send(0.1, "A", seq=1101, ack=ISS + 1, payload=b"x" * 11)
    t.recv("A", ack=1001)
    assert t.dropped() == [DropReason.OUT_OF_ORDER_FULL]
    info = t.listener.connection_info(key_of())
    assert info is not None and info.out_of_order_bytes == 0


def test_data_beyond_the_window_is_trimmed() -> None:
    t, app = recorder_trace(window=100)
    t.handshake()
    t.send(0.1, "A", seq=1001, ack=ISS + 1, payload=b"y" * 150)
    t.recv("A", ack=1101, window=100)
    assert bytes(app.received) == b"y" * 100


# ----------------------------------------------------------------------------- RST (RFC 5961 §3)


def test_rst_with_exact_sequence_number_resets() -> None:
    t = Trace()
    t.handshake()
    t.send(1, "R", seq=1001)
    t.recv_nothing()
    assert t.state() is State.LISTEN
    [reset] = t.of_type(ConnectionReset, last=True)
    assert reset.by_peer
    assert t.listener.stats.resets_received == 1


def test_rst_in_window_but_not_exact_gets_challenge_ack() -> None:
    t = Trace()
    t.handshake()
    t.send(1, "R", seq=1101)
    t.recv("A", seq=ISS + 1, ack=1001)
    assert t.dropped() == [DropReason.RST_IN_WINDOW]
    assert t.state() is State.ESTABLISHED


@pytest.mark.parametrize("seq", [1000, 1001 + 65535, 1001 + 2**31, 1001 - 2**20])
def test_rst_outside_the_window_is_ignored(seq: int) -> None:
    t = Trace()
    t.handshake()
    t.send(1, "R", seq=seq)
    t.recv_nothing()
    assert t.dropped() == [DropReason.RST_OUT_OF_WINDOW]
    assert t.state() is State.ESTABLISHED


# ----------------------------------------------------------------------------- SYN and ACK (RFC 5961 §4, §5)


@pytest.mark.parametrize("seq", [1000, 1500, 9_999_999])
def test_syn_on_established_connection_gets_challenge_ack_never_a_new_isn(seq: int) -> None:
    t = Trace()
    t.handshake()
    t.send(1, "S", seq=seq)
    t.recv("A", seq=ISS + 1, ack=1001)
    assert t.dropped() == [DropReason.SYN_IN_WINDOW]
    assert t.state() is State.ESTABLISHED


def test_ack_of_unsent_data_gets_challenge_ack() -> None:
    t = Trace()
    t.handshake()
    t.send(1, "A", seq=1001, ack=ISS + 11)
    t.recv("A", seq=ISS + 1, ack=1001)
    assert t.dropped() == [DropReason.ACK_OUT_OF_RANGE]


def test_ack_too_far_below_snd_una_gets_challenge_ack_and_old_ack_in_range_is_fine() -> None:
    t = Trace()
    t.handshake()  # MAX.SND.WND is 65535
    t.send(1, "A", seq=1001, ack=ISS + 1 - 70000)
    t.recv("A", seq=ISS + 1, ack=1001)
    assert t.dropped() == [DropReason.ACK_OUT_OF_RANGE]
    t.send(1, "A", seq=1001, ack=ISS + 1 - 100)  # an old duplicate ACK: ignored, no reply
    t.recv_nothing()
    assert t.dropped() == []


def test_ack_out_of_range_does_not_deliver_data() -> None:
    t, app = recorder_trace()
    t.handshake()
    t.send(1, "PA", seq=1001, ack=ISS + 50, payload=b"evil")
    t.recv("A", ack=1001)
    assert bytes(app.received) == b""


def test_challenge_acks_are_rate_limited_per_connection() -> None:
    t = Trace(challenge_acks_per_second=10)
    t.handshake()
    reasons: list[DropReason] = []
    for _ in range(12):
        t.send(1.0, "S", seq=7777)
        reasons += t.dropped()
    assert reasons == [DropReason.SYN_IN_WINDOW] * 10 + [DropReason.CHALLENGE_ACK_LIMITED] * 2
    assert len(t.pending) == 10
    t.pending.clear()
    t.send(2.0, "S", seq=7777)  # a new second, a new budget
    t.recv("A", seq=ISS + 1, ack=1001)
    # Another connection has its own budget.
    other = Endpoint("10.0.0.3", 40001)
    t.handshake(2.0, client=other)
    t.send(2.0, "S", seq=1, client=other)
    t.recv("A")


def test_segment_without_ack_bit_is_dropped() -> None:
    t, app = recorder_trace()
    t.handshake()
    t.send(1, "P", seq=1001, payload=b"ping\n")
    t.recv_nothing()
    assert t.dropped() == [DropReason.NO_ACK]
    assert bytes(app.received) == b""


# ----------------------------------------------------------------------------- after close


def test_data_after_the_application_closed_gets_rst() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", payload=b"hello world\n")
    t.recv("FA", seq=ISS + 13)
    t.send(0.2, "PA", seq=1009, ack=ISS + 14, payload=b"ping\n")
    t.recv("RA", seq=ISS + 14, ack=1009)
    [reset] = t.of_type(ConnectionReset, last=True)
    assert not reset.by_peer
    assert DropReason.AFTER_CLOSE in t.dropped()
    assert t.state() is State.LISTEN
    assert t.delivered() == b"toppage\n"


def test_retransmitted_old_data_after_close_is_only_acked() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA")
    t.recv("FA")
    t.send(0.2, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")  # our ACK got lost
    t.recv("A", seq=ISS + 14, ack=1009)
    assert t.state() is State.FIN_WAIT_1


def test_data_after_peer_fin_is_ignored() -> None:
    t = Trace(app_factory=lambda key: Recorder(close_on_peer_close=False))
    t.handshake()
    t.send(0.1, "FA", seq=1001, ack=ISS + 1)
    t.recv("A", ack=1002)
    assert t.state() is State.CLOSE_WAIT
    t.send(0.2, "PA", seq=1002, ack=ISS + 1, payload=b"more")
    t.recv("A", ack=1002)
    assert t.dropped() == [DropReason.DATA_AFTER_FIN]


# ----------------------------------------------------------------------------- segmentation


def big_route_trace(size: int, **config: object) -> Trace:
    routes = Routes.from_mapping({"big": "x" * (size - 1)})  # plus the newline: `size` octets
    return Trace(app_factory=make_app_factory(routes), **config)  # type: ignore[arg-type]


def test_reply_is_cut_to_the_peer_mss_and_psh_marks_the_last_segment() -> None:
    t = big_route_trace(250)
    t.handshake(options=[MaxSegmentSize(100)])
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    assert [len(t.recv("A", seq=ISS + 1).payload), len(t.recv("A", seq=ISS + 101).payload)] == [100, 100]
    assert t.recv("PA", seq=ISS + 201).payload == b"x" * 49 + b"\n"
    t.recv("FA", seq=ISS + 251)


@pytest.mark.parametrize(
    ("client", "server", "default_mss"),
    [
        (Endpoint("10.0.0.2", 40000), Endpoint("10.0.0.1", 8888), 536),
        (Endpoint("2001:db8::2", 40000), Endpoint("2001:db8::1", 8888), 1220),
    ],
)
def test_default_peer_mss_without_option(client: Endpoint, server: Endpoint, default_mss: int) -> None:
    t = big_route_trace(2000, local=server)
    t.send(0, "S", seq=1000, client=client, server=server)
    t.recv("SA")
    t.send(0, "A", seq=1001, ack=ISS + 1, client=client, server=server)
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"big\n", client=client, server=server)
    sizes = [len(s.payload) for s in t.pending if s.payload]
    assert sizes[0] == default_mss
    assert sum(sizes) == 2000


def test_absurdly_small_peer_mss_is_raised_to_the_floor() -> None:
    t = big_route_trace(200)
    t.handshake(options=[MaxSegmentSize(1)])
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    sizes = [len(s.payload) for s in t.pending if s.payload]
    assert sizes == [88, 88, 24]  # Linux's TCP_MIN_MSS


def test_our_mss_caps_what_we_send() -> None:
    t = big_route_trace(3000, mss=1000)
    t.handshake(options=[MaxSegmentSize(65495)])
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    assert [len(s.payload) for s in t.pending if s.payload] == [1000, 1000, 1000]


def test_reply_is_cut_to_the_peer_window() -> None:
    t = Trace()
    t.handshake(window=5)
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n", window=5)
    t.recv("A", seq=ISS + 1, ack=1009, payload=b"hello")
    t.recv_nothing()
    t.send(0.2, "A", seq=1009, ack=ISS + 6, window=100)
    t.recv("PA", seq=ISS + 6, payload=b" world\n")
    t.recv("FA", seq=ISS + 13)


def test_send_takes_what_the_bounded_buffer_has_room_for() -> None:
    app = Recorder(reply=lambda data: AppReply(b"z" * 5000))
    t = Trace(app_factory=lambda key: app, max_send_buffer=4096)
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"x")
    assert app.sent == 4096
    sent = b""
    while t.pending:
        sent += t.recv("A" if len(t.pending) > 1 else "PA").payload
    assert sent == b"z" * 4096  # eight segments of the peer's default 536-octet MSS
    info = t.listener.connection_info(key_of())
    assert info is not None and info.send_buffered == 4096 and info.state is State.ESTABLISHED


# ----------------------------------------------------------------------------- no runts


def test_a_bulk_reply_has_no_segment_shorter_than_the_mss_but_its_last() -> None:
    """RFC 9293 §3.8.6.2.1 (MUST-38) and RFC 5681 §3.1: a 60,000-octet reply to a client
    that acknowledges every other segment, as Linux does. The ACK of the SYN-ACK must not
    grow the congestion window by the SYN's one sequence number."""
    reply = b"y" * 59_999 + b"\n"
    t = Trace(app_factory=lambda key: Recorder(reply=lambda data: AppReply(reply, close=True)), mss=1460)
    t.handshake(options=[MaxSegmentSize(65495)])
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"big\n")
    sizes: list[int] = []
    now = 0.1
    while t.pending:
        batch = []
        while t.pending:
            batch.append(t.pending.popleft())
        sizes += [len(s.payload) for s in batch if s.payload]
        for i in range(1, len(batch) + 1, 2):  # an ACK for every second segment, and the last
            last = batch[min(i, len(batch) - 1)]
            now += 0.001
            t.send(now, "A", seq=1005, ack=(last.seq + last.seg_len).value)
    assert sum(sizes) == 60_000
    assert all(size == 1460 for size in sizes[:-1]), sizes
    assert sizes[-1] == 60_000 % 1460


def test_small_writes_wait_for_the_ack_of_the_last_short_segment_unless_nodelay() -> None:
    # Nagle (RFC 9293 §3.7.4), Minshall's variant: a second short segment waits while the
    # first is unacknowledged.
    for nodelay in (False, True):
        t = Trace(keep_open=True)
        t.handshake()
        conn = t.listener.connection(key_of())
        assert conn is not None
        conn.set_nodelay(nodelay)
        conn.send(b"a")
        conn.send(b"b")
        sent = [s.payload for s in t.listener.flush(0.1).segments]
        assert sent == ([b"a", b"b"] if nodelay else [b"a"])
        if not nodelay:
            t.send(0.2, "A", seq=1001, ack=ISS + 2)
            t.recv("PA", seq=ISS + 2, payload=b"b")

"""The one rule that turns the core's facts into table rows (``l4kit.drivers.transitions``).

Each case feeds the real core's events to a :class:`TransitionRecorder`; the property
test checks, over random client behaviour, that the rows form an unbroken chain per
connection and that every transition they show is one RFC 9293 allows (a table written
here from the RFC, not taken from the core).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from l4kit.core import Listener, ListenerConfig, Routes, State, make_app_factory
from l4kit.drivers.transitions import SegmentRow, TransitionRecorder
from l4kit.wire import Endpoint, Segment, SeqNum, TcpFlags

SERVER = Endpoint("10.0.0.1", 8888)
CLIENT = Endpoint("10.0.0.2", 40000)
ISS = 5000
S = State

# RFC 9293 §3.3.2 (figure 5) and §3.10.7, the changes a connection may make:
RFC_9293: frozenset[tuple[State, State]] = frozenset(
    {
        (S.CLOSED, S.LISTEN),
        (S.CLOSED, S.SYN_SENT),
        (S.LISTEN, S.SYN_RECEIVED),
        (S.LISTEN, S.SYN_SENT),
        (S.LISTEN, S.CLOSED),
        (S.SYN_SENT, S.SYN_RECEIVED),
        (S.SYN_SENT, S.ESTABLISHED),
        (S.SYN_SENT, S.CLOSED),
        (S.SYN_RECEIVED, S.ESTABLISHED),
        (S.SYN_RECEIVED, S.FIN_WAIT_1),
        (S.SYN_RECEIVED, S.LISTEN),  # RST or a new SYN, passive open (§3.10.7.4)
        (S.SYN_RECEIVED, S.CLOSED),
        (S.ESTABLISHED, S.FIN_WAIT_1),
        (S.ESTABLISHED, S.CLOSE_WAIT),
        (S.ESTABLISHED, S.CLOSED),
        (S.FIN_WAIT_1, S.FIN_WAIT_2),
        (S.FIN_WAIT_1, S.CLOSING),
        (S.FIN_WAIT_1, S.CLOSED),
        (S.FIN_WAIT_2, S.TIME_WAIT),
        (S.FIN_WAIT_2, S.CLOSED),
        (S.CLOSE_WAIT, S.LAST_ACK),
        (S.CLOSE_WAIT, S.CLOSED),
        (S.CLOSING, S.TIME_WAIT),
        (S.CLOSING, S.CLOSED),
        (S.LAST_ACK, S.CLOSED),
        (S.TIME_WAIT, S.CLOSED),
        # RFC 4987 §3.6: a SYN cookie's ACK creates the connection ESTABLISHED (the
        # SYN-RECEIVED state was never stored).
        (S.LISTEN, S.ESTABLISHED),
    }
)


def segment(flags: str, seq: int, ack: int = 0, payload: bytes = b"", window: int = 65535) -> Segment:
    return Segment(
        src=CLIENT.addr, dst=SERVER.addr, sport=CLIENT.port, dport=SERVER.port,
        seq=SeqNum(seq), ack=SeqNum(ack), flags=TcpFlags.parse(flags), payload=payload, window=window,
    )  # fmt: skip


def listener(routes: Routes | None = None, **config: object) -> Listener:
    return Listener(
        ListenerConfig(local=SERVER, secret=b"k", **config),  # type: ignore[arg-type]
        make_app_factory(routes),
        isn=lambda key, now: SeqNum(ISS),
    )


def run(core: Listener, inputs: Sequence[tuple[float, Segment | None]]) -> list[SegmentRow]:
    """Feed ``(time, segment)`` (``None``: run the timers) and record every row."""
    recorder = TransitionRecorder()
    rows: list[SegmentRow] = []
    for now, seg in inputs:
        out = core.receive(seg, now) if seg is not None else core.tick(now)
        rows += recorder.feed_all(out.events)
    return rows


def labels(rows: Sequence[SegmentRow]) -> list[tuple[str, str, State, State]]:
    return [("in" if r.received else "out", r.segment.flags.letters, r.before, r.after) for r in rows]


def test_the_textbook_exchange() -> None:
    rows = run(
        listener(),
        [
            (0.0, segment("S", 1000)),
            (0.1, segment("A", 1001, ISS + 1)),
            (0.2, segment("PA", 1001, ISS + 1, b"toppage\n")),
            (0.3, segment("A", 1009, ISS + 14)),
            (0.4, segment("FA", 1009, ISS + 14)),
        ],
    )
    assert labels(rows) == [
        ("in", "S", S.LISTEN, S.SYN_RECEIVED),
        ("out", "SA", S.SYN_RECEIVED, S.SYN_RECEIVED),
        ("in", "A", S.SYN_RECEIVED, S.ESTABLISHED),
        ("in", "PA", S.ESTABLISHED, S.ESTABLISHED),
        ("out", "PA", S.ESTABLISHED, S.ESTABLISHED),  # the reply leaves before the close
        ("out", "FA", S.ESTABLISHED, S.FIN_WAIT_1),  # the application's close shows on the FIN
        ("in", "A", S.FIN_WAIT_1, S.FIN_WAIT_2),
        ("in", "FA", S.FIN_WAIT_2, S.TIME_WAIT),
        ("out", "A", S.TIME_WAIT, S.TIME_WAIT),
    ]
    assert rows[5].notes == ["application closed"]
    assert rows[7].changes == [(S.FIN_WAIT_2, S.TIME_WAIT)]


def test_a_fin_that_acknowledges_ours_carries_both_changes() -> None:
    rows = run(
        listener(),
        [
            (0.0, segment("S", 1000)),
            (0.1, segment("A", 1001, ISS + 1)),
            (0.2, segment("PA", 1001, ISS + 1, b"ping\n")),
            (0.3, segment("FA", 1006, ISS + 7)),
        ],
    )
    fin = rows[-2]
    assert (fin.segment.flags.letters, fin.before, fin.after) == ("FA", S.FIN_WAIT_1, S.TIME_WAIT)
    assert fin.changes == [(S.FIN_WAIT_1, S.FIN_WAIT_2), (S.FIN_WAIT_2, S.TIME_WAIT)]


def test_a_change_with_no_segment_of_its_own_shows_on_the_next_row() -> None:
    # The reply waits behind a zero window: the application's close has no segment of
    # its own; the next row (the ACK of the request, sent after it) carries it.
    rows = run(
        listener(),
        [
            (0.0, segment("S", 1000, window=0)),
            (0.1, segment("A", 1001, ISS + 1, window=0)),
            (0.2, segment("PA", 1001, ISS + 1, b"ping\n", window=0)),
            (0.3, segment("A", 1006, ISS + 1, window=65535)),
        ],
    )
    assert labels(rows)[3:] == [
        ("in", "PA", S.ESTABLISHED, S.ESTABLISHED),
        ("out", "A", S.ESTABLISHED, S.FIN_WAIT_1),  # the request's ACK leaves after the close
        ("in", "A", S.FIN_WAIT_1, S.FIN_WAIT_1),  # the window opens
        ("out", "PA", S.FIN_WAIT_1, S.FIN_WAIT_1),
        ("out", "FA", S.FIN_WAIT_1, S.FIN_WAIT_1),
    ]
    assert rows[4].notes == ["application closed"]


def test_a_reset_ends_the_chain_and_a_new_incarnation_starts_a_new_one() -> None:
    rows = run(
        listener(),
        [
            (0.0, segment("S", 1000)),
            (0.1, segment("R", 1001)),
            (0.2, segment("S", 3000)),
        ],
    )
    assert labels(rows) == [
        ("in", "S", S.LISTEN, S.SYN_RECEIVED),
        ("out", "SA", S.SYN_RECEIVED, S.SYN_RECEIVED),
        ("in", "R", S.SYN_RECEIVED, S.LISTEN),
        ("in", "S", S.LISTEN, S.SYN_RECEIVED),
        ("out", "SA", S.SYN_RECEIVED, S.SYN_RECEIVED),
    ]


_FLAGS = st.sampled_from(["S", "A", "PA", "FA", "R", "RA", "SA", "F", ""])
_STEP = st.tuples(
    _FLAGS,
    st.sampled_from([0, 1, 5, 6, 9, 10, 14, 2**31]),  # client seq, from ISN 1000
    st.sampled_from([0, 1, 6, 7, 13, 14, 100]),  # ack, from our ISS
    st.sampled_from([b"", b"ping\n", b"toppage\n", b"x", b"\n"]),
    st.sampled_from([0.0, 0.01, 1.0, 3.0, 61.0]),  # time passes first
    st.booleans(),  # run the timers first
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=14), st.booleans())
def test_every_recorded_transition_is_one_rfc_9293_allows(
    steps: list[tuple[str, int, int, bytes, float, bool]], keep_open: bool
) -> None:
    core = Listener(
        ListenerConfig(local=SERVER, secret=b"k", max_half_open=1, time_wait_timeout=2.0, idle_timeout=5.0),
        make_app_factory(keep_open=keep_open),
        isn=lambda key, now: SeqNum(ISS),
    )
    inputs: list[tuple[float, Segment | None]] = []
    now = 0.0
    for flags, seq, ack, payload, wait, tick in steps:
        now += wait
        if tick:
            inputs.append((now, None))
        inputs.append((now, segment(flags, 1000 + seq, ISS + ack, payload if flags else b"")))
    inputs.append((now + 200.0, None))
    rows = run(core, inputs)
    last: State | None = None
    for row in rows:
        for change in row.changes:
            assert change in RFC_9293, f"{change} in {row}"
        if row.changes:
            # One segment may make several changes, each allowed, one after the other: a
            # FIN that also acknowledges ours ("If our FIN has been ACKed (perhaps in this
            # segment), then enter the TIME-WAIT state", §3.10.7.4 eighth), a handshake ACK
            # that carries a FIN (SYN-RECEIVED, ESTABLISHED, CLOSE-WAIT).
            assert row.before == row.changes[0][0] and row.after == row.changes[-1][1]
            for (_, reached), (start, _) in zip(row.changes, row.changes[1:], strict=False):
                assert reached is start, row
        else:
            assert row.before is row.after
        # One chain per incarnation: each row starts where the last one ended. A new
        # incarnation, or a listener's stateless answer, starts in LISTEN (the old one was
        # closed: by a RST, a timer, or a reset from us, whose CLOSED follows its last row).
        new_incarnation = row.before is S.LISTEN
        if last is not None and not new_incarnation and last is not S.TIME_WAIT:
            assert row.before is last, f"{row} after {last}"
        last = row.after

"""The core's events as values: built positionally or by keyword, with their defaults,
compared, hashed, shown and copied like the frozen dataclasses they were (a frozen
dataclass with the same fields, made here, is the oracle), and immutable.
``scripts/check.sh`` runs this file on the pure-Python source and again on the
mypyc-compiled build, where the events are native classes."""

from __future__ import annotations

import ast
import copy
import dataclasses
import pickle
import typing
from pathlib import Path
from typing import Any

import pytest

from l4kit.core.events import (
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    DropReason,
    Event,
    PeerClosed,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    StateChanged,
    SynCookie,
    TimerFired,
    TimerKind,
)
from l4kit.core.states import State
from l4kit.wire.flags import TcpFlags
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

KEY = FourTuple(Endpoint("127.0.0.1", 8888), Endpoint("127.0.0.1", 40000))
SEG = Segment(src="127.0.0.1", dst="127.0.0.1", sport=40000, dport=8888, seq=SeqNum(1), flags=TcpFlags.SYN)

# One example of every field value, by field name, and the defaults the dataclasses had.
VALUES: dict[str, Any] = {
    "time": 1.25,
    "key": KEY,
    "segment": SEG,
    "before": State.LISTEN,
    "after": State.SYN_RECEIVED,
    "retransmission": True,
    "why": "SYN-ACK",
    "cause": SEG,
    "data": b"toppage\n",
    "by_peer": True,
    "reason": DropReason.UNACCEPTABLE,
    "detail": "outside the window",
    "bytes_in": 8,
    "bytes_out": 12,
    "accepted": True,
    "timer": TimerKind.RETRANSMISSION,
    "state": State.ESTABLISHED,
    "attempt": 2,
}
DEFAULTS: dict[type, dict[str, Any]] = {
    SegmentSent: {"retransmission": False, "why": ""},
    StateChanged: {"why": ""},
    SegmentDropped: {"detail": ""},
    TimerFired: {"attempt": 0, "detail": ""},
}
EVENTS: tuple[type, ...] = typing.get_args(Event)


def reference(cls: type) -> type:
    """The frozen dataclass ``cls`` was: same name, fields and defaults."""
    defaults = DEFAULTS.get(cls, {})
    fields: list[Any] = [
        (name, Any, dataclasses.field(default=defaults[name])) if name in defaults else (name, Any)
        for name in cls.FIELDS  # type: ignore[attr-defined]
    ]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True)


# For each kind of event, the trace test that shows the core emitting it (file::test).
EMITTED_IN = {
    SegmentReceived: "test_core_listen.py::test_syn_gets_syn_ack_with_our_mss_and_nothing_else",
    SegmentSent: "test_core_listener.py::test_every_segment_is_reported_with_the_state_it_met",
    StateChanged: "test_core_established.py::test_the_original_exercise_happy_path",
    DataReceived: "test_core_established.py::test_out_of_order_halves_are_held_and_delivered_once_in_order",
    PeerClosed: "test_core_established.py::test_the_peer_s_fin_is_reported_once",
    ConnectionReset: "test_core_established.py::test_rst_with_exact_sequence_number_resets",
    SegmentDropped: "test_core_listener.py::test_an_exception_in_the_application_resets_only_that_connection",
    ConnectionClosed: "test_core_syn_received.py::test_exact_rst_in_syn_received_returns_to_listen",
    SynCookie: "test_core_syncookies.py::test_cookie_handshake_completes_and_the_data_on_the_ack_is_answered",
    TimerFired: "test_core_timers.py::test_fin_wait_2_times_out",
}


def test_every_event_kind_has_a_trace_test_that_checks_it() -> None:
    """A new kind of event must come with a trace test, named here, that looks at it."""
    assert set(EMITTED_IN) == set(EVENTS)
    here = Path(__file__).parent
    for kind, where in EMITTED_IN.items():
        file, name = where.split("::")
        source = (here / file).read_text()
        tests = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
        assert name in tests, f"{where} (for {kind.__name__}) does not exist"
        body = ast.get_source_segment(source, tests[name]) or ""
        assert kind.__name__ in body, f"{where} does not look at {kind.__name__}"
    for cls in EVENTS:
        assert set(cls.FIELDS) <= VALUES.keys()  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", EVENTS, ids=lambda cls: cls.__name__)
def test_an_event_is_a_frozen_dataclass_s_value(cls: type) -> None:
    values = [VALUES[name] for name in cls.FIELDS]  # type: ignore[attr-defined]
    event, ref = cls(*values), reference(cls)(*values)
    assert repr(event) == repr(ref)
    assert hash(event) == hash(ref)
    assert [getattr(event, name) for name in cls.FIELDS] == values  # type: ignore[attr-defined]
    by_keyword = cls(**dict(zip(cls.FIELDS, values, strict=True)))  # type: ignore[attr-defined]
    assert by_keyword == event and hash(by_keyword) == hash(event)
    for twin in (copy.copy(event), copy.deepcopy(event), pickle.loads(pickle.dumps(event))):
        assert type(twin) is cls and twin == event
    assert event != ref  # another class, as for two dataclasses
    for name in cls.FIELDS:  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):  # FrozenInstanceError as pure Python
            setattr(event, name, None)
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
    assert [getattr(event, name) for name in cls.FIELDS] == values  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_defaults(cls: type) -> None:
    defaults = DEFAULTS[cls]
    required = [VALUES[name] for name in cls.FIELDS if name not in defaults]  # type: ignore[attr-defined]
    event = cls(*required)
    assert {name: getattr(event, name) for name in defaults} == defaults
    assert repr(event) == repr(reference(cls)(*required))


def test_equality_needs_every_field() -> None:
    a = SegmentSent(1.0, KEY, SEG, State.SYN_RECEIVED, why="SYN-ACK")
    assert a == SegmentSent(1.0, KEY, SEG, State.SYN_RECEIVED, False, "SYN-ACK")
    assert a != SegmentSent(1.0, KEY, SEG, State.SYN_RECEIVED, True, "SYN-ACK")
    assert a != SegmentSent(1.5, KEY, SEG, State.SYN_RECEIVED, why="SYN-ACK")
    assert a != SegmentSent(1.0, KEY, SEG, State.LISTEN, why="SYN-ACK")
    assert PeerClosed(1.0, KEY) != DataReceived(1.0, KEY, b"")
    assert len({PeerClosed(1.0, KEY), PeerClosed(1.0, KEY), ConnectionReset(1.0, KEY, True, "")}) == 2
    assert SynCookie(0.0, KEY, False) != SynCookie(0.0, KEY, True)
    assert ConnectionClosed(0.0, KEY, "", 1, 2) != SegmentReceived(0.0, KEY, SEG, State.LISTEN)

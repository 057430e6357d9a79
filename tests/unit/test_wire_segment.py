"""``Segment`` as a value: built, compared, hashed, shown, copied and changed like the
frozen, keyword-only dataclass it replaced (a reference dataclass with the same fields
is the oracle). ``scripts/check.sh`` runs this file on the pure-Python source and again
on the mypyc-compiled build, where ``Segment`` is a native class."""

from __future__ import annotations

import copy
import dataclasses
import operator
import pickle
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from hypothesis import given
from wire_strategies import segments

from l4kit.checksum import ChecksumStatus
from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import MaxSegmentSize, SackPermitted, TcpOption, Timestamps, WindowScale
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

NO_ACK = SeqNum(0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """What ``Segment`` was: the standard library's frozen dataclass."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: SeqNum
    ack: SeqNum = NO_ACK
    flags: TcpFlags
    window: int = 65535
    urgent: int = 0
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""
    checksum: ChecksumStatus = ChecksumStatus.OK


def reference_of(seg: Segment) -> Reference:
    return Reference(**{name: getattr(seg, name) for name in Segment.FIELDS})


def test_the_fields_are_the_references() -> None:
    assert tuple(f.name for f in dataclasses.fields(Reference)) == Segment.FIELDS


@given(segments(decodable=False))
def test_repr_equality_and_hash_are_a_frozen_dataclass_s(seg: Segment) -> None:
    ref = reference_of(seg)
    assert repr(seg) == repr(ref).replace("Reference(", "Segment(", 1)
    twin = Segment(**{name: getattr(seg, name) for name in Segment.FIELDS})
    assert twin == seg and operator.ne(twin, seg) is False and hash(twin) == hash(seg)
    assert hash(seg) == hash(ref)  # a frozen dataclass hashes the tuple of its fields


@given(segments(decodable=False))
def test_copies_and_pickles_are_equal(seg: Segment) -> None:
    for twin in (copy.copy(seg), copy.deepcopy(seg), pickle.loads(pickle.dumps(seg))):
        assert type(twin) is Segment and twin == seg


@given(segments(decodable=False))
def test_with_changes_only_the_fields_named(seg: Segment) -> None:
    changes: dict[str, Any] = {"window": (seg.window + 1) % 65536, "payload": seg.payload + b"x"}
    changed = seg.with_(**changes)
    expected = dataclasses.replace(reference_of(seg), **changes)
    assert reference_of(changed) == expected
    assert changed != seg
    assert seg.with_() == seg


def test_defaults() -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(7), flags=TcpFlags.SYN)
    assert reference_of(seg) == Reference(
        src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(7), flags=TcpFlags.SYN
    )
    assert seg.key == FourTuple(Endpoint("10.0.0.2", 2), Endpoint("10.0.0.1", 1))
    assert seg.seg_len == 1


def test_it_is_immutable_and_keyword_only() -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(7), flags=TcpFlags.ACK)
    with pytest.raises(FrozenInstanceError):
        seg.window = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        seg.extra = 1
    assert seg.window == 65535
    with pytest.raises(TypeError):
        Segment("10.0.0.1", "10.0.0.2", 1, 2, SeqNum(7))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no field"):
        seg.with_(colour="red")


def test_a_segment_is_never_equal_to_something_else() -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(7), flags=TcpFlags.ACK)
    assert seg != reference_of(seg)
    assert seg != (seg.src, seg.dst)


@given(segments())
def test_option_accessors_read_the_first_option_of_their_kind(seg: Segment) -> None:
    def first(kind: type) -> Any:
        return next((opt for opt in seg.options if isinstance(opt, kind)), None)

    mss, wscale, stamps = first(MaxSegmentSize), first(WindowScale), first(Timestamps)
    assert seg.option(MaxSegmentSize) is mss
    assert seg.mss == (None if mss is None else mss.value)
    assert seg.window_scale == (None if wscale is None else wscale.shift)
    assert seg.timestamps is stamps
    assert seg.sack_permitted == (first(SackPermitted) is not None)


def test_option_is_none_without_that_kind() -> None:
    seg = Segment(
        src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(1), flags=TcpFlags.SYN,
        options=(WindowScale(7), MaxSegmentSize(1460), MaxSegmentSize(536)),
    )  # fmt: skip
    assert seg.option(Timestamps) is None
    assert seg.option(MaxSegmentSize) == MaxSegmentSize(1460)
    assert (seg.mss, seg.window_scale, seg.timestamps, seg.sack_permitted) == (1460, 7, None, False)

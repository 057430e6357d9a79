"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982), against plain-int
references written from the RFCs' definitions. ``scripts/check.sh`` runs this file on
the pure-Python source and again on the mypyc-compiled build, where ``SeqNum`` is a
native class."""

from __future__ import annotations

import copy
import operator
import pickle
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l4kit.wire.seqnum import HALF, MASK, MOD, SeqNum, seq_diff, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt

u32 = st.integers(min_value=0, max_value=MASK)
any_int = st.integers(min_value=-(1 << 70), max_value=1 << 70)
octets = st.integers(min_value=-(1 << 33), max_value=1 << 33)


def serial_less(a: int, b: int) -> bool:
    """RFC 1982 §3.2, for SERIAL_BITS = 32: i1 < i2 when they differ and the forward
    distance from i1 to i2 is below 2**31."""
    return (a < b and b - a < HALF) or (a > b and a - b > HALF)


def signed_distance(a: int, b: int) -> int:
    """The number of octets from ``b`` forward to ``a``, in [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


@given(any_int)
def test_the_value_is_reduced_modulo_2_32(n: int) -> None:
    assert SeqNum(n).value == n % MOD
    assert 0 <= SeqNum(n).value <= MASK


@given(u32, octets)
def test_adding_and_subtracting_octets_wrap(a: int, n: int) -> None:
    assert (SeqNum(a) + n).value == (a + n) % MOD
    assert (SeqNum(a) - n).value == (a - n) % MOD
    assert (SeqNum(a) + n) - n == SeqNum(a)


def test_the_wrap_itself() -> None:
    assert SeqNum(MASK) + 1 == SeqNum(0)
    assert SeqNum(0) - 1 == SeqNum(MASK)
    assert SeqNum(MASK) < SeqNum(0)
    assert SeqNum(5) - SeqNum(MASK) == 6


@given(u32, u32)
def test_the_difference_of_two_is_the_signed_distance(a: int, b: int) -> None:
    distance = SeqNum(a) - SeqNum(b)
    assert distance == signed_distance(a, b) == SeqNum(a).distance(SeqNum(b))
    assert -HALF <= distance < HALF
    if distance != -HALF:  # exactly half-way: no way back is shorter
        assert SeqNum(b) + distance == SeqNum(a)


@given(u32, u32)
def test_comparisons_follow_rfc_1982(a: int, b: int) -> None:
    x, y = SeqNum(a), SeqNum(b)
    assert (x < y) == serial_less(a, b)
    assert (x > y) == serial_less(b, a)
    assert (x <= y) == (serial_less(a, b) or a == b)
    assert (x >= y) == (serial_less(b, a) or a == b)
    assert (x == y) == (a == b)
    assert (x != y) == (a != b)


def test_numbers_half_the_space_apart_are_neither_less_nor_greater() -> None:
    x, y = SeqNum(0), SeqNum(HALF)
    assert not x < y and not y < x and not x > y and not y > x
    assert x != y


@given(u32, u32, st.integers(min_value=0, max_value=HALF))
def test_in_window(a: int, start: int, size: int) -> None:
    inside = (a - start) % MOD < size
    assert SeqNum(a).in_window(SeqNum(start), size) is inside
    if size:
        assert SeqNum(start).in_window(SeqNum(start), size)
        assert not (SeqNum(start) + size).in_window(SeqNum(start), size)


@given(any_int)
def test_equal_values_are_equal_hash_alike_and_survive_copies_and_pickling(n: int) -> None:
    x = SeqNum(n)
    assert x == SeqNum(n % MOD) and hash(x) == hash(SeqNum(n % MOD))
    assert len({x, SeqNum(n % MOD)}) == 1
    for twin in (copy.copy(x), copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert type(twin) is SeqNum and twin == x


def test_text_and_int() -> None:
    assert repr(SeqNum(7)) == "SeqNum(7)"
    assert str(SeqNum(-1)) == str(MASK)
    assert int(SeqNum(MOD + 3)) == 3
    assert SeqNum(3) != 3  # a sequence number never equals a plain int


def test_it_is_immutable() -> None:
    x = SeqNum(5)
    with pytest.raises(AttributeError):
        x.value = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        x.other = 1
    assert x.value == 5


def test_meaningless_arithmetic_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot add two sequence numbers"):
        operator.add(SeqNum(1), SeqNum(2))
    wrong: Any
    for wrong in (1.5, "1", None):
        with pytest.raises(TypeError):
            operator.add(SeqNum(1), wrong)
        with pytest.raises(TypeError):
            operator.sub(SeqNum(1), wrong)


def test_it_is_not_an_int_where_python_wants_one() -> None:
    """Alike in both builds (mypyc gives a native class no ``__index__``): the bytes
    come from ``.value`` or ``int()``."""
    with pytest.raises(TypeError):
        operator.index(SeqNum(1))  # type: ignore[arg-type]
    with pytest.raises(struct.error):
        struct.pack("!I", SeqNum(1))
    assert struct.pack("!I", int(SeqNum(-1))) == b"\xff\xff\xff\xff"


@given(u32, u32, st.integers(0, HALF))
def test_the_plain_int_rules_are_seqnums(a: int, b: int, size: int) -> None:
    """Replay compares raw 32-bit ints with seq_*: the same answers as SeqNum's."""
    x, y = SeqNum(a), SeqNum(b)
    assert (seq_lt(a, b), seq_le(a, b), seq_gt(a, b), seq_ge(a, b)) == (x < y, x <= y, x > y, x >= y)
    assert seq_diff(a, b) == x - y
    assert seq_in_window(a, b, size) == x.in_window(y, size)

"""TCP sequence numbers: 32-bit values compared modulo 2**32.

RFC 9293 §3.4: "the sequence number space is finite ... all arithmetic dealing
with sequence numbers must be performed modulo 2**32". Comparisons use the
serial-number rule (RFC 1982): ``a < b`` when ``(b - a) mod 2**32`` is in
``(0, 2**31)``. Two numbers exactly 2**31 apart are neither less nor greater;
TCP never needs to compare values that far apart inside one window.

Plain ``int`` arithmetic silently breaks at the wrap (0xFFFFFFFF + 1 == 0), so
the core never stores a sequence number as a raw int. A :class:`SeqNum` is not an
int where Python wants one (``struct.pack``, Scapy's fields, indexing): pass
``seq.value`` or ``int(seq)``.

``pip install .`` compiles this module with mypyc (``setup.py``), as the core that
does arithmetic on these several times a segment is: its calls into a compiled
``SeqNum`` are direct C calls. The pure-Python class is the same, immutable too
(:mod:`l4kit.wire.value` says how), and ``tests/unit/test_wire_seqnum.py`` runs on both
builds (``scripts/check.sh``).
"""

from __future__ import annotations

from typing import Final, NoReturn, overload

from l4kit.wire.value import pure_python_init

MOD: Final = 1 << 32
MASK: Final = MOD - 1  # the 32 bits of a sequence number, for code that works on raw ints
HALF: Final = 1 << 31  # distances at or above this are "behind", modulo 2**32 (RFC 1982)


class SeqNum:
    """An immutable 32-bit TCP sequence number.

    ``SeqNum + int`` and ``SeqNum - int`` wrap; ``SeqNum - SeqNum`` gives the
    signed distance (an int in ``[-2**31, 2**31)``), so ``b - a`` is the number
    of octets from ``a`` to ``b``.
    """

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value: Final[int] = value % MOD

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SeqNum is immutable")

    @overload
    def __add__(self, other: int) -> SeqNum: ...
    @overload
    def __add__(self, other: SeqNum) -> NoReturn: ...
    def __add__(self, other: int | SeqNum) -> SeqNum:
        # The implementation admits a SeqNum so that, compiled, adding one is this
        # TypeError rather than mypyc's refusal of the argument.
        if isinstance(other, SeqNum):  # adding two sequence numbers is meaningless
            raise TypeError("cannot add two sequence numbers; add an octet count")
        return SeqNum(self.value + other)

    @overload
    def __sub__(self, other: SeqNum) -> int: ...
    @overload
    def __sub__(self, other: int) -> SeqNum: ...
    def __sub__(self, other: SeqNum | int) -> int | SeqNum:
        if isinstance(other, SeqNum):
            d = (self.value - other.value) % MOD
            return d - MOD if d >= HALF else d
        return SeqNum(self.value - other)

    def distance(self, other: SeqNum) -> int:
        """Signed distance ``self - other`` as an int (a typed spelling of ``-``)."""
        d = (self.value - other.value) % MOD
        return d - MOD if d >= HALF else d

    def __lt__(self, other: SeqNum) -> bool:
        return 0 < (other.value - self.value) % MOD < HALF

    def __le__(self, other: SeqNum) -> bool:
        return (other.value - self.value) % MOD < HALF

    def __gt__(self, other: SeqNum) -> bool:
        return 0 < (self.value - other.value) % MOD < HALF

    def __ge__(self, other: SeqNum) -> bool:
        return (self.value - other.value) % MOD < HALF

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqNum) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("SeqNum", self.value))

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"SeqNum({self.value})"

    def __str__(self) -> str:
        return str(self.value)

    def __reduce__(self) -> tuple[type[SeqNum], tuple[int]]:
        return (SeqNum, (self.value,))

    def in_window(self, start: SeqNum, size: int) -> bool:
        """``start <= self < start + size`` modulo 2**32 (RFC 9293 §3.4)."""
        return (self.value - start.value) % MOD < size


def _sequence_value(value: object) -> int:
    """What the written ``__init__`` stores when ``value`` is not exactly an ``int``, as pure
    Python (compiled, the signature refuses a non-int; a bool is an int)."""
    if not isinstance(value, int):
        raise TypeError(f"a sequence number is an int, not {type(value).__name__}")
    return value % MOD


pure_python_init(
    SeqNum,
    {"value": "value % _MOD if value.__class__ is int else _sequence_value(value)"},
    {"_MOD": MOD, "_sequence_value": _sequence_value},
)


# ---------------------------------------------------------------- the same rule on plain ints
#
# For code that keeps sequence numbers as raw 32-bit ints because it handles one per
# packet of a capture (replay's observers): the comparisons of SeqNum, in one place.
# Compiled by mypyc, a call from another compiled module is a direct C call.


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` modulo 2**32 (RFC 1982)."""
    return 0 < ((b - a) & MASK) < HALF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` modulo 2**32."""
    return ((b - a) & MASK) < HALF


def seq_gt(a: int, b: int) -> bool:
    """``a > b`` modulo 2**32."""
    return 0 < ((a - b) & MASK) < HALF


def seq_ge(a: int, b: int) -> bool:
    """``a >= b`` modulo 2**32."""
    return ((a - b) & MASK) < HALF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as a signed distance in ``[-2**31, 2**31)`` (as ``SeqNum - SeqNum``)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def seq_in_window(seq: int, start: int, size: int) -> bool:
    """``start <= seq < start + size`` modulo 2**32 (as :meth:`SeqNum.in_window`)."""
    return ((seq - start) & MASK) < size

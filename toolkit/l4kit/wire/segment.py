"""The segment description that the core speaks.

A :class:`Segment` is one TCP segment with the addresses of the IP packet
that carried it: what the core receives, and what it asks the drivers to send.
It says nothing about link layers, IP identification or TTL: the codecs
(``l4kit.codecs``) decide those when they turn a segment into bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from types import FunctionType
from typing import Any, Final, NamedTuple

from l4kit.checksum import ChecksumStatus
from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import MaxSegmentSize, SackPermitted, TcpOption, Timestamps, WindowScale
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.value import FrozenValue


class Endpoint(NamedTuple):
    """One end of a connection: an IP address as text and a port."""

    addr: str
    port: int

    def __str__(self) -> str:
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


class FourTuple(NamedTuple):
    """A connection's key as seen from one side: (local, remote)."""

    local: Endpoint
    remote: Endpoint

    def __str__(self) -> str:
        return f"{self.local} <-> {self.remote}"


_NO_ACK: Final = SeqNum(0)  # immutable, so every segment without an ACK may share it
_SYN_BIT: Final = int(TcpFlags.SYN)
_FIN_BIT: Final = int(TcpFlags.FIN)
_new_tuple = tuple.__new__


class Segment(FrozenValue):
    """One TCP segment and the IP addresses that carried it.

    ``window`` is the raw 16-bit field (not scaled). ``checksum`` is only
    meaningful for received segments: the decoder classifies the field as
    ok, bad or offloaded; the core drops ``BAD`` ones.

    An immutable value, compared, hashed and shown field by field like a frozen
    dataclass (:class:`~l4kit.wire.value.FrozenValue`; ``with_`` is
    ``dataclasses.replace``); the fields are keyword-only, in ``FIELDS`` order.

    Performance: every received and every sent segment is one of these, several per
    connection. ``pip install .`` compiles this module with mypyc (``setup.py``): the
    class is then a native one, built in well under a microsecond where the frozen
    dataclass it was took about 3.5 µs (``benchmarks/README.md``), and its fields are
    read-only to code outside it (``Final``). As pure Python, the constructor stores
    through the slots' own setters, past ``__setattr__``. ``seg_len`` and ``key`` avoid
    ``IntFlag`` arithmetic and the named tuples' Python-level ``__new__``.
    """

    FIELDS = (
        "src",
        "dst",
        "sport",
        "dport",
        "seq",
        "ack",
        "flags",
        "window",
        "urgent",
        "options",
        "payload",
        "checksum",
    )
    __slots__ = FIELDS

    def __init__(
        self,
        *,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        seq: SeqNum,
        ack: SeqNum = _NO_ACK,
        flags: TcpFlags,
        window: int = 65535,
        urgent: int = 0,
        options: tuple[TcpOption, ...] = (),
        payload: bytes = b"",
        checksum: ChecksumStatus = ChecksumStatus.OK,
    ) -> None:
        if _PURE:  # through the slots' own setters, past __setattr__
            _set_src(self, src)
            _set_dst(self, dst)
            _set_sport(self, sport)
            _set_dport(self, dport)
            _set_seq(self, seq)
            _set_ack(self, ack)
            _set_flags(self, flags)
            _set_window(self, window)
            _set_urgent(self, urgent)
            _set_options(self, options)
            _set_payload(self, payload)
            _set_checksum(self, checksum)
            return
        self.src: Final = src
        self.dst: Final = dst
        self.sport: Final = sport
        self.dport: Final = dport
        self.seq: Final = seq
        self.ack: Final = ack
        self.flags: Final = flags
        self.window: Final = window
        self.urgent: Final = urgent
        self.options: Final = options
        self.payload: Final = payload
        self.checksum: Final = checksum

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __reduce__(self) -> tuple[Callable[..., Segment], tuple[object, ...]]:
        return (_segment_of, self._values())

    @property
    def seg_len(self) -> int:
        """SEG.LEN of RFC 9293: payload octets plus one for SYN and one for FIN."""
        flags = int(self.flags)
        return len(self.payload) + (flags & _SYN_BIT) // _SYN_BIT + (flags & _FIN_BIT)

    @property
    def source(self) -> Endpoint:
        return Endpoint(self.src, self.sport)

    @property
    def destination(self) -> Endpoint:
        return Endpoint(self.dst, self.dport)

    @property
    def key(self) -> FourTuple:
        """The connection key from the receiver's side: (destination, source)."""
        return _new_tuple(
            FourTuple,
            (_new_tuple(Endpoint, (self.dst, self.dport)), _new_tuple(Endpoint, (self.src, self.sport))),
        )

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.src

    @property
    def mss(self) -> int | None:
        for opt in self.options:
            if isinstance(opt, MaxSegmentSize):
                return opt.value
        return None

    @property
    def window_scale(self) -> int | None:
        for opt in self.options:
            if isinstance(opt, WindowScale):
                return opt.shift
        return None

    @property
    def sack_permitted(self) -> bool:
        return any(isinstance(opt, SackPermitted) for opt in self.options)

    @property
    def timestamps(self) -> Timestamps | None:
        for opt in self.options:
            if isinstance(opt, Timestamps):
                return opt
        return None

    def with_(self, **changes: Any) -> Segment:
        """A copy with some fields changed (``dataclasses.replace``)."""
        values: dict[str, Any] = dict(zip(Segment.FIELDS, self._values(), strict=True))
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(f"Segment has no field {', '.join(sorted(unknown))}")
        values.update(changes)
        return Segment(**values)

    def __str__(self) -> str:
        extra = f" len={len(self.payload)}" if self.payload else ""
        return (
            f"{self.source} > {self.destination} [{self.flags.letters or '.'}] "
            f"seq={self.seq.value} ack={self.ack.value} win={self.window}{extra}"
        )


# Compiled by mypyc (setup.py), Segment is a native class whose constructor stores its
# Final fields directly. As pure Python, the constructor stores through the slots' own
# setters, which bypass __setattr__ (it refuses every change), rather than a frozen
# dataclass's object.__setattr__ per field.
_PURE: Final = isinstance(vars(Segment)["__init__"], FunctionType)
(
    _set_src,
    _set_dst,
    _set_sport,
    _set_dport,
    _set_seq,
    _set_ack,
    _set_flags,
    _set_window,
    _set_urgent,
    _set_options,
    _set_payload,
    _set_checksum,
) = (vars(Segment)[name].__set__ for name in Segment.FIELDS)


def _segment_of(*values: Any) -> Segment:
    """Unpickling: the fields in :attr:`Segment.FIELDS` order."""
    return Segment(**dict(zip(Segment.FIELDS, values, strict=True)))

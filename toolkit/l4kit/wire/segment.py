"""The segment description that the core speaks.

A :class:`Segment` is one TCP segment with the addresses of the IP packet
that carried it: what the core receives, and what it asks the drivers to send.
It says nothing about link layers, IP identification or TTL: the codecs
(``l4kit.codecs``) decide those when they turn a segment into bytes.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, TypeVar

from l4kit.checksum import ChecksumStatus
from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import MaxSegmentSize, SackPermitted, TcpOption, Timestamps, WindowScale
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.value import FrozenValue, pure_python_init

_Option = TypeVar("_Option", bound=TcpOption)


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
    connection, so this module is compiled by mypyc (:mod:`l4kit.wire.value` says how
    the same class stays immutable and fast as pure Python). ``seg_len`` and ``key``
    avoid ``IntFlag`` arithmetic and the named tuples' Python-level ``__new__``.
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

    def option(self, kind: type[_Option]) -> _Option | None:
        """The first option of class ``kind`` the segment carries, None if it has none."""
        for opt in self.options:
            if isinstance(opt, kind):
                return opt
        return None

    @property
    def mss(self) -> int | None:
        opt = self.option(MaxSegmentSize)
        return None if opt is None else opt.value

    @property
    def window_scale(self) -> int | None:
        opt = self.option(WindowScale)
        return None if opt is None else opt.shift

    @property
    def sack_permitted(self) -> bool:
        return self.option(SackPermitted) is not None

    @property
    def timestamps(self) -> Timestamps | None:
        return self.option(Timestamps)

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


pure_python_init(Segment)

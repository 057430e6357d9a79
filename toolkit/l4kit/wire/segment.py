"""The segment description that the core speaks.

A :class:`Segment` is one TCP segment with the addresses of the IP packet
that carried it: what the core receives, and what it asks the drivers to send.
It says nothing about link layers, IP identification or TTL: the codecs
(``l4kit.codecs``) decide those when they turn a segment into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple

from l4kit.checksum import ChecksumStatus
from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import MaxSegmentSize, SackPermitted, TcpOption, Timestamps, WindowScale
from l4kit.wire.seqnum import SeqNum


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


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Segment:
    """One TCP segment and the IP addresses that carried it.

    ``window`` is the raw 16-bit field (not scaled). ``checksum`` is only
    meaningful for received segments: the decoder classifies the field as
    ok, bad or offloaded; the core drops ``BAD`` ones.

    Performance: every received and every sent segment is one of these, several
    per connection, so ``__init__`` is written out (the fields, their defaults and
    their order are the dataclass's) and stores through the slots directly, where
    the generated frozen ``__init__`` goes through ``object.__setattr__`` once per
    field; ``seg_len`` and ``key`` avoid ``IntFlag`` arithmetic and the named
    tuples' Python-level ``__new__``.
    """

    src: str
    dst: str
    sport: int
    dport: int
    seq: SeqNum
    ack: SeqNum = field(default_factory=lambda: SeqNum(0))
    flags: TcpFlags
    window: int = 65535
    urgent: int = 0
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""
    checksum: ChecksumStatus = ChecksumStatus.OK

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

    def with_(self, **changes: object) -> Segment:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        extra = f" len={len(self.payload)}" if self.payload else ""
        return (
            f"{self.source} > {self.destination} [{self.flags.letters or '.'}] "
            f"seq={self.seq.value} ack={self.ack.value} win={self.window}{extra}"
        )


# The slots' own setters, for Segment.__init__ (they bypass the frozen __setattr__).
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
) = (
    Segment.__dict__[name].__set__
    for name in (
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
)

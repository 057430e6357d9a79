"""A packetdrill script as values: what the parser builds and the printer writes.

A script is a list of :class:`Event`, each a time (:class:`EventTime`) and an
action: a TCP packet the stack must receive (``<``) or send (``>``), a system
call with its expected result, a shell command or a block of Python. Times are
integers of microseconds, as packetdrill keeps them; sequence numbers are the
script's own (relative to the initial sequence numbers), mapped to live values
by whoever runs the script.

Everything here is an immutable value with structural equality, so a script
printed and parsed again compares equal to itself (the property tests rely on
it). Nothing here runs anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from l4kit.wire.options import TcpOption


class TimeKind(enum.StrEnum):
    """How an event's time is written: ``1.5`` (absolute), ``+.1`` (after the
    previous event), ``*`` (any time), ``1~2`` and ``+0~+.2`` (a window, for
    packets the stack sends)."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"
    ANY = "any"
    ABSOLUTE_RANGE = "absolute-range"
    RELATIVE_RANGE = "relative-range"


@dataclass(frozen=True, slots=True)
class EventTime:
    """``start_us`` (and ``end_us`` for a range) in microseconds, as written:
    relative times are not yet anchored to the previous event."""

    kind: TimeKind
    start_us: int = 0
    end_us: int | None = None

    @property
    def is_relative(self) -> bool:
        return self.kind in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class AnyValue:
    """``...``: any value (an address the runner fills in, a buffer, a length)."""


@dataclass(frozen=True, slots=True)
class IntValue:
    """An integer, written in decimal or (``hex``) as ``0x...``."""

    value: int
    hex: bool = False


@dataclass(frozen=True, slots=True)
class Word:
    """A symbol: ``SOCK_STREAM``, ``O_NONBLOCK``, ``MSG_FASTOPEN``; its value is the
    runner's business (a Linux constant, or an error if unknown)."""

    name: str


@dataclass(frozen=True, slots=True)
class StringValue:
    """A quoted string (adjacent strings are joined); ``ellipsis`` is ``"..."...``."""

    text: str
    ellipsis: bool = False


@dataclass(frozen=True, slots=True)
class BitOr:
    """``A|B``: flags or'ed together."""

    lhs: Expression
    rhs: Expression


@dataclass(frozen=True, slots=True)
class ListValue:
    """``[1]``, ``[]``, ``[{...}, {...}]``: a pointer to a value, or an array."""

    items: tuple[Expression, ...] = ()


@dataclass(frozen=True, slots=True)
class Field:
    """``name=value`` inside braces, ``name(arg)=value`` for ``msg_iov(1)=[...]``."""

    name: str
    value: Expression
    arg: Expression | None = None


@dataclass(frozen=True, slots=True)
class Struct:
    """``{...}``: a structure (``{fd=3, events=POLLIN}``, ``{sa_family=AF_INET, ...}``,
    an iovec ``{..., 100}``); fields and plain items in the order written."""

    items: tuple[Expression | Field, ...] = ()

    def get(self, name: str) -> Field | None:
        for item in self.items:
            if isinstance(item, Field) and item.name == name:
                return item
        return None


@dataclass(frozen=True, slots=True)
class Call:
    """``htons(8080)``, ``inet_addr("192.0.2.1")``: a helper written inside a structure."""

    name: str
    args: tuple[Expression, ...] = ()


Expression = AnyValue | IntValue | Word | StringValue | BitOr | ListValue | Struct | Call | Field


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class IpInfo:
    """IP-level fields of a packet: ``[ect0]``, ``(tos 0x10)``, ``[noecn, flowlabel 0x1]``,
    ``(ttl 64)``. ``ecn`` is one of ``noecn ect0 ect1 ce`` (the two ECN bits) or
    ``ect01`` (either ECT codepoint, outbound only)."""

    ecn: str | None = None
    tos: int | None = None
    flow_label: int | None = None
    ttl: int | None = None


Direction = Literal["<", ">"]


@dataclass(frozen=True, slots=True)
class TcpPacket:
    """``< S 0:0(0) win 32792 <mss 1000,nop,wscale 7>`` and the like.

    ``flags`` is packetdrill's notation (``S``, ``S.``, ``P.``, ``F.``, ``R``, ``.``,
    ``-`` for none; ``.`` is ACK, ``E`` ECE, ``W`` CWR, ``A`` AE). ``options`` is
    ``None`` for ``<...>`` (any options), else the options in order (an empty
    tuple: no options). ``window`` is ``None`` when not written (outbound only:
    not checked). ``ports`` is ``(source, destination)`` when written.
    """

    direction: Direction
    flags: str
    seq: int
    end_seq: int
    payload_len: int
    ack: int | None = None
    window: int | None = None
    urgent: int | None = None
    options: tuple[TcpOption, ...] | None = ()
    ip: IpInfo | None = None
    ports: tuple[int, int] | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


@dataclass(frozen=True, slots=True)
class IcmpPacket:
    """``< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]``: an ICMP message about
    a packet the stack sent. ``echoed`` is the quoted packet: ``("tcp", start, end,
    length)`` for a TCP segment (its sequence number is the script's), ``("udp", 0,
    0, length)`` or ``("raw", 0, 0, length)``; ``None`` when not written (a TCP
    segment at sequence 0)."""

    direction: Direction
    icmp_type: str
    code: str | None = None
    mtu: int | None = None
    echo_id: int | None = None
    echoed: tuple[str, int, int, int] | None = None
    ip: IpInfo | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == "<"


@dataclass(frozen=True, slots=True)
class Syscall:
    """``read(4, ..., 2000) = 2000``, ``connect(3, ..., ...) = -1 EINPROGRESS (...)``.

    ``end_us`` is the return time of a blocking call (``+0...0.1 read(...)``): the
    call runs in its own thread and must return then; ``None`` for a call that
    must not block. ``note`` is the text in parentheses after the result.
    """

    name: str
    args: tuple[Expression, ...]
    result: Expression
    errno: str | None = None
    note: str | None = None
    end_us: int | None = None

    @property
    def blocking(self) -> bool:
        return self.end_us is not None


@dataclass(frozen=True, slots=True)
class Command:
    """A shell command in backquotes, run with ``/bin/sh -c``."""

    text: str


@dataclass(frozen=True, slots=True)
class Code:
    """``%{ python }%``: run with the ``tcpi_*`` values of the socket under test."""

    text: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Something packetdrill understands and l4kit does not (GRE, MPLS, PSP, UDP or
    ICMP packets, ...): kept so the script parses, and fails at this event with
    ``unsupported: <what>``. ``text`` is the source as written."""

    what: str
    text: str


Action = TcpPacket | IcmpPacket | Syscall | Command | Code | Unsupported


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    time: EventTime
    action: Action


@dataclass(frozen=True, slots=True)
class Option:
    """A ``--name=value`` line at the top of a script (``value`` is ``None`` for a flag)."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script: its options, the command run before the first event (written
    without a time), the events, and the command run after the last one."""

    events: tuple[Event, ...]
    options: tuple[Option, ...] = ()
    init_command: Command | None = None
    cleanup_command: Command | None = None
    path: str = field(default="<script>", compare=False)

    def option(self, name: str) -> str | None:
        """The value of the last ``--name=...`` line (``""`` for a bare flag), or ``None``."""
        value = None
        for option in self.options:
            if option.name == name:
                value = option.value if option.value is not None else ""
        return value

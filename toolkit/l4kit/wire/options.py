"""TCP options as values (RFC 9293 §3.2, RFC 7323, RFC 2018).

Each option is a small frozen dataclass; a header's options are a tuple of
them in wire order, so decoding and re-encoding gives back the same bytes.
Padding after an End-of-Option-List is kept as :attr:`EndOfOptions.padding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Option kinds (IANA "TCP Option Kind Numbers").
KIND_EOL: Final = 0
KIND_NOP: Final = 1
KIND_MSS: Final = 2
KIND_WSCALE: Final = 3
KIND_SACK_PERMITTED: Final = 4
KIND_SACK: Final = 5
KIND_TIMESTAMPS: Final = 8


def _check_field(value: int, bits: int, what: str) -> None:
    """An option field must fit the octets the option gives it on the wire."""
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what} {value} does not fit in {bits} bits")


@dataclass(frozen=True, slots=True)
class EndOfOptions:
    """Kind 0, one octet. Everything after it in the header is padding,
    normally zeros; kept verbatim so that re-encoding is exact."""

    padding: bytes = b""


@dataclass(frozen=True, slots=True)
class NoOperation:
    """Kind 1, one octet, used to align the next option."""


@dataclass(frozen=True, slots=True)
class MaxSegmentSize:
    """Kind 2, length 4 (RFC 9293 §3.7.1): the largest segment the sender
    of the SYN is willing to receive, in octets of TCP payload."""

    value: int

    def __post_init__(self) -> None:
        _check_field(self.value, 16, "MSS")


@dataclass(frozen=True, slots=True)
class WindowScale:
    """Kind 3, length 3 (RFC 7323 §2): shift count; values above 14 are
    treated as 14 by the receiver, but kept as sent here."""

    shift: int

    def __post_init__(self) -> None:
        _check_field(self.shift, 8, "window scale")


@dataclass(frozen=True, slots=True)
class SackPermitted:
    """Kind 4, length 2 (RFC 2018 §2), only on SYN segments."""


@dataclass(frozen=True, slots=True)
class Sack:
    """Kind 5, length 2 + 8n (RFC 2018 §3): blocks of (left edge, right edge)
    as raw 32-bit sequence numbers."""

    blocks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Timestamps:
    """Kind 8, length 10 (RFC 7323 §3): TSval and TSecr."""

    tsval: int
    tsecr: int


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """Any other kind, skipped by its length and kept as raw data."""

    kind: int
    data: bytes


TcpOption = (
    EndOfOptions
    | NoOperation
    | MaxSegmentSize
    | WindowScale
    | SackPermitted
    | Sack
    | Timestamps
    | UnknownOption
)

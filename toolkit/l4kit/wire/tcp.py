"""The TCP header (RFC 9293 §3.1) and its options: decode and encode.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                        Sequence Number                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Acknowledgment Number                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Data |     |N|C|E|U|A|P|R|S|F|                               |
    | Offset| Rsv |S|W|C|R|C|S|S|Y|I|            Window             |
    |       |     | |R|E|G|K|H|T|N|N|                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           Checksum            |         Urgent Pointer        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options                    |    Padding    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The 16 bits at offset 12 are read as one word: data offset (4 bits), three
reserved bits, then the nine flags with NS (RFC 3540) as bit 8, as Scapy lays
them out.

Decoding follows PyTCP: *integrity* first (can the bytes be read?), raising
:class:`~l4kit.errors.IntegrityError`, then *sanity* (readable, but illegal?),
raising :class:`~l4kit.errors.SanityError`. Options are walked once, in wire
order, so the first bad option decides the error. Every error carries a stable
``reason`` from :data:`TCP_PARSE_REASONS`; the responder counts drops by it.
Every loop advances by at least one octet of a buffer of at most 40, so a
decoder always terminates.

Option lengths are checked against RFC 9293 §3.2 (MSS: 4), RFC 7323 (window
scale: 3, timestamps: 10) and RFC 2018 (SACK-permitted: 2, SACK: 2 + 8n with
n >= 1, the rule Linux's ``tcp_parse_options`` uses). An option of a known
kind with the wrong length is an error, not raw bytes: a segment whose MSS
cannot be read should not be answered as if it had none.

Encoding pads the options with zero octets to a multiple of 4, exactly as
Scapy's ``TCPOptionsField`` does, so the bytes are the same as Scapy's ``raw()``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from l4kit.checksum import internet_checksum, pseudo_header_sum
from l4kit.errors import IntegrityError, SanityError
from l4kit.wire.flags import TcpFlags
from l4kit.wire.ip import EncodeError
from l4kit.wire.options import (
    KIND_EOL,
    KIND_MSS,
    KIND_NOP,
    KIND_SACK,
    KIND_SACK_PERMITTED,
    KIND_TIMESTAMPS,
    KIND_WSCALE,
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)
from l4kit.wire.seqnum import SeqNum

TCP_HEADER_LEN: Final = 20
TCP_MAX_OPTIONS_LEN: Final = 40

#: Every ``reason`` the TCP decoder raises, with what it means. Integrity errors first.
TCP_PARSE_REASONS: Final[dict[str, str]] = {
    # integrity: the bytes cannot be read as a TCP header
    "truncated": "fewer than 20 octets",
    "data-offset-past-end": "the data offset points past the end of the segment",
    "option-past-header": "an option (or its length octet) runs past the end of the header",
    # sanity: readable, but illegal
    "bad-data-offset": "data offset below 5 (the header is at least 20 octets)",
    "bad-option-length": "an option length of 0 or 1 (it must count its own two octets)",
    "bad-mss-length": "an MSS option whose length is not 4",
    "bad-wscale-length": "a window scale option whose length is not 3",
    "bad-sack-permitted-length": "a SACK-permitted option whose length is not 2",
    "bad-sack-length": "a SACK option whose length is not 2 + 8n (n >= 1)",
    "bad-timestamps-length": "a timestamps option whose length is not 10",
    "port-zero": "source or destination port 0",
    "syn-fin": "SYN and FIN both set",
}

_TCP: Final = struct.Struct("!HHIIHHHH")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_TWO_U32: Final = struct.Struct("!II")
_MSS_OPTION: Final = struct.Struct("!BBH")
_TIMESTAMPS_OPTION: Final = struct.Struct("!BBII")

_SYN_FIN: Final = int(TcpFlags.SYN | TcpFlags.FIN)

# Decoded NOP and SACK-permitted options carry no data: share one instance of each.
_NOP: Final = NoOperation()
_SACK_PERMITTED: Final = SackPermitted()

# TcpFlags(v) goes through the enum machinery; a table lookup is much cheaper per packet.
_FLAGS_BY_VALUE: Final[tuple[TcpFlags, ...]] = tuple(TcpFlags(v) for v in range(0x200))


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpHeader:
    """A TCP header as on the wire.

    ``data_offset`` is in 32-bit words; ``None`` when encoding means "from the
    options" (like Scapy's ``dataofs=None``). ``checksum`` is the field as
    decoded; :func:`encode_tcp` takes the value to write as its own argument.
    ``reserved`` holds the three must-be-zero bits, kept so that a decoded
    header re-encodes exactly.
    """

    sport: int
    dport: int
    seq: SeqNum
    ack: SeqNum = field(default_factory=lambda: SeqNum(0))
    data_offset: int | None = None
    reserved: int = 0
    flags: TcpFlags
    window: int = 65535
    checksum: int = 0
    urgent: int = 0
    options: tuple[TcpOption, ...] = ()

    @property
    def header_length(self) -> int:
        """The header length in octets, options and padding included."""
        if self.data_offset is not None:
            return self.data_offset * 4
        return TCP_HEADER_LEN + len(encode_options(self.options))


# ---------------------------------------------------------------- options


def decode_options(area: bytes) -> tuple[TcpOption, ...]:
    """Decode the options area of a header (the octets between offset 20 and the data offset).

    Everything after an End-of-Option-List is kept as its padding. Unknown kinds
    are skipped by their length and kept as :class:`UnknownOption`.
    """
    options: list[TcpOption] = []
    n = len(area)
    i = 0
    while i < n:
        kind = area[i]
        if kind == KIND_EOL:
            options.append(EndOfOptions(bytes(area[i + 1 :])))
            break
        if kind == KIND_NOP:
            options.append(_NOP)
            i += 1
            continue
        if i + 1 >= n:
            raise IntegrityError("tcp", "option-past-header", f"option kind {kind} has no length octet")
        length = area[i + 1]
        if length < 2:
            raise SanityError("tcp", "bad-option-length", f"option kind {kind} with length {length}")
        end = i + length
        if end > n:
            raise IntegrityError(
                "tcp", "option-past-header", f"option kind {kind} of length {length} at offset {20 + i}"
            )
        if kind == KIND_MSS:
            if length != 4:
                raise SanityError("tcp", "bad-mss-length", f"MSS option of length {length}")
            options.append(MaxSegmentSize((area[i + 2] << 8) | area[i + 3]))
        elif kind == KIND_WSCALE:
            if length != 3:
                raise SanityError("tcp", "bad-wscale-length", f"window scale option of length {length}")
            options.append(WindowScale(area[i + 2]))
        elif kind == KIND_SACK_PERMITTED:
            if length != 2:
                raise SanityError("tcp", "bad-sack-permitted-length", f"SACK-permitted of length {length}")
            options.append(_SACK_PERMITTED)
        elif kind == KIND_SACK:
            if length < 10 or (length - 2) % 8:
                raise SanityError("tcp", "bad-sack-length", f"SACK option of length {length}")
            options.append(Sack(tuple(_TWO_U32.unpack_from(area, offset) for offset in range(i + 2, end, 8))))
        elif kind == KIND_TIMESTAMPS:
            if length != 10:
                raise SanityError("tcp", "bad-timestamps-length", f"timestamps option of length {length}")
            tsval, tsecr = _TWO_U32.unpack_from(area, i + 2)
            options.append(Timestamps(tsval, tsecr))
        else:
            options.append(UnknownOption(kind, bytes(area[i + 2 : end])))
        i = end
    return tuple(options)


def _encode_option(option: TcpOption) -> bytes:
    if isinstance(option, NoOperation):
        return b"\x01"
    if isinstance(option, MaxSegmentSize):
        return _MSS_OPTION.pack(KIND_MSS, 4, option.value)
    if isinstance(option, WindowScale):
        return bytes((KIND_WSCALE, 3, option.shift))
    if isinstance(option, SackPermitted):
        return b"\x04\x02"
    if isinstance(option, Timestamps):
        return _TIMESTAMPS_OPTION.pack(KIND_TIMESTAMPS, 10, option.tsval, option.tsecr)
    if isinstance(option, Sack):
        length = 2 + 8 * len(option.blocks)
        if length > TCP_MAX_OPTIONS_LEN:
            raise EncodeError(f"a SACK option holds at most 4 blocks, not {len(option.blocks)}")
        return bytes((KIND_SACK, length)) + b"".join(
            _TWO_U32.pack(left, right) for left, right in option.blocks
        )
    if isinstance(option, EndOfOptions):
        return b"\x00" + option.padding
    if isinstance(option, UnknownOption):
        if not 2 <= option.kind <= 255:
            # Kinds 0 and 1 are single octets: a length and data would be read as other options.
            raise EncodeError(f"option kind {option.kind} cannot carry data (use a kind from 2 to 255)")
        if len(option.data) > TCP_MAX_OPTIONS_LEN - 2:
            raise EncodeError(f"option kind {option.kind} with {len(option.data)} octets of data is too long")
        return bytes((option.kind, 2 + len(option.data))) + option.data
    raise EncodeError(f"not a TCP option: {option!r}")


def encode_options(options: tuple[TcpOption, ...]) -> bytes:
    """The options in wire order, padded with zero octets to a multiple of 4.

    The padding is Scapy's: ``3 - (len + 3) % 4`` zeros, none when the options
    already end on a 32-bit boundary. A zero octet is also an End-of-Option-List
    (RFC 9293 §3.2), which is how a decoder reads the padding back. Values out
    of range raise :class:`EncodeError`.
    """
    if not options:
        return b""
    try:
        data = b"".join([_encode_option(option) for option in options])
    except (struct.error, ValueError) as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"TCP option value out of range: {exc}") from None
    pad = -len(data) % 4
    return data + b"\x00" * pad if pad else data


# ---------------------------------------------------------------- decode


#: What :func:`parse_tcp` returns: ``(sport, dport, seq, ack, data_offset, reserved, flags,
#: window, checksum, urgent, options, header_length)``, numbers as plain ints.
ParsedTcp = tuple[int, int, int, int, int, int, int, int, int, int, tuple[TcpOption, ...], int]


def parse_tcp(buf: bytes) -> ParsedTcp:
    """The decoder behind :func:`decode_tcp`, returning plain values for the per-packet path
    (no header object is built; see :data:`ParsedTcp`)."""
    n = len(buf)
    if n < TCP_HEADER_LEN:
        raise IntegrityError("tcp", "truncated", f"a TCP header needs 20 octets, the segment has {n}")
    sport, dport, seq, ack, offset_flags, window, checksum, urgent = _TCP.unpack_from(buf)
    data_offset = offset_flags >> 12
    header_len = data_offset * 4
    if header_len > n:
        raise IntegrityError(
            "tcp", "data-offset-past-end", f"data offset {data_offset} ({header_len} octets) in {n} octets"
        )
    if data_offset < 5:
        raise SanityError("tcp", "bad-data-offset", f"data offset {data_offset}")
    options = decode_options(buf[TCP_HEADER_LEN:header_len]) if header_len > TCP_HEADER_LEN else ()
    if sport == 0 or dport == 0:
        raise SanityError("tcp", "port-zero", f"ports {sport} -> {dport}")
    flags = offset_flags & 0x1FF
    if flags & _SYN_FIN == _SYN_FIN:
        raise SanityError("tcp", "syn-fin", "SYN and FIN in one segment")
    reserved = (offset_flags >> 9) & 0x7
    return sport, dport, seq, ack, data_offset, reserved, flags, window, checksum, urgent, options, header_len


def decode_tcp(buf: bytes) -> tuple[TcpHeader, bytes]:
    """Decode a TCP segment into its header and payload.

    Raises :class:`~l4kit.errors.IntegrityError` when the bytes cannot be read
    and :class:`~l4kit.errors.SanityError` when they are readable but illegal;
    the ``reason`` tags are listed in :data:`TCP_PARSE_REASONS`.
    """
    sport, dport, seq, ack, data_offset, reserved, flags, window, checksum, urgent, options, header_len = (
        parse_tcp(buf)
    )
    header = TcpHeader(
        sport=sport,
        dport=dport,
        seq=SeqNum(seq),
        ack=SeqNum(ack),
        data_offset=data_offset,
        reserved=reserved,
        flags=_FLAGS_BY_VALUE[flags],
        window=window,
        checksum=checksum,
        urgent=urgent,
        options=options,
    )
    return header, bytes(buf[header_len:])


# ---------------------------------------------------------------- encode


def encode_tcp(
    header: TcpHeader, payload: bytes, *, src: str | bytes, dst: str | bytes, checksum: int | None = None
) -> bytes:
    """The TCP header (with options and padding) followed by ``payload``.

    ``checksum=None`` computes the checksum over the IPv4 or IPv6 pseudo-header
    of ``src`` and ``dst`` (RFC 9293 §3.1, RFC 8200 §8.1); any other value is
    written as given (``header.checksum`` to re-emit a decoded segment as it was).
    """
    options = encode_options(header.options)
    data_offset = header.data_offset if header.data_offset is not None else 5 + len(options) // 4
    if not 0 <= data_offset <= 15:
        raise EncodeError(
            f"data offset {data_offset} does not fit in 4 bits ({len(options)} octets of options)"
        )
    if not 0 <= header.reserved <= 7:
        raise EncodeError(f"reserved bits {header.reserved} do not fit in 3 bits")
    offset_flags = (data_offset << 12) | (header.reserved << 9) | (int(header.flags) & 0x1FF)
    try:
        fixed = _TCP.pack(
            header.sport,
            header.dport,
            int(header.seq),
            int(header.ack),
            offset_flags,
            header.window,
            0 if checksum is None else checksum,
            header.urgent,
        )
    except struct.error as exc:
        raise EncodeError(f"TCP header field out of range: {exc}") from None
    segment = fixed + options + payload
    if checksum is None:
        value = internet_checksum(segment, pseudo_header_sum(src, dst, len(segment)))
        segment = segment[:16] + _U16.pack(value) + segment[18:]
    return segment

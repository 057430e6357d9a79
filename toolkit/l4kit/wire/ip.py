"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers: decode and encode.

IPv4 header (RFC 791 §3.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|  IHL  |Type of Service|          Total Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Identification        |R|D|M|      Fragment Offset    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Time to Live |    Protocol   |         Header Checksum       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       Source Address                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Destination Address                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options (IHL > 5)                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

IPv6 header (RFC 8200 §3)::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Source Address (128 bits)                     |
    |               Destination Address (128 bits)                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Decoding checks *integrity* first (can the bytes be read: :class:`IntegrityError`)
and then *sanity* (is it legal: :class:`SanityError`). Each error carries a short
stable ``reason`` (see :data:`IP_PARSE_REASONS`). As in Scapy, a field left as
``None`` when encoding (``total_length``, ``checksum``, ``payload_length``) is
computed; any other value is written as given, so a decoded header re-encodes
to the same bytes and a crafted one may lie.

Addresses are text: IPv4 dotted quads, IPv6 in the form ``inet_ntop`` prints
(RFC 5952 compression, IPv4-mapped addresses as ``::ffff:a.b.c.d``), the same
text Scapy, tcpdump and tshark show.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from l4kit.checksum import address_bytes, internet_checksum
from l4kit.errors import ConfigError, IntegrityError, SanityError

IPV4_HEADER_LEN: Final = 20
IPV6_HEADER_LEN: Final = 40

#: Every ``reason`` a decoder in this module raises, with what it means.
IP_PARSE_REASONS: Final[dict[str, str]] = {
    "truncated": "the buffer ends before the header, or before the length the header announces",
    "bad-version": "the version nibble is neither 4 nor 6 (or not the one the decoder expects)",
    "bad-ihl": "IPv4 IHL below 5 (a header is at least 20 octets)",
    "bad-total-length": "IPv4 total length smaller than the header itself",
}

# Byte offsets are those of the diagrams above.
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")

_FLAG_RESERVED: Final = 0x8000
_FLAG_DF: Final = 0x4000
_FLAG_MF: Final = 0x2000
_FRAG_OFFSET_MASK: Final = 0x1FFF


class EncodeError(ConfigError, ValueError):
    """A header or segment whose fields cannot be put on the wire (a value out of range,
    options longer than the header can hold, a packet over 65535 octets)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IPv4Header:
    """An IPv4 header (RFC 791 §3.1). ``fragment_offset`` is in 8-octet units, as on the wire;
    ``options`` are the raw option octets (a multiple of 4). ``reserved_flag`` is the
    must-be-zero flag bit, kept so that a decoded header re-encodes exactly."""

    tos: int = 0
    total_length: int | None = None
    ident: int = 0
    reserved_flag: bool = False
    dont_fragment: bool = True
    more_fragments: bool = False
    fragment_offset: int = 0
    ttl: int = 64
    protocol: int = 6
    checksum: int | None = None
    src: str
    dst: str
    options: bytes = b""

    @property
    def header_length(self) -> int:
        """IHL in octets: 20 plus the options."""
        return IPV4_HEADER_LEN + len(self.options)

    @property
    def is_fragment(self) -> bool:
        """Part of a fragmented datagram: more fragments follow, or this is not the first
        (RFC 791 §3.2). The first fragment has MF set and offset 0."""
        return self.more_fragments or self.fragment_offset != 0


@dataclass(frozen=True, slots=True, kw_only=True)
class IPv6Header:
    """The fixed IPv6 header (RFC 8200 §3). Extension headers, if any, are part of the
    payload; ``next_header`` names the first of them (or the upper layer)."""

    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int | None = None
    next_header: int = 6
    hop_limit: int = 64
    src: str
    dst: str


# ---------------------------------------------------------------- address text


@lru_cache(maxsize=4096)
def address_text(packed: bytes) -> str:
    """The text of a packed 4- or 16-octet address, as ``inet_ntop`` writes it.

    Python's ``ipaddress`` writes ``::ffff:102:304`` where ``inet_ntop`` (and so
    Scapy, tcpdump and tshark) write ``::ffff:1.2.3.4``; the IPv4-mapped and
    IPv4-compatible forms are made to match glibc's.
    """
    if len(packed) == 4:
        return f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"
    if packed[:10] == b"\x00" * 10:
        word5 = packed[10:12]
        if word5 == b"\xff\xff":
            return f"::ffff:{packed[12]}.{packed[13]}.{packed[14]}.{packed[15]}"
        if word5 == b"\x00\x00" and packed[12:14] != b"\x00\x00":
            return f"::{packed[12]}.{packed[13]}.{packed[14]}.{packed[15]}"
    return ipaddress.IPv6Address(packed).compressed


# ---------------------------------------------------------------- decode


def _truncated(layer: str, what: str, need: int, have: int) -> IntegrityError:
    return IntegrityError(layer, "truncated", f"{what} needs {need} octets, the buffer has {have}")


def decode_ipv4(buf: bytes) -> tuple[IPv4Header, bytes]:
    """Decode an IPv4 header; the payload is cut at the total length (link padding dropped).

    The header checksum is returned, not judged: see
    :func:`l4kit.checksum.ipv4_header_checksum_ok`.
    """
    n = len(buf)
    if n < IPV4_HEADER_LEN:
        raise _truncated("ipv4", "an IPv4 header", IPV4_HEADER_LEN, n)
    vihl, tos, total, ident, flags_frag, ttl, proto, checksum, src, dst = _IPV4.unpack_from(buf)
    if vihl >> 4 != 4:
        raise SanityError("ipv4", "bad-version", f"version {vihl >> 4}")
    header_len = (vihl & 0x0F) * 4
    if header_len < IPV4_HEADER_LEN:
        raise SanityError("ipv4", "bad-ihl", f"IHL {vihl & 0x0F}")
    if header_len > n:
        raise _truncated("ipv4", f"IHL {vihl & 0x0F}", header_len, n)
    if total > n:
        raise _truncated("ipv4", f"total length {total}", total, n)
    if total < header_len:
        raise SanityError("ipv4", "bad-total-length", f"total length {total} < header length {header_len}")
    header = IPv4Header(
        tos=tos,
        total_length=total,
        ident=ident,
        reserved_flag=bool(flags_frag & _FLAG_RESERVED),
        dont_fragment=bool(flags_frag & _FLAG_DF),
        more_fragments=bool(flags_frag & _FLAG_MF),
        fragment_offset=flags_frag & _FRAG_OFFSET_MASK,
        ttl=ttl,
        protocol=proto,
        checksum=checksum,
        src=address_text(src),
        dst=address_text(dst),
        options=bytes(buf[IPV4_HEADER_LEN:header_len]),
    )
    return header, bytes(buf[header_len:total])


def decode_ipv6(buf: bytes) -> tuple[IPv6Header, bytes]:
    """Decode the fixed IPv6 header; the payload (extension headers included) is cut at
    the payload length."""
    n = len(buf)
    if n < IPV6_HEADER_LEN:
        raise _truncated("ipv6", "an IPv6 header", IPV6_HEADER_LEN, n)
    first, plen, next_header, hop_limit, src, dst = _IPV6.unpack_from(buf)
    if first >> 28 != 6:
        raise SanityError("ipv6", "bad-version", f"version {first >> 28}")
    if IPV6_HEADER_LEN + plen > n:
        raise _truncated("ipv6", f"payload length {plen}", IPV6_HEADER_LEN + plen, n)
    header = IPv6Header(
        traffic_class=(first >> 20) & 0xFF,
        flow_label=first & 0xFFFFF,
        payload_length=plen,
        next_header=next_header,
        hop_limit=hop_limit,
        src=address_text(src),
        dst=address_text(dst),
    )
    return header, bytes(buf[IPV6_HEADER_LEN : IPV6_HEADER_LEN + plen])


def decode_ip(buf: bytes) -> tuple[IPv4Header | IPv6Header, bytes]:
    """Decode an IPv4 or IPv6 header, chosen by the version nibble.

    The payload is trimmed to the length the header announces, so trailing
    link-layer padding (Ethernet pads frames to 60 octets) is removed. Raises
    only :class:`~l4kit.errors.ParseError` subclasses.
    """
    if not buf:
        raise IntegrityError("ip", "truncated", "empty packet")
    version = buf[0] >> 4
    if version == 4:
        return decode_ipv4(buf)
    if version == 6:
        return decode_ipv6(buf)
    raise SanityError("ip", "bad-version", f"version {version}")


# ---------------------------------------------------------------- encode


def _address_pair(src: str, dst: str, version: int) -> tuple[bytes, bytes]:
    """Both addresses as the packed octets of an IPv``version`` header."""
    packed = address_bytes(src), address_bytes(dst)
    if any(len(address) != (4 if version == 4 else 16) for address in packed):
        raise EncodeError(f"IPv{version} header with a non-IPv{version} address: {src} -> {dst}")
    return packed


def encode_ipv4(header: IPv4Header, payload: bytes) -> bytes:
    """The IPv4 header followed by ``payload``.

    ``total_length`` and ``checksum`` are computed when ``None``.
    """
    if len(header.options) % 4 or len(header.options) > 40:
        raise EncodeError(f"IPv4 options must be a multiple of 4 octets up to 40, not {len(header.options)}")
    header_len = IPV4_HEADER_LEN + len(header.options)
    total = header.total_length if header.total_length is not None else header_len + len(payload)
    if not 0 <= header.fragment_offset <= _FRAG_OFFSET_MASK:
        raise EncodeError(f"IPv4 fragment offset {header.fragment_offset} does not fit in 13 bits")
    flags_frag = (
        (_FLAG_RESERVED if header.reserved_flag else 0)
        | (_FLAG_DF if header.dont_fragment else 0)
        | (_FLAG_MF if header.more_fragments else 0)
        | header.fragment_offset
    )
    src, dst = _address_pair(header.src, header.dst, 4)
    try:
        fixed = _IPV4.pack(
            0x40 | header_len // 4,
            header.tos,
            total,
            header.ident,
            flags_frag,
            header.ttl,
            header.protocol,
            0 if header.checksum is None else header.checksum,
            src,
            dst,
        )
    except struct.error as exc:
        raise EncodeError(f"IPv4 header field out of range: {exc}") from None
    ip_header = fixed + header.options
    if header.checksum is None:
        checksum = internet_checksum(ip_header)
        ip_header = ip_header[:10] + checksum.to_bytes(2, "big") + ip_header[12:]
    return ip_header + payload


def encode_ipv6(header: IPv6Header, payload: bytes) -> bytes:
    """The fixed IPv6 header followed by ``payload``; ``payload_length`` is computed when ``None``."""
    plen = header.payload_length if header.payload_length is not None else len(payload)
    if not 0 <= header.traffic_class <= 0xFF or not 0 <= header.flow_label <= 0xFFFFF:
        raise EncodeError(
            f"IPv6 traffic class {header.traffic_class} / flow label {header.flow_label} out of range"
        )
    src, dst = _address_pair(header.src, header.dst, 6)
    try:
        fixed = _IPV6.pack(
            (6 << 28) | (header.traffic_class << 20) | header.flow_label,
            plen,
            header.next_header,
            header.hop_limit,
            src,
            dst,
        )
    except struct.error as exc:
        raise EncodeError(f"IPv6 header field out of range: {exc}") from None
    return fixed + payload

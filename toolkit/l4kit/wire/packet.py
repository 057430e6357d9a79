"""IP packets carrying TCP <-> :class:`~l4kit.wire.segment.Segment`: the one-shot struct codec.

:func:`decode_packet` and :func:`encode_packet` sit on the responder's
per-packet path, so they work on plain values and precompiled ``struct``
layouts and build exactly one object each way (the ``Segment``, the bytes).
The Scapy codec (``l4kit.codecs.scapy_codec``) is the reference: for every
segment, ``encode_packet(seg)`` is bit-identical to ``raw(to_scapy(seg))``
(property-tested in ``tests/unit/test_scapy_codec.py``).

What the responder sends (the IP header defaults)
-------------------------------------------------
IPv4: version 4, IHL 5 (no options), TOS 0, identification ``ip_id``, DF set
(RFC 1191 path-MTU discovery, as Linux sets it on TCP), MF clear, fragment
offset 0, TTL ``ttl`` (64, Linux's default), protocol 6. IPv6: traffic class
0, flow label 0, next header 6 (no extension headers), hop limit ``ttl``.

What :func:`decode_packet` accepts
----------------------------------
An IPv4 or IPv6 packet (no link layer) whose payload is one whole TCP segment.
The reasons it refuses, as ``ParseError.reason`` (the IP and TCP reasons of
:data:`~l4kit.wire.ip.IP_PARSE_REASONS` and :data:`~l4kit.wire.tcp.TCP_PARSE_REASONS`,
plus those of :data:`PACKET_PARSE_REASONS`):

* ``fragment``: an IPv4 fragment (MF set or a non-zero offset) or an IPv6
  Fragment header; l4kit does not reassemble.
* ``not-tcp``: another protocol (UDP, ICMP, ESP ...), or IPv6 "no next header".
* ``bad-ip-checksum``: the IPv4 header checksum is wrong; Linux drops such a
  packet in ``ip_rcv`` before TCP sees it, and so does l4kit.

IPv6 extension headers Hop-by-Hop Options, Routing and Destination Options
(RFC 8200 §4) are skipped by their length; when a Routing header still has
segments left, the pseudo-header uses the final destination (RFC 8200 §8.1).

The TCP checksum is classified, not enforced: the segment's ``checksum`` is
``OK``, ``BAD`` or ``OFFLOADED`` (see :mod:`l4kit.checksum`), and the core
decides what to do with a bad one.
"""

from __future__ import annotations

import struct
from typing import Final

from l4kit.checksum import ONES, ChecksumStatus, internet_checksum, parse_address
from l4kit.errors import IntegrityError, ParseError, SanityError
from l4kit.wire.flags import TcpFlags
from l4kit.wire.ip import (
    IP_PARSE_REASONS,
    IPV4_HEADER_LEN,
    IPV6_HEADER_LEN,
    EncodeError,
    address_text,
)
from l4kit.wire.options import TcpOption
from l4kit.wire.segment import Segment
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.tcp import TCP_PARSE_REASONS, decode_options, encode_options, parse_tcp

#: The reasons :func:`decode_packet` adds to those of the IP and TCP decoders.
PACKET_PARSE_REASONS: Final[dict[str, str]] = {
    "fragment": "an IPv4 fragment or an IPv6 Fragment header (not reassembled)",
    "not-tcp": "the packet carries another protocol than TCP",
    "bad-ip-checksum": "the IPv4 header checksum is wrong",
}

#: Every reason tag any wire decoder raises (a ``ParseError.reason``), with its meaning. The
#: layer (``ParseError.layer``: ``ip``, ``ipv4``, ``ipv6``, ``tcp``) says where; ``truncated``
#: and ``bad-version`` occur in several layers and keep the IP wording, which covers all.
PARSE_REASONS: Final[dict[str, str]] = {**TCP_PARSE_REASONS, **PACKET_PARSE_REASONS, **IP_PARSE_REASONS}

IPPROTO_TCP: Final = 6
_IPV6_HOP_BY_HOP: Final = 0
_IPV6_ROUTING: Final = 43
_IPV6_FRAGMENT: Final = 44
_IPV6_DEST_OPTIONS: Final = 60
_IPV6_SKIPPABLE: Final = frozenset((_IPV6_HOP_BY_HOP, _IPV6_ROUTING, _IPV6_DEST_OPTIONS))

_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")
_TCP: Final = struct.Struct("!HHIIHHHH")
_U16: Final = struct.Struct("!H")

_DF: Final = 0x4000
_FRAGMENT_BITS: Final = 0x3FFF  # MF and the 13-bit offset
_SYN_FIN: Final = int(TcpFlags.SYN | TcpFlags.FIN)

_FLAGS_BY_VALUE: Final[tuple[TcpFlags, ...]] = tuple(TcpFlags(v) for v in range(0x200))
_OK: Final = ChecksumStatus.OK
_BAD: Final = ChecksumStatus.BAD
_OFFLOADED: Final = ChecksumStatus.OFFLOADED


def canonical_options(options: tuple[TcpOption, ...]) -> tuple[TcpOption, ...]:
    """The options as a decoder gives them back after encoding.

    Encoding pads to a multiple of 4 with zero octets, which read back as an
    End-of-Option-List and its padding: ``(MSS, WS)`` (7 octets) comes back as
    ``(MSS, WS, EndOfOptions())``. Options already in this form are unchanged.
    """
    return decode_options(encode_options(options))


# ---------------------------------------------------------------- checksum over raw bytes


def _classify(segment: bytes, pseudo_sum: int) -> ChecksumStatus:
    """The rule of :func:`l4kit.checksum.classify_tcp_checksum`, with the pseudo-header sum given.

    ``pseudo_sum`` may be any non-negative int congruent to the pseudo-header sum.
    """
    if internet_checksum(segment, pseudo_sum) == 0:
        return _OK
    field = (segment[16] << 8) | segment[17]
    if (field - pseudo_sum) % ONES == 0:
        return _OFFLOADED
    return _BAD


# ---------------------------------------------------------------- decode


def ipv6_final_destination(buf: bytes, offset: int, length: int, dst: bytes) -> bytes:
    """The destination the sender's pseudo-header used, given a Routing header at ``offset``.

    RFC 8200 §8.1: with segments left, that is the last address of the route:
    the last listed address for types 0 (RFC 2460, deprecated) and 2 (RFC 6275),
    the first entry of the segment list for type 4 (RFC 8754 §2). Other types:
    the header's destination.
    """
    routing_type = buf[offset + 2]
    segments_left = buf[offset + 3]
    if segments_left == 0 or length < 24:
        return dst
    if routing_type in (0, 2):
        return bytes(buf[offset + length - 16 : offset + length])
    if routing_type == 4:
        return bytes(buf[offset + 8 : offset + 24])
    return dst


def decode_packet(buf: bytes) -> Segment:
    """An IPv4 or IPv6 packet carrying TCP, as a :class:`Segment` with its checksum classified.

    Raises only :class:`~l4kit.errors.ParseError` (reasons: :data:`PARSE_REASONS`).
    Trailing octets past the IP length (link padding) are ignored.
    """
    n = len(buf)
    if n == 0:
        raise IntegrityError("ip", "truncated", "empty packet")
    version = buf[0] >> 4
    if version == 4:
        if n < IPV4_HEADER_LEN:
            raise IntegrityError("ipv4", "truncated", f"an IPv4 header needs 20 octets, the packet has {n}")
        vihl, _tos, total, _ident, flags_frag, _ttl, proto, _checksum, src_b, dst_b = _IPV4.unpack_from(buf)
        header_len = (vihl & 0x0F) * 4
        if header_len < IPV4_HEADER_LEN:
            raise SanityError("ipv4", "bad-ihl", f"IHL {vihl & 0x0F}")
        if header_len > n or total > n:
            raise IntegrityError("ipv4", "truncated", f"IHL {vihl & 0x0F}, total length {total}, {n} octets")
        if total < header_len:
            raise SanityError(
                "ipv4", "bad-total-length", f"total length {total} < header length {header_len}"
            )
        header_sum = int.from_bytes(buf[:header_len], "big") % ONES
        if header_sum != 0:  # a correct header sums to -0 (≡ 0); it is never all zeros (version 4)
            raise IntegrityError("ipv4", "bad-ip-checksum", "IPv4 header checksum mismatch")
        if flags_frag & _FRAGMENT_BITS:
            raise ParseError("ipv4", "fragment", f"MF {flags_frag >> 13 & 1}, offset {flags_frag & 0x1FFF}")
        if proto != IPPROTO_TCP:
            raise ParseError("ipv4", "not-tcp", f"protocol {proto}")
        segment = bytes(buf[header_len:total])
        pseudo_dst = dst_b
    elif version == 6:
        if n < IPV6_HEADER_LEN:
            raise IntegrityError("ipv6", "truncated", f"an IPv6 header needs 40 octets, the packet has {n}")
        _first, plen, next_header, _hop, src_b, dst_b = _IPV6.unpack_from(buf)
        end = IPV6_HEADER_LEN + plen
        if end > n:
            raise IntegrityError(
                "ipv6", "truncated", f"payload length {plen}, {n - 40} octets after the header"
            )
        offset = IPV6_HEADER_LEN
        pseudo_dst = dst_b
        # Each extension header is at least 8 octets, so this walk ends within plen / 8 steps.
        while next_header != IPPROTO_TCP:
            if next_header in _IPV6_SKIPPABLE:
                if offset + 8 > end:
                    raise IntegrityError(
                        "ipv6", "truncated", f"extension header {next_header} past the payload"
                    )
                ext_len = (buf[offset + 1] + 1) * 8
                if offset + ext_len > end:
                    raise IntegrityError(
                        "ipv6", "truncated", f"extension header {next_header} past the payload"
                    )
                if next_header == _IPV6_ROUTING:
                    pseudo_dst = ipv6_final_destination(buf, offset, ext_len, dst_b)
                next_header = buf[offset]
                offset += ext_len
            elif next_header == _IPV6_FRAGMENT:
                raise ParseError("ipv6", "fragment", "IPv6 Fragment header")
            else:
                raise ParseError("ipv6", "not-tcp", f"next header {next_header}")
        segment = bytes(buf[offset:end])
    else:
        raise SanityError("ip", "bad-version", f"version {version}")

    sport, dport, seq, ack, _doff, _reserved, flags, window, _checksum, urgent, options, header_len = (
        parse_tcp(segment)
    )
    pseudo_sum = parse_address(src_b)[1] + parse_address(pseudo_dst)[1] + IPPROTO_TCP + len(segment)
    return Segment(
        src=address_text(src_b),
        dst=address_text(dst_b),
        sport=sport,
        dport=dport,
        seq=SeqNum(seq),
        ack=SeqNum(ack),
        flags=_FLAGS_BY_VALUE[flags],
        window=window,
        urgent=urgent,
        options=options,
        payload=segment[header_len:],
        checksum=_classify(segment, pseudo_sum),
    )


# ---------------------------------------------------------------- encode


def encode_packet(seg: Segment, *, ttl: int = 64, ip_id: int = 0) -> bytes:
    """The IP packet for ``seg``: IPv4 or IPv6 by its addresses, TCP checksum computed.

    Bit-identical to ``raw(to_scapy(seg, ttl=ttl, ip_id=ip_id))`` of the Scapy
    codec; the header defaults are listed in this module's docstring.
    ``seg.checksum`` is ignored (a sent segment always carries a correct one).
    Raises :class:`~l4kit.wire.ip.EncodeError` for fields that do not fit.
    """
    options = encode_options(seg.options) if seg.options else b""
    options_len = len(options)
    if options_len > 40:
        raise EncodeError(f"TCP options take {options_len} octets, more than the 40 a header can hold")
    payload = seg.payload
    tcp_len = 20 + options_len + len(payload)
    seq = seg.seq.value
    ack = seg.ack.value
    offset_flags = ((5 + options_len // 4) << 12) | (int(seg.flags) & 0x1FF)
    src_b, src_sum = parse_address(seg.src)
    dst_b, dst_sum = parse_address(seg.dst)
    if len(src_b) != len(dst_b):
        raise EncodeError(f"source {seg.src} and destination {seg.dst} are of different IP versions")
    try:
        tcp_fixed = _TCP.pack(seg.sport, seg.dport, seq, ack, offset_flags, seg.window, 0, seg.urgent)
    except struct.error as exc:
        raise EncodeError(f"TCP field out of range in {seg}: {exc}") from None
    # One's complement sum of pseudo-header, header (checksum 0), options and payload. The
    # header and options are a multiple of 4 octets, so the payload's words stay aligned
    # and its sum can be taken on its own (odd length: padded by one zero octet).
    header_sum = src_sum + dst_sum + IPPROTO_TCP + tcp_len + int.from_bytes(tcp_fixed, "big")
    if options_len:
        header_sum += int.from_bytes(options, "big")
    tcp_checksum = internet_checksum(payload, header_sum)
    tcp_header = tcp_fixed[:16] + _U16.pack(tcp_checksum) + tcp_fixed[18:]

    if len(src_b) == 4:
        total_length = 20 + tcp_len
        if total_length > 0xFFFF:
            raise EncodeError(f"an IPv4 packet of {total_length} octets is over 65535")
        # Header words: 0x4500, total length, id, flags (DF), TTL|protocol, checksum, addresses.
        ip_sum = 0x4500 + total_length + ip_id + _DF + (ttl << 8) + IPPROTO_TCP + src_sum + dst_sum
        r = ip_sum % ONES
        try:
            ip_header = _IPV4.pack(
                0x45, 0, total_length, ip_id, _DF, ttl, IPPROTO_TCP, ONES - r if r else 0, src_b, dst_b
            )
        except struct.error as exc:
            raise EncodeError(f"IPv4 field out of range (ttl {ttl}, ip_id {ip_id}): {exc}") from None
    else:
        if tcp_len > 0xFFFF:
            raise EncodeError(f"an IPv6 payload of {tcp_len} octets is over 65535 (no jumbograms)")
        try:
            ip_header = _IPV6.pack(6 << 28, tcp_len, IPPROTO_TCP, ttl, src_b, dst_b)
        except struct.error as exc:
            raise EncodeError(f"IPv6 hop limit {ttl} out of range: {exc}") from None
    return b"".join((ip_header, tcp_header, options, payload))

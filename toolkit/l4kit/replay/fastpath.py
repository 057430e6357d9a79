"""The per-packet decoder of replay: the common case fast, everything else by the wire layer.

:func:`l4kit.wire.packet.decode_packet` is the reference decoder; it builds a
:class:`~l4kit.wire.segment.Segment` (and decodes every option) for each
packet, which is most of replay's time budget on a large capture. Replay needs
far less: addresses, ports, sequence numbers, flags, window, the payload, the
checksum verdict, and the window-scale option of SYNs. So:

* an IPv4 packet without options and not a fragment, or an IPv6 packet whose
  next header is TCP, is decoded here with two ``struct`` layouts and the
  public helpers of the wire layer (:func:`~l4kit.wire.ip.address_text`,
  :func:`~l4kit.wire.tcp.decode_options` for SYN options). The checksum verdict
  is :func:`~l4kit.checksum.classify_tcp_checksum`'s rule (see
  :mod:`l4kit.checksum`) computed straight on the packet's bytes: the source and
  destination addresses are adjacent in both IP headers, so the pseudo-header
  sum is one integer conversion;
* anything else (IPv4 options, IPv6 extension headers, fragments, other
  protocols, malformed headers) goes to :func:`decode_packet`, and its
  :class:`~l4kit.errors.ParseError` reasons are the ones replay reports.

``tests/unit/test_replay_fastpath.py`` checks that both agree on every field
for generated packets. One deliberate difference: options of segments without
SYN are not decoded (replay does not use them), so a data segment with a
malformed option is analysed here where ``decode_packet`` would refuse it —
as Wireshark still analyses such a segment's sequence numbers.

A packet whose IPv4 header checksum is wrong is decoded anyway and flagged
(``ip_ok`` False): a receiver drops it, and replay shows that.
"""

from __future__ import annotations

import struct
from typing import Final

from l4kit.checksum import ChecksumStatus, classify_tcp_checksum
from l4kit.errors import ParseError
from l4kit.replay.model import PREVIEW_BYTES
from l4kit.wire.ip import address_text, decode_ip
from l4kit.wire.options import WindowScale
from l4kit.wire.packet import decode_packet
from l4kit.wire.tcp import decode_options, decode_tcp

_IPV4: Final = struct.Struct("!BxHxxHxBxx4s4s")  # vihl, total, flags/frag, proto, src, dst
_IPV6: Final = struct.Struct("!4xHBx16s16s")  # payload length, next header, src, dst
_TCP: Final = struct.Struct("!HHIIHH")  # ports, seq, ack, offset/flags, window
_FRAGMENT_BITS: Final = 0x3FFF
_SYN: Final = 0x02
_SYN_FIN: Final = 0x03
ONES: Final = 0xFFFF

OK: Final = "ok"
BAD: Final = "bad"
OFFLOADED: Final = "offloaded"
_STATUS: Final = {ChecksumStatus.OK: OK, ChecksumStatus.BAD: BAD, ChecksumStatus.OFFLOADED: OFFLOADED}

HEAD: Final = PREVIEW_BYTES + 1
"""Payload octets returned (enough for a preview, and to know whether there is more)."""

Decoded = tuple[str, str, int, int, int, int, int, int, int, bytes, str, bool, "int | None"]
"""``(src, dst, sport, dport, seq, ack, flags, window, length, head, checksum, ip_ok, wscale)``:
``flags`` the 9 flag bits, ``length`` the payload length and ``head`` its first
:data:`HEAD` octets (the payload itself is never copied), ``checksum``
``"ok"``/``"bad"``/``"offloaded"``, ``ip_ok`` whether the IPv4 header checksum is
right (always True for IPv6), ``wscale`` the window-scale shift of a SYN (None
without the option)."""


def _window_scale(options_area: bytes) -> int | None:
    try:
        options = decode_options(options_area)
    except ParseError:
        return None
    for option in options:
        if isinstance(option, WindowScale):
            return option.shift
    return None


def decode(ip: bytes) -> Decoded:
    """Decode one IP packet carrying TCP; raises :class:`ParseError` for anything else."""
    n = len(ip)
    first = ip[0] if n else 0
    if first == 0x45 and n >= 40:
        _vihl, total, frag, proto, src_b, dst_b = _IPV4.unpack_from(ip)
        if frag & _FRAGMENT_BITS or proto != 6 or total > n or total < 40:
            return _slow(ip)
        view = memoryview(ip)
        ip_ok = int.from_bytes(view[:20], "big") % ONES == 0
        segment = view[20:total]
        addresses = view[12:20]
    elif first >> 4 == 6 and n >= 60:
        plen, next_header, src_b, dst_b = _IPV6.unpack_from(ip)
        if next_header != 6 or 40 + plen > n or plen < 20:
            return _slow(ip)
        ip_ok = True
        view = memoryview(ip)
        segment = view[40 : 40 + plen]
        addresses = view[8:40]
    else:
        return _slow(ip)
    sport, dport, seq, ack, offset_flags, window = _TCP.unpack_from(segment)
    header_len = (offset_flags >> 12) * 4
    flags = offset_flags & 0x1FF
    if (
        header_len < 20
        or header_len > len(segment)
        or sport == 0
        or dport == 0
        or flags & _SYN_FIN == _SYN_FIN
    ):
        return _slow(ip)  # for the wire layer's reason tag
    wscale = _window_scale(bytes(segment[20:header_len])) if flags & _SYN and header_len > 20 else None
    # classify_tcp_checksum's rule: the one's complement sum of pseudo-header and
    # segment is -0 (≡ 0 mod 0xFFFF) when right; an offloading sender leaves the folded
    # pseudo-header sum in the field. 2**16 ≡ 1 (mod 0xFFFF), so summing 16-bit words
    # is reducing one big integer; an odd length is padded with a zero octet.
    seg_len = len(segment)
    pseudo = int.from_bytes(addresses, "big") + 6 + seg_len
    data = int.from_bytes(segment, "big")
    if seg_len & 1:
        data <<= 8
    if (data + pseudo) % ONES == 0:
        status = OK
    elif (((segment[16] << 8) | segment[17]) - pseudo) % ONES == 0:
        status = OFFLOADED
    else:
        status = BAD
    return (
        address_text(src_b),
        address_text(dst_b),
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        seg_len - header_len,
        bytes(segment[header_len : header_len + HEAD]),
        status,
        ip_ok,
        wscale,
    )


def _slow(ip: bytes) -> Decoded:
    """The wire layer's full decoder, for everything the fast path does not handle."""
    try:
        seg = decode_packet(ip)
        ip_ok = True
    except ParseError as exc:
        if exc.reason != "bad-ip-checksum":
            raise
        return _bad_ip_checksum(ip)
    return (
        seg.src,
        seg.dst,
        seg.sport,
        seg.dport,
        seg.seq.value,
        seg.ack.value,
        int(seg.flags),
        seg.window,
        len(seg.payload),
        seg.payload[:HEAD],
        _STATUS[seg.checksum],
        ip_ok,
        seg.window_scale,
    )


def _bad_ip_checksum(ip: bytes) -> Decoded:
    """``decode_packet`` refuses a packet whose IPv4 header checksum is wrong (a receiving
    stack drops it); replay still shows it, decoded piece by piece."""
    header, payload = decode_ip(ip)
    if getattr(header, "is_fragment", False):
        raise ParseError("ipv4", "fragment", "a fragment (with a bad header checksum)")
    if getattr(header, "protocol", 6) != 6:
        raise ParseError("ipv4", "not-tcp", f"protocol {getattr(header, 'protocol', '?')}")
    tcp, data = decode_tcp(payload)
    wscale = None
    for option in tcp.options:
        if isinstance(option, WindowScale):
            wscale = option.shift
    return (
        header.src,
        header.dst,
        tcp.sport,
        tcp.dport,
        int(tcp.seq),
        int(tcp.ack),
        int(tcp.flags),
        tcp.window,
        len(data),
        data[:HEAD],
        _STATUS[classify_tcp_checksum(header.src, header.dst, payload)],
        False,
        wscale,
    )

"""The per-packet decoder of replay: the common case fast, everything else by the wire layer.

:func:`l4kit.wire.packet.decode_packet` is the reference decoder; it builds a
:class:`~l4kit.wire.segment.Segment` (and decodes every option) for each
packet, which is most of replay's time budget on a large capture. Replay needs
far less: addresses, ports, sequence numbers, flags, window, the payload, the
checksum verdict, and the window-scale option of SYNs. So:

* an IPv4 packet without options and not a fragment, or an IPv6 packet whose
  next header is TCP, is decoded here in place, in the captured frame (no copy of
  the packet), with one ``struct`` layout per IP version and the wire layer's
  :func:`~l4kit.wire.tcp.decode_options` for SYN options;
* the checksum verdict (:func:`checksum_status`) is
  :func:`~l4kit.checksum.classify_tcp_checksum`'s rule (see :mod:`l4kit.checksum`)
  computed straight on the frame's bytes, and only when asked for: the source and
  destination addresses are adjacent in both IP headers, so the pseudo-header sum
  is one integer conversion;
* the addresses stay bytes: the *key* of a packet is the source address, the
  destination address and both ports as captured (12 octets for IPv4, 36 for
  IPv6), which is what replay looks connections up by; an address becomes text
  (:func:`~l4kit.wire.ip.address_text`) once per connection;
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
from l4kit.wire.flags import FIN_BIT, SYN_BIT
from l4kit.wire.ip import address_text, decode_ip
from l4kit.wire.options import WindowScale
from l4kit.wire.packet import decode_packet
from l4kit.wire.tcp import decode_options, decode_tcp

# IPv4 without options, from the version/IHL octet: total length, flags/fragment
# offset, protocol, then the TCP header's ports, seq, ack, offset/flags and window.
_IPV4_TCP: Final = struct.Struct("!2xH2xH1xB10xHHIIHH")
_IPV6: Final = struct.Struct("!4xHB")  # payload length, next header
_TCP: Final = struct.Struct("!HHIIHH")  # ports, seq, ack, offset/flags, window
_PORTS: Final = struct.Struct("!HH")
_FRAGMENT_BITS: Final = 0x3FFF
_SYN: Final = SYN_BIT
_SYN_FIN: Final = SYN_BIT | FIN_BIT
ONES: Final = 0xFFFF

OK: Final = "ok"
BAD: Final = "bad"
OFFLOADED: Final = "offloaded"
_STATUS: Final = {ChecksumStatus.OK: OK, ChecksumStatus.BAD: BAD, ChecksumStatus.OFFLOADED: OFFLOADED}

HEAD: Final = PREVIEW_BYTES + 1
"""Payload octets kept (enough for a preview, and to know whether there is more)."""

Decoded = tuple[
    bytes,
    int,
    int,
    int,
    int,
    int,
    int,
    int,
    "bool | None",
    "int | None",
    "str | None",
    "bytes | None",
    int,
    int,
]
"""What :func:`decode_at` returns, ``(key, sport, dport, seq, ack, flags, window, length,
ip_ok, wscale, checksum, head, seg_start, seg_end)``:

``key`` source address, destination address, source and destination port as
octets (see :func:`key_addresses`); ``flags`` the 9 flag bits; ``length`` the
payload length; ``ip_ok`` whether the IPv4 header checksum is right (always True
for IPv6); ``wscale`` the window-scale shift of a SYN (None without the option).

``ip_ok`` (for IPv4), ``wscale``, ``checksum`` (``"ok"``/``"bad"``/``"offloaded"``)
and ``head`` (the first :data:`HEAD` payload octets) are None when the packet was
decoded in place (``seg_start`` > 0): the caller computes what it needs, with
:func:`ipv4_header_ok` and, from ``seg_start``/``seg_end`` (where the TCP segment
lies in the frame), :func:`window_scale_at`, :func:`checksum_status` and
:func:`payload_head`. The wire layer's decoder fills them in (and leaves both
offsets 0)."""


def _window_scale(options_area: bytes) -> int | None:
    try:
        options = decode_options(options_area)
    except ParseError:
        return None
    for option in options:
        if isinstance(option, WindowScale):
            return option.shift
    return None


def ip_length(frame: bytes, offset: int) -> int:
    """The length of the IP packet at ``offset`` as its header gives it (IPv4's total
    length, IPv6's 40 octets plus the payload length), which leaves out link-layer
    padding: Zeek's ``orig_ip_bytes`` counts this."""
    if len(frame) - offset >= 6:
        version = frame[offset] >> 4
        if version == 4:
            return int.from_bytes(frame[offset + 2 : offset + 4], "big")
        if version == 6:
            return 40 + int.from_bytes(frame[offset + 4 : offset + 6], "big")
    return len(frame) - offset


def decode_at(frame: bytes, offset: int) -> Decoded:
    """Decode the IP packet at ``offset`` in ``frame`` (which must carry TCP); raises
    :class:`ParseError` for anything else, with the wire layer's reason."""
    avail = len(frame) - offset
    first = frame[offset] if avail > 0 else 0
    if first == 0x45 and avail >= 40:
        total, frag, proto, sport, dport, seq, ack, offset_flags, window = _IPV4_TCP.unpack_from(
            frame, offset
        )
        if frag & _FRAGMENT_BITS or proto != 6 or total > avail or total < 40:
            return _slow(frame, offset)
        ip_ok: bool | None = None  # see ipv4_header_ok
        seg_start = offset + 20
        seg_end = offset + total
        key = frame[offset + 12 : offset + 24]
    elif first >> 4 == 6 and avail >= 60:
        plen, next_header = _IPV6.unpack_from(frame, offset)
        if next_header != 6 or 40 + plen > avail or plen < 20:
            return _slow(frame, offset)
        seg_start = offset + 40
        seg_end = seg_start + plen
        sport, dport, seq, ack, offset_flags, window = _TCP.unpack_from(frame, seg_start)
        ip_ok = True
        key = frame[offset + 8 : seg_start + 4]
    else:
        return _slow(frame, offset)
    header_len = (offset_flags >> 12) * 4
    flags = offset_flags & 0x1FF
    if (
        header_len < 20
        or header_len > seg_end - seg_start
        or sport == 0
        or dport == 0
        or flags & _SYN_FIN == _SYN_FIN
    ):
        return _slow(frame, offset)  # for the wire layer's reason tag
    return (
        key,
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        seg_end - seg_start - header_len,
        ip_ok,
        None,
        None,
        None,
        seg_start,
        seg_end,
    )


def ipv4_header_ok(frame: bytes, offset: int) -> bool:
    """Whether the option-less IPv4 header at ``offset`` has a right header checksum
    (its 16-bit words sum to -0, RFC 1071)."""
    return int.from_bytes(frame[offset : offset + 20], "big") % ONES == 0


_PLAIN_OPTION_LENGTHS: Final = {2: 4, 4: 2, 8: 10}  # MSS, SACK-permitted, timestamps: the usual company


def window_scale_at(frame: bytes, seg_start: int) -> int | None:
    """The window-scale shift offered by the SYN whose TCP header starts at ``seg_start``
    (None without the option, or with options that cannot be read).

    The options a SYN usually carries (NOP, MSS, SACK-permitted, timestamps, window
    scale) are walked here; anything else goes to the wire layer's decoder, whose
    answer (including None for a malformed options area) is the reference.
    """
    end = seg_start + (frame[seg_start + 12] >> 4) * 4
    i = seg_start + 20
    shift = None
    while i < end:
        kind = frame[i]
        if kind == 1:  # NOP
            i += 1
            continue
        if kind == 0:  # End of Option List: the rest is padding
            break
        length = frame[i + 1] if i + 1 < end else 0
        if kind == 3 and length == 3 and i + 3 <= end:
            if shift is None:
                shift = frame[i + 2]
        elif _PLAIN_OPTION_LENGTHS.get(kind) != length or i + length > end:
            return _window_scale(frame[seg_start + 20 : end])
        i += length
    return shift


def checksum_status(frame: bytes, key: bytes, seg_start: int, seg_end: int) -> str:
    """The TCP checksum verdict of the segment ``frame[seg_start:seg_end]`` whose key is ``key``.

    :func:`~l4kit.checksum.classify_tcp_checksum`'s rule: the one's complement sum
    of pseudo-header and segment is -0 (≡ 0 mod 0xFFFF) when right; an offloading
    sender leaves the folded pseudo-header sum in the field. 2**16 ≡ 1 (mod 0xFFFF),
    so summing 16-bit words is reducing one big integer; an odd length is padded
    with a zero octet.
    """
    seg_len = seg_end - seg_start
    pseudo = int.from_bytes(key[:-4], "big") + 6 + seg_len
    if seg_len > 512:
        # The same sum from pieces: a piece followed by an even number of octets is
        # multiplied by a power of 2**16 ≡ 1, so the pieces can be added instead of
        # joined, and the reduction below works on a number a quarter as long.
        q = (seg_len >> 2) & ~1
        c = seg_end - q
        b = c - q
        a = b - q
        data = (
            int.from_bytes(frame[seg_start:a], "big")
            + int.from_bytes(frame[a:b], "big")
            + int.from_bytes(frame[b:c], "big")
            + int.from_bytes(frame[c:seg_end], "big")
        )
    else:
        data = int.from_bytes(frame[seg_start:seg_end], "big")
    if seg_len & 1:
        data <<= 8
    if (data + pseudo) % ONES == 0:
        return OK
    if (((frame[seg_start + 16] << 8) | frame[seg_start + 17]) - pseudo) % ONES == 0:
        return OFFLOADED
    return BAD


def payload_head(frame: bytes, length: int, seg_end: int) -> bytes:
    """The first :data:`HEAD` payload octets of a segment decoded in place."""
    start = seg_end - length
    return frame[start : start + HEAD] if length else b""


def key_addresses(key: bytes) -> tuple[bytes, bytes]:
    """The packed source and destination addresses of a key."""
    half = (len(key) - 4) // 2
    return key[:half], key[half : 2 * half]


def reverse_key(key: bytes) -> bytes:
    """The key of the packets going the other way."""
    half = (len(key) - 4) // 2
    return key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]


def decode(ip: bytes) -> tuple[str, str, int, int, int, int, int, int, int, bytes, str, bool, int | None]:
    """One IP packet, every field decoded: ``(src, dst, sport, dport, seq, ack, flags,
    window, length, head, checksum, ip_ok, wscale)`` with the addresses as text.

    The convenient form of :func:`decode_at` (for tests and tools, not the per-packet path)."""
    key, sport, dport, seq, ack, flags, window, length, ip_ok, wscale, status, head, start, end = decode_at(
        ip, 0
    )
    src, dst = key_addresses(key)
    return (
        address_text(src),
        address_text(dst),
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        length,
        payload_head(ip, length, end) if head is None else head,
        checksum_status(ip, key, start, end) if status is None else status,
        ipv4_header_ok(ip, 0) if ip_ok is None else ip_ok,
        window_scale_at(ip, start) if start and flags & _SYN else wscale,
    )


def _key(ip: bytes, sport: int, dport: int) -> bytes:
    addresses = ip[12:20] if ip[0] >> 4 == 4 else ip[8:40]
    return addresses + _PORTS.pack(sport, dport)


def _slow(frame: bytes, offset: int) -> Decoded:
    """The wire layer's full decoder, for everything the fast path does not handle."""
    ip = frame[offset:] if offset else frame
    try:
        seg = decode_packet(ip)
    except ParseError as exc:
        if exc.reason != "bad-ip-checksum":
            raise
        return _bad_ip_checksum(ip)
    return (
        _key(ip, seg.sport, seg.dport),
        seg.sport,
        seg.dport,
        seg.seq.value,
        seg.ack.value,
        int(seg.flags),
        seg.window,
        len(seg.payload),
        True,
        seg.window_scale,
        _STATUS[seg.checksum],
        seg.payload[:HEAD],
        0,
        0,
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
        _key(ip, tcp.sport, tcp.dport),
        tcp.sport,
        tcp.dport,
        int(tcp.seq),
        int(tcp.ack),
        int(tcp.flags),
        tcp.window,
        len(data),
        False,
        wscale,
        _STATUS[classify_tcp_checksum(header.src, header.dst, payload)],
        data[:HEAD],
        0,
        0,
    )

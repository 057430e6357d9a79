"""The per-packet decoder of replay: the common case fast, the rest as tshark numbers it.

Replay needs little of a packet: addresses, ports, sequence numbers, flags,
window, the payload, the checksum verdict, and the window-scale option of SYNs.
So:

* an IPv4 packet without options and not a fragment, or an IPv6 packet whose
  next header is TCP, with a well-formed ordinary segment, is decoded here in
  place, in the captured frame (no copy of the packet), with one ``struct`` layout
  per IP version and the wire layer's :func:`~l4kit.wire.tcp.decode_options` for
  SYN options;
* the checksum verdict (:func:`checksum_status`) is
  :func:`~l4kit.checksum.classify_tcp_checksum`'s rule (see :mod:`l4kit.checksum`)
  computed straight on the frame's bytes, and only when asked for: the source and
  destination addresses are adjacent in both IP headers, so the pseudo-header sum
  is one integer conversion (one loop over the octets when compiled, :func:`word_sum`);
* the addresses stay bytes: the *key* of a packet is the source address, the
  destination address and both ports as captured (12 octets for IPv4, 36 for
  IPv6), which is what replay looks connections up by; an address becomes text
  (:func:`~l4kit.wire.ip.address_text`) once per connection.

Everything else goes to the slow path (:func:`_slow`), which decodes every TCP
segment tshark gives a ``tcp.stream`` (``tests/unit/test_replay_numbering.py``
checks frame by frame): IPv4 options and IPv6 extension headers; a segment the
snap length cut (its length is the one on the wire, its checksum ``unverified``);
a segment with the first 16 octets of its header captured; SYN+FIN, port 0 and a
bogus header length, with a note (:data:`Oddity`); IPv4 and IPv6 in IP and GRE
tunnels (the inner packet); the segment an ICMP error quotes. A fragment raises
:class:`~l4kit.replay.fragments.FragmentError` for the reassembler; what carries
no TCP raises :class:`~l4kit.errors.ParseError` with the wire layer's reason.

``tests/unit/test_replay_fastpath.py`` checks that both paths agree with
:func:`l4kit.wire.packet.decode_packet` on every field for generated packets,
where that decoder accepts the packet. Options are not validated: Linux ignores a
malformed option and Wireshark still analyses the segment, so replay does too.

A packet whose IPv4 header checksum is wrong is decoded anyway and flagged
(``ip_ok`` False): a receiver drops it, and replay shows that.
"""

from __future__ import annotations

import struct
from types import FunctionType
from typing import Final

try:
    from mypy_extensions import i64
except ImportError:  # only mypyc needs it, when it compiles this module: then it is a C integer
    i64 = int  # type: ignore[misc]

from l4kit.checksum import ChecksumStatus
from l4kit.errors import IntegrityError, ParseError, SanityError
from l4kit.replay.fragments import FragmentError
from l4kit.replay.model import PREVIEW_BYTES
from l4kit.wire.flags import FIN_BIT, SYN_BIT
from l4kit.wire.ip import address_text
from l4kit.wire.options import WindowScale
from l4kit.wire.packet import ipv6_final_destination
from l4kit.wire.tcp import decode_options

# IPv4 without options, from the version/IHL octet: total length, flags/fragment
# offset, protocol, then the TCP header's ports, seq, ack, offset/flags and window.
_IPV4_TCP: Final = struct.Struct("!2xH2xH1xB10xHHIIHH")
_IPV4_LENGTH_FRAG: Final = struct.Struct("!2xH2xH")  # total length, flags/fragment offset
_IPV6: Final = struct.Struct("!4xHB")  # payload length, next header
_TCP: Final = struct.Struct("!HHIIHH")  # ports, seq, ack, offset/flags, window
_PORTS: Final = struct.Struct("!HH")
_FRAGMENT_BITS: Final = 0x3FFF
_SYN: Final = SYN_BIT
_SYN_FIN: Final = SYN_BIT | FIN_BIT
ONES: Final = 0xFFFF

_TCP_PROTOCOL: Final = 6
_IP_IN_IP: Final = frozenset((4, 41))  # IPv4 or IPv6 in IP (RFC 2003, RFC 4213)
_GRE: Final = 47
_GRE_ROUTING_VERSION: Final = 0x4007  # RFC 1701's routing bit, and a version other than 0
_ETHERTYPE_IP: Final = frozenset((0x0800, 0x86DD))
_ICMP: Final = 1
_ICMPV6: Final = 58
_IPV6_SKIPPABLE: Final = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_IPV6_ROUTING: Final = 43
_IPV6_FRAGMENT: Final = 44
_MAX_NESTING: Final = 4  # tunnels inside tunnels followed at most
_QUOTED: Final = 1 << 17  # an ICMP quote: trust the quoted header's lengths
_TCP_NUMBERED: Final = 16  # octets of TCP header tshark needs to number a segment
# The ICMP errors that quote the packet that caused them, as tshark dissects them.
_ICMP_ERRORS: Final = {
    3: "ICMP destination unreachable",
    4: "ICMP source quench",
    5: "ICMP redirect",
    11: "ICMP time exceeded",
    12: "ICMP parameter problem",
}
_ICMPV6_ERRORS: Final = {
    1: "ICMPv6 destination unreachable",
    2: "ICMPv6 packet too big",
    3: "ICMPv6 time exceeded",
    4: "ICMPv6 parameter problem",
}

OK: Final = "ok"
BAD: Final = "bad"
OFFLOADED: Final = "offloaded"
UNVERIFIED: Final = "unverified"
_STATUS: Final = {ChecksumStatus.OK: OK, ChecksumStatus.BAD: BAD, ChecksumStatus.OFFLOADED: OFFLOADED}

OBSERVE_ALL: Final = 0
"""An odd segment the observers still take (port 0)."""
OBSERVE_NO_STATES: Final = 1
"""Zeek's and Wireshark's analyses take it, the RFC 9293 states do not (SYN+FIN:
Zeek records it as ``Q``, Linux drops it)."""
OBSERVE_NONE: Final = 2
"""Shown only (a bogus header length, an ICMP quote)."""

NOTE_SYN_FIN: Final = "SYN+FIN: an illegal combination (scanners send it); a receiver drops it"
NOTE_PORT_ZERO: Final = "port 0: reserved (RFC 6335), no socket uses it"
NOTE_BOGUS_HEADER: Final = "bogus TCP header length ({} octets): dropped by the receiver"

Oddity = tuple[tuple[str, ...], int]
"""What is odd about a segment: ``(notes, observe)``, ``observe`` one of the ``OBSERVE_*``."""

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
    "Oddity | None",
]
"""What :func:`decode_at` returns, ``(key, sport, dport, seq, ack, flags, window, length,
ip_ok, wscale, checksum, head, seg_start, seg_end, oddity)``:

``key`` source address, destination address, source and destination port as
octets (see :func:`key_addresses`); ``flags`` the 9 flag bits; ``length`` the
payload length (on the wire: a segment the snap length cut keeps its length);
``ip_ok`` whether the IPv4 header checksum is right (always True for IPv6);
``wscale`` the window-scale shift of a SYN (None without the option); ``oddity``
None, or what is odd about the segment (:data:`Oddity`).

``ip_ok`` (for IPv4), ``wscale``, ``checksum`` (``"ok"``/``"bad"``/``"offloaded"``,
``"unverified"`` when the capture holds only part of the segment) and ``head`` (the
first :data:`HEAD` payload octets) are None when the packet was decoded in place
(``seg_start`` > 0): the caller computes what it needs, with :func:`ipv4_header_ok`
and, from ``seg_start``/``seg_end`` (where the TCP segment lies in the frame),
:func:`window_scale_at`, :func:`checksum_status` and :func:`payload_head`. The slow
path fills them in (and leaves both offsets 0)."""


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


def decode_at(frame: bytes, offset: int, missing: int = 0) -> Decoded:
    """Decode the IP packet at ``offset`` in ``frame`` (which must carry TCP); raises
    :class:`ParseError` for anything else, with the wire layer's reason, and
    :class:`~l4kit.replay.fragments.FragmentError` for a fragment.

    ``missing``: octets of the frame the capture did not keep (its original length
    minus its captured length, when the snap length cut it)."""
    avail = len(frame) - offset
    first = frame[offset] if avail > 0 else 0
    if first == 0x45 and avail >= 40:
        total, frag, proto, sport, dport, seq, ack, offset_flags, window = _IPV4_TCP.unpack_from(
            frame, offset
        )
        if frag & _FRAGMENT_BITS or proto != 6 or total > avail or total < 40:
            return _slow(frame, offset, missing)
        ip_ok: bool | None = None  # see ipv4_header_ok
        seg_start = offset + 20
        seg_end = offset + total
        key = frame[offset + 12 : offset + 24]
    elif first >> 4 == 6 and avail >= 60:
        plen, next_header = _IPV6.unpack_from(frame, offset)
        if next_header != 6 or 40 + plen > avail or plen < 20:
            return _slow(frame, offset, missing)
        seg_start = offset + 40
        seg_end = seg_start + plen
        sport, dport, seq, ack, offset_flags, window = _TCP.unpack_from(frame, seg_start)
        ip_ok = True
        key = frame[offset + 8 : seg_start + 4]
    else:
        return _slow(frame, offset, missing)
    header_len = (offset_flags >> 12) * 4
    flags = offset_flags & 0x1FF
    if (
        header_len < 20
        or header_len > seg_end - seg_start
        or sport == 0
        or dport == 0
        or flags & _SYN_FIN == _SYN_FIN
    ):
        return _slow(frame, offset, missing)  # with a note saying what is odd
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
        None,
    )


def _interpreted() -> bool:
    return isinstance(_interpreted, FunctionType)  # compiled by mypyc, it is a builtin


INTERPRETED: Final = _interpreted()
"""Whether this module runs as Python bytecode, not compiled by mypyc (``setup.py``).
The one's complement sums take a different road in each: see :func:`word_sum`."""


def word_sum(data: bytes, start: i64, end: i64) -> i64:
    """The sum of the big-endian 16-bit words of ``data[start:end]``, an odd last octet
    padded with a zero octet (RFC 1071): ≡ their one's complement sum (mod 0xFFFF).

    For the compiled build: a loop over the octets in C integers, 4-5 times as fast as
    one big integer reduced modulo 0xFFFF (about 0.9 against 3.9 µs for a 1,448-octet
    segment on the benchmark's machine). Interpreted, the loop would be twenty times
    slower than the big integer: :func:`checksum_status` and :func:`ipv4_header_ok`
    use it only when compiled (:data:`INTERPRETED`). The even octets and the odd
    octets are summed apart, four at a time."""
    high: i64 = 0
    low: i64 = 0
    i: i64 = start
    stop: i64 = end - 3
    while i < stop:
        high += i64(data[i]) + i64(data[i + 2])
        low += i64(data[i + 1]) + i64(data[i + 3])
        i += 4
    while i < end - 1:
        high += i64(data[i])
        low += i64(data[i + 1])
        i += 2
    if i < end:
        high += i64(data[i])
    return (high << 8) + low


def ipv4_header_ok(frame: bytes, offset: int) -> bool:
    """Whether the option-less IPv4 header at ``offset`` has a right header checksum
    (its 16-bit words sum to -0, RFC 1071)."""
    if INTERPRETED:
        return int.from_bytes(frame[offset : offset + 20], "big") % ONES == 0
    return word_sum(frame, offset, offset + 20) % ONES == 0


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
    with a zero octet. Compiled, the words are summed (:func:`word_sum`) instead.
    """
    seg_len = seg_end - seg_start
    if not INTERPRETED:
        pseudo_sum = word_sum(key, 0, len(key) - 4) + 6 + seg_len
        if (pseudo_sum + word_sum(frame, seg_start, seg_end)) % ONES == 0:
            return OK
        if (((frame[seg_start + 16] << 8) | frame[seg_start + 17]) - pseudo_sum) % ONES == 0:
            return OFFLOADED
        return BAD
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


def decode(
    ip: bytes,
) -> tuple[str, str, int, int, int, int, int, int, int, bytes, str, bool, int | None, Oddity | None]:
    """One IP packet, every field decoded: ``(src, dst, sport, dport, seq, ack, flags,
    window, length, head, checksum, ip_ok, wscale, oddity)`` with the addresses as text.

    The convenient form of :func:`decode_at` (for tests and tools, not the per-packet path)."""
    key, sport, dport, seq, ack, flags, window, length, ip_ok, wscale, status, head, start, end, odd = (
        decode_at(ip, 0)
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
        odd,
    )


# ---------------------------------------------------------------- everything else


def _slow(frame: bytes, offset: int, missing: int, depth: int = 0, outer_ok: bool = True) -> Decoded:
    """Any IP packet the in-place path leaves: IPv4 options, IPv6 extension headers, a
    segment cut by the snap length, the odd segments, tunnels, ICMP errors.

    ``depth`` counts the tunnels around the packet; ``outer_ok`` is False when an outer
    IPv4 header's checksum was wrong."""
    captured = len(frame)
    avail = captured - offset
    if avail < 1:
        raise IntegrityError("ip", "truncated", "empty packet")
    version = frame[offset] >> 4
    if version == 4:
        if avail < 20:
            raise IntegrityError(
                "ipv4", "truncated", f"an IPv4 header needs 20 octets, the packet has {avail}"
            )
        header_len = (frame[offset] & 0x0F) * 4
        if header_len < 20:
            raise SanityError("ipv4", "bad-ihl", f"IHL {header_len // 4}")
        if header_len > avail:
            raise IntegrityError("ipv4", "truncated", f"IHL {header_len // 4}, {avail} octets")
        total, frag = _IPV4_LENGTH_FRAG.unpack_from(frame, offset)
        if total < header_len:
            raise SanityError(
                "ipv4", "bad-total-length", f"total length {total} < header length {header_len}"
            )
        if frag & _FRAGMENT_BITS:
            raise FragmentError("ipv4", offset, f"MF {frag >> 13 & 1}, offset {frag & 0x1FFF}")
        ip_ok = outer_ok and int.from_bytes(frame[offset : offset + header_len], "big") % ONES == 0
        proto = frame[offset + 9]
        addresses = pseudo = frame[offset + 12 : offset + 20]
        payload = offset + header_len
        end = offset + total
    elif version == 6:
        if avail < 40:
            raise IntegrityError(
                "ipv6", "truncated", f"an IPv6 header needs 40 octets, the packet has {avail}"
            )
        plen, proto = _IPV6.unpack_from(frame, offset)
        end = offset + 40 + plen
        payload = offset + 40
        addresses = pseudo = frame[offset + 8 : offset + 40]
        limit = min(end, captured)
        # Each extension header is at least 8 octets: the walk ends within plen / 8 steps.
        while proto in _IPV6_SKIPPABLE:
            if payload + 8 > limit:
                raise IntegrityError("ipv6", "truncated", f"extension header {proto} past the payload")
            ext_len = (frame[payload + 1] + 1) * 8
            if payload + ext_len > end:
                raise IntegrityError("ipv6", "truncated", f"extension header {proto} past the payload")
            if proto == _IPV6_ROUTING and payload + ext_len <= captured:
                pseudo = addresses[:16] + ipv6_final_destination(frame, payload, ext_len, addresses[16:])
            proto = frame[payload]
            payload += ext_len
        if proto == _IPV6_FRAGMENT:
            raise FragmentError("ipv6", offset, "IPv6 Fragment header")
        ip_ok = outer_ok
    else:
        raise SanityError("ip", "bad-version", f"version {version}")
    # Where the packet ends on the wire (its header's length, as far as the frame went)
    # and in the capture.
    wire_end = min(end, captured + missing)
    captured_end = min(end, captured)
    if proto == _TCP_PROTOCOL:
        return _tcp(frame, addresses, pseudo, payload, wire_end, captured_end, ip_ok)
    if depth < _MAX_NESTING:
        if proto in _IP_IN_IP:
            return _slow(frame[:captured_end], payload, max(0, wire_end - captured_end), depth + 1, ip_ok)
        if proto == _GRE:
            inner = _gre_payload(frame, payload, captured_end)
            return _slow(frame[:captured_end], inner, max(0, wire_end - captured_end), depth + 1, ip_ok)
        if (proto == _ICMP and version == 4) or proto == _ICMPV6:
            return _icmp_quote(frame, offset, payload, captured_end, version, ip_ok)
    raise ParseError("ipv4" if version == 4 else "ipv6", "not-tcp", f"protocol {proto}")


def _tcp(  # noqa: PLR0917 - the pieces _slow found
    frame: bytes,
    addresses: bytes,
    pseudo: bytes,
    start: int,
    wire_end: int,
    captured_end: int,
    ip_ok: bool,
) -> Decoded:
    """The TCP segment at ``start``: anything with its first 16 octets captured (ports,
    sequence numbers, flags, window: where tshark starts numbering a segment), odd
    segments with notes."""
    if captured_end - start < _TCP_NUMBERED:
        raise IntegrityError("tcp", "truncated", f"{captured_end - start} octets of the TCP header captured")
    sport, dport, seq, ack, offset_flags, window = _TCP.unpack_from(frame, start)
    flags = offset_flags & 0x1FF
    header_len = (offset_flags >> 12) * 4
    notes: list[str] = []
    observe = OBSERVE_ALL
    if header_len < 20 or header_len > wire_end - start:
        notes.append(NOTE_BOGUS_HEADER.format(header_len))
        observe = OBSERVE_NONE
        length = 0
    else:
        length = wire_end - start - header_len
    if flags & _SYN_FIN == _SYN_FIN:
        notes.append(NOTE_SYN_FIN)
        observe = max(observe, OBSERVE_NO_STATES)
    if sport == 0 or dport == 0:
        notes.append(NOTE_PORT_ZERO)
    key = addresses + frame[start : start + 4]
    if wire_end == captured_end and captured_end - start >= 20:
        status = checksum_status(frame, pseudo + b"\x00\x00\x00\x00", start, captured_end)
    else:
        status = UNVERIFIED  # the capture kept only part of the segment
    wscale = None
    header_captured = 20 <= header_len <= captured_end - start
    if flags & _SYN and header_captured:
        wscale = _window_scale(frame[start + 20 : start + header_len])
    head = b""
    if length and header_captured:
        data = start + header_len
        head = frame[data : min(captured_end, data + HEAD)]
    return (
        key,
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        length,
        ip_ok,
        wscale,
        status,
        head,
        0,
        0,
        (tuple(notes), observe) if notes else None,
    )


def _gre_payload(frame: bytes, start: int, end: int) -> int:
    """Where the IP packet in the GRE packet at ``start`` begins (RFC 2784, RFC 2890)."""
    if end - start < 4:
        raise IntegrityError("gre", "truncated", "a GRE header needs 4 octets")
    flags_version: int
    protocol: int
    flags_version, protocol = _PORTS.unpack_from(frame, start)
    if flags_version & _GRE_ROUTING_VERSION or protocol not in _ETHERTYPE_IP:
        raise ParseError("gre", "not-tcp", f"GRE flags {flags_version:#06x}, protocol {protocol:#06x}")
    # The optional fields: checksum and reserved (C), key (K), sequence number (S).
    optional: int = sum(4 for bit in (0x8000, 0x2000, 0x1000) if flags_version & bit)
    return start + 4 + optional


def _icmp_quote(  # noqa: PLR0917 - the pieces _slow found
    frame: bytes, offset: int, start: int, end: int, version: int, ip_ok: bool
) -> Decoded:
    """An ICMP error quoting a TCP segment (RFC 792, RFC 4443 §2.4): tshark numbers the
    quoted segment in its connection, so replay shows the frame there, noted, and does
    not analyse it (it is a copy of a segment, not one)."""
    errors = _ICMP_ERRORS if version == 4 else _ICMPV6_ERRORS
    what = errors.get(frame[start]) if end - start >= 8 else None
    if what is None:
        raise ParseError("icmp", "not-tcp", "an ICMP message that quotes no segment")
    try:
        # The quote ends with the ICMP message, however long the quoted packet says it is.
        quoted = _slow(frame[:end], start + 8, _QUOTED, _MAX_NESTING, ip_ok)
    except FragmentError:
        raise ParseError("icmp", "not-tcp", "an ICMP error quoting a fragment") from None
    sender = address_text(
        frame[offset + 12 : offset + 16] if version == 4 else frame[offset + 8 : offset + 24]
    )
    note = f"{what} from {sender}, quoting this segment: not a segment itself"
    key, sport, dport, seq, ack, flags, window, length, _, wscale, _, head, _, _, odd = quoted
    notes = (note, *odd[0]) if odd is not None else (note,)
    return (
        key,
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        length,
        ip_ok,
        wscale,
        UNVERIFIED,
        head,
        0,
        0,
        (notes, OBSERVE_NONE),
    )

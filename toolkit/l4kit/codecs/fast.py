"""The fast struct codec: per-connection templates and incremental checksums.

:func:`l4kit.wire.packet.encode_packet` builds every packet from nothing: it
parses both addresses, sums the pseudo-header, packs the IP and TCP headers in
two calls and joins four pieces. A responder sends several segments on the same
4-tuple, so most of that work is the same every time. :class:`FastCodec` keeps
it in a :class:`_Template` per 4-tuple:

* the packed addresses and ports;
* the one's complement sum of everything in the TCP checksum that does not change
  between segments of the connection (pseudo-header addresses and protocol, the
  ports), and likewise for the IPv4 header checksum (version, IHL, TOS,
  identification, DF, TTL, protocol, addresses).

A template is a header whose changing fields are zero, with its checksum. RFC
1624 §3 (eqn. 3) updates a checksum when a field changes from ``m`` to ``m'``:
``HC' = ~(~HC + ~m + m')``. With ``m = 0`` the term ``~m`` is ``0xFFFF``, one's
complement -0, which adds nothing, so the update is ``HC' = ~(~HC + m')``: the
template keeps ``~HC`` (the folded sum) and a reply adds its own words (length,
sequence and acknowledgment numbers, offset and flags, window, urgent pointer,
options) and then sums the payload, the only part that needs a pass over the
data. One ``struct.pack`` writes the Ethernet, IP and TCP headers together.

The bytes are those of :func:`~l4kit.wire.packet.encode_packet` and so of the
Scapy codec's ``Ether()/IP()/TCP()/Raw`` (the header defaults are listed in
:mod:`l4kit.wire.packet`); ``tests/unit/test_fast_codec.py`` proves it against
Scapy for generated segments, templates reused across many of them. A segment
whose fields do not fit (a port over 65535, options over 40 octets, a packet
over 65535 octets) is handed to ``encode_packet``, which raises the same
:class:`~l4kit.wire.ip.EncodeError` it always does.

Decoding: :meth:`FastCodec.decode` reads the common case (an IPv4 packet
without IP options, not a fragment, carrying TCP) with one ``struct`` layout,
and hands everything else (IPv6, IP options, every malformed packet) to
:func:`~l4kit.wire.packet.decode_packet`, so its result and its
:class:`~l4kit.errors.ParseError` reasons are exactly ``decode_packet``'s. A
driver that already knows the checksum status from the kernel
(``PACKET_AUXDATA``: partial on ``lo``, or verified by the card) passes it in
and the payload is not summed at all.

No Scapy, no I/O: replay, the responder and notebooks can all use it.
"""

from __future__ import annotations

import struct
from typing import Final

from l4kit.checksum import ONES, ChecksumStatus, internet_checksum, parse_address
from l4kit.errors import ConfigError
from l4kit.wire.flags import TcpFlags
from l4kit.wire.ip import EncodeError, address_text
from l4kit.wire.options import NoOperation, TcpOption, Timestamps
from l4kit.wire.packet import IPPROTO_TCP, decode_packet, encode_packet
from l4kit.wire.segment import Segment
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.tcp import decode_options, encode_options

ETH_P_IP: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD

# Ethernet + IPv4 + TCP, and Ethernet + IPv6 + TCP, each packed in one call.
_FRAME_V4: Final = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIHHHH")
_FRAME_V6: Final = struct.Struct("!6s6sHIHBB16s16sHHIIHHHH")
_PACKET_V4: Final = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")
_PACKET_V6: Final = struct.Struct("!IHBB16s16sHHIIHHHH")
# Decoding IPv4 + TCP: every field of a 20-octet IP header (the addresses as integers),
# then the TCP header.
_IN_V4: Final = struct.Struct("!BBHHHBBHIIHHIIHHHH")
# The options of nearly every segment once RFC 7323 timestamps are agreed (Linux's
# layout): NOP, NOP, Timestamps. Decoded and encoded here without the general option
# loop, which would build the same values.
_NOP_NOP_TS: Final = b"\x01\x01\x08\x0a"
_NOP_NOP_TS_SUM: Final = 0x0101 + 0x080A
_TS_VALUES: Final = struct.Struct("!II")
_NOP_NOP_TS_OCTETS: Final = struct.Struct("!4sII")
_NOP: Final = NoOperation()

_DF: Final = 0x4000
_FRAGMENT_BITS: Final = 0x3FFF
_SYN_FIN: Final = 0x003
_FLAGS_BY_VALUE: Final[tuple[TcpFlags, ...]] = tuple(TcpFlags(v) for v in range(0x200))
_OK: Final = ChecksumStatus.OK
_BAD: Final = ChecksumStatus.BAD
_OFFLOADED: Final = ChecksumStatus.OFFLOADED

DEFAULT_MAX_TEMPLATES: Final = 4096
_MAX_CACHED_OPTIONS: Final = 256
_MAX_NAMES: Final = 4096

TemplateKey = tuple[str, str, int, int]


class _Template:
    """What stays the same for every segment of one 4-tuple (see the module docstring)."""

    __slots__ = ("dport", "dst", "ip_sum", "sport", "src", "tcp_sum", "v6")

    def __init__(self, src: str, dst: str, sport: int, dport: int, *, ttl: int, ip_id: int) -> None:
        src_b, src_sum = parse_address(src)
        dst_b, dst_sum = parse_address(dst)
        if len(src_b) != len(dst_b):
            raise EncodeError(f"source {src} and destination {dst} are of different IP versions")
        self.src = src_b
        self.dst = dst_b
        self.sport = sport
        self.dport = dport
        self.v6 = len(src_b) == 16
        # ~HC of the TCP checksum with every per-segment word zero: pseudo-header addresses
        # and protocol (RFC 9293 §3.1, RFC 8200 §8.1), and the ports.
        self.tcp_sum = src_sum + dst_sum + IPPROTO_TCP + sport + dport
        # ~HC of the IPv4 header checksum with total length zero (RFC 791 §3.1).
        self.ip_sum = 0x4500 + ip_id + _DF + (ttl << 8) + IPPROTO_TCP + src_sum + dst_sum


class FastCodec:
    """Segments to packets and frames with per-connection templates; packets to segments.

    ``ttl`` and ``ip_id`` are the IP header values of every packet, as the
    ``encode_packet`` arguments of the same names. At most ``max_templates``
    4-tuples are remembered; the oldest is forgotten first (a template costs one
    address lookup to rebuild).
    """

    __slots__ = ("_ethernet", "_max_templates", "_names", "_options", "_templates", "ip_id", "ttl")

    def __init__(self, *, ttl: int = 64, ip_id: int = 0, max_templates: int = DEFAULT_MAX_TEMPLATES) -> None:
        if not 0 <= ttl <= 0xFF or not 0 <= ip_id <= 0xFFFF:
            raise EncodeError(f"TTL {ttl} / IP identification {ip_id} out of range")
        self.ttl = ttl
        self.ip_id = ip_id
        self._max_templates = max(1, max_templates)
        self._templates: dict[TemplateKey, _Template] = {}
        self._options: dict[tuple[TcpOption, ...], tuple[bytes, int]] = {}
        # The text of IPv4 addresses decoded lately, by their value.
        self._names: dict[int, str] = {}

    # ------------------------------------------------------------------ templates

    def _template(self, seg: Segment) -> _Template:
        key = (seg.src, seg.dst, seg.sport, seg.dport)
        template = self._templates.get(key)
        if template is None:
            template = _Template(seg.src, seg.dst, seg.sport, seg.dport, ttl=self.ttl, ip_id=self.ip_id)
            templates = self._templates
            if len(templates) >= self._max_templates:
                del templates[next(iter(templates))]
            templates[key] = template
        return template

    def forget(self, src: str, dst: str, sport: int, dport: int) -> None:
        """Drop the template of a 4-tuple (a connection that closed)."""
        self._templates.pop((src, dst, sport, dport), None)

    @property
    def templates(self) -> int:
        """How many 4-tuples have a template now."""
        return len(self._templates)

    def _encoded_options(self, options: tuple[TcpOption, ...]) -> tuple[bytes, int]:
        """The options' octets (padded) and their folded sum; a SYN-ACK's MSS is the same
        every time, so it is encoded once. NOP, NOP, Timestamps (a new value on every
        segment, so never found in the cache) is written directly."""
        if len(options) == 3:
            stamps = options[2]
            if (
                isinstance(stamps, Timestamps)
                and isinstance(options[0], NoOperation)
                and isinstance(options[1], NoOperation)
            ):
                tsval = stamps.tsval
                tsecr = stamps.tsecr
                # Out of range: struct.error, which _encode hands to the reference encoder.
                octets = _NOP_NOP_TS_OCTETS.pack(_NOP_NOP_TS, tsval, tsecr)
                return octets, _NOP_NOP_TS_SUM + (tsval >> 16) + (tsval & 0xFFFF) + (tsecr >> 16) + (
                    tsecr & 0xFFFF
                )
        cached = self._options.get(options)
        if cached is None:
            octets = encode_options(options)
            if len(octets) > 40:
                raise EncodeError(
                    f"TCP options take {len(octets)} octets, more than the 40 a header can hold"
                )
            cached = (octets, int.from_bytes(octets, "big") % ONES)
            if len(self._options) >= _MAX_CACHED_OPTIONS:
                self._options.clear()
            self._options[options] = cached
        return cached

    # ------------------------------------------------------------------ encode

    def encode_frame(self, seg: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        """The Ethernet frame for ``seg``: equal to ``raw(to_frame(seg, ...))`` of the Scapy codec."""
        return self._encode(seg, src_mac, dst_mac, True)

    def encode_frame_once(self, seg: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        """The same frame, for a 4-tuple that will not come back (a SYN cookie's SYN-ACK):
        its template is used once and not kept, so a SYN flood from spoofed addresses
        does not push the templates of live connections out."""
        return self._encode(seg, src_mac, dst_mac, False)

    def encode(self, seg: Segment) -> bytes:
        """The IP packet for ``seg``: equal to ``encode_packet(seg, ttl=..., ip_id=...)``."""
        return self._encode(seg, None, None, True)

    def _encode(self, seg: Segment, src_mac: bytes | None, dst_mac: bytes | None, keep: bool) -> bytes:
        try:
            if keep:
                t = self._template(seg)
            else:
                t = _Template(seg.src, seg.dst, seg.sport, seg.dport, ttl=self.ttl, ip_id=self.ip_id)
            if seg.options:
                options, options_sum = self._encoded_options(seg.options)
            else:
                options, options_sum = b"", 0
            payload = seg.payload
            tcp_len = 20 + len(options) + len(payload)
            seq = seg.seq.value
            ack = seg.ack.value
            offset_flags = ((5 + (len(options) >> 2)) << 12) | (int(seg.flags) & 0x1FF)
            window = seg.window
            urgent = seg.urgent
            header_sum = (
                t.tcp_sum
                + tcp_len
                + (seq >> 16)
                + (seq & 0xFFFF)
                + (ack >> 16)
                + (ack & 0xFFFF)
                + offset_flags
                + window
                + urgent
                + options_sum
            )
            if payload:
                tcp_checksum = internet_checksum(payload, header_sum)
            else:
                # internet_checksum of no octets, without the call (most replies carry
                # none): the sum is positive (the ports are in it), so ~0 is 0x0000.
                r = header_sum % ONES
                tcp_checksum = ONES - r if r else 0
            if t.v6:
                if tcp_len > 0xFFFF:
                    raise struct.error("no jumbograms")
                if src_mac is None or dst_mac is None:
                    header = _PACKET_V6.pack(
                        6 << 28, tcp_len, IPPROTO_TCP, self.ttl, t.src, t.dst,
                        t.sport, t.dport, seq, ack, offset_flags, window, tcp_checksum, urgent,
                    )  # fmt: skip
                else:
                    header = _FRAME_V6.pack(
                        dst_mac, src_mac, ETH_P_IPV6,
                        6 << 28, tcp_len, IPPROTO_TCP, self.ttl, t.src, t.dst,
                        t.sport, t.dport, seq, ack, offset_flags, window, tcp_checksum, urgent,
                    )  # fmt: skip
            else:
                total = 20 + tcp_len
                if total > 0xFFFF:
                    raise struct.error("over 65535 octets")
                r = (t.ip_sum + total) % ONES
                ip_checksum = ONES - r if r else 0
                if src_mac is None or dst_mac is None:
                    header = _PACKET_V4.pack(
                        0x45, 0, total, self.ip_id, _DF, self.ttl, IPPROTO_TCP, ip_checksum, t.src, t.dst,
                        t.sport, t.dport, seq, ack, offset_flags, window, tcp_checksum, urgent,
                    )  # fmt: skip
                else:
                    header = _FRAME_V4.pack(
                        dst_mac, src_mac, ETH_P_IP,
                        0x45, 0, total, self.ip_id, _DF, self.ttl, IPPROTO_TCP, ip_checksum, t.src, t.dst,
                        t.sport, t.dport, seq, ack, offset_flags, window, tcp_checksum, urgent,
                    )  # fmt: skip
        except (struct.error, ConfigError):
            # A field out of range, a bad address: the reference encoder raises its own error
            # for it (whichever of several problems it checks first).
            packet = encode_packet(seg, ttl=self.ttl, ip_id=self.ip_id)
            if src_mac is None or dst_mac is None:
                return packet
            ethertype = ETH_P_IPV6 if len(packet) and packet[0] >> 4 == 6 else ETH_P_IP
            return struct.pack("!6s6sH", dst_mac, src_mac, ethertype) + packet
        if options:
            return header + options + payload
        return header + payload if payload else header

    # ------------------------------------------------------------------ decode

    def _name(self, value: int, packed: bytes) -> str:
        """The text of an IPv4 address, kept for the next frame from or to it (at most
        ``_MAX_NAMES`` of them: a flood from spoofed sources brings a new one each time)."""
        names = self._names
        if len(names) >= _MAX_NAMES:
            names.clear()
        text = names[value] = address_text(packed)
        return text

    def decode(self, data: bytes | bytearray | memoryview, checksum: ChecksumStatus | None = None) -> Segment:
        """The segment in an IP ``packet``, as :func:`~l4kit.wire.packet.decode_packet` gives it.

        ``checksum``: the status the driver already knows (from the kernel), which then
        replaces the classification, as ``decode_packet(packet).with_(checksum=checksum)``
        would; ``None`` classifies from the bytes. Raises only
        :class:`~l4kit.errors.ParseError`, with ``decode_packet``'s reasons.
        """
        packet: bytes = data if isinstance(data, bytes) else bytes(data)
        n = len(packet)
        if n >= 40 and packet[0] == 0x45:
            fields = _IN_V4.unpack_from(packet)
            # Typed, so that the compiled build works on plain machine integers.
            vihl: int = fields[0]
            tos: int = fields[1]
            total: int = fields[2]
            ident: int = fields[3]
            flags_frag: int = fields[4]
            ttl: int = fields[5]
            proto: int = fields[6]
            ip_sum: int = fields[7]
            src: int = fields[8]
            dst: int = fields[9]
            sport: int = fields[10]
            dport: int = fields[11]
            seq: int = fields[12]
            ack: int = fields[13]
            offset_flags: int = fields[14]
            window: int = fields[15]
            field: int = fields[16]
            urgent: int = fields[17]
            header_len = (offset_flags >> 12) << 2
            addresses = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
            if (
                40 <= total <= n
                and not flags_frag & _FRAGMENT_BITS
                and proto == IPPROTO_TCP
                and 20 <= header_len <= total - 20
                and sport
                and dport
                and offset_flags & _SYN_FIN != _SYN_FIN
                # The IP header checksum: its ten words sum to -0 (RFC 1071).
                and (
                    ((vihl << 8) | tos)
                    + total
                    + ident
                    + flags_frag
                    + ((ttl << 8) | proto)
                    + ip_sum
                    + addresses
                )
                % ONES
                == 0
            ):
                options: tuple[TcpOption, ...] = ()
                if header_len == 32 and packet[40:44] == _NOP_NOP_TS:
                    tsval, tsecr = _TS_VALUES.unpack_from(packet, 44)
                    options = (_NOP, _NOP, Timestamps(tsval, tsecr))
                elif header_len > 20:
                    options = decode_options(packet[40 : 20 + header_len])
                if checksum is None:
                    tcp_len = total - 20
                    pseudo = addresses + IPPROTO_TCP + tcp_len
                    if internet_checksum(packet[20:total], pseudo) == 0:
                        checksum = _OK
                    elif (field - pseudo) % ONES == 0:
                        checksum = _OFFLOADED
                    else:
                        checksum = _BAD
                names = self._names
                src_text = names.get(src)
                if src_text is None:
                    src_text = self._name(src, packet[12:16])
                dst_text = names.get(dst)
                if dst_text is None:
                    dst_text = self._name(dst, packet[16:20])
                return Segment(
                    src=src_text,
                    dst=dst_text,
                    sport=sport,
                    dport=dport,
                    seq=SeqNum(seq),
                    ack=SeqNum(ack),
                    flags=_FLAGS_BY_VALUE[offset_flags & 0x1FF],
                    window=window,
                    urgent=urgent,
                    options=options,
                    payload=packet[20 + header_len : total],
                    checksum=checksum,
                )
        segment = decode_packet(packet)
        if checksum is not None and segment.checksum is not checksum:
            return segment.with_(checksum=checksum)
        return segment

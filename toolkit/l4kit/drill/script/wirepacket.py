"""TCP/IP packets as a run sees them: decoded from the bytes a stack sent, or built
from a script line to be injected.

:class:`WirePacket` keeps every field packetdrill compares (TOS, TTL, lengths,
flags, options, payload), in whatever number space it is in: live (the stack's
own sequence numbers) or script (relative to the initial sequence numbers). The
bytes are built and read with :mod:`l4kit.wire`.
"""

from __future__ import annotations

from dataclasses import dataclass

from l4kit.checksum import ipv4_header_checksum_ok
from l4kit.drill.script.options import option_kind
from l4kit.errors import ParseError
from l4kit.wire.flags import TcpFlags
from l4kit.wire.ip import IPv4Header, IPv6Header, decode_ip, encode_ipv4, encode_ipv6
from l4kit.wire.options import EndOfOptions, TcpOption
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.tcp import TcpHeader, encode_options, encode_tcp, parse_tcp

FIN = 0x001
SYN = 0x002
RST = 0x004
PSH = 0x008
ACK = 0x010
URG = 0x020
ECE = 0x040
CWR = 0x080
AE = 0x100

# packetdrill's letters for the flag bits (``.`` is ACK; ``E`` ECE, ``W`` CWR, ``A`` AE),
# in the order it prints them, which is tcpdump's.
PD_FLAG_LETTERS = (("F", FIN), ("S", SYN), ("R", RST), ("P", PSH), (".", ACK), ("U", URG))
PD_ECN_LETTERS = (("E", ECE), ("W", CWR), ("A", AE))
_SCAPY_LETTERS = "FSRPAUECN"


def flags_from_text(text: str) -> tuple[int, bool]:
    """The bits of packetdrill's flag text, and whether it gave an AccECN ACE value
    (a digit, for ECE/CWR/AE together) rather than E/W/A letters."""
    bits = 0
    for letter, bit in (*PD_FLAG_LETTERS, *PD_ECN_LETTERS):
        if letter in text:
            bits |= bit
    ace = next((int(ch) for ch in text if ch.isdigit()), None)
    if ace is not None:
        bits &= ~(ECE | CWR | AE)
        bits |= (ECE if ace & 1 else 0) | (CWR if ace & 2 else 0) | (AE if ace & 4 else 0)
    return bits, ace is not None


def flags_to_text(bits: int) -> str:
    """packetdrill's notation: ``S.``, ``P.``, ``F.``, ``R``, ``.``; ``-`` for none."""
    text = "".join(letter for letter, bit in (*PD_FLAG_LETTERS, *PD_ECN_LETTERS) if bits & bit)
    return text or "-"


def scapy_flags(bits: int) -> str:
    """Scapy's notation for the same bits: ``S``, ``SA``, ``PA``, ``FA``, ``R``, ``A``."""
    return "".join(ch for i, ch in enumerate(_SCAPY_LETTERS) if bits >> i & 1)


@dataclass(slots=True)
class WirePacket:
    """One IPv4 or IPv6 packet carrying TCP. ``ip_length`` is IPv4's total length or
    IPv6's payload length, as the header says; ``options_len`` the octets the TCP
    options take, padding included; ``time_us`` when it was sent or captured."""

    version: int
    src: str
    dst: str
    tos: int
    ttl: int
    flow_label: int
    ip_header_len: int
    ip_length: int
    ip_checksum_ok: bool
    sport: int
    dport: int
    seq: int
    ack: int
    data_offset: int
    reserved: int
    flags: int
    window: int
    urgent: int
    options: tuple[TcpOption, ...]
    options_len: int
    payload: bytes
    time_us: int = 0

    @property
    def payload_len(self) -> int:
        return len(self.payload)

    def option_kinds(self) -> list[tuple[int, TcpOption]]:
        """The options one by one as packetdrill walks them: an End-of-Option-List and
        each zero octet after it count as one option each."""
        walked: list[tuple[int, TcpOption]] = []
        for option in self.options:
            if isinstance(option, EndOfOptions):
                walked.append((0, option))
                walked.extend((0, EndOfOptions()) for _ in option.padding)
            else:
                walked.append((option_kind(option), option))
        return walked


def decode_wire(data: bytes, time_us: int = 0) -> WirePacket | None:
    """The packet in ``data`` (an IP packet, no link header), or ``None`` if it is not
    TCP over IPv4/IPv6 or cannot be read."""
    try:
        header, rest = decode_ip(data)
        if isinstance(header, IPv4Header):
            if header.protocol != 6 or header.is_fragment:
                return None
            version, tos, ttl, flow = 4, header.tos, header.ttl, 0
            ip_header_len = header.header_length
            ip_length = header.total_length or 0
            checksum_ok = ipv4_header_checksum_ok(data[:ip_header_len])
        else:
            if header.next_header != 6:
                return None
            version, tos, ttl, flow = 6, header.traffic_class, header.hop_limit, header.flow_label
            ip_header_len = 40
            ip_length = header.payload_length or 0
            checksum_ok = True
        parsed = parse_tcp(rest)
    except ParseError:
        return None
    sport, dport, seq, ack, data_offset, reserved, flags, window, _checksum, urgent, options, header_len = (
        parsed
    )
    # AE (the old NS bit) lives beside the reserved bits; parse_tcp keeps it in bit 8.
    return WirePacket(
        version=version,
        src=header.src,
        dst=header.dst,
        tos=tos,
        ttl=ttl,
        flow_label=flow,
        ip_header_len=ip_header_len,
        ip_length=ip_length,
        ip_checksum_ok=checksum_ok,
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        data_offset=data_offset,
        reserved=reserved,
        flags=flags,
        window=window,
        urgent=urgent,
        options=options,
        options_len=header_len - 20,
        payload=bytes(rest[header_len:]),
        time_us=time_us,
    )


def encode_wire(packet: WirePacket) -> bytes:
    """The IP packet for ``packet``, checksums computed, lengths from the contents."""
    header = TcpHeader(
        sport=packet.sport,
        dport=packet.dport,
        seq=SeqNum(packet.seq & 0xFFFFFFFF),
        ack=SeqNum(packet.ack & 0xFFFFFFFF),
        flags=TcpFlags(packet.flags & 0x1FF),
        window=packet.window,
        urgent=packet.urgent,
        options=packet.options,
    )
    segment = encode_tcp(header, packet.payload, src=packet.src, dst=packet.dst)
    if packet.version == 4:
        return encode_ipv4(
            IPv4Header(
                tos=packet.tos,
                dont_fragment=False,
                ttl=packet.ttl,
                protocol=6,
                src=packet.src,
                dst=packet.dst,
            ),
            segment,
        )
    return encode_ipv6(
        IPv6Header(
            traffic_class=packet.tos,
            flow_label=packet.flow_label,
            next_header=6,
            hop_limit=packet.ttl,
            src=packet.src,
            dst=packet.dst,
        ),
        segment,
    )


def options_length(options: tuple[TcpOption, ...]) -> int:
    """Octets the options take on the wire, padding included."""
    return len(encode_options(options))

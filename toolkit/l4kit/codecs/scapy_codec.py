"""The Scapy codec: a :class:`~l4kit.wire.segment.Segment` as ``IP()/TCP()/Raw`` layers, and back.

This is the reference codec, and what the responder builds by default and
sends with ``sendp``, what a notebook shows. :func:`to_scapy` leaves the
lengths and checksums to Scapy (fields left at ``None`` are computed when the
packet is built), so Scapy computes them, independently of l4kit's checksum;
the tests prove ``raw(to_scapy(seg)) == encode_packet(seg)`` for every segment.

The IP header defaults are those of :mod:`l4kit.wire.packet`: IPv4 with DF set,
TTL ``ttl``, identification ``ip_id``; IPv6 with hop limit ``ttl``.

Options map to Scapy's names one to one: ``MSS``, ``WScale``, ``SAckOK``,
``SAck``, ``Timestamp``, ``NOP``, ``EOL``; any other kind goes in as
``(kind, data)``. Scapy pads the list with zeros to a multiple of 4, as l4kit's
encoder does. An End-of-Option-List followed by non-zero padding octets cannot
be written as a Scapy option list; such a segment is built with an explicit
data offset and the option octets in front of the payload, then dissected again
so that Scapy shows it as it would show it captured.

:func:`from_scapy` reads the bytes of the packet's outermost IP layer with
l4kit's decoder rather than Scapy's field values: Scapy's dissector is lenient
on purpose (it keeps a bad data offset as 5, drops what follows an EOL, keeps a
wrong-length MSS as raw bytes), and the core must see exactly what the wire
carried, with the checksum classified.
"""

from __future__ import annotations

from typing import Any

from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from l4kit.checksum import address_bytes
from l4kit.errors import ParseError
from l4kit.wire.ip import EncodeError
from l4kit.wire.options import (
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
from l4kit.wire.packet import decode_packet
from l4kit.wire.segment import Segment
from l4kit.wire.tcp import encode_options

ScapyOption = tuple[str | int, Any]


def scapy_options(options: tuple[TcpOption, ...]) -> list[ScapyOption] | None:
    """l4kit options as a Scapy ``TCP(options=...)`` list, or ``None`` if Scapy's list cannot
    say it (an End-of-Option-List followed by non-zero padding)."""
    result: list[ScapyOption] = []
    for option in options:
        if isinstance(option, NoOperation):
            result.append(("NOP", None))
        elif isinstance(option, MaxSegmentSize):
            result.append(("MSS", option.value))
        elif isinstance(option, WindowScale):
            result.append(("WScale", option.shift))
        elif isinstance(option, SackPermitted):
            result.append(("SAckOK", b""))
        elif isinstance(option, Sack):
            result.append(("SAck", tuple(edge for block in option.blocks for edge in block)))
        elif isinstance(option, Timestamps):
            result.append(("Timestamp", (option.tsval, option.tsecr)))
        elif isinstance(option, EndOfOptions):
            if any(option.padding):
                return None
            # Scapy writes each ("EOL", None) as one zero octet: the padding is more of them.
            result.extend([("EOL", None)] * (1 + len(option.padding)))
        elif isinstance(option, UnknownOption):
            result.append((option.kind, option.data))
    return result


def to_scapy(seg: Segment, *, ttl: int = 64, ip_id: int = 0) -> Packet:
    """``IP(...)/TCP(...)[/Raw(...)]`` (or ``IPv6(...)/...``) for ``seg``; lengths and checksums
    are left to Scapy. Raises :class:`~l4kit.wire.ip.EncodeError` for a segment that cannot
    be encoded (the same checks as :func:`~l4kit.wire.packet.encode_packet`)."""
    option_bytes = encode_options(seg.options)  # validates; Scapy would write garbage silently
    if len(option_bytes) > 40:
        raise EncodeError(f"TCP options take {len(option_bytes)} octets, more than the 40 a header can hold")
    v6 = len(address_bytes(seg.src)) == 16
    if v6 != (len(address_bytes(seg.dst)) == 16):
        raise EncodeError(f"source {seg.src} and destination {seg.dst} are of different IP versions")
    ip: Packet = (
        IPv6(src=seg.src, dst=seg.dst, hlim=ttl)
        if v6
        else IP(src=seg.src, dst=seg.dst, ttl=ttl, id=ip_id, flags="DF")
    )
    fields: dict[str, Any] = {
        "sport": seg.sport,
        "dport": seg.dport,
        "seq": seg.seq.value,
        "ack": seg.ack.value,
        "flags": int(seg.flags),
        "window": seg.window,
        "urgptr": seg.urgent,
    }
    options = scapy_options(seg.options)
    if options is not None:
        pkt: Packet = ip / TCP(options=options, **fields)
        if seg.payload:
            pkt = pkt / Raw(load=seg.payload)
        return pkt
    # Options Scapy's list cannot express: write them as octets in front of the payload
    # with an explicit data offset, then dissect the built packet.
    built = (
        ip / TCP(dataofs=5 + len(option_bytes) // 4, options=[], **fields) / Raw(option_bytes + seg.payload)
    )
    return (IPv6 if v6 else IP)(raw(built))


def to_frame(seg: Segment, *, src_mac: str, dst_mac: str, ttl: int = 64, ip_id: int = 0) -> Packet:
    """``Ether(src=src_mac, dst=dst_mac)/to_scapy(seg)``, for ``sendp`` on a layer-2 socket.

    On Linux ``lo`` the destination must be ``00:00:00:00:00:00`` (docs/design.md, loopback trap 3).
    """
    return Ether(src=src_mac, dst=dst_mac) / to_scapy(seg, ttl=ttl, ip_id=ip_id)


def from_scapy(pkt: Packet) -> Segment:
    """The segment in ``pkt`` (``IP/TCP``, ``IPv6/TCP``, or with a link layer in front).

    The outermost IP or IPv6 layer is built to bytes (so a packet made in a
    notebook gets its lengths and checksums as Scapy computes them) and decoded
    by :func:`~l4kit.wire.packet.decode_packet`, checksum classified. Raises
    only :class:`~l4kit.errors.ParseError`: the reasons of
    :data:`~l4kit.wire.packet.PARSE_REASONS`, and ``not-ip`` (layer ``ip``) when the
    packet has no IP or IPv6 layer at all.
    """
    for layer in pkt.iterpayloads():
        if isinstance(layer, (IP, IPv6)):
            return decode_packet(raw(layer))
    raise ParseError("ip", "not-ip", f"no IP or IPv6 layer in {pkt.summary()}")

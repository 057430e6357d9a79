"""Link-layer decoding: from a captured frame to the IP packet it carries.

A capture file says once (pcap) or per interface (pcapng) which link layer its
frames start with: the *linktype* (tcpdump.org "LINK-LAYER HEADER TYPES"). Replay
only needs the IP packet inside, so each supported linktype has a small decoder
that finds the end of its header and checks that the frame carries IPv4 or IPv6:

===========  ======  =============================================================
linktype     value   header
===========  ======  =============================================================
NULL         0       4-byte address family in the *capturing host's* byte order
                     (BSD loopback; ``AF_INET`` = 2, ``AF_INET6`` = 10/24/28/30)
ETHERNET     1       14 bytes (dst, src, EtherType), then any number of 802.1Q /
                     802.1ad VLAN tags (4 bytes each, TPID 0x8100/0x88a8/0x9100)
RAW          101     none: the frame is the IP packet (also the DLT values 12 and
                     14 that some systems wrote into files before 101 existed)
LOOP         108     4-byte address family in network byte order (OpenBSD)
LINUX_SLL    113     16-byte Linux "cooked" header, protocol in bytes 14-15
IPV4 / IPV6  228/229 none: raw IPv4 / raw IPv6
LINUX_SLL2   276     20-byte Linux "cooked v2" header, protocol in bytes 0-1
===========  ======  =============================================================

Every failure is a :class:`~l4kit.errors.ParseError` with ``layer="link"`` and a
stable ``reason``: ``unsupported-linktype``, ``truncated``, ``not-ip`` (ARP,
LLDP, an unknown address family ...). Pure standard library, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from l4kit.errors import ParseError

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW_12: Final = 12  # DLT_RAW as most BSDs number it
LINKTYPE_RAW_14: Final = 14  # DLT_RAW as OpenBSD numbers it
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_NULL: "NULL (BSD loopback)",
    LINKTYPE_ETHERNET: "ETHERNET",
    LINKTYPE_RAW_12: "RAW (DLT 12)",
    LINKTYPE_RAW_14: "RAW (DLT 14)",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP (OpenBSD loopback)",
    LINKTYPE_LINUX_SLL: "LINUX_SLL (Linux cooked)",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2 (Linux cooked v2)",
}

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
_VLAN_TPIDS: Final = frozenset((0x8100, 0x88A8, 0x9100))  # 802.1Q, 802.1ad (QinQ), old QinQ

# BSD address families for IPv6 differ by system (FreeBSD 28, macOS 30, NetBSD/OpenBSD 24),
# Linux uses 10; AF_INET is 2 everywhere.
_AF_INET: Final = 2
_AF_INET6: Final = frozenset((10, 24, 28, 30))

_U16: Final = struct.Struct("!H")
_U32_BE: Final = struct.Struct(">I")
_U32_LE: Final = struct.Struct("<I")


def linktype_name(linktype: int) -> str:
    """A readable name for ``linktype`` (the number itself when unknown)."""
    return LINKTYPE_NAMES.get(linktype, f"linktype {linktype}")


def is_supported(linktype: int) -> bool:
    """Whether :func:`ip_from_frame` can decode frames of this linktype."""
    return linktype in _OFFSETS


def _truncated(what: str, frame: bytes, need: int) -> ParseError:
    return ParseError("link", "truncated", f"{what} needs {need} bytes, frame has {len(frame)}")


# Each decoder returns the offset of the IP packet in the frame (no copy is made: replay
# decodes the IP and TCP headers in place), or raises ParseError.


def _ip_by_version(frame: bytes, offset: int) -> int:
    """``offset``, checked by the IP version nibble there (raw-IP linktypes)."""
    if len(frame) <= offset:
        raise _truncated("IP version", frame, offset + 1)
    version = frame[offset] >> 4
    if version not in (4, 6):
        raise ParseError("link", "not-ip", f"IP version nibble is {version}")
    return offset


def _by_ethertype(ethertype: int, offset: int) -> int:
    if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return offset
    raise ParseError("link", "not-ip", f"EtherType 0x{ethertype:04x}")


def _ethernet(frame: bytes) -> int:
    """IEEE 802.3 / Ethernet II: skip 802.1Q/802.1ad tags until an EtherType remains."""
    if len(frame) < 14:
        raise _truncated("Ethernet header", frame, 14)
    offset = 12
    (ethertype,) = _U16.unpack_from(frame, offset)
    while ethertype in _VLAN_TPIDS:
        offset += 4  # TPID (2) + TCI (2); the next 2 bytes are the inner EtherType
        if len(frame) < offset + 2:
            raise _truncated("802.1Q tag", frame, offset + 2)
        (ethertype,) = _U16.unpack_from(frame, offset)
    return _by_ethertype(ethertype, offset + 2)


def _linux_sll(frame: bytes) -> int:
    """Linux cooked v1: packet type, ARPHRD, address length, 8-byte address, protocol."""
    if len(frame) < 16:
        raise _truncated("Linux cooked header", frame, 16)
    (protocol,) = _U16.unpack_from(frame, 14)
    return _by_ethertype(protocol, 16)


def _linux_sll2(frame: bytes) -> int:
    """Linux cooked v2: protocol first, then reserved, ifindex, ARPHRD, type, address."""
    if len(frame) < 20:
        raise _truncated("Linux cooked v2 header", frame, 20)
    (protocol,) = _U16.unpack_from(frame, 0)
    return _by_ethertype(protocol, 20)


def _family(family: int, frame: bytes) -> int:
    if family == _AF_INET or family in _AF_INET6:
        return _ip_by_version(frame, 4)
    raise ParseError("link", "not-ip", f"address family {family}")


def _null(frame: bytes) -> int:
    """BSD loopback: the family is in the byte order of the machine that wrote the
    file, which the file does not record. A family is a small number, so whichever
    byte order gives a value below 256 is the right one."""
    if len(frame) < 4:
        raise _truncated("loopback header", frame, 4)
    (family,) = _U32_LE.unpack_from(frame, 0)
    if family > 0xFF:
        (family,) = _U32_BE.unpack_from(frame, 0)
    return _family(family, frame)


def _loop(frame: bytes) -> int:
    """OpenBSD loopback: the family is always in network byte order."""
    if len(frame) < 4:
        raise _truncated("loopback header", frame, 4)
    (family,) = _U32_BE.unpack_from(frame, 0)
    return _family(family, frame)


def _raw(frame: bytes) -> int:
    return _ip_by_version(frame, 0)


def _raw_v4(frame: bytes) -> int:
    if not frame or frame[0] >> 4 != 4:
        raise ParseError("link", "not-ip", "LINKTYPE_IPV4 frame without an IPv4 header")
    return 0


def _raw_v6(frame: bytes) -> int:
    if not frame or frame[0] >> 4 != 6:
        raise ParseError("link", "not-ip", "LINKTYPE_IPV6 frame without an IPv6 header")
    return 0


_OFFSETS: Final[dict[int, Callable[[bytes], int]]] = {
    LINKTYPE_NULL: _null,
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_RAW_12: _raw,
    LINKTYPE_RAW_14: _raw,
    LINKTYPE_RAW: _raw,
    LINKTYPE_LOOP: _loop,
    LINKTYPE_LINUX_SLL: _linux_sll,
    LINKTYPE_IPV4: _raw_v4,
    LINKTYPE_IPV6: _raw_v6,
    LINKTYPE_LINUX_SLL2: _linux_sll2,
}


def _unsupported(linktype: int) -> ParseError:
    supported = ", ".join(f"{linktype_name(n)} ({n})" for n in sorted(_OFFSETS))
    return ParseError("link", "unsupported-linktype", f"{linktype_name(linktype)}; l4kit reads {supported}")


def ip_offset_for(linktype: int) -> Callable[[bytes], int]:
    """The function that finds the IP packet in a frame of ``linktype``: it returns
    the packet's offset in the frame (``frame[offset:]`` is the packet, with any
    trailing link-layer padding) or raises ParseError. Look it up once per file.

    Raises ``ParseError("link", "unsupported-linktype")`` for a linktype l4kit does
    not read.
    """
    try:
        return _OFFSETS[linktype]
    except KeyError:
        raise _unsupported(linktype) from None


def decoder_for(linktype: int) -> Callable[[bytes], bytes]:
    """The frame decoder for ``linktype`` (frame in, IP packet out, a copy); look it up
    once per file, call it per frame.

    Raises ``ParseError("link", "unsupported-linktype")`` for a linktype l4kit does
    not read.
    """
    offset_of = ip_offset_for(linktype)

    def decode(frame: bytes) -> bytes:
        offset = offset_of(frame)
        return frame[offset:] if offset else frame

    return decode


def ip_from_frame(linktype: int, frame: bytes) -> bytes:
    """The IP packet (IPv4 or IPv6, from its first header byte) carried by ``frame``.

    Trailing link-layer padding (Ethernet pads frames to 60 bytes) is left on: the
    IP decoder trims to the IP length field.
    """
    return decoder_for(linktype)(frame)

"""The wire layer: sequence numbers, flags, options, header codecs.

* ``seqnum``: :class:`SeqNum`, 32-bit sequence numbers compared modulo 2**32;
* ``flags``: :class:`TcpFlags` in Scapy's notation; ``options``: TCP options as values;
* ``ip``, ``tcp``: IPv4/IPv6 and TCP headers, decoded with integrity and sanity
  errors kept apart, and encoded;
* ``segment``: :class:`Segment`, what the core receives and sends, and the endpoints;
* ``packet``: the one-shot struct codec, an IP packet <-> a ``Segment``;
* ``link``: from a captured frame of any supported link type to its IP packet;
* ``value``: how the compiled value classes (``SeqNum``, ``Segment``, the core's
  events) stay immutable and fast as pure Python too.

Imports nothing of l4kit above ``errors`` and ``checksum``.
"""

from l4kit.wire.flags import TcpFlags
from l4kit.wire.ip import (
    EncodeError,
    IPv4Header,
    IPv6Header,
    address_text,
    decode_ip,
    decode_ipv4,
    decode_ipv6,
    encode_ipv4,
    encode_ipv6,
)
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
from l4kit.wire.packet import PARSE_REASONS, canonical_options, decode_packet, encode_packet
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum
from l4kit.wire.tcp import TcpHeader, decode_options, decode_tcp, encode_options, encode_tcp

__all__ = [
    "PARSE_REASONS",
    "EncodeError",
    "EndOfOptions",
    "Endpoint",
    "FourTuple",
    "IPv4Header",
    "IPv6Header",
    "MaxSegmentSize",
    "NoOperation",
    "Sack",
    "SackPermitted",
    "Segment",
    "SeqNum",
    "TcpFlags",
    "TcpHeader",
    "TcpOption",
    "Timestamps",
    "UnknownOption",
    "WindowScale",
    "address_text",
    "canonical_options",
    "decode_ip",
    "decode_ipv4",
    "decode_ipv6",
    "decode_options",
    "decode_packet",
    "decode_tcp",
    "encode_ipv4",
    "encode_ipv6",
    "encode_options",
    "encode_packet",
    "encode_tcp",
]

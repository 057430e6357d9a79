"""decode_packet / encode_packet: whole IP packets carrying TCP, as the drivers use them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
)
from scapy.packet import Packet, Raw
from wire_strategies import segments

from l4kit.checksum import ChecksumStatus
from l4kit.errors import IntegrityError, ParseError, SanityError
from l4kit.wire import (
    PARSE_REASONS,
    EncodeError,
    MaxSegmentSize,
    Segment,
    SeqNum,
    TcpFlags,
    Timestamps,
    canonical_options,
    decode_packet,
    encode_packet,
)
from l4kit.wire.packet import PACKET_PARSE_REASONS


def build(pkt: Packet) -> bytes:
    return raw(pkt)


TCP_SYN = TCP(sport=40000, dport=8888, seq=1000, flags="S", options=[("MSS", 1460)])

# {description, raw bytes, expected error class, expected layer, expected reason}
PACKET_ERROR_CASES: list[dict[str, Any]] = [
    {"description": "empty", "raw": b"", "error": IntegrityError, "reason": "truncated"},
    {"description": "version 7", "raw": b"\x70" * 40, "error": SanityError, "reason": "bad-version"},
    {
        "description": "IPv4 UDP",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)),
        "error": ParseError,
        "reason": "not-tcp",
    },
    {
        "description": "IPv4 ICMP echo",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP()),
        "error": ParseError,
        "reason": "not-tcp",
    },
    {
        "description": "IPv4 first fragment (MF, offset 0)",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP_SYN),
        "error": ParseError,
        "reason": "fragment",
    },
    {
        "description": "IPv4 later fragment (offset 185)",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2", frag=185, proto=6) / Raw(b"x" * 24)),
        "error": ParseError,
        "reason": "fragment",
    },
    {
        "description": "IPv4 header checksum wrong",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2", chksum=0x1234) / TCP_SYN),
        "error": IntegrityError,
        "reason": "bad-ip-checksum",
    },
    {
        "description": "IPv4 truncated by a snap length",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2") / TCP_SYN / Raw(b"x" * 100))[:68],
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv4 carrying 12 octets of TCP",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / Raw(b"\x00\x01" * 6)),
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv4 carrying SYN+FIN",
        "raw": build(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="SF")),
        "error": SanityError,
        "reason": "syn-fin",
    },
    {
        "description": "IPv6 UDP",
        "raw": build(IPv6(src="::1", dst="::1") / UDP(sport=1, dport=2)),
        "error": ParseError,
        "reason": "not-tcp",
    },
    {
        "description": "IPv6 no next header",
        "raw": build(IPv6(src="::1", dst="::1", nh=59)),
        "error": ParseError,
        "reason": "not-tcp",
    },
    {
        "description": "IPv6 fragment header",
        "raw": build(IPv6(src="::1", dst="::1") / IPv6ExtHdrFragment(m=1) / TCP_SYN),
        "error": ParseError,
        "reason": "fragment",
    },
    {
        "description": "IPv6 fragment after hop-by-hop",
        "raw": build(IPv6(src="::1", dst="::1") / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / TCP_SYN),
        "error": ParseError,
        "reason": "fragment",
    },
    {
        "description": "IPv6 hop-by-hop header cut by the payload length",
        "raw": build(IPv6(src="::1", dst="::1", plen=4) / IPv6ExtHdrHopByHop() / TCP_SYN),
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv6 destination options claiming 2048 octets",
        "raw": build(IPv6(src="::1", dst="::1") / IPv6ExtHdrDestOpt(len=255, autopad=0) / TCP_SYN),
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv6 carrying TCP with data offset 3",
        "raw": build(IPv6(src="::1", dst="::1") / TCP(sport=1, dport=2, dataofs=3)),
        "error": SanityError,
        "reason": "bad-data-offset",
    },
]


@pytest.mark.parametrize("case", PACKET_ERROR_CASES, ids=[c["description"] for c in PACKET_ERROR_CASES])
def test_packet_errors(case: dict[str, Any]) -> None:
    with pytest.raises(case["error"]) as caught:
        decode_packet(case["raw"])
    assert caught.value.reason == case["reason"]
    assert case["reason"] in PARSE_REASONS


def test_packet_reasons_are_exercised() -> None:
    assert set(PACKET_PARSE_REASONS) <= {c["reason"] for c in PACKET_ERROR_CASES}


# ---------------------------------------------------------------- accepted packets


def test_decode_a_syn_ack_built_by_scapy() -> None:
    wire = build(
        IP(src="127.0.0.1", dst="127.0.0.2")
        / TCP(sport=8888, dport=40000, seq=5, ack=1001, flags="SA", window=1000, options=[("MSS", 1400)])
    )
    seg = decode_packet(wire + b"\x00" * 10)  # trailing link padding is ignored
    assert seg == Segment(
        src="127.0.0.1",
        dst="127.0.0.2",
        sport=8888,
        dport=40000,
        seq=SeqNum(5),
        ack=SeqNum(1001),
        flags=TcpFlags.parse("SA"),
        window=1000,
        options=(MaxSegmentSize(1400),),
        checksum=ChecksumStatus.OK,
    )


def test_ipv4_options_are_skipped() -> None:
    from scapy.layers.inet import IPOption_RR

    wire = build(IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR(routers=["1.1.1.1"])]) / TCP_SYN)
    seg = decode_packet(wire)
    assert seg.checksum is ChecksumStatus.OK and seg.mss == 1460


@pytest.mark.parametrize(
    "extension",
    [
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=[], segleft=0),
    ],
    ids=["hop-by-hop", "destination options", "hbh+dest+routing"],
)
def test_ipv6_extension_headers_are_skipped(extension: Packet) -> None:
    wire = build(IPv6(src="2001:db8::1", dst="2001:db8::2") / extension / TCP_SYN / Raw(b"hello"))
    seg = decode_packet(wire)
    assert seg.payload == b"hello" and seg.flags == TcpFlags.SYN
    assert seg.checksum is ChecksumStatus.OK  # Scapy's checksum, verified by l4kit


@pytest.mark.parametrize(
    "routing",
    [
        IPv6ExtHdrRouting(addresses=["2001:db8::a", "2001:db8::b"], segleft=2),
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8::f", "2001:db8::e"], segleft=1),
    ],
    ids=["type 0", "segment routing"],
)
def test_ipv6_routing_header_final_destination_in_pseudo_header(routing: Packet) -> None:
    # Scapy computes the checksum with the final destination (RFC 8200 §8.1); so must the classifier.
    wire = build(IPv6(src="2001:db8::1", dst="2001:db8::2") / routing / TCP_SYN)
    assert decode_packet(wire).checksum is ChecksumStatus.OK


def test_offloaded_and_bad_checksums_are_classified_not_raised() -> None:
    linux_syn_options = [("MSS", 65495), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    good = build(
        IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=1, dport=2, flags="S", options=linux_syn_options)
    )
    assert len(good) == 60
    # A 40-octet segment from 127.0.0.1 to itself: the partial sum measured on lo is 0xfe30.
    partial = bytearray(good)
    partial[36:38] = b"\xfe\x30"
    assert decode_packet(bytes(partial)).checksum is ChecksumStatus.OFFLOADED
    partial[37] ^= 0xFF
    assert decode_packet(bytes(partial)).checksum is ChecksumStatus.BAD


@settings(max_examples=200)
@given(segments())
def test_decode_inverts_encode(seg: Segment) -> None:
    wire = encode_packet(seg)
    decoded = decode_packet(wire)
    assert decoded == seg.with_(options=canonical_options(seg.options), checksum=ChecksumStatus.OK)
    # and the canonical segment survives exactly, both ways
    assert decode_packet(encode_packet(decoded)) == decoded
    assert encode_packet(decoded) == wire


@given(segments())
def test_ttl_and_ip_id_are_written(seg: Segment) -> None:
    wire = encode_packet(seg, ttl=17, ip_id=0xBEEF)
    if seg.is_ipv6:
        assert wire[7] == 17
    else:
        assert wire[8] == 17 and wire[4:6] == b"\xbe\xef"
        assert wire[6] & 0x40  # DF


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sport": 70000}, "out of range"),
        ({"window": -1}, "out of range"),
        ({"dst": "::1"}, "different IP versions"),
        ({"options": (Timestamps(1, 2),) * 5}, "more than the 40"),
        ({"payload": b"x" * 65500}, "over 65535"),
    ],
)
def test_encode_errors(changes: dict[str, Any], message: str) -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    with pytest.raises(EncodeError, match=message):
        encode_packet(seg.with_(**changes))


def test_encode_error_for_a_bad_address_is_one_line() -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.300", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    from l4kit.errors import L4kitError

    with pytest.raises(L4kitError) as caught:
        encode_packet(seg)
    assert "10.0.0.300" in str(caught.value) and "\n" not in str(caught.value)

"""IPv4/IPv6 header decode/encode, against Scapy's builder and dissector."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from wire_strategies import ipv4_text, ipv6_text

from l4kit.errors import IntegrityError, SanityError
from l4kit.wire import EncodeError, IPv4Header, IPv6Header, address_text, decode_ip, encode_ipv4, encode_ipv6
from l4kit.wire.ip import IP_PARSE_REASONS


def ipv4_bytes(
    *, ihl: int = 5, total: int | None = None, flags_frag: int = 0x4000, proto: int = 6, extra: bytes = b""
) -> bytes:
    """An IPv4 header by hand (checksum left 0: decode_ip does not judge it)."""
    options = b"\x01" * (ihl * 4 - 20) if ihl > 5 else b""
    body = options + extra
    if total is None:
        total = 20 + len(body)
    return (
        struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, flags_frag, 64, proto, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
        )
        + body
    )


def ipv6_bytes(*, plen: int | None = None, payload: bytes = b"", version: int = 6) -> bytes:
    if plen is None:
        plen = len(payload)
    return (
        struct.pack("!IHBB16s16s", version << 28, plen, 6, 64, b"\0" * 15 + b"\1", b"\0" * 15 + b"\1")
        + payload
    )


PARSER_ERROR_CASES: list[dict[str, Any]] = [
    {"description": "empty", "raw": b"", "error": IntegrityError, "reason": "truncated"},
    {"description": "version 5", "raw": b"\x55" + b"\0" * 39, "error": SanityError, "reason": "bad-version"},
    {"description": "version 0", "raw": b"\x00" * 40, "error": SanityError, "reason": "bad-version"},
    {
        "description": "IPv4, 19 octets",
        "raw": ipv4_bytes()[:19],
        "error": IntegrityError,
        "reason": "truncated",
    },
    {"description": "IPv4, IHL 4", "raw": ipv4_bytes(ihl=4), "error": SanityError, "reason": "bad-ihl"},
    {
        "description": "IPv4, IHL 15 in 20 octets",
        "raw": ipv4_bytes(ihl=15)[:20],
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv4, total length past the buffer",
        "raw": ipv4_bytes(total=100, extra=b"x" * 10),
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv4, total length below the header length",
        "raw": ipv4_bytes(total=19),
        "error": SanityError,
        "reason": "bad-total-length",
    },
    {
        "description": "IPv6, 39 octets",
        "raw": ipv6_bytes()[:39],
        "error": IntegrityError,
        "reason": "truncated",
    },
    {
        "description": "IPv6, payload length past the buffer",
        "raw": ipv6_bytes(plen=8, payload=b"1234"),
        "error": IntegrityError,
        "reason": "truncated",
    },
]


@pytest.mark.parametrize("case", PARSER_ERROR_CASES, ids=[c["description"] for c in PARSER_ERROR_CASES])
def test_parser_errors(case: dict[str, Any]) -> None:
    with pytest.raises(case["error"]) as caught:
        decode_ip(case["raw"])
    assert caught.value.reason == case["reason"]
    assert case["reason"] in IP_PARSE_REASONS


def test_every_listed_reason_is_exercised() -> None:
    assert {c["reason"] for c in PARSER_ERROR_CASES} == set(IP_PARSE_REASONS)


def test_ipv4_link_padding_is_trimmed() -> None:
    packet = raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    header, payload = decode_ip(packet + b"\x00" * 6)  # Ethernet pads to 60 octets
    assert isinstance(header, IPv4Header)
    assert payload == packet[20:]


def test_ipv6_link_padding_is_trimmed() -> None:
    packet = raw(IPv6(src="::1", dst="::1") / TCP())
    header, payload = decode_ip(packet + b"\xff" * 4)
    assert isinstance(header, IPv6Header)
    assert payload == packet[40:]


@given(
    ipv4_text,
    ipv4_text,
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.sampled_from(["", "DF", "MF", "evil", "DF+MF"]),
    st.integers(0, 0x1FFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.booleans(),
    st.binary(max_size=40),
)
def test_ipv4_against_scapy(
    src: str,
    dst: str,
    tos: int,
    ident: int,
    flags: str,
    frag: int,
    ttl: int,
    proto: int,
    with_options: bool,
    payload: bytes,
) -> None:
    options = [IPOption_RR(routers=["10.1.1.1"])] if with_options else []
    pkt = IP(
        src=src, dst=dst, tos=tos, id=ident, flags=flags, frag=frag, ttl=ttl, proto=proto, options=options
    )
    wire = raw(pkt / Raw(payload))
    header, decoded_payload = decode_ip(wire)
    assert isinstance(header, IPv4Header)
    dissected = IP(wire)
    assert (header.src, header.dst, header.ttl, header.protocol, header.tos) == (src, dst, ttl, proto, tos)
    assert header.ident == ident and header.fragment_offset == frag
    assert header.checksum == dissected.chksum and header.total_length == dissected.len
    assert header.dont_fragment == ("DF" in flags)
    assert header.more_fragments == ("MF" in flags)
    assert header.reserved_flag == (flags == "evil")
    assert header.is_fragment == ("MF" in flags or frag != 0)
    assert header.header_length == dissected.ihl * 4
    assert decoded_payload == payload
    # Re-encoding with the decoded values gives the same bytes; with None, the same computed ones.
    assert encode_ipv4(header, decoded_payload) == wire
    recomputed = IPv4Header(
        tos=tos,
        ident=ident,
        reserved_flag=header.reserved_flag,
        dont_fragment=header.dont_fragment,
        more_fragments=header.more_fragments,
        fragment_offset=frag,
        ttl=ttl,
        protocol=proto,
        src=src,
        dst=dst,
        options=header.options,
    )
    assert encode_ipv4(recomputed, payload) == wire


@given(
    ipv6_text,
    ipv6_text,
    st.integers(0, 255),
    st.integers(0, 0xFFFFF),
    st.integers(0, 255),
    st.binary(max_size=40),
)
def test_ipv6_against_scapy(src: str, dst: str, tc: int, fl: int, hlim: int, payload: bytes) -> None:
    wire = raw(IPv6(src=src, dst=dst, tc=tc, fl=fl, hlim=hlim) / UDP(sport=1, dport=2) / Raw(payload))
    header, decoded_payload = decode_ip(wire)
    assert isinstance(header, IPv6Header)
    assert (header.src, header.dst) == (src, dst)
    assert (header.traffic_class, header.flow_label, header.hop_limit, header.next_header) == (
        tc,
        fl,
        hlim,
        17,
    )
    assert decoded_payload == wire[40:]
    assert encode_ipv6(header, decoded_payload) == wire
    fresh = IPv6Header(traffic_class=tc, flow_label=fl, next_header=17, hop_limit=hlim, src=src, dst=dst)
    assert encode_ipv6(fresh, decoded_payload) == wire


@given(st.binary(min_size=16, max_size=16))
def test_ipv6_text_is_inet_ntop(packed: bytes) -> None:
    assert address_text(packed) == socket.inet_ntop(socket.AF_INET6, packed)


@pytest.mark.parametrize(
    "text",
    ["::", "::1", "::ffff:1.2.3.4", "::1.2.3.4", "::0.0.0.2", "::ffff:0.0.0.0", "::0.1.0.0", "2001:db8::1"],
)
def test_ipv6_text_special_forms(text: str) -> None:
    packed = socket.inet_pton(socket.AF_INET6, text)
    assert address_text(packed) == socket.inet_ntop(socket.AF_INET6, packed)


@given(st.binary(min_size=4, max_size=4))
def test_ipv4_text_is_inet_ntop(packed: bytes) -> None:
    assert address_text(packed) == socket.inet_ntop(socket.AF_INET, packed)


@pytest.mark.parametrize(
    ("header", "payload", "message"),
    [
        (IPv4Header(src="10.0.0.1", dst="10.0.0.2", options=b"\x01"), b"", "multiple of 4"),
        (IPv4Header(src="10.0.0.1", dst="10.0.0.2", ttl=256), b"", "out of range"),
        (IPv4Header(src="10.0.0.1", dst="10.0.0.2", fragment_offset=0x2000), b"", "13 bits"),
        (IPv4Header(src="10.0.0.1", dst="::1"), b"", "non-IPv4"),
        (IPv4Header(src="10.0.0.1", dst="10.0.0.2"), b"x" * 65516, "out of range"),
        (IPv6Header(src="::1", dst="10.0.0.1"), b"", "non-IPv6"),
        (IPv6Header(src="::1", dst="::2", flow_label=1 << 20), b"", "out of range"),
        (IPv6Header(src="::1", dst="::2", hop_limit=-1), b"", "out of range"),
    ],
)
def test_encode_errors(header: IPv4Header | IPv6Header, payload: bytes, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        if isinstance(header, IPv4Header):
            encode_ipv4(header, payload)
        else:
            encode_ipv6(header, payload)

"""TCP header decode/encode: parser error tables (PyTCP style), options, Scapy cross-checks."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from wire_strategies import option_lists

from l4kit.errors import IntegrityError, ParseError, SanityError
from l4kit.wire import (
    EncodeError,
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    SeqNum,
    TcpFlags,
    TcpHeader,
    Timestamps,
    UnknownOption,
    WindowScale,
    decode_options,
    decode_tcp,
    encode_options,
    encode_tcp,
)
from l4kit.wire.tcp import TCP_PARSE_REASONS


def tcp_bytes(
    *,
    sport: int = 40000,
    dport: int = 8888,
    seq: int = 1,
    ack: int = 0,
    data_offset: int | None = None,
    flags: int = 0x02,
    window: int = 65535,
    checksum: int = 0,
    urgent: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    """A TCP segment laid out by hand with struct (independent of the encoder under test)."""
    if data_offset is None:
        data_offset = 5 + len(options) // 4
    word = (data_offset << 12) | flags
    return (
        struct.pack("!HHIIHHHH", sport, dport, seq, ack, word, window, checksum, urgent) + options + payload
    )


# ---------------------------------------------------------------- the error table

# {description, raw bytes, expected error class, expected reason}
PARSER_ERROR_CASES: list[dict[str, Any]] = [
    # integrity: the bytes cannot be read
    {"description": "empty buffer", "raw": b"", "error": IntegrityError, "reason": "truncated"},
    {"description": "19 octets", "raw": tcp_bytes()[:19], "error": IntegrityError, "reason": "truncated"},
    {
        "description": "data offset 6 in a 20-octet segment",
        "raw": tcp_bytes(data_offset=6),
        "error": IntegrityError,
        "reason": "data-offset-past-end",
    },
    {
        "description": "data offset 15 in a 40-octet segment",
        "raw": tcp_bytes(data_offset=15, options=b"\x01" * 20),
        "error": IntegrityError,
        "reason": "data-offset-past-end",
    },
    {
        "description": "MSS option whose length octet is the last octet of the header",
        "raw": tcp_bytes(options=b"\x01\x01\x01\x02"),
        "error": IntegrityError,
        "reason": "option-past-header",
    },
    {
        "description": "timestamps option running 4 octets past the header",
        "raw": tcp_bytes(options=b"\x01\x01\x08\x0a\x00\x00\x00\x01", payload=b"abcd"),
        "error": IntegrityError,
        "reason": "option-past-header",
    },
    {
        "description": "unknown option kind 30 of length 12 in an 8-octet option area",
        "raw": tcp_bytes(options=b"\x1e\x0c" + b"\x00" * 6),
        "error": IntegrityError,
        "reason": "option-past-header",
    },
    # sanity: readable, but illegal
    {
        "description": "data offset 4",
        "raw": tcp_bytes(data_offset=4),
        "error": SanityError,
        "reason": "bad-data-offset",
    },
    {
        "description": "data offset 0",
        "raw": tcp_bytes(data_offset=0),
        "error": SanityError,
        "reason": "bad-data-offset",
    },
    {
        "description": "option length 0 (would loop forever if trusted)",
        "raw": tcp_bytes(options=b"\x1e\x00\x00\x00"),
        "error": SanityError,
        "reason": "bad-option-length",
    },
    {
        "description": "option length 1",
        "raw": tcp_bytes(options=b"\x02\x01\x00\x00"),
        "error": SanityError,
        "reason": "bad-option-length",
    },
    {
        "description": "MSS option of length 3",
        "raw": tcp_bytes(options=b"\x02\x03\x05\x00"),
        "error": SanityError,
        "reason": "bad-mss-length",
    },
    {
        "description": "MSS option of length 6",
        "raw": tcp_bytes(options=b"\x02\x06\x05\xb4\x00\x00\x00\x00"),
        "error": SanityError,
        "reason": "bad-mss-length",
    },
    {
        "description": "window scale option of length 4",
        "raw": tcp_bytes(options=b"\x03\x04\x07\x00"),
        "error": SanityError,
        "reason": "bad-wscale-length",
    },
    {
        "description": "SACK-permitted option of length 3",
        "raw": tcp_bytes(options=b"\x04\x03\x00\x00"),
        "error": SanityError,
        "reason": "bad-sack-permitted-length",
    },
    {
        "description": "SACK option of length 2 (no block)",
        "raw": tcp_bytes(options=b"\x05\x02\x00\x00"),
        "error": SanityError,
        "reason": "bad-sack-length",
    },
    {
        "description": "SACK option of length 14 (one and a half blocks)",
        "raw": tcp_bytes(options=b"\x05\x0e" + b"\x00" * 12 + b"\x00\x00"),
        "error": SanityError,
        "reason": "bad-sack-length",
    },
    {
        "description": "timestamps option of length 8",
        "raw": tcp_bytes(options=b"\x08\x08" + b"\x00" * 6),
        "error": SanityError,
        "reason": "bad-timestamps-length",
    },
    {
        "description": "source port 0",
        "raw": tcp_bytes(sport=0),
        "error": SanityError,
        "reason": "port-zero",
    },
    {
        "description": "destination port 0",
        "raw": tcp_bytes(dport=0),
        "error": SanityError,
        "reason": "port-zero",
    },
    {
        "description": "SYN and FIN",
        "raw": tcp_bytes(flags=0x03),
        "error": SanityError,
        "reason": "syn-fin",
    },
    {
        "description": "SYN, FIN, RST, PSH, ACK, URG (christmas tree)",
        "raw": tcp_bytes(flags=0x3F),
        "error": SanityError,
        "reason": "syn-fin",
    },
]


@pytest.mark.parametrize("case", PARSER_ERROR_CASES, ids=[c["description"] for c in PARSER_ERROR_CASES])
def test_parser_errors(case: dict[str, Any]) -> None:
    with pytest.raises(case["error"]) as caught:
        decode_tcp(case["raw"])
    assert caught.value.reason == case["reason"]
    assert caught.value.layer == "tcp"
    assert case["reason"] in TCP_PARSE_REASONS
    assert "\n" not in str(caught.value)


def test_every_listed_reason_is_exercised() -> None:
    assert {c["reason"] for c in PARSER_ERROR_CASES} == set(TCP_PARSE_REASONS)


def test_integrity_is_checked_before_sanity() -> None:
    # Port 0 and SYN+FIN, but the data offset points past the end: integrity wins.
    with pytest.raises(IntegrityError):
        decode_tcp(tcp_bytes(sport=0, flags=0x03, data_offset=8))


# ---------------------------------------------------------------- good segments


def test_decode_a_linux_syn() -> None:
    options = bytes.fromhex("020405b40402080a0001e240000000000103030a")  # MSS SAckOK TS NOP WS
    header, payload = decode_tcp(tcp_bytes(seq=0xFFFFFFFF, options=options, window=64240, checksum=0xBEEF))
    assert payload == b""
    assert header.sport == 40000 and header.dport == 8888
    assert header.seq == SeqNum(0xFFFFFFFF)
    assert header.flags.letters == "S"
    assert header.data_offset == 10 and header.window == 64240 and header.checksum == 0xBEEF
    assert header.options == (
        MaxSegmentSize(1460),
        SackPermitted(),
        Timestamps(123456, 0),
        NoOperation(),
        WindowScale(10),
    )


def test_unknown_options_are_kept_and_eol_padding_is_kept() -> None:
    options = b"\x1e\x04\xab\xcd" + b"\x00\x00\xee\x00"  # kind 30 (MPTCP), then EOL and garbage padding
    header, payload = decode_tcp(tcp_bytes(options=options, payload=b"data"))
    assert header.options == (UnknownOption(30, b"\xab\xcd"), EndOfOptions(b"\x00\xee\x00"))
    assert payload == b"data"


def test_sack_blocks() -> None:
    options = b"\x01\x01\x05\x12" + struct.pack("!IIII", 1, 2, 0xFFFFFFF0, 5)
    header, _ = decode_tcp(tcp_bytes(options=options, flags=0x10))
    assert header.options == (NoOperation(), NoOperation(), Sack(((1, 2), (0xFFFFFFF0, 5))))


def test_reserved_bits_and_ns_flag_survive_a_round_trip() -> None:
    segment = tcp_bytes(flags=0x100 | 0x0E00 | 0x10)  # NS, the three reserved bits, ACK
    header, payload = decode_tcp(segment)
    assert header.reserved == 7
    assert header.flags == TcpFlags.NS | TcpFlags.ACK
    assert encode_tcp(header, payload, src="10.0.0.1", dst="10.0.0.2", checksum=header.checksum) == segment


@given(
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.integers(0, 0x1FF).filter(lambda f: f & 3 != 3),
    option_lists(),
    st.binary(max_size=100),
)
def test_encode_decode_encode_is_identity(
    sport: int, dport: int, flags: int, options: tuple[Any, ...], payload: bytes
) -> None:
    header = TcpHeader(sport=sport, dport=dport, seq=SeqNum(7), flags=TcpFlags(flags), options=options)
    wire = encode_tcp(header, payload, src="192.0.2.1", dst="192.0.2.2")
    decoded, decoded_payload = decode_tcp(wire)
    assert decoded_payload == payload
    assert decoded.options == decode_options(encode_options(options))
    assert encode_tcp(decoded, decoded_payload, src="192.0.2.1", dst="192.0.2.2") == wire
    assert encode_tcp(decoded, decoded_payload, src="x", dst="y", checksum=decoded.checksum) == wire


# ---------------------------------------------------------------- options against Scapy


def scapy_option_list(options: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    from l4kit.codecs.scapy_codec import scapy_options

    result = scapy_options(options)
    assert result is not None
    return result


@given(option_lists(zero_padding_only=True))
def test_options_encode_like_scapy(options: tuple[Any, ...]) -> None:
    pkt = TCP(sport=1, dport=2, options=scapy_option_list(options))
    assert raw(pkt)[20:] == encode_options(options)


@given(option_lists(zero_padding_only=True))
def test_options_decode_like_scapy_dissects(options: tuple[Any, ...]) -> None:
    wire = raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, options=scapy_option_list(options)))
    header, _ = decode_tcp(wire[20:])
    scapy_view = TCP(wire[20:]).options
    # Scapy stops at the first EOL and shows it once; l4kit keeps what follows as its padding.
    ours = header.options
    eol_at = next((i for i, o in enumerate(ours) if isinstance(o, EndOfOptions)), None)
    if eol_at is not None:
        ours = (*ours[:eol_at], EndOfOptions())
    expected = scapy_option_list(ours)
    assert len(scapy_view) == len(expected)
    for (scapy_name, scapy_value), (name, value) in zip(scapy_view, expected, strict=True):
        if isinstance(name, int):
            # A kind l4kit does not name, Scapy may (19 is "MD5"); test_options_encode_like_scapy
            # compares those as octets.
            continue
        assert (scapy_name, scapy_value) == (name, value)


@pytest.mark.parametrize(
    "options",
    [
        (),
        (MaxSegmentSize(1460),),
        (MaxSegmentSize(1460), WindowScale(7)),  # 7 octets: one zero of padding
        (NoOperation(),),  # 1 octet: three zeros
        (EndOfOptions(),),
        (Timestamps(1, 2), EndOfOptions(b"\x00\x00")),
    ],
)
def test_padding_matches_scapy(options: tuple[Any, ...]) -> None:
    assert encode_options(options) == raw(TCP(options=scapy_option_list(options)))[20:]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ((UnknownOption(0, b"x"),), "kind 0"),
        ((UnknownOption(1, b""),), "kind 1"),
        ((UnknownOption(300, b""),), "kind 300"),
        ((UnknownOption(30, b"x" * 39),), "too long"),
        ((Sack(((1, 2),) * 5),), "at most 4"),
        ((Timestamps(2**32, 0),), "out of range"),
        ((Sack(((-1, 2),)),), "out of range"),
    ],
)
def test_unencodable_options(options: tuple[Any, ...], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_options(options)


def test_too_many_options_for_a_header() -> None:
    header = TcpHeader(sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN, options=(Timestamps(1, 2),) * 5)
    with pytest.raises(EncodeError, match="data offset"):
        encode_tcp(header, b"", src="10.0.0.1", dst="10.0.0.2")


def test_out_of_range_port_is_an_encode_error_not_a_struct_error() -> None:
    header = TcpHeader(sport=70000, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    with pytest.raises(EncodeError):
        encode_tcp(header, b"", src="10.0.0.1", dst="10.0.0.2")
    assert issubclass(EncodeError, ValueError)


# ---------------------------------------------------------------- checksum through encode_tcp


@given(st.binary(max_size=300), option_lists(zero_padding_only=True))
def test_encode_tcp_checksum_equals_scapy(payload: bytes, options: tuple[Any, ...]) -> None:
    header = TcpHeader(
        sport=1234,
        dport=80,
        seq=SeqNum(99),
        ack=SeqNum(5),
        flags=TcpFlags.parse("PA"),
        window=8192,
        options=options,
    )
    ours = encode_tcp(header, payload, src="198.51.100.1", dst="203.0.113.9")
    scapy = raw(
        IP(src="198.51.100.1", dst="203.0.113.9")
        / TCP(sport=1234, dport=80, seq=99, ack=5, flags="PA", options=scapy_option_list(options))
        / Raw(payload)
    )[20:]
    assert ours == scapy


def test_parse_error_is_the_only_exception_family() -> None:
    assert issubclass(IntegrityError, ParseError) and issubclass(SanityError, ParseError)

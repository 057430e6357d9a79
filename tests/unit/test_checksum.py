"""The pure-Python Internet checksum, cross-checked against Scapy and the RFC examples."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum
from wire_strategies import address_pairs, sized_binary

from l4kit.checksum import (
    ChecksumStatus,
    classify_tcp_checksum,
    internet_checksum,
    ipv4_header_checksum_ok,
    ones_complement_sum,
    parse_address,
    pseudo_header_sum,
    tcp_checksum,
    update_checksum16,
    update_checksum32,
)
from l4kit.errors import ConfigError

# ---------------------------------------------------------------- independent references


def reference_pseudo_header(src: str, dst: str, length: int) -> bytes:
    """The pseudo-header octets, laid out by hand from RFC 9293 §3.1 / RFC 8200 §8.1."""
    if ":" in src:
        return (
            socket.inet_pton(socket.AF_INET6, src)
            + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!I3xB", length, 6)
        )
    return (
        socket.inet_pton(socket.AF_INET, src)
        + socket.inet_pton(socket.AF_INET, dst)
        + struct.pack("!xBH", 6, length)
    )


def slow_ones_complement_sum(data: bytes) -> int:
    """RFC 1071 §4.1 as written: add 16-bit words, fold the carries back in."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def scapy_tcp(src: str, dst: str, payload: bytes, **tcp_fields: object) -> bytes:
    """Build an IP/TCP packet with Scapy and return the TCP segment bytes, Scapy's checksum in them."""
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    pkt = ip / TCP(**tcp_fields) / Raw(payload)
    built = (IPv6 if ":" in src else IP)(raw(pkt))
    return raw(built[TCP])


# ---------------------------------------------------------------- internet_checksum


def test_rfc1071_worked_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2; the checksum is its complement.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    assert internet_checksum(data) == scapy_checksum(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xFFFF),  # nothing summed: +0, complement 0xFFFF
        (b"\x00" * 7, 0xFFFF),  # all-zero words: still +0
        (b"\xff\xff", 0x0000),  # the sum is -0 (0xFFFF), complement 0x0000
        (b"\xff\xff" * 1000, 0x0000),
        (b"\x80\x00\x80\x00", 0xFFFE),  # 0x8000 + 0x8000 = 0x1_0000 -> end-around carry -> 0x0001
        (b"\x01", 0xFEFF),  # odd length: 0x01 is the high byte of 0x0100
    ],
)
def test_edge_values_by_hand(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected
    assert scapy_checksum(data) == expected


@settings(max_examples=300)
@given(sized_binary(65536))
@example(b"")
@example(b"\x00" * 65536)
@example(b"\xff" * 65536)
@example(b"\xff" * 65535)
@example(b"\x00" * 65535)
def test_equals_scapy(data: bytes) -> None:
    assert internet_checksum(data) == scapy_checksum(data)


@given(st.integers(0, 4096), st.sampled_from([0x00, 0xFF]))
def test_uniform_buffers_equal_scapy(length: int, octet: int) -> None:
    data = bytes([octet]) * length
    assert internet_checksum(data) == scapy_checksum(data)


@given(sized_binary(3000))
def test_sum_matches_rfc1071_loop(data: bytes) -> None:
    # The folded sum is +0 only for all-zero data, and is never +0 otherwise.
    assert ones_complement_sum(data) == slow_ones_complement_sum(data)


@given(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b + b"\0" * (len(b) % 2)))
def test_init_continues_a_sum(tail: bytes, head: bytes) -> None:
    # Summing an even-length head first and passing it as init is summing head + tail.
    assert internet_checksum(tail, ones_complement_sum(head)) == scapy_checksum(head + tail)


@given(st.binary(min_size=2, max_size=200).map(lambda b: b + b"\0" * (len(b) % 2)))
def test_data_with_its_checksum_verifies_to_zero(data: bytes) -> None:
    with_checksum = data + internet_checksum(data).to_bytes(2, "big")
    assert internet_checksum(with_checksum) == 0


# ---------------------------------------------------------------- pseudo-header and TCP


@given(address_pairs, st.integers(0, 0xFFFF))
def test_pseudo_header_sum_matches_the_octets(addresses: tuple[str, str], length: int) -> None:
    src, dst = addresses
    octets = reference_pseudo_header(src, dst, length)
    assert pseudo_header_sum(src, dst, length) == slow_ones_complement_sum(octets)
    packed = (socket.inet_pton(socket.AF_INET6 if ":" in src else socket.AF_INET, a) for a in (src, dst))
    assert pseudo_header_sum(*packed, length) == slow_ones_complement_sum(octets)


def test_pseudo_header_sum_of_the_measured_loopback_segment() -> None:
    # Measured on lo: 127.0.0.1 -> 127.0.0.1, a 40-byte segment, field 0xfe30.
    assert pseudo_header_sum("127.0.0.1", "127.0.0.1", 40) == 0xFE30


@settings(max_examples=200)
@given(
    address_pairs,
    sized_binary(4000),
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.integers(0, 2**32 - 1),
)
def test_tcp_checksum_equals_what_scapy_writes(
    addresses: tuple[str, str], payload: bytes, sport: int, dport: int, seq: int
) -> None:
    src, dst = addresses
    segment = scapy_tcp(src, dst, payload, sport=sport, dport=dport, seq=seq, flags="PA")
    scapy_value = int.from_bytes(segment[16:18], "big")
    zeroed = segment[:16] + b"\x00\x00" + segment[18:]
    assert tcp_checksum(src, dst, zeroed) == scapy_value
    assert classify_tcp_checksum(src, dst, segment) is ChecksumStatus.OK


@pytest.mark.parametrize(("src", "dst"), [("192.0.2.1", "198.51.100.7"), ("2001:db8::1", "2001:db8::2")])
def test_tcp_checksum_of_a_64k_payload(src: str, dst: str) -> None:
    payload = bytes(range(256)) * 255  # 65280 octets: the largest a 16-bit IPv4 total length allows, roughly
    segment = scapy_tcp(src, dst, payload, sport=1, dport=2)
    zeroed = segment[:16] + b"\x00\x00" + segment[18:]
    assert tcp_checksum(src, dst, zeroed) == int.from_bytes(segment[16:18], "big")


@pytest.mark.parametrize(
    ("src", "dst"),
    [("not-an-address", "127.0.0.1"), ("127.0.0.1", "::1"), ("127.0.0.1", "300.0.0.1")],
)
def test_bad_addresses_raise_the_packages_error(src: str, dst: str) -> None:
    with pytest.raises(ConfigError):
        pseudo_header_sum(src, dst, 20)


def test_packed_address_of_wrong_length() -> None:
    with pytest.raises(ConfigError, match="4 or 16"):
        pseudo_header_sum(b"\x01\x02\x03", b"\x01\x02\x03\x04", 20)


# ---------------------------------------------------------------- RFC 1624 incremental update


def test_rfc1624_example_where_eqn2_fails() -> None:
    # RFC 1624 §4: other header words sum to 0xCD7A; m = 0x5555 -> m' = 0x3285.
    # HC = ~(0xCD7A + 0x5555) = ~0x22D0 = 0xDD2F; recomputed HC' = ~(0xCD7A + 0x3285) = ~0xFFFF = 0x0000.
    assert update_checksum16(0xDD2F, 0x5555, 0x3285) == 0x0000


@given(
    st.binary(min_size=2, max_size=120).map(lambda b: b + b"\0" * (len(b) % 2)),
    st.integers(0, 59),
    st.integers(0, 0xFFFF),
)
def test_update16_equals_recomputation(data: bytes, word_index: int, new: int) -> None:
    offset = 2 * (word_index % (len(data) // 2))
    old = int.from_bytes(data[offset : offset + 2], "big")
    changed = data[:offset] + new.to_bytes(2, "big") + data[offset + 2 :]
    if not any(changed):
        return  # all-zero data has checksum 0xFFFF, which an incremental update cannot reach (RFC 1624 §3)
    assert update_checksum16(scapy_checksum(data), old, new) == scapy_checksum(changed)


@settings(max_examples=200)
@given(address_pairs, st.binary(max_size=100), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_update32_patches_a_sequence_number(
    addresses: tuple[str, str], payload: bytes, old_seq: int, new_seq: int
) -> None:
    src, dst = addresses
    before = scapy_tcp(src, dst, payload, sport=5, dport=6, seq=old_seq, flags="A")
    after = scapy_tcp(src, dst, payload, sport=5, dport=6, seq=new_seq, flags="A")
    patched = update_checksum32(int.from_bytes(before[16:18], "big"), old_seq, new_seq)
    assert patched == int.from_bytes(after[16:18], "big")


@settings(max_examples=100)
@given(address_pairs, st.binary(max_size=100), st.integers(1, 0xFFFF), st.integers(1, 0xFFFF))
def test_update16_patches_a_port(
    addresses: tuple[str, str], payload: bytes, old_port: int, new_port: int
) -> None:
    src, dst = addresses
    before = scapy_tcp(src, dst, payload, sport=old_port, dport=80, flags="S")
    after = scapy_tcp(src, dst, payload, sport=new_port, dport=80, flags="S")
    patched = update_checksum16(int.from_bytes(before[16:18], "big"), old_port, new_port)
    assert patched == int.from_bytes(after[16:18], "big")


# ---------------------------------------------------------------- classification


def loopback_offloaded_segment() -> bytes:
    """A 40-byte SYN as the kernel hands it to a capture on lo: field 0xfe30 (measured on lo)."""
    header = struct.pack("!HHIIHHHH", 45678, 8888, 0x11223344, 0, 0xA002, 65495, 0xFE30, 0)
    options = bytes.fromhex("0204ffd70402080a000000010000000001030307")  # MSS, SAckOK, TS, NOP, WS
    return header + options


def test_measured_loopback_partial_checksum_is_offloaded() -> None:
    segment = loopback_offloaded_segment()
    assert len(segment) == 40
    assert classify_tcp_checksum("127.0.0.1", "127.0.0.1", segment) is ChecksumStatus.OFFLOADED


def test_offloaded_segment_with_one_flipped_bit_is_bad() -> None:
    segment = bytearray(loopback_offloaded_segment())
    segment[17] ^= 0x01
    assert classify_tcp_checksum("127.0.0.1", "127.0.0.1", bytes(segment)) is ChecksumStatus.BAD


@settings(max_examples=200)
@given(address_pairs, st.binary(max_size=300), st.integers(1, 0xFFFF))
def test_classification_ok_offloaded_bad(addresses: tuple[str, str], payload: bytes, sport: int) -> None:
    src, dst = addresses
    segment = scapy_tcp(src, dst, payload, sport=sport, dport=443, flags="PA")
    assert classify_tcp_checksum(src, dst, segment) is ChecksumStatus.OK
    # What an offloading sender leaves: the pseudo-header sum, from Scapy's checksum of its octets.
    partial = ~scapy_checksum(reference_pseudo_header(src, dst, len(segment))) & 0xFFFF
    offloaded = segment[:16] + partial.to_bytes(2, "big") + segment[18:]
    if classify_tcp_checksum(src, dst, offloaded) is not ChecksumStatus.OK:  # unless it is also correct
        assert classify_tcp_checksum(src, dst, offloaded) is ChecksumStatus.OFFLOADED
    # Any other wrong value is bad.
    correct = int.from_bytes(segment[16:18], "big")
    wrong = next(v for v in (correct ^ 0x0101, correct ^ 0x0202) if v % 0xFFFF != partial % 0xFFFF)
    corrupted = segment[:16] + wrong.to_bytes(2, "big") + segment[18:]
    assert classify_tcp_checksum(src, dst, corrupted) is ChecksumStatus.BAD


def test_classify_a_segment_too_short_for_the_field() -> None:
    assert classify_tcp_checksum("127.0.0.1", "127.0.0.1", b"\x00" * 10) is ChecksumStatus.BAD


@given(address_pairs.filter(lambda a: ":" not in a[0]), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_ipv4_header_checksum(addresses: tuple[str, str], ttl: int, ident: int) -> None:
    src, dst = addresses
    header = raw(IP(src=src, dst=dst, ttl=ttl, id=ident))[:20]
    assert ipv4_header_checksum_ok(header)
    broken = header[:8] + bytes([header[8] ^ 0x40]) + header[9:]
    assert not ipv4_header_checksum_ok(broken)


@settings(max_examples=500)
@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.lists(st.text("0123456789+ _a\u0661", max_size=4), min_size=3, max_size=5).map(".".join),
    )
)
@example("01.2.3.4")
@example("255.255.255.255")
@example("256.1.1.1")
@example("1.2.3.4 ")
def test_address_text_reads_as_ipaddress_reads_it(text: str) -> None:
    """IPv4 text has a fast path of its own: it must accept exactly what ``ipaddress``
    accepts, with the same value, and leave the rest to it."""
    import ipaddress

    try:
        expected = ipaddress.ip_address(text).packed
    except ValueError:
        with pytest.raises(ConfigError, match="not an IPv4 or IPv6 address"):
            parse_address.__wrapped__(text)
        return
    assert parse_address.__wrapped__(text) == (expected, int.from_bytes(expected, "big") % 0xFFFF)

"""The replay fast decoder agrees with the wire layer's reference decoder.

For generated segments (IPv4 and IPv6, every flag combination, options, payloads
of odd and even length) encoded to bytes, then left intact, corrupted, or given
the partial checksum an offloading sender leaves, the fast path must return
exactly what :func:`l4kit.wire.packet.decode_packet` says. Where that decoder
refuses a segment that tshark still numbers (malformed options, SYN+FIN, port 0, a
bogus header length), replay decodes it with a note; everything else it refuses
with the same reason.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, IPOption_NOP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import GRE
from scapy.packet import Raw
from wire_strategies import segments

from l4kit.checksum import classify_tcp_checksum, pseudo_header_sum
from l4kit.errors import ParseError
from l4kit.replay import fastpath
from l4kit.wire.packet import decode_packet, encode_packet

STATUS = {"OK": "ok", "BAD": "bad", "OFFLOADED": "offloaded"}
NOTED = {"syn-fin": fastpath.NOTE_SYN_FIN, "port-zero": fastpath.NOTE_PORT_ZERO}
BOGUS = {"bad-data-offset", "data-offset-past-end"}
OPTION_REASONS = {
    "option-past-header",
    "bad-option-length",
    "bad-mss-length",
    "bad-wscale-length",
    "bad-sack-permitted-length",
    "bad-sack-length",
    "bad-timestamps-length",
}


def reference(ip: bytes) -> tuple:
    seg = decode_packet(ip)
    return (
        seg.src,
        seg.dst,
        seg.sport,
        seg.dport,
        seg.seq.value,
        seg.ack.value,
        int(seg.flags),
        seg.window,
        len(seg.payload),
        seg.payload[: fastpath.HEAD],
        STATUS[seg.checksum.name],
        True,
        seg.window_scale if seg.flags & 0x02 else None,
    )


def _tcp_offset(ip: bytes) -> int:
    return 20 if ip[0] >> 4 == 4 else 40


def damage(ip: bytes, how: str, flip_at: int) -> bytes:
    """``ok``: as encoded; ``bad``: one byte of the segment changed; ``offloaded``:
    the checksum field replaced by the folded pseudo-header sum."""
    if how == "ok":
        return ip
    off = _tcp_offset(ip)
    data = bytearray(ip)
    if how == "bad":
        data[off + flip_at % (len(ip) - off)] ^= 0x5A
        return bytes(data)
    seg_len = len(ip) - off
    src, dst = (ip[12:16], ip[16:20]) if off == 20 else (ip[8:24], ip[24:40])
    struct.pack_into("!H", data, off + 16, pseudo_header_sum(src, dst, seg_len))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments(), st.sampled_from(["ok", "bad", "offloaded"]), st.integers(0, 10_000))
def test_fast_path_equals_decode_packet(segment, how, flip_at):
    ip = damage(encode_packet(segment), how, flip_at)
    try:
        expected = reference(ip)
    except ParseError as exc:
        if exc.reason in OPTION_REASONS | BOGUS | set(NOTED):
            # Segments tshark numbers: decoded, with a note where they are illegal.
            got = fastpath.decode(ip)
            off = _tcp_offset(ip)
            sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", ip, off)
            assert got[2:8] == (sport, dport, seq, ack, offset_flags & 0x1FF, window)
            src, dst = (ip[12:16], ip[16:20]) if off == 20 else (ip[8:24], ip[24:40])
            assert got[10] == classify_tcp_checksum(src, dst, ip[off:]).value
            oddity = got[13]
            if exc.reason in BOGUS:
                assert oddity is not None and oddity[1] == fastpath.OBSERVE_NONE
                assert oddity[0][0].startswith("bogus TCP header length")
            elif exc.reason in NOTED:
                assert oddity is not None and NOTED[exc.reason] in oddity[0]
            else:
                assert oddity is None  # options are not validated (a receiver ignores bad ones)
            return
        with pytest.raises(ParseError) as info:
            fastpath.decode(ip)
        assert info.value.reason == exc.reason
        return
    got = fastpath.decode(ip)
    assert got[13] is None
    if not expected[6] & 0x02:  # options of non-SYN segments are not decoded by the fast path
        assert got[:12] == expected[:12] and got[12] is None
    else:
        assert got[:13] == expected
    if how == "ok":
        assert got[10] == "ok"
    if how == "offloaded":
        assert got[10] in ("offloaded", "ok")  # a correct checksum can equal the pseudo sum by chance


def test_the_wire_layer_handles_what_the_fast_path_leaves():
    # IPv4 options, IPv6 extension headers: decoded by decode_packet, same answer.
    with_options = bytes(IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_NOP()] * 4) / TCP(flags="S"))
    with_ext = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt() / TCP(flags="SA"))
    for ip in (with_options, with_ext):
        assert fastpath.decode(ip) == (*reference(ip), None)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP(), "fragment"),
        (IP(src="10.0.0.1", dst="10.0.0.2", frag=10) / Raw(b"x" * 20), "fragment"),
        (IPv6(src="::1", dst="::1") / IPv6ExtHdrFragment() / TCP(), "fragment"),
        (IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / Raw(b"\x00" * 10), "truncated"),
        (IP(src="10.0.0.1", dst="10.0.0.2", proto=17) / Raw(b"\x00" * 8), "not-tcp"),
        (IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / Raw(b"\x00" * 15), "truncated"),
        (IP(src="10.0.0.1", dst="10.0.0.2", ihl=4) / TCP(), "bad-ihl"),
    ],
)
def test_refusals_carry_the_wire_layers_reasons(packet, reason):
    with pytest.raises(ParseError) as info:
        fastpath.decode(bytes(packet))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("packet", "note", "observe"),
    [
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dataofs=4), "bogus TCP header length (16", 2),
        (
            IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dataofs=15) / Raw(b"x" * 8),
            "bogus TCP header length (60",
            2,
        ),
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="SF"), fastpath.NOTE_SYN_FIN, 1),
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=0), fastpath.NOTE_PORT_ZERO, 0),
        (
            IPv6(src="::1", dst="::2") / IPv6ExtHdrDestOpt() / TCP(dport=0, flags="SF"),
            fastpath.NOTE_SYN_FIN,
            1,
        ),
    ],
)
def test_odd_segments_are_decoded_with_a_note(packet, note, observe):
    """What the wire layer refuses as illegal, tshark still numbers: replay decodes it,
    says what is odd, and how far its observers take it."""
    decoded = fastpath.decode(bytes(packet))
    notes, how = decoded[13]
    assert any(n.startswith(note) for n in notes)
    assert how == observe
    assert decoded[2:4] == (packet[TCP].sport, packet[TCP].dport)


def test_a_segment_cut_by_the_snap_length_keeps_its_length_and_is_unverified():
    packet = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="PA") / Raw(b"a" * 1000))
    cut = packet[:60]  # tcpdump -s 60: the header and 20 octets of data
    decoded = fastpath.decode_at(cut, 0, len(packet) - len(cut))
    assert decoded[7] == 1000
    assert decoded[10] == fastpath.UNVERIFIED
    assert decoded[11] == b"a" * 20
    # Without the missing octets it is a packet shorter than its header says (tshark:
    # the length it has).
    assert fastpath.decode_at(cut, 0)[7] == 20


@pytest.mark.parametrize(
    "outer",
    [
        lambda inner: IP(src="192.0.2.1", dst="192.0.2.2") / inner,  # IPv4 in IPv4
        lambda inner: IPv6(src="2001:db8::a", dst="2001:db8::b") / inner,  # IPv4 in IPv6
        lambda inner: IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / inner,
        lambda inner: (
            IP(src="192.0.2.1", dst="192.0.2.2") / GRE(key_present=1, key=7, seqnum_present=1) / inner
        ),
    ],
)
def test_tunnelled_segments_are_the_inner_ones(outer):
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="PA") / Raw(b"hello")
    assert fastpath.decode(bytes(outer(inner))) == fastpath.decode(bytes(inner))


def test_an_icmp_error_quoting_a_segment_is_decoded_with_a_note():
    quoted = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S", seq=7)
    icmp = IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3) / Raw(bytes(quoted)[:36])
    decoded = fastpath.decode(bytes(icmp))
    assert decoded[:9] == ("10.0.0.1", "10.0.0.2", 40000, 80, 7, 0, 0x02, 8192, 0)
    assert decoded[10] == fastpath.UNVERIFIED
    notes, how = decoded[13]
    assert notes[0].startswith("ICMP destination unreachable from 10.0.0.2")
    assert how == fastpath.OBSERVE_NONE
    with pytest.raises(ParseError) as info:  # 8 octets of TCP: tshark does not number it
        fastpath.decode(bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3) / Raw(bytes(quoted)[:28])))
    assert info.value.reason == "truncated"


def test_a_bad_ipv4_header_checksum_is_decoded_and_flagged():
    good = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="PA") / Raw(b"hi"))
    bad = bytearray(good)
    bad[10] ^= 0xFF  # the IPv4 header checksum
    with pytest.raises(ParseError):
        decode_packet(bytes(bad))  # the reference refuses it, as a receiving stack drops it
    decoded = fastpath.decode(bytes(bad))
    assert decoded[11] is False
    assert decoded[8:11] == (2, b"hi", "ok")
    assert decoded[13] is None  # the TCP checksum itself is fine
    assert fastpath.decode(good)[11] is True


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_window_scale_of_any_options_area_is_the_wire_layers(area, usual_start):
    """The quick walk over a SYN's options gives the wire layer's answer for any
    options area: well-formed, truncated, with unknown or malformed options."""
    if usual_start:
        area = bytes([2, 4, 5, 0xB4, 1, 3, 3, 7]) + area  # MSS, NOP, window scale, then anything
    area = area[:40]
    area += b"\x00" * (-len(area) % 4)
    header = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, (5 + len(area) // 4) << 4, 0x02, 502, 0, 0)
    frame = b"\xee" * 7 + header + area
    assert fastpath.window_scale_at(frame, 7) == fastpath._window_scale(area)


@pytest.mark.parametrize(
    "area",
    [
        bytes([2, 4, 5, 0xB4, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 7]),  # Linux's SYN options
        bytes([2, 4, 5, 0xB4, 1, 3, 3, 14, 3, 3, 2, 0]),  # two window scales: the first counts
        bytes([3, 3, 9, 0, 0, 0, 0, 0]),  # the End of Option List, then padding
        bytes([2, 4, 5, 0xB4, 3, 2, 7, 1]),  # a window scale option of length 2: malformed
        bytes([1, 1, 1, 3]),  # cut short
    ],
)
def test_window_scale_of_usual_and_odd_syns(area):
    header = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, (5 + len(area) // 4) << 4, 0x02, 502, 0, 0)
    assert fastpath.window_scale_at(header + area, 0) == fastpath._window_scale(area)


@pytest.mark.parametrize("length", [0, 1, 511, 512, 513, 514, 515, 1023, 1448, 1449, 9001])
def test_checksum_verdict_of_long_segments_is_the_checksum_modules(length):
    """Long segments are summed in pieces (fastpath.checksum_status): the verdict must be
    l4kit.checksum's for every length, odd or even, with the right checksum, a wrong one
    or the pseudo-header sum an offloading sender leaves."""
    import random

    from l4kit.checksum import tcp_checksum

    rnd = random.Random(length)
    src, dst = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 7])
    segment = bytearray(
        struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, 0x50, 0x18, 502, 0, 0) + rnd.randbytes(length)
    )
    key = src + dst + bytes(segment[:4])
    right = tcp_checksum(src, dst, bytes(segment))
    offloaded = pseudo_header_sum(src, dst, len(segment))
    for checksum in (right, right ^ 0x0100, offloaded, rnd.getrandbits(16)):
        struct.pack_into("!H", segment, 16, checksum)
        frame = b"\x99" * 34 + bytes(segment) + b"\x77" * 3  # in a frame, with trailing padding
        expected = classify_tcp_checksum(src, dst, bytes(segment)).value
        assert fastpath.checksum_status(frame, key, 34, 34 + len(segment)) == expected
        if checksum == right:
            assert expected == "ok"


@given(st.binary(max_size=80), st.integers(0, 7), st.integers(0, 7))
def test_word_sum_is_the_big_integers_sum_of_words(data, before, after):
    """The compiled build's one's complement sum (fastpath.word_sum) is the interpreted
    one's: the octets as one big-endian integer, an odd length padded with a zero octet,
    ≡ mod 0xFFFF; anywhere in a frame, whatever surrounds it."""
    frame = b"\xff" * before + data + b"\xff" * after
    total = fastpath.word_sum(frame, before, before + len(data))
    padded = int.from_bytes(data, "big") << (8 if len(data) % 2 else 0)
    assert total % 0xFFFF == padded % 0xFFFF
    assert total == sum(int.from_bytes((data + b"\0")[i : i + 2], "big") for i in range(0, len(data), 2))

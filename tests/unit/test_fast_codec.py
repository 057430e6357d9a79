"""The fast codec (templates, incremental checksums) against Scapy and the reference decoder.

Encoding: every frame equals Scapy's ``Ether()/IP()/TCP()/Raw`` built from scratch
(``to_frame`` leaves lengths and checksums to Scapy), for runs of segments that
share templates, in any order. Decoding: every result, and every refusal, equals
``decode_packet``'s, including for packets whose IPv4 header is valid but whose TCP
header is not (the bytes the fast path reads).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, TCP, IPOption_NOP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from wire_strategies import address_pairs, option_lists, segments, sized_binary, u16, u32

from l4kit.checksum import ChecksumStatus, pseudo_header_sum
from l4kit.codecs.fast import FastCodec
from l4kit.codecs.scapy_codec import to_frame, to_scapy
from l4kit.errors import L4kitError, ParseError
from l4kit.wire import EncodeError, MaxSegmentSize, Segment, SeqNum, TcpFlags, decode_packet, encode_packet
from l4kit.wire.options import NoOperation, Timestamps

MACS = st.binary(min_size=6, max_size=6)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@st.composite
def connection_runs(draw: st.DrawFn) -> list[Segment]:
    """Segments on a few 4-tuples, interleaved: what a responder sends, and then some."""
    tuples = draw(
        st.lists(st.tuples(address_pairs, u16.filter(bool), u16.filter(bool)), min_size=1, max_size=3)
    )
    run = []
    for _ in range(draw(st.integers(1, 8))):
        (src, dst), sport, dport = draw(st.sampled_from(tuples))
        run.append(
            Segment(
                src=src,
                dst=dst,
                sport=sport,
                dport=dport,
                seq=SeqNum(draw(u32)),
                ack=SeqNum(draw(u32)),
                flags=TcpFlags(draw(st.integers(0, 0x1FF))),
                window=draw(u16),
                urgent=draw(u16),
                options=draw(st.one_of(st.just(()), option_lists())),
                payload=draw(sized_binary(1500)),
            )
        )
    return run


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(connection_runs(), MACS, MACS, st.integers(0, 255), st.integers(0, 0xFFFF))
def test_frames_equal_scapys_for_runs_sharing_templates(
    run: list[Segment], src_mac: bytes, dst_mac: bytes, ttl: int, ip_id: int
) -> None:
    codec = FastCodec(ttl=ttl, ip_id=ip_id)
    for seg in run:
        frame = codec.encode_frame(seg, src_mac, dst_mac)
        scapy_frame = to_frame(
            seg, src_mac=mac_text(src_mac), dst_mac=mac_text(dst_mac), ttl=ttl, ip_id=ip_id
        )
        assert frame == raw(scapy_frame)
        assert codec.encode(seg) == raw(to_scapy(seg, ttl=ttl, ip_id=ip_id)) == frame[14:]


@settings(max_examples=200)
@given(segments(decodable=False))
def test_single_segments_equal_the_reference_encoder(seg: Segment) -> None:
    """All flag combinations, port 0, every option kind (EOL with odd padding too)."""
    assert FastCodec().encode(seg) == encode_packet(seg)


def test_a_syn_ack_built_by_hand_in_scapy() -> None:
    """Independent of l4kit's Scapy codec: the layers a Scapy user would write."""
    seg = Segment(
        src="127.0.0.1",
        dst="127.0.0.2",
        sport=8888,
        dport=40000,
        seq=SeqNum(0xFFFFFFFF),
        ack=SeqNum(1),
        flags=TcpFlags.SYN | TcpFlags.ACK,
        window=64240,
        options=(MaxSegmentSize(1460),),
    )
    by_hand = (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="127.0.0.1", dst="127.0.0.2", id=0, flags="DF", ttl=64)
        / TCP(
            sport=8888, dport=40000, seq=0xFFFFFFFF, ack=1, flags="SA", window=64240, options=[("MSS", 1460)]
        )
    )
    frame = FastCodec().encode_frame(seg, bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))
    assert frame == raw(by_hand)
    data = seg.with_(flags=TcpFlags.PSH | TcpFlags.ACK, options=(), payload=b"hello world\n")
    assert FastCodec().encode(data) == raw(
        IP(src="127.0.0.1", dst="127.0.0.2", id=0, flags="DF")
        / TCP(sport=8888, dport=40000, seq=0xFFFFFFFF, ack=1, flags="PA", window=64240)
        / Raw(b"hello world\n")
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"sport": 70000},
        {"dport": -1},
        {"window": 0x10000},
        {"urgent": 0x10000},
        {"dst": "::1"},
        {"src": "not an address"},
        {"payload": b"x" * 65500},
        {"options": (MaxSegmentSize(1),) * 11},
        {"options": (MaxSegmentSize(1),) * 11, "src": "bad"},
        {"options": (NoOperation(), NoOperation(), Timestamps(1 << 32, 0))},
        {"options": (NoOperation(), NoOperation(), Timestamps(0, -1))},
    ],
)
def test_fields_that_do_not_fit_raise_what_the_reference_raises(changes: dict[str, object]) -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.ACK)
    bad = seg.with_(**changes)
    with pytest.raises(L4kitError) as expected:
        encode_packet(bad)
    codec = FastCodec()
    codec.encode(seg)  # a template for the good 4-tuple exists already
    for encode in (codec.encode, lambda s: codec.encode_frame(s, b"\0" * 6, b"\0" * 6)):
        with pytest.raises(type(expected.value)) as raised:
            encode(bad)
        assert str(raised.value) == str(expected.value)
    assert isinstance(expected.value, EncodeError) or "address" in str(expected.value)


def test_templates_are_bounded_and_forgotten() -> None:
    codec = FastCodec(max_templates=2)
    segs = [
        Segment(src="10.0.0.1", dst="10.0.0.2", sport=80, dport=port, seq=SeqNum(port), flags=TcpFlags.ACK)
        for port in (1, 2, 3)
    ]
    for seg in segs:
        assert codec.encode(seg) == encode_packet(seg)
    assert codec.templates == 2
    codec.forget("10.0.0.1", "10.0.0.2", 80, 3)
    assert codec.templates == 1
    for seg in reversed(segs):  # evicted and forgotten 4-tuples are rebuilt correctly
        assert codec.encode(seg) == encode_packet(seg)


# ---------------------------------------------------------------- decoding


def _outcome(decode: object, packet: bytes) -> object:
    try:
        return decode(packet)  # type: ignore[operator]
    except ParseError as exc:
        return ("error", type(exc), exc.layer, exc.reason, str(exc))


def _fix_ipv4_checksum(packet: bytearray) -> None:
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        header_len = max((packet[0] & 0x0F) * 4, 20)
        if header_len <= len(packet):
            packet[10:12] = b"\0\0"
            r = int.from_bytes(packet[:header_len], "big") % 0xFFFF
            packet[10:12] = (0xFFFF - r if r else 0).to_bytes(2, "big")


@st.composite
def ipv4_packets_broken_past_the_ip_checksum(draw: st.DrawFn) -> bytes:
    """A valid IPv4/TCP packet, then changed octets anywhere (TCP header, options, lengths,
    flags, protocol) or a cut, with the IPv4 header checksum made right again so the
    decoders get past it."""
    seg = draw(segments(max_payload=64).filter(lambda s: not s.is_ipv6))
    packet = bytearray(encode_packet(seg))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["set", "set", "flip", "cut", "total", "tcp"]))
        position = draw(st.integers(0, len(packet) - 1))
        if action == "set":
            packet[position] = draw(
                st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0A, 0x45, 0xF0, 0xFF])
            )
        elif action == "flip":
            packet[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del packet[max(position, 1) :]
        elif action == "total" and len(packet) >= 4:
            struct.pack_into("!H", packet, 2, draw(st.integers(0, len(packet) + 8)))
        elif action == "tcp" and len(packet) >= 40:
            # A port, the data offset / flags word, or the checksum field: the words a
            # sanity check or the checksum classification reads.
            offset = draw(st.sampled_from([20, 22, 32, 36]))
            struct.pack_into(
                "!H", packet, offset, draw(st.sampled_from([0, 0x5003, 0x4002, 0xF012, 0x6010, 1]))
            )
    if draw(st.booleans()):
        _fix_ipv4_checksum(packet)
    return bytes(packet)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        ipv4_packets_broken_past_the_ip_checksum(), segments().map(encode_packet), st.binary(max_size=80)
    )
)
def test_decode_equals_the_reference_decoder(packet: bytes) -> None:
    codec = FastCodec()
    assert _outcome(codec.decode, packet) == _outcome(decode_packet, packet)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(ipv4_packets_broken_past_the_ip_checksum(), segments().map(encode_packet)),
    st.sampled_from(list(ChecksumStatus)),
)
def test_a_checksum_status_from_the_kernel_replaces_the_classification(
    packet: bytes, status: ChecksumStatus
) -> None:
    expected = _outcome(decode_packet, packet)
    if isinstance(expected, Segment):
        expected = expected.with_(checksum=status)
    assert _outcome(lambda p: FastCodec().decode(p, status), packet) == expected


TIMESTAMPED = st.tuples(u32, u32).map(lambda t: (NoOperation(), NoOperation(), Timestamps(*t)))


@settings(max_examples=150, deadline=None)
@given(segments(), st.one_of(TIMESTAMPED, TIMESTAMPED.map(lambda o: (*o[:2], MaxSegmentSize(1460), *o[2:]))))
def test_nop_nop_timestamps_encode_and_decode_as_the_reference(seg: Segment, options: tuple) -> None:
    """NOP, NOP, Timestamps (every segment once timestamps are agreed) take their own
    path in both directions; other layouts with the same options do not."""
    seg = seg.with_(options=options)
    codec = FastCodec()
    try:
        expected = encode_packet(seg)
    except L4kitError as exc:
        with pytest.raises(type(exc)):
            codec.encode(seg)
        return
    assert codec.encode(seg) == expected
    assert _outcome(codec.decode, expected) == _outcome(decode_packet, expected)


def test_decode_reads_what_scapy_built() -> None:
    pkt = (
        IP(src="192.0.2.1", dst="192.0.2.2", ttl=3)
        / TCP(
            sport=4321,
            dport=80,
            seq=7,
            ack=9,
            flags="PA",
            window=1000,
            options=[("MSS", 1400), ("NOP", None)],
        )
        / Raw(b"GET /")
    )
    seg = FastCodec().decode(raw(pkt))
    assert (seg.src, seg.dst, seg.sport, seg.dport) == ("192.0.2.1", "192.0.2.2", 4321, 80)
    assert (seg.seq.value, seg.ack.value, seg.flags.letters, seg.window) == (7, 9, "PA", 1000)
    assert (seg.mss, seg.payload, seg.checksum) == (1400, b"GET /", ChecksumStatus.OK)
    corrupt = bytearray(raw(pkt))
    corrupt[-1] ^= 0xFF
    assert FastCodec().decode(bytes(corrupt)).checksum is ChecksumStatus.BAD
    assert FastCodec().decode(bytearray(raw(pkt))) == seg


def _packet(**changes: object) -> bytearray:
    seg = Segment(
        src="127.0.0.1",
        dst="127.0.0.1",
        sport=40000,
        dport=8888,
        seq=SeqNum(1),
        ack=SeqNum(2),
        flags=TcpFlags.PSH | TcpFlags.ACK,
        payload=b"toppage\n",
    )
    return bytearray(encode_packet(seg.with_(**changes)))


def _set(packet: bytearray, offset: int, value: int, *, fix_ip: bool = True) -> bytes:
    struct.pack_into("!H", packet, offset, value)
    if fix_ip:
        _fix_ipv4_checksum(packet)
    return bytes(packet)


def _offloaded(packet: bytearray, field: int) -> bytes:
    """The checksum field as Linux leaves it on lo (CHECKSUM_PARTIAL): the folded pseudo-header sum."""
    return _set(packet, 36, field, fix_ip=False)


def _minus_zero_destination() -> str:
    """A destination whose pseudo-header sum with 10.0.0.1, protocol 6 and length 20 is 0 mod
    0xFFFF, so an offloading sender may write it as 0x0000 or 0xFFFF (both -0)."""
    word = (0xFFFF - (0x0A00 + 0x0001 + 6 + 20)) % 0xFFFF
    return f"{word >> 8}.{word & 0xFF}.0.0"


MINUS_ZERO = {"src": "10.0.0.1", "dst": _minus_zero_destination(), "payload": b""}

# name: (packet, what decode_packet says: a ParseError reason or a checksum status)
CASES: dict[str, tuple[bytes, str]] = {
    "valid": (bytes(_packet()), "ok"),
    "syn-fin": (_set(_packet(), 32, 0x5003), "syn-fin"),
    "port zero, source": (_set(_packet(), 20, 0), "port-zero"),
    "port zero, destination": (_set(_packet(), 22, 0), "port-zero"),
    "data offset 4": (_set(_packet(), 32, 0x4018), "bad-data-offset"),
    "data offset past the end": (_set(_packet(), 32, 0xF018), "data-offset-past-end"),
    "option past the header": (
        _set(_packet(options=(MaxSegmentSize(1460),)), 40, 0x0208),
        "option-past-header",
    ),
    "bad MSS length": (_set(_packet(options=(MaxSegmentSize(1460),)), 40, 0x0203), "bad-mss-length"),
    "offloaded": (_offloaded(_packet(), pseudo_header_sum("127.0.0.1", "127.0.0.1", 28)), "offloaded"),
    "offloaded, -0 as 0x0000": (_offloaded(_packet(**MINUS_ZERO), 0x0000), "offloaded"),
    "offloaded, -0 as 0xFFFF": (_offloaded(_packet(**MINUS_ZERO), 0xFFFF), "offloaded"),
    "bad checksum": (_set(_packet(), 36, 0x1234, fix_ip=False), "bad"),
    "bad IP checksum": (_set(_packet(), 10, 0x1234, fix_ip=False), "bad-ip-checksum"),
    "fragment": (_set(_packet(), 6, 0x2000), "fragment"),
    "not TCP": (_set(_packet(), 8, 0x4011), "not-tcp"),
    "total length below 40": (_set(_packet(), 2, 39), "truncated"),
    "total length past the end": (_set(_packet(), 2, 200), "truncated"),
    "ethernet padding after the packet": (bytes(_packet()) + b"\0" * 6, "ok"),
    "IPv6": (bytes(_packet(src="::1", dst="::1")), "ok"),
    "IPv4 options": (raw(IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_NOP()] * 4) / TCP()), "ok"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decode_cases_equal_the_reference_decoder(name: str) -> None:
    packet, says = CASES[name]
    expected = _outcome(decode_packet, packet)
    # The case is what its name says (so it tests the branch it is meant to).
    assert (expected.checksum.value if isinstance(expected, Segment) else expected[3]) == says
    assert _outcome(FastCodec().decode, packet) == expected
    for status in ChecksumStatus:
        want = expected.with_(checksum=status) if isinstance(expected, Segment) else expected
        assert _outcome(lambda p, s=status: FastCodec().decode(p, s), packet) == want

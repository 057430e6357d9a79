"""The Scapy codec is the reference: the struct codec must produce the same bytes for every segment."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from wire_strategies import segments

from l4kit.checksum import ChecksumStatus
from l4kit.codecs.scapy_codec import from_scapy, to_frame, to_scapy
from l4kit.errors import ParseError
from l4kit.wire import (
    EncodeError,
    EndOfOptions,
    MaxSegmentSize,
    Segment,
    SeqNum,
    TcpFlags,
    UnknownOption,
    canonical_options,
    decode_packet,
    encode_packet,
)

ttls = st.integers(0, 255)
ip_ids = st.integers(0, 0xFFFF)


@settings(max_examples=400)
@given(segments(decodable=False), ttls, ip_ids)
def test_struct_codec_is_bit_identical_to_scapy(seg: Segment, ttl: int, ip_id: int) -> None:
    """All flag combinations (SYN+FIN and port 0 included), every option kind, payloads up to 1500."""
    assert raw(to_scapy(seg, ttl=ttl, ip_id=ip_id)) == encode_packet(seg, ttl=ttl, ip_id=ip_id)


@settings(max_examples=200)
@given(segments(), ttls, ip_ids)
def test_scapy_round_trip(seg: Segment, ttl: int, ip_id: int) -> None:
    expected = seg.with_(options=canonical_options(seg.options), checksum=ChecksumStatus.OK)
    assert from_scapy(to_scapy(seg, ttl=ttl, ip_id=ip_id)) == expected
    assert decode_packet(encode_packet(seg, ttl=ttl, ip_id=ip_id)) == expected


@settings(max_examples=100)
@given(segments())
def test_scapy_dissects_the_struct_codecs_bytes_to_the_same_fields(seg: Segment) -> None:
    wire = encode_packet(seg)
    pkt = IPv6(wire) if seg.is_ipv6 else IP(wire)
    tcp = pkt[TCP]
    assert (pkt.src, pkt.dst) == (seg.src, seg.dst)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (seg.sport, seg.dport, seg.seq.value, seg.ack.value)
    assert (int(tcp.flags), tcp.window, tcp.urgptr) == (int(seg.flags), seg.window, seg.urgent)
    assert bytes(tcp.payload) == seg.payload
    if not seg.is_ipv6:
        assert pkt.flags == "DF" and pkt.ttl == 64 and pkt.id == 0


def test_to_scapy_shows_the_layers_a_reader_expects() -> None:
    seg = Segment(
        src="127.0.0.1",
        dst="127.0.0.1",
        sport=8888,
        dport=40000,
        seq=SeqNum(7),
        ack=SeqNum(1001),
        flags=TcpFlags.parse("PA"),
        payload=b"hello world\n",
    )
    pkt = to_scapy(seg, ip_id=42)
    assert pkt.haslayer(IP) and pkt.haslayer(TCP) and pkt[Raw].load == b"hello world\n"
    assert pkt[TCP].flags == "PA" and pkt[IP].id == 42 and pkt[IP].flags == "DF"
    assert pkt[TCP].chksum is None  # left to Scapy, computed at build time


def test_to_scapy_ipv6() -> None:
    seg = Segment(src="::1", dst="::1", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    pkt = to_scapy(seg, ttl=9)
    assert pkt.haslayer(IPv6) and pkt[IPv6].hlim == 9


def test_nonzero_padding_after_eol_still_matches() -> None:
    # Scapy's option list cannot say this; the codec falls back to octets and re-dissects.
    seg = Segment(
        src="10.0.0.1",
        dst="10.0.0.2",
        sport=1,
        dport=2,
        seq=SeqNum(0),
        flags=TcpFlags.SYN,
        options=(MaxSegmentSize(1460), EndOfOptions(b"\x00\xaa\xbb")),
        payload=b"abc",
    )
    pkt = to_scapy(seg)
    assert raw(pkt) == encode_packet(seg)
    assert pkt[TCP].options[0] == ("MSS", 1460)
    assert from_scapy(pkt) == seg


def test_to_frame_for_loopback() -> None:
    seg = Segment(src="127.0.0.1", dst="127.0.0.1", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    frame = to_frame(seg, src_mac="00:00:00:00:00:00", dst_mac="00:00:00:00:00:00")
    assert frame[Ether].dst == "00:00:00:00:00:00" and frame[Ether].type == 0x0800
    assert raw(frame)[14:] == encode_packet(seg)
    assert from_scapy(Ether(raw(frame))) == seg


def test_from_scapy_of_a_captured_frame_with_padding() -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.ACK)
    frame = Ether(raw(Ether() / IP(encode_packet(seg))) + b"\x00" * 6)  # padded to 60 octets
    assert from_scapy(frame) == seg


def test_from_scapy_keeps_a_wrong_checksum_visible() -> None:
    built = IP(raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S")))
    built[TCP].chksum ^= 0x0F0F
    assert from_scapy(built).checksum is ChecksumStatus.BAD


@pytest.mark.parametrize(
    ("pkt", "reason"),
    [
        (Ether() / ARP(), "not-ip"),
        (IP(src="10.0.0.1", dst="10.0.0.2") / UDP(), "not-tcp"),
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="SF"), "syn-fin"),
    ],
)
def test_from_scapy_errors(pkt: object, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        from_scapy(pkt)  # type: ignore[arg-type]
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "changes",
    [
        {"dst": "::1"},
        {"options": (UnknownOption(1, b"x"),)},
        {"options": (UnknownOption(99, b"x" * 30), UnknownOption(99, b"x" * 10))},
    ],
)
def test_to_scapy_refuses_what_encode_packet_refuses(changes: dict[str, object]) -> None:
    seg = Segment(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, seq=SeqNum(0), flags=TcpFlags.SYN)
    bad = seg.with_(**changes)
    with pytest.raises(EncodeError):
        to_scapy(bad)
    with pytest.raises(EncodeError):
        encode_packet(bad)


def test_the_core_s_segments_with_rfc_7323_and_sack_options_are_bit_identical() -> None:
    """What the core sends to a Linux client (SYN-ACK with SACK-permitted, timestamps and
    window scale; data with timestamps; ACKs with SACK blocks): both codecs, same bytes."""
    from l4kit.codecs.fast import FastCodec
    from l4kit.core import Stack, StackConfig
    from l4kit.wire import (
        MaxSegmentSize,
        NoOperation,
        SackPermitted,
        SeqNum,
        TcpFlags,
        Timestamps,
        WindowScale,
    )

    stack = Stack(StackConfig(secret=b"x", window=1 << 20), isn=lambda key, now: SeqNum(5000))
    listening = stack.listen("127.0.0.1", 8888)
    linux = (MaxSegmentSize(65495), SackPermitted(), Timestamps(1000, 0), NoOperation(), WindowScale(7))

    def client(flags: str, seq: int, ack: int = 0, payload: bytes = b"", options: tuple = ()) -> Segment:  # type: ignore[type-arg]
        return Segment(
            src="127.0.0.1", dst="127.0.0.1", sport=40000, dport=8888, seq=SeqNum(seq), ack=SeqNum(ack),
            flags=TcpFlags.parse(flags), options=options, payload=payload,
        )  # fmt: skip

    stamps = (NoOperation(), NoOperation(), Timestamps(1010, 0))
    sent = list(stack.receive(client("S", 1000, options=linux), 0.0).segments)
    sent += stack.receive(client("A", 1001, 5001, options=stamps), 0.01).segments
    sent += stack.receive(client("PA", 1011, 5001, b"later", options=stamps), 0.02).segments  # out of order
    conn = listening.accept()
    conn.send(b"x" * 3000)
    sent += stack.flush(0.03).segments
    kinds = {type(o).__name__ for s in sent for o in s.options}
    assert {"SackPermitted", "Timestamps", "WindowScale", "Sack"} <= kinds
    fast = FastCodec(ttl=64, ip_id=1)
    for seg in sent:
        assert encode_packet(seg, ttl=64, ip_id=1) == raw(to_scapy(seg, ttl=64, ip_id=1))
        assert fast.encode(seg) == raw(to_scapy(seg, ttl=64, ip_id=1))

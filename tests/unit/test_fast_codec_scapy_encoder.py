"""``respond --codec scapy``'s encoder: Scapy layers kept and reused, lengths and checksums
given, must write exactly what Scapy writes for ``Ether()/IP()/TCP()/Raw`` built from scratch
(``to_frame``, which leaves every length and checksum to Scapy)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from test_fast_codec import MACS, connection_runs, mac_text
from wire_strategies import segments

from l4kit.codecs.fast import FastCodec
from l4kit.codecs.scapy_codec import to_frame
from l4kit.live.sender import ScapyFrameEncoder, fast_frame_encoder, frame_encoder, scapy_frame_encoder
from l4kit.wire import EndOfOptions, MaxSegmentSize, Segment, SeqNum, TcpFlags


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(connection_runs(), MACS, MACS)
def test_scapy_encoder_equals_scapy_from_scratch(run: list[Segment], src_mac: bytes, dst_mac: bytes) -> None:
    """Runs of segments on shared 4-tuples: the kept layers carry nothing from one frame to the next."""
    encode = ScapyFrameEncoder()
    fast = FastCodec()
    for seg in run:
        expected = raw(to_frame(seg, src_mac=mac_text(src_mac), dst_mac=mac_text(dst_mac)))
        assert encode(seg, src_mac, dst_mac) == expected
        assert fast.encode_frame(seg, src_mac, dst_mac) == expected


@settings(max_examples=100, deadline=None)
@given(segments(decodable=False), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_any_single_segment_ttl_and_id(seg: Segment, ttl: int, ip_id: int) -> None:
    mac = bytes.fromhex("020000000001")
    expected = raw(to_frame(seg, src_mac=mac_text(mac), dst_mac=mac_text(mac), ttl=ttl, ip_id=ip_id))
    assert ScapyFrameEncoder(ttl=ttl, ip_id=ip_id)(seg, mac, mac) == expected


def test_one_layer_pair_per_ip_version_serves_every_connection() -> None:
    encode = ScapyFrameEncoder()
    mac = b"\0" * 6
    base = Segment(src="127.0.0.1", dst="127.0.0.1", sport=8888, dport=1, seq=SeqNum(1), flags=TcpFlags.ACK)
    syn_ack = base.with_(flags=TcpFlags.SYN | TcpFlags.ACK, options=(MaxSegmentSize(65495),))
    data = base.with_(flags=TcpFlags.PSH | TcpFlags.ACK, payload=b"hello world\n")
    odd = base.with_(options=(EndOfOptions(b"\x01\x02"),))  # Scapy's list cannot say this: from scratch
    six = data.with_(src="::1", dst="::2", dport=4)
    other = data.with_(src="127.0.0.9", dport=3)
    for seg in (syn_ack, data, base, odd, data.with_(dport=2), six, other, syn_ack):
        assert encode(seg, mac, mac) == raw(to_frame(seg, src_mac=mac_text(mac), dst_mac=mac_text(mac)))
    assert sorted(encode._pairs) == [False, True]  # one set of layers per IP version


@settings(max_examples=100, deadline=None)
@given(segments(decodable=False), MACS, MACS)
def test_stateless_encoding_is_the_same_frame_and_keeps_no_template(
    seg: Segment, src_mac: bytes, dst_mac: bytes
) -> None:
    """A SYN cookie's SYN-ACK comes from the struct codec's template: the same octets as
    the layers, and nothing kept for a 4-tuple that will not come back."""
    encode = ScapyFrameEncoder()
    expected = encode(seg, src_mac, dst_mac)
    kept = encode._checksums.templates
    assert encode.stateless(seg, src_mac, dst_mac) == expected
    assert encode._checksums.templates == kept
    fast = FastCodec()
    assert fast.encode_frame_once(seg, src_mac, dst_mac) == expected
    assert fast.templates == 0


def test_codec_names() -> None:
    assert isinstance(scapy_frame_encoder(), ScapyFrameEncoder)
    assert isinstance(frame_encoder("scapy"), ScapyFrameEncoder)
    seg = Segment(src="::1", dst="::1", sport=8888, dport=1, seq=SeqNum(1), flags=TcpFlags.ACK)
    assert fast_frame_encoder()(seg, b"\0" * 6, b"\0" * 6) == frame_encoder("fast")(seg, b"\0" * 6, b"\0" * 6)

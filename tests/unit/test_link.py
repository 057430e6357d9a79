"""Link-layer decoding, checked against frames that Scapy builds for each linktype."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback, LoopbackOpenBSD
from scapy.packet import Raw

from l4kit.errors import ParseError
from l4kit.wire import link

V4 = IP(src="192.0.2.1", dst="198.51.100.2") / TCP(sport=40000, dport=8888, flags="S", seq=1000)
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=8888, flags="SA", seq=7, ack=1001)


@pytest.mark.parametrize("ip_packet", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(
    ("linktype", "frame_of"),
    [
        (link.LINKTYPE_ETHERNET, lambda p: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p),
        (link.LINKTYPE_ETHERNET, lambda p: Ether() / Dot1Q(vlan=42) / p),
        (link.LINKTYPE_ETHERNET, lambda p: Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=42) / p),
        (link.LINKTYPE_LINUX_SLL, lambda p: CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6) / p),
        (link.LINKTYPE_LINUX_SLL2, lambda p: CookedLinuxV2(pkttype=4, ifindex=1) / p),
        (link.LINKTYPE_RAW, lambda p: p),
        (link.LINKTYPE_RAW_12, lambda p: p),
        (link.LINKTYPE_RAW_14, lambda p: p),
        (link.LINKTYPE_LOOP, lambda p: LoopbackOpenBSD() / p),
    ],
    ids=["ether", "ether-vlan", "ether-qinq", "sll", "sll2", "raw101", "raw12", "raw14", "loop108"],
)
def test_ip_packet_is_what_scapy_put_in_the_frame(linktype, frame_of, ip_packet):
    frame = bytes(frame_of(ip_packet))
    assert link.ip_from_frame(linktype, frame) == bytes(ip_packet)


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize(("family", "ip_packet"), [(2, V4), (10, V6), (24, V6), (28, V6), (30, V6)])
def test_null_loopback_family_in_either_byte_order(byteorder, family, ip_packet):
    frame = family.to_bytes(4, byteorder) + bytes(ip_packet)
    assert link.ip_from_frame(link.LINKTYPE_NULL, frame) == bytes(ip_packet)


def test_null_loopback_as_scapy_writes_it():
    # Scapy's Loopback layer writes the family in this host's byte order, as a BSD host would.
    frame = bytes(Loopback(type=2) / V4)
    assert link.ip_from_frame(link.LINKTYPE_NULL, frame) == bytes(V4)


def test_ethernet_padding_is_left_for_the_ip_decoder():
    frame = bytes(Ether() / V4) + b"\x00" * 6
    assert link.ip_from_frame(link.LINKTYPE_ETHERNET, frame) == bytes(V4) + b"\x00" * 6


@pytest.mark.parametrize(
    ("linktype", "frame", "reason"),
    [
        (link.LINKTYPE_ETHERNET, b"\x00" * 13, "truncated"),
        (link.LINKTYPE_ETHERNET, bytes(Ether() / ARP()), "not-ip"),
        (link.LINKTYPE_ETHERNET, bytes(Ether(type=0x8100))[:14] + b"\x00\x2a", "truncated"),
        (link.LINKTYPE_ETHERNET, bytes(Ether(type=0x0026) / Raw(b"\x42" * 38)), "not-ip"),  # 802.3 length
        (link.LINKTYPE_LINUX_SLL, b"\x00" * 15, "truncated"),
        (link.LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x0806) / ARP()), "not-ip"),
        (link.LINKTYPE_LINUX_SLL2, b"\x08\x00" + b"\x00" * 17, "truncated"),
        (link.LINKTYPE_NULL, b"\x02\x00", "truncated"),
        (link.LINKTYPE_NULL, struct.pack("<I", 7) + bytes(V4), "not-ip"),
        (link.LINKTYPE_NULL, struct.pack("<I", 2), "truncated"),
        (link.LINKTYPE_LOOP, struct.pack("<I", 2) + bytes(V4), "not-ip"),  # little-endian is wrong here
        (link.LINKTYPE_RAW, b"", "truncated"),
        (link.LINKTYPE_RAW, b"\x50" + b"\x00" * 19, "not-ip"),
        (link.LINKTYPE_IPV4, bytes(V6), "not-ip"),
        (link.LINKTYPE_IPV6, bytes(V4), "not-ip"),
        (link.LINKTYPE_IPV6, b"", "not-ip"),
        (147, bytes(V4), "unsupported-linktype"),
        (105, bytes(V4), "unsupported-linktype"),  # 802.11
    ],
)
def test_bad_frames_raise_parse_error_with_a_reason(linktype, frame, reason):
    with pytest.raises(ParseError) as info:
        link.ip_from_frame(linktype, frame)
    assert info.value.layer == "link"
    assert info.value.reason == reason
    assert "\n" not in str(info.value)


def test_raw_v4_and_v6_linktypes_pass_the_packet_through():
    assert link.ip_from_frame(link.LINKTYPE_IPV4, bytes(V4)) == bytes(V4)
    assert link.ip_from_frame(link.LINKTYPE_IPV6, bytes(V6)) == bytes(V6)


def test_unsupported_linktype_names_what_is_supported():
    with pytest.raises(ParseError) as info:
        link.decoder_for(105)
    assert "linktype 105" in str(info.value)
    assert "LINUX_SLL2" in str(info.value)
    assert not link.is_supported(105)
    assert all(link.is_supported(n) for n in (0, 1, 12, 14, 101, 108, 113, 228, 229, 276))


def test_scapys_layer_for_each_linktype_decodes_to_the_same_ip_bytes():
    """Scapy's own table says which layer starts frames of each linktype: a frame
    built with that layer must decode to the same IP bytes here."""
    from scapy.config import conf

    for linktype, fields in [(1, {}), (108, {}), (113, {}), (276, {"proto": 0x0800}), (0, {"type": 2})]:
        layer = conf.l2types.num2layer[linktype]
        frame = bytes(layer(**fields) / V4)
        assert link.ip_from_frame(linktype, frame) == bytes(V4), layer.__name__

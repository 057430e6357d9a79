"""Community ID and Zeek-form uids, against the reference implementation.

The reference is the ``communityid`` package (Corelight's implementation of the
published spec); every connection of the committed captures and 10,000 random
IPv4 and IPv6 flows must hash as it hashes them.
"""

from __future__ import annotations

import ipaddress
import random
import re

import communityid
import pytest
from test_replay_support import DATA, replay

from l4kit.replay.flowid import community_id, connection_community_id, connection_uid, zeek_uid
from l4kit.replay.zeeklog import zeek_addr

REFERENCE = communityid.CommunityID()  # seed 0, base64: the spec's defaults


def reference(saddr: bytes, daddr: bytes, sport: int, dport: int, seed: int = 0) -> str:
    flow = communityid.FlowTuple.make_tcp(
        str(ipaddress.ip_address(saddr)), str(ipaddress.ip_address(daddr)), sport, dport
    )
    return (REFERENCE if seed == 0 else communityid.CommunityID(seed)).calc(flow)


def random_flow(rng: random.Random) -> tuple[bytes, bytes, int, int]:
    width = rng.choice((4, 16))
    saddr = rng.getrandbits(8 * width).to_bytes(width, "big")
    kind = rng.random()
    if kind < 0.05:
        daddr = saddr  # same address: the ports decide the order
    elif kind < 0.1:
        daddr = saddr[:-1] + bytes([(saddr[-1] + 1) % 256])  # neighbours
    else:
        daddr = rng.getrandbits(8 * width).to_bytes(width, "big")
    sport = rng.randrange(65536)
    dport = sport if rng.random() < 0.02 else rng.randrange(65536)
    return saddr, daddr, sport, dport


def test_ten_thousand_random_flows_hash_as_the_reference_hashes_them():
    rng = random.Random(2024)
    flows = [random_flow(rng) for _ in range(10_000)]
    assert {len(f[0]) for f in flows} == {4, 16}
    mismatches = [f for f in flows if community_id(*f) != reference(*f)]
    assert mismatches == []


def test_both_directions_and_a_seed():
    saddr, daddr = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.2").packed
    assert community_id(saddr, daddr, 40000, 80) == community_id(daddr, saddr, 80, 40000)
    assert community_id(saddr, daddr, 40000, 80, seed=7) == reference(saddr, daddr, 40000, 80, seed=7)
    assert community_id(saddr, daddr, 40000, 80, seed=7) != community_id(saddr, daddr, 40000, 80)


def test_the_specs_own_example():
    # The spec's baseline: TCP 128.232.110.120:34855 -> 66.35.250.204:80, seed 0.
    saddr = ipaddress.ip_address("128.232.110.120").packed
    daddr = ipaddress.ip_address("66.35.250.204").packed
    assert community_id(saddr, daddr, 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


@pytest.mark.parametrize("capture", sorted(DATA.glob("*.pcap")), ids=lambda p: p.name)
def test_every_connection_of_the_committed_captures(capture):
    reports, _ = replay(capture)
    assert reports
    for r in reports:
        client, server = r.client.rsplit(":", 1), r.server.rsplit(":", 1)
        expected = communityid.FlowTuple.make_tcp(
            client[0].strip("[]"), server[0].strip("[]"), int(client[1]), int(server[1])
        )
        assert connection_community_id(r) == REFERENCE.calc(expected), r.client


def test_uids_have_zeeks_form_and_name_one_connection():
    pattern = re.compile(r"C[0-9a-zA-Z]{2,17}")
    a, b = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.2").packed
    uid = zeek_uid(1_700_000_000.123456, a, 40000, b, 80)
    assert pattern.fullmatch(uid)
    assert uid == zeek_uid(1_700_000_000.123456, a, 40000, b, 80)  # reproducible
    others = {
        zeek_uid(1_700_000_000.123457, a, 40000, b, 80),
        zeek_uid(1_700_000_000.123456, a, 40001, b, 80),
        zeek_uid(1_700_000_000.123456, b, 80, a, 40000),
        zeek_uid(1_700_000_000.123456, a, 40000, a, 80),
    }
    assert uid not in others and len(others) == 4
    uids = {zeek_uid(1_700_000_000 + i / 1000, a, 40000, b, 80) for i in range(5000)}
    assert len(uids) == 5000 and all(pattern.fullmatch(u) for u in uids)


def test_uid_digits_are_zeeks_base62_least_significant_first():
    """Zeek's uitoa_n writes the least significant digit first in 0-9a-zA-Z: the two
    parts of the uid (64 and 32 bits) read back to the hash's bits."""
    import hashlib
    import struct

    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    a, b = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
    uid = zeek_uid(1.5, a, 1, b, 2)
    bits = int.from_bytes(
        hashlib.blake2b(struct.pack("!qHH", 1_500_000_000, 1, 2) + b"\x06" + a + b, digest_size=12).digest()
    )
    high, low = bits >> 32, bits & 0xFFFFFFFF

    def digits(value: int) -> str:
        out = ""
        while True:
            value, d = divmod(value, 62)
            out += alphabet[d]
            if not value:
                return out

    assert uid == "C" + digits(high) + digits(low)


def test_connection_uid_is_the_same_for_the_same_connection_in_every_run():
    reports_1, _ = replay(DATA / "lo-kernel.pcap")
    reports_2, _ = replay(DATA / "lo-kernel.pcap")
    assert [connection_uid(r) for r in reports_1] == [connection_uid(r) for r in reports_2]
    assert len({connection_uid(r) for r in reports_1}) == len(reports_1)


def test_ipv4_mapped_addresses_are_written_as_zeek_writes_them():
    assert zeek_addr(ipaddress.ip_address("::ffff:192.0.2.1").packed) == "192.0.2.1"
    assert zeek_addr(ipaddress.ip_address("2001:db8::1").packed) == "2001:db8::1"
    assert zeek_addr(bytes([10, 0, 0, 1])) == "10.0.0.1"

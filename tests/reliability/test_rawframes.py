"""The test frame builder against Scapy (no root): the frames the reliability tests
send are what Scapy would build, octet for octet, checksums included."""

from __future__ import annotations

import random

import pytest
import rawframes
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

pytestmark = pytest.mark.reliability


def scapy_frame(src: str, dst: str, sport: int, dport: int, **tcp: object) -> bytes:
    payload = tcp.pop("payload", b"")
    packet = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / IP(src=src, dst=dst, id=1, flags="DF")
    packet = packet / TCP(sport=sport, dport=dport, **tcp)
    if payload:
        packet = packet / Raw(payload)
    return bytes(packet)


@pytest.mark.parametrize("seed", range(20))
def test_builder_is_scapy_octet_for_octet(seed: int) -> None:
    rng = random.Random(seed)
    flags = rng.randrange(512)
    seq, ack, window = rng.getrandbits(32), rng.getrandbits(32), rng.randrange(65536)
    payload = rng.randbytes(rng.choice([0, 1, 7, 100]))
    mss = rng.choice([None, 536, 1460])
    ours = rawframes.ipv4_tcp(
        "127.0.0.5", "127.0.0.1", 1024 + seed, 8888, seq=seq, ack=ack, flags=flags, window=window,
        options=rawframes.tcp_option_mss(mss) if mss else b"", payload=payload,
    )  # fmt: skip
    theirs = scapy_frame(
        "127.0.0.5", "127.0.0.1", 1024 + seed, 8888, seq=seq, ack=ack, flags=flags, window=window,
        options=[("MSS", mss)] if mss else [], payload=payload,
    )  # fmt: skip
    assert ours == theirs


def test_flood_frames_carry_the_checksums_scapy_computes() -> None:
    for frame in rawframes.syn_flood(200, seed=3):
        packet = Ether(frame)
        assert packet[IP].src.startswith("127.2.") and packet[TCP].flags == "S"
        del packet[IP].chksum, packet[TCP].chksum
        assert bytes(Ether(bytes(packet))) == frame


def test_a_wrong_checksum_is_wrong_for_scapy_too() -> None:
    frame = rawframes.ipv4_tcp("127.0.0.5", "127.0.0.1", 1, 8888, tcp_checksum=0x1234)
    packet = Ether(frame)
    del packet[TCP].chksum
    assert Ether(bytes(packet))[TCP].chksum != 0x1234


@pytest.mark.parametrize("letters", ["", "S", "SA", "FA", "R", "PA", "FSRPAUECN"])
def test_flag_letters_round_trip_in_scapy_notation(letters: str) -> None:
    value = rawframes.flags_value(letters)
    assert rawframes.flags_letters(value) == letters
    assert int(TCP(flags=letters).flags) == value

"""Hostile input: bad frames by the thousand, live and through the decoders.

Live: ``rawframes.hostile_cases`` (6,512 frames: 20 kinds x 300, plus all 512
combinations of the nine flag bits) go through one packet socket into a
responder in the namespace. Each kind names the drop reason the exit summary
must count every one of its frames under, or ``None`` for frames the kernel
filter (``inbound and tcp and dst host A and dst port P``) keeps away from l4kit
altogether. libpcap itself (tcpdump reading a pcap of the same frames with the
same filter, minus ``inbound``, which needs a live capture) confirms which are
which. The flag combinations are expected as RFC 9293 §3.10.7.2 says LISTEN
handles them (``rawframes.listen_outcome``). The sources are spoofed and
silenced, so the only frames the responder reads are those sent, and the counts
must add up exactly. Then a real client must still be served.

Decoders: 100,000 frames made by mutating valid ones (every cut, bit flips,
octet overwrites, insertions) through ``decode_packet``: nothing but ParseError
with a documented reason, and what decodes agrees with an independent
``struct`` parse of the same octets. The hypothesis fuzz
(tests/unit/test_wire_fuzz.py, scaled by L4KIT_FUZZ_EXAMPLES) and the atheris
harness (benchmarks/fuzz_decoders.py) run in the soak set.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import rawframes
from reliability_helpers import Summary, needs, send_frames, silence

from l4kit.checksum import ChecksumStatus
from l4kit.errors import ParseError
from l4kit.wire.packet import PARSE_REASONS, decode_packet
from namespaces import late_client_segments

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
FUZZ_TESTS = ROOT / "tests" / "unit" / "test_wire_fuzz.py"
HOSTILE_SOURCES = "127.3.0.0/16"
FILTER_WITHOUT_INBOUND = "tcp and dst host 127.0.0.1 and dst port 8888"


def libpcap_matches(frames: tuple[bytes, ...], workdir: Path, name: str) -> int:
    """How many of ``frames`` libpcap's compiled filter accepts (tcpdump -r on a pcap of them)."""
    path = workdir / f"{name}.pcap"
    rawframes.write_pcap(path, frames)
    done = subprocess.run(
        ["tcpdump", "-n", "-r", str(path), FILTER_WITHOUT_INBOUND],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return len(done.stdout.splitlines())


@pytest.mark.live
@needs("tcpdump", "nft")
def test_hostile_frames_are_each_counted_under_their_reason(netns: Namespace, tmp_path: Path) -> None:
    cases = rawframes.hostile_cases(sources=HOSTILE_SOURCES, per_case=300)
    expected: Counter[str] = Counter()
    opened = 0
    filtered_out = 0
    for index, case in enumerate(cases):
        matched = libpcap_matches(case.frames, tmp_path, f"case{index}")
        if case.tag is None:
            assert matched == 0, case.name  # the kernel filter keeps them away
            filtered_out += len(case.frames)
        elif case.tag == "by-flags":
            assert matched == len(case.frames), case.name
            for frame in case.frames:
                outcome = rawframes.listen_outcome(int.from_bytes(frame[46:48], "big") & 0x1FF)
                if outcome == "open":
                    opened += 1
                else:
                    expected[outcome] += 1
        else:
            assert matched == len(case.frames), case.name
            expected[case.tag] += len(case.frames)
    frames = [frame for case in cases for frame in case.frames]
    assert len(frames) >= 5000 + filtered_out  # at least 5,000 reach the responder

    silence(netns, daddr=HOSTILE_SOURCES)
    own = tmp_path / "own.pcap"  # what the responder received, in its order
    responder = netns.respond("--quiet", "--pcap", str(own))  # the default (Scapy) codec answers
    report = send_frames(netns, frames, tmp_path)
    assert report["sent"] == len(frames)
    # A real client after them: frames are read in order, so once it is served every
    # hostile frame has been through the responder.
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=20).stdout == "hello world\n"
    responder.settle(quiet=0.5, timeout=30, strict=True)  # and nc's closing segments too
    code, output = responder.stop()
    assert code == 0, output
    assert "Traceback" not in output
    summary = Summary.parse(output)
    client_frames = summary.checksums_offloaded  # nc's own segments (partial checksums on lo)
    print(f"\n{len(frames)} hostile frames sent, {filtered_out} kept out by the kernel filter; drops: "
          f"{dict(summary.drops.most_common())}")  # fmt: skip

    assert summary.frames_matched == len(frames) - filtered_out + client_frames
    assert summary.frames_in == summary.frames_matched  # nothing lost, nothing left unread
    # and the nc client's segments that loopback handed over late, each an old segment
    # dropped as unacceptable (namespaces.late_client_segments)
    late = late_client_segments(own)
    if late:
        expected["unacceptable"] += late
    assert summary.drops == expected, (summary.drops, expected)
    # The SYNs among the flag combinations opened half-open connections (their peers are
    # silent), aborted at exit; the nc client was the one connection that completed.
    assert summary.aborted_at_exit == opened
    assert summary.connections == 1


# ---------------------------------------------------------------- the decoders, 100,000 frames


def base_packets(rng: random.Random) -> list[bytes]:
    """Valid IPv4/TCP packets of several shapes (options, data, flags) to mutate."""
    options = [
        b"",
        rawframes.tcp_option_mss(1460),
        rawframes.tcp_option_mss(536) + bytes([1, 3, 3, 7]),  # MSS, NOP, window scale 7
        bytes([4, 2, 8, 10]) + bytes(8) + bytes([1, 1]),  # SACK-permitted, timestamps, NOPs
        bytes([5, 10]) + bytes(8) + bytes([1, 1]),  # one SACK block
    ]
    packets = []
    for i in range(60):
        packets.append(
            rawframes.ipv4_tcp(
                f"10.{i}.0.1", "10.0.0.1", 1024 + i, 8888, seq=rng.getrandbits(32), ack=rng.getrandbits(32),
                flags=rng.randrange(512), window=rng.randrange(65536), options=options[i % len(options)],
                payload=rng.randbytes(rng.choice([0, 1, 8, 100])), link=False,
            )
        )  # fmt: skip
    return packets


def mutations(rng: random.Random, packets: list[bytes], count: int) -> list[bytes]:
    """Every cut of every base packet, then random flips, overwrites and insertions."""
    out = [packet[:cut] for packet in packets for cut in range(len(packet))]
    interesting = [0x00, 0x01, 0x02, 0x05, 0x0F, 0x40, 0x45, 0x4F, 0x50, 0x60, 0xF0, 0xFF]
    while len(out) < count:
        data = bytearray(rng.choice(packets))
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(data))
            action = rng.randrange(4)
            if action == 0:
                data[position] ^= 1 << rng.randrange(8)
            elif action == 1:
                data[position] = rng.choice(interesting)
            elif action == 2:
                data[position:position] = rng.randbytes(rng.randrange(1, 9))
            else:
                del data[position : position + rng.randrange(1, 9)]
        out.append(bytes(data))
    return out[:count]


def independent_view(packet: bytes) -> tuple[int, int, int, int, int, bytes]:
    """Ports, seq, ack, flags and payload read with struct alone (an IPv4 packet that decoded)."""
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    tcp = packet[ihl:total]
    sport, dport, seq, ack, offset_flags = struct.unpack_from("!HHIIH", tcp)
    return sport, dport, seq, ack, offset_flags & 0x1FF, tcp[(offset_flags >> 12) * 4 :]


def checksum_verifies(packet: bytes) -> bool:
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    tcp = packet[ihl:total]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    return rawframes.ones_complement_checksum(pseudo + tcp) == 0


def test_100000_mutated_frames_through_the_decoder() -> None:
    rng = random.Random(8)
    frames = mutations(rng, base_packets(rng), 100_000)
    outcomes: Counter[str] = Counter()
    for frame in frames:
        try:
            segment = decode_packet(frame)
        except ParseError as exc:
            assert exc.reason in PARSE_REASONS, exc
            assert "\n" not in str(exc)
            outcomes[f"{exc.layer}:{exc.reason}"] += 1
            continue
        outcomes["decoded"] += 1
        sport, dport, seq, ack, flags, payload = independent_view(frame)
        assert (segment.sport, segment.dport, segment.seq.value, segment.ack.value) == (
            sport,
            dport,
            seq,
            ack,
        )
        assert (int(segment.flags), segment.payload) == (flags, payload)
        assert (segment.checksum is ChecksumStatus.OK) == checksum_verifies(frame)
    print(f"\n{len(frames)} mutated frames: {dict(outcomes.most_common())}")
    assert sum(outcomes.values()) == 100_000
    assert outcomes["decoded"] > 1000 and len(outcomes) > 10  # the mutations reach deep and wide


# ---------------------------------------------------------------- soak: the fuzzers, scaled up


@pytest.mark.soak
def test_soak_hypothesis_fuzz_of_the_decoders(tmp_path: Path) -> None:
    """tests/unit/test_wire_fuzz.py with L4KIT_FUZZ_EXAMPLES=15000: its four property
    tests feed 1 + 1 + 2 + 3 frames per example, 105,000 frames, each to four decoders."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(FUZZ_TESTS)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False,
        env={**os.environ, "L4KIT_FUZZ_EXAMPLES": "15000"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    calls = int(re.search(r"fuzz: (\d+) decoder calls", done.stdout).group(1))  # type: ignore[union-attr]
    print(f"\nhypothesis: {calls} decoder calls ({calls // 4} frames x 4 decoders)")
    assert calls >= 4 * 100_000


@pytest.mark.soak
def test_soak_atheris_fuzz_of_the_decoders() -> None:
    pytest.importorskip("atheris")
    runs = 200_000
    done = subprocess.run(
        [sys.executable, "benchmarks/fuzz_decoders.py", f"-atheris_runs={runs}"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    inputs = int(re.search(r"fuzz_decoders: (\d+) inputs", done.stderr).group(1))  # type: ignore[union-attr]
    print(f"\natheris: {inputs} inputs, each through 4 decoders, no crash")
    assert inputs >= 100_000

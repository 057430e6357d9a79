"""Replay numbers frames and connections exactly as tshark does, on crafted captures.

Every frame of a capture built here is checked against ``tshark -T fields -e
tcp.stream``: a frame tshark gives a stream is in the connection with that id, and a
frame it gives none is in no connection. The captures hold what breaks naive
numbering: IPv4 and IPv6 fragments (in order, out of order, duplicated, overlapping,
incomplete, an identification reused, the same datagram on two VLANs), SYN+FIN,
port 0, VLAN and QinQ tags, a bogus header length, a segment cut by the snap length,
16 octets of TCP header, ICMP errors quoting segments, tunnels. ``--filter`` must
show a subset of the same numbering.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import GRE, ICMP, IP, TCP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from test_replay_support import needs_tshark, tshark_fields

from l4kit.replay.capture import CaptureReader
from l4kit.replay.engine import Replayer
from l4kit.replay.fragments import NOTE_OVERLAP
from l4kit.replay.model import ConnectionReport, ReplaySummary

A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
ETHER = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


class Capture:
    """Frames with their capture times; ``cut`` keeps only the first octets of a frame
    (as a snap length would) and records its full length."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int]] = []  # (captured octets, length on the wire)

    def add(self, packet: Packet | bytes, cut: int | None = None) -> int:
        data = bytes(packet)
        self.frames.append((data[:cut] if cut else data, len(data)))
        return len(self.frames)

    def write(self, path: Path) -> Path:
        with path.open("wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for n, (data, wirelen) in enumerate(self.frames):
                f.write(
                    struct.pack("<IIII", 1_700_000_000 + n // 100, (n % 100) * 10_000, len(data), wirelen)
                )
                f.write(data)
        return path


def tcp(
    src: str, dst: str, sport: int, dport: int, flags: str, seq: int = 1000, ack: int = 0, **kw
) -> Packet:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst, id=kw.pop("ip_id", 1))
    return ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **kw)


def ether(packet: Packet) -> Packet:
    return Ether(**ETHER) / packet


def handshake(cap: Capture, client: tuple[str, int], server: tuple[str, int], wrap=ether) -> None:
    (c, cp), (s, sp) = client, server
    cap.add(wrap(tcp(c, s, cp, sp, "S", 100)))
    cap.add(wrap(tcp(s, c, sp, cp, "SA", 500, 101)))
    cap.add(wrap(tcp(c, s, cp, sp, "A", 101, 501)))


def numbering_capture(tmp_path: Path) -> Path:
    cap = Capture()
    # 0: a connection whose data comes in IPv4 fragments, in order then out of order.
    handshake(cap, (A, 40000), (B, 80))
    data = tcp(A, B, 40000, 80, "PA", 101, 501, ip_id=77) / Raw(b"x" * 3000)
    for piece in fragment(data, fragsize=1000):
        cap.add(ether(piece))
    reply = tcp(B, A, 80, 40000, "PA", 501, 3101, ip_id=78) / Raw(b"y" * 2500)
    pieces = fragment(reply, fragsize=1000)
    for piece in (pieces[2], pieces[0], pieces[1]):
        cap.add(ether(piece))
    # A SYN whose fragments come before everything of another connection: the id
    # goes to the frame that completes it.
    syn = tcp(A, B, 40001, 80, "S", 100, ip_id=90) / Raw(b"s" * 40)
    first, second, third = fragment(syn, fragsize=24)
    cap.add(ether(second))
    cap.add(ether(third))
    handshake(cap, (A, 40002), (B, 81))
    cap.add(ether(first))
    # A fragment with a bad IPv4 header checksum: tshark does not check it, a receiver drops it.
    bad = fragment(tcp(A, B, 40009, 80, "PA", 101, 501, ip_id=11) / Raw(b"k" * 1500), 1000)
    bad[1].chksum = 0x1234
    cap.add(ether(bad[0]))
    cap.add(ether(bad[1]))
    # IPv6: a Destination Options header before the Fragment header; an atomic fragment.
    dest = IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(id=12)
    for piece in fragment6(dest / TCP(sport=40010, dport=80, flags="S") / Raw(b"o" * 1500), 1000):
        cap.add(ether(piece))
    cap.add(
        ether(IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=13, m=0) / TCP(sport=40011, dport=80, flags="S"))
    )
    # An incomplete datagram (the first fragment only), a duplicated fragment, an
    # identification used again after its datagram completed.
    cap.add(ether(fragment(tcp(A, B, 40003, 80, "PA", 101, 501, ip_id=5) / Raw(b"a" * 1500), 1000)[0]))
    dup = fragment(tcp(A, B, 40004, 80, "PA", 101, 501, ip_id=6) / Raw(b"b" * 1500), 1000)
    cap.add(ether(dup[0]))
    cap.add(ether(dup[0]))
    cap.add(ether(dup[1]))
    for seq in (101, 1601):
        again = fragment(tcp(A, B, 40005, 80, "PA", seq, 501, ip_id=7) / Raw(b"c" * 1500), 1000)
        cap.add(ether(again[0]))
        cap.add(ether(again[1]))
    # Overlapping fragments: tshark reassembles, a receiver discards.
    whole = bytes(tcp(A, B, 40006, 80, "PA", 101, 501) / Raw(b"e" * 1500))[20:]
    cap.add(ether(IP(src=A, dst=B, id=8, flags="MF", proto=6) / Raw(whole[:1000])))
    cap.add(ether(IP(src=A, dst=B, id=8, frag=1000 // 8 - 10, proto=6) / Raw(whole[920:])))
    # IPv6 fragments, last first.
    v6 = (
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrFragment(id=9)
        / TCP(sport=40007, dport=80, flags="PA")
        / Raw(b"f" * 2500)
    )
    for piece in reversed(fragment6(v6, 1200)):
        cap.add(ether(piece))
    # The same datagram on two VLANs, interleaved: Wireshark keeps them apart.
    vlan_pieces = fragment(tcp(A, B, 40008, 80, "PA", 101, 501, ip_id=10) / Raw(b"v" * 1500), 1000)
    for piece in vlan_pieces:
        cap.add(Ether(**ETHER) / Dot1Q(vlan=5) / piece)
        cap.add(Ether(**ETHER) / Dot1Q(vlan=6) / piece)
    # SYN+FIN alone, then a real connection on the same 4-tuple; port 0 both ways.
    cap.add(ether(tcp(A, B, 41000, 80, "SF", 100)))
    handshake(cap, (A, 41000), (B, 80))
    cap.add(ether(tcp(A, B, 0, 80, "S")))
    cap.add(ether(tcp(A, B, 5555, 0, "S")))
    cap.add(ether(tcp(B, A, 0, 5555, "RA", 0, 1001)))
    # VLAN and QinQ tagged connections.
    handshake(cap, (A, 42000), (B, 80), wrap=lambda p: Ether(**ETHER) / Dot1Q(vlan=7) / p)
    handshake(cap, (A, 42001), (B, 80), wrap=lambda p: Ether(**ETHER) / Dot1AD(vlan=8) / Dot1Q(vlan=9) / p)
    # A bogus header length; a header running past the segment; 16 and 15 octets of
    # TCP header captured; a data segment cut by the snap length.
    cap.add(ether(tcp(A, B, 43000, 80, "PA", dataofs=4) / Raw(b"z" * 10)))
    cap.add(ether(tcp(A, B, 43001, 80, "PA", dataofs=15) / Raw(b"z" * 10)))
    cap.add(ether(tcp(A, B, 43002, 80, "S")), cut=14 + 20 + 16)
    cap.add(ether(tcp(A, B, 43003, 80, "S")), cut=14 + 20 + 15)
    handshake(cap, (A, 43004), (B, 80))
    cap.add(ether(tcp(A, B, 43004, 80, "PA", 101, 501) / Raw(b"d" * 1400)), cut=96)
    # ICMP errors quoting a segment: of a connection seen, of one never seen, too short.
    quoted = bytes(tcp(A, B, 43004, 80, "PA", 101, 501) / Raw(b"d" * 1400))
    cap.add(ether(IP(src=B, dst=A) / ICMP(type=3, code=4) / Raw(quoted[:576])))
    cap.add(ether(IP(src=B, dst=A) / ICMP(type=11) / Raw(bytes(tcp(A, B, 44000, 80, "S"))[:40])))
    cap.add(ether(IP(src=B, dst=A) / ICMP(type=3, code=3) / Raw(bytes(tcp(A, B, 44001, 80, "S"))[:28])))
    cap.add(
        ether(
            IPv6(src=B6, dst=A6, nh=58)
            / Raw(bytes.fromhex("02000000000005dc") + bytes(tcp(A6, B6, 44002, 80, "S")))
        )
    )
    # Tunnels: IPv4 in IPv4, IPv6 in IPv4, GRE with a key.
    cap.add(ether(IP(src="192.0.2.1", dst="192.0.2.2") / tcp(A, B, 45000, 80, "S")))
    cap.add(ether(IP(src="192.0.2.1", dst="192.0.2.2") / tcp(A6, B6, 45001, 80, "S")))
    cap.add(
        ether(IP(src="192.0.2.1", dst="192.0.2.2") / GRE(key_present=1, key=3) / tcp(A, B, 45002, 80, "S"))
    )
    # Options tshark complains about; IPv4 options with SYN+FIN.
    cap.add(ether(tcp(A, B, 46000, 80, "S", options=[(2, b"\x05")])))
    cap.add(ether(IP(src=A, dst=B, options=b"\x01\x01\x01\x00") / TCP(sport=46001, dport=80, flags="SF")))
    # And the end of a connection from the start, to see that nothing shifted.
    cap.add(ether(tcp(A, B, 40000, 80, "FA", 3101, 3001)))
    return cap.write(tmp_path / "numbering.pcap")


def replay_all(path: Path, **options: object) -> tuple[list[ConnectionReport], ReplaySummary]:
    reports: list[ConnectionReport] = []
    with CaptureReader(path, **options) as capture:  # type: ignore[arg-type]
        replayer = Replayer(reports.append, frame_filter=capture.frame_filter)
        replayer.run(capture)
    summary = replayer.finish()
    return sorted(reports, key=lambda r: r.id), summary


def stream_of_each_frame(reports: list[ConnectionReport]) -> dict[int, int]:
    streams: dict[int, int] = {}
    for report in reports:
        for record in report.rows:
            assert record[0] not in streams, f"frame {record[0]} in two connections"
            streams[record[0]] = report.id
    return streams


def tshark_streams(path: Path) -> dict[int, int]:
    rows = tshark_fields(path, "frame.number", "tcp.stream")
    return {int(number): int(stream) for number, stream in rows if stream}


@needs_tshark
def test_every_frame_is_in_the_connection_tshark_puts_it_in(tmp_path):
    path = numbering_capture(tmp_path)
    reports, summary = replay_all(path)
    expected = tshark_streams(path)
    assert stream_of_each_frame(reports) == expected
    assert summary.connections == max(expected.values()) + 1
    # The capture holds what it is meant to: not a capture tshark numbers trivially.
    assert summary.fragments["frames"] >= 20
    assert {"reassembled", "overlap", "duplicate", "incomplete"} <= set(summary.fragments)


@needs_tshark
def test_a_filtered_run_is_a_subset_numbered_as_the_unfiltered_run(tmp_path):
    path = numbering_capture(tmp_path)
    everything = stream_of_each_frame(replay_all(path)[0])
    for bpf in ("port 80", "tcp[tcpflags] & tcp-syn != 0", "vlan", "ip6", "host 10.0.0.1 and port 40000"):
        reports, summary = replay_all(path, bpf=bpf)
        shown = stream_of_each_frame(reports)
        assert shown, bpf
        assert all(everything[frame] == stream for frame, stream in shown.items()), bpf
        assert summary.connections == max(everything.values()) + 1
        assert summary.filter_frames is not None and summary.filter_frames >= len(shown)


def test_odd_and_reassembled_segments_carry_their_notes(tmp_path):
    reports, _ = replay_all(numbering_capture(tmp_path))
    notes = {record[0]: record[9] for report in reports for record in report.rows}
    by_note = {n.split(":")[0] for ns in notes.values() for n in ns}
    assert {
        "SYN+FIN",
        "port 0",
        "overlapping IP fragments",
        "a fragment with a bad IPv4 header checksum",
    } <= by_note
    assert any(n.startswith("bogus TCP header length") for n in by_note)
    assert any(n.startswith("ICMP destination unreachable from 10.0.0.2") for n in by_note)
    # The first connection's fragmented data is analysed as one segment: no loss seen.
    first = reports[0]
    assert [r[6] for r in first.rows if r[6]] == [3000, 2500]
    assert not any("not captured" in n or "unseen" in n for r in first.rows for n in r[9])
    assert "G" not in first.history
    overlapped = [r for report in reports for r in report.rows if NOTE_OVERLAP in r[9]]
    assert len(overlapped) == 1 and overlapped[0][8] != "bad"  # shown, its checksum not the reason


def test_fragments_time_out_and_the_memory_budget_holds(tmp_path):
    from l4kit.replay.fragments import Reassembler

    pieces = fragment(tcp(A, B, 40000, 80, "PA", 1, 1, ip_id=1) / Raw(b"x" * 3000), 1000)
    frames = [bytes(ether(p)) for p in pieces]
    reassembler = Reassembler(ipv4_timeout=30.0)
    assert reassembler.add(frames[0], 14, 0.0) is None
    assert reassembler.add(frames[1], 14, 10.0) is None
    # Past 30 s from the first fragment, the datagram is gone: the last one completes nothing.
    assert reassembler.add(frames[2], 14, 31.0) is None
    assert reassembler.counts["timeout"] == 1
    assert reassembler.finish()["incomplete"] == 1
    assert reassembler.held == 0

    small = Reassembler(memory=1500)
    others = [
        bytes(ether(p)) for p in fragment(tcp(A, B, 40001, 80, "PA", 1, 1, ip_id=2) / Raw(b"y" * 3000), 1000)
    ]
    assert small.add(frames[0], 14, 0.0) is None
    assert small.add(others[0], 14, 0.0) is None  # 2,000 octets held: over the budget now
    assert small.add(frames[1], 14, 0.0) is None
    assert small.counts["memory"] == 1
    assert small.held <= 1500 + 1000


@pytest.mark.parametrize(
    ("order", "verdicts"),
    [
        ([(0, 1000), (1000, 2000), (2000, 2500)], ["ok", "ok", "ok"]),
        ([(0, 1000), (0, 1000)], ["ok", "duplicate"]),
        ([(0, 1000), (1000, 2000), (500, 1500)], ["ok", "ok", "duplicate"]),  # within one run
        ([(1000, 2000), (0, 1000), (500, 1500)], ["ok", "ok", "overlap"]),  # across two runs
        ([(0, 1000), (900, 1500)], ["ok", "overlap"]),
        ([(2000, 3000), (0, 1000), (1000, 2000)], ["ok", "ok", "ok"]),
    ],
)
def test_the_receivers_verdict_on_each_fragment_is_linuxs(order, verdicts):
    """inet_frag_queue_insert: a fragment past the last run extends it or starts one;
    one inside a run is a duplicate; one across runs, or into the last, overlaps."""
    from l4kit.replay.fragments import _Datagram

    datagram = _Datagram(0.0, 30.0)
    assert [datagram.insert(start, end) for start, end in order] == verdicts

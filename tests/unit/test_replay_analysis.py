"""Wireshark's analysis notes: checked frame by frame against tshark itself.

The generated traces mix in-order data, segments missing from the capture,
retransmissions, bursts of duplicate ACKs followed by quick retransmissions,
reordering, keep-alives, window changes (zero windows, probes, windows filled
exactly) and retransmitted FINs. tshark (the reference) reads the same file; for
every frame the set of ``tcp.analysis.*`` flags must be the one l4kit derives
from its notes.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_replay_support import Conv, needs_tshark, notes_by_frame, replay_packets, tshark_fields, write

from l4kit.replay.analysis import SequenceAnalysis

FIELDS = {
    "tcp.analysis.retransmission": "retransmission",
    "tcp.analysis.fast_retransmission": "fast_retransmission",
    "tcp.analysis.spurious_retransmission": "spurious_retransmission",
    "tcp.analysis.out_of_order": "out_of_order",
    "tcp.analysis.duplicate_ack_num": "dup",
    "tcp.analysis.window_update": "window_update",
    "tcp.analysis.lost_segment": "lost_segment",
    "tcp.analysis.ack_lost_segment": "ack_lost_segment",
    "tcp.analysis.keep_alive": "keep_alive",
    "tcp.analysis.keep_alive_ack": "keep_alive_ack",
    "tcp.analysis.zero_window": "zero_window",
    "tcp.analysis.zero_window_probe": "zero_window_probe",
    "tcp.analysis.zero_window_probe_ack": "zero_window_probe_ack",
    "tcp.analysis.window_full": "window_full",
}

# l4kit's note -> the tshark fields it corresponds to. tshark also sets its plain
# "retransmission" field on fast and spurious retransmissions.
OURS = {
    "retransmission": {"retransmission"},
    "fast retransmission": {"fast_retransmission", "retransmission"},
    "spurious retransmission": {"spurious_retransmission", "retransmission"},
    "out-of-order": {"out_of_order"},
    "window update": {"window_update"},
    "previous segment not captured": {"lost_segment"},
    "ACKed unseen segment": {"ack_lost_segment"},
    "keep-alive": {"keep_alive"},
    "keep-alive ACK": {"keep_alive_ack"},
    "zero window": {"zero_window"},
    "zero window probe": {"zero_window_probe"},
    "zero window probe ACK": {"zero_window_probe_ack"},
    "window full": {"window_full"},
}


def tshark_flags(path) -> dict[int, set[str]]:
    rows = tshark_fields(path, "frame.number", *FIELDS)
    out: dict[int, set[str]] = {}
    for row in rows:
        flags = set()
        for name, value in zip(FIELDS.values(), row[1:], strict=True):
            if value:
                flags.add(f"dup#{value}" if name == "dup" else name)
        out[int(row[0])] = flags
    return out


def our_flags(report) -> dict[int, set[str]]:
    out = {}
    for frame, notes in notes_by_frame(report).items():
        flags: set[str] = set()
        for note in notes:
            if note.startswith("duplicate ACK #"):
                flags.add("dup#" + note.rsplit("#", 1)[1])
            else:
                flags |= OURS.get(note, set())
        out[frame] = flags
    return out


def random_trace(seed: int, steps: int = 160) -> list:
    """A two-way exchange with every kind of anomaly, reproducible from ``seed``."""
    rng = random.Random(seed)
    conv = Conv(cisn=rng.getrandbits(32), sisn=rng.getrandbits(32))
    scale = rng.choice([None, 0, 2])
    options = [("MSS", 1460)] + ([("WScale", scale)] if scale is not None else [])
    conv.c("S", 0, win=65535, options=options)
    if rng.random() < 0.2:
        conv.c("S", 0, win=65535, options=options, dt=1.0)  # a retransmitted SYN
    conv.s("SA", 0, 1, win=65535, options=options)
    conv.c("A", 1, 1, win=512)
    nxt = [1, 1]  # next sequence number per side (client, server), relative
    acked = [1, 1]
    sent: list[list[tuple[int, int]]] = [[], []]
    window = [512, 512]
    for _ in range(steps):
        side = rng.randrange(2)
        other = 1 - side
        send = conv.c if side == 0 else conv.s
        dt = rng.choice([0.0002, 0.002, 0.05, 0.4])
        r = rng.random()
        if r < 0.35:
            length = rng.choice([1, 10, 100, 300])
            if rng.random() < 0.12:
                nxt[side] += length  # lost before the capture point
                continue
            ack = nxt[other] if rng.random() < 0.8 else acked[other]
            send("PA", nxt[side], ack, b"x" * length, win=window[side], dt=dt)
            sent[side].append((nxt[side], length))
            nxt[side] += length
        elif r < 0.45 and sent[side]:
            seq, length = rng.choice(sent[side])
            send("A", seq, nxt[other], b"r" * length, win=window[side], dt=dt)
        elif r < 0.52 and sent[other]:
            # duplicate ACKs, then (often) a quick retransmission of what they ask for
            hole = rng.choice(sent[other])[0]
            for _ in range(rng.randint(1, 4)):
                send("A", nxt[side], hole, win=window[side], dt=0.001)
            if rng.random() < 0.7:
                (conv.s if side == 0 else conv.c)(
                    "A", hole, nxt[side], b"f" * 50, win=window[other], dt=0.002
                )
        elif r < 0.68:
            if rng.random() < 0.25:
                window[side] = rng.choice([0, 0, 64, 256, 512, 4096])
            ack = rng.choice([nxt[other], acked[other]])
            send("A", nxt[side], ack, win=window[side], dt=dt)
            acked[other] = ack
        elif r < 0.75:
            send("A", nxt[side] - 1, nxt[other], b"" if rng.random() < 0.5 else b"k", win=window[side], dt=dt)
        elif r < 0.82:
            send(
                "PA", nxt[side], nxt[other], b"z", win=window[side], dt=dt
            )  # a probe if the peer's window is 0
        elif r < 0.9 and window[other]:
            # fill the peer's advertised window exactly
            room = window[other] << (scale or 0)
            length = (acked[side] + room) - nxt[side]
            if 0 < length <= 1400:
                send("PA", nxt[side], nxt[other], b"w" * length, win=window[side], dt=dt)
                nxt[side] += length
        else:
            send(
                "A", nxt[side], nxt[other], b"o" * 20, win=window[side], dt=0.0001
            )  # quick, possibly reordered
            nxt[side] += 20
    conv.c("FA", nxt[0], nxt[1], dt=0.01)
    if rng.random() < 0.5:
        conv.c("FA", nxt[0], nxt[1], dt=0.5)  # retransmitted FIN
    conv.s("FA", nxt[1], nxt[0] + 1, dt=0.01)
    conv.c("A", nxt[0] + 1, nxt[1] + 1, dt=0.01)
    return conv.packets


@needs_tshark
@pytest.mark.parametrize("seed", range(16))
def test_notes_match_tshark_frame_by_frame(tmp_path, seed):
    packets = random_trace(seed)
    path = write(tmp_path, packets)
    [report] = replay_packets(tmp_path, packets)
    expected = tshark_flags(path)
    got = our_flags(report)
    assert len(got) == len(expected) == len(packets)
    mismatches = {f: (expected[f], got[f]) for f in expected if expected[f] != got[f]}
    assert not mismatches, f"frame: (tshark, l4kit) {mismatches}"
    # The traces do exercise the notes (a generator that makes none would pass trivially).
    seen = set().union(*expected.values())
    assert {"retransmission", "lost_segment", "ack_lost_segment", "keep_alive"} <= seen


@needs_tshark
def test_every_note_kind_is_reached_across_the_seeds_and_agrees(tmp_path):
    seen: set[str] = set()
    for seed in range(16, 40):
        packets = random_trace(seed, steps=120)
        path = write(tmp_path, packets, f"s{seed}.pcap")
        [report] = replay_packets(tmp_path, packets)
        expected = tshark_flags(path)
        assert our_flags(report) == expected, f"seed {seed}"
        for flags in expected.values():
            seen |= {f.split("#")[0] for f in flags}
    assert seen >= set(FIELDS.values()), f"never exercised: {set(FIELDS.values()) - seen}"


# ---------------------------------------------------------------- rules on their own


def test_three_duplicate_acks_are_numbered_and_reset_when_the_ack_moves():
    a = SequenceAnalysis()
    a.segment(0, 0.0, 0x02, 100, 0, 0, 1000)  # SYN
    a.segment(1, 0.1, 0x12, 500, 101, 0, 1000)  # SYN-ACK
    a.segment(0, 0.2, 0x10, 101, 501, 0, 1000)
    assert a.segment(0, 0.3, 0x10, 101, 501, 0, 1000) == ("duplicate ACK #1",)
    assert a.segment(0, 0.4, 0x10, 101, 501, 0, 1000) == ("duplicate ACK #2",)
    a.segment(1, 0.5, 0x18, 501, 101, 10, 1000)  # data from the peer
    assert a.segment(0, 0.6, 0x10, 101, 511, 0, 1000) == ()  # the ACK moved: not a duplicate
    assert a.segment(0, 0.7, 0x10, 101, 511, 0, 1000) == ("duplicate ACK #1",)


def test_keep_alive_is_one_octet_before_the_next_sequence_number_and_not_a_retransmission():
    a = SequenceAnalysis()
    a.segment(0, 0.0, 0x02, 100, 0, 0, 1000)
    a.segment(1, 0.1, 0x12, 500, 101, 0, 1000)
    a.segment(0, 0.2, 0x18, 101, 501, 10, 1000)
    assert a.segment(0, 10.0, 0x10, 110, 501, 1, 1000) == ("keep-alive",)
    assert a.segment(1, 10.1, 0x10, 501, 111, 0, 1000) == ()


def test_scaled_window_makes_window_full_exact():
    # RFC 7323: both SYNs carry a window scale, so later windows are shifted.
    a = SequenceAnalysis()
    a.segment(0, 0.0, 0x02, 0, 0, 0, 65535)
    a.note_window_scale(0, 0x02, 3)
    a.segment(1, 0.1, 0x12, 0, 1, 0, 65535)
    a.note_window_scale(1, 0x12, 2)
    a.segment(0, 0.2, 0x10, 1, 1, 0, 100)  # client window 100 << 3 = 800
    assert a.segment(1, 0.3, 0x18, 1, 1, 800, 100) == ("window full",)


def test_syn_retransmitted_after_a_second_is_flagged(tmp_path):
    conv = Conv()
    conv.c("S", 0)
    conv.c("S", 0, dt=1.0)
    conv.s("SA", 0, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    assert notes_by_frame(report) == {1: (), 2: ("retransmission",), 3: ()}
    assert report.analysis == {"retransmission": 1}


def test_frames_carry_their_raw_window_while_analysis_uses_the_scaled_one(tmp_path):
    conv = Conv()
    conv.c("S", 0, win=65535, options=[("WScale", 7)])
    conv.s("SA", 0, 1, win=65535, options=[("WScale", 7)])
    conv.c("A", 1, 1, win=512)
    conv.c("A", 1, 1, win=512)
    [report] = replay_packets(tmp_path, conv.packets)
    assert [rec[7] for rec in report.rows] == [65535, 65535, 512, 512]
    assert notes_by_frame(report)[4] == ("duplicate ACK #1",)


def test_an_ipv4_frame_with_ethernet_padding_counts_only_the_segment(tmp_path):
    pkt = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S") / Raw(b"")
    frame = bytes(pkt) + b"\x00" * 6  # padded to the Ethernet minimum
    from scapy.utils import wrpcap

    path = tmp_path / "pad.pcap"
    wrpcap(str(path), [Ether(frame)])
    from test_replay_support import replay

    [report], summary = replay(path)
    assert report.c2s.payload == 0 and report.c2s.bytes == len(frame)
    assert summary.checksum["ok"] == 1

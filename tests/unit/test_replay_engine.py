"""The replay engine: conversations, roles, port reuse, selection, bounds, checksums."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap
from test_replay_support import DATA, Conv, needs_tshark, replay, replay_packets, tshark_fields, write

from l4kit.replay.engine import Replayer
from l4kit.wire import Segment, SeqNum, TcpFlags
from l4kit.wire.packet import encode_packet


def exchange(conv: Conv, request: bytes = b"toppage\n", reply: bytes = b"hello world\n") -> Conv:
    conv.handshake()
    conv.c("PA", 1, 1, request)
    conv.s("PA", 1, 1 + len(request), reply)
    return conv.normal_close_by_client(1 + len(request), 1 + len(reply))


def test_port_reuse_after_a_close_starts_a_new_connection(tmp_path):
    first = exchange(Conv(cisn=1000))
    second = exchange(Conv(cisn=900_000, sisn=77, t=first.t + 1))
    path = write(tmp_path, first.packets + second.packets)
    reports, summary = replay(path)
    assert [r.id for r in reports] == [0, 1]
    assert [r.packets for r in reports] == [len(first.packets), len(second.packets)]
    assert reports[1].rows[0][9] == ("port numbers reused",)
    assert summary.connections == 2


@needs_tshark
def test_port_reuse_splits_like_tshark_tcp_stream(tmp_path):
    first = exchange(Conv(cisn=1000))
    retry = Conv(cisn=1000, t=first.t + 1)
    retry.c("S", 0)  # the same ISN again: tshark keeps it in the first stream
    second = exchange(Conv(cisn=900_000, sisn=77, t=retry.t + 1))
    path = write(tmp_path, first.packets + retry.packets + second.packets)
    reports, _ = replay(path)
    streams = [int(row[0]) for row in tshark_fields(path, "tcp.stream")]
    ours = {}
    for r in reports:
        for rec in r.rows:
            ours[rec[0]] = r.id
    assert [ours[n] for n in range(1, len(streams) + 1)] == streams


def test_a_syn_ack_first_makes_its_receiver_the_client(tmp_path):
    conv = Conv()
    conv.s("SA", 0, 1)
    conv.c("A", 1, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    assert (report.client, report.server) == ("10.0.0.1:40000", "10.0.0.2:80")
    assert report.history.startswith("^")


@pytest.mark.parametrize(
    ("first_from_client", "client", "server"),
    [(True, ("10.0.0.1", 40000), ("10.0.0.2", 80)), (False, ("10.0.0.1", 40000), ("10.0.0.2", 80))],
)
def test_midstream_client_is_the_higher_port(tmp_path, first_from_client, client, server):
    conv = Conv(client=client, server=server)
    (conv.c if first_from_client else conv.s)("PA", 5, 5, b"x")
    [report] = replay_packets(tmp_path, conv.packets)
    assert report.client == "10.0.0.1:40000"
    assert report.history.startswith("^") == (not first_from_client)


def test_equal_ports_make_the_first_sender_the_client(tmp_path):
    conv = Conv(client=("10.0.0.9", 7000), server=("10.0.0.1", 7000))
    conv.c("PA", 5, 5, b"x")
    [report] = replay_packets(tmp_path, conv.packets)
    assert report.client == "10.0.0.9:7000"


def test_port_and_stream_select_connections_but_ids_count_all(tmp_path):
    a = exchange(Conv(client=("10.0.0.1", 40000), server=("10.0.0.2", 80)))
    b = exchange(Conv(client=("10.0.0.1", 40001), server=("10.0.0.2", 8888), t=a.t + 1))
    c = exchange(Conv(client=("10.0.0.1", 40002), server=("10.0.0.2", 80), t=b.t + 1))
    path = write(tmp_path, a.packets + b.packets + c.packets)
    reports, summary = replay(path, port=80)
    assert [r.id for r in reports] == [0, 2]
    assert (summary.connections, summary.shown) == (3, 2)
    reports, summary = replay(path, stream=1)
    assert [(r.id, r.server) for r in reports] == [(1, "10.0.0.2:8888")]
    reports, _ = replay(path, port=40002)
    assert [r.id for r in reports] == [2]


def test_max_rows_bounds_what_is_kept(tmp_path):
    conv = Conv().handshake()
    for i in range(50):
        conv.c("PA", 1 + i, 1, b"x")
    [report] = replay_packets(tmp_path, conv.packets, max_rows=10)
    assert len(report.rows) == 10
    assert report.rows_omitted == report.packets - 10 == 43
    assert report.c2s.packets == 52  # counts are never bounded


def _frame(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: str, payload: bytes = b""
) -> bytes:
    seg = Segment(
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=SeqNum(seq),
        ack=SeqNum(ack),
        flags=TcpFlags.parse(flags),
        payload=payload,
    )
    return b"\x00" * 12 + b"\x08\x00" + encode_packet(seg)


def test_memory_is_bounded_by_open_connections_not_by_the_capture():
    """3,000 short connections, one starting every 0.1 s of capture time: closed
    ones are finished once quiet for ``linger`` seconds, so at most a linger's
    worth of connections is ever held."""
    finished = []
    replayer = Replayer(finished.append, linger=10.0)
    most_open = 0
    n = 0
    for i in range(3000):
        t = i * 0.1
        cport = 10000 + i
        for j, (c2s, flags, payload) in enumerate(
            [(True, "S", b""), (False, "SA", b""), (True, "PA", b"q"), (False, "FA", b""), (True, "FA", b"")]
        ):
            src, dst, sport, dport = (
                ("10.0.0.1", "10.0.0.2", cport, 80) if c2s else ("10.0.0.2", "10.0.0.1", 80, cport)
            )
            n += 1
            replayer.feed(
                n, t + j * 0.001, 1, _frame(src, dst, sport, dport, 100 + j, 200 + j, flags, payload), 60
            )
        most_open = max(most_open, replayer.open_connections)
    assert len(finished) >= 2800  # finished while reading, not at the end
    summary = replayer.finish()
    assert len(finished) == summary.connections == 3000
    assert most_open <= 10.0 / 0.1 + 5


def test_one_flipped_checksum_byte_makes_exactly_one_bad(tmp_path):
    original = (DATA / "lo-kernel.pcap").read_bytes()
    _, before = replay(DATA / "lo-kernel.pcap")
    assert before.checksum["bad"] == 0
    # Frame 4 (client data): pcap header 24, three records before it, then its own
    # 16-byte record header, Ethernet 14, IPv4 20, and the TCP checksum at offset 16.
    offset = 24
    for _ in range(3):
        (caplen,) = struct.unpack_from("<I", original, offset + 8)
        offset += 16 + caplen
    checksum_at = offset + 16 + 14 + 20 + 16
    corrupted = bytearray(original)
    corrupted[checksum_at] ^= 0x01
    path = tmp_path / "one-bad.pcap"
    path.write_bytes(bytes(corrupted))
    reports, after = replay(path)
    assert after.checksum["bad"] == 1
    assert after.checksum["offloaded"] == before.checksum["offloaded"] - 1
    assert after.checksum["ok"] == before.checksum["ok"]
    bad = [(r.id, rec[0]) for r in reports for rec in r.rows if rec[8] == "bad"]
    assert bad == [(0, 4)]
    # The receiver drops it: Zeek records C and no data from the client (no D).
    assert reports[0].history.startswith("ShAC")


def test_kernel_loopback_checksums_are_offloaded_except_the_kernels_own_rst():
    reports, summary = replay(DATA / "lo-kernel.pcap")
    assert summary.checksum == {"ok": 1, "bad": 0, "offloaded": 17, "unverified": 0}
    [rst_frame] = [rec[0] for r in reports for rec in r.rows if rec[8] == "ok"]
    assert reports[1].rows[1][0] == rst_frame  # the refusal RST is sent fully checksummed


def test_ip_header_checksum_errors_are_shown_and_not_processed(tmp_path):
    conv = Conv().handshake()
    bad = conv.c("PA", 1, 1, b"data")
    bad[IP].chksum = 0x0BAD
    [report], summary = replay(write(tmp_path, conv.packets))
    assert summary.ip_checksum_bad == 1
    assert any("IPv4 header checksum" in n for n in report.rows[3][9])
    assert "D" not in report.history


def test_non_tcp_frames_are_counted_and_skipped(tmp_path):
    conv = exchange(Conv())
    extra = [
        Ether() / ARP(),
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=53) / Raw(b"q"),
    ]
    reports, summary = replay(write(tmp_path, extra + conv.packets))
    assert summary.packets == len(conv.packets) + 2
    assert summary.tcp_packets == len(conv.packets)
    assert summary.skipped == {"not-ip": 1, "not-tcp": 1}
    assert len(reports) == 1


def test_ipv6_connections_show_bracketed_endpoints(tmp_path):
    conv = exchange(Conv(client=("2001:db8::1", 40000), server=("2001:db8::2", 80)))
    [report] = replay_packets(tmp_path, conv.packets)
    assert (report.client, report.server, report.state) == ("[2001:db8::1]:40000", "[2001:db8::2]:80", "SF")
    assert report.checksum["ok"] == report.packets


def test_vlan_tagged_and_linux_cooked_captures_read_the_same(tmp_path):
    conv = exchange(Conv())
    plain, _ = replay(write(tmp_path, conv.packets, "plain.pcap"))
    tagged = [Ether() / Dot1Q(vlan=7) / p[IP] for p in conv.packets]
    cooked = [CookedLinuxV2(proto=0x0800) / p[IP] for p in conv.packets]
    for p, q, r in zip(conv.packets, tagged, cooked, strict=True):
        q.time = r.time = p.time
    wrpcap(str(tmp_path / "sll2.pcap"), cooked, linktype=276)
    for path in (write(tmp_path, tagged, "vlan.pcap"), tmp_path / "sll2.pcap"):
        reports, _ = replay(path)
        assert [(r.state, r.history, r.c2s.packets, r.s2c.packets) for r in reports] == [
            (r.state, r.history, r.c2s.packets, r.s2c.packets) for r in plain
        ]
        assert [rec[1:11] for rec in reports[0].rows] == [rec[1:11] for rec in plain[0].rows]


def test_relative_numbers_and_payload_heads(tmp_path):
    conv = exchange(Conv(cisn=0xFFFFFFF0, sisn=7))  # the client's sequence numbers wrap
    [report] = replay_packets(tmp_path, conv.packets)
    seqs = [(rec[2], rec[4], rec[5]) for rec in report.rows]
    assert seqs[:4] == [(0, 0, None), (1, 0, 1), (0, 1, 1), (0, 1, 1)]
    assert report.rows[3][10] == b"toppage\n"
    assert report.c2s.payload == 8 and report.s2c.payload == 12


def test_tcp_options_on_syns_do_not_disturb_the_decoder(tmp_path):
    conv = Conv()
    conv.c(
        "S", 0, options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    )
    conv.s("SA", 0, 1, options=[("MSS", 1460), ("WScale", 9)])
    conv.c("A", 1, 1, options=[("Timestamp", (2, 1))])
    [report] = replay_packets(tmp_path, conv.packets)
    assert report.history == "ShA"


def test_the_summary_counts_times(tmp_path):
    conv = exchange(Conv(t=100.0))
    _, summary = replay(write(tmp_path, conv.packets))
    assert summary.first_time == pytest.approx(100.01)
    assert summary.last_time == pytest.approx(conv.t)
    assert TCP in conv.packets[0]

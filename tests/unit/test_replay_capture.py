"""Reading captures: formats, cuts, bad input, the tcpdump filter pipe."""

from __future__ import annotations

import gzip
import shutil

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng
from test_replay_support import DATA

from l4kit.errors import CaptureError
from l4kit.replay.capture import EXIT_BAD_INPUT, CaptureReader

PACKETS = [
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    / IP(src="10.0.0.1", dst="10.0.0.2")
    / TCP(sport=40000 + i, dport=80 if i % 2 else 8888, flags="S")
    / Raw(b"x" * i)
    for i in range(6)
]
for i, p in enumerate(PACKETS):
    p.time = 1_700_000_000 + i / 8  # exact in binary: the round trip through pcap is lossless


def frames(path, **kw):
    with CaptureReader(path, **kw) as reader:
        return list(reader), reader


@pytest.fixture
def pcap(tmp_path):
    path = tmp_path / "c.pcap"
    wrpcap(str(path), PACKETS)
    return path


@pytest.fixture
def pcapng(tmp_path):
    path = tmp_path / "c.pcapng"
    wrpcapng(str(path), PACKETS)
    return path


def test_pcap_and_pcapng_give_the_same_frames(pcap, pcapng):
    a, ra = frames(pcap)
    b, rb = frames(pcapng)
    assert a == b
    assert [f[3] for f in a] == [bytes(p) for p in PACKETS]
    assert [f[0] for f in a] == list(range(1, 7))
    assert [f[1] for f in a] == [float(p.time) for p in PACKETS]
    assert {f[2] for f in a} == {1}
    assert (ra.is_pcapng, rb.is_pcapng) == (False, True)
    assert not ra.truncated and not rb.truncated


def test_gzip_compressed_capture(tmp_path, pcap):
    path = tmp_path / "c.pcap.gz"
    path.write_bytes(gzip.compress(pcap.read_bytes()))
    assert frames(path)[0] == frames(pcap)[0]


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("cut_from_end", [1, 10, 20, 30])
def test_a_cut_capture_is_read_up_to_the_cut_and_flagged(tmp_path, pcap, pcapng, kind, cut_from_end):
    whole = (pcap if kind == "pcap" else pcapng).read_bytes()
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(whole[:-cut_from_end])
    got, reader = frames(path)
    assert reader.truncated
    assert reader.truncation_detail
    assert [f[3] for f in got] == [bytes(p) for p in PACKETS[: len(got)]]
    assert len(got) == 5  # every record before the last one


def test_a_capture_cut_inside_a_record_header_is_flagged(tmp_path, pcap):
    whole = pcap.read_bytes()
    first_record = 24 + 16 + len(PACKETS[0])
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[: first_record + 7])  # 7 bytes of the second record's header
    got, reader = frames(path)
    assert len(got) == 1 and reader.truncated


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("dir", "is a directory"),
        (b"", "empty file"),
        (b"hello\n" * 50, "not a pcap"),
        (b"\xd4\xc3\xb2\xa1\x02", "not a pcap"),  # a pcap magic and too little after it
        (bytes(range(256)) * 4, "not a pcap"),
    ],
    ids=["missing", "directory", "empty", "text", "short-header", "garbage"],
)
def test_bad_input_is_one_line_with_exit_code_2(tmp_path, content, message):
    path = tmp_path / "input.pcap"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptureError) as info:
        CaptureReader(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_unsupported_link_type_is_refused(tmp_path):
    path = tmp_path / "wifi.pcap"
    wrpcap(str(path), [Raw(b"\x00" * 30)], linktype=105)  # IEEE 802.11
    with pytest.raises(CaptureError) as info:
        CaptureReader(path)
    assert "unsupported link type" in str(info.value) and "linktype 105" in str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT


needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")


@needs_tcpdump
def test_bpf_filter_through_tcpdump(pcap, pcapng):
    for path in (pcap, pcapng):
        got, reader = frames(path, bpf="tcp dst port 80")
        assert [f[3] for f in got] == [bytes(p) for p in PACKETS if p[TCP].dport == 80]
        assert not reader.truncated


@needs_tcpdump
def test_bpf_filter_that_matches_nothing_is_not_an_error(pcap):
    got, _ = frames(pcap, bpf="udp")
    assert got == []


@needs_tcpdump
def test_bad_bpf_filter_is_one_line_with_exit_code_2(pcap):
    with pytest.raises(CaptureError) as info:
        CaptureReader(pcap, bpf="tcp and and")
    assert "--filter" in str(info.value) and "syntax error" in str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT


@needs_tcpdump
def test_bpf_filter_on_a_cut_capture_reports_the_cut(tmp_path, pcap):
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap.read_bytes()[:-3])
    got, reader = frames(path, bpf="tcp")
    assert len(got) == 5 and reader.truncated and "truncated" in reader.truncation_detail


def test_committed_captures_are_small_and_readable():
    for path in DATA.glob("*.pcap*"):
        assert path.stat().st_size < 50_000
        got, reader = frames(path)
        assert got and not reader.truncated

"""Reading captures: formats, cuts, bad input, the tcpdump filter pipe."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import sys

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng
from test_replay_support import DATA, needs_tshark

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


def matched(path, bpf, **kw):
    """Every frame (the filter hides none from the analysis) and those it matches."""
    with CaptureReader(path, bpf=bpf, **kw) as reader:
        assert reader.frame_filter is not None
        every = list(reader)
        return every, [f for f in every if reader.frame_filter(f[3])], reader


@needs_tcpdump
def test_bpf_filter_through_tcpdump(tmp_path, pcap, pcapng):
    gzipped = tmp_path / "c.pcapng.gz"
    gzipped.write_bytes(gzip.compress(pcapng.read_bytes()))
    for path in (pcap, pcapng, gzipped):
        every, got, reader = matched(path, "tcp dst port 80")
        assert [f[3] for f in every] == [bytes(p) for p in PACKETS]
        assert [f[3] for f in got] == [bytes(p) for p in PACKETS if p[TCP].dport == 80]
        assert [f[0] for f in got] == [n for n, p in enumerate(PACKETS, 1) if p[TCP].dport == 80]
        assert not reader.truncated


@needs_tcpdump
def test_bpf_filter_that_matches_nothing_is_not_an_error(pcap):
    every, got, _ = matched(pcap, "udp")
    assert got == [] and len(every) == len(PACKETS)


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
    every, got, reader = matched(path, "tcp")
    assert len(every) == len(got) == 5 and reader.truncated and "cut" in reader.truncation_detail


def test_standard_input_is_read_like_a_file(pcap, pcapng, monkeypatch):
    """``-`` reads standard input: pcap, pcapng, gzip'd too, read once (a pipe cannot seek)."""
    for data in (pcap.read_bytes(), pcapng.read_bytes(), gzip.compress(pcapng.read_bytes())):
        read, write = os.pipe()
        with os.fdopen(write, "wb") as w:
            w.write(data)  # fits in the pipe's buffer
        with os.fdopen(read, "rb") as r:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(r))
            got, reader = frames("-")
        assert [f[3] for f in got] == [bytes(p) for p in PACKETS]
        assert reader.name == "standard input"


def test_committed_captures_are_small_and_readable():
    for path in DATA.glob("*.pcap*"):
        assert path.stat().st_size < 50_000
        got, reader = frames(path)
        assert got and not reader.truncated


# ---------------------------------------------------------------- the formats, in detail
#
# The reader parses pcap and pcapng itself; these captures are written by Scapy or
# block by block here, and read back both by this reader and by Scapy's readers
# (and by tshark where Scapy's reader differs from the format's specification).


def _scapy_frames(path):
    """(data, time, linktype, wirelen) of every frame, by Scapy's raw readers."""
    from scapy.utils import RawPcapNgReader, RawPcapReader

    result = []
    last = 0.0
    with RawPcapReader(str(path)) as reader:
        for data, meta in reader:
            if isinstance(reader, RawPcapNgReader):
                if meta.tshigh is not None:  # a Simple Packet Block has no time: the last one stays
                    last = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
                result.append((data, last, meta.linktype, meta.wirelen))
            else:
                scale = 1e-9 if reader.nano else 1e-6
                result.append((data, meta.sec + meta.usec * scale, reader.linktype, meta.wirelen))
    return result


def _ours(path):
    got, reader = frames(path)
    assert not reader.truncated, reader.truncation_detail
    assert [f[0] for f in got] == list(range(1, len(got) + 1))
    return [(f[3], f[1], f[2], f[4]) for f in got]


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_nanoseconds_read_as_scapy_reads_them(tmp_path, endianness, nano):
    from scapy.utils import PcapWriter

    path = tmp_path / "c.pcap"
    with PcapWriter(str(path), endianness=endianness, nano=nano, sync=True) as writer:
        for p in PACKETS:
            writer.write(p)
    assert _ours(path) == _scapy_frames(path)
    assert len(_ours(path)) == len(PACKETS)


def _block(endian, blocktype, body):
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(endian + "II", blocktype, length) + body + struct.pack(endian + "I", length)


def _option(endian, code, value):
    return struct.pack(endian + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _shb(endian):
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(endian, 4, b"l4kit test") + b"\0" * 4
    return _block(endian, 0x0A0D0D0A, body)


def _idb(endian, linktype, tsresol=None, snaplen=262144):
    body = struct.pack(endian + "HHI", linktype, 0, snaplen)
    if tsresol is not None:
        body += _option(endian, 9, bytes([tsresol])) + _option(endian, 0, b"")
    return _block(endian, 1, body)


def _epb(endian, interface, stamp, data, wirelen=None, options=b""):
    body = struct.pack(
        endian + "IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(data), wirelen or len(data)
    )
    return _block(endian, 6, body + data + b"\x00" * (-len(data) % 4) + options)


def _spb(endian, data, wirelen=None):
    return _block(endian, 3, struct.pack(endian + "I", wirelen or len(data)) + data)


def _pb(endian, interface, stamp, data):
    head = struct.pack(endian + "HHIIII", interface, 0, stamp >> 32, stamp & 0xFFFFFFFF, len(data), len(data))
    return _block(endian, 2, head + data)


FRAME_A = bytes(PACKETS[1])
FRAME_B = bytes(PACKETS[2])
RAW_IP = bytes(PACKETS[3].payload)  # the IP packet, for a LINKTYPE_RAW interface


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_blocks_interfaces_and_resolutions_read_as_scapy_reads_them(tmp_path, endian):
    """Two interfaces (Ethernet in microseconds, raw IP in 2**-20 s), Enhanced
    Packet Blocks with options, an obsolete Packet Block, a Simple Packet Block (no
    timestamp: the previous one stays), a block type nobody knows, nanoseconds."""
    blocks = [
        _shb(endian),
        _idb(endian, 1),
        _idb(endian, 101, tsresol=0x80 | 20),
        _epb(
            endian,
            0,
            1_700_000_000_123_456,
            FRAME_A,
            options=_option(endian, 1, b"a comment") + _option(endian, 0, b""),
        ),
        _block(endian, 0x0BAD, b"unknown block type"),
        _epb(endian, 1, (1_700_000_001 << 20) + 12345, RAW_IP, wirelen=len(RAW_IP) + 100),
        _pb(endian, 0, 1_700_000_002_000_001, FRAME_B),
        _spb(endian, FRAME_A),
        _idb(endian, 1, tsresol=9),
        _epb(endian, 2, 1_700_000_003_000_000_007, FRAME_B),
    ]
    path = tmp_path / "c.pcapng"
    path.write_bytes(b"".join(blocks))
    ours = _ours(path)
    assert ours == _scapy_frames(path)
    assert [(len(f[0]), f[2]) for f in ours] == [
        (len(FRAME_A), 1),
        (len(RAW_IP), 101),
        (len(FRAME_B), 1),
        (len(FRAME_A), 1),
        (len(FRAME_B), 1),
    ]
    assert ours[3][1] == ours[2][1]  # the Simple Packet Block keeps the previous time
    assert ours[1][3] == len(RAW_IP) + 100  # the original length, not the captured one


@needs_tshark
def test_pcapng_sections_start_their_own_interfaces_as_tshark_reads_them(tmp_path):
    """A second section (here big-endian, after a little-endian one, as ``cat a.pcapng
    b.pcapng`` makes) numbers its interfaces from 0 again; a Simple Packet Block on an
    interface with snap length 0 (no limit) keeps the whole frame."""
    first = [_shb("<"), _idb("<", 1), _epb("<", 0, 1_700_000_000_000_000, FRAME_A)]
    second = [
        _shb(">"),
        _idb(">", 101, tsresol=9, snaplen=0),
        _epb(">", 0, 1_700_000_001_000_000_000, RAW_IP),
        _spb(">", RAW_IP),
    ]
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(b"".join(first + second))
    ours = _ours(path)
    rows = tshark_rows(path, "frame.len", "frame.cap_len", "frame.time_epoch")
    assert [(len(f[0]), f[3]) for f in ours] == [(int(r[1]), int(r[0])) for r in rows]
    assert [f[2] for f in ours] == [1, 101, 101]
    assert [f[0] for f in ours] == [FRAME_A, RAW_IP, RAW_IP]
    assert [round(f[1], 6) for f in ours[:2]] == [round(float(r[2]), 6) for r in rows[:2]]


def tshark_rows(path, *fields):
    import subprocess

    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_a_record_longer_than_any_frame_keeps_its_start_and_the_next_record_reads(tmp_path):
    big = 300_000
    records = [
        struct.pack("<IIII", 1, 0, len(FRAME_A), len(FRAME_A)) + FRAME_A,
        struct.pack("<IIII", 2, 0, big, big) + bytes(range(256)) * (big // 256) + bytes(big % 256),
        struct.pack("<IIII", 3, 0, len(FRAME_B), len(FRAME_B)) + FRAME_B,
    ]
    path = tmp_path / "big.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + b"".join(records))
    got, reader = frames(path)
    assert not reader.truncated
    assert [f[3] for f in got] == [FRAME_A, (bytes(range(256)) * (big // 256))[: 1 << 18], FRAME_B]
    assert [f[4] for f in got] == [len(FRAME_A), big, len(FRAME_B)]


def test_a_cut_gzip_stream_is_read_up_to_the_cut_and_flagged(tmp_path, pcap):
    whole = gzip.compress(pcap.read_bytes() * 1)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(whole[: len(whole) - 12])  # the gzip trailer and the end of the data
    got, reader = frames(path)
    assert reader.truncated and "compressed" in reader.truncation_detail
    assert [f[3] for f in got] == [bytes(p) for p in PACKETS[: len(got)]]


def test_a_pcapng_block_with_mismatched_lengths_stops_the_reading_and_is_flagged(tmp_path, pcapng):
    data = bytearray(pcapng.read_bytes())
    data[-4] ^= 0x01  # the last block's trailing length
    path = tmp_path / "bad-block.pcapng"
    path.write_bytes(bytes(data))
    got, reader = frames(path)
    assert len(got) == len(PACKETS) - 1
    assert reader.truncated and "malformed block" in reader.truncation_detail


def test_large_captures_are_read_in_chunks(tmp_path, monkeypatch):
    """Records that straddle the reader's chunk boundary come out whole."""
    from l4kit.replay import capture

    monkeypatch.setattr(capture, "CHUNK", 97)
    path = tmp_path / "c.pcap"
    wrpcap(str(path), PACKETS * 20)
    assert [f[3] for f in frames(path)[0]] == [bytes(p) for p in PACKETS * 20]
    path = tmp_path / "c.pcapng"
    wrpcapng(str(path), PACKETS * 20)
    assert [f[3] for f in frames(path)[0]] == [bytes(p) for p in PACKETS * 20]


def test_time_digits_follow_the_captures_timestamp_resolution(tmp_path, pcap):
    """Microseconds (pcap's usual magic, pcapng's default if_tsresol, or coarser): 6
    decimals; nanoseconds (pcap's other magic, a finer if_tsresol): 9."""
    assert frames(pcap)[1].time_digits == 6
    nano = tmp_path / "nano.pcap"
    wrpcap(str(nano), PACKETS, nano=True)
    assert nano.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    assert frames(nano)[1].time_digits == 9
    for tsresol, digits in ((None, 6), (6, 6), (3, 6), (9, 9), (0x80 | 20, 9)):
        path = tmp_path / f"res-{tsresol}.pcapng"
        path.write_bytes(b"".join([_shb("<"), _idb("<", 1, tsresol=tsresol), _epb("<", 0, 10**15, FRAME_A)]))
        assert frames(path)[1].time_digits == digits, tsresol

"""The --pcap writer thread: a classic pcap that Scapy and tshark read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from l4kit.errors import ConfigError
from l4kit.live.pcap import PcapWriterThread


def frames() -> list[bytes]:
    base = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / IP(src="127.0.0.1", dst="127.0.0.1")
    return [
        bytes(base / TCP(sport=40000, dport=8888, flags="S", seq=1)),
        bytes(base / TCP(sport=8888, dport=40000, flags="SA", seq=7, ack=2)),
        bytes(base / TCP(sport=40000, dport=8888, flags="PA", seq=2, ack=8) / b"toppage\n"),
    ]


def test_frames_come_back_in_order_with_their_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    writer = PcapWriterThread(path)
    stamps = [1_700_000_000.25, 1_700_000_000.5, 1_700_000_001.999999]
    for stamp, frame in zip(stamps, frames(), strict=True):
        writer.write(stamp, frame)
    writer.close()
    writer.close()  # idempotent
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == frames()
    assert [float(p.time) for p in packets] == pytest.approx(stamps, abs=1e-6)
    assert writer.frames == 3


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_tshark_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    writer = PcapWriterThread(path)
    for i, frame in enumerate(frames()):
        writer.write(1_700_000_000 + i, frame)
    writer.close()
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "tcp.flags.str", "-e", "tcp.len"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [r[1] for r in rows] == ["0", "0", "8"]
    assert len(rows) == 3


def test_an_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create it: No such file or directory"):
        PcapWriterThread(tmp_path / "no" / "such" / "dir.pcap")

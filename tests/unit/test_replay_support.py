"""Helpers for the replay tests (no tests here): build captures with Scapy, replay them.

Captures are built with Scapy (an independent encoder), written with ``wrpcap``
and read back through the whole replay path (capture reader, link decoder,
fast decoder, engine), so every test exercises what the command does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from l4kit.replay.capture import CaptureReader
from l4kit.replay.engine import Replayer
from l4kit.replay.model import ConnectionReport, ReplaySummary

DATA = Path(__file__).resolve().parent.parent / "data"

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


@dataclass
class Conv:
    """A TCP conversation written as a packet trace: ``c(...)`` from the client,
    ``s(...)`` from the server, sequence numbers relative to each side's ISN."""

    client: tuple[str, int] = ("10.0.0.1", 40000)
    server: tuple[str, int] = ("10.0.0.2", 80)
    cisn: int = 1000
    sisn: int = 5000
    t: float = 1_700_000_000.0
    packets: list[Packet] = field(default_factory=list)

    def _add(
        self,
        from_client: bool,
        flags: str,
        seq: int,
        ack: int,
        data: bytes,
        win: int,
        dt: float,
        **tcp: object,
    ) -> Packet:
        (src, sport), (dst, dport) = (self.client, self.server) if from_client else (self.server, self.client)
        base, peer = (self.cisn, self.sisn) if from_client else (self.sisn, self.cisn)
        ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
        pkt = (
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # explicit: no neighbour lookup
            / ip
            / TCP(
                sport=sport,
                dport=dport,
                flags=flags,
                seq=(base + seq) % 2**32,
                ack=(peer + ack) % 2**32 if "A" in flags else 0,
                window=win,
                **tcp,
            )
        )
        if data:
            pkt = pkt / Raw(data)
        self.t += dt
        pkt.time = self.t
        self.packets.append(pkt)
        return pkt

    def c(
        self,
        flags: str,
        seq: int,
        ack: int = 0,
        data: bytes = b"",
        win: int = 502,
        dt: float = 0.01,
        **tcp: object,
    ):
        return self._add(True, flags, seq, ack, data, win, dt, **tcp)

    def s(
        self,
        flags: str,
        seq: int,
        ack: int = 0,
        data: bytes = b"",
        win: int = 502,
        dt: float = 0.01,
        **tcp: object,
    ):
        return self._add(False, flags, seq, ack, data, win, dt, **tcp)

    def handshake(self) -> Conv:
        self.c("S", 0)
        self.s("SA", 0, 1)
        self.c("A", 1, 1)
        return self

    def normal_close_by_client(self, cseq: int = 1, sseq: int = 1) -> Conv:
        self.c("FA", cseq, sseq)
        self.s("FA", sseq, cseq + 1)
        self.c("A", cseq + 1, sseq + 1)
        return self


def write(tmp_path: Path, packets: list[Packet], name: str = "capture.pcap") -> Path:
    path = tmp_path / name
    wrpcap(str(path), packets)
    return path


def replay(path: Path, **options: object) -> tuple[list[ConnectionReport], ReplaySummary]:
    """All finished reports (sorted by id) and the summary."""
    reports: list[ConnectionReport] = []
    replayer = Replayer(reports.append, file=str(path), **options)  # type: ignore[arg-type]
    with CaptureReader(path) as capture:
        for frame in capture:
            replayer.feed(*frame)
    summary = replayer.finish()
    return sorted(reports, key=lambda r: r.id), summary


def replay_packets(tmp_path: Path, packets: list[Packet], **options: object) -> list[ConnectionReport]:
    return replay(write(tmp_path, packets), **options)[0]


def notes_by_frame(report: ConnectionReport) -> dict[int, tuple[str, ...]]:
    return {rec[0]: rec[9] for rec in report.rows}


def tshark_fields(path: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    """One row per frame of ``tshark -T fields`` (runs without root)."""
    argv = ["tshark", "-r", str(path), *extra, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


_IMPORTS_OF_A_REPLAY = """\
import io, sys, contextlib
from l4kit.cli import main
watched = set(sys.argv[3].split())
sys.argv = ['l4kit', 'replay', sys.argv[1], '--format', sys.argv[2]]
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out): main()
except SystemExit as exc: assert not exc.code, exc.code
assert out.getvalue(), 'no output'
print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & watched)))
"""


def imported_by_replay(path: Path, fmt: str, watched: set[str]) -> list[str]:
    """Which of the ``watched`` top-level packages ``l4kit replay PATH --format FMT``
    imports, in a fresh interpreter: start-up is part of every replay's time."""
    argv = [sys.executable, "-c", _IMPORTS_OF_A_REPLAY, str(path), fmt, " ".join(sorted(watched))]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout.split()


def preview_heads() -> list[bytes]:
    """Payload heads whose preview text is easy to get wrong: every octet alone, each
    beside a backslash and both quotes, and runs that reach past PREVIEW_BYTES."""
    from l4kit.replay.model import PREVIEW_BYTES

    tricky = b"\\'\"\n\r\t\x00\x7f\x80\xff a"
    heads = [bytes([b]) for b in range(256)]
    heads += [bytes([b]) + t for b in range(256) for t in (b"\\", b"'", b'"')]
    heads += [tricky, tricky * 4, bytes(range(256))[: PREVIEW_BYTES + 1]]
    return heads

"""The offload rule on real kernel captures (docs/design.md, loopback trap 5).

Inside a namespace made for the test, tcpdump captures ``lo`` while the
kernel's own TCP carries a short conversation (Python sockets, IPv4 and, where
the namespace has ``::1``, IPv6). Every segment the kernel sent must classify as
``OFFLOADED`` and none as ``BAD``; one flipped checksum octet must give exactly
one ``BAD``. tshark is the independent referee for the arithmetic: the checksum
it calculates for each captured segment must be the one l4kit computes, and
after l4kit completes the checksums tshark must call all of them good.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.utils import RawPcapReader, RawPcapWriter
from scapy.utils import checksum as scapy_checksum

from l4kit.checksum import ChecksumStatus, tcp_checksum
from l4kit.wire import Segment, decode_packet
from namespaces import Tcpdump

pytestmark = pytest.mark.live

ETHERTYPE_IPV4 = b"\x08\x00"
ETHERTYPE_IPV6 = b"\x86\xdd"
LINKTYPE_ETHERNET = 1

# The kernel's TCP, both ends in one process: connect, request, reply, close (client first).
CONVERSATION = r"""
import socket, sys
def talk(family, address):
    server = socket.socket(family)
    server.bind((address, 0))
    server.listen()
    client = socket.create_connection(server.getsockname()[:2], timeout=10)
    accepted, _ = server.accept()
    client.sendall(b"toppage\n")
    assert accepted.recv(100) == b"toppage\n"
    accepted.sendall(b"hello world\n")
    assert client.recv(100) == b"hello world\n"
    client.close()
    assert accepted.recv(100) == b""
    accepted.close()
    server.close()
talk(socket.AF_INET, "127.0.0.1")
if "v6" in sys.argv:
    talk(socket.AF_INET6, "::1")
"""


@dataclass(frozen=True)
class CapturedFrame:
    frame: bytes
    ip_offset: int

    @property
    def packet(self) -> bytes:
        return self.frame[self.ip_offset :]


def read_tcp_frames(pcap: Path) -> list[CapturedFrame]:
    """The Ethernet frames of the capture that carry IPv4/IPv6 (lo's link type is Ethernet)."""
    frames = []
    reader = RawPcapReader(str(pcap))
    try:
        assert reader.linktype == LINKTYPE_ETHERNET
        for frame, _meta in reader:
            if frame[12:14] in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
                frames.append(CapturedFrame(frame, 14))
    finally:
        reader.close()
    return frames


def write_frames(pcap: Path, frames: list[bytes]) -> None:
    writer = RawPcapWriter(str(pcap), linktype=LINKTYPE_ETHERNET, sync=True)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()


def tcp_offset(packet: bytes) -> int:
    """Where TCP starts in a packet the kernel sent here (no options, no extension headers)."""
    return 20 if packet[0] >> 4 == 4 else 40


def addresses(packet: bytes) -> tuple[bytes, bytes]:
    return (packet[12:16], packet[16:20]) if packet[0] >> 4 == 4 else (packet[8:24], packet[24:40])


def wait_until_stable(path: Path, settle: float = 0.3, limit: float = 5.0) -> None:
    """Give tcpdump time to write the last frames: until the file stops growing (bounded)."""
    deadline = time.monotonic() + limit
    size = -1
    while time.monotonic() < deadline:
        current = path.stat().st_size if path.exists() else 0
        if current == size:
            return
        size = current
        time.sleep(settle)


@pytest.fixture
def kernel_capture(netns: Any, tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """A pcap of ``lo`` in ``netns`` (the live conftest's namespace) while the kernel's TCP talks;
    yields (path, whether IPv6 was captured too)."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    pcap = tmp_path / "lo.pcap"
    has_ipv6 = "::1" in netns.run(["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    capture = Tcpdump(netns, pcap, "tcp")
    try:
        netns.python(CONVERSATION, *(["v6"] if has_ipv6 else []), timeout=30)
        wait_until_stable(pcap)
    finally:
        closing = capture.stop()
    assert Tcpdump.kernel_dropped(closing) == 0, closing
    yield pcap, has_ipv6


def decode_all(pcap: Path) -> list[Segment]:
    return [decode_packet(f.packet) for f in read_tcp_frames(pcap)]


def test_every_kernel_segment_on_lo_is_offloaded(kernel_capture: tuple[Path, bool]) -> None:
    pcap, has_ipv6 = kernel_capture
    segments = decode_all(pcap)
    # Per address family at least SYN, SYN-ACK, ACK, request, reply, FIN, FIN, ACK (the kernel
    # may fold a delayed ACK into the next data or FIN, so there can be more, never fewer).
    assert len(segments) >= (16 if has_ipv6 else 8), [str(s) for s in segments]
    statuses = {s.checksum for s in segments}
    assert statuses == {ChecksumStatus.OFFLOADED}, [f"{s} {s.checksum}" for s in segments]
    assert {"S", "SA", "A", "PA", "FA"} <= {s.flags.letters for s in segments}
    assert {s.is_ipv6 for s in segments} == ({False, True} if has_ipv6 else {False})


def test_tshark_calculates_the_checksums_l4kit_calculates(kernel_capture: tuple[Path, bool]) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    pcap, _ = kernel_capture
    frames = read_tcp_frames(pcap)

    fields = ["-e", "tcp.checksum", "-e", "tcp.checksum.status", "-e", "tcp.checksum_calculated"]

    def tshark_fields(path: Path) -> list[list[str]]:
        out = subprocess.run(
            ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-T", "fields", *fields],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines()]

    rows = tshark_fields(pcap)
    assert len(rows) == len(frames)
    completed = []
    for frame, (field, status, calculated) in zip(frames, rows, strict=True):
        packet = frame.packet
        offset = tcp_offset(packet)
        segment = packet[offset:]
        zeroed = segment[:16] + b"\x00\x00" + segment[18:]
        ours = tcp_checksum(*addresses(packet), zeroed)
        assert int(field, 16) == int.from_bytes(segment[16:18], "big")
        assert status == "0"  # tshark, unaware of offload, calls the partial sums bad
        assert int(calculated, 16) == ours
        fixed = packet[: offset + 16] + ours.to_bytes(2, "big") + packet[offset + 18 :]
        completed.append(frame.frame[: frame.ip_offset] + fixed)

    # Completed by l4kit, the same segments are good for tshark and OK for l4kit.
    completed_pcap = pcap.with_name("completed.pcap")
    write_frames(completed_pcap, completed)
    assert {row[1] for row in tshark_fields(completed_pcap)} == {"1"}
    assert {s.checksum for s in decode_all(completed_pcap)} == {ChecksumStatus.OK}


def test_one_flipped_checksum_octet_gives_exactly_one_bad(kernel_capture: tuple[Path, bool]) -> None:
    pcap, _ = kernel_capture
    frames = read_tcp_frames(pcap)
    victim = len(frames) // 2
    packet = bytearray(frames[victim].packet)
    at = tcp_offset(bytes(packet)) + 16
    # Flip the high octet, unless that happens to produce the correct checksum (Scapy decides).
    src, dst = addresses(bytes(packet))
    family_pseudo = src + dst + (b"\x00\x06" if len(src) == 4 else b"\x00\x00\x00\x06")
    length = len(packet) - (at - 16)
    pseudo = family_pseudo + (length.to_bytes(2, "big") if len(src) == 4 else length.to_bytes(4, "big"))
    zeroed = bytes(packet[at - 16 : at]) + b"\x00\x00" + bytes(packet[at + 2 :])
    correct = scapy_checksum(pseudo + zeroed)
    packet[at] ^= 0xFF
    if int.from_bytes(packet[at : at + 2], "big") == correct:
        packet[at] ^= 0xFF
        packet[at + 1] ^= 0xFF
    rewritten = [f.frame for f in frames]
    rewritten[victim] = frames[victim].frame[: frames[victim].ip_offset] + bytes(packet)
    flipped_pcap = pcap.with_name("flipped.pcap")
    write_frames(flipped_pcap, rewritten)

    statuses = [s.checksum for s in decode_all(flipped_pcap)]
    assert statuses.count(ChecksumStatus.BAD) == 1
    assert statuses[victim] is ChecksumStatus.BAD
    assert statuses.count(ChecksumStatus.OFFLOADED) == len(statuses) - 1

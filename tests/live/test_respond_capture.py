"""What the responder put on the wire, judged by tcpdump and tshark (the reference dissector)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from scapy.utils import RawPcapReader

from namespaces import Namespace, Tcpdump, captured_frames, late_client_segments

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        shutil.which("tshark") is None or shutil.which("tcpdump") is None, reason="tshark+tcpdump"
    ),
]

GOOD = "1"  # tshark's checksum.status value string: 0 Bad, 1 Good, 2 Unverified


def tshark(path: Path, *fields: str) -> list[list[str]]:
    done = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
         "-T", "fields", "-E", "separator=|", *(x for f in fields for x in ("-e", f))],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [line.split("|") for line in done.stdout.splitlines()]


def frames(path: Path) -> Counter[bytes]:
    return Counter(bytes(data) for data, _meta in RawPcapReader(str(path)))


def traffic(ns: Namespace) -> None:
    assert ns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    assert ns.clients(5, b"ping\n").replies == {b"pong\n": 5}
    together = ns.clients(5, b"help\n", parallel=5)
    assert together.outcomes == {"ok": 5} and all(r.startswith(b"commands:") for r in together.replies)


@pytest.mark.parametrize("codec", ["scapy", "fast"])
def test_tshark_finds_every_responder_checksum_correct_and_nothing_to_flag(
    netns: Namespace, tmp_path: Path, codec: str
) -> None:
    capture = tmp_path / "tcpdump.pcap"
    own = tmp_path / "own.pcap"
    tcpdump = Tcpdump(netns, capture, "tcp port 8888")
    responder = netns.respond("--quiet", "--pcap", str(own), "--codec", codec)
    traffic(netns)
    code, output = responder.stop()
    assert code == 0, output
    assert "WARNING" not in output  # Scapy's own chatter (it once guessed at a send-only socket's link type)
    expected = sum(frames(own).values())
    closing = tcpdump.stop(until=lambda path: captured_frames(path) >= expected)
    assert Tcpdump.kernel_dropped(closing) == 0, closing

    rows = tshark(
        capture, "tcp.srcport", "ip.checksum.status", "tcp.checksum.status", "tcp.analysis.flags",
        "frame.len", "ip.len", "tcp.analysis.duplicate_ack",
    )  # fmt: skip
    server = [r for r in rows if r[0] == "8888"]
    assert len(server) >= 7 * 4  # SYN-ACK, data, FIN, last ACK for each of 7+ connections
    assert all(r[1] == GOOD and r[2] == GOOD for r in server), server
    # Nothing to flag (no retransmission, window problem, ...) but the duplicate ACKs
    # that answer client segments loopback delivered late (namespaces.late_client_segments).
    flagged = [r for r in server if r[3]]
    assert all(r[6].split(",")[0] == "1" and int(r[5]) == 40 for r in flagged), flagged
    assert len(flagged) <= late_client_segments(own), flagged
    # Not one byte after the IP packet: a reused send buffer once leaked the previous
    # reply's payload as an Ethernet trailer behind pure ACKs.
    assert [r for r in server if int(r[4]) != int(r[5]) + 14] == []
    # The clients' segments are the kernel's, with the partial checksum of loopback
    # offload (docs/design.md, loopback trap 5): tshark calls them bad, l4kit counted them offloaded.
    client = [r for r in rows if r[0] != "8888"]
    assert client and all(r[2] != GOOD for r in client)
    assert f"checksums offloaded {len(client)}" in " ".join(output.split())

    # l4kit's own --pcap holds exactly the frames tcpdump saw, in and out.
    assert frames(own) == frames(capture)


def test_pcap_is_complete_after_sigterm(netns: Namespace, tmp_path: Path) -> None:
    own = tmp_path / "own.pcap"
    responder = netns.respond("--quiet", "--pcap", str(own))
    traffic(netns)
    code, output = responder.stop(signal.SIGTERM)
    assert code == 0
    summary = " ".join(output.split())
    frames_in, frames_out = (int(x) for x in summary.split("frames in / out ")[1].split()[0:3:2])
    rows = tshark(own, "frame.number", "tcp.srcport")
    assert len(rows) == frames_in + frames_out
    assert sum(1 for r in rows if r[1] == "8888") == frames_out


def test_a_60000_octet_reply_has_no_runt_segment(netns: Namespace, tmp_path: Path) -> None:
    """Sender silly window avoidance, seen by tshark: every data segment of a bulk reply
    is one MSS (1460, ours; the client's is larger on lo, less the 12 octets of the
    timestamps a Linux client asks for) except the last."""
    routes = tmp_path / "routes.toml"
    routes.write_text('[routes]\nbig = "' + "x" * 59_999 + '"\n')
    own = tmp_path / "own.pcap"
    responder = netns.respond("--quiet", "--pcap", str(own), "--routes", str(routes))
    done = netns.run(["nc", "127.0.0.1", "8888"], input="big\n", timeout=20)
    assert len(done.stdout) == 60_000
    code, output = responder.stop()
    assert code == 0, output
    rows = tshark(own, "tcp.srcport", "tcp.len", "tcp.analysis.flags")
    sizes = [int(length) for port, length, _ in rows if port == "8888" and int(length) > 0]
    assert sum(sizes) == 60_000
    assert all(size == 1448 for size in sizes[:-1]), sizes
    assert not [r for r in rows if r[2]], rows  # nothing for tshark's TCP analysis to flag


@pytest.mark.parametrize("codec", ["scapy", "fast"])
def test_a_linux_syn_gets_window_scale_and_timestamps_and_tshark_flags_nothing(
    netns: Namespace, tmp_path: Path, codec: str
) -> None:
    own = tmp_path / "own.pcap"
    responder = netns.respond("--quiet", "--pcap", str(own), "--codec", codec)
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    rows = tshark(
        own, "tcp.srcport", "tcp.flags.str", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
        "tcp.options.timestamp.tsecr", "tcp.options.sack_perm", "tcp.analysis.flags", "tcp.checksum.status",
    )  # fmt: skip
    [syn_ack] = [r for r in rows if r[0] == "8888" and "S" in r[1]]
    # window scale, timestamps echoing the SYN's TSval, SACK-permitted
    assert syn_ack[2] == "0" and syn_ack[3] and syn_ack[4] != "0" and syn_ack[5]
    server = [r for r in rows if r[0] == "8888"]
    assert all(r[3] for r in server if "R" not in r[1])  # timestamps on every segment after
    assert not [r for r in rows if r[6]], rows  # nothing for tshark's TCP analysis to flag
    assert {r[7] for r in server} == {GOOD}


def test_with_no_options_the_syn_ack_carries_the_mss_alone(netns: Namespace, tmp_path: Path) -> None:
    own = tmp_path / "own.pcap"
    responder = netns.respond("--quiet", "--pcap", str(own), "--no-wscale", "--no-timestamps", "--no-sack")
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    rows = tshark(own, "tcp.srcport", "tcp.flags.str", "tcp.options.mss_val", "tcp.option_kind")
    [syn_ack] = [r for r in rows if r[0] == "8888" and "S" in r[1]]
    assert syn_ack[2] == "1460" and syn_ack[3] == "2"

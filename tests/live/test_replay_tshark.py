"""``l4kit replay`` on real kernel traffic, checked against tshark.

Inside a network namespace made for the test, tcpdump captures ``lo`` while
Python sockets make: normal exchanges closed by either side (one large enough
for many segments and window scaling), an IPv6 exchange, a connection to a port
nobody listens on, and a client abort (``SO_LINGER`` 0). tshark reads the same
file and is the reference for connections, packet and byte counts, flags,
relative sequence numbers and good checksums.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from namespaces import Tcpdump

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        shutil.which("tshark") is None or shutil.which("tcpdump") is None, reason="needs tshark and tcpdump"
    ),
]

TRAFFIC = r"""
import socket, struct, threading, time

def server(family, addr, port, behaviours):
    srv = socket.socket(family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen()
    def run():
        for behaviour in behaviours:
            conn, _ = srv.accept()
            request = conn.recv(65536)
            if behaviour == "reply-and-close":
                conn.sendall(b"hello world\n")
                conn.close()
            elif behaviour == "big":
                conn.sendall(b"z" * 300_000)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                conn.close()
            elif behaviour == "wait-for-client-close":
                conn.sendall(b"ok\n")
                while conn.recv(65536):
                    pass
                conn.close()
            else:  # "hold": wait for the client's abort
                time.sleep(0.5)
                conn.close()
    t = threading.Thread(target=run)
    t.start()
    return t

threads = [
    server(socket.AF_INET, "127.0.0.1", 8888, ["reply-and-close", "wait-for-client-close", "big", "hold"]),
    server(socket.AF_INET6, "::1", 8889, ["reply-and-close"]),
]

def exchange(family, addr, port, data, close_first=False):
    c = socket.create_connection((addr, port))
    c.sendall(data)
    if close_first:
        c.recv(100)
        c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()

exchange(socket.AF_INET, "127.0.0.1", 8888, b"toppage\n")           # server closes first
exchange(socket.AF_INET, "127.0.0.1", 8888, b"ping\n", True)        # client closes first
exchange(socket.AF_INET, "127.0.0.1", 8888, b"big please\n", True)  # many segments
try:
    socket.create_connection(("127.0.0.1", 9999))                  # nobody listens
except ConnectionRefusedError:
    pass
c = socket.create_connection(("127.0.0.1", 8888))                  # the client aborts
c.sendall(b"x")
time.sleep(0.05)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
exchange(socket.AF_INET6, "::1", 8889, b"toppage\n")
for t in threads:
    t.join(timeout=10)
time.sleep(0.2)
"""


MARKER_PORT = 9  # a SYN to this closed port ends every traffic script: the capture is complete when it is in

MARKER = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {MARKER_PORT}))
except ConnectionRefusedError:
    pass
"""


def _has_marker(path: Path) -> bool:
    from l4kit.errors import L4kitError
    from l4kit.replay.capture import CaptureReader
    from l4kit.replay.fastpath import decode
    from l4kit.wire.link import ip_from_frame

    try:
        with CaptureReader(path) as reader:
            for _, _, linktype, frame, _ in reader:
                with contextlib.suppress(L4kitError):
                    fields = decode(ip_from_frame(linktype, frame))
                    if fields[2] == MARKER_PORT and fields[6] & 0x04:  # the kernel's RST from port 9
                        return True
    except L4kitError:
        return False  # not even a complete file header yet
    return False


def capture(netns, path: Path, script: str) -> None:
    """tcpdump on the namespace's lo while ``script`` runs; stopped once the marker
    connection's RST is in the file (a loaded machine can lag behind the traffic)."""
    dump = Tcpdump(netns, path, "tcp")
    try:
        netns.python(script + MARKER, timeout=120)
    finally:
        stats = dump.stop(until=_has_marker)
    assert _has_marker(path), f"tcpdump did not write the marker connection: {stats}"
    assert Tcpdump.kernel_dropped(stats) == 0, stats


@pytest.fixture
def kernel_capture(netns, tmp_path) -> Path:
    path = tmp_path / "lo.pcap"
    capture(netns, path, TRAFFIC)
    return path


def replay_json(path: Path, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "l4kit", "replay", str(path), "-f", "json", "--max-rows", "100000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def tshark(path: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), *extra, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_connections_counts_flags_and_sequence_numbers_match_tshark(kernel_capture):
    doc = replay_json(kernel_capture)
    rows = tshark(
        kernel_capture,
        "frame.number", "tcp.stream", "frame.len", "tcp.srcport",
        "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len",
    )  # fmt: skip
    streams = {int(r[1]) for r in rows}
    assert len(doc["connections"]) == len(streams) == doc["summary"]["connections"] == 7
    by_frame = {int(r[0]): r for r in rows}
    for conn in doc["connections"]:
        mine = [r for r in rows if int(r[1]) == conn["id"]]
        assert [p["frame"] for p in conn["packets"]] == [int(r[0]) for r in mine]
        client_port = int(conn["client"].rsplit(":", 1)[1])
        for direction, key in ((True, "c2s"), (False, "s2c")):
            part = [r for r in mine if (int(r[3]) == client_port) == direction]
            assert conn[key]["packets"] == len(part)
            assert conn[key]["bytes"] == sum(int(r[2]) for r in part)
            assert conn[key]["payload"] == sum(int(r[7]) for r in part)
        for p in conn["packets"]:
            r = by_frame[p["frame"]]
            flags = int(r[4], 16)
            letters = "".join(ch for i, ch in enumerate("FSRPAUECN") if flags >> i & 1)
            assert p["flags"] == letters
            assert p["seq"] == int(r[5])
            if "A" in p["flags"]:
                assert p["ack"] == int(r[6])
            assert p["len"] == int(r[7])


def test_states_are_sf_rej_and_rsto(kernel_capture):
    doc = replay_json(kernel_capture)
    assert [(c["server"], c["state"]) for c in doc["connections"]] == [
        ("127.0.0.1:8888", "SF"),  # the server closes first
        ("127.0.0.1:8888", "SF"),  # the client closes first
        ("127.0.0.1:8888", "SF"),  # 300 kB in many segments
        ("127.0.0.1:9999", "REJ"),  # nobody listens
        ("127.0.0.1:8888", "RSTO"),  # the client aborts
        ("[::1]:8889", "SF"),
        (f"127.0.0.1:{MARKER_PORT}", "REJ"),  # the marker that ends the capture
    ]
    refused = doc["connections"][3]
    assert (refused["history"], refused["client_state"]) == ("Sr", "CLOSED")
    assert refused["server_state"] == "CLOSED"
    first, second = doc["connections"][:2]
    assert (first["client_state"], first["server_state"]) == ("CLOSED", "TIME-WAIT")
    assert (second["client_state"], second["server_state"]) == ("TIME-WAIT", "CLOSED")


def test_kernel_checksums_are_offloaded_and_one_flipped_byte_is_one_bad(kernel_capture, tmp_path):
    doc = replay_json(kernel_capture)
    summary = doc["summary"]
    assert summary["checksum"]["bad"] == 0
    assert summary["checksum"]["offloaded"] > 0
    # tshark verifies checksums when asked: what l4kit calls ok is exactly what it calls good.
    status = tshark(
        kernel_capture, "frame.number", "tcp.checksum.status", extra=("-o", "tcp.check_checksum:TRUE")
    )
    good = {int(r[0]) for r in status if r[1] == "1"}
    ours_ok = {p["frame"] for c in doc["connections"] for p in c["packets"] if p["checksum"] == "ok"}
    assert ours_ok == good
    # Flip one byte of the first offloaded segment's checksum field.
    first = next(p["frame"] for c in doc["connections"] for p in c["packets"] if p["checksum"] == "offloaded")
    data = bytearray(kernel_capture.read_bytes())
    offset = 24
    for _ in range(first - 1):
        (caplen,) = struct.unpack_from("<I", data, offset + 8)
        offset += 16 + caplen
    ip = offset + 16 + 14
    tcp = ip + (data[ip] & 0x0F) * 4 if data[ip] >> 4 == 4 else ip + 40
    data[tcp + 16] ^= 0x80
    flipped = tmp_path / "flipped.pcap"
    flipped.write_bytes(bytes(data))
    after = replay_json(flipped)["summary"]["checksum"]
    assert after["bad"] == 1
    assert after["offloaded"] == summary["checksum"]["offloaded"] - 1


def test_pcap_and_pcapng_give_the_same_result(kernel_capture, tmp_path):
    pcapng = tmp_path / "lo.pcapng"
    subprocess.run(
        ["tshark", "-r", str(kernel_capture), "-F", "pcapng", "-w", str(pcapng)], check=True, timeout=60
    )
    assert pcapng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    a = replay_json(kernel_capture)
    b = replay_json(pcapng)
    for doc in (a, b):  # everything but the file's name
        doc.pop("file")
        for conn in doc["connections"]:
            conn.pop("file")
        for f in doc["summary"]["files"]:
            f.pop("file")
    assert a == b


def test_analysis_notes_agree_with_tshark_on_kernel_traffic(kernel_capture):
    doc = replay_json(kernel_capture)
    flagged = {int(r[0]) for r in tshark(kernel_capture, "frame.number", "tcp.analysis.flags") if r[1]}
    noted = {p["frame"] for c in doc["connections"] for p in c["packets"] if p["notes"]}
    # l4kit also notes RFC facts tshark has no word for (a refusal); compare the analysis ones
    rfc = {
        p["frame"]
        for c in doc["connections"]
        for p in c["packets"]
        if p["notes"] and all("RFC" in n for n in p["notes"])
    }
    assert noted - rfc == flagged - rfc


def test_the_responders_own_pcap_replays_through_it_with_no_difference(netns, tmp_path):
    """``l4kit respond --pcap`` writes every frame in and out as the responder handled
    them: fed back through the core by ``--through-responder`` it must give exactly
    the same replies, which makes any such file a regression test of the responder."""
    path = tmp_path / "responder.pcap"
    responder = netns.respond("--port", "8888", "--quiet", "--pcap", str(path))
    netns.python(
        "import socket\n"
        "for request in (b'toppage\\n', b'ping\\nhelp\\n', b'nope\\n', b'toppage'):\n"
        "    c = socket.create_connection(('127.0.0.1', 8888)); c.sendall(request)\n"
        "    if not request.endswith(b'\\n'): c.shutdown(socket.SHUT_WR)\n"
        "    while c.recv(4096): pass\n"
        "    c.close()\n",
        timeout=60,
    )
    responder.stop()
    doc = replay_json(path, "--through-responder")
    assert len(doc["connections"]) == 4
    assert [c["state"] for c in doc["connections"]] == ["SF"] * 4
    assert [c["differences"] for c in doc["connections"]] == [[], [], [], []]

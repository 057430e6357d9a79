"""``l4kit liveplay``: a capture of three curl-like requests, played again against
``python3 -m http.server`` in a namespace (a fresh one, and one that answers differently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_client_connect import PAGE, http_server

from namespaces import Namespace, Tcpdump, captured_frames

pytestmark = pytest.mark.live

KEYS = {
    "id", "client", "server", "sent", "captured_sent", "received", "captured_received",
    "first_difference", "state", "notes",
}  # fmt: skip

CURL_LIKE = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
for path in ("/page.txt", "/", "/missing"):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\\r\\nHost: %s:%d\\r\\nUser-Agent: curl/8.5.0\\r\\nAccept: */*\\r\\n\\r\\n"
               % (path, host, port)).encode())
    while s.recv(65536):
        pass
    s.close()
"""


def record(ns: Namespace, site: Path, address: str, path: Path) -> None:
    """Three curl-like requests against http.server on ``address``:8000, captured."""
    server = http_server(ns, site, address, 8000)
    capture = Tcpdump(ns, path, "tcp port 8000")
    ns.python(CURL_LIKE, address, "8000")
    # Three connections of at least 9 frames each (handshake, request, reply, both FINs).
    capture.stop(until=lambda p: captured_frames(p) >= 27)
    server.kill()
    server.wait()


def liveplay(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return ns.run([sys.executable, "-m", "l4kit", "liveplay", *args], timeout=120, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "page.txt").write_bytes(PAGE)
    return root


@pytest.mark.parametrize(("address", "server"), [("127.0.0.1", "127.0.0.1:8000"), ("::1", "[::1]:8000")])
def test_three_requests_against_a_fresh_server(
    netns: Namespace, site: Path, tmp_path: Path, address: str, server: str
) -> None:
    capture = tmp_path / "three.pcap"
    record(netns, site, address, capture)
    http_server(netns, site, address, 8000)  # a fresh one
    before = netns.host_snapshot()
    result = liveplay(netns, str(capture), "--server", server, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"connections", "summary"}
    connections = document["connections"]
    assert [c["id"] for c in connections] == [0, 1, 2]
    for c in connections:
        assert set(c) == KEYS
        assert c["state"] == "completed", c
        assert c["sent"] == c["captured_sent"] > 0
        assert c["received"] == c["captured_received"] > 0
        assert c["server"] == server
    # The pages are the same; http.server's Date header is the only thing that may
    # differ (it is in every reply, after the status line and the Server header).
    for c in connections:
        assert c["first_difference"] is None or c["first_difference"] > len("HTTP/1.0 200 OK\r\nServer: ")
    summary = document["summary"]
    assert summary["connections"] == summary["completed"] == 3
    assert netns.host_snapshot() == before


def test_a_server_that_answers_differently(netns: Namespace, site: Path, tmp_path: Path) -> None:
    capture = tmp_path / "three.pcap"
    record(netns, site, "127.0.0.1", capture)
    other = tmp_path / "other"
    other.mkdir()  # no page.txt: a 404 where the capture has a 200
    http_server(netns, other, "127.0.0.1", 8000)
    result = liveplay(netns, str(capture), "--server", "127.0.0.1:8000", "--format", "json", "--stream", "0")
    assert result.returncode == 0, result.stdout + result.stderr  # differences are reported, not errors
    (first,) = json.loads(result.stdout)["connections"]
    assert first["id"] == 0 and first["state"] == "completed"
    assert first["sent"] == first["captured_sent"]
    assert first["first_difference"] == len("HTTP/1.0 ")  # "404" where the capture has "200"
    assert first["received"] != first["captured_received"]
    strict = liveplay(netns, str(capture), "--server", "127.0.0.1:8000", "--stream", "0", "--strict")
    assert strict.returncode == 1
    assert "first difference" in strict.stdout


def test_parallel_streams_and_the_table(netns: Namespace, site: Path, tmp_path: Path) -> None:
    capture = tmp_path / "three.pcap"
    record(netns, site, "127.0.0.1", capture)
    http_server(netns, site, "127.0.0.1", 8000)
    result = liveplay(
        netns, str(capture), "--server", "127.0.0.1:8000", "--stream", "2", "--stream", "1", "--parallel", "2"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "2"]
    assert "2 of 2 connections completed" in result.stdout


def test_refused_and_bad_input_are_one_line(netns: Namespace, site: Path, tmp_path: Path) -> None:
    capture = tmp_path / "three.pcap"
    record(netns, site, "127.0.0.1", capture)
    refused = liveplay(netns, str(capture), "--server", "127.0.0.1:8001", "--format", "json")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: 127.0.0.1:8001 refused every connection (RST to the SYN)"
    ]
    assert all(c["state"] == "refused" for c in json.loads(refused.stdout)["connections"])
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    no_tcp = liveplay(netns, str(empty), "--server", "127.0.0.1:8000")
    assert no_tcp.returncode == 2
    assert no_tcp.stderr.strip().splitlines() == [f"error: {empty}: no TCP connection in the capture"]
    usage = liveplay(netns, str(capture), "--server", "::1:8000")
    assert usage.returncode == 2 and "brackets" in usage.stderr

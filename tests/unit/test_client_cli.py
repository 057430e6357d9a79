"""``l4kit connect`` / ``liveplay`` usage errors (exit 2, one line, before anything is
touched), the client's table rows and JSON, the route and filter helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from l4kit.commands.liveplay import parse_server
from l4kit.core import Stack, StackConfig
from l4kit.drivers.pipe import PipeClient
from l4kit.errors import ConfigError
from l4kit.live.client import tuple_filter_text
from l4kit.live.route import route_to
from l4kit.views.client import client_rows, connect_json
from l4kit.wire import Endpoint, FourTuple


def l4kit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4kit", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_send_and_send_file_exclude_each_other(tmp_path: Path) -> None:
    body = tmp_path / "body"
    body.write_text("x")
    result = l4kit("connect", "127.0.0.1", "80", "--send", "x", "--send-file", str(body))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: give --send or --send-file, not both"]


def test_a_missing_send_file_is_a_usage_error(tmp_path: Path) -> None:
    result = l4kit("connect", "127.0.0.1", "80", "--send-file", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "No such file or directory" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_port_is_typers_usage_error() -> None:
    result = l4kit("connect", "127.0.0.1", "70000")
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8000", ("::1", 8000)),
        ("example.org:443", ("example.org", 443)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["::1:80", "127.0.0.1", "127.0.0.1:0", "[nothex]:80", ":80", "h:x"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_server(text)
    assert info.value.exit_code == 2


def test_liveplay_with_a_missing_capture_exits_2(tmp_path: Path) -> None:
    result = l4kit("liveplay", str(tmp_path / "absent.pcap"), "--server", "127.0.0.1:80")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_filter_names_every_four_tuple() -> None:
    keys = [
        FourTuple(Endpoint("127.0.0.1", 40001), Endpoint("127.0.0.1", 80)),
        FourTuple(Endpoint("::1", 40002), Endpoint("::1", 8080)),
    ]
    assert tuple_filter_text(keys) == (
        "inbound and tcp and ("
        "(src host 127.0.0.1 and src port 80 and dst host 127.0.0.1 and dst port 40001) or "
        "(src host ::1 and src port 8080 and dst host ::1 and dst port 40002))"
    )


def test_the_route_to_loopback_is_local_on_lo() -> None:
    route = route_to("127.0.0.1")
    assert (route.iface, route.source, route.local, route.next_hop) == ("lo", "127.0.0.1", True, "127.0.0.1")


def test_client_rows_and_json_number_each_side_from_its_isn() -> None:
    server = Stack(StackConfig(secret=b"s" * 32))
    server.listen("10.0.0.1", 7)
    with PipeClient(server) as pipe:
        sock = pipe.connect("10.0.0.1", 7, timeout=1.0)
        sock.sendall(b"hello")
        sock.abort()
    rows = client_rows(sock.rows)
    assert [(r.direction, r.flags, r.seq, r.ack) for r in rows] == [
        ("c2s", "S", 0, None),
        ("s2c", "SA", 0, 1),
        ("c2s", "A", 1, 1),
        ("c2s", "PA", 1, 1),
        ("s2c", "A", 1, 6),
        ("c2s", "RA", 6, 1),
    ]
    assert rows[0].before == "CLOSED" and str(sock.state) == "CLOSED"
    document = json.loads(
        connect_json(
            sock.key,
            sock.rows,
            result="reset",
            error="x",
            sent=sock.sent,
            received=sock.received,
            state=str(sock.state),
        )
    )
    assert document["connection"] == {
        "client": str(sock.local), "server": "10.0.0.1:7", "result": "reset", "error": "x",
        "sent": 5, "received": 0, "state": "CLOSED",
    }  # fmt: skip
    assert [t["flags"] for t in document["transitions"]] == [r.flags for r in rows]

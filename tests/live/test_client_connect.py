"""``l4kit connect`` and the Python socket API against real servers, in namespaces.

Servers: ``python3 -m http.server`` and ``nc -l`` (the kernel's TCP), ``l4kit respond``
(l4kit's own), and a "remote" kernel server in a second namespace behind a veth pair.
Each test compares the host (the whole ``nft list ruleset`` text, iptables-save, the
loopback sysctls) before and after.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from namespaces import Namespace, namespace

pytestmark = pytest.mark.live

REQUEST = "GET /page.txt HTTP/1.0\r\nHost: test\r\n\r\n"
PAGE = b"a page served by the kernel's TCP\n" * 40

# Kernel clients with the same request, one after the other until the file STOP appears
# (at most 60 s): every distinct reply is written to DIR. http.server writes the time
# in its Date header, so what connect prints must be one of the replies a kernel client
# got while connect ran.
KERNEL_CLIENTS = """
import hashlib, os, socket, sys, time
host, port, request, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(request)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    with open(os.path.join(out, hashlib.sha256(data).hexdigest()), "wb") as f:
        f.write(data)
    open(os.path.join(out, "ready"), "w").close()
    if os.path.exists(stop):
        break
    time.sleep(0.02)
"""

# Wait (bounded) until a kernel socket on local port PORT is in STATE (0A: LISTEN,
# 01: ESTABLISHED), as /proc/net/tcp and tcp6 show it: no connection is made (nc -l
# serves one).
WAIT_SOCKET = """
import sys, time
port, state = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 30
def found():
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).readlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                return True
    return False
while not found():
    if time.monotonic() > deadline:
        sys.exit("no socket on port %d in state %s" % (port, state))
    time.sleep(0.02)
"""


def wait_socket(ns: Namespace, port: int, state: str = "0A") -> None:
    ns.python(WAIT_SOCKET, str(port), state)


def http_server(ns: Namespace, directory: Path, address: str, port: int) -> subprocess.Popen[str]:
    process = ns.popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", address, "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_socket(ns, port)
    return process


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "page.txt").write_bytes(PAGE)
    return root


def connect(ns: Namespace, *args: str, input: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ns.argv([sys.executable, "-m", "l4kit", "connect", *args]),
        capture_output=True, timeout=60, check=False, env=ns.env(),
        input=None if input is None else input.encode(),
    )  # fmt: skip


def kernel_replies_around(ns: Namespace, host: str, port: int, tmp: Path, run: Any) -> tuple[Any, set[bytes]]:
    """``run()`` while kernel clients fetch the same request over and over: its result,
    and every reply the kernel clients got (before, during and after it)."""
    out, stop = tmp / "kernel-replies", tmp / "stop"
    out.mkdir()
    clients = ns.popen([sys.executable, "-c", KERNEL_CLIENTS, host, str(port), REQUEST, str(out), str(stop)])
    ns.python("import os, sys, time\n"
              "deadline = time.monotonic() + 30\n"
              "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline: time.sleep(0.01)\n",
              str(out / "ready"))  # fmt: skip
    try:
        result = run()
    finally:
        stop.touch()
        clients.wait(timeout=60)
    return result, {path.read_bytes() for path in out.iterdir() if path.name != "ready"}


def transitions(
    result: subprocess.CompletedProcess[bytes],
) -> tuple[dict[str, object], list[dict[str, object]]]:
    document = json.loads(result.stderr)
    return document["connection"], document["transitions"]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_connect_gets_the_whole_http_response_as_a_kernel_client_does(
    netns: Namespace, site: Path, address: str, tmp_path: Path
) -> None:
    http_server(netns, site, address, 8000)
    before = netns.host_snapshot()
    result, kernel = kernel_replies_around(
        netns, address, 8000, tmp_path, lambda: connect(netns, address, "8000", "--send", REQUEST)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout in kernel
    assert result.stdout.endswith(PAGE)
    assert result.stdout.startswith(b"HTTP/1.0 200 OK\r\n")
    table = result.stderr.decode()
    flags = [line.split("│")[3].strip() for line in table.splitlines() if line.count("│") > 8]
    assert flags[:3] == ["S", "SA", "A"]
    assert "FA" in flags  # our FIN, after the request (the input ended)
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_connect_json_shows_the_handshake_and_both_fins_with_states(netns: Namespace, site: Path) -> None:
    http_server(netns, site, "127.0.0.1", 8000)
    result = connect(netns, "127.0.0.1", "8000", "--format", "json", input=REQUEST)  # from stdin
    assert result.returncode == 0, result.stderr.decode()
    connection, rows = transitions(result)
    assert connection["result"] == "closed" and connection["error"] is None
    assert connection["sent"] == len(REQUEST) and connection["received"] == len(result.stdout)
    sent = [(r["flags"], r["state_before"], r["state_after"]) for r in rows if r["direction"] == "c2s"]
    got = [(r["flags"], r["state_before"], r["state_after"]) for r in rows if r["direction"] == "s2c"]
    assert sent[0] == ("S", "CLOSED", "SYN-SENT")
    assert got[0] == ("SA", "SYN-SENT", "ESTABLISHED")
    assert ("FA", "ESTABLISHED", "FIN-WAIT-1") in sent
    # The server's FIN (with the last of the page, or alone) ends in TIME-WAIT when it
    # acknowledges our FIN; when the server closed before our FIN reached it, the two FINs
    # cross (a simultaneous close: CLOSING) and the server's ACK of ours ends in TIME-WAIT.
    fin = next(after for flags, _, after in got if "F" in flags)
    assert fin in ("TIME-WAIT", "CLOSING")
    assert got[-1][2] == "TIME-WAIT"


def test_connect_to_a_closed_port_is_refused_in_one_line(netns: Namespace) -> None:
    before = netns.host_snapshot()
    result = connect(netns, "127.0.0.1", "9")
    assert result.returncode == 1
    lines = [line for line in result.stderr.decode().splitlines() if line.startswith("error:")]
    assert lines == ["error: connection refused by 127.0.0.1 port 9"]
    assert "Traceback" not in result.stderr.decode()
    assert result.stdout == b""
    json_result = connect(netns, "127.0.0.1", "9", "--format", "json")
    assert json_result.returncode == 1
    document, error = json_result.stderr.rsplit(b"\nerror:", 1)
    assert error.strip() == b"connection refused by 127.0.0.1 port 9"
    connection, rows = json.loads(document)["connection"], json.loads(document)["transitions"]
    assert connection["result"] == "refused"
    assert [r["flags"] for r in rows] == ["S", "RA"]
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_source_port_is_used_and_a_port_in_use_is_one_line(netns: Namespace, site: Path) -> None:
    http_server(netns, site, "127.0.0.1", 8000)
    result = connect(netns, "127.0.0.1", "8000", "--send", REQUEST, "--source-port", "45678", "-f", "json")
    assert result.returncode == 0, result.stderr.decode()
    connection, _rows = transitions(result)
    assert connection["client"] == "127.0.0.1:45678"
    # The kernel's own listener holds port 8000: connect cannot take it as its source.
    busy = connect(netns, "127.0.0.1", "8000", "--send", REQUEST, "--source-port", "8000")
    assert busy.returncode == 1
    lines = busy.stderr.decode().strip().splitlines()
    assert lines == ["error: cannot reserve port 8000 on 127.0.0.1: Address already in use"]
    assert netns.state_files() == []


def test_connect_to_nc_sends_and_half_closes(netns: Namespace) -> None:
    server = netns.popen(["nc", "-l", "127.0.0.1", "9001"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wait_socket(netns, 9001)
    result = connect(netns, "127.0.0.1", "9001", "--send", "hello nc\n")
    assert result.returncode == 0, result.stderr.decode()
    out, _ = server.communicate(timeout=20)
    assert out == "hello nc\n"


def test_connect_to_l4kit_respond(netns: Namespace) -> None:
    before = netns.host_snapshot()
    responder = netns.respond("--port", "8888")
    result = connect(netns, "127.0.0.1", "8888", "--send", "toppage\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hello world\n"
    responder.stop()
    assert netns.host_snapshot() == before


def test_sigkill_then_cleanup_restores_the_host(netns: Namespace) -> None:
    before = netns.host_snapshot()
    assert before["sysctls"]["net/ipv4/conf/lo/route_localnet"] == "0"
    server = netns.popen(
        ["nc", "-l", "127.0.0.1", "9002"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_socket(netns, 9002)
    # stdin stays open: the connection is established and waits for input.
    client = netns.popen(
        [sys.executable, "-m", "l4kit", "connect", "127.0.0.1", "9002"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_socket(netns, 9002, "01")  # nc's end of the connection
    changed = netns.host_snapshot()
    assert changed != before  # the rule and lo's sysctls are in place
    assert "l4kit_" in changed["firewall"]["nft"]
    assert changed["sysctls"]["net/ipv4/conf/lo/route_localnet"] == "1"
    assert len(netns.state_files()) == 1
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    assert netns.host_snapshot() == changed  # a SIGKILL leaves it all
    done = netns.l4kit("cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert netns.host_snapshot() == before
    assert netns.state_files() == []
    server.kill()


# ---------------------------------------------------------------- a remote host on a real interface


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[Namespace, Namespace]]:
    """Two namespaces joined by a veth pair: the client at 10.77.0.1 / fd77::1 on ``eth0``,
    the server at 10.77.0.2 / fd77::2."""
    from namespaces import live_capable

    reason = live_capable()
    if reason:
        pytest.skip(reason)
    with namespace("l4c", tmp_path / "state-a") as a, namespace("l4s", tmp_path / "state-b") as b:
        subprocess.run(["ip", "-n", a.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                        "netns", b.name], check=True, capture_output=True)  # fmt: skip
        for ns, last in ((a, 1), (b, 2)):
            for argv in (
                ["addr", "add", f"10.77.0.{last}/24", "dev", "eth0"],
                ["addr", "add", f"fd77::{last}/64", "dev", "eth0", "nodad"],
                ["link", "set", "eth0", "up"],
            ):
                subprocess.run(["ip", "-n", ns.name, *argv], check=True, capture_output=True)
        yield a, b


@pytest.mark.parametrize(("server", "host"), [("10.77.0.2", "10.77.0.2"), ("fd77::2", "fd77::2")])
def test_connect_to_a_remote_host_over_veth(
    two_hosts: tuple[Namespace, Namespace], site: Path, server: str, host: str
) -> None:
    client_ns, server_ns = two_hosts
    http_server(server_ns, site, server, 8080)
    before = client_ns.host_snapshot()
    result = connect(client_ns, host, "8080", "--iface", "eth0", "--send", REQUEST, "--format", "json")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"HTTP/1.0 200 OK\r\n") and result.stdout.endswith(PAGE)
    connection, rows = transitions(result)
    assert connection["result"] == "closed"
    assert [r["flags"] for r in rows][:3] == ["S", "SA", "A"]
    assert client_ns.host_snapshot() == before
    # The next hop's address came from the kernel's neighbour table.
    neighbours = client_ns.run(["ip", "neigh", "show", "dev", "eth0"]).stdout
    assert server in neighbours


# ---------------------------------------------------------------- the Python API

API = """
import json, sys
from l4kit.live import Client, connect

with connect(sys.argv[1], int(sys.argv[2]), timeout=10) as sock:
    sock.sendall(sys.argv[3].encode())
    sock.shutdown()
    reply = sock.recv_all()
first = [(r.segment.flags.letters, str(r.before), str(r.after), r.received) for r in sock.rows]

# Several sockets of one client share its sniffer, its L2 socket and its core.
with Client() as client:
    socks = [client.connect(sys.argv[1], int(sys.argv[2]), timeout=10) for _ in range(3)]
    links = len(client._links)
    for s in socks:
        s.sendall(sys.argv[3].encode())
        s.shutdown()
    replies = [s.recv_all() for s in socks]
    for s in socks:
        s.close()
    ports = sorted({s.local.port for s in socks})
print(json.dumps({"reply": reply.decode(), "rows": first, "replies": [r.decode() for r in replies],
                  "links": links, "ports": len(ports), "state": str(sock.state)}))
"""


def test_the_python_api_several_sockets_share_one_sniffer(netns: Namespace, site: Path) -> None:
    http_server(netns, site, "127.0.0.1", 8000)
    before = netns.host_snapshot()
    done = netns.python(API, "127.0.0.1", "8000", REQUEST)
    out = json.loads(done.stdout)
    assert out["reply"].endswith(PAGE.decode())
    assert all(reply.endswith(PAGE.decode()) for reply in out["replies"])
    assert out["links"] == 1 and out["ports"] == 3
    assert out["rows"][0] == ["S", "CLOSED", "SYN-SENT", False]
    assert out["rows"][1] == ["SA", "SYN-SENT", "ESTABLISHED", True]
    assert out["state"] == "TIME-WAIT"
    assert netns.host_snapshot() == before


def test_sigterm_restores_the_host_and_exits_130(netns: Namespace) -> None:
    before = netns.host_snapshot()
    server = netns.popen(
        ["nc", "-l", "127.0.0.1", "9003"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_socket(netns, 9003)
    client = netns.popen(
        [sys.executable, "-m", "l4kit", "connect", "127.0.0.1", "9003"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_socket(netns, 9003, "01")
    assert netns.host_snapshot() != before
    client.send_signal(signal.SIGTERM)
    _out, err = client.communicate(timeout=30)
    assert client.returncode == 130, err
    assert "Traceback" not in err
    assert netns.host_snapshot() == before
    assert netns.state_files() == []
    server.kill()

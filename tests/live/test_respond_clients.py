"""Real clients against ``l4kit respond``, each test in a namespace of its own.

Expected replies are those of the string server run sans-IO on the same request
bytes (``StringServer.on_data``), plus the fixed ``toppage`` ->
``hello world`` of the embedded routes: what the network delivered must be what the core decided.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from l4kit.core import Routes, StringServer

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.live


def summary_count(summary: str, label: str) -> int:
    match = re.search(rf"^\s*{re.escape(label)}\s+(\d+)", summary, re.M)
    assert match, summary
    return int(match.group(1))


def sans_io_reply(request: bytes, *, peer_closes: bool = False) -> bytes:
    server = StringServer(Routes.default())
    reply = server.on_data(request)
    data = reply.data
    if peer_closes and not reply.close:
        data += server.on_peer_closed().data
    return data


def test_echo_toppage_into_nc_prints_hello_world_and_nc_exits_by_itself(netns: Namespace) -> None:
    responder = netns.respond()
    started = time.monotonic()
    # No -q/-w/-N: nc exits only because the responder closes the connection (FIN).
    done = netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10)
    elapsed = time.monotonic() - started
    assert done.stdout == "hello world\n"
    assert done.returncode == 0
    print(f"nc round trip and exit: {elapsed * 1000:.1f} ms")
    code, output = responder.stop()
    assert code == 0, output
    # The flag-transition table of that connection, and the exit summary.
    assert "LISTEN → SYN-RECEIVED" in output
    assert "→ TIME-WAIT" in output
    assert "'hello world\\n'" in output
    assert "l4kit respond: summary" in output


def test_200_sequential_and_50_concurrent_clients_all_get_their_reply(netns: Namespace) -> None:
    responder = netns.respond("--quiet")
    one_by_one = netns.clients(200, b"toppage\n")
    assert one_by_one.replies == {b"hello world\n": 200}
    print(
        f"200 sequential clients: {one_by_one.elapsed:.2f} s ({200 / one_by_one.elapsed:.0f} connections/s)"
    )
    together = netns.clients(50, b"ping\n", parallel=50)
    assert together.replies == {sans_io_reply(b"ping\n"): 50}
    print(f"50 concurrent clients: {together.elapsed:.2f} s")
    code, output = responder.stop()
    assert code == 0
    summary = output[output.index("l4kit respond: summary") :]
    assert summary_count(summary, "connections") == 250
    assert "kernel-buffer-full" not in summary  # no frame lost at this load


SCENARIOS = r"""
import base64, json, socket, struct, sys, time

def conn():
    s = socket.create_connection(("127.0.0.1", 8888), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def read_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d

results = {}
# A request split over two segments (the server must wait for the newline).
s = conn(); s.sendall(b"topp"); time.sleep(0.2); s.sendall(b"age\n")
results["split"] = read_all(s); s.close()
# A half-closed client: request, then FIN at once; the reply still arrives.
s = conn(); s.sendall(b"toppage\n"); s.shutdown(socket.SHUT_WR)
results["half_closed"] = read_all(s); s.close()
# Half-closed before the newline: the server answers the pending line when the peer closes.
s = conn(); s.sendall(b"ping"); s.shutdown(socket.SHUT_WR)
results["half_closed_no_newline"] = read_all(s); s.close()
# CRLF line ending.
s = conn(); s.sendall(b"toppage\r\n"); results["crlf"] = read_all(s); s.close()
# An unknown command.
s = conn(); s.sendall(b"no-such-command\n"); results["unknown"] = read_all(s); s.close()
# A client that aborts with RST (SO_LINGER 0) after half a request.
s = conn(); s.sendall(b"topp"); time.sleep(0.1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
time.sleep(0.1)
# ...and the next client is served.
s = conn(); s.sendall(b"toppage\n"); results["after_rst"] = read_all(s); s.close()
print(json.dumps({k: base64.b64encode(v).decode() for k, v in results.items()}))
"""


def test_split_half_closed_crlf_unknown_and_reset_clients(netns: Namespace) -> None:
    responder = netns.respond()
    done = netns.python(SCENARIOS)
    results = {k: base64.b64decode(v) for k, v in json.loads(done.stdout).items()}
    assert results["split"] == b"hello world\n" == sans_io_reply(b"toppage\n")
    assert results["half_closed"] == b"hello world\n"
    assert results["half_closed_no_newline"] == sans_io_reply(b"ping", peer_closes=True) == b"pong\n"
    assert results["crlf"] == sans_io_reply(b"toppage\r\n") == b"hello world\n"
    assert results["unknown"] == sans_io_reply(b"no-such-command\n")
    assert results["unknown"].startswith(b"error: unknown command") and results["unknown"].endswith(b"\n")
    assert results["after_rst"] == b"hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    # The split request really was two segments, seen by the responder as such.
    assert "'topp'" in output and "'age\\n'" in output
    assert "reset by the peer" in output
    summary = output[output.index("l4kit respond: summary") :]
    assert "1 received" in summary  # the one client RST


def test_other_ports_still_get_the_kernels_rst(netns: Namespace) -> None:
    # The firewall rule drops RSTs from the responder's port only: a closed port
    # next to it must still refuse at once (ECONNREFUSED), not time out.
    responder = netns.respond("--quiet")
    done = netns.python(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 8889), timeout=5)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
    )
    assert done.stdout.strip() == "refused"
    responder.stop()


def test_keep_open_answers_several_requests_on_one_connection(netns: Namespace) -> None:
    responder = netns.respond("--keep-open", "--quiet")
    done = netns.python(
        "import socket, time\n"
        "s = socket.create_connection(('127.0.0.1', 8888), timeout=5)\n"
        "s.sendall(b'ping\\n'); a = s.recv(100)\n"
        "s.sendall(b'toppage\\n'); b = s.recv(100)\n"
        "s.shutdown(socket.SHUT_WR); rest = s.recv(100)\n"
        "print(repr((a, b, rest)))\n"
    )
    assert done.stdout.strip() == repr((b"pong\n", b"hello world\n", b""))
    responder.stop()


@pytest.mark.parametrize("keep_open", [False, True], ids=["default", "keep-open"])
def test_the_start_up_hint_is_a_command_that_returns(netns: Namespace, keep_open: bool) -> None:
    # The hint a user copies: with --keep-open the server waits for the client to close,
    # so the hint must make nc close its sending side at the end of its input (nc -N).
    responder = netns.respond(*(["--keep-open"] if keep_open else []))
    hint = responder.wait_for(re.compile(r"^try: "), timeout=10)
    command = hint.removeprefix("try: ").split("    (")[0].strip()
    assert command.startswith("echo toppage | nc "), hint
    done = netns.run(["sh", "-c", command], timeout=10, check=False)
    assert (done.returncode, done.stdout) == (0, "hello world\n"), (command, done)
    code, output = responder.stop()
    assert code == 0, output


def test_routes_file_is_served(netns: Namespace, tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text('[routes]\nweather = "sunny"\n')
    responder = netns.respond("--routes", str(routes), "--quiet")
    done = netns.run(["nc", "127.0.0.1", "8888"], input="weather\n", timeout=10)
    assert done.stdout == "sunny\n"
    responder.stop()


def test_fast_codec_serves_the_same_bytes(netns: Namespace) -> None:
    try:
        from l4kit.wire.packet import encode_packet  # noqa: F401
    except ImportError:  # pragma: no cover
        pytest.skip("no struct encoder yet")
    responder = netns.respond("--codec", "fast", "--quiet")
    assert netns.clients(20, b"toppage\n").replies == {b"hello world\n": 20}
    code, _output = responder.stop()
    assert code == 0


def test_responder_stops_by_itself_after_duration(netns: Namespace) -> None:
    responder = netns.respond("--duration", "0.5", "--quiet")
    assert responder.process.wait(timeout=20) == 0

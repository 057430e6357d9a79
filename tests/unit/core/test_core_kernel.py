"""The core against the Linux kernel's TCP, through a TUN device (needs root).

The strongest outside check of the state machine: a real kernel client (a Python
socket in a network namespace made for the test) talks to the core, with nothing
in between but a TUN device, l4kit's own packet codec and this test's loop (no
Scapy, no sniffer, no firewall rule). If the core got a sequence number, a window,
a checksum or a state wrong, the kernel would retransmit, reset or hang, and the
client would not print the reply.

The namespace and the TUN device are created by the test and always deleted.
Marked ``live`` (real processes in a namespace); skipped without root or
/dev/net/tun. Time limits below are hang guards, not timing assertions.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from l4kit.core import Listener, ListenerConfig, Routes, make_app_factory
from l4kit.errors import ParseError
from l4kit.wire import Endpoint, Segment
from l4kit.wire.packet import decode_packet, encode_packet

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None,
        reason="needs root, /dev/net/tun and iproute2",
    ),
]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
KERNEL_ADDR, CORE_ADDR, PORT = "10.77.0.1", "10.77.0.2", 8888
HANG_GUARD = 30.0

CLIENT = r"""
import socket, sys
request = sys.argv[1].encode().decode("unicode_escape").encode("latin-1")
half_close = sys.argv[2] == "1"
for _ in range(int(sys.argv[3])):
    s = socket.create_connection((sys.argv[4], int(sys.argv[5])), timeout=20)
    s.sendall(request)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    sys.stdout.write(repr(data) + "\n")
"""


class TunNamespace:
    def __init__(self, netns: str, fd: int) -> None:
        self.netns = netns
        self.fd = fd


@pytest.fixture
def tun() -> Iterator[TunNamespace]:
    tag = f"{os.getpid() % 100000}{int(time.monotonic() * 1000) % 1000}"
    netns, ifname = f"l4kcore{tag}", f"l4kc{tag}"[:15]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    fd = -1
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
        for command in (
            ["ip", "link", "set", ifname, "netns", netns],
            ["ip", "-n", netns, "link", "set", "lo", "up"],
            ["ip", "-n", netns, "addr", "add", f"{KERNEL_ADDR}/24", "dev", ifname],
            ["ip", "-n", netns, "link", "set", ifname, "up"],
        ):
            subprocess.run(command, check=True)
        yield TunNamespace(netns, fd)
    finally:
        if fd >= 0:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", netns], check=False)


def serve(
    tun: TunNamespace,
    listener: Listener,
    request: str,
    *,
    half_close: bool = False,
    count: int = 1,
    lose: Callable[[bytes, bool], bool] | None = None,
) -> list[str]:
    """Run the kernel client in the namespace and the core on this side of the TUN.

    ``lose(packet, outgoing)`` sees every IP packet (outgoing = from the core) and
    returns True to drop it: fault injection wraps the device, not the core.
    """

    def write(now: float, segments: list[Segment]) -> None:
        for segment in segments:
            packet = encode_packet(segment)
            if lose is None or not lose(packet, True):
                os.write(tun.fd, packet)

    client = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            tun.netns,
            sys.executable,
            "-c",
            CLIENT,
            request,
            "1" if half_close else "0",
            str(count),
            CORE_ADDR,
            str(PORT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    try:
        while client.poll() is None:
            now = time.monotonic() - start
            assert now < HANG_GUARD, "the kernel client hung"
            due = listener.poll_at()
            timeout = 0.05 if due is None else min(0.05, max(due - now, 0.0))
            readable, _, _ = select.select([tun.fd], [], [], timeout)
            if readable:
                while True:
                    try:
                        packet = os.read(tun.fd, 65536)
                    except BlockingIOError:
                        break
                    try:
                        segment = decode_packet(packet)
                    except ParseError:
                        continue  # IPv6 neighbour discovery and the like
                    if lose is not None and lose(packet, False):
                        continue
                    now = time.monotonic() - start
                    write(now, listener.receive(segment, now).segments)
            now = time.monotonic() - start
            due = listener.poll_at()
            if due is not None and due <= now:
                write(now, listener.tick(now).segments)
        out, err = client.communicate(timeout=5)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    return out.splitlines()


def make_listener(routes: Routes | None = None, keep_open: bool = False) -> Listener:
    config = ListenerConfig(local=Endpoint(CORE_ADDR, PORT), secret=os.urandom(16))
    return Listener(config, make_app_factory(routes, keep_open))


def test_kernel_client_gets_hello_world_and_sees_end_of_file(tun: TunNamespace) -> None:
    listener = make_listener()
    assert serve(tun, listener, "toppage\\n") == [repr(b"hello world\n")]
    stats = listener.stats
    assert stats.connections_established == 1
    assert stats.resets_sent == 0 and stats.resets_received == 0
    assert stats.internal_errors == 0
    assert stats.time_wait == 1  # we closed first; the kernel's FIN arrived and was ACKed
    assert stats.drops_total == 0, dict(stats.drops)


def test_kernel_half_close_with_unterminated_request(tun: TunNamespace) -> None:
    listener = make_listener()
    assert serve(tun, listener, "toppage", half_close=True) == [repr(b"hello world\n")]
    assert listener.stats.resets_sent == 0
    # The client closed first here: we went CLOSE-WAIT -> LAST-ACK -> CLOSED, no TIME-WAIT.
    assert listener.stats.time_wait == 0
    assert listener.stats.connections_open == 0


def test_kernel_pipelined_requests_and_unknown_command(tun: TunNamespace) -> None:
    listener = make_listener()
    [line] = serve(tun, listener, "ping\\nhelp\\nxyzzy\\n")
    assert line == repr(b"pong\ncommands: help, ping, toppage\nerror: unknown command 'xyzzy' (try: help)\n")


def test_kernel_sequential_clients(tun: TunNamespace) -> None:
    listener = make_listener()
    lines = serve(tun, listener, "ping\\n", count=25)
    assert lines == [repr(b"pong\n")] * 25
    assert listener.stats.connections_established == 25
    assert listener.stats.connections_open == 0
    assert listener.stats.resets_sent == 0


def test_kernel_client_receives_a_large_reply_in_order(tun: TunNamespace) -> None:
    body = "".join(chr(ord("a") + i % 26) for i in range(60_000))
    listener = make_listener(Routes.from_mapping({"big": body}))
    [line] = serve(tun, listener, "big\\n")
    assert line == repr((body + "\n").encode())
    assert listener.stats.internal_errors == 0


def test_kernel_keep_open_until_the_client_closes(tun: TunNamespace) -> None:
    listener = make_listener(keep_open=True)
    [line] = serve(tun, listener, "ping\\nping\\n", half_close=True)
    assert line == repr(b"pong\npong\n")
    assert listener.stats.connections_open == 0 and listener.stats.time_wait == 0


def test_lost_reply_is_retransmitted_by_the_core(tun: TunNamespace) -> None:
    listener = make_listener()
    lost: list[str] = []

    def lose_first_reply(packet: bytes, outgoing: bool) -> bool:
        if outgoing and not lost and packet.endswith(b"hello world\n"):
            lost.append("reply")
            return True
        return False

    assert serve(tun, listener, "toppage\\n", lose=lose_first_reply) == [repr(b"hello world\n")]
    assert lost == ["reply"]
    assert listener.stats.retransmissions >= 1
    assert listener.stats.resets_sent == 0


def test_lost_request_is_retransmitted_by_the_kernel(tun: TunNamespace) -> None:
    listener = make_listener()
    lost: list[str] = []

    def lose_first_request(packet: bytes, outgoing: bool) -> bool:
        if not outgoing and not lost and packet.endswith(b"toppage\n"):
            lost.append("request")
            return True
        return False

    assert serve(tun, listener, "toppage\\n", lose=lose_first_request) == [repr(b"hello world\n")]
    assert lost == ["request"]
    assert listener.stats.drops_total == 0


def test_tshark_finds_nothing_wrong_with_the_exchange(tun: TunNamespace, tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    listener = make_listener()
    packets: list[bytes] = []

    def record(packet: bytes, outgoing: bool) -> bool:
        packets.append(packet)
        return False

    serve(tun, listener, "ping\\nhelp\\n", lose=record, count=3)
    capture = tmp_path / "core.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)  # LINKTYPE_RAW
    capture.write_bytes(header + b"".join(struct.pack("<IIII", 0, 0, len(p), len(p)) + p for p in packets))
    summary = subprocess.run(
        ["tshark", "-r", str(capture), "-Y", "tcp", "-T", "fields", "-e", "tcp.flags.str"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(summary.stdout.splitlines()) == len([p for p in packets if p[9] == 6])
    flagged = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            "tcp.analysis.flags or tcp.checksum.status == 0 or ip.checksum.status == 0",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert flagged.stdout == "", flagged.stdout

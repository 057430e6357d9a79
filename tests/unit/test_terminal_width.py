"""Tables fit the terminal they are printed on: ``replay`` and ``respond``'s live tables
in a pseudo-terminal of 80 and of 120 columns (``TIOCSWINSZ``), as a user's terminal.

No line may be wider than the terminal, and every endpoint, sequence number, flag and
state must appear whole (the JSON output of the same capture, and the core's own
states, say which). Where the output is not a terminal, no line ends in a space.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from l4kit.core.states import State

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(argv: list[str], columns: int, *, rows: int = 50, timeout: float = 60.0) -> str:
    """What ``argv`` prints in a pseudo-terminal ``columns`` wide (escapes removed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal's size is set before it runs anything
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
            env["TERM"] = "xterm-256color"
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise AssertionError(f"{argv} printed nothing for {timeout} s")
            try:
                data = os.read(fd, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return ANSI.sub("", out.decode("utf-8", errors="replace").replace("\r\n", "\n"))


def widths_fit(text: str, columns: int) -> None:
    from rich.cells import cell_len

    wide = [line for line in text.splitlines() if cell_len(line) > columns]
    assert not wide, f"{len(wide)} lines wider than {columns}: {wide[:3]}"


def capture(tmp_path: Path) -> Path:
    """Connections with long endpoints (IPv6), every handshake and close state, data with
    notes, a scaled window and a refused port."""
    packets = []
    t = 1_700_000_000.0

    def add(
        ip: type,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        flags: str,
        seq: int,
        ack: int = 0,
        data: bytes = b"",
        **kw,
    ) -> None:
        nonlocal t
        t += 0.001
        pkt = (
            Ether()
            / ip(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **kw)
        )
        if data:
            pkt = pkt / Raw(data)
        pkt.time = t
        packets.append(pkt)

    for ip, c, s in (
        (IP, "192.168.100.200", "10.20.30.40"),
        (IPv6, "2001:db8:1234:5678::a", "2001:db8:1234:5678::b"),
    ):
        for port in (50000, 50001):
            add(ip, c, s, port, 8888, "S", 4_000_000_000, options=[("WScale", 7)])
            add(ip, s, c, 8888, port, "SA", 3_999_999_000, 4_000_000_001, options=[("WScale", 9)])
            add(ip, c, s, port, 8888, "A", 4_000_000_001, 3_999_999_001)
            add(ip, c, s, port, 8888, "PA", 4_000_000_001, 3_999_999_001, b"toppage\n")
            add(ip, c, s, port, 8888, "PA", 4_000_000_001, 3_999_999_001, b"toppage\n")  # a retransmission
            add(ip, s, c, 8888, port, "PA", 3_999_999_001, 4_000_000_009, b"hello world\n")
            add(ip, s, c, 8888, port, "FA", 3_999_999_013, 4_000_000_009)
            add(ip, c, s, port, 8888, "FA", 4_000_000_009, 3_999_999_014)
            add(ip, s, c, 8888, port, "A", 3_999_999_014, 4_000_000_010)
        add(ip, c, s, 50002, 9999, "S", 7)
        add(ip, s, c, 9999, 50002, "RA", 0, 8)
    path = tmp_path / "wide.pcap"
    wrpcap(str(path), packets)
    return path


def expected_tokens(path: Path) -> set[str]:
    """Every endpoint, sequence number, flag and state the capture's tables must show."""
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "l4kit", "replay", str(path), "-f", "json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    tokens: set[str] = set()
    for conn in doc["connections"]:
        tokens |= {conn["client"], conn["server"], conn["client_state"], conn["server_state"]}
        for packet in conn["packets"]:
            tokens |= {packet["flags"], str(packet["seq"])}
            if packet["ack"] is not None:
                tokens.add(str(packet["ack"]))
        for tr in conn["transitions"]:
            tokens.add(f"{tr['from']} → {tr['to']}")
    return tokens


@pytest.mark.parametrize("columns", [80, 120])
def test_replay_tables_fit_the_terminal_and_keep_every_token_whole(tmp_path: Path, columns: int) -> None:
    path = capture(tmp_path)
    text = in_terminal([sys.executable, "-m", "l4kit", "replay", str(path)], columns)
    widths_fit(text, columns)
    missing = [token for token in expected_tokens(path) if token not in text]
    assert not missing, missing
    assert "…" not in text  # nothing cut


def test_replay_tables_in_a_pipe_have_no_trailing_spaces(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "l4kit", "replay", str(capture(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "┏" in out  # the boxed layout: no terminal, no width to fit
    assert not [line for line in out.splitlines() if line.endswith(" ")]


LIVE = """
import sys
sys.path.insert(0, {tests!r})
from l4kit.core import Listener, ListenerConfig, make_app_factory
from l4kit.views.live import LiveRenderer, consoles
from l4kit.wire import Endpoint, Segment, SeqNum, TcpFlags

console, _ = consoles()
renderer = LiveRenderer(console, verbose={verbose}, start=False)
for address, port in (("127.0.0.1", 40000), ("2001:db8:1234:5678::a", 50000)):
    server = "127.0.0.1" if "." in address else "2001:db8:1234:5678::b"
    core = Listener(ListenerConfig(local=Endpoint(server, 8888), secret=b"k" * 32), make_app_factory())

    def seg(flags, seq, ack=0, payload=b""):
        return Segment(src=address, dst=server, sport=port, dport=8888, seq=SeqNum(seq), ack=SeqNum(ack),
                       flags=TcpFlags.parse(flags), payload=payload)

    out = core.receive(seg("S", 1000), 1.0)
    isn = out.segments[0].seq.value
    renderer.take(list(out.events))
    for flags, seq, ack, data in (("A", 1001, 1, b""), ("PA", 1001, 1, b"toppage\\n"), ("A", 1009, 14, b""),
                                  ("FA", 1009, 14, b"")):
        renderer.take(list(core.receive(seg(flags, seq, isn + ack, data), 1.1).events))
    renderer.take(list(core.shutdown(2.0).events))
renderer.drain()
"""


@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("columns", [80, 120])
def test_respond_live_tables_fit_the_terminal_and_keep_states_whole(columns: int, verbose: bool) -> None:
    """The live renderer as ``respond`` makes it (its console sized by the terminal), fed
    by the real core: an IPv4 and an IPv6 connection, request, reply, close."""
    script = LIVE.format(tests=str(ROOT / "tests" / "unit"), verbose=verbose)
    text = in_terminal([sys.executable, "-c", script], columns)
    widths_fit(text, columns)
    for whole in (
        "127.0.0.1:40000 → 127.0.0.1:8888",
        "[2001:db8:1234:5678::a]:50000 → [2001:db8:1234:5678::b]:8888",
        f"{State.LISTEN} → {State.SYN_RECEIVED}",
        f"{State.SYN_RECEIVED} → {State.ESTABLISHED}",
        f"{State.ESTABLISHED} → {State.FIN_WAIT_1}",
        f"{State.FIN_WAIT_2} → {State.TIME_WAIT}",
        "SA",
        "PA",
        "FA",
    ):
        assert whole in text, whole
    assert "…" not in text


def test_respond_live_tables_without_a_terminal_have_no_trailing_spaces() -> None:
    """Output to a pipe (as ``respond | tee log``): the boxed layout, no line ending in a space."""
    result = subprocess.run(
        [sys.executable, "-c", LIVE.format(tests=str(ROOT / "tests" / "unit"), verbose=False)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert result.stdout.count("┏") == 2
    assert not [line for line in result.stdout.splitlines() if line.endswith(" ")]

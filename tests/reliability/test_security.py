"""Security properties of ``l4kit respond``, each checked from outside the process.

- It answers only its configured address and port (the kernel filter and the
  core both refuse the rest; the kernel's own RST for a closed port is fine).
- Initial sequence numbers follow RFC 6528: consecutive connections from one
  client do not get sequential ISNs, and the same 4-tuple gets an unrelated ISN
  after a restart (a new secret per run).
- The firewall rule it adds matches only its own address and port, and only RSTs.
- Nothing it writes is world-writable, whatever the umask: the state directory
  (0700) and file (0600), and the ``--pcap`` file (0600, see below).
- The ``--pcap`` path is never written through a symbolic link, and a FIFO, a
  directory or a device is refused; an existing file only with ``--force``, which
  keeps its mode and owner (l4kit.safefile).
- ``l4kit doctor`` says which privileges it needs and why.

Why a capture is 0600: it holds every payload the responder saw, and l4kit runs
as root, so a umask-respecting file (0644 under the usual 022) would let every
local user read the traffic. Wireshark's dumpcap makes its capture files 0600
for the same reason (0640 only when asked for group access). Under ``sudo`` the
file is handed to the user who ran sudo (SUDO_UID/SUDO_GID), who can then read
it without root (``l4kit replay`` needs none).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import rawframes
from reliability_helpers import Summary, needs, send_frames, silence, tshark_fields

from namespaces import RunningResponder, Tcpdump

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = [pytest.mark.live, pytest.mark.reliability]


def respond_with(ns: Namespace, *args: str, umask: int | None = None, env: dict[str, str] | None = None) -> (
    RunningResponder
):  # fmt: skip
    """``ns.respond`` with a umask and extra environment of the test's choosing."""
    environment = ns.env() | (env or {})
    process = subprocess.Popen(
        ns.argv([sys.executable, "-m", "l4kit", "respond", *args]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        env=environment, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,  # noqa: PLW1509
    )  # fmt: skip
    ns.children.append(process)
    return RunningResponder(process)


# ---------------------------------------------------------------- files


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_nothing_it_writes_is_world_writable_even_with_umask_000(netns: Namespace, tmp_path: Path) -> None:
    capture = tmp_path / "run.pcap"
    responder = respond_with(netns, "--quiet", "--pcap", str(capture), umask=0o000)
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    (state_file,) = netns.state_files()
    modes = {"state dir": mode(state_file.parent), "state file": mode(state_file), "pcap": mode(capture)}
    code, output = responder.stop()
    assert code == 0, output
    print(f"modes under umask 000: { {k: oct(v) for k, v in modes.items()} }")
    assert modes == {"state dir": 0o700, "state file": 0o600, "pcap": 0o600}
    assert mode(capture) == 0o600  # still, once complete


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def file_state(path: Path) -> tuple[bytes, int, int, int]:
    info = os.stat(path)
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def test_a_symlinked_pcap_is_refused_and_its_target_left_byte_for_byte(
    netns: Namespace, tmp_path: Path
) -> None:
    # A local user plants /tmp/evil.pcap -> a file root can write; root must not write through it.
    target = tmp_path / "victim.conf"
    target.write_bytes(b"setting = 1\n")
    target.chmod(0o644)
    before = file_state(target)
    link = tmp_path / "evil.pcap"
    link.symlink_to(target)
    for extra in ((), ("--force",)):
        line = one_error_line(
            netns.l4kit("respond", "--quiet", "--duration", "1", "--pcap", str(link), *extra)
        )
        assert line.startswith(f"error: --pcap {link} is a symbolic link"), line
        assert file_state(target) == before
    assert netns.state_files() == [] and "l4kit" not in netns.firewall_snapshot()["nft"]  # nothing was set up


def test_a_fifo_or_a_directory_or_a_device_as_pcap_is_refused_at_once(
    netns: Namespace, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    for path, words in (
        (fifo, "a FIFO (named pipe)"),
        (directory, "a directory"),
        (Path("/dev/null"), "a device"),
    ):
        # Opened naively, a FIFO blocks the open for ever (past --duration; only SIGKILL ends it).
        line = one_error_line(
            netns.l4kit("respond", "--duration", "1", "--pcap", str(path), "--force", timeout=30)
        )
        assert line == f"error: --pcap {path} is {words}; refusing to write to it"


def test_an_existing_pcap_needs_force_which_keeps_its_mode_and_owner(
    netns: Namespace, tmp_path: Path
) -> None:
    capture = tmp_path / "old.pcap"
    capture.write_bytes(b"old")
    capture.chmod(0o640)
    os.chown(capture, 65534, 65533)
    line = one_error_line(netns.l4kit("respond", "--duration", "1", "--pcap", str(capture)))
    assert line == (
        f"error: --pcap {capture} exists; refusing to overwrite it "
        "(--force overwrites it, keeping its mode and owner)"
    )
    assert file_state(capture) == (b"old", 0o640, 65534, 65533)
    responder = respond_with(netns, "--quiet", "--pcap", str(capture), "--force")
    assert netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    content, *kept = file_state(capture)
    assert content[:4] == bytes.fromhex("d4c3b2a1")  # rewritten: a pcap
    assert kept == [0o640, 65534, 65533]


# ---------------------------------------------------------------- the firewall rule


def test_the_nft_rule_matches_only_its_own_address_port_and_rsts(netns: Namespace) -> None:
    responder = netns.respond("--quiet", "--port", "8890", "--firewall", "nft")
    ruleset = json.loads(netns.run(["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    code, output = responder.stop()
    assert code == 0, output
    tables = [item["table"] for item in ruleset if "table" in item]
    assert [t["name"] for t in tables] == ["l4kit_8890"]  # one table of its own, nothing else touched
    (chain,) = [item["chain"] for item in ruleset if "chain" in item]
    assert (chain["hook"], chain["type"], chain["policy"]) == ("output", "filter", "accept")
    (rule,) = [item["rule"] for item in ruleset if "rule" in item]
    matches = [e["match"] for e in rule["expr"] if "match" in e]
    verdicts = [key for e in rule["expr"] for key in e if key in ("accept", "drop", "reject", "jump", "goto")]
    fields = {
        (m["left"]["payload"]["protocol"], m["left"]["payload"]["field"]): (m["op"], m["right"])
        for m in matches
        if "payload" in m["left"]
    }
    assert fields[("ip", "saddr")] == ("==", "127.0.0.1")
    assert fields[("tcp", "sport")] == ("==", 8890)
    # "tcp flags & rst == rst": the only other match.
    (flag_match,) = [m for m in matches if "&" in m["left"]]
    assert flag_match["right"] == "rst" or flag_match["right"] == ["rst"]
    assert len(matches) == 3 and verdicts == ["drop"]


def test_the_iptables_rule_matches_only_its_own_address_port_and_rsts(netns: Namespace) -> None:
    responder = netns.respond("--quiet", "--port", "8890", "--firewall", "iptables")
    saved = netns.run(["iptables-save"]).stdout
    code, output = responder.stop()
    assert code == 0, output
    rules = [line for line in saved.splitlines() if line.startswith("-A ")]
    assert rules == [
        '-A OUTPUT -m comment --comment "l4kit:8890" -j L4KIT-8890',
        "-A L4KIT-8890 -s 127.0.0.1/32 -p tcp -m tcp --sport 8890 --tcp-flags RST RST "
        "-m comment --comment l4kit -j DROP",
    ], saved


# ---------------------------------------------------------------- what it answers


@needs("tcpdump", "tshark")
def test_answers_only_its_address_and_port(netns: Namespace, tmp_path: Path) -> None:
    # SYNs to other ports and other loopback addresses (no kernel socket anywhere), from
    # spoofed sources whose replies the kernel never sees; then to the right endpoint.
    silence(netns, daddr="127.4.0.0/16")
    capture = Tcpdump(netns, tmp_path / "all.pcap", "tcp")
    responder = netns.respond("--quiet")
    targets = [("127.0.0.1", port) for port in (1, 22, 80, 8887, 8889, 65535)]
    targets += [(address, 8888) for address in ("127.0.0.2", "127.0.1.1", "127.255.255.254")]
    elsewhere = [
        rawframes.ipv4_tcp(f"127.4.0.{1 + i}", dst, 20000 + i, dport, seq=i)
        for i, (dst, dport) in enumerate(targets)
    ]
    right = [rawframes.ipv4_tcp("127.4.1.1", "127.0.0.1", 30000 + i, 8888, seq=i) for i in range(5)]
    send_frames(netns, elsewhere + right, tmp_path)
    # The real client last: once it is served, the responder has read everything before it.
    assert netns.run(["nc", "127.0.0.1", "8888"], input="ping\n", timeout=10).stdout == "pong\n"
    responder.settle(quiet=0.5, timeout=30, strict=True)  # and nc's closing segments too
    code, output = responder.stop()
    closing = capture.stop()
    assert code == 0, output
    assert capture.kernel_dropped(closing) == 0
    summary = Summary.parse(output)
    assert summary.frames_matched == len(right) + summary.checksums_offloaded  # nc's frames are offloaded
    rows = tshark_fields(capture.path, "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.flags")
    to_elsewhere = [row for row in rows if row[2].startswith("127.4.0.")]
    to_right = [row for row in rows if row[2] == "127.4.1.1"]
    # Every answer to the misdirected SYNs is the kernel's RST (closed port / no socket), none
    # is a SYN-ACK: l4kit never answered them.
    assert len(to_elsewhere) == len(elsewhere), to_elsewhere
    assert all(
        int(row[4], 16) & rawframes.RST and not int(row[4], 16) & rawframes.SYN for row in to_elsewhere
    )
    assert {(row[0], row[1]) for row in to_elsewhere} == {(dst, str(dport)) for dst, dport in targets}
    # The five SYNs to the right endpoint got SYN-ACKs from 127.0.0.1:8888, and at the stop
    # the RST that aborts each half-open connection (RFC 9293 §3.10.4).
    assert summary.aborted_at_exit == len(right)
    assert sorted((row[0], row[1], int(row[4], 16)) for row in to_right) == sorted(
        [("127.0.0.1", "8888", rawframes.SYN | rawframes.ACK)] * len(right)
        + [("127.0.0.1", "8888", rawframes.RST | rawframes.ACK)] * len(right)
    )


# ---------------------------------------------------------------- initial sequence numbers


ISN_CLIENT = r"""
import json, socket, sys
ports = [int(p) for p in sys.argv[1].split(",")]
for port in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.settimeout(10)
    s.connect(("127.0.0.1", 8888))
    s.sendall(b"ping\n")
    while s.recv(100):
        pass
    s.close()
"""


def server_isns(path: Path) -> dict[int, list[int]]:
    """Client port -> the raw ISNs of l4kit's SYN-ACKs to it, in capture order."""
    isns: dict[int, list[int]] = {}
    for port, seq in tshark_fields(
        path, "tcp.dstport", "tcp.seq_raw", display_filter="tcp.flags.syn == 1 && tcp.flags.ack == 1"
    ):
        isns.setdefault(int(port), []).append(int(seq))
    return isns


def wrap_distance(a: int, b: int) -> int:
    """|a - b| on the 32-bit sequence circle."""
    d = (a - b) % (1 << 32)
    return min(d, (1 << 32) - d)


@needs("tcpdump", "tshark")
def test_isns_are_not_sequential_and_change_across_restarts(netns: Namespace, tmp_path: Path) -> None:
    # RFC 6528 §3: ISN = M + F(4-tuple, secret), M a 4 µs clock. Consecutive connections
    # from one client differ in their source port, so F makes their ISNs unrelated; the
    # same 4-tuples after a restart get a new secret, so F changes by an unrelated
    # amount for each (a fixed secret would shift them all by the same M difference).
    ports = list(range(41000, 41016))
    isns: list[dict[int, list[int]]] = []
    for run in range(2):
        capture = Tcpdump(netns, tmp_path / f"run{run}.pcap", "tcp port 8888")
        responder = netns.respond("--quiet")
        netns.python(ISN_CLIENT, ",".join(map(str, ports)))
        code, output = responder.stop()
        capture.stop()
        assert code == 0, output
        isns.append(server_isns(capture.path))
        assert sorted(isns[-1]) == ports and all(len(v) == 1 for v in isns[-1].values())
    first = [isns[0][p][0] for p in ports]
    second = [isns[1][p][0] for p in ports]
    steps = [wrap_distance(b, a) for a, b in itertools.pairwise(first)]
    print(f"ISNs of consecutive connections: {[hex(i) for i in first[:6]]}...; steps {steps[:6]}...")
    # Sequential (or clock-only) ISNs would step by less than 2**24 (a 4 µs clock moves
    # 2**24 in 67 s). For unrelated 32-bit values a step that small has probability
    # 2**-7; more than three of fifteen would happen about once in 10**5 runs.
    assert sum(step < 1 << 24 for step in steps) <= 3, steps
    assert len(set(first)) == len(first)
    shifts = [(b - a) % (1 << 32) for a, b in zip(first, second, strict=True)]
    print(f"restart shifts per 4-tuple: {[hex(s) for s in shifts[:6]]}...")
    assert all(first[i] != second[i] for i in range(len(ports)))
    # With one secret the shifts would all equal the clock's advance between the runs, give
    # or take the few milliseconds between connections (2**12 ticks): they must spread.
    assert max(wrap_distance(s, shifts[0]) for s in shifts) > 1 << 24


# ---------------------------------------------------------------- privileges


def test_doctor_says_what_privileges_respond_needs_and_why() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "doctor"], capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│")}
    assert re.search(r"packet socket", rows["CAP_NET_RAW"])
    assert re.search(r"RST rule.*sysctls", rows["CAP_NET_ADMIN"])
    assert re.search(r"namespaces", rows["CAP_SYS_ADMIN"])


def test_doctor_without_privileges_names_what_is_missing_and_the_fix(tmp_path: Path, installed: Path) -> None:
    # Drop every capability: doctor must still run (it only reads) and say what is missing.
    # As nobody, l4kit runs from the shared fresh install (tests/conftest.py), which nobody
    # can reach wherever the checkout is.
    setpriv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "-all"]
    done = subprocess.run(
        [*setpriv, installed / "python", "-m", "l4kit", "doctor"], capture_output=True, text=True,
        timeout=120, check=False, env=os.environ | {"COLUMNS": "200", "HOME": str(tmp_path)}, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│")}
    for capability in ("CAP_NET_RAW", "CAP_NET_ADMIN"):
        assert "missing" in rows[capability] and "run as root" in rows[capability], rows[capability]
    assert "not ready" in done.stdout

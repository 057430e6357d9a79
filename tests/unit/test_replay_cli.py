"""``l4kit replay`` as a user runs it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
import sys

import pytest
from scapy.packet import Raw
from scapy.utils import wrpcap
from test_replay_support import DATA


def l4kit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4kit", "replay", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        check=False,  # the exit status is what the tests look at
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + (result.stdout or "")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("dir", "is a directory"),
        (b"", "empty file"),
        (b"GET / HTTP/1.1\r\n" * 20, "not a pcap"),
        (b"\x0a\x0d\x0d\x0a" + b"\x00" * 40, "not a pcap"),  # a pcapng magic, then nothing sensible
    ],
    ids=["missing", "directory", "empty", "text", "broken-pcapng"],
)
def test_unreadable_input_exits_2_with_one_line(tmp_path, content, words):
    path = tmp_path / "input.pcap"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = l4kit(str(path))
    assert result.returncode == 2
    assert words in one_line_error(result)
    assert result.stdout == ""


def test_unsupported_link_type_exits_2(tmp_path):
    path = tmp_path / "ble.pcap"
    wrpcap(str(path), [Raw(b"\x00" * 20)], linktype=251)  # Bluetooth LE
    result = l4kit(str(path))
    assert result.returncode == 2
    assert "unsupported link type" in one_line_error(result)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_bad_filter_exits_2(tmp_path):
    result = l4kit(str(DATA / "lo-kernel.pcap"), "--filter", "port port")
    assert result.returncode == 2
    assert "--filter" in one_line_error(result)


def test_truncated_capture_prints_results_warns_and_exits_3(tmp_path):
    data = (DATA / "lo-kernel.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-20])
    result = l4kit(str(path), "--format", "json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["summary"]["truncated"] is True
    assert doc["summary"]["packets"] == 17
    assert "Traceback" not in result.stderr
    assert "warning:" in result.stderr and "truncated" in result.stderr


def test_the_three_formats_and_selection():
    path = str(DATA / "lo-kernel.pcap")
    table = l4kit(path)
    assert table.returncode == 0 and "RSTO" in table.stdout
    doc = json.loads(l4kit(path, "-f", "json", "--port", "9999").stdout)
    assert [c["state"] for c in doc["connections"]] == ["REJ"]
    mermaid = l4kit(path, "-f", "mermaid", "--stream", "2")
    assert mermaid.stdout.startswith("sequenceDiagram\n")
    assert mermaid.stdout.count("->>") == 6


def test_step_without_a_terminal_prints_all_steps():
    result = l4kit(str(DATA / "lo-kernel.pcap"), "--step", "--stream", "1", stdin="")
    assert result.returncode == 0
    assert result.stdout.count("###[ TCP ]###") == 2


def test_through_responder_on_a_capture_of_l4kit_itself_finds_no_difference():
    result = l4kit(str(DATA / "lo-l4kit-responder.pcap"), "--through-responder", "-f", "json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert len(doc["connections"]) == 2
    assert [c["differences"] for c in doc["connections"]] == [[], []]


def test_through_responder_shows_where_the_kernel_answers_differently():
    result = l4kit(str(DATA / "lo-kernel.pcap"), "--through-responder", "-f", "json")
    doc = json.loads(result.stdout)
    diffs = {c["id"]: c["differences"] for c in doc["connections"]}
    # the kernel acknowledges the request on its own before replying; l4kit does not
    assert diffs[0] == ["frame 5: server sent A seq=1 ack=9; the responder does not"]
    # the refused port: the kernel resets, l4kit (which listens on every port asked) answers
    assert diffs[1] == [
        "frame 12: server sent RA seq=0 ack=1; the responder sends SA seq=0 ack=1 (SYN-RECEIVED)"
    ]
    assert diffs[2] == []


def test_routes_for_the_responder_come_from_a_file(tmp_path):
    routes = tmp_path / "routes.toml"
    routes.write_text('[routes]\ntoppage = "something else"\n')
    result = l4kit(
        str(DATA / "lo-l4kit-responder.pcap"), "--through-responder", "--routes", str(routes), "-f", "json"
    )
    doc = json.loads(result.stdout)
    assert any("something else" in line for line in doc["connections"][0]["differences"])
    missing = l4kit(
        str(DATA / "lo-l4kit-responder.pcap"), "--through-responder", "--routes", str(tmp_path / "x")
    )
    assert missing.returncode != 0 and "--routes" in one_line_error(missing)


def test_a_reader_that_stops_early_ends_the_run_quietly():
    for fmt in ("json", "table", "mermaid"):
        producer = subprocess.Popen(
            [sys.executable, "-m", "l4kit", "replay", str(DATA / "lo-kernel.pcap"), "-f", fmt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert producer.stdout is not None and producer.stderr is not None
        producer.stdout.read(10)
        producer.stdout.close()  # like `| head -c 10`
        err = producer.stderr.read().decode()
        producer.wait(timeout=60)
        assert "Traceback" not in err and "Exception" not in err, err
        assert producer.returncode in (0, 1)


def test_an_unwritable_output_is_one_line():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "l4kit", "replay", str(DATA / "lo-kernel.pcap"), "-f", "json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot write the output" in one_line_error(result)


def test_an_error_message_is_printed_as_written_not_as_markup(tmp_path):
    # Rich markup in a user's file name must not be interpreted (nor crash the error line).
    name = tmp_path / "[bold]capture[/bold] [x].pcap"
    result = l4kit(str(name))
    assert result.returncode == 2
    assert str(name) in one_line_error(result)


def l4kit_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    """``l4kit replay ARGS`` with ``stdin`` (octets) on its standard input."""
    result = subprocess.run(
        [sys.executable, "-m", "l4kit", "replay", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def test_a_capture_on_standard_input_reads_like_the_file(tmp_path):
    """``replay -`` as tcpdump's ``-r -``: pcap, pcapng and gzip'd, also with --filter."""
    from scapy.utils import rdpcap, wrpcapng

    path = DATA / "lo-kernel.pcap"
    expected = json.loads(l4kit(str(path), "-f", "json").stdout)
    pcapng = tmp_path / "k.pcapng"
    wrpcapng(str(pcapng), rdpcap(str(path)))
    for data in (path.read_bytes(), pcapng.read_bytes(), gzip.compress(pcapng.read_bytes())):
        got = l4kit_bytes("-", "-f", "json", stdin=data)
        assert got.returncode == 0, got.stderr
        doc = json.loads(got.stdout)
        assert doc["file"] == "-"
        assert {c.pop("file") for c in doc["connections"]} == {"-"}  # each connection names it too
        assert doc["connections"] == [
            {k: v for k, v in c.items() if k != "file"} for c in expected["connections"]
        ]
    filtered = json.loads(
        l4kit_bytes("-", "-f", "json", "--filter", "port 9999", stdin=path.read_bytes()).stdout
    )
    assert [(c["id"], c["first_frame"]) for c in filtered["connections"]] == [(1, 11)]
    table = l4kit_bytes("-", stdin=path.read_bytes())
    assert "TCP connections in standard input" in table.stdout
    empty = l4kit_bytes("-", stdin=b"")
    assert empty.returncode == 2 and "standard input" in one_line_error(empty)


def test_a_filter_never_renumbers():
    """``--filter 'port 9999'`` shows the connection ``--port 9999`` shows: id 1, frames 11-12
    (a filtered copy read on its own would call it connection 0, frames 1-2)."""
    path = str(DATA / "lo-kernel.pcap")
    by_port = json.loads(l4kit(path, "-f", "json", "--port", "9999").stdout)["connections"]
    by_filter = json.loads(l4kit(path, "-f", "json", "--filter", "port 9999").stdout)
    assert [(c["id"], [p["frame"] for p in c["packets"]]) for c in by_filter["connections"]] == [
        (1, [11, 12])
    ]
    assert by_filter["connections"] == by_port
    assert by_filter["summary"]["filter_frames"] == 2 and by_filter["summary"]["connections"] == 3
    subset = json.loads(l4kit(path, "-f", "json", "--filter", "tcp[tcpflags] & tcp-syn != 0").stdout)
    assert [p["frame"] for c in subset["connections"] for p in c["packets"]] == [1, 2, 11, 13, 14]


@pytest.mark.parametrize("fmt", ["table", "json", "mermaid"])
def test_a_stream_past_the_last_connection_is_one_line_and_exit_2(fmt):
    result = l4kit(str(DATA / "lo-kernel.pcap"), "--stream", "7", "-f", fmt)
    assert result.returncode == 2
    assert "--stream 7: the capture has 3 connections (ids 0 to 2)" in one_line_error(result)
    assert result.stdout == ""


@pytest.mark.parametrize("fmt", ["json", "mermaid"])
def test_step_is_refused_with_json_and_mermaid(fmt):
    result = l4kit(str(DATA / "lo-kernel.pcap"), "--step", "-f", fmt, stdin="")
    assert result.returncode == 2
    assert "--step" in one_line_error(result) and fmt in one_line_error(result)
    assert result.stdout == ""


def _pcapng_two_interfaces(path, packets, other_linktype: int) -> None:
    """A pcapng whose interface 0 is Ethernet and interface 1 of ``other_linktype``; every
    other packet goes to interface 1 (as raw bytes l4kit cannot read)."""

    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0))
    out += block(1, struct.pack("<HHI", other_linktype, 0, 0))
    for n, packet in enumerate(packets):
        data = bytes(packet)
        ts = int(float(packet.time) * 1_000_000)
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
        out += block(6, struct.pack("<IIIII", 1, ts >> 32, ts & 0xFFFFFFFF, 8, 8) + bytes(8) + bytes([n]))
    path.write_bytes(out)


def test_a_pcapng_interface_of_an_unsupported_link_type_is_skipped_with_one_warning(tmp_path):
    from scapy.utils import rdpcap

    packets = rdpcap(str(DATA / "lo-kernel.pcap"))
    path = tmp_path / "two.pcapng"
    _pcapng_two_interfaces(path, packets, 147)
    result = l4kit(str(path), "-f", "json")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "147" in warnings[0] and f"{len(packets)} packets" in warnings[0]
    doc = json.loads(result.stdout)
    assert len(doc["connections"]) == 3
    assert doc["summary"]["skipped"] == {"unsupported-linktype": len(packets)}
    table = l4kit(str(path))
    assert "skipped: 18 unsupported-linktype" in table.stdout and "RSTO" in table.stdout


def test_the_window_column_is_scaled_where_the_handshake_says_so():
    table = l4kit(str(DATA / "lo-kernel.pcap"), "--stream", "0").stdout
    assert "win (scaled)" in table
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert "65536" in rows[-1]  # 512 << 7: Wireshark's calculated window


def test_a_routes_file_that_is_not_utf8_is_one_line_for_both_commands(tmp_path):
    """One loader reads a routes file for ``replay --through-responder`` and for
    ``respond``: a file that is not UTF-8 is one error line naming it, never a traceback."""
    from l4kit.errors import ConfigError
    from l4kit.live.apps import load_app_factory

    routes = tmp_path / "latin1.toml"
    routes.write_bytes('[routes]\ntoppage = "caf\xe9"\n'.encode("latin-1"))
    result = l4kit(str(DATA / "lo-l4kit-responder.pcap"), "--through-responder", "--routes", str(routes))
    assert result.returncode == 1
    line = one_line_error(result)
    assert str(routes) in line and "UTF-8" in line
    with pytest.raises(ConfigError) as respond_error:
        load_app_factory(routes, keep_open=False)
    assert f"error: {respond_error.value}" == line

"""``l4kit replay`` as a user runs it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import shutil
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

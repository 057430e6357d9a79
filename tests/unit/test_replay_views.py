"""Replay's outputs: the JSON schema, Mermaid, the Rich tables, --step."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from test_replay_support import (
    DATA,
    Conv,
    imported_by_replay,
    needs_tshark,
    preview_heads,
    replay,
    tshark_fields,
    write,
)

from l4kit.commands.replay import run_replay
from l4kit.mermaid import mermaid_escape
from l4kit.replay.jsontext import JSON_SCHEMA, connection_json
from l4kit.views.replay import (
    MermaidWriter,
    PacketWalker,
    TableCollector,
    transition_rows,
)

CONNECTION_KEYS = [
    "id", "client", "server", "state", "history", "client_state", "server_state", "start", "duration",
    "first_frame", "last_frame", "c2s", "s2c", "checksum", "analysis", "notes", "packets", "packets_omitted",
    "transitions", "transitions_omitted", "file", "uid", "community_id",
]  # fmt: skip
PACKET_KEYS = ["frame", "t", "dir", "flags", "seq", "ack", "len", "win", "checksum", "notes", "data"]
SCALED_PACKET_KEYS = [*PACKET_KEYS[:8], "win_scaled", "win_scale", *PACKET_KEYS[8:]]


def run_json(path, **kw) -> dict:
    out = io.StringIO()
    assert run_replay(str(path), fmt="json", out=out, **kw) == 0
    return json.loads(out.getvalue())


def test_json_document_follows_the_schema():
    doc = run_json(DATA / "lo-kernel.pcap")
    assert list(doc) == ["schema", "file", "connections", "summary"]
    assert doc["schema"] == JSON_SCHEMA == "l4kit.replay/1.1"
    assert [c["id"] for c in doc["connections"]] == [0, 1, 2]
    for conn in doc["connections"]:
        assert list(conn) == CONNECTION_KEYS
        for packet in conn["packets"]:
            # The scale is known where the capture shows the handshake: not for the
            # refusing RST of connection 1 (no SYN-ACK: the server's scale is unknown).
            if (conn["id"], packet["frame"]) == (1, 12):
                assert list(packet) == PACKET_KEYS
            else:
                assert list(packet) == SCALED_PACKET_KEYS
                assert packet["win_scaled"] == packet["win"] << packet["win_scale"]
            assert packet["dir"] in ("c2s", "s2c")
            assert packet["checksum"] in ("ok", "bad", "offloaded")
        for tr in conn["transitions"]:
            assert list(tr) == ["t", "packet", "frame", "side", "from", "to"]
    summary = doc["summary"]
    assert (summary["packets"], summary["tcp_packets"], summary["connections"]) == (18, 18, 3)
    assert summary["checksum"] == {"ok": 1, "bad": 0, "offloaded": 17}
    assert summary["truncated"] is False
    first = doc["connections"][0]
    assert (first["state"], first["history"], first["client"], first["server"]) == (
        "SF", "ShADadfF", "127.0.0.1:36490", "127.0.0.1:8888",
    )  # fmt: skip
    request = first["packets"][3]
    assert (request["flags"], request["seq"], request["ack"], request["len"], request["data"]) == (
        "PA", 1, 1, 8, "toppage\\n",
    )  # fmt: skip
    assert first["packets"][0]["ack"] is None  # a SYN carries no acknowledgment


@needs_tshark
def test_json_counts_match_tshark_on_the_committed_kernel_capture():
    path = DATA / "lo-kernel.pcap"
    doc = run_json(path)
    rows = tshark_fields(
        path, "tcp.stream", "frame.len", "tcp.srcport", "tcp.flags.str", "tcp.seq", "tcp.ack"
    )
    for conn in doc["connections"]:
        mine = [r for r in rows if int(r[0]) == conn["id"]]
        client_port = int(conn["client"].rsplit(":", 1)[1])
        c2s = [r for r in mine if int(r[2]) == client_port]
        s2c = [r for r in mine if int(r[2]) != client_port]
        assert (conn["c2s"]["packets"], conn["s2c"]["packets"]) == (len(c2s), len(s2c))
        assert conn["c2s"]["bytes"] == sum(int(r[1]) for r in c2s)
        assert conn["s2c"]["bytes"] == sum(int(r[1]) for r in s2c)
        # tshark's flag string uses '·' for unset bits: compare the set letters
        tshark_flags = ["".join(ch for ch in r[3] if ch.isalpha()) for r in mine]
        letters = {"F": "F", "S": "S", "R": "R", "P": "P", "A": "A"}
        ours = ["".join(sorted(letters[ch] for ch in p["flags"])) for p in conn["packets"]]
        assert ours == ["".join(sorted(f)) for f in tshark_flags]
        assert [p["seq"] for p in conn["packets"]] == [int(r[4]) for r in mine]


def test_connection_json_is_what_the_stream_writes(tmp_path):
    conv = Conv().handshake()
    conv.c("PA", 1, 1, b'quote " backslash \\ tab \t and more than thirty-two bytes of it')
    [report], _ = replay(write(tmp_path, conv.packets))
    text = json.dumps(connection_json(report))
    assert json.loads(text) == connection_json(report)
    data = connection_json(report)["packets"][3]["data"]
    assert data == 'quote " backslash \\\\ tab \\t and mo…'  # 32 payload octets, then …


def test_mermaid_keeps_loopback_ports_apart_and_escapes_labels(tmp_path):
    conv = Conv(client=("127.0.0.1", 40000), server=("127.0.0.1", 8888)).handshake()
    conv.c("PA", 1, 1, b"a;b#c<d>\n")
    [report], summary = replay(write(tmp_path, conv.packets))
    out = io.StringIO()
    writer = MermaidWriter(out)
    writer(report)
    writer.close(summary)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant P0 as 127.0.0.1:40000" in lines
    assert "    participant P1 as 127.0.0.1:8888" in lines
    arrows = [ln for ln in lines if "->>" in ln]
    assert len(arrows) == len(conv.packets)
    assert arrows[1].startswith("    P1->>P0: SA seq=0 ack=1")
    data = arrows[3]
    label = data.split(": ", 1)[1]
    assert "«a#59;b#35;c#lt;d#gt;\\n»" in label
    assert not set(re.sub(r"#\w+;", "", label)) & set(";#<>")  # only inside entity codes
    assert "\\n" in data  # the newline is shown escaped, never written


def test_mermaid_of_a_capture_without_tcp_notes_it_over_a_declared_participant(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    path = write(tmp_path, [Ether() / IP(dst="127.0.0.1") / UDP(dport=53)], name="no-tcp.pcap")
    out = io.StringIO()
    assert run_replay(str(path), fmt="mermaid", out=out) == 0
    lines = out.getvalue().splitlines()
    declared = {line.split()[1] for line in lines if line.strip().startswith("participant ")}
    notes = [line for line in lines if line.strip().startswith("Note over ")]
    assert notes, lines
    for note in notes:
        over = note.split("Note over ", 1)[1].split(":", 1)[0]
        assert set(over.split(",")) <= declared, (note, declared)  # no actor made up by a note
    assert f"participant P0 as {path}" in out.getvalue()
    assert "no TCP connection in the capture" in out.getvalue()


def test_mermaid_escape_order():
    assert mermaid_escape("#;") == "#35;#59;"
    assert mermaid_escape("a\nb") == "a b"


def test_table_output_lists_connections_and_their_transitions():
    out = io.StringIO()
    assert run_replay(str(DATA / "lo-kernel.pcap"), out=out) == 0
    text = out.getvalue()
    assert "TCP connections in" in text
    for word in ("SF", "REJ", "RSTO", "ShADadfF", "offloaded", "SYN-SENT → ESTABLISHED", "no listener"):
        assert word in text


def test_table_collector_drops_rows_beyond_its_limit(tmp_path, monkeypatch):
    from l4kit.views import replay as view

    monkeypatch.setattr(view, "TABLE_DETAIL_LIMIT", 1)
    reports, summary = replay(DATA / "lo-kernel.pcap")
    collector = TableCollector()
    for r in reports:
        collector(r)
    console = Console(file=io.StringIO(), width=200)
    collector.render(console, summary)
    text = console.file.getvalue()
    assert "2 connections listed without their packets" in text


def test_step_prints_every_packet_without_waiting_when_not_interactive():
    out = io.StringIO()
    assert run_replay(str(DATA / "lo-kernel.pcap"), step=True, stream=1, out=out, interactive=False) == 0
    text = out.getvalue()
    assert text.count("frame 1") >= 1 and "connection 1" in text
    assert "###[ Ethernet ]###" in text and "###[ TCP ]###" in text
    assert "client: CLOSED → SYN-SENT" in text
    assert "TCP connections in" in text  # the table follows the steps


def test_step_waits_for_enter_and_q_stops():
    reports, _ = replay(DATA / "lo-kernel.pcap")
    answers = iter(["\n", "q\n"])
    console = Console(file=io.StringIO(), width=120)
    stepper = PacketWalker(console, interactive=True, read_line=lambda: next(answers))
    rows = reports[0].rows
    for rec in rows[:3]:
        stepper(reports[0], rec, 1, b"\x00" * 60)
        if stepper.stopped:
            break
    assert stepper.count == 2 and stepper.stopped


def test_transition_rows_are_the_shared_table_rows():
    reports, _ = replay(DATA / "lo-kernel.pcap")
    rows = transition_rows(reports[0])
    assert rows[0].before == "LISTEN" and rows[0].after == "SYN-RECEIVED"
    assert rows[0].client_before == "CLOSED" and rows[0].client_after == "SYN-SENT"
    assert rows[3].payload_preview == "toppage\\n"


def test_hand_formatted_json_equals_json_dumps_of_the_same_values(tmp_path):
    """The writer formats the per-connection and per-packet text itself for speed:
    parsed back, it must be exactly the values json.dumps would have written."""
    from l4kit.replay.jsontext import _connection_fields, _row_json, connection_json_text

    conv = Conv().handshake()
    conv.c("PA", 1, 1, bytes(range(40)))
    conv.c("PA", 1, 1, bytes(range(40)), dt=1.0)  # a retransmission: notes
    conv.s("RA", 1, 41)
    [report], _ = replay(write(tmp_path, conv.packets))
    report.notes.append('a "quoted" note \\ with a backslash')
    parsed = json.loads(connection_json_text(report))
    for key, value in _connection_fields(report).items():
        assert parsed[key] == pytest.approx(value) if isinstance(value, float) else parsed[key] == value, key
    for rec, packet in zip(report.rows, parsed["packets"], strict=True):
        assert json.loads(_row_json(rec)) == packet
        assert packet["t"] == pytest.approx(rec[1], abs=1e-9)
    assert parsed["packets"][4]["notes"] == ["retransmission"]


@pytest.mark.parametrize("fmt", ["json", "mermaid"])
def test_json_and_mermaid_never_import_rich_scapy_or_pydantic(fmt):
    """Start-up is part of every replay's time: the machine formats load neither Rich
    (about 45 ms) nor Scapy; the table does load Rich. No format loads pydantic: typer
    0.29 validates every option through it, about 0.23 s per command, so pyproject.toml
    keeps typer below 0.29 and this says when that stops holding."""
    watched = {"pydantic", "rich", "scapy"}
    assert imported_by_replay(DATA / "lo-kernel.pcap", fmt, watched) == []
    table = imported_by_replay(DATA / "lo-kernel.pcap", "table", watched)
    assert table == ["rich"]  # the check itself sees an import


def test_payload_preview_json_is_json_dumps_of_the_preview_for_every_octet():
    """_data_json escapes with codecs.escape_encode and three replaces: the same text
    as json.dumps(preview()) for each octet alone, beside quotes and backslashes,
    and for previews cut at PREVIEW_BYTES (the … is written as \\u2026)."""
    from l4kit.replay.jsontext import _data_json
    from l4kit.replay.model import PREVIEW_BYTES, preview

    for head in preview_heads():
        for length in (len(head), len(head) + 1, PREVIEW_BYTES + 1):
            assert _data_json(head, length) == json.dumps(preview(head, length)), (head, length)


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=3))
def test_payload_preview_json_property(head, more):
    from l4kit.replay.jsontext import _data_json
    from l4kit.replay.model import preview

    assert _data_json(head, len(head) + more) == json.dumps(preview(head, len(head) + more))


# any float up to past the integer path's bound, and whole microseconds (as pcap has them)
_TIMES = st.floats(min_value=0, max_value=2e6, allow_nan=False) | st.integers(0, 10**12).map(
    lambda us: us / 1e6
)


@given(_TIMES)
def test_relative_seconds_is_the_nanosecond_rounding_of_t(t):
    """The integer formatting of a packet's time: canonical JSON (no trailing zeros,
    at least one decimal), within half a nanosecond of t (plus the float's own
    error), and the very digits of the float formatting for microsecond times."""
    from decimal import Decimal

    from l4kit.replay.jsontext import _relative_seconds, _seconds

    text = _relative_seconds(t)
    whole, _, fraction = text.partition(".")
    assert whole.isdigit() and fraction.isdigit() and len(fraction) <= 9
    assert fraction == "0" or not fraction.endswith("0")
    assert abs(Decimal(text) - Decimal(t)) <= Decimal("0.5e-9") + Decimal(t) * Decimal("1e-15")
    assert json.loads(text) == pytest.approx(t, abs=1e-9)
    if t < 1e6 and t == round(t, 6):
        assert text == _seconds(t) == _relative_seconds(t, 6) == _seconds(t, 6)


@needs_tshark
def test_json_times_are_the_captures_own_to_the_microsecond():
    """Frame times are float seconds since the epoch, 240 ns apart there: packet times,
    durations and transitions are written to the capture's resolution (microseconds
    here), so they are exactly what tshark says (once 1.4067e-05 for 14 µs)."""
    path = DATA / "lo-kernel.pcap"
    doc = run_json(path)
    fields = ("frame.number", "tcp.time_relative", "frame.time_epoch")
    rows = tshark_fields(path, *fields, extra=("-o", "tcp.calculate_timestamps:TRUE"))
    relative = {int(r[0]): float(r[1]) for r in rows}
    epoch = {int(r[0]): r[2] for r in rows}
    for conn in doc["connections"]:
        assert [p["t"] for p in conn["packets"]] == [relative[p["frame"]] for p in conn["packets"]]
        assert [t["t"] for t in conn["transitions"]] == [relative[t["frame"]] for t in conn["transitions"]]
        assert conn["duration"] == relative[conn["last_frame"]]
        assert conn["start"] == float(epoch[conn["first_frame"]])

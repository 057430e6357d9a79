"""The live view: per-connection transition tables from the core's events, and the summary.

The events come from the real sans-IO core driven with hand-written client
segments; the expected relative sequence numbers are the textbook ones for a
request/reply/close exchange (what Wireshark shows for it), not numbers taken
from the code under test.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from l4kit.core import Listener, ListenerConfig, Routes, make_app_factory
from l4kit.live.report import ReadyInfo, ResponderSummary
from l4kit.views.layout import FittedTable
from l4kit.views.live import ConnectionTables, payload_preview, ready_line, segment_note, summary_table
from l4kit.views.transitions import TransitionRow
from l4kit.wire import Endpoint, Segment, SeqNum, TcpFlags

SERVER = Endpoint("127.0.0.1", 8888)
CLIENT_ISN = 0xFFFFFFF0  # wraps during the exchange: relative numbers must not care


def client(flags: str, seq: int, ack: int = 0, payload: bytes = b"") -> Segment:
    return Segment(
        src="127.0.0.1", dst="127.0.0.1", sport=40000, dport=8888,
        seq=SeqNum(CLIENT_ISN + seq), ack=SeqNum(ack), flags=TcpFlags.parse(flags), payload=payload,
    )  # fmt: skip


def exchange() -> tuple[list[list[object]], ConnectionTables, list[FittedTable | str]]:
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k" * 32), make_app_factory())
    tables = ConnectionTables()
    printed: list[FittedTable | str] = []
    batches: list[list[object]] = []

    def feed(segment: Segment, now: float) -> Segment | None:
        out = listener.receive(segment, now)
        batches.append(list(out.events))
        printed.extend(tables.feed_batch(out.events))
        return out.segments[0] if out.segments else None

    synack = feed(client("S", 0), 1.0)
    assert synack is not None
    server_isn = synack.seq.value
    feed(client("A", 1, server_isn + 1), 1.001)
    feed(client("PA", 1, server_isn + 1, b"toppage\n"), 1.002)
    feed(client("A", 9, server_isn + 14), 1.003)
    feed(client("FA", 9, server_isn + 14), 1.004)
    return batches, tables, printed


def rows_of(table: FittedTable) -> list[tuple[str, ...]]:
    return [tuple(text for text, _ in row) for row in table.rows]


def test_one_table_with_wireshark_relative_numbers_when_time_wait_is_reached() -> None:
    _batches, tables, printed = exchange()
    assert len(printed) == 1 and isinstance(printed[0], FittedTable)
    cells = rows_of(printed[0])
    # (direction, flags, seq, ack, len)
    got = [(r[1].split()[0], r[2], r[3], r[4], r[5]) for r in cells]
    assert got == [
        ("client", "S", "0", "", "0"),
        ("server", "SA", "0", "1", "0"),
        ("client", "A", "1", "1", "0"),
        ("client", "PA", "1", "1", "8"),
        ("server", "PA", "1", "9", "12"),
        ("server", "FA", "13", "9", "0"),
        ("client", "A", "9", "14", "0"),
        ("client", "FA", "9", "14", "0"),
        ("server", "A", "14", "10", "0"),  # the last ACK is in the table: printed at the end of its batch
    ]
    assert cells[0][7] == "LISTEN → SYN-RECEIVED"
    assert cells[-2][7].endswith("→ TIME-WAIT")
    assert "'toppage\\n'" in cells[3][8] and "'hello world\\n'" in cells[4][8]
    assert tables.open_tables() == ([], 0)  # nothing left unprinted


def test_open_connections_are_printed_at_exit_and_only_once() -> None:
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k" * 32), make_app_factory())
    tables = ConnectionTables()
    assert tables.feed_batch(listener.receive(client("S", 0), 1.0).events) == []
    shown, more = tables.open_tables()
    assert len(shown) == 1 and more == 0
    assert "still open at exit" in str(shown[0].title)
    assert tables.open_tables() == ([], 0)


def test_verbose_shows_drops() -> None:
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k" * 32), make_app_factory())
    tables = ConnectionTables(verbose=True)
    # An ACK for a connection that does not exist: dropped (and answered with RST).
    lines = tables.feed_batch(listener.receive(client("A", 5, 77), 1.0).events)
    assert any(isinstance(line, str) and "drop" in line and "no-connection" in line for line in lines)
    quiet = ConnectionTables(verbose=False)
    lines = quiet.feed_batch(listener.receive(client("A", 6, 77), 1.1).events)
    assert not any(isinstance(line, str) for line in lines)


def test_payload_preview_is_printable_and_short() -> None:
    assert payload_preview(b"") == ""
    assert payload_preview(b"toppage\r\n") == "'toppage\\r\\n'"
    assert payload_preview(b"\x00" * 100).endswith("…")


def test_ready_line_is_what_scripts_wait_for() -> None:
    info = ReadyInfo("lo", "127.0.0.1", 8888, "00:00:00:00:00:00", "inbound and tcp", "nft", 1 << 20)
    assert ready_line(info) == "listening on 127.0.0.1:8888 (lo)"


def test_summary_lists_every_drop_reason() -> None:
    summary = ResponderSummary(
        connections=3, bytes_in=21, bytes_out=61, drops=Counter({"ip:truncated": 2, "kernel-buffer-full": 5})
    )
    console = Console(record=True, width=120)
    console.print(summary_table(summary))
    text = console.export_text()
    assert "kernel-buffer-full" in text and "ip:truncated" in text
    assert "21 / 61" in text


def test_rows_are_transition_rows() -> None:
    _batches, tables, _printed = exchange()
    assert all(isinstance(row, TransitionRow) for log in tables.logs.values() for row in log.rows)


def test_a_long_reply_shows_the_close_where_it_happened() -> None:
    """A 60,000-octet reply: the application sends it and closes at once, so the rows of
    everything the server sends after the close (the window lets only the first ten
    segments out before it) show FIN-WAIT-1, and ESTABLISHED -> FIN-WAIT-1 shows once,
    on the first row after the close."""
    routes = Routes.from_mapping({"big": "x" * 59_999})
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k" * 32), make_app_factory(routes))
    tables = ConnectionTables()
    printed: list[FittedTable | str] = []
    now = 1.0

    def feed(segment: Segment) -> list[Segment]:
        nonlocal now
        now += 0.001
        out = listener.receive(segment, now)
        printed.extend(tables.feed_batch(out.events))
        return out.segments

    [synack] = feed(client("S", 0))
    isn = synack.seq.value
    feed(client("A", 1, isn + 1))
    sent = feed(client("PA", 1, isn + 1, b"big\n"))
    while sent and not sent[-1].flags & TcpFlags.FIN:
        last = sent[-1]
        sent = feed(client("A", 5, last.seq.value + len(last.payload)))
    fin = sent[-1]
    feed(client("A", 5, fin.seq.value + 1))
    feed(client("FA", 5, fin.seq.value + 1))
    [table] = [item for item in printed if isinstance(item, FittedTable)]
    cells = rows_of(table)
    states = [(r[1].split()[0], r[2], r[7]) for r in cells]
    assert sum(1 for _, _, state in states if state == "ESTABLISHED → FIN-WAIT-1") == 1
    first_after = next(i for i, s in enumerate(states) if s[2] == "ESTABLISHED → FIN-WAIT-1")
    assert [s for s in states[:first_after] if s[2] not in ("ESTABLISHED", "LISTEN → SYN-RECEIVED")] == [
        ("server", "SA", "SYN-RECEIVED"),
        ("client", "A", "SYN-RECEIVED → ESTABLISHED"),
    ]
    after = states[first_after + 1 :]
    data_after = [r for r in cells[first_after + 1 :] if r[1].startswith("server") and r[5] != "0"]
    assert len(data_after) > 20
    assert all(state != "ESTABLISHED" for _, _, state in after)
    assert next(s for s in after if s[1] == "FA") == ("server", "FA", "FIN-WAIT-1")
    assert len(cells) > 40


def test_a_retransmission_row_says_so_once() -> None:
    # The real core, left without an ACK for its reply: the retransmission timer fires.
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k" * 32), make_app_factory())
    tables = ConnectionTables()
    synack = listener.receive(client("S", 0), 1.0).segments[0]
    listener.receive(client("A", 1, synack.seq.value + 1), 1.001)
    listener.receive(client("PA", 1, synack.seq.value + 1, b"toppage\n"), 1.002)
    events = list(listener.tick(3.0).events)
    tables.feed_events(events)
    (log,) = tables.logs.values()
    notes = [note for row in log.rows for note in row.notes]
    assert notes == ["retransmission 1 (RTO 1 s)"], notes


def test_segment_notes() -> None:
    assert segment_note(False, "data") == ""
    assert segment_note(True, "data") == "retransmission"
    assert segment_note(True, "retransmission after a partial ACK") == "retransmission after a partial ACK"
    assert segment_note(True, "SYN-ACK again for a retransmitted SYN") == (
        "retransmission: SYN-ACK again for a retransmitted SYN"
    )
    assert segment_note(False, "challenge ACK (RFC 5961 §4.2)") == "challenge ACK (RFC 5961 §4.2)"


def test_the_connections_row_says_what_it_counts_and_what_was_aborted() -> None:
    def row(summary: ResponderSummary) -> str:
        console = Console(record=True, width=160)
        console.print(summary_table(summary))
        (line,) = [ln for ln in console.export_text().splitlines() if ln.strip().startswith("connections")]
        return " ".join(line.split())

    # A SYN answered, then the stop: no handshake completed, one half-open connection aborted.
    assert row(ResponderSummary(connections=0, open_at_exit=1, half_open_at_stop=1)) == (
        "connections 0 established; 1 still open at exit, aborted (RST), 1 of them half-open"
    )
    assert row(ResponderSummary(connections=3)) == "connections 3 established; 0 still open at exit"

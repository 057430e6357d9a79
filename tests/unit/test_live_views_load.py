"""The live view under load: the one-line form, the pacing, the bounds.

(The tables themselves: ``tests/unit/test_views_layout.py``.)

- :class:`DisplayPacer` and :class:`LiveRenderer` run here on fake clocks, without a
  thread (``start=False``: the test calls ``take``/``pump``/``drain``), with connections
  from the real sans-IO core; every connection must be accounted for once, as a table,
  a line or a count, and what the summary says must match what was printed.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator

import pytest
from rich.console import Console

from l4kit.core import Listener, ListenerConfig, make_app_factory
from l4kit.core.events import ConnectionClosed
from l4kit.live.report import DisplayStats, ResponderSummary
from l4kit.views import live
from l4kit.views.live import (
    ConnectionTables,
    DisplayPacer,
    Due,
    LiveRenderer,
    Shown,
    display_rows,
    summary_table,
)
from l4kit.wire import Endpoint, Segment, SeqNum, TcpFlags

SERVER = Endpoint("127.0.0.1", 8888)


# ---------------------------------------------------------------- connections from the real core


def client(port: int, flags: str, seq: int, ack: int = 0, payload: bytes = b"") -> Segment:
    return Segment(
        src="127.0.0.1", dst="127.0.0.1", sport=port, dport=8888,
        seq=SeqNum(seq), ack=SeqNum(ack), flags=TcpFlags.parse(flags), payload=payload,
    )  # fmt: skip


def listener(**config: int) -> Listener:
    return Listener(ListenerConfig(local=SERVER, secret=b"k" * 32, **config), make_app_factory())


def connection_batches(core: Listener, port: int, now: float) -> Iterator[list[object]]:
    """One textbook request/reply/close (the client closes last: TIME-WAIT on our side),
    one batch of events per call into the core."""
    out = core.receive(client(port, "S", 1000), now)
    isn = out.segments[0].seq.value
    yield list(out.events)
    yield list(core.receive(client(port, "A", 1001, isn + 1), now).events)
    yield list(core.receive(client(port, "PA", 1001, isn + 1, b"toppage\n"), now).events)
    yield list(core.receive(client(port, "A", 1009, isn + 14), now).events)
    yield list(core.receive(client(port, "FA", 1009, isn + 14), now).events)


def load(count: int, *, first_port: int = 20000) -> tuple[Listener, list[list[object]]]:
    """``count`` connections' batches, then the stop (TIME-WAIT records end: closed)."""
    core = listener()
    batches = [b for i in range(count) for b in connection_batches(core, first_port + i, 1.0 + i * 1e-3)]
    batches.append(list(core.shutdown(1.0 + count * 1e-3).events))
    return core, batches


def closes(batches: list[list[object]]) -> int:
    return sum(type(e) is ConnectionClosed for batch in batches for e in batch)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CostlyCpu:
    """A renderer-thread CPU clock on which every print costs ``cost`` seconds."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # read after the print: the print took `cost`
            self.now += self.cost
        return self.now


def renderer(clock: FakeClock, cpu: CostlyCpu, **kw: int) -> tuple[LiveRenderer, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=160, highlight=False)
    return LiveRenderer(console, clock=clock, cpu_clock=cpu, start=False, **kw), out


def printed(text: str) -> tuple[int, int, int]:
    """(full tables, one-line connections, connections reported as not shown) in the output."""
    tables = len(re.findall(r"^┏", text, re.M))
    lines = len(re.findall(r"^\S+ → \S+ .* \d+ segments?, [\d.]+ ms: ", text, re.M))
    skipped = sum(int(n) for n in re.findall(r"^… (\d+) connections? not shown", text, re.M))
    skipped += sum(int(n) for n in re.findall(r"^… and (\d+) more open connections not shown", text, re.M))
    return tables, lines, skipped


# ---------------------------------------------------------------- one line per connection


def test_one_line_spells_every_segment_s_flags_in_order() -> None:
    core = listener()
    tables = ConnectionTables()
    (due,) = [item for b in connection_batches(core, 40000, 1.0) for item in tables.feed_events(b)]
    assert isinstance(due, Due)
    line = tables.line(due.log, status=due.status).plain()
    # The textbook exchange (as in test_live_views): client → server, server ← client.
    assert "127.0.0.1:40000 → 127.0.0.1:8888" in line
    assert " S→ ←SA A→ PA→ ←PA ←FA A→ FA→ ←A " in line
    assert "9 segments" in line and "TIME-WAIT" in line
    assert tables.held_rows == 0 and due.log.rows == []  # printed rows are released


# ---------------------------------------------------------------- the pacer


def test_pacer_tables_while_the_budget_lasts_then_lines_then_counts() -> None:
    clock = FakeClock()
    pacer = DisplayPacer(clock, share=0.25, burst=0.2)
    assert pacer.choose(0.0) is Shown.TABLE
    pacer.charge(0.25)  # overdrawn by 0.05 s
    assert pacer.choose(0.0) is Shown.LINE
    pacer.charge(0.2)  # overdrawn by 0.25 s > burst
    assert pacer.choose(0.0) is Shown.SKIPPED
    clock.now += 0.4  # refills 0.1 s: overdrawn by 0.15 s
    assert pacer.choose(0.0) is Shown.LINE
    clock.now += 0.8  # +0.2: 0.05 s of credit, under half the burst: still lines
    assert pacer.choose(0.0) is Shown.LINE
    clock.now += 0.4  # 0.15 s of credit: tables again
    assert pacer.choose(0.0) is Shown.TABLE
    clock.now += 3600  # a quiet hour saves no more than the burst
    pacer.charge(0.21)
    assert pacer.choose(0.0) is Shown.LINE


def test_pacer_lines_when_connections_wait_too_long_and_tables_once_caught_up() -> None:
    pacer = DisplayPacer(FakeClock(), max_lag=1.0, caught_up_lag=0.25)
    assert pacer.choose(1.0) is Shown.TABLE
    assert pacer.choose(1.01) is Shown.LINE  # e.g. a terminal that cannot keep up
    assert pacer.choose(0.5) is Shown.LINE  # not until the line has caught up
    assert pacer.choose(0.25) is Shown.TABLE


# ---------------------------------------------------------------- the renderer: bounds and accounting


def test_a_fast_display_shows_every_table_and_the_summary_says_so() -> None:
    _core, batches = load(50)
    clock = FakeClock()
    display, out = renderer(clock, CostlyCpu(0.0001))  # 0.1 ms a print
    for batch in batches:
        clock.now += 0.001  # 50 connections in a quarter of a second
        display.submit(batch)
        display.take_queued()
        display.pump()
    stats = display.close()
    assert (stats.tables, stats.lines, stats.skipped, stats.events_dropped) == (50, 0, 0, 0)
    assert printed(out.getvalue()) == (50, 0, 0)
    assert display_rows(stats, closes(batches)) == [("tables", "50 / 50", "connections shown in full")]


def test_a_slow_display_steps_down_and_every_connection_is_counted_once() -> None:
    _core, batches = load(400)
    clock = FakeClock()
    display, out = renderer(clock, CostlyCpu(0.02))  # 20 ms a print: far too slow for the load
    for batch in batches:
        clock.now += 0.0005  # 400 connections in about 1 s
        display.submit(batch)
        display.take_queued()
        display.pump(limit=1)
    stats = display.close()
    total = closes(batches)
    assert total == 400
    assert stats.tables + stats.lines + stats.skipped == total
    assert stats.lines > 0 and stats.skipped > 0 and stats.tables > 0
    assert printed(out.getvalue()) == (stats.tables, stats.lines, stats.skipped)
    assert "display behind" in out.getvalue()
    assert display.tables.held_rows == 0


def test_waiting_connections_are_bounded_and_the_oldest_only_counted() -> None:
    _core, batches = load(300)
    display, out = renderer(FakeClock(), CostlyCpu(0.0), max_waiting=100)
    for batch in batches:  # fed, never printed: the waiting line must not grow past 100
        display.take(batch)
        assert len(display._waiting) <= 100
    assert display.shown[Shown.SKIPPED] == 200  # each connection waits once, however often due
    display.pump(at_exit=True)
    stats = display.stats()
    assert stats.tables + stats.lines + stats.skipped == 300
    assert stats.tables == live.EXIT_FULL_TABLES  # a prompt exit: the oldest as lines, the last in full
    assert printed(out.getvalue()) == (stats.tables, stats.lines, stats.skipped)


def test_a_full_queue_drops_display_events_never_blocks_and_the_summary_says_what_was_lost() -> None:
    _core, batches = load(200)
    display, _out = renderer(FakeClock(), CostlyCpu(0.0), max_queued_events=500)
    for batch in batches:  # the renderer takes nothing meanwhile
        display.submit(batch)
        assert display.queued_events <= 500
    assert display.events_dropped == sum(map(len, batches)) - display.queued_events > 0
    stats = display.close()
    total = closes(batches)
    shown = stats.tables + stats.lines + stats.skipped
    assert 0 < shown < total
    rows = dict((what or value, (value, detail)) for what, value, detail in display_rows(stats, total))
    assert rows["tables"][0] == f"{stats.tables} / {total}"
    lost = total - shown
    assert f"{lost} lost with {stats.events_dropped} display events (queue full)" in str(rows)


def test_rows_held_for_open_connections_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "MAX_HELD_ROWS", 25)
    core = listener()
    tables = ConnectionTables()
    for port in range(30000, 30010):  # ten handshakes, never closed: 3 rows each
        out = core.receive(client(port, "S", 1000), 1.0)
        tables.feed_events(out.events)
        tables.feed_events(core.receive(client(port, "A", 1001, out.segments[0].seq.value + 1), 1.0).events)
    assert tables.held_rows == 25
    assert sum(len(log.rows) for log in tables.logs.values()) == 25
    assert sum(log.omitted for log in tables.logs.values()) == 30 - 25
    shown, _more = tables.open_tables()
    assert tables.held_rows == 0
    assert any("more segments not shown" in str(table.caption) for table in shown)


def test_the_renderer_thread_accounts_for_everything_submitted_from_another_thread() -> None:
    _core, batches = load(300)
    out = io.StringIO()
    display = LiveRenderer(Console(file=out, width=160))

    def packet_thread() -> None:
        for batch in batches:
            display.submit(batch)

    sender = threading.Thread(target=packet_thread)
    sender.start()
    sender.join()
    stats = display.close()
    assert stats.events_dropped == 0
    assert stats.tables + stats.lines + stats.skipped == closes(batches) == 300
    assert printed(out.getvalue()) == (stats.tables, stats.lines, stats.skipped)


# ---------------------------------------------------------------- the exit summary


def test_half_open_peak_is_the_most_syn_received_at_once() -> None:
    core = listener(max_half_open=8)
    synacks: dict[int, int] = {}
    cookies = 0
    for port in range(31000, 31012):  # 12 SYNs: seen from outside, 8 held, then cookies
        out = core.receive(client(port, "S", 1000), 1.0)
        if any(type(e).__name__ == "SynCookie" for e in out.events):
            cookies += 1
        else:
            synacks[port] = out.segments[0].seq.value
    assert (len(synacks), cookies) == (8, 4)
    for port in list(synacks)[:5]:  # five complete their handshake
        core.receive(client(port, "A", 1001, synacks[port] + 1), 1.0)
    assert (core.stats.half_open, core.stats.half_open_peak) == (3, 8)
    core.receive(client(33000, "S", 1), 1.0)
    assert (core.stats.half_open, core.stats.half_open_peak) == (4, 8)


def test_summary_rows_for_half_open_and_tables() -> None:
    summary = ResponderSummary(
        connections=10, connections_closed=10, half_open_peak=256, half_open_at_stop=3, max_half_open=256,
        display=DisplayStats(tables=5, lines=3, skipped=2),
    )  # fmt: skip
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(summary_table(summary))
    text = console.export_text()
    assert re.search(r"^ half-open\s+peak 256\s+3 at the stop; past 256", text, re.M)
    assert re.search(r"^ tables\s+5 / 10\s+connections shown in full", text, re.M)
    assert re.search(r"^\s+5\s+not shown in full: 3 as one line, 2 counted only", text, re.M)
    assert "--pcap FILE, then l4kit replay FILE" in text
    quiet = Console(record=True, width=160, file=io.StringIO())
    quiet.print(summary_table(ResponderSummary(connections_closed=4)))
    assert re.search(r"^ tables\s+off\s+--quiet", quiet.export_text(), re.M)

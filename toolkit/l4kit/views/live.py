"""What ``l4kit respond`` shows: one flag-transition table per connection, and the exit summary.

Sequence numbers are shown relative to each side's ISN, as Wireshark does: the
client's from the sequence number of its SYN, the server's from its SYN-ACK
(both 0 on the SYN itself, so the handshake reads 0/1). A connection's table is
printed when it reaches TIME-WAIT or is closed, and anything still open when
the responder stops is printed at exit.

Theory of operation: the display must never slow the responder, and must stay
bounded in memory whatever the load.

1. The packet thread hands each call's events to :meth:`LiveRenderer.submit`: a
   deque append, never a wait, and no wake-up (the renderer looks every
   :data:`RENDER_PERIOD`). Past :data:`MAX_QUEUED_EVENTS` waiting events, the
   batch is dropped and counted: display events, never packets (the segments are
   on the wire already).
2. The renderer thread feeds the events into :class:`ConnectionTables` (about
   3 µs an event): per-connection logs of :class:`TransitionRow` s, bounded in
   connections (:data:`MAX_OPEN_LOGS`), rows per connection (:data:`MAX_ROWS`) and
   rows in all (:data:`MAX_HELD_ROWS`). A connection that reaches TIME-WAIT or
   closes is *due*, and waits its turn (at most :data:`MAX_WAITING` do).
3. The renderer prints each due connection as its full table (a
   :class:`~l4kit.views.layout.FittedTable`, fitted to the terminal without Rich's
   general layout engine: a fraction of a millisecond where Rich's table took 5 ms), as
   one line (:class:`ConnectionLine`: every segment's flags, in order), or only
   counts it, and writes each group of :data:`PRINT_GROUP` in one go. The
   :class:`DisplayPacer` decides: printing shares the GIL with the packet thread,
   so it may use at most :data:`RENDER_SHARE` of the time; full tables while that
   lasts and no connection has waited more than :data:`MAX_LAG`, one line each
   beyond that, and only a count when even lines are too much or more than
   :data:`MAX_WAITING` wait. Every step down is printed as it happens, and the
   exit summary counts how each connection was shown.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.segment import Segment as RichSegment
from rich.style import Style
from rich.table import Table

from l4kit.core.events import (
    ConnectionClosed,
    ConnectionReset,
    LossRecovery,
    RecoveryStep,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    StateChanged,
    SynCookie,
)
from l4kit.core.states import State
from l4kit.drivers.transitions import SegmentRow, TransitionRecorder
from l4kit.live.report import DisplayStats, FrameDropped, ReadyInfo, ResponderSummary
from l4kit.views.layout import PIPE_WIDTH, FittedTable, flow
from l4kit.views.transitions import TransitionRow, transition_table
from l4kit.wire.flags import TcpFlags
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

MAX_OPEN_LOGS = 10_000  # a SYN flood must not grow the renderer without bound
MAX_STATELESS_LOGS = 1_024  # recent LISTEN-only exchanges (SYN cookies, RSTs for no connection)
MAX_ROWS = 200  # per connection; the rest is counted
MAX_HELD_ROWS = 100_000  # rows not yet printed, all connections together (about 26 MB)
MAX_NOTES = 8  # per connection
MAX_TABLES_AT_EXIT = 20
PREVIEW_BYTES = 32
# The display under load (LiveRenderer, DisplayPacer; see the module docstring):
MAX_QUEUED_EVENTS = 20_000  # events waiting for the renderer thread (about 5 MB)
MAX_LAG = 1.0  # seconds a due connection may wait for its table; later: one line each
CAUGHT_UP_LAG = 0.25  # ... until the waiting line is this fresh again (and the budget half full)
EXIT_FULL_TABLES = 64  # at exit, more waiting than this: one line each for the oldest
MAX_WAITING = 1_000  # due connections and --verbose lines waiting to be printed; beyond: counted only
RENDER_SHARE = 0.25  # of the time, at most, spent printing (CPU time of the renderer thread)
RENDER_BURST = 0.2  # seconds of printing that may be spent at once, after a quiet spell
LINE_FLAGS = 24  # segments spelled out on one connection line
RENDER_PERIOD = 0.05  # seconds between two looks at the queue when nothing waits to be printed
PRINT_GROUP = 32  # items printed (in one write) between two looks at the queue
NOTICE_INTERVAL = 1.0  # seconds between two "not shown" lines
DEGRADED_NOTICE_INTERVAL = 30.0  # seconds between two "one line per connection" notices
REPLAY_HINT = "every table: --pcap FILE, then l4kit replay FILE; or --quiet"


def ready_line(info: ReadyInfo) -> str:
    """The line scripts (and the demo) wait for before starting a client."""
    return f"listening on {Endpoint(info.address, info.port)} ({info.iface})"


def payload_preview(data: bytes) -> str:
    """The first bytes of a payload, printable: ``"toppage\\n"``."""
    if not data:
        return ""
    text = repr(data[:PREVIEW_BYTES])[1:]
    return text + ("…" if len(data) > PREVIEW_BYTES else "")


class Shown(enum.Enum):
    """How a connection was shown (the first time it was due)."""

    TABLE = "table"
    LINE = "line"
    SKIPPED = "skipped"


@dataclass(slots=True)
class ConnectionLog:
    """The rows of one connection, with what relative numbering needs.

    ``rows`` holds only what is not printed yet: a printed row is released
    (a connection in TIME-WAIT keeps its log for a minute, its rows need not)."""

    key: FourTuple
    first_time: float
    client_isn: SeqNum | None = None
    server_isn: SeqNum | None = None
    rows: list[TransitionRow] = field(default_factory=list)
    omitted: int = 0
    notes: list[str] = field(default_factory=list)
    shown_rows: int = 0  # rows already printed (or passed over) and released
    shown: Shown | None = None  # how the connection was first shown
    status: str = ""  # why it is due: "TIME-WAIT", "closed: ..."
    waiting: bool = False  # due, and in the renderer's waiting line (once, however often due)

    def add(
        self,
        *,
        time: float,
        segment: Segment,
        received: bool,
        before: State,
        after: State,
        extra: str,
        room: bool = True,
    ) -> bool:
        """Record one segment; False if the row was only counted (``room`` is the
        all-connections bound, :data:`MAX_HELD_ROWS`)."""
        flags = segment.flags
        if received and flags & TcpFlags.SYN and not flags & TcpFlags.ACK:
            self.client_isn = segment.seq
        if not received and flags & TcpFlags.SYN:
            self.server_isn = segment.seq
        own, peer = (self.client_isn, self.server_isn) if received else (self.server_isn, self.client_isn)
        if not room or len(self.rows) + self.shown_rows >= MAX_ROWS:
            self.omitted += 1
            return False
        notes = (extra,) if extra else ()
        self.rows.append(
            TransitionRow(
                t=time - self.first_time,
                direction="c2s" if received else "s2c",
                flags=flags.letters,
                seq=_relative(segment.seq, own),
                ack=_relative(segment.ack, peer) if flags & TcpFlags.ACK else None,
                length=len(segment.payload),
                window=segment.window,
                before=str(before),
                after=str(after),
                checksum=str(segment.checksum) if received else "ok",
                notes=notes,
                payload_preview=payload_preview(segment.payload),
            )
        )
        return True


ROUTINE_WHYS = frozenset(
    {"SYN", "SYN-ACK", "data", "ACK", "FIN"}
)  # why a segment was sent, when it says nothing new


RECOVERY_WHYS = tuple(step.value for step in RecoveryStep)
"""What a loss recovery step's segments say they are ("fast retransmit", "SACK recovery",
"TLP", "RTO recovery" ...), as Wireshark's analysis notes name them: no prefix needed."""


def segment_note(retransmission: bool, why: str) -> str:
    """The note of a sent segment's row: why it was sent, unless that is routine, marked
    as a retransmission once ("retransmission 1 (RTO 1 s)", "retransmission: SYN-ACK again
    for a retransmitted SYN"); a loss recovery step says what it is ("fast retransmit (3
    duplicate ACKs)", "SACK recovery", "TLP")."""
    why = "" if why in ROUTINE_WHYS else why
    if not retransmission or why.startswith(("retransmission", *RECOVERY_WHYS)):
        return why
    return f"retransmission: {why}" if why else "retransmission"


def _relative(value: SeqNum, isn: SeqNum | None) -> int:
    return value.value if isn is None else (value - isn) % (1 << 32)


@dataclass(frozen=True, slots=True)
class Due:
    """A connection whose rows are ready to print: it reached TIME-WAIT or closed.
    Its status is the latest (a connection that waited in TIME-WAIT until it
    closed is printed as closed, with every row)."""

    log: ConnectionLog

    @property
    def status(self) -> str:
        return self.log.status


class ConnectionTables:
    """Turns core events into per-connection logs and tables (no threads, no I/O: testable)."""

    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.recorder = TransitionRecorder()
        self.logs: dict[FourTuple, ConnectionLog] = {}
        self.unlogged = 0  # events of connections that found MAX_OPEN_LOGS logs open
        self.held_rows = 0  # rows not yet printed, in every log (bounded by MAX_HELD_ROWS)
        self._due: dict[FourTuple, ConnectionLog] = {}
        self._stateless: dict[FourTuple, ConnectionLog] = {}

    def _log(self, key: FourTuple, time: float) -> ConnectionLog | None:
        log = self.logs.get(key)
        if log is None:
            log = self._stateless.pop(key, None)  # e.g. the ACK that completes a SYN cookie
            if log is None:
                if len(self.logs) >= MAX_OPEN_LOGS:
                    self.unlogged += 1
                    return None
                log = ConnectionLog(key, time)
            self.logs[key] = log
        return log

    def _set_aside_stateless(self, events: Sequence[object]) -> None:
        """A 4-tuple that only saw LISTEN → LISTEN (a SYN answered with a cookie, a RST
        for no connection) holds no connection, and no close will ever remove its log:
        it leaves the open logs (which a SYN flood would otherwise fill for good, so that
        no later connection got a table) for the last MAX_STATELESS_LOGS such logs."""
        for event in events:
            if type(event) is SegmentSent and event.state is State.LISTEN:
                log = self.logs.get(event.key)
                if (
                    log is not None
                    and not log.shown_rows
                    and all(row.before == row.after == "LISTEN" for row in log.rows)
                ):
                    del self.logs[event.key]
                    self._stateless[event.key] = log
                    if len(self._stateless) > MAX_STATELESS_LOGS:
                        evicted = self._stateless.pop(next(iter(self._stateless)))
                        self.held_rows -= len(evicted.rows)

    def feed_events(self, events: Sequence[object]) -> list[Due | str]:
        """Process the events of one call into the core; return what became
        printable, in order: ``--verbose`` lines (Rich markup) as they happen, and
        the connections due at the end of the batch in which they reached
        TIME-WAIT or closed, so that the segment the core sent in answer (the last
        ACK) is in their table."""
        out: list[Due | str] = []
        recorder = self.recorder
        for event in events:
            for row in recorder.feed(event):
                self._add_row(row)
            line = self._feed(event)
            if line is not None:
                out.append(line)
        for row in recorder.flush():
            self._add_row(row)
        for log in self._due.values():
            if log.rows and not log.waiting:
                log.waiting = True
                out.append(Due(log))
        self._due.clear()
        self._set_aside_stateless(events)
        return out

    def feed_batch(self, events: Sequence[object]) -> list[FittedTable | str]:
        """:meth:`feed_events`, with each due connection made into its table now."""
        out: list[FittedTable | str] = []
        for item in self.feed_events(events):
            if isinstance(item, Due):
                item.log.waiting = False
                out.append(self.table(item.log, status=item.status))
            else:
                out.append(item)
        return out

    def _add_row(self, row: SegmentRow) -> None:
        log = self._log(row.key, row.time)
        if log is None:
            return
        # a sent segment's reason; on a received one, a change the application or a timer made
        extra = ", ".join(row.notes) if row.received else segment_note(row.retransmission, row.why)
        if log.add(
            time=row.time,
            segment=row.segment,
            received=row.received,
            before=row.before,
            after=row.after,
            extra=extra,
            room=self.held_rows < MAX_HELD_ROWS,
        ):
            self.held_rows += 1
        if row.after is State.TIME_WAIT and row.before is not State.TIME_WAIT and row.key not in self._due:
            log.status = "TIME-WAIT"
            self._due[row.key] = log

    def _feed(self, event: object) -> str | None:
        if isinstance(event, SegmentReceived | SegmentSent):
            return None
        elif isinstance(event, ConnectionClosed):
            log = self.logs.pop(event.key, None)
            if log is not None:
                why = f"closed: {event.why}" if event.why else "closed"
                log.status = f"{why}, {event.bytes_in} B in, {event.bytes_out} B out"
                self._due[event.key] = log
        elif isinstance(event, ConnectionReset):
            log = self.logs.get(event.key)
            if log is not None and len(log.notes) < MAX_NOTES:
                log.notes.append(f"reset {'by the peer' if event.by_peer else 'by l4kit'}: {event.why}")
        elif self.verbose:
            return _verbose_line(event)
        return None

    # ------------------------------------------------------------ printing a due connection

    def take_rows(self, log: ConnectionLog) -> tuple[list[TransitionRow], bool]:
        """The rows not printed yet (released from the log), and whether some were printed before."""
        rows, continued = log.rows, log.shown_rows > 0
        log.rows = []
        log.shown_rows += len(rows)
        self.held_rows -= len(rows)
        return rows, continued

    def table(self, log: ConnectionLog, *, status: str) -> FittedTable:
        """The connection's new rows as its flag-transition table (fitted to the console)."""
        title, rows, caption = self._parts(log, status)
        return transition_table(title, rows, show_checksum=self.verbose, caption=caption)

    def line(self, log: ConnectionLog, *, status: str) -> ConnectionLine:
        """The connection's new rows on one line (:class:`ConnectionLine`)."""
        rows, continued = self.take_rows(log)
        return ConnectionLine(log.key, rows, status, omitted=log.omitted, continued=continued)

    def skip(self, log: ConnectionLog) -> None:
        """Release the connection's rows without printing them."""
        self.take_rows(log)

    def _parts(self, log: ConnectionLog, status: str) -> tuple[str, list[TransitionRow], str]:
        rows, continued = self.take_rows(log)
        continuation = " (continued)" if continued else ""
        title = f"{log.key.remote} → {log.key.local}{continuation}  [dim]{escape(status)}[/]"
        captions = [escape(note) for note in log.notes]
        if log.omitted:
            captions.append(f"{log.omitted} more segments not shown")
        return title, rows, "; ".join(captions)

    def open_logs(self) -> list[ConnectionLog]:
        """Connections with rows not printed yet that never closed (at exit)."""
        return [log for log in self.logs.values() if log.rows]

    def open_tables(self) -> tuple[list[FittedTable], int]:
        """Tables of what is still open (at exit), at most MAX_TABLES_AT_EXIT."""
        pending = self.open_logs()
        shown = [self.table(log, status="still open at exit") for log in pending[:MAX_TABLES_AT_EXIT]]
        return shown, len(pending) - len(shown)


def _verbose_line(event: object) -> str | None:
    if isinstance(event, SegmentDropped):
        where = f" {event.key.remote}" if event.key is not None else ""
        seg = f" {event.segment}" if event.segment is not None else ""
        detail = f" ({event.detail})" if event.detail else ""
        return f"[yellow]drop[/] {event.reason}{where}{seg}{detail}"
    if isinstance(event, FrameDropped):
        detail = f" ({event.detail})" if event.detail else ""
        return f"[yellow]drop[/] {event.reason}{detail} (frame not decoded)"
    if isinstance(event, SynCookie):
        what = "accepted" if event.accepted else "sent"
        return f"[cyan]syn cookie[/] {what} {event.key.remote}"
    if isinstance(event, StateChanged):
        if event.cause is None:
            return f"[dim]state[/] {event.key.remote} {event.before} → {event.after} {event.why}".rstrip()
        return None
    if isinstance(event, LossRecovery):
        detail = f": {event.detail}" if event.detail else ""
        ssthresh = f", ssthresh {event.ssthresh}" if event.ssthresh < 1 << 30 else ""  # set by a loss
        return f"[red]recovery[/] {event.key.remote} {event.step}{detail} (cwnd {event.cwnd}{ssthresh})"
    if type(event).__name__ == "TimerFired":
        timer = getattr(event, "timer", "")
        key = getattr(event, "key", None)
        attempt = getattr(event, "attempt", 0)
        remote = f" {key.remote}" if key is not None else ""
        return f"[magenta]timer[/] {timer}{remote} in {getattr(event, 'state', '')} (attempt {attempt})"
    return None


# ---------------------------------------------------------------- the one-line form

_DIRECTION_STYLE = {"c2s": Style.parse("cyan"), "s2c": Style.parse("magenta")}
_DIM = Style.parse("dim")
_NEW_LINE = RichSegment.line()


@dataclass(frozen=True, slots=True)
class ConnectionLine:
    """One connection on one line, for when full tables would slow the responder:
    ``127.0.0.1:40000 → 127.0.0.1:8888  S→ ←SA A→ PA→ ←PA ←FA A→ FA→ ←A  9 segments, 4.1 ms: TIME-WAIT``
    (each segment's flags in order, the client's with → after them, the server's with ← before)."""

    key: FourTuple
    rows: Sequence[TransitionRow]
    status: str
    _: KW_ONLY
    omitted: int = 0
    continued: bool = False

    def plain(self) -> str:
        """The line as text, however wide."""
        return " ".join("".join(segment.text for segment in token) for token in self._tokens())

    def _tokens(self) -> list[list[RichSegment]]:
        """The pieces of the line that must stay whole: the endpoints, each segment's
        flags, the counts and status."""
        tokens = [
            [RichSegment(f"{self.key.remote} → {self.key.local}{' (continued)' if self.continued else ''} ")]
        ]
        for row in self.rows[:LINE_FLAGS]:
            flags = row.flags or "."
            if row.direction == "c2s":
                tokens.append([RichSegment(f"{flags}→", _DIRECTION_STYLE["c2s"])])
            else:
                tokens.append([RichSegment(f"←{flags}", _DIRECTION_STYLE["s2c"])])
        more = max(0, len(self.rows) - LINE_FLAGS) + self.omitted
        if more:
            tokens.append([RichSegment(f"… +{more}")])
        count = len(self.rows) + self.omitted
        span = self.rows[-1].t - self.rows[0].t if self.rows else 0.0
        plural = "" if count == 1 else "s"
        tokens.append([RichSegment(f" {count} segment{plural}, {span * 1000:.1f} ms: {self.status}", _DIM)])
        return tokens

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # One line where it fits; else flowed over lines, no flag cut.
        for line in flow(self._tokens(), options.max_width, gap=" "):
            yield from line
            yield _NEW_LINE


# ---------------------------------------------------------------- pacing: tables, lines or counts


@dataclass
class DisplayPacer:
    """How the next due connection is shown: full table, one line, or only counted.

    Printing runs on the renderer thread but holds the GIL the packet thread
    needs, so it gets a budget of CPU time: ``share`` of the wall-clock time,
    saved up to ``burst`` seconds after a quiet spell. Full tables while the
    budget lasts and the oldest waiting connection has waited at most
    ``max_lag`` seconds; then one line each (much cheaper, still every flag)
    until the budget is half full again and the waiting line has caught up
    (``caught_up_lag``), so that tables and lines come in runs, not alternately;
    only counted while the budget is overdrawn by ``burst`` or more. The clock is
    an argument: nothing here reads the time.
    """

    clock: Callable[[], float]
    _: KW_ONLY
    share: float = RENDER_SHARE
    burst: float = RENDER_BURST
    max_lag: float = MAX_LAG
    caught_up_lag: float = CAUGHT_UP_LAG
    credit: float = field(init=False)
    behind: bool = field(default=False, init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self.credit = self.burst
        self._at = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.credit = min(self.burst, self.credit + (now - self._at) * self.share)
        self._at = now

    def choose(self, lag: float) -> Shown:
        """For the oldest waiting connection, due ``lag`` seconds ago."""
        self._refill()
        if self.behind:
            self.behind = self.credit < self.burst / 2 or lag > self.caught_up_lag
        else:
            self.behind = self.credit <= 0 or lag > self.max_lag
        if not self.behind:
            return Shown.TABLE
        if self.credit > -self.burst:
            return Shown.LINE
        return Shown.SKIPPED

    def allow_line(self) -> bool:
        """A ``--verbose`` line: printed while a connection line would be."""
        self._refill()
        return self.credit > -self.burst

    def charge(self, seconds: float) -> None:
        """What printing just cost (CPU seconds of the renderer thread)."""
        self._refill()
        self.credit -= seconds


class LiveRenderer:
    """The renderer thread: ``submit`` from the packet thread, print from here.

    ``clock`` (wall) and ``cpu_clock`` (this thread's CPU time, what printing
    takes from the packet thread) are arguments for the tests; ``start=False``
    runs nothing on a thread: the tests call :meth:`pump` instead.
    """

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
        max_queued_events: int = MAX_QUEUED_EVENTS,
        max_waiting: int = MAX_WAITING,
        start: bool = True,
    ) -> None:
        self.console = console
        self.tables = ConnectionTables(verbose=verbose)
        self.pacer = DisplayPacer(clock)
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.max_queued_events = max_queued_events
        self.max_waiting = max_waiting
        # The packet thread appends, the renderer thread pops (a deque is safe for one
        # of each). No wake-up per batch: the renderer looks every RENDER_PERIOD, so the
        # packet thread never hands the GIL over because it queued something.
        self._batches: deque[Sequence[object]] = deque()
        self._stop = threading.Event()
        # Two counters, each written by one thread only (no lock on the packet path):
        self._queued_events = 0  # by the submitting thread
        self._taken_events = 0  # by the renderer thread
        self.events_dropped = 0  # by the submitting thread: display events only, never packets
        self._waiting: deque[tuple[float, Due | str]] = deque()  # (when it became due, what)
        self._waiting_tables = 0
        self.shown: Counter[Shown] = Counter()
        self.verbose_lines_skipped = 0
        self._unreported_skips = 0
        self._skips_reported_at = float("-inf")
        self._degraded_notice_at = float("-inf")
        self.failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="l4kit-render", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ the packet thread's side

    def submit(self, batch: Sequence[object]) -> None:
        """Hand over one call's events. Never waits: when the renderer is
        ``max_queued_events`` behind, the batch is dropped and counted."""
        if self._queued_events - self._taken_events + len(batch) > self.max_queued_events:
            self.events_dropped += len(batch)
            return
        self._queued_events += len(batch)
        self._batches.append(batch)

    @property
    def queued_events(self) -> int:
        return self._queued_events - self._taken_events

    # ------------------------------------------------------------ the renderer thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.take_queued()
                if self._waiting:
                    self.pump(limit=PRINT_GROUP)  # then a look at the queue
                else:
                    self._stop.wait(RENDER_PERIOD)
            self.take_queued()
            self.finish()
        except Exception as exc:  # a bug here must neither grow the queue nor hang the exit
            self.failure = exc
            self.max_queued_events = 0  # from now on every batch is dropped and counted
            self._batches.clear()

    def take_queued(self) -> None:
        """Feed the batches the packet thread queued before this look (not those it
        queues meanwhile: a busy packet thread would keep the renderer feeding and
        never printing)."""
        batches = self._batches
        for _ in range(len(batches)):
            self.take(batches.popleft())

    def take(self, batch: Sequence[object]) -> None:
        """Feed one batch (renderer thread): the due connections join the waiting line."""
        self._taken_events += len(batch)
        items = self.tables.feed_events(batch)
        if not items:
            return
        now = self.clock()
        for item in items:
            self._waiting.append((now, item))
            if isinstance(item, Due):
                self._waiting_tables += 1
        while len(self._waiting) > self.max_waiting:
            self._pass_over(self._waiting.popleft()[1])

    def _pass_over(self, item: Due | str) -> None:
        if isinstance(item, str):
            self.verbose_lines_skipped += 1
            return
        self._waiting_tables -= 1
        item.log.waiting = False
        if item.log.rows:
            self.tables.skip(item.log)
            self._count(item.log, Shown.SKIPPED)

    def _count(self, log: ConnectionLog, how: Shown) -> None:
        if log.shown is None:
            log.shown = how
            self.shown[how] += 1
            if how is Shown.SKIPPED:
                self._unreported_skips += 1

    def pump(self, *, limit: int | None = None, at_exit: bool = False) -> None:
        """Print waiting items: up to ``limit`` (between two looks at the queue), or all.

        They go to the terminal in one write: a write releases the GIL, and getting
        it back means waiting for the packet thread to let go (up to the switch
        interval), so one write per item would cap the display at a few hundred
        items a second whatever they cost to render."""
        count = 0
        try:
            with self.console:  # Rich buffers until the block ends
                while self._waiting and (limit is None or count < limit):
                    self._print_next(at_exit=at_exit)
                    count += 1
        except Exception as exc:  # a closed or broken stdout: stop printing, keep counting
            self.failure = exc

    def _print_next(self, *, at_exit: bool) -> None:
        since, item = self._waiting.popleft()
        if isinstance(item, str):
            if at_exit or self.pacer.allow_line():
                self._print(item)
            else:
                self.verbose_lines_skipped += 1
            return
        self._waiting_tables -= 1
        log = item.log
        log.waiting = False
        if not log.rows:  # nothing new since it was printed (e.g. at exit, still open)
            return
        if at_exit:  # the packet thread has stopped: no budget, but a prompt exit
            how = Shown.TABLE if self._waiting_tables < EXIT_FULL_TABLES else Shown.LINE
        else:
            how = self.pacer.choose(self.clock() - since)
        if how is Shown.TABLE:
            self._print(self.tables.table(log, status=item.status))
        elif how is Shown.LINE:
            self._degraded(at_exit=at_exit)
            self._print(self.tables.line(log, status=item.status))
        else:
            self.tables.skip(log)
        self._count(log, how)

    def _degraded(self, *, at_exit: bool) -> None:
        """Say, now and then, why connections come as one line."""
        now = self.clock()
        if at_exit:
            if self._degraded_notice_at != float("inf"):
                self._degraded_notice_at = float("inf")  # once
                self._print(
                    f"[yellow]at exit[/]: {self._waiting_tables + 1} connections to show: one line each, "
                    f"the last {EXIT_FULL_TABLES} in full, for a prompt exit"
                )
        elif now - self._degraded_notice_at >= DEGRADED_NOTICE_INTERVAL:
            self._degraded_notice_at = now
            self._print(
                "[yellow]display behind[/]: one line per connection for now, so that printing never "
                "slows the responder (every table: --pcap FILE, then l4kit replay FILE)"
            )

    def _print(self, thing: object) -> None:
        self._report_skips()
        if self.failure is not None:
            return
        started = self.cpu_clock()
        try:
            # A table's lines fit the console already: no cropping pass over them.
            self.console.print(thing, crop=not isinstance(thing, FittedTable))
        except Exception as exc:  # a closed or broken stdout: stop printing, keep counting
            self.failure = exc
        self.pacer.charge(self.cpu_clock() - started)

    def _report_skips(self, *, force: bool = False) -> None:
        if not self._unreported_skips:
            return
        now = self.clock()
        if force or now - self._skips_reported_at >= NOTICE_INTERVAL:
            count, self._unreported_skips = self._unreported_skips, 0
            self._skips_reported_at = now
            self._print(
                f"[yellow]… {count} connection{'' if count == 1 else 's'} not shown[/] "
                "(display behind; counted in the exit summary)"
            )

    def finish(self) -> None:
        """At exit (the packet thread has stopped): what waits, then what is still open."""
        self.pump(at_exit=True)
        self._report_skips(force=True)
        logs = self.tables.open_logs()
        # After a normal stop every connection has closed; a log still open then lost
        # its close to a full queue (or the responder failed before it could abort them).
        status = "end not shown: display events dropped" if self.events_dropped else "still open at exit"
        for log in logs[:MAX_TABLES_AT_EXIT]:
            self._print(self.tables.table(log, status=status))
            self._count(log, Shown.TABLE)
        more = logs[MAX_TABLES_AT_EXIT:]
        for log in more:
            self.tables.skip(log)
            self._count(log, Shown.SKIPPED)
        self._unreported_skips = 0
        if more:
            self._print(f"… and {len(more)} more open connections not shown")

    def close(self) -> DisplayStats:
        """Print what is queued, then the connections still open; what was shown.
        Called once the packet thread has stopped."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        else:
            self.drain()
        return self.stats()

    def drain(self) -> None:
        """Without a thread: take everything queued and print it as at exit."""
        self.take_queued()
        self.finish()

    def stats(self) -> DisplayStats:
        return DisplayStats(
            tables=self.shown[Shown.TABLE],
            lines=self.shown[Shown.LINE],
            skipped=self.shown[Shown.SKIPPED],
            events_dropped=self.events_dropped,
            verbose_lines_skipped=self.verbose_lines_skipped,
        )


def recovery_detail(summary: ResponderSummary) -> str:
    """How the losses were repaired: "2 fast retransmits, 5 SACK recoveries, 3 TLPs (1
    repaired a loss), 1 RTO" (what happened only)."""
    parts = []
    for count, one, many in (
        (summary.fast_retransmits, "fast retransmit", "fast retransmits"),
        (summary.sack_recoveries, "SACK recovery", "SACK recoveries"),
        (summary.loss_probes, "TLP", "TLPs"),
        (summary.timeouts, "RTO", "RTOs"),
    ):
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
            if one == "TLP" and summary.loss_probe_recoveries:
                parts[-1] += f" ({summary.loss_probe_recoveries} repaired a loss)"
    return ", ".join(parts)


def summary_table(summary: ResponderSummary) -> Table:
    """The exit summary: connections, bytes, drops by reason, cookies, retransmissions."""
    table = Table(title="l4kit respond: summary", title_justify="left", show_header=False, box=None)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_column("detail")
    table.add_row("duration", f"{summary.duration:.1f} s", "")
    table.add_row("connections", str(summary.connections), connections_detail(summary))
    table.add_row("bytes in / out", f"{summary.bytes_in} / {summary.bytes_out}", "TCP payload")
    table.add_row(
        "frames in / out",
        f"{summary.frames_in} / {summary.frames_out}",
        f"{summary.frames_matched} matched the BPF filter" if summary.frames_matched else "",
    )
    table.add_row("retransmissions", str(summary.retransmissions), recovery_detail(summary))
    table.add_row(
        "SYN cookies", f"{summary.syn_cookies_sent} sent", f"{summary.syn_cookies_accepted} accepted"
    )
    table.add_row("resets", f"{summary.resets_sent} sent", f"{summary.resets_received} received")
    if summary.idle_closed or summary.idle_reset:
        table.add_row(
            "idle timeouts",
            f"{summary.idle_closed} closed (FIN)",
            f"{summary.idle_reset} reset: the peer had not finished (--idle-timeout)",
        )
    table.add_row(
        "checksums offloaded",
        str(summary.checksum_offloaded),
        "kernel left them partial (lo): not verifiable, accepted",
    )
    if summary.kernel_rsts_suppressed is not None:
        table.add_row("kernel RSTs dropped", str(summary.kernel_rsts_suppressed), "by the firewall rule")
    if summary.send_errors:
        table.add_row("send errors", str(summary.send_errors), "")
    if summary.max_half_open:
        table.add_row(
            "half-open",
            f"peak {summary.half_open_peak}",
            f"{summary.half_open_at_stop} at the stop; past {summary.max_half_open} (--max-half-open), "
            "SYN cookies answer",
        )
    for what, value, detail in display_rows(summary.display, summary.connections_closed):
        table.add_row(what, value, detail)
    table.add_row("drops", str(summary.dropped), "" if summary.drops else "none")
    for reason, count in sorted(summary.drops.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row("", str(count), reason)
    return table


def connections_detail(summary: ResponderSummary) -> str:
    """What the ``connections`` count is (handshakes completed), and what was still open
    at the stop: those the core aborted with RST, half-open ones among them (a half-open
    connection is not in the count, so "0 ... 1 aborted" must say why)."""
    if not summary.open_at_exit:
        return "established; 0 still open at exit"
    detail = f"established; {summary.open_at_exit} still open at exit, aborted (RST)"
    if summary.half_open_at_stop:
        detail += f", {summary.half_open_at_stop} of them half-open"
    return detail


def display_rows(display: DisplayStats | None, connections: int) -> list[tuple[str, str, str]]:
    """The summary's ``tables`` rows: how many of the ``connections`` (every one the
    core opened) were shown in full, and why the others were not."""
    if display is None:
        return [("tables", "off", f"--quiet; {REPLAY_HINT.removesuffix('; or --quiet')}")]
    rows = [("tables", f"{display.tables} / {connections}", "connections shown in full")]
    not_shown = connections - display.tables
    if not_shown <= 0 and not display.events_dropped:
        return rows
    parts = []
    if display.lines:
        parts.append(f"{display.lines} as one line")
    if display.skipped:
        parts.append(f"{display.skipped} counted only")
    lost = not_shown - display.lines - display.skipped
    if lost > 0:
        parts.append(f"{lost} lost with {display.events_dropped} display events (queue full)")
    elif display.events_dropped:
        parts.append(f"{display.events_dropped} display events dropped (queue full)")
    rows.append(("", str(max(not_shown, 0)), "not shown in full: " + ", ".join(parts)))
    rows.append(("", "", f"the display fell behind; {REPLAY_HINT}"))
    if display.verbose_lines_skipped:
        rows.append(("", str(display.verbose_lines_skipped), "--verbose lines not shown"))
    return rows


# ---------------------------------------------------------------- what respond prints around the tables


def consoles() -> tuple[Console, Console]:
    """Standard output and standard error for the live commands.

    A terminal's tables fit its width (:mod:`l4kit.views.layout`). Where stdout is not
    a terminal (a pipe, a file) no width applies, and Rich's fallback of 80 columns
    would put every table in its narrow layout: 200 columns keep the boxed one, as
    ``l4kit replay`` does."""
    probe = Console()
    width = None if probe.is_terminal or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(highlight=False, width=width), Console(stderr=True, highlight=False)


def try_command(info: ReadyInfo, *, keep_open: bool) -> str:
    """The client command the start-up hint suggests. With ``--keep-open`` the server
    closes only after the client does, so ``nc`` must close its sending side at the end
    of its input (``-N``), or it would wait for ever."""
    sandbox = os.environ.get("L4KIT_SANDBOX")
    prefix = f"ip netns exec {sandbox} " if sandbox else ""
    return f"echo toppage | {prefix}nc {'-N ' if keep_open else ''}{info.address} {info.port}"


def print_ready(console: Console, info: ReadyInfo, *, quiet: bool, verbose: bool, keep_open: bool) -> None:
    """The start-up lines: where the responder listens, how to try it, and with
    ``--verbose`` how it captures and sends."""
    console.print(ready_line(info), markup=False)
    if not quiet:
        console.print(
            f"[dim]try: {escape(try_command(info, keep_open=keep_open))}    "
            "(Ctrl-C stops and puts the host back as it was)[/]"
        )
    if verbose:
        console.print(
            f"  sniffer: AsyncSniffer, BPF [bold]{info.bpf}[/], socket buffer {info.socket_buffer} B; "
            f"sending from {info.mac}; firewall: {info.firewall}"
        )


def print_notice(console: Console, err: Console, text: str) -> None:
    """A line from the driver: warnings on standard error, the rest on standard output."""
    if text.startswith("warning:"):
        err.print(f"[yellow]{text}[/]", soft_wrap=True)
    else:
        console.print(text, markup=False, soft_wrap=True)


def print_display_failure(err: Console, failure: BaseException) -> None:
    err.print(
        f"[yellow]warning:[/] the display stopped early: {type(failure).__name__}: {escape(str(failure))}",
        soft_wrap=True,
    )

"""What ``l4kit respond`` shows: one flag-transition table per connection, and the exit summary.

The packet thread hands batches of core events to :meth:`LiveRenderer.submit`
(a queue append); a renderer thread of its own turns them into
:class:`~l4kit.views.transitions.TransitionRow` s and prints, so that a slow
terminal never slows the responder.

Sequence numbers are shown relative to each side's ISN, as Wireshark does: the
client's from the sequence number of its SYN, the server's from its SYN-ACK
(both 0 on the SYN itself, so the handshake reads 0/1). A connection's table is
printed when it reaches TIME-WAIT or is closed, and anything still open when
the responder stops is printed at exit.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from l4kit.core.events import (
    ConnectionClosed,
    ConnectionReset,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    StateChanged,
    SynCookie,
)
from l4kit.core.states import State
from l4kit.errors import ConfigError
from l4kit.live.report import FrameDropped, ReadyInfo, ResponderSummary
from l4kit.views.transitions import TransitionRow, transition_table
from l4kit.wire.flags import TcpFlags
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

MAX_OPEN_LOGS = 10_000  # a SYN flood must not grow the renderer without bound
MAX_STATELESS_LOGS = 1_024  # recent LISTEN-only exchanges (SYN cookies, RSTs for no connection)
MAX_ROWS = 200  # per connection; the rest is counted
MAX_TABLES_AT_EXIT = 20
PREVIEW_BYTES = 32


def ready_line(info: ReadyInfo) -> str:
    """The line scripts (and the demo) wait for before starting a client."""
    return f"listening on {Endpoint(info.address, info.port)} ({info.iface})"


def payload_preview(data: bytes) -> str:
    """The first bytes of a payload, printable: ``"toppage\\n"``."""
    if not data:
        return ""
    text = repr(data[:PREVIEW_BYTES])[1:]
    return text + ("…" if len(data) > PREVIEW_BYTES else "")


@dataclass(slots=True)
class ConnectionLog:
    """The rows of one connection, with what relative numbering needs."""

    key: FourTuple
    first_time: float
    client_isn: SeqNum | None = None
    server_isn: SeqNum | None = None
    rows: list[TransitionRow] = field(default_factory=list)
    omitted: int = 0
    notes: list[str] = field(default_factory=list)
    shown_rows: int = 0  # rows already printed (TIME-WAIT prints before the close)

    def add(
        self, *, time: float, segment: Segment, received: bool, before: State, after: State, extra: str
    ) -> None:
        flags = segment.flags
        if received and flags & TcpFlags.SYN and not flags & TcpFlags.ACK:
            self.client_isn = segment.seq
        if not received and flags & TcpFlags.SYN:
            self.server_isn = segment.seq
        own, peer = (self.client_isn, self.server_isn) if received else (self.server_isn, self.client_isn)
        if len(self.rows) >= MAX_ROWS:
            self.omitted += 1
            return
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


def _relative(value: SeqNum, isn: SeqNum | None) -> int:
    return value.value if isn is None else (value - isn) % (1 << 32)


class ConnectionTables:
    """Turns core events into per-connection tables (no threads, no I/O: testable)."""

    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.logs: dict[FourTuple, ConnectionLog] = {}
        self.unlogged = 0
        self._due: dict[FourTuple, tuple[ConnectionLog, str]] = {}
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
            if type(event) is SegmentSent and event.before is State.LISTEN and event.after is State.LISTEN:
                log = self.logs.get(event.key)
                if log is not None and all(row.before == row.after == "LISTEN" for row in log.rows):
                    del self.logs[event.key]
                    self._stateless[event.key] = log
                    if len(self._stateless) > MAX_STATELESS_LOGS:
                        del self._stateless[next(iter(self._stateless))]

    def feed_batch(self, events: Sequence[object]) -> list[Table | str]:
        """Process the events of one call into the core; return what to print.

        A table is printed at the end of the batch in which its connection
        reached TIME-WAIT or closed, so that the segment the core sent in
        answer (the last ACK) is in it.
        """
        out: list[Table | str] = []
        for event in events:
            out += self.feed(event)
        for log, status in self._due.values():
            if len(log.rows) > log.shown_rows:
                out.append(self.table(log, status=status))
        self._due.clear()
        self._set_aside_stateless(events)
        return out

    def feed(self, event: object) -> list[Table | str]:
        """Process one event; return the verbose lines to print now (tables are
        collected until the end of the batch, see :meth:`feed_batch`)."""
        out: list[Table | str] = []
        if isinstance(event, SegmentReceived | SegmentSent):
            log = self._log(event.key, event.time)
            if log is not None:
                received = isinstance(event, SegmentReceived)
                extra = ""
                if isinstance(event, SegmentSent):
                    extra = "retransmission" if event.retransmission else ""
                    why = getattr(event, "why", "")
                    if why and why not in ("SYN-ACK", "data", "ACK", "FIN"):
                        extra = f"{extra} {why}".strip()
                log.add(
                    time=event.time,
                    segment=event.segment,
                    received=received,
                    before=event.before,
                    after=event.after,
                    extra=extra,
                )
                if event.after is State.TIME_WAIT and event.before is not State.TIME_WAIT:
                    self._due.setdefault(event.key, (log, "TIME-WAIT"))
        elif isinstance(event, ConnectionClosed):
            log = self.logs.pop(event.key, None)
            if log is not None:
                why = f"closed: {event.why}" if event.why else "closed"
                self._due[event.key] = (log, f"{why}, {event.bytes_in} B in, {event.bytes_out} B out")
        elif isinstance(event, ConnectionReset):
            log = self.logs.get(event.key)
            if log is not None:
                log.notes.append(f"reset {'by the peer' if event.by_peer else 'by l4kit'}: {event.why}")
        elif self.verbose:
            out += self._verbose_line(event)
        return out

    def _verbose_line(self, event: object) -> list[Table | str]:
        if isinstance(event, SegmentDropped):
            where = f" {event.key.remote}" if event.key is not None else ""
            seg = f" {event.segment}" if event.segment is not None else ""
            detail = f" ({event.detail})" if event.detail else ""
            return [f"[yellow]drop[/] {event.reason}{where}{seg}{detail}"]
        if isinstance(event, FrameDropped):
            detail = f" ({event.detail})" if event.detail else ""
            return [f"[yellow]drop[/] {event.reason}{detail} (frame not decoded)"]
        if isinstance(event, SynCookie):
            what = "accepted" if event.accepted else "sent"
            return [f"[cyan]syn cookie[/] {what} {event.key.remote}"]
        if isinstance(event, StateChanged):
            if event.cause is None:
                return [
                    f"[dim]state[/] {event.key.remote} {event.before} → {event.after} {event.why}".rstrip()
                ]
            return []
        name = type(event).__name__
        if name == "TimerFired":
            timer = getattr(event, "timer", "")
            key = getattr(event, "key", None)
            attempt = getattr(event, "attempt", 0)
            remote = f" {key.remote}" if key is not None else ""
            return [f"[magenta]timer[/] {timer}{remote} in {getattr(event, 'state', '')} (attempt {attempt})"]
        return []

    def table(self, log: ConnectionLog, *, status: str) -> Table:
        rows = log.rows[log.shown_rows :]
        continued = " (continued)" if log.shown_rows else ""
        log.shown_rows = len(log.rows)
        title = f"{log.key.remote} → {log.key.local}{continued}  [dim]{status}[/]"
        table = transition_table(title, rows, show_checksum=self.verbose)
        captions = list(log.notes)
        if log.omitted:
            captions.append(f"{log.omitted} more segments not shown")
        if captions:
            table.caption = "; ".join(captions)
            table.caption_justify = "left"
        return table

    def open_tables(self) -> tuple[list[Table], int]:
        """Tables of what is still open (at exit), at most MAX_TABLES_AT_EXIT."""
        pending = [log for log in self.logs.values() if len(log.rows) > log.shown_rows]
        shown = [self.table(log, status="still open at exit") for log in pending[:MAX_TABLES_AT_EXIT]]
        return shown, len(pending) - len(shown)


class LiveRenderer:
    """The renderer thread: ``submit`` from the packet thread, print from here."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self.console = console
        self.tables = ConnectionTables(verbose=verbose)
        self._queue: queue.SimpleQueue[Sequence[object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="l4kit-render", daemon=True)
        self._thread.start()

    def submit(self, batch: Sequence[object]) -> None:
        self._queue.put(batch)

    def notice(self, text: str) -> None:
        self._queue.put([_Notice(text)])

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if len(batch) == 1 and isinstance(batch[0], _Notice):
                self.console.print(batch[0].text, markup=False, highlight=False)
                continue
            for thing in self.tables.feed_batch(batch):
                self.console.print(thing)

    def close(self) -> None:
        """Print what is queued, then the connections still open."""
        self._queue.put(None)
        self._thread.join()
        tables, more = self.tables.open_tables()
        for table in tables:
            self.console.print(table)
        if more:
            self.console.print(f"… and {more} more open connections not shown")


@dataclass(frozen=True, slots=True)
class _Notice:
    text: str


def summary_table(summary: ResponderSummary) -> Table:
    """The exit summary: connections, bytes, drops by reason, cookies, retransmissions."""
    table = Table(title="l4kit respond: summary", title_justify="left", show_header=False, box=None)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_column("detail")
    table.add_row("duration", f"{summary.duration:.1f} s", "")
    table.add_row("connections", str(summary.connections), f"{summary.open_at_exit} aborted at exit (RST)")
    table.add_row("bytes in / out", f"{summary.bytes_in} / {summary.bytes_out}", "TCP payload")
    table.add_row(
        "frames in / out",
        f"{summary.frames_in} / {summary.frames_out}",
        f"{summary.frames_matched} matched the BPF filter" if summary.frames_matched else "",
    )
    table.add_row("retransmissions", str(summary.retransmissions), "")
    table.add_row(
        "SYN cookies", f"{summary.syn_cookies_sent} sent", f"{summary.syn_cookies_accepted} accepted"
    )
    table.add_row("resets", f"{summary.resets_sent} sent", f"{summary.resets_received} received")
    table.add_row(
        "checksums offloaded",
        str(summary.checksum_offloaded),
        "kernel left them partial (lo): not verifiable, accepted",
    )
    if summary.kernel_rsts_suppressed is not None:
        table.add_row("kernel RSTs dropped", str(summary.kernel_rsts_suppressed), "by the firewall rule")
    if summary.send_errors:
        table.add_row("send errors", str(summary.send_errors), "")
    table.add_row("drops", str(summary.dropped), "" if summary.drops else "none")
    for reason, count in sorted(summary.drops.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row("", str(count), reason)
    return table


# ---------------------------------------------------------------- the commands (called by l4kit.cli)


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondRequest:
    """The options of ``l4kit respond`` as the CLI parsed them."""

    iface: str = "lo"
    port: int = 8888
    address: str = "127.0.0.1"
    routes: Path | None = None
    keep_open: bool = False
    pcap: Path | None = None
    quiet: bool = False
    verbose: bool = False
    max_conns: int = 1024
    max_half_open: int = 256
    no_firewall: bool = False
    sandbox: bool = False
    codec: str = "scapy"
    duration: float | None = None
    firewall: str = "auto"
    rcvbuf: int = 16 * 1024 * 1024
    synack_retries: int = 5
    retries: int = 5

    def child_args(self) -> list[str]:
        """The same options for the responder that ``--sandbox`` starts inside the
        namespace (paths made absolute: the child shares the working directory, but
        a user reading the command line should not have to know that)."""
        args = ["--iface", self.iface, "--port", str(self.port), "--address", self.address]
        args += ["--max-conns", str(self.max_conns), "--max-half-open", str(self.max_half_open)]
        args += ["--codec", self.codec, "--firewall", self.firewall, "--rcvbuf", str(self.rcvbuf)]
        args += ["--synack-retries", str(self.synack_retries), "--retries", str(self.retries)]
        if self.routes is not None:
            args += ["--routes", str(self.routes.absolute())]
        if self.pcap is not None:
            args += ["--pcap", str(self.pcap.absolute())]
        if self.duration is not None:
            args += ["--duration", repr(self.duration)]
        for flag, on in (
            ("--keep-open", self.keep_open),
            ("--quiet", self.quiet),
            ("--verbose", self.verbose),
            ("--no-firewall", self.no_firewall),
        ):
            if on:
                args.append(flag)
        return args


def _consoles() -> tuple[Console, Console]:
    """Rich falls back to 80 columns when stdout is not a terminal; the transition
    table needs about 110 to keep "SYN-RECEIVED → ESTABLISHED" on one line."""
    probe = Console()
    width = None if probe.is_terminal or "COLUMNS" in os.environ else 120
    return Console(highlight=False, width=width), Console(stderr=True, highlight=False)


def respond(request: RespondRequest) -> int:
    """``l4kit respond``: run until stopped, print tables as connections close,
    then the exit summary. Returns the exit code."""
    from l4kit.live.privileges import require_live_privileges

    if request.quiet and request.verbose:
        raise ConfigError("--quiet and --verbose exclude each other")
    console, err = _consoles()
    if request.sandbox:
        require_live_privileges("l4kit respond --sandbox", firewall=True, namespace=True)
        from l4kit.live.sandbox import run_sandboxed

        return run_sandboxed(request.child_args(), port=request.port, notice=console.print)
    require_live_privileges(firewall=not request.no_firewall)

    from l4kit.live.responder import ResponderOptions, run_responder

    options = ResponderOptions(
        iface=request.iface,
        address=request.address,
        port=request.port,
        routes_file=request.routes,
        keep_open=request.keep_open,
        pcap=request.pcap,
        max_conns=request.max_conns,
        max_half_open=request.max_half_open,
        firewall="none" if request.no_firewall else request.firewall,
        codec=request.codec,
        duration=request.duration,
        socket_buffer=request.rcvbuf,
        synack_retries=request.synack_retries,
        retries=request.retries,
    )
    renderer = None if request.quiet else LiveRenderer(console, verbose=request.verbose)

    def on_ready(info: ReadyInfo) -> None:
        console.print(ready_line(info), markup=False)
        if not request.quiet:
            sandbox = os.environ.get("L4KIT_SANDBOX")
            prefix = f"ip netns exec {sandbox} " if sandbox else ""
            console.print(
                f"[dim]try: echo toppage | {prefix}nc {info.address} {info.port}    "
                "(Ctrl-C stops and puts the host back as it was)[/]"
            )
        if request.verbose:
            console.print(
                f"  sniffer: AsyncSniffer, BPF [bold]{info.bpf}[/], socket buffer {info.socket_buffer} B; "
                f"sending from {info.mac}; firewall: {info.firewall}"
            )

    def notice(text: str) -> None:
        if text.startswith("warning:"):
            err.print(f"[yellow]{text}[/]", soft_wrap=True)
        else:
            console.print(text, markup=False, soft_wrap=True)

    try:
        summary = run_responder(
            options, sink=renderer.submit if renderer else None, on_ready=on_ready, notice=notice
        )
    finally:
        if renderer is not None:
            renderer.close()
    console.print(summary_table(summary))
    return 0


def cleanup(*, dry_run: bool) -> int:
    """``l4kit cleanup``: undo what killed responders left in this namespace."""
    from l4kit.live.host import cleanup as host_cleanup
    from l4kit.live.privileges import Capability, require_capabilities

    require_capabilities("l4kit cleanup", [Capability.CAP_NET_ADMIN])
    console, _err = _consoles()
    report = host_cleanup(dry_run=dry_run)
    if dry_run and report.actions:
        console.print("[bold]dry run[/]: nothing changed; l4kit cleanup would do this:")
    for action in report.actions:
        console.print(f"  {action}", markup=False)
    for skipped in report.skipped:
        console.print(f"  [dim]left alone:[/] {skipped}")
    if not report.actions:
        console.print("nothing to clean up")
    return 0


def doctor() -> int:
    """``l4kit doctor``: a table of checks with a fix for each missing piece."""
    from l4kit.live import doctor as checks_module

    console, _err = _consoles()
    checks = checks_module.run_checks()
    table = Table(title="l4kit doctor", title_justify="left", header_style="bold")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found")
    table.add_column("fix")
    styles = {"ok": "green", "missing": "bold red", "warn": "yellow", "info": "dim"}
    for check in checks:
        status = check.status if check.required or check.status != "missing" else "warn"
        table.add_row(check.name, f"[{styles.get(status, '')}]{status}[/]", check.found, check.fix)
    console.print(table)
    if checks_module.all_required_present(checks):
        console.print("[green]ready[/]: everything l4kit respond needs is here")
        return 0
    console.print("[bold red]not ready[/]: fix the rows marked missing")
    return 1


def demo(*, message: str, port: int) -> int:
    """``l4kit demo``: the responder in a sandbox, a real ``nc`` against it."""
    from l4kit.live.apps import expected_reply
    from l4kit.live.privileges import require_live_privileges
    from l4kit.live.sandbox import run_demo

    require_live_privileges("l4kit demo", firewall=True, namespace=True)
    console, err = _consoles()
    expected = expected_reply(message)
    console.print(
        f"[bold]l4kit demo[/]: a userspace TCP responder in a throw-away network namespace, port {port}"
    )
    result = run_demo(message, port, expected, progress=lambda line: console.print(line, markup=False))
    if result.client_exit is not None:
        for line in result.client_output.splitlines() or ["(nothing)"]:
            console.print(f"  [bold green]{line}[/]" if line else "")
        console.print(
            f"[dim]nc exited with status {result.client_exit} after {result.client_seconds:.3f} s "
            f"(the responder closed the connection)[/]"
        )
    for line in result.responder_output:
        if "try: echo" not in line:  # the responder's hint; the demo already ran the client
            sys.stdout.write(line)
    sys.stdout.flush()
    if result.ok:
        console.print(
            f"[green]ok[/]: nc printed {expected!r}, the reply of the string server for {message!r}; "
            f"namespace {result.namespace} deleted"
        )
        console.print("[dim]next: sudo l4kit respond --sandbox (then nc into it), or l4kit respond --help[/]")
        return 0
    why = result.failure or (
        f"nc printed {result.client_output!r}, expected {expected!r}"
        if result.client_output != expected
        else f"the responder exited with status {result.responder_exit}"
    )
    err.print(f"[bold red]demo failed:[/] {why}", soft_wrap=True)
    return 1

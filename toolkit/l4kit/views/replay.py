"""Rendering ``l4kit replay``: Rich tables, streamed JSON, Mermaid, and ``--step``.

The engine (:mod:`l4kit.replay.engine`) hands over one
:class:`~l4kit.replay.model.ConnectionReport` per finished connection. The JSON
and Mermaid writers print each report as it arrives, so their memory does not
grow with the capture; the table output prints a summary first and so keeps the
reports (rows for at most :data:`TABLE_DETAIL_LIMIT` connections) until the end.

The JSON schema is ``l4kit.replay/1`` and is documented in ``docs/replay-json.md``;
fields are only ever added under this name, never renamed or removed.
"""

from __future__ import annotations

import gc
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Final

from l4kit.mermaid import mermaid_escape
from l4kit.replay.capture import Frame
from l4kit.replay.jsontext import JSON_SCHEMA, connection_json_text, summary_json
from l4kit.replay.model import (
    DIRECTIONS,
    FLAG_LETTERS,
    R_ACK,
    R_CHECKSUM,
    R_CLIENT_AFTER,
    R_CLIENT_BEFORE,
    R_DIR,
    R_FLAGS,
    R_FRAME,
    R_HEAD,
    R_LEN,
    R_NOTES,
    R_SEQ,
    R_SERVER_AFTER,
    R_SERVER_BEFORE,
    R_T,
    R_WIN,
    ConnectionReport,
    PacketRecord,
    ReplaySummary,
    preview,
)
from l4kit.replay.zeek import CONN_STATE_MEANINGS
from l4kit.views.transitions import TransitionRow, transition_table

if TYPE_CHECKING:  # Rich is imported where a table or a step is printed: see _run_replay
    from rich.console import Console
    from rich.table import Table

TABLE_DETAIL_LIMIT: Final = 100

_STATE_STYLE: Final = {
    "SF": "green",
    "S1": "green",
    "REJ": "yellow",
    "S0": "yellow",
    "RSTO": "red",
    "RSTR": "red",
    "RSTOS0": "red",
    "RSTRH": "red",
}


# ---------------------------------------------------------------- tables


def to_transition_row(rec: PacketRecord) -> TransitionRow:
    """The shared flag-transition row of a packet record."""
    return TransitionRow(
        t=rec[R_T],
        direction=DIRECTIONS[rec[R_DIR]],
        flags=FLAG_LETTERS[rec[R_FLAGS]],
        seq=rec[R_SEQ],
        ack=rec[R_ACK],
        length=rec[R_LEN],
        window=rec[R_WIN],
        before=rec[R_SERVER_BEFORE].value,
        after=rec[R_SERVER_AFTER].value,
        checksum=rec[R_CHECKSUM],
        notes=rec[R_NOTES],
        payload_preview=preview(rec[R_HEAD], rec[R_LEN]) if rec[R_LEN] else "",
        frame=rec[R_FRAME],
        client_before=rec[R_CLIENT_BEFORE].value,
        client_after=rec[R_CLIENT_AFTER].value,
    )


def transition_rows(report: ConnectionReport) -> list[TransitionRow]:
    return [to_transition_row(rec) for rec in report.rows]


def _analysis_text(report: ConnectionReport) -> str:
    parts = [f"{n} {name}" for name, n in sorted(report.analysis.items())]
    if report.checksum["bad"]:
        parts.append(f"{report.checksum['bad']} bad checksum")
    return ", ".join(parts)


def _checksum_text(counts: dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in counts.items() if v) or "-"


def summary_table(reports: list[ConnectionReport], summary: ReplaySummary) -> Table:
    """One row per connection: endpoints, Zeek state and history, counts, final RFC states."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"TCP connections in {summary.file}", title_justify="left", header_style="bold", expand=False
    )
    for name, justify in (
        ("id", "right"),
        ("client", "left"),
        ("server", "left"),
        ("state", "left"),
        ("history", "left"),
        ("pkts c→s/s→c", "right"),
        ("bytes c→s/s→c", "right"),
        ("duration (s)", "right"),
        ("client / server end state", "left"),
        ("checksums", "left"),
        ("analysis", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in sorted(reports, key=lambda r: r.id):
        table.add_row(
            str(r.id),
            r.client,
            r.server,
            Text(r.state, style=_STATE_STYLE.get(r.state, "")),
            r.history,
            f"{r.c2s.packets}/{r.s2c.packets}",
            f"{r.c2s.bytes}/{r.s2c.bytes}",
            f"{r.duration:.6f}",
            f"{r.client_state} / {r.server_state}",
            _checksum_text(r.checksum),
            _analysis_text(r),
        )
    return table


def summary_footer(summary: ReplaySummary) -> str:
    parts = [
        f"{summary.packets} packets",
        f"{summary.tcp_packets} TCP",
        f"{summary.connections} connections",
    ]
    if summary.shown != summary.connections:
        parts.append(f"{summary.shown} shown")
    parts.append("TCP checksums: " + _checksum_text(summary.checksum))
    if summary.ip_checksum_bad:
        parts.append(f"{summary.ip_checksum_bad} bad IPv4 header checksums")
    if summary.skipped:
        parts.append("skipped: " + ", ".join(f"{v} {k}" for k, v in sorted(summary.skipped.items())))
    return " · ".join(parts)


def connection_table(report: ConnectionReport) -> Table:
    """The shared flag-transition table for one connection, with both sides' states."""
    meaning = CONN_STATE_MEANINGS.get(report.state, "")
    title = f"[{report.id}] {report.client} → {report.server}  {report.state} ({meaning})  {report.history}"
    return transition_table(
        title, transition_rows(report), show_checksum=True, show_client_state=True, show_frame=True
    )


class TableCollector:
    """Keeps reports for the table output: all summaries, rows for the first
    :data:`TABLE_DETAIL_LIMIT` connections (by id) to keep memory bounded."""

    def __init__(self) -> None:
        self.reports: list[ConnectionReport] = []
        self.detailed = 0

    def __call__(self, report: ConnectionReport) -> None:
        if self.detailed >= TABLE_DETAIL_LIMIT:
            report.rows_omitted += len(report.rows)
            report.rows = []
        else:
            self.detailed += 1
        self.reports.append(report)

    def render(self, console: Console, summary: ReplaySummary) -> None:
        from rich.text import Text

        console.print(summary_table(self.reports, summary))
        console.print(summary_footer(summary), highlight=False)
        for report in sorted(self.reports, key=lambda r: r.id):
            if not report.rows:
                continue
            console.print()
            console.print(connection_table(report))
            extra = []
            if report.rows_omitted:
                extra.append(f"{report.rows_omitted} more packets not shown (--max-rows)")
            extra += report.notes
            if report.differences is not None:
                if report.differences:
                    extra.append(f"l4kit's responder would answer differently ({len(report.differences)}):")
                    extra += [f"  {line}" for line in report.differences]
                else:
                    extra.append("l4kit's responder would answer exactly as the captured server did")
            for line in extra:
                console.print(Text(f"  {line}"))
        hidden = sum(1 for r in self.reports if not r.rows)
        if hidden:
            console.print(
                Text(
                    f"\n{hidden} connections listed without their packets "
                    f"(tables for the first {TABLE_DETAIL_LIMIT}); use --stream N or --format json"
                )
            )


# ---------------------------------------------------------------- JSON
# The text of each connection is formatted by l4kit.replay.jsontext.


class JsonWriter:
    """Writes the document as connections finish: one connection object per line
    inside ``"connections": [...]``, then the summary. The whole output is one
    JSON document."""

    def __init__(self, out: IO[str], file: str) -> None:
        self.out = out
        self.count = 0
        out.write("{" + f'"schema": {json.dumps(JSON_SCHEMA)}, "file": {json.dumps(file)}, "connections": [')

    def __call__(self, report: ConnectionReport) -> None:
        self.write_text(connection_json_text(report))

    def write_text(self, text: str) -> None:
        """One connection already formatted by :func:`connection_json_text`."""
        self.out.write(("\n" if self.count == 0 else ",\n") + text)
        self.count += 1

    def close(self, summary: ReplaySummary) -> None:
        self.out.write(
            ("\n" if self.count else "") + '], "summary": ' + json.dumps(summary_json(summary)) + "}\n"
        )
        self.out.flush()


def _replay_split(
    file: str,
    jobs: int,
    frames: Iterator[Frame],
    writer: JsonWriter,
    *,
    port: int | None,
    max_rows: int,
    size: int | None,
    time_digits: int,
) -> ReplaySummary:
    """``--format json`` with the connections split between ``jobs`` processes
    (:mod:`l4kit.replay.parallel`); the output is the same as with one."""
    from l4kit.replay import parallel
    from l4kit.replay.capture import CaptureReader
    from l4kit.replay.engine import Replayer

    own_summary: list[ReplaySummary] = []

    def work(shard: int, emit: parallel.EmitIndexed, pull: parallel.Pull | None) -> dict[str, Any]:
        def format_report(report: ConnectionReport) -> None:
            emit(replayer.emitted - 1, connection_json_text(report))

        replayer = Replayer(
            format_report,
            file=file,
            port=port,
            max_rows=max_rows,
            shards=jobs,
            shard=shard,
            on_other_shard=pull,
            time_digits=time_digits,
        )
        if shard == 0:
            replayer.run(frames)  # this process: the reader already open
        else:
            with CaptureReader(file, size=size) as capture:
                replayer.run(capture)
        summary = replayer.finish()
        own_summary.append(summary)
        return {
            "shown": summary.shown,
            "checksum": summary.checksum,
            "ip_checksum_bad": summary.ip_checksum_bad,
        }

    counts = parallel.run_sharded(jobs, work, writer.write_text)
    summary = own_summary[0]
    for other in counts[1:]:
        summary.shown += other["shown"]
        summary.ip_checksum_bad += other["ip_checksum_bad"]
        for status, count in other["checksum"].items():
            summary.checksum[status] += count
    return summary


# ---------------------------------------------------------------- Mermaid


def mermaid_label(row: TransitionRow) -> str:
    parts = [row.flags or ".", f"seq={row.seq}"]
    if row.ack is not None:
        parts.append(f"ack={row.ack}")
    if row.length:
        parts.append(f"len={row.length}")
        parts.append(f"«{row.payload_preview}»")
    label = " ".join(parts)
    if row.checksum == "bad":
        label += " [bad checksum]"
    if row.notes:
        label += " [" + ", ".join(row.notes) + "]"
    return mermaid_escape(label)


class MermaidWriter:
    """One ``sequenceDiagram`` for everything shown: participants keyed by ip:port
    (so both ends of a loopback connection get their own column), declared just
    before their first arrow; each connection opens with a note naming it."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.participants: dict[str, str] = {}
        out.write("sequenceDiagram\n")

    def _participant(self, endpoint: str) -> str:
        name = self.participants.get(endpoint)
        if name is None:
            name = f"P{len(self.participants)}"
            self.participants[endpoint] = name
            self.out.write(f"    participant {name} as {mermaid_escape(endpoint)}\n")
        return name

    def __call__(self, report: ConnectionReport) -> None:
        c = self._participant(report.client)
        s = self._participant(report.server)
        head = f"connection {report.id}: {report.state} {report.history}"
        self.out.write(f"    Note over {c},{s}: {mermaid_escape(head)}\n")
        for row in transition_rows(report):
            src, dst = (c, s) if row.direction == "c2s" else (s, c)
            arrow = "-x" if row.checksum == "bad" else "->>"
            self.out.write(f"    {src}{arrow}{dst}: {mermaid_label(row)}\n")
        if report.rows_omitted:
            self.out.write(f"    Note over {c},{s}: {report.rows_omitted} more packets not shown\n")
        for line in report.differences or []:
            self.out.write(f"    Note over {c},{s}: {mermaid_escape(line)}\n")

    def close(self, summary: ReplaySummary) -> None:
        if not self.participants:
            self.out.write("    Note over nobody: no TCP connection in the capture\n")
        self.out.flush()


# ---------------------------------------------------------------- --step


def frame_layers(linktype: int, frame: bytes) -> str:
    """Scapy's layer view of one frame (``show(dump=True)``): dissected only when shown."""
    import scapy.layers.inet
    import scapy.layers.inet6
    import scapy.layers.l2  # noqa: F401 - importing the layers registers them per linktype
    from scapy.config import conf
    from scapy.packet import Raw

    layer = conf.l2types.num2layer.get(linktype, Raw)
    try:
        return str(layer(frame).show(dump=True))
    except Exception as exc:
        return f"(Scapy could not dissect this frame: {exc})"


def _state_change(side: str, before: str, after: str) -> str:
    return f"{side}: {before} → {after}" if before != after else f"{side}: {after}"


class Stepper:
    """``--step``: one packet at a time, with Scapy's layers and the state change.

    Waits for Enter after each packet when ``interactive`` (stdin is a TTY); ``q``
    then Enter stops. Otherwise prints every step without waiting.
    """

    def __init__(
        self, console: Console, *, interactive: bool, read_line: Callable[[], str] = sys.stdin.readline
    ) -> None:
        self.console = console
        self.interactive = interactive
        self.read_line = read_line
        self.stopped = False
        self.count = 0

    def __call__(self, report: ConnectionReport, record: PacketRecord, linktype: int, frame: bytes) -> None:
        from rich.text import Text

        row = to_transition_row(record)
        self.count += 1
        arrow = "→" if row.direction == "c2s" else "←"
        self.console.rule(
            Text(f"frame {row.frame} · connection {report.id}: {report.client} {arrow} {report.server}")
        )
        self.console.print(Text(frame_layers(linktype, frame)))
        ack = "" if row.ack is None else f" ack={row.ack}"
        self.console.print(
            Text(
                f"{row.flags or '.'} seq={row.seq}{ack} len={row.length} win={row.window} "
                f"checksum={row.checksum}  (relative seq/ack, t={row.t:.6f}s)",
                style="bold",
            )
        )
        self.console.print(Text(_state_change("client", row.client_before, row.client_after)))
        self.console.print(Text(_state_change("server", row.before, row.after)))
        for note in row.notes:
            self.console.print(Text(f"[{note}]", style="yellow"))
        if self.interactive:
            self.console.print(Text("Enter: next packet, q: quit", style="dim"))
            answer = self.read_line()
            if answer == "" or answer.strip().lower() in ("q", "quit"):
                self.stopped = True


# ---------------------------------------------------------------- the command


def run_replay(file: str, **options: Any) -> int:
    """``l4kit replay``: read ``file``, print the chosen format, return the exit code
    (0, or :data:`~l4kit.replay.capture.EXIT_TRUNCATED` after a cut capture).

    Bad input raises :class:`~l4kit.errors.CaptureError` (exit code 2) before
    anything is printed. A reader that goes away (``| head``) ends the run quietly;
    an output that cannot be written (a full disk) is one error line.
    """
    from l4kit.errors import L4kitError

    try:
        return _run_replay(file, **options)
    except BrokenPipeError:
        # The reader stopped reading: stop too, and keep Python from complaining
        # about the unflushed stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1  # as Rich does for the table output: not everything was delivered
    except OSError as exc:
        if exc.filename is None:  # a write to the output, not a file being opened
            raise L4kitError(f"cannot write the output: {exc.strerror or exc}") from None
        raise


JOBS_ENV: Final = "L4KIT_REPLAY_JOBS"
"""The environment variable that sets how many processes ``replay --format json`` uses
(1: one, the way to turn splitting off); unset or 0: chosen from the capture's size."""


def replay_jobs(file: str, jobs: int | None = None) -> int:
    """How many processes to read ``file`` with: ``jobs`` if given, else
    :data:`JOBS_ENV`, else two for a capture of at least
    :data:`~l4kit.replay.parallel.PARALLEL_MIN_BYTES` on a machine with two cores."""
    from l4kit.errors import ConfigError
    from l4kit.replay import parallel

    if jobs is None:
        text = os.environ.get(JOBS_ENV, "").strip()
        try:
            jobs = int(text) if text else 0
        except ValueError:
            raise ConfigError(f"{JOBS_ENV}={text!r}: not a number of processes") from None
    if jobs < 0:
        raise ConfigError(f"jobs: {jobs} is not a number of processes")
    try:
        info = os.stat(file)
    except OSError:
        return 1  # the reader reports it
    if not stat.S_ISREG(info.st_mode) or not hasattr(os, "fork"):
        return 1  # a pipe or a device cannot be read twice
    return parallel.auto_jobs(info.st_size) if jobs == 0 else jobs


def _run_replay(
    file: str,
    *,
    fmt: str = "table",
    port: int | None = None,
    bpf: str | None = None,
    stream: int | None = None,
    step: bool = False,
    max_rows: int = 1000,
    through_responder: bool = False,
    routes: str | None = None,
    out: IO[str] | None = None,
    err: Console | None = None,
    interactive: bool | None = None,
    jobs: int | None = None,
) -> int:
    from l4kit.errors import CaptureError
    from l4kit.replay.capture import EXIT_BAD_INPUT, EXIT_TRUNCATED, CaptureReader
    from l4kit.replay.engine import Replayer
    from l4kit.wire import link

    out = out if out is not None else sys.stdout
    console: Console | None = None
    if fmt == "table" or step:
        # Only these print with Rich: the JSON and Mermaid outputs never import it, which
        # is about 45 ms of every run's start-up (benchmarks/bench_replay.py times whole runs).
        from rich.console import Console

        # A pipe gets wide lines rather than columns squeezed to 80 characters.
        console = Console(file=out, highlight=False, width=None if out.isatty() else 200)
    sink: Callable[[ConnectionReport], None]
    table: TableCollector | None = None
    writer: JsonWriter | MermaidWriter | None = None
    stepper = None
    # Splitting by connection between processes: for the JSON output (written as it
    # is made), when every connection is analysed, and reading the file itself.
    splittable = fmt == "json" and not step and not through_responder and bpf is None and stream is None
    processes = replay_jobs(file, jobs) if splittable else 1
    # Every process reads the same bytes, even of a file that is still being written.
    size = os.stat(file).st_size if processes > 1 else None

    with CaptureReader(file, bpf=bpf, size=size) as capture:
        frames = iter(capture)
        first = next(frames, None)
        if first is not None and not link.is_supported(first[2]):
            raise CaptureError(
                f"{file}: unsupported link type {link.linktype_name(first[2])}", exit_code=EXIT_BAD_INPUT
            )
        frames_from_first = chain([first] if first else [], frames)
        # The loop allocates millions of short-lived tuples and no reference cycles:
        # the cyclic garbage collector would only rescan them.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if processes > 1:
                writer = JsonWriter(out, file)
                summary = _replay_split(
                    file,
                    processes,
                    frames_from_first,
                    writer,
                    port=port,
                    max_rows=max_rows,
                    size=size,
                    time_digits=capture.time_digits,
                )
            else:
                if fmt == "json":
                    writer = JsonWriter(out, file)
                    sink = writer
                elif fmt == "mermaid":
                    writer = MermaidWriter(out)
                    sink = writer
                else:
                    table = TableCollector()
                    sink = table
                routes_for_responder = None
                if through_responder:
                    from l4kit.replay.responder import load_routes

                    routes_for_responder = load_routes(routes)
                replayer = Replayer(
                    sink,
                    file=file,
                    port=port,
                    stream=stream,
                    max_rows=max_rows,
                    through_responder=routes_for_responder,
                    time_digits=capture.time_digits,
                    frame_filter=capture.frame_filter,
                )
                if step:
                    assert console is not None
                    tty = sys.stdin.isatty() if interactive is None else interactive
                    stepper = Stepper(console, interactive=tty)
                if stepper is None:
                    replayer.run(frames_from_first)
                else:
                    step_through = stepper

                    def show(
                        report: ConnectionReport, record: PacketRecord, linktype: int, data: bytes
                    ) -> bool:
                        step_through(report, record, linktype, data)
                        return step_through.stopped

                    replayer.run(frames_from_first, show)
                summary = replayer.finish()
        finally:
            if gc_was_enabled:
                gc.enable()
        summary.truncated = capture.truncated
        summary.truncation_detail = capture.truncation_detail

    if writer is not None:
        writer.close(summary)
    elif table is not None and not (stepper is not None and stepper.stopped):
        assert console is not None
        if stepper is not None:
            console.print()
        table.render(console, summary)
    if summary.truncated:
        from rich.console import Console
        from rich.text import Text

        err = err if err is not None else Console(stderr=True, highlight=False)
        err.print(
            Text(
                f"warning: {file} is truncated ({summary.truncation_detail}); read up to the cut",
                style="yellow",
            )
        )
        return EXIT_TRUNCATED
    return 0

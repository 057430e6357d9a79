"""Rendering ``l4kit replay``: Rich tables, streamed JSON, Mermaid, and ``--step``.

The engine (:mod:`l4kit.replay.engine`) hands over one
:class:`~l4kit.replay.model.ConnectionReport` per finished connection. The JSON
and Mermaid writers print each report as it arrives, so their memory does not
grow with the capture; the table output prints a summary first and so keeps the
reports (rows for at most :data:`TABLE_DETAIL_LIMIT` connections) until the end.

The JSON schema is ``l4kit.replay/1.1`` and is documented in ``docs/replay-json.md``;
fields are only ever added within major version 1, never renamed or removed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final

from l4kit.mermaid import mermaid_escape
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
    R_WSCALE,
    ConnectionReport,
    PacketRecord,
    ReplaySummary,
    preview,
    scaled_window,
)
from l4kit.replay.zeek import CONN_STATE_MEANINGS
from l4kit.views.transitions import TransitionRow, transition_table

if TYPE_CHECKING:  # Rich is imported where a table or a step is printed (l4kit.commands.replay)
    from rich.console import Console
    from rich.text import Text

    from l4kit.views.layout import FittedTable

TABLE_DETAIL_LIMIT: Final = 100

_PER_DIRECTION: Final = "pkts, bytes: client → server / server → client"

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
        window=scaled_window(rec[R_WIN], rec[R_WSCALE]),
        before=rec[R_SERVER_BEFORE].value,
        after=rec[R_SERVER_AFTER].value,
        checksum=rec[R_CHECKSUM],
        notes=rec[R_NOTES],
        payload_preview=preview(rec[R_HEAD], rec[R_LEN]) if rec[R_LEN] else "",
        frame=rec[R_FRAME],
        client_before=rec[R_CLIENT_BEFORE].value,
        client_after=rec[R_CLIENT_AFTER].value,
        window_shift=max(rec[R_WSCALE], 0),
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


def capture_name(summary: ReplaySummary) -> str:
    return "standard input" if summary.file == "-" else summary.file


def summary_table(reports: list[ConnectionReport], summary: ReplaySummary) -> FittedTable:
    """One row per connection: endpoints, Zeek state and history, counts, final RFC states.

    Where the terminal is narrow, the counts, end states, checksums and analysis go
    to a second line under each connection (:class:`~l4kit.views.layout.FittedTable`)."""
    from rich.markup import escape
    from rich.style import Style

    from l4kit.views.layout import Column, FittedTable

    # Several captures: ids count from 0 in each capture (or rotated set), so rows name
    # their file, and come in the order the files were read.
    files = [f["file"] for f in summary.files]
    several = len(files) > 1
    order = {name: i for i, name in enumerate(files)}
    columns = [
        *([Column("file")] if several else []),
        Column("id", "right"),
        Column("client"),
        Column("server"),
        Column("state"),
        Column("history", wrap=True),
        Column("pkts c→s/s→c", "right", short="pkts", detail=True, explain=_PER_DIRECTION),
        Column("bytes c→s/s→c", "right", short="bytes", detail=True, explain=_PER_DIRECTION),
        Column("duration (s)", "right", short="s", detail=True, explain="s: duration in seconds"),
        Column(
            "client / server end state", short="end", detail=True, explain="end: client / server end state"
        ),
        Column("checksums", wrap=True, detail=True, label="checksums"),
        Column("analysis", wrap=True, detail=True, label="-"),
    ]
    styles = {state: Style.parse(name) for state, name in _STATE_STYLE.items()}
    rows = [
        [
            *([(os.path.basename(r.file), None)] if several else []),
            (str(r.id), None),
            (r.client, None),
            (r.server, None),
            (r.state, styles.get(r.state)),
            (r.history, None),
            (f"{r.c2s.packets}/{r.s2c.packets}", None),
            (f"{r.c2s.bytes}/{r.s2c.bytes}", None),
            (f"{r.duration:.6f}", None),
            (f"{r.client_state} / {r.server_state}", None),
            (_checksum_text(r.checksum), None),
            (_analysis_text(r), None),
        ]
        for r in sorted(reports, key=lambda r: (order.get(r.file, 0), r.id))
    ]
    where = f"{len(files)} captures" if several else capture_name(summary)
    return FittedTable(columns, rows, title=escape(f"TCP connections in {where}"))


def liveplay_line(result: dict[str, Any]) -> str:
    """``--through-responder``'s liveplay result as one line."""
    difference = result["first_difference"]
    where = "identical" if difference is None else f"first difference at offset {difference}"
    line = (
        f"played through l4kit's core as liveplay plays it: sent {result['sent']} of "
        f"{result['captured_sent']} octets, received {result['received']} (captured "
        f"{result['captured_received']}), {where}; {result['state']}"
    )
    return line + "".join(
        f"; {note}" for note in result["notes"] if not note.startswith("the server's octets")
    )


def summary_footer(summary: ReplaySummary) -> str:
    parts = [
        f"{summary.packets} packets",
        f"{summary.tcp_packets} TCP",
        f"{summary.connections} connections",
    ]
    if summary.shown != summary.connections:
        parts.append(f"{summary.shown} shown")
    if summary.filter_frames is not None:
        parts.append(f"--filter matched {summary.filter_frames} frames")
    parts.append("TCP checksums: " + _checksum_text(summary.checksum))
    if summary.ip_checksum_bad:
        parts.append(f"{summary.ip_checksum_bad} bad IPv4 header checksums")
    fragments = summary.fragments
    if fragments:
        counts = ", ".join(f"{n} {k}" for k, n in fragments.items() if k != "frames" and n)
        parts.append(
            f"IP fragments: {fragments.get('frames', 0)} frames" + (f" ({counts})" if counts else "")
        )
    if summary.skipped:
        parts.append("skipped: " + ", ".join(f"{v} {k}" for k, v in sorted(summary.skipped.items())))
    return " · ".join(parts)


def connection_table(report: ConnectionReport) -> FittedTable:
    """The shared flag-transition table for one connection, with both sides' states."""
    from rich.markup import escape

    meaning = CONN_STATE_MEANINGS.get(report.state, "")
    title = f"[{report.id}] {report.client} → {report.server}  {report.state} ({meaning})  {report.history}"
    return transition_table(
        escape(title), transition_rows(report), show_checksum=True, show_client_state=True, show_frame=True
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

        # crop=False: a FittedTable's lines fit the console already (Rich would split
        # and measure every line again to crop it).
        console.print(summary_table(self.reports, summary), crop=False)
        console.print(summary_footer(summary), highlight=False, markup=False)
        for report in sorted(self.reports, key=lambda r: r.id):
            if not report.rows:
                continue
            console.print()
            console.print(connection_table(report), crop=False)
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
            if report.liveplay is not None:
                extra.append(liveplay_line(report.liveplay))
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

    format = staticmethod(connection_json_text)  # one connection's text, made in any process

    def __init__(self, out: IO[str], file: str) -> None:
        self.out = out
        self.file = file
        self.count = 0
        # Written with the first connection, or at the end: a run that fails before
        # (--stream past the last connection) leaves no half document behind.
        self._head = (
            "{" + f'"schema": {json.dumps(JSON_SCHEMA)}, "file": {json.dumps(file)}, "connections": ['
        )

    def start(self, first_time: float | None = None) -> None:
        """The run's first frame was read (the writers' common interface): nothing to write yet."""

    def __call__(self, report: ConnectionReport) -> None:
        self.write_text(connection_json_text(report))

    def write_text(self, text: str) -> None:
        """One connection already formatted by :func:`connection_json_text`."""
        self.out.write((self._head + "\n") if self.count == 0 else ",\n")
        self.out.write(text)
        self.count += 1

    def close(self, summary: ReplaySummary) -> None:
        self.out.write(
            ("\n" if self.count else self._head)
            + '], "summary": '
            + json.dumps(summary_json(summary))
            + "}\n"
        )
        self.out.flush()


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
        self._started = False

    def start(self, first_time: float | None = None) -> None:
        """The run's first frame was read (the writers' common interface): nothing to write yet."""

    def _start(self) -> None:
        """The diagram's first line, with its first connection or at the end."""
        if not self._started:
            self._started = True
            self.out.write("sequenceDiagram\n")

    def _participant(self, endpoint: str) -> str:
        name = self.participants.get(endpoint)
        if name is None:
            name = f"P{len(self.participants)}"
            self.participants[endpoint] = name
            self.out.write(f"    participant {name} as {mermaid_escape(endpoint)}\n")
        return name

    def __call__(self, report: ConnectionReport) -> None:
        self._start()
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
        self._start()
        if not self.participants:
            # A note needs a participant: the capture itself, so the diagram says what was read.
            capture = self._participant(summary.file)
            self.out.write(f"    Note over {capture}: no TCP connection in the capture\n")
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


class PacketWalker:
    """``--step``: one packet at a time, with Scapy's layers and the state change.

    Waits for Enter after each packet when ``interactive`` (a person can answer:
    ``read_line`` reads a terminal); ``q`` then Enter stops. Otherwise prints every
    step without waiting.
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
        raw = record[R_WIN]
        win = f"{row.window} (scaled: {raw} << {row.window_shift})" if row.window_shift else f"{raw}"
        self.console.print(
            Text(
                f"{row.flags or '.'} seq={row.seq}{ack} len={row.length} win={win} "
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


def truncation_warning(summary: ReplaySummary) -> Text:
    """The line printed on standard error when the capture was cut short."""
    from rich.text import Text

    return Text(
        f"warning: {capture_name(summary)} is truncated ({summary.truncation_detail}); read up to the cut",
        style="yellow",
    )


def unsupported_warning(summary: ReplaySummary, linktype: int, count: int) -> Text:
    """The line printed on standard error for the packets of an interface (pcapng) of a
    link type l4kit does not read: skipped, the rest shown."""
    from rich.text import Text

    from l4kit.wire.link import LINKTYPE_NAMES, linktype_name

    readable = ", ".join(str(n) for n in sorted(LINKTYPE_NAMES))
    return Text(
        f"warning: {capture_name(summary)}: {count} packet{'' if count == 1 else 's'} of link type "
        f"{linktype_name(linktype)} skipped (l4kit reads link types {readable}); the other "
        "interfaces' are shown",
        style="yellow",
    )


# ---------------------------------------------------------------- progress


class ReplayProgress:
    """A progress bar on standard error for a long run (a terminal only: the command
    decides), refreshed by Rich's own thread; :meth:`update` may be called from any
    thread."""

    def __init__(self, total: int | None, unit: str = "bytes") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            amount,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            refresh_per_second=5,
        )
        self.task = self.progress.add_task("reading", total=total)
        self.progress.start()

    def update(self, completed: int, *, total: int | None = None, what: str = "") -> None:
        if total is not None:
            self.progress.update(self.task, total=total)
        self.progress.update(self.task, completed=completed, description=what or "reading")

    def stop(self) -> None:
        self.progress.stop()

"""What ``l4kit connect`` and ``l4kit liveplay`` print: the client's flag-transition
tables (the same :class:`~l4kit.views.transitions.TransitionRow` table ``respond`` and
``replay`` print, its states the client's), their JSON, and liveplay's report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from l4kit.drivers.transitions import SegmentRow
from l4kit.views.live import payload_preview, segment_note
from l4kit.views.transitions import TransitionRow, transition_table
from l4kit.wire.flags import TcpFlags
from l4kit.wire.segment import FourTuple

if TYPE_CHECKING:
    from rich.table import Table

    from l4kit.replay.liveplay import LiveplayReport, LiveplayResult
    from l4kit.views.layout import FittedTable


def client_rows(rows: Sequence[SegmentRow]) -> list[TransitionRow]:
    """A client connection's rows as table rows: what it sent is ``c2s``, what it
    received ``s2c``; sequence numbers relative to each side's ISN (as Wireshark
    shows them); the states are the client's."""
    if not rows:
        return []
    first = rows[0].time
    own_isn = peer_isn = None
    out = []
    for row in rows:
        segment = row.segment
        flags = segment.flags
        if flags & TcpFlags.SYN:
            if row.received:
                peer_isn = segment.seq.value
            else:
                own_isn = segment.seq.value
        own, peer = (peer_isn, own_isn) if row.received else (own_isn, peer_isn)
        notes = [segment_note(row.retransmission, row.why)] if not row.received else []
        notes += row.notes
        out.append(
            TransitionRow(
                t=row.time - first,
                direction="s2c" if row.received else "c2s",
                flags=flags.letters,
                seq=_relative(segment.seq.value, own),
                ack=_relative(segment.ack.value, peer) if flags & TcpFlags.ACK else None,
                length=len(segment.payload),
                window=segment.window,
                before=str(row.before),
                after=str(row.after),
                checksum=str(segment.checksum) if row.received else "ok",
                notes=tuple(note for note in notes if note),
                payload_preview=payload_preview(segment.payload),
            )
        )
    return out


def _relative(value: int, isn: int | None) -> int:
    return value if isn is None else (value - isn) % (1 << 32)


def client_table(key: FourTuple, rows: Sequence[SegmentRow]) -> FittedTable:
    return transition_table(f"{key.local} → {key.remote}  (l4kit's client; its states)", client_rows(rows))


def row_json(row: TransitionRow) -> dict[str, Any]:
    return {
        "t": round(row.t, 6),
        "direction": row.direction,
        "flags": row.flags,
        "seq": row.seq,
        "ack": row.ack,
        "len": row.length,
        "window": row.window,
        "state_before": row.before,
        "state_after": row.after,
        "notes": list(row.notes),
    }


def connect_json(
    key: FourTuple | None,
    rows: Sequence[SegmentRow],
    *,
    result: str,
    error: str | None,
    sent: int,
    received: int,
    state: str | None = None,
) -> str:
    """``l4kit connect --format json``: the connection, how it ended (``state``: the
    connection's RFC 9293 state at the end; the last row's by default), its rows."""
    document = {
        "connection": {
            "client": None if key is None else str(key.local),
            "server": None if key is None else str(key.remote),
            "result": result,
            "error": error,
            "sent": sent,
            "received": received,
            "state": state if state is not None else (str(rows[-1].after) if rows else None),
        },
        "transitions": [row_json(row) for row in client_rows(rows)],
    }
    return json.dumps(document, indent=2)


# ---------------------------------------------------------------- liveplay


def liveplay_json(report: LiveplayReport) -> str:
    """The document ``l4kit liveplay --format json`` prints (keys in docs/client.md)."""
    return json.dumps(
        {
            "connections": [result_json(result) for result in report.results],
            "summary": report.summary(),
        },
        indent=2,
    )


def result_json(result: LiveplayResult) -> dict[str, Any]:
    return {"id": result.id, "client": result.client, "server": result.server, **result.outcome()}


def liveplay_table(report: LiveplayReport) -> Table:
    from rich.table import Table

    table = Table(
        title=f"liveplay {report.capture} → {report.server}", title_justify="left", header_style="bold"
    )
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("captured client → live client", no_wrap=True)
    table.add_column("sent / captured", justify="right", no_wrap=True)
    table.add_column("received / captured", justify="right", no_wrap=True)
    table.add_column("first difference", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("notes")
    styles = {"completed": "green"}
    for result in report.results:
        table.add_row(
            str(result.id),
            f"{result.captured_client} → {result.client or '-'}",
            f"{result.sent} / {result.captured_sent}",
            f"{result.received} / {result.captured_received}",
            "none" if result.first_difference is None else str(result.first_difference),
            f"[{styles.get(result.state, 'bold red')}]{result.state}[/]",
            "; ".join(result.notes),
        )
    return table


def liveplay_footer(report: LiveplayReport) -> str:
    summary = report.summary()
    return (
        f"{summary['completed']} of {summary['connections']} connections completed, "
        f"{summary['identical']} received exactly the captured bytes, "
        f"{summary['different']} differ"
    )

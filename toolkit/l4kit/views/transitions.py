"""The flag-transition table: one row per segment, shared by ``respond`` and ``replay``.

Both commands print the same table so that what a user sees live and what they
see later from the capture line up row by row. It is a
:class:`~l4kit.views.layout.FittedTable`: one line a segment where the terminal
is wide enough, the states and notes on a line of their own below it where it is
not, never a cell cut. Rich is imported when a table is made: ``replay --format
json`` and ``--format mermaid`` use :class:`TransitionRow` and never load it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from l4kit.views.layout import FittedTable

_ARROW = {"c2s": "→", "s2c": "←"}
_WHO = {"c2s": "client", "s2c": "server"}
_SCALED = "win*: the window scaled as the handshake agreed (RFC 7323), where the capture shows it"


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One segment as shown in a flag-transition table.

    ``t`` is seconds since the connection's first segment; ``direction`` is
    ``"c2s"`` (client to server) or ``"s2c"``; ``seq``/``ack`` are relative to
    each side's ISN (as Wireshark shows them); ``before``/``after`` are the
    server-side RFC 9293 states (equal when the segment changed nothing).

    Added for ``replay`` (optional, so existing callers are unchanged):
    ``frame`` is the capture's frame number (Wireshark's ``frame.number``),
    ``client_before``/``client_after`` the client side's RFC 9293 states, shown
    when the table is made with ``show_client_state=True``, and ``window_shift``
    the window scale ``window`` was shifted by (RFC 7323; 0: the raw field).
    """

    t: float
    direction: str
    flags: str
    seq: int
    ack: int | None
    length: int
    window: int | None = None
    before: str = ""
    after: str = ""
    checksum: str = ""
    notes: tuple[str, ...] = ()
    payload_preview: str = ""
    frame: int | None = None
    client_before: str = ""
    client_after: str = ""
    window_shift: int = 0


def _state_cell(before: str, after: str) -> str:
    return after if before == after else f"{before} → {after}"


def transition_table(
    title: str,
    rows: Iterable[TransitionRow],
    *,
    show_checksum: bool = False,
    show_client_state: bool = False,
    show_frame: bool = False,
    caption: str = "",
) -> FittedTable:
    """The table of ``rows`` under ``title`` (typically ``client → server``; Rich markup).

    ``show_frame`` adds the frame number column, ``show_client_state`` a client
    state column next to the (then so named) server state column. The window column
    says ``win (scaled)`` when it shows scaled windows.
    """
    from rich.style import Style

    from l4kit.views.layout import BOLD, NULL, Column, FittedTable

    direction_style = {"c2s": Style.parse("cyan"), "s2c": Style.parse("magenta")}
    flags_style = {"c2s": Style.parse("bold cyan"), "s2c": Style.parse("bold magenta")}
    red = Style.parse("red")
    rows = list(rows)
    scaled = any(row.window_shift > 0 for row in rows)
    columns = [Column("frame", "right")] if show_frame else []
    columns += [
        Column("t (s)", "right"),
        Column("dir", "center"),
        Column("flags"),
        Column("seq", "right"),
        Column("ack", "right"),
        Column("len", "right"),
        Column("win (scaled)", "right", short="win*", explain=_SCALED) if scaled else Column("win", "right"),
    ]
    if show_checksum:
        columns.append(Column("cksum"))
    if show_client_state:
        columns.append(Column("client state", detail=True, label="client"))
    columns.append(
        Column("server state", detail=True, label="server")
        if show_client_state
        else Column("state", detail=True)
    )
    columns.append(Column("data / notes", wrap=True, detail=True, label="-"))
    cells: list[list[tuple[str, Style | None]]] = []
    for row in rows:
        direction = row.direction
        extras = [row.payload_preview] if row.payload_preview else []
        extras += [f"[{n}]" for n in row.notes]
        line: list[tuple[str, Style | None]] = (
            [("" if row.frame is None else str(row.frame), None)] if show_frame else []
        )
        line += [
            (f"{row.t:.6f}", None),
            (
                f"{_WHO.get(direction, '?')} {_ARROW.get(direction, '?')}",
                direction_style.get(direction, NULL),
            ),
            (row.flags or ".", flags_style.get(direction, BOLD)),
            (str(row.seq), None),
            ("" if row.ack is None else str(row.ack), None),
            (str(row.length), None),
            ("" if row.window is None else str(row.window), None),
        ]
        if show_checksum:
            line.append((row.checksum, red if row.checksum == "bad" else NULL))
        if show_client_state:
            line.append((_state_cell(row.client_before, row.client_after), None))
        line.append((_state_cell(row.before, row.after), None))
        line.append((" ".join(extras), NULL))
        cells.append(line)
    return FittedTable(columns, cells, title=title, caption=caption)

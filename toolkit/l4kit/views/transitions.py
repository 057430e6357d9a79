"""The flag-transition table: one row per segment, shared by ``respond`` and ``replay``.

Both commands print the same table so that what a user sees live and what they
see later from the capture line up row by row. Rich is imported when a table is
made: ``replay --format json`` and ``--format mermaid`` use :class:`TransitionRow`
and never load it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

_DIR_STYLE = {"c2s": "cyan", "s2c": "magenta"}
_ARROW = {"c2s": "→", "s2c": "←"}
_WHO = {"c2s": "client", "s2c": "server"}


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One segment as shown in a flag-transition table.

    ``t`` is seconds since the connection's first segment; ``direction`` is
    ``"c2s"`` (client to server) or ``"s2c"``; ``seq``/``ack`` are relative to
    each side's ISN (as Wireshark shows them); ``before``/``after`` are the
    server-side RFC 9293 states (equal when the segment changed nothing).

    Added for ``replay`` (optional, so existing callers are unchanged):
    ``frame`` is the capture's frame number (Wireshark's ``frame.number``) and
    ``client_before``/``client_after`` the client side's RFC 9293 states, shown
    when the table is made with ``show_client_state=True``.
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


def _state_cell(before: str, after: str) -> str:
    return after if before == after else f"{before} → {after}"


def transition_table(
    title: str,
    rows: Iterable[TransitionRow],
    *,
    show_checksum: bool = False,
    show_client_state: bool = False,
    show_frame: bool = False,
) -> Table:
    """A Rich table of ``rows`` under ``title`` (typically ``client <-> server``).

    ``show_frame`` adds the frame number column, ``show_client_state`` a client
    state column next to the (then so named) server state column.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    if show_frame:
        table.add_column("frame", justify="right", no_wrap=True)
    table.add_column("t (s)", justify="right", no_wrap=True)
    table.add_column("dir", justify="center", no_wrap=True)
    table.add_column("flags", no_wrap=True)
    table.add_column("seq", justify="right")
    table.add_column("ack", justify="right")
    table.add_column("len", justify="right")
    table.add_column("win", justify="right")
    if show_checksum:
        table.add_column("cksum")
    if show_client_state:
        table.add_column("client state")
    table.add_column("server state" if show_client_state else "state")
    table.add_column("data / notes")
    for row in rows:
        style = _DIR_STYLE.get(row.direction, "")
        state = _state_cell(row.before, row.after)
        extras = [row.payload_preview] if row.payload_preview else []
        extras += [f"[{n}]" for n in row.notes]
        cells: list[str | Text] = ["" if row.frame is None else str(row.frame)] if show_frame else []
        cells += [
            f"{row.t:.6f}",
            Text(f"{_WHO.get(row.direction, '?')} {_ARROW.get(row.direction, '?')}", style=style),
            Text(row.flags or ".", style="bold " + style),
            str(row.seq),
            "" if row.ack is None else str(row.ack),
            str(row.length),
            "" if row.window is None else str(row.window),
        ]
        if show_checksum:
            cells.append(Text(row.checksum, style="red" if row.checksum == "bad" else ""))
        if show_client_state:
            cells.append(_state_cell(row.client_before, row.client_after))
        cells += [state, Text(" ".join(extras))]
        table.add_row(*cells)
    return table

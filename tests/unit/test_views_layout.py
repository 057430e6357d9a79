"""Tables that fit: :class:`~l4kit.views.layout.FittedTable`, replay's and respond's one layout.

- Where the whole table fits, it is what Rich's own :class:`~rich.table.Table` draws for
  the same cells, character by character and style by style (Rich is the reference, as
  Scapy is the fast codec's), apart from the spaces Rich pads titles with.
- At any width from 50 columns, no line is wider than the width, none ends in a space,
  and every cell that is not free text appears whole on one line.
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from l4kit.views import live
from l4kit.views.layout import MIN_WRAP, Column, FittedTable
from l4kit.views.transitions import TransitionRow, transition_table

STATES = ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"]
rows_strategy = st.builds(
    TransitionRow,
    t=st.floats(min_value=0, max_value=1e5, allow_nan=False),
    direction=st.sampled_from(["c2s", "s2c"]),
    flags=st.sampled_from(["S", "SA", "A", "PA", "FA", "R", "RA", "", "FPAU", "SEC"]),
    seq=st.integers(0, 2**32 - 1),
    ack=st.none() | st.integers(0, 2**32 - 1),
    length=st.integers(0, 65535),
    window=st.none() | st.integers(0, 65535 << 14),
    before=st.sampled_from(STATES),
    after=st.sampled_from(STATES),
    checksum=st.sampled_from(["ok", "bad", "offloaded", "unverified"]),
    notes=st.lists(
        st.sampled_from(
            ["retransmission", "challenge ACK (RFC 5961 §4.2)", "RST: x [y]", "port 0: reserved"]
        ),
        max_size=3,
    ).map(tuple),
    payload_preview=st.binary(max_size=40).map(live.payload_preview),
    frame=st.none() | st.integers(1, 10**7),
    client_before=st.sampled_from(STATES),
    client_after=st.sampled_from(STATES),
    window_shift=st.sampled_from([0, 0, 7, 14]),
)


def styled_characters(console: Console, renderable: object, width: int) -> list[list[tuple[str, Style]]]:
    """Each line's characters with their styles, trailing spaces dropped."""
    lines: list[list[tuple[str, Style]]] = [[]]
    for segment in console.render(renderable, console.options.update_width(width)):
        for char in segment.text:
            if char == "\n":
                lines.append([])
            else:
                lines[-1].append((char, segment.style or Style.null()))
    for line in lines:
        while line and line[-1][0] == " ":
            line.pop()
    return lines


def rich_reference(table: FittedTable) -> Table:
    """Rich's table of the same cells (as Text: nothing read as markup)."""
    reference = Table(
        title=table.title or None,
        title_justify="left",
        header_style="bold",
        expand=False,
        caption=table.caption or None,
    )
    reference.caption_justify = "left"
    for column in table.columns:
        reference.add_column(column.header, justify=column.justify)  # type: ignore[arg-type]
    for row in table.rows:
        reference.add_row(*(Text(text, style=style or "") for text, style in row))
    return reference


def natural_width(table: FittedTable) -> int:
    widths = [
        max([cell_len(c.header)] + [cell_len(row[i][0]) for row in table.rows])
        for i, c in enumerate(table.columns)
    ]
    return sum(w + 3 for w in widths) + 1


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(rows_strategy, min_size=1, max_size=6),
    status=st.sampled_from(["TIME-WAIT", "closed: reset by the peer, 0 B in, 0 B out", "still open at exit"]),
    caption=st.sampled_from(["", "reset by l4kit: listener shut down", "3 more segments not shown; " * 5]),
    replay=st.booleans(),
    width=st.integers(60, 260),
    terminal=st.booleans(),
)
def test_a_table_that_fits_is_what_rich_draws_character_for_character(
    rows: list[TransitionRow], status: str, caption: str, replay: bool, width: int, terminal: bool
) -> None:
    console = Console(
        file=io.StringIO(),
        width=width,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
    )
    title = f"127.0.0.1:40000 → 127.0.0.1:8888  [dim]{status}[/]"
    table = transition_table(
        title, rows, show_checksum=replay, show_client_state=replay, show_frame=replay, caption=caption
    )
    if natural_width(table) > width:
        assert table.layout_lines(width)[0] != "boxed" or any(c.wrap for c in table.columns)
        return
    assert table.layout_lines(width)[0] == "boxed"
    assert styled_characters(console, table, width) == styled_characters(
        console, rich_reference(table), width
    )


cells = st.text(alphabet=st.sampled_from("abcdefgh0123456789:.→[] -/"), max_size=30).map(str.strip)


@st.composite
def tables(draw: st.DrawFn) -> FittedTable:
    count = draw(st.integers(1, 10))
    columns = [
        Column(
            draw(st.sampled_from(["id", "client", "server state", "data / notes", "pkts c→s/s→c", "t (s)"])),
            draw(st.sampled_from(["left", "right", "center"])),
            short=draw(st.sampled_from(["", "s", "pkts"])),
            wrap=draw(st.booleans()),
            detail=draw(st.booleans()),
            label=draw(st.sampled_from(["", "-", "client"])),
        )
        for _ in range(count)
    ]
    rows = draw(st.lists(st.lists(cells, min_size=count, max_size=count), min_size=1, max_size=5))
    return FittedTable(columns, [[(text, None) for text in row] for row in rows], title="a title [b]")


@settings(max_examples=300, deadline=None)
@given(table=tables(), width=st.integers(50, 220))
def test_every_layout_fits_and_keeps_every_cell_whole(table: FittedTable, width: int) -> None:
    # The layout's own lines (a console would crop what runs past its width), then as printed.
    name, body = table.layout_lines(width)
    assert all(sum(cell_len(s.text) for s in line) <= width for line in body), name
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(table)
    lines = console.export_text(styles=False).splitlines()
    assert not any(line.endswith(" ") for line in lines)
    text = "\n".join(lines)
    for row in table.rows:
        for column, (cell, _) in zip(table.columns, row, strict=True):
            if not column.wrap:
                assert cell in text, (cell, table.layout_lines(width)[0], lines)
            else:  # free text wraps at spaces: its words whole, unless wider than a column may get
                for word in cell.split():
                    assert len(word) > MIN_WRAP or word in text


def test_the_transition_table_at_80_columns_keeps_states_and_numbers_whole() -> None:
    row = TransitionRow(
        0.000123, "s2c", "SA", 4294967295, 1, 0, 65535 << 7, "SYN-RECEIVED", "ESTABLISHED",
        "offloaded", ("retransmission",), "", 123456, "SYN-SENT", "ESTABLISHED", 7,
    )  # fmt: skip
    table = transition_table("[2001:db8::1]:40000 → [2001:db8::2]:8888", [row] * 3, show_checksum=True,
                             show_client_state=True, show_frame=True)  # fmt: skip
    _, body = table.layout_lines(80)
    assert max(sum(cell_len(s.text) for s in line) for line in body) <= 80
    console = Console(file=io.StringIO(), width=80, record=True)
    console.print(table)
    text = console.export_text()
    for whole in ("SYN-RECEIVED → ESTABLISHED", "SYN-SENT → ESTABLISHED", "4294967295", "SA", "8388480"):
        assert whole in text
    assert "win*" in text and "RFC 7323" in text  # the scaled window, and the legend saying so

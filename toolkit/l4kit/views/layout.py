"""Tables that fit the terminal they are printed on: one layout for replay's and respond's.

A TCP table is read for its tokens: an endpoint, a sequence number, a state, a
flag. A table cut to the terminal's width (``127…``, ``SYN-RECE…``) loses exactly
those, so :class:`FittedTable` never cuts a cell. It tries, in order, the first
layout whose every line fits the width it is given:

1. **boxed**: Rich's heavy-head table, each column as wide as its widest cell. When
   it fits, it is what :class:`rich.table.Table` draws, character for character and
   style for style (titles and captions aside, which carry no trailing spaces);
2. **boxed, short headers**: the same with the columns' short headers, explained
   in a legend line under the table;
3. **plain**: no box, columns two spaces apart, short headers (as ``ss`` prints);
4. **two lines a row**: the plain layout of the main columns, and each row's
   *detail* columns on a line of their own below it, as ``label value`` pairs
   (states, notes: as ``tshark -V`` lists fields);
5. **stacked**: every cell of a row as ``label value`` pairs, flowed over as many
   lines as the width needs.

In every layout, free-text columns (``wrap``: notes, data, analysis) may wrap at
spaces over several lines, and break inside a word only when the word alone is
wider than the column; every other cell appears whole. Only a single cell wider
than the whole terminal (below about 50 columns, an IPv6 endpoint) can still run
past the edge, and only in the stacked layout.

The layout is plain arithmetic on strings, about a hundred times cheaper than
Rich's table layout engine (which measures and wraps every cell in general): the
live renderer draws tables under the GIL the packet thread needs, and replay draws
thousands of rows. Lines never end in spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rich import box
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

NULL: Final = Style.null()
BOLD: Final = Style.parse("bold")
DIM: Final = Style.parse("dim")
_NEW_LINE: Final = Segment.line()
_GAP: Final = "  "  # between columns without a box, and between label/value pairs
_INDENT: Final = "  "  # a row's second and further lines
PIPE_WIDTH: Final = 200
"""The width tables are laid out for where the output is not a terminal (a pipe, a
file): none applies, and this keeps the boxed layout of the usual tables."""
MIN_WRAP: Final = 24  # narrowest a free-text column is made before a narrower layout is tried

Cell = tuple[str, "Style | None"]
"""A cell: its text (one line) and its style (None: none of its own)."""


@dataclass(frozen=True, slots=True)
class Column:
    """How one column is shown.

    ``short``: the header in narrow layouts, and ``explain`` what the legend under
    the table says of it (``short: header`` if empty); ``wrap``: free text, which may
    wrap over lines (any other cell is never cut); ``detail``: goes to the row's own
    line when the main columns need the width; ``label``: how the value is introduced
    there (the short header, else the header, if empty; ``-`` for none)."""

    header: str
    justify: str = "left"
    short: str = ""
    wrap: bool = False
    detail: bool = False
    label: str = ""
    explain: str = ""

    @property
    def narrow_header(self) -> str:
        return self.short or self.header

    @property
    def pair_label(self) -> str:
        label = self.label or self.short or self.header
        return "" if label == "-" else label


def width_of(text: str) -> int:
    """Cells on a terminal (Rich's measure): one per character for ASCII."""
    return len(text) if text.isascii() else cell_len(text)


def wrap_text(text: str, width: int) -> list[str]:
    """``text`` over lines at most ``width`` cells wide, broken at spaces; a word wider
    than ``width`` alone is broken inside."""
    if width_of(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for whole in text.split(" "):
        word = whole
        while width_of(word) > width:  # a word too wide for any line: cut into pieces
            if line:
                lines.append(line)
                line = ""
            cut = _prefix_fitting(word, width)
            lines.append(word[:cut])
            word = word[cut:]
        if not line:
            line = word
        elif width_of(line) + 1 + width_of(word) <= width:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    return lines


def _prefix_fitting(text: str, width: int) -> int:
    if text.isascii():
        return max(1, width)
    used = 0
    for index, char in enumerate(text):
        used += cell_len(char)
        if used > width:
            return max(1, index)
    return len(text)


def _justified(text: str, length: int, space: int, justify: str) -> str:
    """``text`` (``length`` cells wide) in ``space`` cells as Rich justifies a one-line
    cell (Lines.justify): padded on the right when left-justified; its end stripped
    first otherwise."""
    if justify == "left":
        return text + " " * (space - length)
    if text.endswith(" "):
        text = text.rstrip()
        length = cell_len(text)
    excess = space - length
    if justify == "right":
        return " " * excess + text
    return " " * (excess // 2) + text + " " * (excess - excess // 2)


class _Edges:
    """The border characters of one kind of table line (Rich's Box: head, mid or foot)."""

    __slots__ = ("divider", "left", "right")

    def __init__(self, left: str, divider: str, right: str) -> None:
        self.left = left
        self.divider = divider
        self.right = right


Line = list[Segment]
"""One line of output, without its line break."""


def _boxed_line(
    cells: Sequence[tuple[str, int, Style | None]],
    widths: Sequence[int],
    justifies: Sequence[str],
    pad_style: Style,
    edges: _Edges,
) -> Line:
    """One table line as Rich draws it (border, then per cell: padding, text, padding,
    divider), with neighbouring pieces of the same style joined into one segment: the
    same characters in the same styles, in a tenth of the segments."""
    out: Line = []
    last = len(cells) - 1
    if pad_style is NULL:  # a body line: only some cells have a style of their own
        parts = [edges.left]
        for index, (text, length, style) in enumerate(cells):
            body = _justified(text, length, widths[index] - 2, justifies[index])
            edge = edges.right if index == last else edges.divider
            if style is None or style is NULL or not text:
                parts += (" ", body, " ", edge)
            else:
                parts.append(" ")
                out.append(Segment("".join(parts), NULL))
                out.append(Segment(body, style))
                parts = [" ", edge]
        out.append(Segment("".join(parts), NULL))
        return out
    out.append(Segment(edges.left, NULL))  # the header line: padding in the header style
    for index, (text, length, style) in enumerate(cells):
        body = _justified(text, length, widths[index] - 2, justifies[index])
        out.append(Segment(f" {body} ", style or NULL))
        out.append(Segment(edges.right if index == last else edges.divider, NULL))
    return out


def _strip_end(line: Line) -> Line:
    """The line without trailing spaces (an unstyled or background-free end)."""
    while line:
        last = line[-1]
        text = last.text.rstrip(" ")
        if text == last.text:
            break
        if text:
            line[-1] = Segment(text, last.style)
            break
        line.pop()
    return line


def flow(
    tokens: Iterable[Line], width: int, *, indent: str = _INDENT, first_indent: str = "", gap: str = _GAP
) -> list[Line]:
    """Tokens (each a few segments that must stay together) on lines at most ``width``
    cells wide, ``gap`` apart; lines after the first start with ``indent``. A token
    wider than a line on its own gets a line of its own."""
    lines: list[Line] = []
    line: Line = [Segment(first_indent)] if first_indent else []
    used = width_of(first_indent)
    fresh = True  # nothing on the line yet but its indent
    for token in tokens:
        size = sum(width_of(s.text) for s in token)
        if not fresh and used + len(gap) + size > width:
            lines.append(_strip_end(line))
            line, used, fresh = [Segment(indent)], width_of(indent), True
        if not fresh:
            line.append(Segment(gap))
            used += len(gap)
        line.extend(token)
        used += size
        fresh = False
    if line and not fresh:
        lines.append(_strip_end(line))
    return lines


class FittedTable:
    """A table (a Rich renderable) laid out to fit the console's width; see the module."""

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Cell]],
        *,
        title: str = "",
        caption: str = "",
        header_style: Style = BOLD,
    ) -> None:
        """``title`` and ``caption``: Rich markup (a title in ``table.title`` style,
        over the table; a caption under it)."""
        self.columns = columns
        self.rows = rows
        self.title = title
        self.caption = caption
        self.header_style = header_style
        # Each cell once, with its width: (text, width, style).
        self._cells = [[(text, width_of(text), style) for text, style in row] for row in rows]
        self._natural = [max((row[i][1] for row in self._cells), default=0) for i in range(len(columns))]

    # ------------------------------------------------------------------ layouts

    def layout_lines(self, width: int) -> tuple[str, list[Line]]:
        """The layout chosen for ``width`` and the body's lines (no title or caption)."""
        lines = self._boxed(width, short=False)
        if lines is not None:
            return "boxed", lines
        lines = self._boxed(width, short=True)
        if lines is not None:
            return "boxed-short", lines
        lines = self._plain(width)
        if lines is not None:
            return "plain", lines
        lines = self._two_line(width)
        if lines is not None:
            return "two-line", lines
        return "stacked", self._stacked(width)

    def _widths(
        self, indexes: Sequence[int], headers: Sequence[str], width: int, fixed: int
    ) -> list[int] | None:
        """Widths of the columns at ``indexes``: natural, free-text columns narrowed (not
        below their header or :data:`MIN_WRAP`) until ``fixed`` plus the widths fits
        ``width``; None if they cannot."""
        widths = [max(self._natural[i], width_of(h)) for i, h in zip(indexes, headers, strict=True)]
        excess = sum(widths) + fixed - width
        for position in reversed(range(len(widths))):
            if excess <= 0:
                break
            if self.columns[indexes[position]].wrap:
                floor = max(width_of(headers[position]), MIN_WRAP)
                give = min(excess, widths[position] - floor)
                if give > 0:
                    widths[position] -= give
                    excess -= give
        return widths if excess <= 0 else None

    @staticmethod
    def _cell_lines(
        row: Sequence[tuple[str, int, Style | None]], widths: Sequence[int]
    ) -> list[list[tuple[str, int, Style | None]]]:
        """A row as physical lines, free text wrapped to its column."""
        if all(cell[1] <= w for cell, w in zip(row, widths, strict=True)):
            return [list(row)]
        pieces = [
            [cell] if cell[1] <= w else [(part, width_of(part), cell[2]) for part in wrap_text(cell[0], w)]
            for cell, w in zip(row, widths, strict=True)
        ]
        height = max(len(p) for p in pieces)
        return [[p[i] if i < len(p) else ("", 0, None) for p in pieces] for i in range(height)]

    def _boxed(self, width: int, *, short: bool) -> list[Line] | None:
        columns = self.columns
        headers = [c.narrow_header if short else c.header for c in columns]
        if short and headers == [c.header for c in columns]:
            return None  # no shorter headers: the same as the full layout
        widths = self._widths(range(len(columns)), headers, width, 3 * len(columns) + 1)
        if widths is None:
            return None
        padded = [w + 2 for w in widths]
        frame = box.HEAVY_HEAD
        justifies = [c.justify for c in columns]
        lines: list[Line] = [[Segment(frame.get_top(padded), NULL)]]
        head = _Edges(frame.head_left, frame.head_vertical, frame.head_right)
        lines.append(
            _boxed_line(
                [(h, width_of(h), self.header_style) for h in headers],
                padded,
                justifies,
                self.header_style,
                head,
            )
        )
        lines.append([Segment(frame.get_row(padded, "head", edge=True), NULL)])
        mid = _Edges(frame.mid_left, frame.mid_vertical, frame.mid_right)
        foot = _Edges(frame.foot_left, frame.foot_vertical, frame.foot_right)
        last = len(self._cells) - 1
        for index, row in enumerate(self._cells):
            edges = foot if index == last else mid
            for cells in self._cell_lines(row, widths):
                lines.append(_boxed_line(cells, padded, justifies, NULL, edges))
        lines.append([Segment(frame.get_bottom(padded), NULL)])
        if short:
            lines.extend(self._legend(width))
        return lines

    def _legend(self, width: int) -> list[Line]:
        texts: list[str] = []
        for column in self.columns:
            if column.short and column.short != column.header:
                text = column.explain or f"{column.short}: {column.header}"
                if text not in texts:
                    texts.append(text)
        room = max(1, width - len(_INDENT))
        tokens = [[Segment(part, DIM)] for text in texts for part in wrap_text(text, room)]
        return flow(tokens, width)

    def _plain_rows(self, width: int, indexes: Sequence[int]) -> tuple[Line, list[list[Line]]] | None:
        """The plain layout of the columns at ``indexes``: its header line and each row's
        lines; None if it does not fit."""
        columns = [self.columns[i] for i in indexes]
        headers = [c.narrow_header for c in columns]
        widths = self._widths(indexes, headers, width, len(_GAP) * (len(indexes) - 1))
        if widths is None:
            return None
        justifies = [c.justify for c in columns]

        def line_of(cells: Sequence[tuple[str, int, Style | None]]) -> Line:
            line: Line = []
            for position, (text, length, style) in enumerate(cells):
                if position:
                    line.append(Segment(_GAP))
                body = _justified(text, length, widths[position], justifies[position])
                line.append(Segment(body, style if style is not None and text else NULL))
            return _strip_end(line)

        header = line_of([(h, width_of(h), self.header_style) for h in headers])
        rows = [
            [line_of(cells) for cells in self._cell_lines([row[i] for i in indexes], widths)]
            for row in self._cells
        ]
        return header, rows

    def _plain(self, width: int) -> list[Line] | None:
        laid = self._plain_rows(width, range(len(self.columns)))
        if laid is None:
            return None
        header, rows = laid
        return [header, *(line for row in rows for line in row), *self._legend(width)]

    def _pairs(
        self, row: Sequence[tuple[str, int, Style | None]], indexes: Iterable[int], width: int
    ) -> list[Line]:
        """``label value`` tokens of the cells at ``indexes`` (empty cells left out)."""
        tokens: list[Line] = []
        room = max(1, width - len(_INDENT))
        for index in indexes:
            text, length, style = row[index]
            if not text:
                continue
            column = self.columns[index]
            label = column.pair_label
            prefix = [Segment(f"{label} ", DIM)] if label else []
            value_style = style if style is not None else NULL
            size = width_of(label) + 1 + length if label else length
            if column.wrap and size > room:
                # Free text too wide for a line: wrapped, each piece a token of its own.
                label_width = width_of(label) + 1 if label else 0
                parts = wrap_text(text, max(1, room - label_width))
                tokens.append([*prefix, Segment(parts[0], value_style)])
                tokens.extend([Segment(part, value_style)] for part in parts[1:])
            else:
                tokens.append([*prefix, Segment(text, value_style)])
        return tokens

    def _two_line(self, width: int) -> list[Line] | None:
        main = [i for i, c in enumerate(self.columns) if not c.detail]
        details = [i for i, c in enumerate(self.columns) if c.detail]
        if not main or not details:
            return None
        laid = self._plain_rows(width, main)
        if laid is None:
            return None
        header, rows = laid
        lines: list[Line] = [header]
        for row, row_lines in zip(self._cells, rows, strict=True):
            lines.extend(row_lines)
            lines.extend(flow(self._pairs(row, details, width), width, first_indent=_INDENT))
        lines.extend(self._legend(width))
        return lines

    def _stacked(self, width: int) -> list[Line]:
        lines: list[Line] = []
        everything = range(len(self.columns))
        for row in self._cells:
            lines.extend(flow(self._pairs(row, everything, width), width))
        return lines

    @property
    def row_count(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------ rendering

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        name, lines = self.layout_lines(width)
        # Titles and captions wrap (at spaces) to the table when it is boxed, as Rich's
        # do, else to the console.
        table_width = sum(width_of(s.text) for s in lines[0]) if name.startswith("boxed") else width
        render_options = options.update(width=min(width, max(table_width, 1)), highlight=False, height=None)
        if self.title:
            yield from _annotation(console, render_options, self.title, "table.title")
        for line in lines:
            yield from line
            yield _NEW_LINE
        if self.caption:
            yield from _annotation(console, render_options, self.caption, "table.caption")


def _annotation(console: Console, options: ConsoleOptions, text: str, style: str) -> RenderResult:
    """A title or caption as Rich's Table renders them (left-justified), without the
    spaces Rich pads the last line with."""
    rendered = console.render_str(text, style=style, highlight=False)
    lines = console.render_lines(rendered, options.update(justify="default"), pad=False, new_lines=False)
    for line in lines:
        yield from _strip_end(list(line))
        yield _NEW_LINE

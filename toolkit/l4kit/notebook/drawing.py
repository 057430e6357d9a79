"""matplotlib drawings: :class:`Drawing`, :func:`time_sequence_graph` and :func:`figure_png`.

matplotlib is imported only inside the functions that draw (it comes with
``pip install 'l4kit[notebooks]'``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from l4kit.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class SequencePoint(Protocol):
    """What :func:`time_sequence_graph` reads from a row (``TransitionRow`` and :class:`StepRow` fit)."""

    @property
    def t(self) -> float: ...
    @property
    def direction(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int | None: ...
    @property
    def length(self) -> int: ...
    @property
    def flags(self) -> str: ...


class Drawing:
    """A matplotlib figure that shows itself in Jupyter as a PNG image.

    Made without pyplot (no global state, nothing opens a window), so Jupyter's
    matplotlib integration does not know about it: ``_repr_png_`` renders it
    with the Agg canvas instead. ``figure`` is the matplotlib figure, for
    ``drawing.figure.savefig("graph.svg")`` and further drawing.
    """

    def __init__(self, figure: Figure) -> None:
        self.figure = figure

    def png(self, *, dpi: int = 90) -> bytes:
        return figure_png(self.figure, dpi=dpi)

    def _repr_png_(self) -> bytes:
        return self.png()

    def __repr__(self) -> str:
        width, height = self.figure.get_size_inches()
        return f"<Drawing {width:g}x{height:g} in, {len(self.figure.axes)} axes>"


def time_sequence_graph(
    rows: Iterable[SequencePoint], *, title: str = "", client: str = "client", server: str = "server"
) -> Drawing:
    """A time-sequence graph like Wireshark's Stevens / tcptrace graphs, one panel per direction.

    Each segment is a vertical bar from its relative sequence number to the
    end of its data (a dot for a segment without data; SYN and FIN marked), at
    the time it was seen; the line is the other side's acknowledgment number
    over time, so the gap between bars and line is data in flight. ``rows``
    need ``t``, ``direction`` (``"c2s"``/``"s2c"``), relative ``seq`` and
    ``ack``, ``length`` and ``flags`` (the rows of ``l4kit replay`` and
    :meth:`Stepper.rows` do).
    """
    figure_class = _matplotlib_figure()
    data = list(rows)
    fig = figure_class(figsize=(9.5, 5.2))
    axes = fig.subplots(2, 1, sharex=True)
    names = {"c2s": f"{client} → {server}", "s2c": f"{server} → {client}"}
    for ax, direction, colour in ((axes[0], "c2s", "#1f77b4"), (axes[1], "s2c", "#9467bd")):
        _time_sequence_panel(ax, data, direction, colour)
        ax.set_title(f"data {names[direction]}", fontsize=10, loc="left")
        ax.set_ylabel("relative sequence number")
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return Drawing(fig)


def _time_sequence_panel(ax: Axes, rows: list[SequencePoint], direction: str, colour: str) -> None:
    sent = [r for r in rows if r.direction == direction]
    acks = [(r.t, r.ack) for r in rows if r.direction != direction and r.ack is not None and "A" in r.flags]
    for r in sent:
        top = r.seq + max(r.length, 0)
        if r.length > 0:
            ax.plot([r.t, r.t], [r.seq, top], color=colour, linewidth=2.2, solid_capstyle="butt")
            ax.plot([r.t], [top], marker="_", color=colour, markersize=8)
        marker = "o" if "S" in r.flags else ("s" if "F" in r.flags else ("x" if "R" in r.flags else "."))
        ax.plot(
            [r.t],
            [top if "F" in r.flags else r.seq],
            marker=marker,
            color=colour,
            markersize=6 if marker != "." else 4,
            linestyle="none",
        )
    if acks:
        times = [t for t, _ in acks]
        values = [a for _, a in acks]
        ax.step(times, values, where="post", color="#2ca02c", linewidth=1.0, label="ack from the other side")
    # Legend entries for the markers (empty plots: proxies that draw nothing).
    ax.plot([], [], color=colour, linewidth=2.2, label="data (seq to seq+len)")
    ax.plot([], [], marker="o", color=colour, linestyle="none", label="SYN")
    ax.plot([], [], marker="s", color=colour, linestyle="none", label="FIN")
    ax.legend(loc="upper left", fontsize=7.5)
    if not sent:
        ax.text(
            0.5, 0.5, "no segments in this direction", transform=ax.transAxes, ha="center", color="#777777"
        )


def figure_png(fig: Figure, *, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG octets (the Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _matplotlib_figure() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "drawing needs matplotlib, which is not installed", hint="pip install 'l4kit[notebooks]'"
        ) from None
    return Figure

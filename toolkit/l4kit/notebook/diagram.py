"""The steps of a conversation as pictures: :class:`SequenceDiagram` and :class:`StepRow`.

A sequence diagram as Mermaid text, a matplotlib drawing and a text picture; rows with
sequence numbers relative to the ISNs, for tables and time-sequence graphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l4kit.mermaid import mermaid_escape
from l4kit.notebook.drawing import _matplotlib_figure, figure_png
from l4kit.notebook.scenario import StateChange
from l4kit.notebook.step import Step, _short
from l4kit.wire import TcpFlags

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from l4kit.core.states import State


@dataclass(frozen=True, slots=True)
class StepRow:
    """A delivered segment as a table row: ``seq``/``ack`` relative to the ISNs, ``t`` in seconds."""

    step: int
    t: float
    direction: str
    flags: str
    seq: int
    ack: int | None
    length: int
    window: int
    payload: bytes
    checksum: str
    client: StateChange
    server: StateChange


# ---------------------------------------------------------------- pictures


class SequenceDiagram:
    """The steps of a :class:`Stepper` as a sequence diagram.

    ``mermaid`` is the Mermaid text (paste it into a Markdown file, GitHub and
    JupyterLab 4.1+ draw it); :meth:`figure` draws it with matplotlib, which
    needs no browser and renders in any Jupyter and in nbclient; ``str()`` is a
    plain-text picture. In Jupyter the drawing is what shows.
    """

    def __init__(self, steps: Sequence[Step], client_label: str, server_label: str) -> None:
        self.steps = tuple(steps)
        self.client_label = client_label
        self.server_label = server_label

    @property
    def mermaid(self) -> str:
        lines = [
            "sequenceDiagram",
            f"    participant C as {mermaid_escape(self.client_label)}",
            f"    participant S as {mermaid_escape(self.server_label)}",
        ]
        if self.steps:
            first = self.steps[0]
            lines.append(f"    Note over C: {first.client.before}")
            lines.append(f"    Note over S: {first.server.before}")
        for step in self.steps:
            if step.direction == "timer":
                lines.append(f"    Note over C,S: {step.number}. time passes ({mermaid_escape(step.label)})")
            else:
                arrow = "C->>S" if step.direction == "c2s" else "S->>C"
                lines.append(f"    {arrow}: {step.number}. {mermaid_escape(_arrow_label(step))}")
            for side, change in (("C", step.client), ("S", step.server)):
                if change.changed:
                    lines.append(f"    Note over {side}: {change.after}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        width = 54
        left, right = self.client_label, self.server_label
        out = [f"{left:<24}{'':{width - 24}}{right:>24}"]
        if self.steps:
            out.append(
                f"{self.steps[0].client.before!s:<24}{'':{width - 24}}{self.steps[0].server.before!s:>24}"
            )
        shown = _text_lines(self.steps)
        for index, step in enumerate(self.steps):
            c = str(shown.get(("client", index), ""))
            s = str(shown.get(("server", index), ""))
            if step.direction == "timer":
                middle = f" {step.number}. (time passes) ".center(width, "·")
            else:
                text = f" {step.number}. {_arrow_label(step)} "
                middle = (
                    (text.ljust(width - 1, "─") + "▶")
                    if step.direction == "c2s"
                    else ("◀" + text.rjust(width - 1, "─"))
                )
            out.append(f"{c:<14}{middle}{s:>14}".rstrip())
        return "\n".join(out)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def figure(self) -> Figure:
        """The diagram drawn with matplotlib: client on the left, server on the right, time down."""
        figure_class = _matplotlib_figure()
        n = len(self.steps)
        fig = figure_class(figsize=(9.5, 1.2 + 0.62 * max(n, 1)))
        ax = fig.add_subplot()
        x_client, x_server = 0.0, 1.0
        bottom = n + 0.6
        ax.set_xlim(-0.62, 1.62)
        ax.set_ylim(bottom, -0.9)
        ax.axis("off")
        for x, label in ((x_client, self.client_label), (x_server, self.server_label)):
            ax.plot([x, x], [-0.3, bottom], color="#555555", linewidth=1.2)
            ax.text(x, -0.5, label, ha="center", va="bottom", fontsize=10, fontweight="bold")
        if self.steps:
            ax.text(
                x_client - 0.04, -0.1, str(self.steps[0].client.before), ha="right", va="center", fontsize=8.5
            )
            ax.text(
                x_server + 0.04, -0.1, str(self.steps[0].server.before), ha="left", va="center", fontsize=8.5
            )
        labels: dict[tuple[str, float], list[StateChange]] = {}
        for i, step in enumerate(self.steps):
            # An arrow leaves when its segment was put on the wire (right after the arrival that
            # made the sender send it) and ends when it is delivered, so crossing segments cross.
            y0, y1 = i + 0.2, i + 0.8
            if step.sent_at is not None and step.sent_at >= 1:
                y0 = min(y0, step.sent_at - 0.2)
            if step.direction == "timer":
                ax.plot([x_client, x_server], [i + 0.5, i + 0.5], linestyle=":", color="#7f7f7f")
                ax.text(
                    0.5,
                    i + 0.42,
                    f"{step.number}. {step.label}: time passes",
                    ha="center",
                    va="bottom",
                    fontsize=8.5,
                    color="#555555",
                )
            else:
                start, end = (x_client, x_server) if step.direction == "c2s" else (x_server, x_client)
                colour = "#1f77b4" if step.direction == "c2s" else "#9467bd"
                ax.annotate(
                    "",
                    xy=(end, y1),
                    xytext=(start, y0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.4},
                )
                ax.text(
                    0.5,
                    (y0 + y1) / 2 + 0.1,
                    f"{step.number}. {_arrow_label(step)}",
                    ha="center",
                    va="bottom",
                    fontsize=8.5,
                    color=colour,
                    rotation=0,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.85},
                )
            # The sender changed state when the segment left (top of the arrow), the receiver
            # when it arrived (the arrow's head).
            y_client = {"c2s": y0, "s2c": y1}.get(step.direction, i + 0.5)
            y_server = {"c2s": y1, "s2c": y0}.get(step.direction, i + 0.5)
            for side, y, change in (("client", y_client, step.client), ("server", y_server, step.server)):
                if change.changed:
                    labels.setdefault((side, round(y, 3)), []).append(change)
        # Changes at the same instant on one side (a segment arrives and another leaves because
        # of it) share one label: "ESTABLISHED → FIN-WAIT-1".
        for (side, y), changes in labels.items():
            names = [str(change.after) for change in changes]
            text = " → ".join(dict.fromkeys(names))
            x, align = (x_client - 0.04, "right") if side == "client" else (x_server + 0.04, "left")
            ax.text(x, y, text, ha=align, va="center", fontsize=8.5, fontweight="bold")
        fig.tight_layout()
        return fig

    def _repr_png_(self) -> bytes:
        return figure_png(self.figure())


def _text_lines(steps: Sequence[Step]) -> dict[tuple[str, int], State]:
    """On which line of the text picture each side's new state is written.

    A receiver's change goes on the line of the arrival; a sender's on the line of its
    own arrow, as TCP diagrams draw it, unless a change that side made later (while that
    segment was in flight: a simultaneous close) is written above it: then it moves up,
    as far as the line of the step in which the segment left, so that each side's
    states read top to bottom in the order they were entered.
    """
    # (when, preferred line, earliest line, side, state); "when" orders the changes:
    # an arrival at step i happens at i, what its receiver sent in answer just after.
    changes: list[tuple[float, int, int, str, State]] = []
    for index, step in enumerate(steps):
        sender = {"c2s": "client", "s2c": "server"}.get(step.direction)
        for side, change in (("client", step.client), ("server", step.server)):
            if not change.changed:
                continue
            if side == sender and step.sent_at is not None:
                departure = min(step.sent_at, index + 1) - 1
                changes.append((departure + 0.5, index, max(departure, 0), side, change.after))
            else:
                changes.append((float(index), index, index, side, change.after))
    shown: dict[tuple[str, int], State] = {}
    for side in ("client", "server"):
        mine = sorted((c for c in changes if c[3] == side), key=lambda c: c[0])
        next_line = len(steps)
        for _, preferred, earliest, _, state in reversed(mine):
            line = max(min(preferred, next_line - 1), earliest)
            shown.setdefault((side, line), state)
            next_line = line
    return shown


def _arrow_label(step: Step) -> str:
    seg = step.segment
    if seg is None:
        return step.label
    parts = [step.label, f"seq={seg.seq.value}"]
    if seg.flags & TcpFlags.ACK:
        parts.append(f"ack={seg.ack.value}")
    if seg.payload:
        parts.append(f"len={len(seg.payload)} {_short(seg.payload)}")
    return " ".join(parts)

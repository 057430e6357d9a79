"""The notebooks' stepper as the flag-transition table that ``l4kit respond`` and ``l4kit replay`` print.

A notebook that steps through a conversation ends with the same table a user
sees live and from a capture, so the three can be compared row by row. The
table is a Rich renderable: it renders in Jupyter by itself, and as text anywhere else.
"""

from __future__ import annotations

from l4kit.notebook import Stepper
from l4kit.views.layout import FittedTable
from l4kit.views.live import payload_preview
from l4kit.views.transitions import TransitionRow, transition_table


def transition_rows(stepper: Stepper) -> list[TransitionRow]:
    """One shared :class:`TransitionRow` per delivered segment of ``stepper`` (numbers relative to the ISNs).

    The server state columns hold the server's state change for the step, the
    client columns the client's (each as the step shows it: the receiver on
    arrival, the sender when it sent the segment).
    """
    return [
        TransitionRow(
            t=row.t,
            direction=row.direction,
            flags=row.flags,
            seq=row.seq,
            ack=row.ack,
            length=row.length,
            window=row.window,
            before=str(row.server.before),
            after=str(row.server.after),
            checksum=row.checksum,
            payload_preview=payload_preview(row.payload),
            frame=row.step,
            client_before=str(row.client.before),
            client_after=str(row.client.after),
        )
        for row in stepper.rows()
    ]


def stepper_table(stepper: Stepper, title: str | None = None) -> FittedTable:
    """The flag-transition table of every segment ``stepper`` has delivered so far."""
    heading = title or f"{stepper.client_endpoint} <-> {stepper.server_endpoint}"
    return transition_table(
        heading, transition_rows(stepper), show_checksum=True, show_client_state=True, show_frame=True
    )

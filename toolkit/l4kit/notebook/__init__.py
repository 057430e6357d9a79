"""Step through one TCP conversation a segment at a time: the driver behind the notebooks.

A :class:`Stepper` puts two parties on one imaginary wire:

* a **scripted client**, written here with Scapy (every segment it sends is an
  ``IP()/TCP()/Raw()`` a learner could type, and :attr:`Step.scapy` shows that line).
  It does what ``echo toppage | nc SERVER 8888`` does: open the connection, send
  the request, read the reply, and close when the server closes;
* the **l4kit core** (:class:`~l4kit.core.Listener` with the string server), the
  very state machine ``l4kit respond`` runs, with a fixed secret and fixed initial
  sequence numbers so that the numbers a notebook's text quotes are the numbers
  its cells print.

Each call of :meth:`Stepper.step` delivers *one* segment, the oldest one in
flight, to the other side, and returns a :class:`Step`: the Scapy packet, the
direction, each side's RFC 9293 state before and after, the sequence and
acknowledgment arithmetic in words, and the TCP checksum worked out with
:mod:`l4kit.checksum` next to the one Scapy computed. Nothing touches a network
and nothing reads a clock: time is a counter that advances by
:data:`STEP_SECONDS` per step (and by the TIME-WAIT period for the last one).

Which state a step shows
------------------------
A segment has a sender and a receiver. For the *receiver* a step shows the
state change its arrival caused. For the *sender* it shows the state change
that sending it caused, which happened when the sender sent it: the core answers
a request at once (reply and FIN-ACK leave together), so the FIN-ACK's
``ESTABLISHED → FIN-WAIT-1`` is shown on the step that delivers the FIN-ACK,
while :attr:`Stepper.server_state` already says ``FIN-WAIT-1`` one step
earlier. :attr:`Step.in_flight` lists what is on the wire after each step.

Rendering: a :class:`Step` shows itself as HTML in Jupyter (``_repr_html_``) and
as text everywhere else; :meth:`Stepper.diagram` returns a sequence diagram as
Mermaid text and as a matplotlib drawing (Mermaid is not rendered by plain
Jupyter or by nbclient, a drawing is). The drawing starts each arrow when its
segment was sent (:attr:`Step.sent_at`) and ends it when the segment arrived,
so segments that were in flight at the same time cross, as in the textbook
figures of a simultaneous close; Mermaid can only draw them one after another.
:func:`time_sequence_graph` draws a Wireshark-style time-sequence ("Stevens") graph from any rows that carry
``t``, ``direction``, ``seq``, ``ack``, ``length`` and ``flags`` (the rows of
``l4kit replay`` do).

Modules: ``scenario`` (the two endpoints, fixed numbers, :class:`StateChange`),
``client`` (:class:`ScriptedClient`), ``working`` (:class:`ChecksumWorking`), ``step``
(:class:`Step` and its words), ``stepper`` (:class:`Stepper`), ``diagram``
(:class:`SequenceDiagram`), ``drawing`` (matplotlib figures, :func:`time_sequence_graph`).
Everything public is imported here: ``from l4kit.notebook import Stepper``.

This package is a driver (docs/design.md, "Layers"): it imports the core, the wire layer, the
codecs and Scapy, never the Rich views or the CLI. matplotlib is imported only
by the drawing functions (it comes with ``pip install 'l4kit[notebooks]'``).
"""

from __future__ import annotations

from l4kit.notebook.client import ScriptedClient
from l4kit.notebook.diagram import SequenceDiagram, StepRow
from l4kit.notebook.drawing import Drawing, SequencePoint, figure_png, time_sequence_graph
from l4kit.notebook.scenario import (
    CLIENT,
    CLIENT_ISN,
    NOTEBOOK_SECRET,
    SERVER,
    SERVER_ISN,
    STEP_SECONDS,
    StateChange,
    SteppingError,
)
from l4kit.notebook.step import Step
from l4kit.notebook.stepper import Stepper
from l4kit.notebook.working import ChecksumWorking

__all__ = [
    "CLIENT",
    "CLIENT_ISN",
    "NOTEBOOK_SECRET",
    "SERVER",
    "SERVER_ISN",
    "STEP_SECONDS",
    "ChecksumWorking",
    "Drawing",
    "ScriptedClient",
    "SequenceDiagram",
    "SequencePoint",
    "StateChange",
    "Step",
    "StepRow",
    "Stepper",
    "SteppingError",
    "figure_png",
    "time_sequence_graph",
]

"""From the core's protocol facts to table rows: which row shows which state transition.

The core reports facts, in the order they happen (:mod:`l4kit.core.events`): a segment
received with the state before it, a state change with its cause (the received segment,
or ``None`` for the application or a timer), a segment sent with the state it was sent
in. A transition table shows one row per segment with ``before → after``.
:class:`TransitionRecorder` is the one rule every view uses to turn the first into the
second, per connection:

* the rows of one connection form a chain: each row's ``before`` is the previous row's
  ``after``, so every state the connection passed through appears, in order, exactly once;
* a received segment's row ends in the state its own processing left the connection
  in (the :class:`~l4kit.core.events.StateChanged` events it caused), so the FIN of
  ``ESTABLISHED → CLOSE-WAIT`` shows on the FIN, and what the application did about it
  shows on what it sent;
* a change made by the application or a timer (``ESTABLISHED → FIN-WAIT-1`` when the
  application closes, an idle timeout) shows on the next row of that connection,
  whichever way that segment goes, with the change's reason as a note: a reply sent
  before the application closed says ESTABLISHED, everything after it FIN-WAIT-1.

A row may carry more than one change (a FIN that also acknowledges ours:
``FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT``, shown ``FIN-WAIT-1 → TIME-WAIT``); ``changes``
lists each, every one a change RFC 9293 allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from l4kit.core.events import ConnectionClosed, SegmentReceived, SegmentSent, StateChanged
from l4kit.core.states import State
from l4kit.wire.segment import FourTuple, Segment


@dataclass(slots=True)
class SegmentRow:
    """One segment of one connection, received or sent, with the states around it."""

    time: float
    key: FourTuple
    segment: Segment
    received: bool
    before: State
    after: State
    changes: list[tuple[State, State]] = field(default_factory=list)
    retransmission: bool = False
    why: str = ""  # what the core said about a segment it sent ("SYN-ACK", "challenge ACK ...")
    notes: list[str] = field(default_factory=list)  # why the state changed, when not this segment

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class TransitionRecorder:
    """Folds the core's events into :class:`SegmentRow` values, connection by connection.

    Feed it every event, in order (:meth:`feed`, or :meth:`feed_all` for one call's
    output); it returns the rows as they become final. A sent segment's row is final at
    once; a received segment's row when the next segment or uncaused change of its
    connection, its close, or the end of the call (:meth:`flush`) shows that its
    processing is over. ``state_of`` is the state the last row of a connection ended in.
    """

    __slots__ = ("_open", "_pending", "_shown")

    def __init__(self) -> None:
        self._shown: dict[FourTuple, State] = {}
        # changes made since the connection's last row, not caused by a received segment
        self._pending: dict[FourTuple, list[tuple[State, State, str]]] = {}
        self._open: dict[FourTuple, SegmentRow] = {}

    def state_of(self, key: FourTuple) -> State | None:
        """The state the connection's rows have reached (None: none yet, or closed since)."""
        return self._shown.get(key)

    def feed_all(self, events: Iterable[object]) -> list[SegmentRow]:
        """Every event of one call into the core; the rows it made, all final, in order."""
        rows: list[SegmentRow] = []
        for event in events:
            rows += self.feed(event)
        rows += self.flush()
        return rows

    def feed(self, event: object) -> list[SegmentRow]:
        """One event; the rows that became final with it, in order (often none)."""
        kind = type(event)
        if kind is SegmentReceived:
            assert isinstance(event, SegmentReceived)
            done = self._close_open(event.key)
            self._open[event.key] = self._new_row(event.time, event.key, event.segment, True, event.state)
            return done
        if kind is SegmentSent:
            assert isinstance(event, SegmentSent)
            done = self._close_open(event.key)
            row = self._new_row(event.time, event.key, event.segment, False, event.state)
            row.retransmission, row.why = event.retransmission, event.why
            self._shown[event.key] = row.after
            done.append(row)
            return done
        if kind is StateChanged:
            assert isinstance(event, StateChanged)
            received = self._open.get(event.key)
            if received is not None and event.cause is received.segment:
                received.changes.append((event.before, event.after))
                received.after = event.after
                return []
            done = self._close_open(event.key)
            self._pending.setdefault(event.key, []).append((event.before, event.after, event.why))
            return done
        if kind is ConnectionClosed:
            assert isinstance(event, ConnectionClosed)
            done = self._close_open(event.key)
            self._shown.pop(event.key, None)
            self._pending.pop(event.key, None)
            return done
        return []

    def flush(self) -> list[SegmentRow]:
        """The rows still open (the end of one call into the core)."""
        rows: list[SegmentRow] = []
        for key in list(self._open):
            rows += self._close_open(key)
        return rows

    def _new_row(
        self, time: float, key: FourTuple, segment: Segment, received: bool, state: State
    ) -> SegmentRow:
        row = SegmentRow(time, key, segment, received, before=state, after=state)
        pending = self._pending.pop(key, None)
        if pending:
            row.before = pending[0][0]
            row.changes = [(before, after) for before, after, _ in pending]
            row.notes = [why for _, _, why in pending if why]
        else:
            shown = self._shown.get(key)
            if shown is not None and shown is not state:
                # A change the core made without a StateChanged event cannot happen;
                # show the chain unbroken all the same.
                row.before = shown
        return row

    def _close_open(self, key: FourTuple) -> list[SegmentRow]:
        row = self._open.pop(key, None)
        if row is None:
            return []
        self._shown[key] = row.after
        return [row]

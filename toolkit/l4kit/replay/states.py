"""Both sides' RFC 9293 states, as an observer of the wire infers them.

This is *not* the responder's state machine (:mod:`l4kit.core`): the core decides
what to send; this module only watches segments go by and moves each side along
the RFC 9293 §3.3.2 state diagram the way that side must have moved, assuming
every captured segment reached its destination. A side changes state when it
*sends* a segment that only that state can send (its SYN, its FIN, a RST) and
when it *receives* one, processed in the RFC's order: RST, SYN, ACK, then FIN
(RFC 9293 §3.10.7.4).

What an observer cannot know is marked rather than guessed:

* a refused port: the server side had no listener and was CLOSED all along
  (§3.10.7.1: a SYN to a CLOSED port is answered with RST). Until the RST shows
  it, the SYN is shown moving the server from LISTEN to SYN-RECEIVED;
  :attr:`PassiveStates.refused` tells the caller to correct the rows already made;
* a RST is only taken as accepted when its sequence number is the next one the
  receiver expects (RFC 5961 §3.2); a RST elsewhere in the window asks for a
  challenge ACK, and one outside it is ignored — the returned note says which;
* a SYN with a new ISN on a synchronized connection is answered with a challenge
  ACK (RFC 5961 §4.2) and changes nothing;
* a connection seen from the middle starts with both sides ESTABLISHED.

TIME-WAIT is left only by a timer (2 MSL), which a capture does not show, so a
side that reached TIME-WAIT stays there.
"""

from __future__ import annotations

from typing import Final

from l4kit.core.states import State
from l4kit.wire.flags import ACK_BIT as ACK
from l4kit.wire.flags import FIN_BIT as FIN
from l4kit.wire.flags import RST_BIT as RST
from l4kit.wire.flags import SYN_BIT as SYN
from l4kit.wire.seqnum import MASK, seq_ge, seq_in_window

CLIENT: Final = 0
SERVER: Final = 1
_SYN_FIN_RST: Final = SYN | FIN | RST
# The states as module constants: an Enum member looked up on its class costs a
# descriptor call, and these are compared on every segment.
_LISTEN: Final = State.LISTEN
_SYN_SENT: Final = State.SYN_SENT
_SYN_RECEIVED: Final = State.SYN_RECEIVED
_ESTABLISHED: Final = State.ESTABLISHED
_FIN_WAIT_1: Final = State.FIN_WAIT_1
_FIN_WAIT_2: Final = State.FIN_WAIT_2
_CLOSE_WAIT: Final = State.CLOSE_WAIT
_CLOSING: Final = State.CLOSING
_LAST_ACK: Final = State.LAST_ACK
_TIME_WAIT: Final = State.TIME_WAIT
_CLOSED: Final = State.CLOSED
_UNSYNCHRONIZED: Final = frozenset(s for s in State if not s.synchronized)  # State.synchronized, as a set

NOTE_RST_IGNORED: Final = "RST out of window: ignored (RFC 9293 §3.10.7.4)"
NOTE_RST_CHALLENGE: Final = "RST in window but not at RCV.NXT: challenge ACK expected (RFC 5961 §3.2)"
NOTE_SYN_CHALLENGE: Final = "SYN on a synchronized connection: challenge ACK expected (RFC 5961 §4.2)"
NOTE_BAD_SYN_ACK: Final = "SYN-ACK does not acknowledge the SYN: RST expected (RFC 9293 §3.10.7.3)"
NOTE_MIDSTREAM: Final = "first segment seen mid-connection: both sides assumed ESTABLISHED"


_FIN_NEXT: Final = {
    _SYN_RECEIVED: _CLOSE_WAIT,
    _ESTABLISHED: _CLOSE_WAIT,
    _FIN_WAIT_1: _CLOSING,
    _FIN_WAIT_2: _TIME_WAIT,
}
"""The state a side moves to when it processes the peer's FIN (RFC 9293 §3.10.7.4, eighth)."""


class _Side:
    """What one side has sent, as far as its state needs it."""

    __slots__ = (
        "fin_seq",
        "fin_undo",
        "iss",
        "last_ack",
        "pending_fin",
        "snd_nxt",
        "state",
        "syn_ack_sent",
        "window",
    )

    def __init__(self, state: State) -> None:
        self.state = state
        self.iss: int | None = None  # sequence number of its SYN
        self.snd_nxt: int | None = None  # one past the highest sequence number it sent
        self.fin_seq: int | None = None  # sequence number of its FIN octet
        self.last_ack: int | None = None  # the last acknowledgment it sent (its RCV.NXT)
        self.window = 0  # the last window it advertised, scaled
        self.syn_ack_sent = False
        # The peer's FIN, applied when captured: (state before, state after, FIN end).
        self.fin_undo: tuple[State, State, int] | None = None
        # The end of a peer FIN this side has not processed yet (its ACKs do not cover it).
        self.pending_fin: int | None = None


class PassiveStates:
    """The client's and the server's RFC 9293 states over one connection."""

    __slots__ = ("active_server", "correction", "hindsight", "refused", "sides", "via")

    def __init__(self) -> None:
        self.sides = (_Side(_CLOSED), _Side(_LISTEN))
        self.refused = False  # the server answered the SYN with RST: no listener
        self.active_server = False  # the server opened actively (simultaneous open): no listener
        # Set by the segment that showed a FIN was applied too early: (side, wrong, right).
        self.correction: tuple[int, State, State] | None = None
        # Set whenever a segment reveals that rows already made need correcting (refusal,
        # active open, a FIN applied too early); the caller clears it.
        self.hindsight = False
        # Set by a segment whose sender must have passed through a state before sending it
        # (it acknowledges a FIN it had not processed: CLOSE-WAIT before its own FIN's
        # LAST-ACK): (side, that state). Each transition is then shown on its own.
        self.via: tuple[int, State] | None = None

    @property
    def client(self) -> State:
        return self.sides[CLIENT].state

    @property
    def server(self) -> State:
        return self.sides[SERVER].state

    def start(self, d: int, flags: int) -> str | None:
        """Set the starting states from the connection's first segment (sent in
        direction ``d``, 0 = by the client); returns a note for a midstream start."""
        if flags & SYN and not flags & ACK and d == CLIENT:
            return None  # the normal case: CLOSED client, LISTEN server
        if flags & SYN and flags & ACK and d == SERVER:
            self.sides[CLIENT].state = _SYN_SENT  # its SYN was not captured
            return None
        for side in self.sides:
            side.state = _ESTABLISHED
        return NOTE_MIDSTREAM

    def segment(  # noqa: PLR0917 - once per packet: plain values, no objects
        self, d: int, flags: int, seq: int, ack: int, seg_len: int, window: int
    ) -> str | None:
        """One segment from side ``d`` (0 = client); returns an RFC note, if any.

        ``seg_len`` is SEG.LEN (payload + SYN + FIN); ``window`` is the advertised
        window, scaled.
        """
        sides = self.sides
        snd = sides[d]
        rcv = sides[1 - d]
        self.correction = None
        self.via = None
        if flags & ACK and (snd.fin_undo is not None or snd.pending_fin is not None):
            self._fin_evidence(snd, d, ack)
        if not flags & _SYN_FIN_RST and snd.state is _ESTABLISHED and rcv.state is _ESTABLISHED:
            # The common case (data and ACKs of an established connection) changes no
            # state: only remember what the sender sent.
            end = (seq + seg_len) & MASK
            if snd.snd_nxt is None or seq_ge(end, snd.snd_nxt):
                snd.snd_nxt = end
            if flags & ACK:
                snd.last_ack = ack
            snd.window = window
            return None
        note: str | None = None
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        has_ack = flags & ACK

        # ---- what sending this segment says about the sender
        if rst:
            note = self._rst_received(snd, rcv, d, flags, seq, ack)
            if d == SERVER and snd.state == _SYN_RECEIVED and not snd.syn_ack_sent:
                self.refused = True  # no listener: the server side was CLOSED all along
                self.hindsight = True
            if snd.state != _LISTEN:  # a listener answering a stray segment stays listening
                snd.state = _CLOSED
            return note
        previous_iss = snd.iss
        if syn:
            if not has_ack and d == SERVER and snd.state is _SYN_RECEIVED and not snd.syn_ack_sent:
                # The server sends a SYN of its own, not a SYN-ACK: it had not got the
                # client's SYN and was opening actively (simultaneous open, RFC 9293 §3.5
                # figure 7). It was CLOSED, not LISTEN, all along.
                self.active_server = True
                self.hindsight = True
                snd.state = _SYN_SENT
            elif not has_ack and snd.state in (_CLOSED, _LISTEN):
                snd.state = _SYN_SENT
            elif has_ack and snd.state == _LISTEN:
                snd.state = _SYN_RECEIVED  # the SYN it answers was not captured
            if has_ack:
                snd.syn_ack_sent = True
            if snd.iss is None or snd.state in (_SYN_SENT, _SYN_RECEIVED):
                snd.iss = seq
        end = (seq + seg_len) & MASK
        if snd.snd_nxt is None or seq_ge(end, snd.snd_nxt):
            snd.snd_nxt = end
        first_fin = fin and snd.fin_seq is None
        if first_fin:
            snd.fin_seq = (end - 1) & MASK
            if snd.state in (_ESTABLISHED, _SYN_RECEIVED):
                snd.state = _FIN_WAIT_1
            elif snd.state == _CLOSE_WAIT:
                snd.state = _LAST_ACK
        if has_ack:
            snd.last_ack = ack
        snd.window = window

        # ---- what receiving it does to the receiver (RFC 9293 §3.10.7)
        if syn:
            note = self._syn_received(rcv, flags, seq, ack, previous_iss)
        if has_ack:
            self._ack_received(rcv, ack)
        if first_fin and rcv.pending_fin is None:
            after = _FIN_NEXT.get(rcv.state)
            if after is not None:
                rcv.fin_undo = (rcv.state, after, end)
                rcv.state = after
        return note

    def _fin_evidence(self, snd: _Side, d: int, ack: int) -> None:
        """What the acknowledgment ``snd`` sends says about the peer's FIN.

        A side has processed a FIN once it acknowledges it. A FIN is applied to its
        receiver as soon as it is captured, which is right when the receiver is
        quick (a kernel on the same host); when the receiver's next segment still
        does not acknowledge it, the FIN was in flight (the two ends' segments
        crossed, as in a simultaneous close, RFC 9293 §3.6 figure 13): the
        receiver's state is put back (:attr:`correction` tells the caller) and the
        FIN is applied when an acknowledgment of it shows up.
        """
        undo = snd.fin_undo
        if undo is not None:
            before, after, fin_end = undo
            snd.fin_undo = None
            if not seq_ge(ack, fin_end):
                if snd.state is after:
                    snd.state = before
                    self.correction = (d, after, before)
                    self.hindsight = True
                snd.pending_fin = fin_end
        pending = snd.pending_fin
        if pending is not None and seq_ge(ack, pending):
            snd.pending_fin = None
            processed = _FIN_NEXT.get(snd.state)
            if processed is not None:
                snd.state = processed
                self.via = (d, processed)

    @staticmethod
    def _syn_received(rcv: _Side, flags: int, seq: int, ack: int, previous_iss: int | None) -> str | None:
        st = rcv.state
        if st == _LISTEN and not flags & ACK:
            rcv.state = _SYN_RECEIVED
        elif st == _SYN_SENT:
            if not flags & ACK:
                rcv.state = _SYN_RECEIVED  # simultaneous open (RFC 9293 §3.5, figure 7)
            elif rcv.iss is None or ack == (rcv.iss + 1) & MASK:
                rcv.state = _ESTABLISHED
            else:
                return NOTE_BAD_SYN_ACK
        elif st not in _UNSYNCHRONIZED and previous_iss is not None and seq != previous_iss:
            return NOTE_SYN_CHALLENGE
        return None  # includes a retransmitted SYN or SYN-ACK, which is answered with an ACK

    @staticmethod
    def _ack_received(rcv: _Side, ack: int) -> None:
        st = rcv.state
        if st == _SYN_RECEIVED and (rcv.iss is None or seq_ge(ack, (rcv.iss + 1) & MASK)):
            rcv.state = _ESTABLISHED
        if rcv.fin_seq is not None and seq_ge(ack, (rcv.fin_seq + 1) & MASK):
            if st == _FIN_WAIT_1:
                rcv.state = _FIN_WAIT_2
            elif st == _CLOSING:
                rcv.state = _TIME_WAIT
            elif st == _LAST_ACK:
                rcv.state = _CLOSED

    @staticmethod
    def _rst_received(snd: _Side, rcv: _Side, d: int, flags: int, seq: int, ack: int) -> str | None:  # noqa: PLR0917
        """Apply a RST to its receiver; return a note when the receiver must ignore it."""
        st = rcv.state
        if st in (_LISTEN, _CLOSED):
            return None
        if st == _SYN_SENT:
            # RFC 9293 §3.10.7.3: acceptable only when it acknowledges the SYN.
            if flags & ACK and (rcv.iss is None or ack == (rcv.iss + 1) & MASK):
                rcv.state = _CLOSED
                return None
            return NOTE_RST_IGNORED
        expected = [v for v in (snd.snd_nxt, rcv.last_ack) if v is not None]
        if not expected or seq in expected:
            # A server in SYN-RECEIVED got there from LISTEN and returns to it (§3.10.7.4).
            rcv.state = _LISTEN if st == _SYN_RECEIVED and d == CLIENT else _CLOSED
            return None
        window = max(rcv.window, 1)
        if any(seq_in_window(seq, e, window) for e in expected):
            return NOTE_RST_CHALLENGE
        return NOTE_RST_IGNORED

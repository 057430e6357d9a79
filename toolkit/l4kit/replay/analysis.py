"""Per-segment analysis notes in Wireshark's vocabulary.

Wireshark's TCP dissector flags segments with "expert info" (``tcp.analysis.*``)
computed by ``tcp_analyze_sequence_number()`` in ``epan/dissectors/packet-tcp.c``.
This module re-implements those rules (it does not copy the code) so that the
notes ``l4kit replay`` prints mean what a Wireshark user expects:

===================================  =================================================
note                                 the segment ...
===================================  =================================================
``zero window probe``                carries 1 octet at the next expected sequence
                                     number while the peer's window is 0
``zero window``                      advertises a window of 0 (not SYN/FIN/RST)
``previous segment not captured``    starts beyond the highest sequence number seen
                                     from its sender (not RST)
``keep-alive``                       carries 0 or 1 octet starting one octet before
                                     the next expected sequence number
``window update``                    is empty, repeats seq and ack, changes the window
``window full``                      fills the peer's advertised window exactly
``keep-alive ACK``                   repeats seq/ack/window right after a keep-alive
``zero window probe ACK``            repeats seq/ack and the zero window after a probe
``duplicate ACK #n``                 is empty and repeats seq, ack and window (n counts
                                     the repeats since the acknowledgment last moved)
``ACKed unseen segment``             acknowledges data the capture never showed
``fast retransmission``              retransmits what >= 2 duplicate ACKs asked for,
                                     within 20 ms of the last of them
``out-of-order``                     does not advance the sequence space, and arrived
                                     sooner than one round trip after the highest one
``spurious retransmission``          retransmits data the peer had already
                                     acknowledged
``retransmission``                   otherwise does not advance the sequence space
===================================  =================================================

Like Wireshark, the analysis is on raw 32-bit sequence numbers compared modulo
2**32 (RFC 1982 serial arithmetic), on plain ints: it runs once per packet over
captures of millions of packets.

Two details follow tshark 4.0 rather than the older code most write-ups
describe, and were settled by comparing with tshark on purpose-made captures:
a spurious retransmission is checked first (all of its data was acknowledged
already), and "ACKed unseen segment" is reported once per hole — when the peer
acknowledges past what was seen, the mark moves up to the highest sequence
number seen if that is further; otherwise the note is given only if the data
sender has not been repeating its own ACKs since (Wireshark keeps that as -1
in the sender's duplicate-ACK counter). ``tests/unit/test_replay_analysis.py``
checks every note frame by frame against tshark on generated traces.
"""

from __future__ import annotations

from typing import Final

from l4kit.wire.flags import ACK_BIT as ACK
from l4kit.wire.flags import FIN_BIT as FIN
from l4kit.wire.flags import RST_BIT as RST
from l4kit.wire.flags import SYN_BIT as SYN
from l4kit.wire.seqnum import MASK, seq_ge, seq_gt

_SFR: Final = SYN | FIN | RST

RETRANSMISSION: Final = "retransmission"
FAST_RETRANSMISSION: Final = "fast retransmission"
SPURIOUS_RETRANSMISSION: Final = "spurious retransmission"
OUT_OF_ORDER: Final = "out-of-order"
DUPLICATE_ACK: Final = "duplicate ACK"
ZERO_WINDOW: Final = "zero window"
ZERO_WINDOW_PROBE: Final = "zero window probe"
ZERO_WINDOW_PROBE_ACK: Final = "zero window probe ACK"
WINDOW_FULL: Final = "window full"
WINDOW_UPDATE: Final = "window update"
KEEP_ALIVE: Final = "keep-alive"
KEEP_ALIVE_ACK: Final = "keep-alive ACK"
LOST_SEGMENT: Final = "previous segment not captured"
ACKED_UNSEEN: Final = "ACKed unseen segment"

_FAST_RETRANSMISSION_WINDOW: Final = 0.020  # Wireshark: within 20 ms of the last duplicate ACK
_DEFAULT_OUT_OF_ORDER_WINDOW: Final = 0.003  # Wireshark: 3 ms when the handshake RTT is unknown

WS_UNKNOWN: Final = -1  # the handshake was not seen: the window scale is unknown
WS_NONE: Final = -2  # seen, but not negotiated: windows are not scaled


class Direction:
    """What the analysis remembers about one direction (Wireshark's ``tcp_flow_t``)."""

    __slots__ = (
        "base_seq",
        "dupacks",
        "last_ack",
        "last_ack_time",
        "last_notes",
        "max_seq_to_be_acked",
        "next_seq",
        "next_seq_time",
        "syn_seen",
        "win_scale",
        "window",
        "ws_option",
    )

    def __init__(self) -> None:
        self.base_seq: int | None = None  # the ISN (or seq - 1 when the SYN was not seen)
        self.next_seq: int | None = None  # one past the highest sequence number seen
        self.next_seq_time = 0.0
        self.max_seq_to_be_acked: int | None = None  # one past the highest contiguous octet seen
        self.last_ack: int | None = None
        self.last_ack_time = 0.0
        self.window: int | None = None  # the last advertised window, scaled when the scale is known
        self.win_scale = WS_UNKNOWN
        self.ws_option: int | None = None  # the shift this side offered on its SYN, None if none
        self.syn_seen = False
        self.dupacks = 0
        self.last_notes: tuple[str, ...] = ()

    def relative(self, value: int) -> int:
        """``value`` relative to this direction's ISN (Wireshark's relative sequence numbers)."""
        return (value - (self.base_seq or 0)) & MASK


class SequenceAnalysis:
    """The notes for one connection, both directions; feed every segment in capture order."""

    __slots__ = ("first_rtt", "sides", "syn_time")

    def __init__(self) -> None:
        self.sides = (Direction(), Direction())  # index 0: client to server, 1: server to client
        self.first_rtt = 0.0  # time from the SYN to the handshake's ACK, 0 while unknown
        self.syn_time: float | None = None

    def note_window_scale(self, d: int, flags: int, shift: int | None) -> None:
        """Record the window-scale option of a SYN (RFC 7323 §2.2: both SYNs must carry
        it for scaling to apply; the SYN's own window is never scaled; shifts above 14
        count as 14). Without the peer's SYN the scale stays unknown."""
        fwd, rev = self.sides[d], self.sides[1 - d]
        fwd.ws_option = shift
        fwd.syn_seen = True
        if flags & ACK and rev.syn_seen:  # the SYN-ACK completes the negotiation
            if shift is not None and rev.ws_option is not None:
                fwd.win_scale = min(shift, 14)
                rev.win_scale = min(rev.ws_option, 14)
            else:
                fwd.win_scale = rev.win_scale = WS_NONE

    def segment(  # noqa: PLR0917 - once per packet: plain values, no objects
        self, d: int, t: float, flags: int, seq: int, ack: int, seglen: int, raw_window: int
    ) -> tuple[str, ...]:
        """Analyse one segment sent in direction ``d`` (0 = c2s); return its notes.

        The checks run in Wireshark's order; sequence numbers are compared with
        :mod:`l4kit.wire.seqnum`'s ``seq_*`` rules (RFC 1982).
        """
        sides = self.sides
        fwd = sides[d]
        rev = sides[1 - d]
        notes: list[str] = []
        has_ack = flags & ACK
        syn = flags & SYN
        sfr = flags & _SFR
        window = raw_window << fwd.win_scale if not syn and fwd.win_scale > 0 else raw_window

        if fwd.base_seq is None:
            fwd.base_seq = seq if syn else (seq - 1) & MASK
        if has_ack and rev.base_seq is None:
            rev.base_seq = (ack - 1) & MASK
        if syn:
            if not has_ack:
                self.syn_time = t
        elif has_ack and self.first_rtt == 0.0 and self.syn_time is not None:
            self.first_rtt = t - self.syn_time  # the handshake's ACK: the first round trip

        nxt = fwd.next_seq
        zero_window_probe = False
        if nxt is not None and seglen == 1 and seq == nxt and rev.window == 0:
            notes.append(ZERO_WINDOW_PROBE)
            zero_window_probe = True
        else:
            if window == 0 and not sfr:
                notes.append(ZERO_WINDOW)
            if nxt is not None:
                if seq_gt(seq, nxt) and not flags & RST:
                    notes.append(LOST_SEGMENT)
                elif seglen <= 1 and seq == (nxt - 1) & MASK and not sfr:
                    notes.append(KEEP_ALIVE)  # one octet before the next expected one
            if seglen:
                rev_ack = rev.last_ack
                if (
                    rev_ack is not None
                    and rev.window is not None
                    and rev.win_scale != WS_UNKNOWN
                    and not sfr
                    and (seq + seglen - rev_ack - rev.window) & MASK == 0
                ):
                    notes.append(WINDOW_FULL)
            elif seq == nxt and has_ack and ack == fwd.last_ack and not sfr:
                # Same sequence and acknowledgment numbers as this side's previous segment.
                if window != fwd.window:
                    if window:
                        notes.append(WINDOW_UPDATE)
                elif window and KEEP_ALIVE in rev.last_notes:
                    notes.append(KEEP_ALIVE_ACK)
                elif not window and ZERO_WINDOW_PROBE in rev.last_notes:
                    notes.append(ZERO_WINDOW_PROBE_ACK)
                elif window:
                    # -1 marks "an ACKed-unseen note was given": this is then the first repeat.
                    fwd.dupacks = 1 if fwd.dupacks == -1 else fwd.dupacks + 1
                    notes.append(f"{DUPLICATE_ACK} #{fwd.dupacks}")

        if has_ack:
            if ack != fwd.last_ack:
                fwd.dupacks = 0
            unseen = rev.max_seq_to_be_acked
            if unseen is not None and seq_gt(ack, unseen):
                # Once per lost segment: move the mark up to what was seen, and while the
                # other side only repeats its ACKs, note it once (Wireshark keeps that
                # in the other side's duplicate-ACK counter, as -1).
                if rev.next_seq is not None and seq_gt(rev.next_seq, unseen):
                    rev.max_seq_to_be_acked = rev.next_seq
                    notes.append(ACKED_UNSEEN)
                else:
                    if rev.dupacks == 0:
                        notes.append(ACKED_UNSEEN)
                    rev.dupacks = -1

        if (seglen or flags & (SYN | FIN)) and KEEP_ALIVE not in notes:
            # Every retransmission kind needs a segment that does not advance the
            # sequence space, except a spurious one (all of it acknowledged already):
            # the common in-order segment is ruled out here, without a call.
            behind = nxt is not None and seq_gt(nxt, seq)
            rev_ack = rev.last_ack
            if behind or (seglen and rev_ack and seq_ge(rev_ack, seq + seglen)):
                self._retransmission(fwd, rev, notes, t, seq, seglen, flags & (SYN | FIN))

        # Remember where this direction stands.
        if not zero_window_probe:
            next_seq = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & MASK
            if nxt is None or seq_gt(next_seq, nxt):
                fwd.next_seq = next_seq
                fwd.next_seq_time = t
            if fwd.max_seq_to_be_acked is None or seq == fwd.max_seq_to_be_acked:
                fwd.max_seq_to_be_acked = fwd.next_seq
        fwd.window = window
        if has_ack:
            fwd.last_ack = ack
            fwd.last_ack_time = t
        result = fwd.last_notes = tuple(notes) if notes else ()
        return result

    def _retransmission(  # noqa: PLR0917 - part of the per-packet path
        self, fwd: Direction, rev: Direction, notes: list[str], t: float, seq: int, seglen: int, syn_fin: int
    ) -> None:
        """Spurious retransmission, fast retransmission, out-of-order or retransmission:
        a segment with data (or SYN/FIN) that does not advance its sender's sequence
        space, checked in Wireshark's order (spurious first, then fast retransmission
        before out-of-order, its default precedence)."""
        nxt = fwd.next_seq
        not_advanced = nxt is not None and seq_gt(nxt, seq)
        if seglen > 1 and nxt is not None and ((nxt - 1) & MASK) == seq:
            not_advanced = False  # new data after a zero window probe's octet
        last_ack = rev.last_ack
        if seglen and last_ack and seq_ge(last_ack, seq + seglen):
            notes.append(SPURIOUS_RETRANSMISSION)  # all of it was acknowledged already
            return
        if (
            not_advanced
            and rev.dupacks >= 2
            and last_ack == seq
            and t - rev.last_ack_time < _FAST_RETRANSMISSION_WINDOW
        ):
            notes.append(FAST_RETRANSMISSION)
            return
        window = self.first_rtt or _DEFAULT_OUT_OF_ORDER_WINDOW
        if (
            not_advanced
            and t - fwd.next_seq_time < window
            and nxt != ((seq + seglen + (1 if syn_fin else 0)) & MASK)
        ):
            notes.append(OUT_OF_ORDER)
            return
        if not_advanced:
            notes.append(RETRANSMISSION)

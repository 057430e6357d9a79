"""Zeek's connection summary: ``conn_state`` and ``history``, with Zeek's meanings.

Zeek (formerly Bro) writes one line per connection to ``conn.log``; two of its
columns have become the common vocabulary for "what happened on this TCP
connection", and ``l4kit replay`` computes both the way Zeek does. This module
re-implements, without copying, the rules in Zeek's sources:

* ``scripts/base/protocols/conn/main.zeek`` — ``conn_state()`` maps the two
  endpoints' coarse states to the words S0, S1, SF, REJ, S2, S3, RSTO, RSTR,
  RSTOS0, RSTRH, SH, SHR, OTH, and documents the history letters;
* ``src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`` — the per-endpoint
  state machine (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED,
  RESET: *Zeek's* states, not RFC 9293's) and ``update_history``;
* ``src/analyzer/protocol/tcp/TCP_Endpoint.cc`` and ``TCP_Reassembler.cc`` — the
  scaled letters (``c``, ``g``, ``t``, ``w``) and content gaps.

History letters (upper case when the originator sent the packet, lower case for
the responder):

====== ==================================================================
letter meaning, and how often it is recorded
====== ==================================================================
S / H  SYN without ACK / SYN+ACK; again whenever the SYN's relative sequence
       number differs from the previous SYN's of that side
A      a pure ACK (no SYN/FIN/RST, no payload); once per side
D      a packet with payload; once per side
F / R  FIN / RST; again whenever the FIN's end (seq + payload) / the RST's
       sequence number differs from the previous one of that side
C      bad checksum; at the 1st, 10th, 100th ... occurrence (the packet is then
       otherwise ignored, as Zeek ignores it)
G      a content gap: the peer acknowledged data never seen; scaled like C
T      a retransmission (payload that does not advance the sequence space);
       scaled like C
W      a zero window advertisement; scaled like C
I      FIN and RST together; once per side
Q      multi-flag: SYN with FIN or RST; once per side
^      the roles were flipped: the first packet's sender is the responder
====== ==================================================================

Differences from Zeek, on purpose: a checksum that Linux left to the NIC
(``offloaded``, always the case for kernel traffic captured on ``lo``) is not a
bad checksum here (Zeek flags it unless run with ``-C``); a connection's roles
are decided once, at its first packet (see :mod:`l4kit.replay.engine`), and not
flipped again by a later SYN/SYN-ACK reversal; sequence numbers are compared
modulo 2**32 without Zeek's 64-bit wrap counting (only matters past 4 GiB).
"""

from __future__ import annotations

import enum
from typing import Final

from l4kit.wire.flags import ACK_BIT as ACK
from l4kit.wire.flags import FIN_BIT as FIN
from l4kit.wire.flags import RST_BIT as RST
from l4kit.wire.flags import SYN_BIT as SYN
from l4kit.wire.seqnum import MASK, seq_diff, seq_ge, seq_gt, seq_lt

_TOO_LARGE_SEQ_DELTA: Final = 1 << 20  # Zeek's TOO_LARGE_SEQ_DELTA (1 MiB)


# History kinds that are recorded once per side (Zeek's HistoryMasks).
_SEEN_SYN: Final = 0x01
_SEEN_FIN: Final = 0x02
_SEEN_RST: Final = 0x04
_SEEN_FIN_RST: Final = 0x08
_SEEN_DATA: Final = 0x10
_SEEN_ACK: Final = 0x20
_SEEN_MULTI: Final = 0x40


class ZeekState(enum.IntEnum):
    """Zeek's coarse endpoint states (``TCP_ENDPOINT_*``), from one side's packets."""

    INACTIVE = 0  # nothing seen from this side
    SYN_SENT = 1  # SYN seen, no ACK
    SYN_ACK_SENT = 2  # SYN+ACK seen without the originator's SYN
    PARTIAL = 3  # data seen, no SYN (midstream)
    ESTABLISHED = 4
    CLOSED = 5  # FIN seen
    RESET = 6  # RST seen


# The same values as plain ints, for the per-packet comparisons.
INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6
_SYN_FIN_RST: Final = SYN | FIN | RST
# The members themselves, for the state machine (a member looked up on its class costs a
# descriptor call).
_Z_INACTIVE: Final = ZeekState.INACTIVE
_Z_SYN_SENT: Final = ZeekState.SYN_SENT
_Z_SYN_ACK_SENT: Final = ZeekState.SYN_ACK_SENT
_Z_PARTIAL: Final = ZeekState.PARTIAL
_Z_ESTABLISHED: Final = ZeekState.ESTABLISHED
_Z_CLOSED: Final = ZeekState.CLOSED
_Z_RESET: Final = ZeekState.RESET


def _advances(ack: int, acked: int) -> bool:
    """Whether ``ack`` moves the acknowledged point ``acked`` forward: it is past it,
    unless it is 0 and far away (Zeek distrusts an acknowledgment that jumps to 0)."""
    return seq_gt(ack, acked) and (ack != 0 or ((ack - acked) & MASK) <= _TOO_LARGE_SEQ_DELTA)


_SCALED_AT: Final = frozenset(10**k for k in range(20))
"""Zeek's ``ScaledHistoryEntry`` records its letter at the 1st, 10th, 100th ... event:
at counts that are powers of ten (a count per kind and side is all it needs)."""


class ZeekEndpoint:
    """What Zeek keeps per side to compute the state and the history."""

    __slots__ = (
        "ack_seq",
        "bad_checksums",
        "did_close",
        "fin_count",
        "fin_seq",
        "gaps",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "holes",
        "is_orig",
        "last_seq",
        "missed",
        "prev_state",
        "reassembled_to",
        "retransmissions",
        "rst_count",
        "seen",
        "start_seq",
        "state",
        "zero_windows",
    )

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = ZeekState.INACTIVE
        self.prev_state = ZeekState.INACTIVE
        self.start_seq = 0
        self.last_seq = 0  # one past the highest sequence number sent
        self.ack_seq = 0  # highest acknowledgment the peer sent for this side's data
        self.fin_count = 0
        self.rst_count = 0
        self.fin_seq = 0  # relative, one past the FIN
        self.hist_last_syn = 0
        self.hist_last_fin = 0
        self.hist_last_rst = 0
        self.seen = 0
        # Zeek's ``did_close``: the state machine has seen this side's FIN or RST.
        self.did_close = False
        # Zeek's ``missed_bytes`` for this side: octets of its content gaps.
        self.missed = 0
        # Events recorded as scaled history letters (C, T, W, G): how many so far.
        self.bad_checksums = 0
        self.retransmissions = 0
        self.zero_windows = 0
        self.gaps = 0
        # Reassembly, as far as gap detection needs it: relative sequence number up to
        # which this side's data is contiguous, and the blocks seen above a hole.
        self.reassembled_to = 1
        self.holes: list[tuple[int, int]] = []

    def set_state(self, state: ZeekState) -> None:
        if state != self.state:
            self.prev_state = self.state
            self.state = state

    def rel(self, seq: int) -> int:
        return (seq - self.start_seq) & MASK

    def size(self, peer: ZeekEndpoint) -> int:
        """Payload octets this side sent, from sequence numbers (Zeek's ``Size``)."""
        if (
            self.prev_state == ZeekState.SYN_SENT
            and self.state == ZeekState.RESET
            and peer.state == ZeekState.INACTIVE
            and self.rel(self.ack_seq) > 1
        ):
            return 0  # a half-open connection discovered and aborted
        last = seq_diff(self.last_seq, self.start_seq)
        acked = seq_diff(self.ack_seq, self.start_seq)
        size = max(last, acked, 0)
        if size:
            size -= 1  # the SYN octet
        if self.fin_count and size:
            size -= 1  # the FIN octet
        return size

    @property
    def clean(self) -> bool:
        return self.state == ZeekState.ESTABLISHED or (
            self.state == ZeekState.CLOSED and self.prev_state == ZeekState.ESTABLISHED
        )


class ZeekConnection:
    """The two endpoints and the history string of one connection.

    ``both_closed``: both sides' FIN or RST have reached the state machine. Zeek
    stops moving the connection's last time then (``TCPAnalyzer::DeliverPacket``
    updates it only ``if ( ! orig->did_close || ! resp->did_close )``, before the
    packet is processed), so conn.log's ``duration`` leaves out the ACK of the last
    FIN: the driver reads this before handing over each packet.
    """

    __slots__ = ("both_closed", "history", "orig", "resp")

    def __init__(self, flipped: bool = False) -> None:
        self.orig = ZeekEndpoint(True)
        self.resp = ZeekEndpoint(False)
        self.history: list[str] = ["^"] if flipped else []
        self.both_closed = False

    # ------------------------------------------------------------ history helpers

    def _once(self, ep: ZeekEndpoint, bit: int, letter: str) -> bool:
        """Zeek's ``CheckHistory``: record ``letter`` the first time; True if seen before."""
        if ep.seen & bit:
            return True
        ep.seen |= bit
        self.history.append(letter if ep.is_orig else letter.lower())
        return False

    def _add(self, ep: ZeekEndpoint, letter: str) -> None:
        self.history.append(letter if ep.is_orig else letter.lower())

    def _scaled(self, ep: ZeekEndpoint, count: int, letter: str) -> int:
        """One more event of a scaled kind, ``count`` before it; returns the new count."""
        count += 1
        if count in _SCALED_AT:
            self._add(ep, letter)
        return count

    # ----------------------------------------------------------------- packets

    def bad_checksum(self, is_orig: bool) -> None:
        """A packet with a bad checksum: recorded (``C``, scaled) and otherwise ignored."""
        ep = self.orig if is_orig else self.resp
        ep.bad_checksums = self._scaled(ep, ep.bad_checksums, "C")

    def packet(self, is_orig: bool, flags: int, seq: int, ack: int, payload_len: int, window: int) -> None:  # noqa: PLR0917
        """One packet with a good (or unverifiable) checksum, in capture order.

        Follows the order of Zeek's ``TCPAnalyzer::DeliverPacket``: endpoint
        initialisation, history, window, FIN/RST counters, acknowledgment, last
        sequence number (retransmissions), the state machine, then content gaps.
        Sequence numbers are compared with :mod:`l4kit.wire.seqnum`'s ``seq_*`` rules.
        """
        ep, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        control = flags & _SYN_FIN_RST
        if not control:
            # update_history for data and ACKs (the control flags' letters need the
            # endpoint initialised: _history, below). Endpoint initialisation comes first in
            # Zeek, but neither reads nor writes what this does.
            if payload_len:
                if not ep.seen & _SEEN_DATA:
                    ep.seen |= _SEEN_DATA
                    self.history.append("D" if is_orig else "d")
            elif flags & ACK and not ep.seen & _SEEN_ACK:
                ep.seen |= _SEEN_ACK
                self.history.append("A" if is_orig else "a")
        if not control and ep.state != INACTIVE:
            # The common case, data or an ACK from a side already seen: the same steps
            # as below with what cannot apply left out (the endpoint is initialised, the
            # state machine does not move, no counter of control flags changes).
            st = ep.state
            rel_seq = (seq - ep.start_seq) & MASK
            if window == 0 and peer.state != CLOSED and st != RESET:
                ep.zero_windows = self._scaled(ep, ep.zero_windows, "W")
            rel_ack = 0
            has_ack = flags & ACK
            if has_ack:
                if peer.state == INACTIVE:
                    rel_ack = 1
                    peer.start_seq = peer.ack_seq = peer.last_seq = (ack - 1) & MASK
                elif seq_ge(ack, peer.start_seq):
                    rel_ack = (ack - peer.start_seq) & MASK
                    if _advances(ack, peer.ack_seq):
                        peer.ack_seq = ack
            if st != RESET:  # update_last_seq
                end = (seq + payload_len) & MASK
                if seq_gt(end, ep.last_seq):
                    ep.last_seq = end
                elif payload_len:
                    ep.retransmissions = self._scaled(ep, ep.retransmissions, "T")
            if has_ack:
                if peer.fin_count and rel_ack >= peer.fin_seq:
                    rel_ack = peer.fin_seq - 1
                if rel_ack > peer.reassembled_to:
                    self._ack_received(peer, rel_ack)
            if payload_len and seq_ge(seq, ep.start_seq):
                reassembled = ep.reassembled_to
                if rel_seq <= reassembled < rel_seq + payload_len and not ep.holes:
                    ep.reassembled_to = rel_seq + payload_len
                else:
                    self._data_sent(ep, rel_seq, payload_len)
            return
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST

        seg_len = 0 if rst else payload_len  # data on a RST is not part of the stream
        if syn:
            seg_len += 1
        if fin:
            seg_len += 1
        end = (seq + seg_len) & MASK

        # init_endpoint
        st = ep.state
        if st == INACTIVE:
            if syn:
                ep.start_seq = ep.ack_seq = seq
                ep.last_seq = end
            else:
                ep.start_seq = ep.ack_seq = (seq - 1) & MASK  # as if a SYN had been seen
                ep.last_seq = seq  # so the first packet is not a retransmission
        elif syn and (
            (st in (SYN_SENT, SYN_ACK_SENT) and seq != ep.start_seq)
            or st in (ESTABLISHED, PARTIAL)
            or (st == RESET and ep.prev_state == INACTIVE)
        ):
            ep.start_seq = ep.ack_seq = seq
            ep.last_seq = end

        rel_seq = (seq - ep.start_seq) & MASK
        seq_underflow = seq_lt(seq, ep.start_seq)

        if control:  # update_history (data and ACKs: above)
            self._history(ep, flags, rel_seq, payload_len)

        # update_window: zero windows are interesting unless they come with or after a
        # RST, or after the peer's FIN.
        if window == 0 and not rst and peer.state != CLOSED and ep.state != RESET:
            ep.zero_windows = self._scaled(ep, ep.zero_windows, "W")

        if fin:
            ep.fin_count += 1
            ep.fin_seq = (rel_seq + seg_len) & MASK
        if rst:
            ep.rst_count += 1

        rel_ack = 0
        if flags & ACK:
            if peer.state == INACTIVE:
                rel_ack = 1
                peer.start_seq = peer.ack_seq = peer.last_seq = (ack - 1) & MASK
            elif seq_ge(ack, peer.start_seq):  # (an acknowledgment of what was before the start: 0)
                rel_ack = (ack - peer.start_seq) & MASK
                # Acknowledgments on RSTs are not trusted; nor one jumping to 0 from far away.
                if not rst and _advances(ack, peer.ack_seq):
                    peer.ack_seq = ack

        # update_last_seq
        delta_last = seq_diff(end, ep.last_seq)
        if (syn or rst) and (delta_last > _TOO_LARGE_SEQ_DELTA or delta_last < -_TOO_LARGE_SEQ_DELTA):
            pass
        elif fin and ep.last_seq == ((ep.start_seq + 1) & MASK):
            ep.last_seq = end
        elif ep.state == RESET:
            pass
        elif delta_last > 0:
            ep.last_seq = end
        elif payload_len > 0:
            ep.retransmissions = self._scaled(ep, ep.retransmissions, "T")

        if control or st == INACTIVE:  # otherwise Zeek's state machine changes nothing
            self._state_machine(ep, peer, is_orig, flags, payload_len)

        if flags & ACK:
            if peer.fin_count and rel_ack >= peer.fin_seq:
                rel_ack = peer.fin_seq - 1  # the FIN's own octet is not data
            if rel_ack > peer.reassembled_to:
                self._ack_received(peer, rel_ack)

        if payload_len > 0 and not rst and not seq_underflow:
            start = (rel_seq + 1) if syn else rel_seq
            if start <= ep.reassembled_to < start + payload_len and not ep.holes:
                ep.reassembled_to = start + payload_len  # in order: the common case
            else:
                self._data_sent(ep, start, payload_len)

    def _history(self, ep: ZeekEndpoint, flags: int, rel_seq: int, payload_len: int) -> None:
        """Zeek's ``update_history``."""
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._once(ep, _SEEN_FIN_RST, "I")
            else:
                self._once(ep, _SEEN_MULTI, "Q")
        elif bits == 1:
            if syn:
                letter = "H" if flags & ACK else "S"
                if self._once(ep, _SEEN_SYN, letter) and rel_seq != ep.hist_last_syn:
                    self._add(ep, letter)
                ep.hist_last_syn = rel_seq
            if fin:
                fin_end = (rel_seq + payload_len) & MASK  # a FIN's place is after its data
                if self._once(ep, _SEEN_FIN, "F") and fin_end != ep.hist_last_fin:
                    self._add(ep, "F")
                ep.hist_last_fin = fin_end
            if rst:
                if self._once(ep, _SEEN_RST, "R") and rel_seq != ep.hist_last_rst:
                    self._add(ep, "R")
                ep.hist_last_rst = rel_seq
        elif payload_len:
            self._once(ep, _SEEN_DATA, "D")
        elif flags & ACK:
            self._once(ep, _SEEN_ACK, "A")

    # ------------------------------------------------------------ state machine

    def _state_machine(
        self, ep: ZeekEndpoint, peer: ZeekEndpoint, is_orig: bool, flags: int, payload_len: int
    ) -> None:
        """Zeek's ``UpdateStateMachine`` (state changes only; events and weirds left out)."""
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        st = ep.state
        if fin or rst:
            # Every state but CLOSED and RESET reports a FIN or RST as a close
            # (``do_close``), and those two are only reached through one.
            ep.did_close = True
            self.both_closed = peer.did_close
        if st == _Z_INACTIVE:
            if syn:
                if is_orig:
                    ep.set_state(_Z_SYN_ACK_SENT if flags & ACK else _Z_SYN_SENT)
                else:
                    if peer.state == _Z_SYN_SENT:
                        peer.set_state(_Z_ESTABLISHED)
                    ep.set_state(_Z_ESTABLISHED)
            if fin:
                ep.set_state(_Z_CLOSED)
            if rst:
                ep.set_state(_Z_RESET)
            if ep.state == _Z_INACTIVE:  # no control flag moved it
                if not is_orig and payload_len == 0 and self.orig.state == _Z_SYN_SENT:
                    pass  # an ACK of the SYN before the SYN+ACK: not a partial connection
                elif flags & ACK and peer.state == _Z_ESTABLISHED:
                    ep.set_state(_Z_ESTABLISHED)  # the SYN was missed, the SYN+ACK seen
                else:
                    ep.set_state(_Z_PARTIAL)
        elif st in (_Z_SYN_SENT, _Z_SYN_ACK_SENT):
            if fin:
                ep.set_state(_Z_CLOSED)
            if rst:
                ep.set_state(_Z_RESET)
        elif st in (_Z_ESTABLISHED, _Z_PARTIAL):
            if syn and st == _Z_PARTIAL and peer.state == _Z_INACTIVE and not flags & ACK:
                ep.set_state(_Z_SYN_SENT)
            if fin and not rst:
                ep.set_state(_Z_CLOSED)
                if peer.state == _Z_RESET and peer.prev_state == _Z_CLOSED:
                    peer.set_state(_Z_CLOSED)  # FIN then RST from the peer: a normal close
            if rst:
                ep.set_state(_Z_RESET)
        elif st == _Z_CLOSED and rst and peer.state != _Z_CLOSED:
            ep.set_state(_Z_RESET)
        # RESET: nothing changes any more

    # ------------------------------------------------------------------- gaps

    def _data_sent(self, ep: ZeekEndpoint, rel_data_seq: int, length: int) -> None:
        """Reassembly bookkeeping for gap detection: only the ranges, never the bytes."""
        acked = ep.rel(ep.ack_seq)
        start = rel_data_seq
        end = rel_data_seq + length
        if start < acked:
            if end <= acked:
                return
            start = acked
        if start <= ep.reassembled_to:
            if end > ep.reassembled_to:
                ep.reassembled_to = end
                self._merge_blocks(ep)
        elif len(ep.holes) < 64:  # bounded: memory never grows with a hostile trace
            ep.holes.append((start, end))

    @staticmethod
    def _merge_blocks(ep: ZeekEndpoint) -> None:
        if not ep.holes:
            return
        ep.holes.sort()
        keep: list[tuple[int, int]] = []
        for start, end in ep.holes:
            if start <= ep.reassembled_to:
                ep.reassembled_to = max(ep.reassembled_to, end)
            else:
                keep.append((start, end))
        ep.holes = keep

    def _ack_received(self, ep: ZeekEndpoint, rel_ack: int) -> None:
        """The peer acknowledged ``ep``'s data up to ``rel_ack`` (``TCP_Reassembler::AckReceived``).

        Acknowledged octets that were never seen are a content gap; Zeek records
        it in the history only while both sides are established or closing cleanly
        (in other states RSTs and partial connections make false gaps).
        """
        if ep.fin_count and rel_ack >= ep.fin_seq:
            rel_ack = ep.fin_seq - 1  # the FIN's own octet is not data
        if rel_ack <= ep.reassembled_to:
            return
        peer = self.resp if ep.is_orig else self.orig
        clean = ep.clean and peer.clean
        ep.holes.sort()
        keep: list[tuple[int, int]] = []
        for start, end in ep.holes:
            if start >= rel_ack:
                keep.append((start, end))
                continue
            if start > ep.reassembled_to and clean:
                ep.gaps = self._scaled(ep, ep.gaps, "G")
                ep.missed += start - ep.reassembled_to  # Zeek's content_gap length
            ep.reassembled_to = max(ep.reassembled_to, end)
        if rel_ack > ep.reassembled_to:
            if clean:
                ep.gaps = self._scaled(ep, ep.gaps, "G")
                ep.missed += rel_ack - ep.reassembled_to
            ep.reassembled_to = rel_ack
        ep.holes = keep

    # ------------------------------------------------------------------ result

    def conn_state(self) -> str:
        """Zeek's ``conn_state()`` for TCP."""
        os_, rs = self.orig.state, self.resp.state
        o_inactive = os_ in (ZeekState.INACTIVE, ZeekState.PARTIAL)
        r_inactive = rs in (ZeekState.INACTIVE, ZeekState.PARTIAL)
        if rs == ZeekState.RESET:
            if os_ in (ZeekState.SYN_SENT, ZeekState.SYN_ACK_SENT) or (
                os_ == ZeekState.RESET and self.orig.size(self.resp) == 0 and self.resp.size(self.orig) == 0
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == ZeekState.RESET:
            if r_inactive:
                return "RSTOS0" if _looks_like_rstos0(self.history_string) else "OTH"
            return "RSTO"
        if rs == ZeekState.CLOSED and os_ == ZeekState.CLOSED:
            return "SF"
        if os_ == ZeekState.CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == ZeekState.CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == ZeekState.SYN_SENT and rs == ZeekState.INACTIVE:
            return "S0"
        if os_ == ZeekState.ESTABLISHED and rs == ZeekState.ESTABLISHED:
            return "S1"
        return "OTH"

    @property
    def history_string(self) -> str:
        return "".join(self.history)


def _looks_like_rstos0(history: str) -> bool:
    """Zeek's pattern ``^?S[^HAFGIQ]*R.*``: a SYN, then a RST, with no handshake
    or data from the originator in between."""
    h = history[1:] if history.startswith("^") else history
    if not h.startswith("S"):
        return False
    for ch in h[1:]:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


CONN_STATE_MEANINGS: Final[dict[str, str]] = {
    "S0": "connection attempt seen, no reply",
    "S1": "connection established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, close attempt by originator seen (no reply from responder)",
    "S3": "established, close attempt by responder seen (no reply from originator)",
    "RSTO": "established, originator aborted (sent a RST)",
    "RSTR": "responder sent a RST",
    "RSTOS0": "originator sent a SYN followed by a RST, no SYN-ACK from the responder",
    "RSTRH": "responder sent a SYN-ACK followed by a RST, no SYN from the originator",
    "SH": "originator sent a SYN followed by a FIN, no SYN-ACK from the responder",
    "SHR": "responder sent a SYN-ACK followed by a FIN, no SYN from the originator",
    "OTH": "no SYN seen, just midstream traffic",
}
"""Zeek's own one-line descriptions (conn/main.zeek), for tables and docs."""

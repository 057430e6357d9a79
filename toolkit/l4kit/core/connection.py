"""The TCP connection state machine: every state change of l4kit is checked here.

Theory of operation
===================

This module follows RFC 9293 §3.10.7 ("SEGMENT ARRIVES") step by step, with the
RFC 5961 hardening (§3 RST, §4 SYN, §5 ACK, §7 rate limit) folded in, for both
openers: the passive one (a listener's LISTEN -> SYN-RECEIVED) and the active one
(``Stack.connect``: CLOSED -> SYN-SENT, §3.10.7.3, simultaneous open included).

Three kinds of object hold the state of one local endpoint:

* **LISTEN** has no per-connection state at all. :func:`listen_action` decides what
  a segment for an unknown 4-tuple means (RFC 9293 §3.10.7.2); the listener acts on
  that decision (new connection, SYN cookie, RST, drop).
* a :class:`Connection` is a full TCB, from SYN-SENT or SYN-RECEIVED to CLOSED.
* a :class:`TimeWait` is what is left of a connection in TIME-WAIT: two sequence
  numbers and a deadline, a few dozen bytes, kept outside the connection table so
  that 1,000 short connections in a row do not fill it.

Every state change, the connection's (:meth:`Connection._set_state`) and the
listener's (a TIME-WAIT record ending, a connection reset after a bug), is made
through :func:`state_changed`, which checks it against :data:`TRANSITIONS`. A change
the table does not list is a bug and raises :class:`InvalidTransitionError`; the
listener catches every exception from a connection, throws away the half-built
output of that call, resets the connection and reports ``DropReason.INTERNAL_ERROR``,
so state is never half-updated and the driver never sees a traceback (the h11
rule). A ``match`` that lists every state ends in ``typing.assert_never``, so the
type checker proves no state is forgotten; one that handles only the states a step
can meet ends in ``case _: raise MissingCaseError(...)``: a state that a step has
not been written for is an error path, never a silent pass.

The transition table, as a diagram (``app`` = the application connected or
closed, ``FIN``/``ACK``/``RST`` = what was received, ``timer`` = a timeout)::

    CLOSED --app (connect)--> SYN-SENT --SYN-ACK--> ESTABLISHED
    SYN-SENT --SYN (simultaneous open)--> SYN-RECEIVED
    LISTEN --SYN--> SYN-RECEIVED --ACK--> ESTABLISHED
    SYN-RECEIVED --app--> FIN-WAIT-1
    LISTEN --ACK with a valid SYN cookie--> ESTABLISHED          (RFC 4987)
    SYN-RECEIVED --RST / new SYN--> LISTEN                      (RFC 9293 §3.10.7.4)
    ESTABLISHED --app--> FIN-WAIT-1 --ACK of FIN--> FIN-WAIT-2 --FIN--> TIME-WAIT
    FIN-WAIT-1 --FIN--> CLOSING --ACK of FIN--> TIME-WAIT
    ESTABLISHED --FIN--> CLOSE-WAIT --app--> LAST-ACK --ACK of FIN--> CLOSED
    TIME-WAIT --timer (2*MSL) / RST / new SYN--> CLOSED
    any state but LISTEN --RST / timer / abort--> CLOSED

Receiving a segment follows the RFC's order; each step is coded under a comment
with the RFC's ordinal ("first", "second", ...):

* before the RFC's steps, a retransmitted SYN in SYN-RECEIVED gets the same
  SYN-ACK again (Linux's ``tcp_check_req``, which makes a lost SYN-ACK recoverable);
* second, the RST bit (:func:`rst_verdict`): exact RCV.NXT resets, elsewhere in the
  window gets a challenge ACK, outside it is ignored (RFC 5961 §3.2);
* fourth, the SYN bit (:func:`syn_verdict`), taken before the acceptability test
  because RFC 5961 §4.2 answers a SYN in a synchronized state with a challenge ACK
  "irrespective of the sequence number";
* first, the acceptability test (:func:`segment_acceptable`): an unacceptable
  segment is answered with an ACK and dropped; that is how duplicate data is
  acknowledged without being delivered again;
* third (security) does not apply: l4kit keeps no security compartment;
* fifth, the ACK field: no ACK bit: drop; ACK outside [SND.UNA - MAX.SND.WND,
  SND.NXT]: challenge ACK (RFC 5961 §5.2); otherwise advance SND.UNA, measure the
  RTT (RFC 6298, Karn), update the send window (SND.WL1/SND.WL2 rule), and move
  FIN-WAIT-1, CLOSING and LAST-ACK on when our FIN is acknowledged;
* sixth, the URG bit, is not implemented: the urgent pointer is ignored (RFC 6093);
* seventh, the segment text: in order it goes to the application (each octet
  once), ahead of RCV.NXT it waits in the bounded
  :class:`~l4kit.core.reassembly.ReassemblyBuffer`, after the application has closed
  it earns a RST (RFC 9293 §3.6.1);
* eighth, the FIN bit: in order it moves ESTABLISHED to CLOSE-WAIT, FIN-WAIT-1 to
  CLOSING and FIN-WAIT-2 to TIME-WAIT and tells the application.

Sending: data is cut to min(effective MSS, send window, congestion window); the
last segment of what the application queued carries PSH. l4kit acknowledges every
segment at once (no delayed ACK: RFC 9293 §3.8.6.3 permits but does not require
it) and piggybacks the ACK on data when there is some. Window scaling and
timestamps (RFC 7323) and SACK (RFC 2018) are offered in a SYN and taken up from
the peer's SYN when :class:`~l4kit.core.config.StackConfig` allows them; a
connection rebuilt from a SYN cookie uses none of them.

Timers are data: each connection knows its next deadline (:meth:`Connection.next_deadline`)
and does its timed work when :meth:`Connection.on_timer` is called at or after it.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol, assert_never

from l4kit.core.app import Application
from l4kit.core.bugs import InvalidTransitionError, MissingCaseError
from l4kit.core.config import StackConfig
from l4kit.core.events import (
    ConnectionReset,
    DataReceived,
    DropReason,
    Event,
    LossRecovery,
    Output,
    PeerClosed,
    RecoveryStep,
    SegmentDropped,
    SegmentSent,
    StateChanged,
    TimerFired,
    TimerKind,
)
from l4kit.core.reassembly import ReassemblyBuffer
from l4kit.core.states import State
from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import (
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import HALF, MASK, MOD, SeqNum

# Flags we send, built once (IntFlag arithmetic costs about a microsecond a time) ...
ACK: Final = TcpFlags.ACK
SYN: Final = TcpFlags.SYN
SYN_ACK: Final = TcpFlags.SYN | TcpFlags.ACK
PSH_ACK: Final = TcpFlags.PSH | TcpFlags.ACK
FIN_ACK: Final = TcpFlags.FIN | TcpFlags.ACK
RST: Final = TcpFlags.RST
RST_ACK: Final = TcpFlags.RST | TcpFlags.ACK
# ... and the bits we test received flags against, as plain ints (``int(segment.flags)``).
_FIN: Final = int(TcpFlags.FIN)
_SYN: Final = int(TcpFlags.SYN)
_RST: Final = int(TcpFlags.RST)
_ACK: Final = int(TcpFlags.ACK)
# One NOP for every options tuple: a frozen dataclass is built in Python even when compiled.
_NOP: Final = NoOperation()
_NO_ACK: Final = SeqNum(0)  # the ACK field of a segment without ACK (immutable, so shared)

DEFAULT_MSS_IPV4: Final = 536
"""RFC 9293 §3.7.1 (and RFC 1122 §4.2.2.6): the send MSS when the SYN carried no MSS option."""
DEFAULT_MSS_IPV6: Final = 1220
"""RFC 8200 §5 minimum link MTU 1280 minus 40 (IPv6) and 20 (TCP), as RFC 9293 §3.7.1 derives it."""
MIN_SEND_MSS: Final = 88
"""A floor under the peer's MSS: Linux's ``TCP_MIN_MSS`` (include/net/tcp.h, 88 octets).
A peer announcing MSS 1 would otherwise make us cut each reply into one-octet
segments: forty header octets per data octet, and a cheap amplification."""
CLOCK_GRANULARITY: Final = 0.001
"""G of RFC 6298 §2: the drivers' clocks are at least this fine."""
SYN_RTO_AFTER_RETRANSMISSION: Final = 3.0
"""RFC 6298 §5.7: once a SYN(-ACK) was retransmitted, data starts with RTO >= 3 s."""
DUP_THRESH: Final = 3
"""DupThresh (RFC 5681 §3.2, RFC 6675 §2): duplicate ACKs, or segments SACKed above a hole,
that are taken to mean a loss rather than reordering."""
WC_DEL_ACK_T: Final = 0.2
"""WCDelAckT of RFC 8985 §7.2: the worst case of a peer's delayed ACK timer, which a probe
timeout for a lone segment must outwait (the 200 ms that RFC 9293 §3.8.6.3 allows)."""

# Where a connection is in loss recovery (Linux's tcp_ca_state: Open, Recovery, Loss).
_OPEN: Final = 0  # no loss being repaired
_RENO: Final = 1  # fast recovery without SACK information (RFC 5681 §3.2, NewReno: RFC 6582)
_SACK: Final = 2  # SACK-based loss recovery (RFC 6675, losses found by RACK: RFC 8985 §6)
_LOSS: Final = 3  # after a retransmission timeout, until SND.UNA passes the recovery point
CA_STATES: Final = ("open", "recovery", "recovery", "loss")
"""``ConnectionInfo.ca_state`` for each of the above (``disorder`` is told apart at run time)."""

# What ``retransmit_at`` is the deadline of: one timer, as in Linux, whichever is due first.
_RTO_TIMER: Final = 0  # RFC 6298 retransmission timeout
_PTO_TIMER: Final = 1  # RFC 8985 §7.2 probe timeout (a tail loss probe)
_REORDER_TIMER: Final = 2  # RFC 8985 §6.2 step 5: the reordering window of a possibly lost segment

# The states after a completed handshake in which the connection is still its own
# (TIME-WAIT belongs to the stack).
_HANDSHAKE_DONE: Final = frozenset(
    {
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
    }
)
# The states in which Connection._receive processes a segment (SYN-SENT has its own
# method; LISTEN, TIME-WAIT and CLOSED belong to the stack).
_RECEIVING: Final = _HANDSHAKE_DONE | {State.SYN_RECEIVED}

_Options = tuple[TcpOption, ...]
_SYN_LAYOUTS: Final[dict[tuple[int, bool, bool, bool, int], tuple[_Options, _Options]]] = {}
"""Connection._syn_options' memo: the options before and after the timestamps, by layout
(our MSS; timestamps, SACK and window scale on or off; our scale)."""

ILLEGAL_OPTION_KINDS: Final = frozenset({2, 3, 4, 5, 8})
"""Option kinds l4kit knows: one decoded as :class:`UnknownOption` had an illegal length."""

TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.LISTEN: frozenset({State.SYN_RECEIVED, State.ESTABLISHED}),
    State.SYN_SENT: frozenset({State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSED}),
    State.SYN_RECEIVED: frozenset({State.ESTABLISHED, State.LISTEN, State.CLOSED, State.FIN_WAIT_1}),
    State.ESTABLISHED: frozenset({State.FIN_WAIT_1, State.CLOSE_WAIT, State.CLOSED}),
    State.FIN_WAIT_1: frozenset({State.FIN_WAIT_2, State.CLOSING, State.CLOSED}),
    State.FIN_WAIT_2: frozenset({State.TIME_WAIT, State.CLOSED}),
    State.CLOSE_WAIT: frozenset({State.LAST_ACK, State.CLOSED}),
    State.CLOSING: frozenset({State.TIME_WAIT, State.CLOSED}),
    State.LAST_ACK: frozenset({State.CLOSED}),
    State.TIME_WAIT: frozenset({State.CLOSED}),
    State.CLOSED: frozenset({State.SYN_SENT}),
}
"""Every state change the core can make. Drawn as a diagram in the module docstring."""


def state_changed(  # noqa: PLR0917 - StateChanged's fields, in its order
    now: float, key: FourTuple, before: State, after: State, cause: Segment | None, why: str
) -> StateChanged:
    """The :class:`StateChanged` event of a change that :data:`TRANSITIONS` allows.

    Every state change of the core goes through here, the connection's and the
    listener's (a TIME-WAIT record that ends, a connection reset after a bug), so
    a change the table does not list raises :class:`InvalidTransitionError` wherever
    it is made.
    """
    if after not in TRANSITIONS[before]:
        raise InvalidTransitionError(f"{before} -> {after} is not a TCP state change ({why})")
    return StateChanged(now, key, before, after, cause, why)


class _Closed(Exception):  # noqa: N818 (control flow, not an error)
    """Internal control flow: the connection has just reached CLOSED (or LISTEN);
    stop processing the current input. Never escapes this module."""


class Sink:
    """Collects what one call into the core produces, in order."""

    __slots__ = ("now", "output")

    def __init__(self, output: Output, now: float) -> None:
        self.output = output
        self.now = now

    def send(
        self, key: FourTuple, segment: Segment, state: State, *, retransmission: bool = False, why: str = ""
    ) -> None:
        self.output.segments.append(segment)
        self.output.events.append(SegmentSent(self.now, key, segment, state, retransmission, why))

    def event(self, event: Event) -> None:
        self.output.events.append(event)

    def drop(
        self, key: FourTuple | None, segment: Segment | None, reason: DropReason, detail: str = ""
    ) -> None:
        self.output.events.append(SegmentDropped(self.now, key, segment, reason, detail))


# ----------------------------------------------------------------------------- helpers


def reply_segment(
    to: Segment,
    *,
    seq: SeqNum,
    ack: SeqNum | None,
    flags: TcpFlags,
    window: int,
    options: tuple[TcpOption, ...] = (),
    payload: bytes = b"",
) -> Segment:
    """A segment going back the way ``to`` came (addresses and ports swapped)."""
    return Segment(
        src=to.dst,
        dst=to.src,
        sport=to.dport,
        dport=to.sport,
        seq=seq,
        ack=ack if ack is not None else SeqNum(0),
        flags=flags,
        window=window,
        options=options,
        payload=payload,
    )


def reset_for(segment: Segment) -> Segment:
    """The RST that answers ``segment`` when no connection takes it (RFC 9293 §3.10.7.1).

    "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    <CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>." The caller must
    never call this for a segment that itself carries RST (§3.5.2: never answer a RST).
    """
    flags = int(segment.flags)
    if flags & _RST:
        raise ValueError("a RST is never answered with a RST (RFC 9293 §3.5.2)")
    if flags & _ACK:
        return reply_segment(segment, seq=segment.ack, ack=None, flags=RST, window=0)
    return reply_segment(segment, seq=SeqNum(0), ack=segment.seq + segment.seg_len, flags=RST_ACK, window=0)


def malformed_detail(segment: Segment) -> str | None:
    """Why the core refuses ``segment`` as malformed, or None if it does not.

    RFC 9293 §3.1 (MUST-7): an implementation must handle an illegal option length
    "without crashing"; the decoder keeps a known option kind with an illegal length
    as an :class:`UnknownOption`, and the core drops the segment rather than guess
    what the option meant. Port 0 is not a port anyone can connect from.
    """
    if segment.sport == 0 or segment.dport == 0:
        return "port 0"
    for option in segment.options:
        if isinstance(option, UnknownOption) and option.kind in ILLEGAL_OPTION_KINDS:
            return f"option kind {option.kind} with illegal length {len(option.data) + 2}"
    return None


def _syn_offer(syn: Segment) -> tuple[int | None, int | None, Timestamps | None, bool]:
    """What a SYN offers, in one pass over its options: (MSS, window scale, timestamps,
    SACK-permitted); the first option of each kind counts, as :class:`Segment`'s
    properties read them."""
    mss: int | None = None
    shift: int | None = None
    stamps: Timestamps | None = None
    sack_permitted = False
    for option in syn.options:
        if isinstance(option, Timestamps):
            if stamps is None:
                stamps = option
        elif isinstance(option, MaxSegmentSize):
            if mss is None:
                mss = option.value
        elif isinstance(option, WindowScale):
            if shift is None:
                shift = option.shift
        elif isinstance(option, SackPermitted):
            sack_permitted = True
    return mss, shift, stamps, sack_permitted


def window_shift(buffer: int) -> int:
    """The window scale that lets a 16-bit field cover ``buffer`` (RFC 7323 §2.3, at most 14)."""
    shift = 0
    while (buffer >> shift) > 65535 and shift < 14:
        shift += 1
    return shift


TIMESTAMPS_LENGTH: Final = 12
"""NOP, NOP, Timestamps: what RFC 7323's option takes from every segment's payload."""


def effective_send_mss(peer_mss: int | None, *, ipv6: bool, our_mss: int) -> int:
    """Eff.snd.MSS of RFC 9293 §3.7.1, bounded below by :data:`MIN_SEND_MSS`.

    ``our_mss`` (the MSS we advertise) stands for our own MTU limit (MMS_S).
    """
    if peer_mss is None:
        peer_mss = DEFAULT_MSS_IPV6 if ipv6 else DEFAULT_MSS_IPV4
    return max(min(peer_mss, our_mss), MIN_SEND_MSS)


class ListenAction(enum.Enum):
    """What LISTEN does with a segment for an unknown 4-tuple (RFC 9293 §3.10.7.2)."""

    IGNORE_RST = "ignore-rst"  # first: "An incoming RST should be ignored"
    RESET_ACK = "reset-ack"  # second: any ACK -> <SEQ=SEG.ACK><CTL=RST> (or a SYN cookie)
    OPEN = "open"  # third: SYN -> SYN-RECEIVED
    DROP_SYN_FIN = "drop-syn-fin"  # SYN+FIN: nonsense, dropped (as Linux does)
    DROP_OTHER = "drop-other"  # fourth: "any other control or text-bearing segment ... drop"


def listen_action(segment: Segment) -> ListenAction:
    """RFC 9293 §3.10.7.2, LISTEN STATE, in the RFC's order."""
    flags = int(segment.flags)
    if flags & _RST:
        return ListenAction.IGNORE_RST
    if flags & _ACK:
        return ListenAction.RESET_ACK
    if flags & _SYN:
        if flags & _FIN:
            return ListenAction.DROP_SYN_FIN
        return ListenAction.OPEN
    return ListenAction.DROP_OTHER


def syn_ack_for(syn: Segment, iss: SeqNum, *, mss: int, window: int) -> Segment:
    """``<SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>`` with our MSS (RFC 9293 §3.10.7.2, §3.7.1).

    The window of a SYN-ACK is never scaled (RFC 7323 §2.2), and l4kit offers no
    window scaling, SACK or timestamps, so MSS is the only option.
    """
    return reply_segment(
        syn,
        seq=iss,
        ack=syn.seq + 1,
        flags=SYN_ACK,
        window=window,
        options=(MaxSegmentSize(mss),),
    )


def segment_acceptable(seg_len: int, delta: int, rcv_wnd: int) -> bool:
    """The four cases of the acceptability test (RFC 9293 §3.10.7.4, first).

    ``delta`` is SEG.SEQ - RCV.NXT (signed, modulo 2**32)::

        Segment Length  Receive Window  Test
        0               0               SEG.SEQ = RCV.NXT
        0               >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
        >0              0               not acceptable
        >0              >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
                                        or RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
    """
    if seg_len == 0:
        return delta == 0 if rcv_wnd == 0 else 0 <= delta < rcv_wnd
    if rcv_wnd == 0:
        return False
    return 0 <= delta < rcv_wnd or 0 <= delta + seg_len - 1 < rcv_wnd


class RstVerdict(enum.Enum):
    """What a RST does to a synchronized connection or SYN-RECEIVED (RFC 5961 §3.2)."""

    RESET = "reset"  # SEG.SEQ = RCV.NXT exactly: the connection is reset
    CHALLENGE = "challenge"  # elsewhere in the window: challenge ACK, no reset
    IGNORE = "ignore"  # outside the window: dropped silently


def rst_verdict(delta: int, rcv_wnd: int) -> RstVerdict:
    """RFC 9293 §3.10.7.4 second, as RFC 5961 §3.2 tightens it; ``delta`` = SEG.SEQ - RCV.NXT.

    "If the RST bit is set and the sequence number exactly matches the next expected
    sequence number (RCV.NXT), then TCP MUST reset the connection"; "If the RST bit is
    set and the sequence number does not exactly match ... but is within the current
    receive window, TCP MUST send an acknowledgment (challenge ACK)"; otherwise
    "silently drop the segment".
    """
    if delta == 0:
        return RstVerdict.RESET
    if 0 < delta < rcv_wnd:
        return RstVerdict.CHALLENGE
    return RstVerdict.IGNORE


class SynVerdict(enum.Enum):
    """What a SYN does to a connection past LISTEN (RFC 9293 §3.10.7.4 fourth, RFC 5961 §4)."""

    CHALLENGE = "challenge"  # synchronized state: challenge ACK, whatever the sequence number
    UNACCEPTABLE = "unacceptable"  # SYN-RECEIVED, outside the window: ACK and drop
    BACK_TO_LISTEN = "back-to-listen"  # SYN-RECEIVED of a passive open: the TCB goes back to LISTEN
    REOPEN = "reopen"  # TIME-WAIT, a SYN above the old sequence space: a new incarnation


def syn_verdict(
    state: State, flags: int, delta: int, seg_len: int, rcv_wnd: int, *, passive: bool = True
) -> SynVerdict:
    """The SYN rule for ``state`` (a SYN-carrying segment; ``delta`` = SEG.SEQ - RCV.NXT).

    * SYN-RECEIVED of a passive open: an unacceptable one is answered with an ACK
      (first check); otherwise "If the connection was initiated with a passive OPEN,
      then return this connection to the LISTEN state" (of an active open: "handle
      per the directions for synchronized states");
    * TIME-WAIT: RFC 9293 §3.6.1 (MAY-2, from RFC 1122 §4.2.2.13; RFC 6191) lets a new
      SYN reopen the 4-tuple when its sequence number is above everything of the old
      incarnation;
    * every other synchronized state: RFC 5961 §4.2, a challenge ACK "irrespective of
      the sequence number".
    """
    if state is State.SYN_RECEIVED and passive:
        if not segment_acceptable(seg_len, delta, rcv_wnd):
            return SynVerdict.UNACCEPTABLE
        return SynVerdict.BACK_TO_LISTEN
    if state is State.TIME_WAIT and not flags & _ACK and delta > 0:
        return SynVerdict.REOPEN
    return SynVerdict.CHALLENGE


class _AckBudget:
    """Per-connection limit on challenge ACKs and ACKs for unacceptable segments.

    RFC 5961 §7 asks for a limit on challenge ACKs so that the mechanism cannot be
    turned into an ACK flood; l4kit counts them per connection in one-second
    windows. ACKs for out-of-window segments share the budget, as Linux's
    ``tcp_oow_rate_limited`` does, so a blind attacker cannot turn a connection into
    an ACK reflector either.
    """

    __slots__ = ("limit", "used", "window_start")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window_start = float("-inf")
        self.used = 0

    def take(self, now: float) -> bool:
        if now - self.window_start >= 1.0:
            self.window_start = now
            self.used = 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


# ----------------------------------------------------------------------------- Connection

SHUT_RD: Final = 0
"""``shutdown`` how: no more receiving (as the socket module's ``SHUT_RD``)."""
SHUT_WR: Final = 1
"""``shutdown`` how: no more sending; the FIN follows what is queued."""
SHUT_RDWR: Final = 2
"""``shutdown`` how: both."""

# poll(2) bits, with Linux's values, for :meth:`Connection.poll` (the core may not import select).
POLLIN: Final = 0x001
POLLOUT: Final = 0x004
POLLERR: Final = 0x008
POLLHUP: Final = 0x010
POLLRDHUP: Final = 0x2000


def socket_error(code: int, what: str = "") -> OSError:
    """The exception the socket module raises for ``code`` (``ConnectionRefusedError`` for
    ECONNREFUSED, ``BlockingIOError`` for EAGAIN ...), with its errno and strerror."""
    # OSError(errno, text) itself returns the subclass PEP 3151 maps the errno to.
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


class Owner(Protocol):
    """What a connection needs from the endpoint that holds it (:class:`~l4kit.core.stack.Stack`)."""

    def current_sink(self) -> Sink:
        """Where what a socket call produces goes (the output of the call into the core
        in progress, or what the driver collects with ``flush``)."""
        ...

    def after_call(self, conn: Connection) -> None:
        """A socket call outside a call into the core changed ``conn``: reschedule it,
        move it to TIME-WAIT or out of the table."""
        ...

    def admit(self, conn: Connection) -> bool:
        """Whether a passive connection's listening socket can take it now."""
        ...

    def established(self, conn: Connection) -> None:
        """A passive connection completed its handshake: give it its application, or
        queue it for ``accept``."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A read-only snapshot of one TCB (the fields Linux's ``TCP_INFO`` has, where l4kit
    has them), for notebooks, tests, the drill runner and ``--verbose`` views."""

    key: FourTuple
    state: State
    iss: SeqNum
    irs: SeqNum
    snd_una: SeqNum
    snd_nxt: SeqNum
    snd_wnd: int
    rcv_nxt: SeqNum
    rcv_wnd: int
    send_mss: int  # effective send MSS (tcpi_snd_mss)
    advertised_mss: int  # the MSS of our SYN (tcpi_advmss)
    rto: float
    srtt: float | None
    rttvar: float
    cwnd: int  # octets (Linux counts segments: tcpi_snd_cwnd * tcpi_snd_mss)
    ssthresh: int
    retransmissions: int  # of the segment now at the head (tcpi_retransmits)
    out_of_order_bytes: int
    out_of_order_segments: int
    send_buffered: int  # queued, not yet acknowledged
    receive_buffered: int  # delivered in order, not yet read
    bytes_in: int
    bytes_out: int
    from_syn_cookie: bool
    passive: bool
    nodelay: bool
    error: int  # the pending errno (SO_ERROR), 0 if none
    snd_wscale: int  # the peer's window scale (0: none, or not negotiated)
    rcv_wscale: int  # ours
    timestamps: bool  # RFC 7323 timestamps in use
    sack: bool  # RFC 2018 SACK permitted both ways
    sacked_bytes: int  # octets in flight the peer reported with SACK
    # loss recovery (Linux's tcpi_ca_state, tcpi_lost, tcpi_total_retrans, and the TcpExt
    # counters of nstat: TCPRenoRecovery, TCPSackRecovery, TCPLossProbes, TCPTimeouts ...)
    ca_state: str = "open"  # "open", "disorder" (no loss presumed yet), "recovery", "loss" (after an RTO)
    lost_bytes: int = 0  # octets presumed lost and not yet sent again
    total_retransmissions: int = 0  # segments sent again, over the connection's life
    fast_retransmits: int = 0  # fast recoveries begun by three duplicate ACKs (no SACK)
    sack_recoveries: int = 0  # recoveries begun from the SACK scoreboard
    loss_probes: int = 0  # tail loss probes sent
    loss_probe_recoveries: int = 0  # of those, the ones that repaired a loss
    timeouts: int = 0  # retransmission timeouts of data or FIN
    reordering_seen: bool = False  # RACK saw a segment delivered after a later one (RFC 8985 §6.2)


class Sent:
    """One segment of data (or our FIN) sent and not yet cumulatively acknowledged: an entry
    of the retransmission queue, which is also the SACK scoreboard and RACK's record
    (RFC 6675 §3, RFC 8985 §5.2). ``start``/``end`` are send offsets (the FIN takes one);
    ``sent_at`` is when it last went out."""

    __slots__ = ("end", "lost", "retransmits", "sacked", "sent_at", "start")

    def __init__(self, start: int, end: int, sent_at: float) -> None:
        self.start = start
        self.end = end
        self.sent_at = sent_at
        self.retransmits = 0
        self.sacked = False
        self.lost = False  # presumed lost and not sent again since

    def __repr__(self) -> str:
        marks = "".join(f" {f}" for f, on in (("SACKed", self.sacked), ("lost", self.lost)) if on)
        return f"Sent({self.start}-{self.end} at {self.sent_at:g} x{self.retransmits}{marks})"


class Connection:
    """One TCB (RFC 9293 §3.3.1) and the socket an application uses on it.

    The driver side (the stack) calls :meth:`on_segment` and :meth:`on_timer`; the
    application side calls the socket methods (:meth:`send`, :meth:`recv`,
    :meth:`shutdown`, :meth:`close`, :meth:`abort`) and reads the readiness
    (:attr:`readable`, :attr:`writable`, :attr:`connected`, :attr:`closed`,
    :meth:`poll`). Errors are the socket module's exceptions with its errno
    (:func:`socket_error`). An application may also be attached as ``handler``: the
    core then calls its ``on_readable(conn)`` once a segment's processing is complete,
    so that its answer leaves with the ACK (see :mod:`l4kit.core.app`).

    Sequence numbers are kept as *offsets* from the ISNs (plain, ever-growing ints:
    offset 0 is the SYN, 1 the first data octet) and turned into :class:`SeqNum` at
    the edge, so no comparison inside can be fooled by the 2**32 wrap.
    """

    __slots__ = (
        "_ack_budget",
        "_buf_start",
        "_ca",
        "_dsack_round",
        "_dupacks",
        "_eof_notified",
        "_fin_queued",
        "_fin_sent",
        "_last_ack_off",
        "_lost_bytes",
        "_min_rtt",
        "_owner",
        "_partial_acks",
        "_rack_end",
        "_rack_fack",
        "_rack_rtt",
        "_rack_ts",
        "_recover",
        "_reo_at",
        "_reo_mult",
        "_reo_persist",
        "_rescue_off",
        "_rtt_probe",
        "_rtx",
        "_sack_recent",
        "_sacked_bytes",
        "_sacked_segs",
        "_send_buf",
        "_small_off",
        "_stamp_options",
        "_stamps",
        "_syn_retransmitted",
        "_timer",
        "_tlp_end",
        "_tlp_retrans",
        "_tlp_start",
        "adv_mss",
        "bytes_in",
        "bytes_out",
        "close_why",
        "closed_by_app",
        "config",
        "counted_half_open",
        "cwnd",
        "error",
        "fast_retransmits",
        "fin_received",
        "fin_wait_2_at",
        "from_syn_cookie",
        "handler",
        "irs",
        "iss",
        "key",
        "last_progress",
        "loss_probe_recoveries",
        "loss_probes",
        "max_snd_wnd",
        "nodelay",
        "ooo",
        "passive",
        "persist_at",
        "persist_interval",
        "probes",
        "rcv_adv_off",
        "rcv_buf",
        "rcv_buffer_size",
        "rcv_nxt_off",
        "rcv_shift",
        "reordering_seen",
        "retransmit_at",
        "retries",
        "rto",
        "rttvar",
        "sack_ok",
        "sack_recoveries",
        "sacked",
        "scheduled",
        "send_mss",
        "shut_rd",
        "shut_wr",
        "snd_nxt_off",
        "snd_shift",
        "snd_una_off",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "srtt",
        "ssthresh",
        "state",
        "timeouts",
        "total_retransmissions",
        "ts_offset",
        "ts_ok",
        "ts_recent",
        "ws_ok",
    )

    def __init__(
        self,
        *,
        owner: Owner,
        key: FourTuple,
        config: StackConfig,
        iss: SeqNum,
        irs: SeqNum,
        peer_mss: int | None,
        peer_window: int,
        now: float,
        passive: bool,
        adv_mss: int | None = None,
    ) -> None:
        self._owner = owner
        self.key = key
        self.config = config
        self.state = State.LISTEN if passive else State.CLOSED
        self.passive = passive
        self.iss = iss
        self.irs = irs
        self.handler: Application | None = None
        self.closed_by_app = False  # close() was called: the handle is done, new data earns a RST
        self.shut_rd = False
        self.shut_wr = False
        self.fin_received = False  # the peer's FIN was processed (in order)
        self._eof_notified = False  # the handler was given its turn after the FIN
        self.error = 0  # pending errno, reported once by the next call (SO_ERROR)
        self.nodelay = False
        self.from_syn_cookie = False
        self.close_why = ""
        # send side (offsets from ISS: 0 = our SYN)
        self.adv_mss = adv_mss if adv_mss is not None else config.mss
        self.snd_una_off = 0
        self.snd_nxt_off = 0
        self.snd_wnd = peer_window
        self.max_snd_wnd = peer_window
        self.snd_wl1 = irs
        self.snd_wl2 = iss
        self._send_buf = bytearray()
        self._buf_start = 1  # offset of _send_buf[0]
        self._fin_queued = False
        self._fin_sent = False
        self._small_off = 0  # end of the last segment shorter than the MSS (Nagle)
        # RFC 7323 and RFC 2018, as negotiated on the SYNs (see _negotiate)
        self.ws_ok = False  # window scaling (offered, in SYN-SENT; agreed, after)
        self.snd_shift = 0  # the peer's window scale: its window fields are shifted left by it
        self.rcv_shift = 0  # ours
        self.ts_ok = False
        self.ts_recent = 0  # TS.Recent: the peer's TSval to echo
        # our TSval = milliseconds of now + this: per connection (RFC 7323 §5.4), from the
        # ISS (an RFC 6528 ISN is already unpredictable), so no clock is read
        self.ts_offset = (iss.value * 0x9E3779B1) & MASK
        self._stamps: Timestamps | None = None  # the latest timestamps option sent ...
        self._stamp_options: tuple[TcpOption, ...] = ()  # ... and the options it went in
        self._last_ack_off = 1  # Last.ACK.sent, as a receive offset (RFC 7323 §4.3)
        self.sack_ok = False  # offered in SYN-SENT, agreed after
        self.sacked: list[tuple[int, int]] = []  # the scoreboard: send offsets the peer SACKed
        self._sack_recent = -1  # receive offset of the latest out-of-order arrival (RFC 2018 §4)
        ipv6 = ":" in key.local.addr
        self.send_mss = effective_send_mss(peer_mss, ipv6=ipv6, our_mss=self.adv_mss)
        # RFC 5681 §3.1 / RFC 6928: initial window min(10*MSS, max(2*MSS, 14600))
        self.cwnd = min(10 * self.send_mss, max(2 * self.send_mss, 14600))
        self.ssthresh = 1 << 30
        # loss recovery: the retransmission queue, RFC 5681/6582/6675 state, RACK-TLP (RFC 8985)
        self._rtx: list[Sent] = []  # what is sent and not cumulatively acknowledged, in order
        self._sacked_bytes = 0  # octets of _rtx entries SACKed
        self._sacked_segs = 0  # and how many entries (RACK.segs_sacked)
        self._lost_bytes = 0  # octets of _rtx entries presumed lost and not sent again
        self._ca = _OPEN
        self._recover = 0  # the recovery point ("recover", RecoveryPoint): SND.NXT when it began
        self._dupacks = 0
        self._partial_acks = 0  # NewReno's partial ACKs in this recovery (RFC 6582 §3.2 step 5)
        self._rescue_off = 0  # RescueRxt (RFC 6675 §4, NextSeg rule 4)
        self._timer = _RTO_TIMER  # what retransmit_at is the deadline of
        self._reo_at = 0.0  # RACK's reordering timer (0: not armed)
        self._rack_ts = -1.0  # RACK.xmit_ts, RACK.end_seq, RACK.rtt: the latest segment delivered
        self._rack_end = 0
        self._rack_rtt = 0.0
        self._rack_fack = 0  # RACK.fack: the highest end delivered
        self._min_rtt = float("inf")  # RACK.min_RTT
        self.reordering_seen = False  # RACK.reordering_seen
        self._reo_mult = 1  # RACK.reo_wnd_mult, RACK.reo_wnd_persist, RACK.dsack_round
        self._reo_persist = 0
        self._dsack_round = 0
        self._tlp_end = 0  # TLP.end_seq (0: no probe outstanding), TLP.is_retrans
        self._tlp_start = 0
        self._tlp_retrans = False
        self.total_retransmissions = 0
        self.fast_retransmits = 0
        self.sack_recoveries = 0
        self.loss_probes = 0
        self.loss_probe_recoveries = 0
        self.timeouts = 0
        # receive side (offsets from IRS: 0 = the peer's SYN)
        self.rcv_nxt_off = 1
        self.rcv_buf = bytearray()  # in order, not yet read by the application
        self.rcv_buffer_size = config.window
        self.rcv_adv_off = 1 + config.window  # the right edge of the window last advertised
        self.ooo = ReassemblyBuffer(
            max_bytes=config.max_out_of_order_bytes, max_segments=config.max_out_of_order_segments
        )
        # timers (RFC 6298)
        self.rto = config.initial_rto
        self.srtt: float | None = None
        self.rttvar = 0.0
        self._rtt_probe: tuple[int, float] | None = None
        self.retransmit_at: float | None = None
        self.retries = 0
        self._syn_retransmitted = False
        self.persist_at: float | None = None
        self.persist_interval = 0.0
        self.probes = 0
        self.last_progress = now
        self.fin_wait_2_at: float | None = None
        self.scheduled: float | None = None  # the deadline the stack's heap knows about
        self.counted_half_open = False  # the stack counts it against max_half_open
        self._ack_budget = _AckBudget(config.challenge_acks_per_second)
        self.bytes_in = 0
        self.bytes_out = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def passive_open(
        cls,
        owner: Owner,
        syn: Segment,
        *,
        iss: SeqNum,
        config: StackConfig,
        now: float,
        sink: Sink,
        adv_mss: int | None = None,
    ) -> Connection:
        """LISTEN + SYN -> SYN-RECEIVED, SYN-ACK sent (RFC 9293 §3.10.7.2, third).

        "Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be selected and
        a SYN segment sent of the form <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>". Data on
        the SYN is not acknowledged (it would have to be held until the handshake
        completes; Linux without TCP Fast Open discards it too): the peer sends it again.
        """
        peer_mss, peer_shift, stamps, sack_permitted = _syn_offer(syn)
        conn = cls(
            owner=owner,
            key=syn.key,
            config=config,
            iss=iss,
            irs=syn.seq,
            peer_mss=peer_mss,
            peer_window=syn.window,
            now=now,
            passive=True,
            adv_mss=adv_mss,
        )
        conn._set_state(State.SYN_RECEIVED, syn, "SYN received (passive open)", sink)
        config_ = conn.config
        if config_.window_scale and peer_shift is not None:
            conn.ws_ok = True
            conn.snd_shift = min(peer_shift, 14)  # RFC 7323 §2.3: above 14 is taken as 14
            conn.rcv_shift = window_shift(conn.rcv_buffer_size)
        if config_.timestamps and stamps is not None:
            conn.ts_ok = True
            conn.ts_recent = stamps.tsval
        conn.sack_ok = config_.sack and sack_permitted
        conn._options_agreed(peer_mss, syn.is_ipv6)
        conn._send_syn(SYN_ACK, now, sink, "SYN-ACK")
        return conn

    @classmethod
    def active_open(
        cls,
        owner: Owner,
        key: FourTuple,
        *,
        iss: SeqNum,
        config: StackConfig,
        now: float,
        sink: Sink,
        adv_mss: int | None = None,
    ) -> Connection:
        """OPEN, active (RFC 9293 §3.10.1): CLOSED -> SYN-SENT, ``<SEQ=ISS><CTL=SYN>`` sent."""
        conn = cls(
            owner=owner,
            key=key,
            config=config,
            iss=iss,
            irs=SeqNum(0),
            peer_mss=None,
            peer_window=0,
            now=now,
            passive=False,
            adv_mss=adv_mss,
        )
        conn._set_state(State.SYN_SENT, None, "connect (active open)", sink)
        conn.ws_ok = config.window_scale
        conn.rcv_shift = window_shift(conn.rcv_buffer_size) if config.window_scale else 0
        conn.ts_ok = config.timestamps
        conn.sack_ok = config.sack
        conn._send_syn(SYN, now, sink, "SYN")
        return conn

    def _send_syn(self, flags: TcpFlags, now: float, sink: Sink, why: str) -> None:
        """Our SYN (or SYN-ACK) with its options, timed for an RTT sample and retransmitted
        until acknowledged: what both opens send first."""
        self.snd_nxt_off = 1
        self._rtt_probe = (1, now)
        self._send(sink, flags, 0, options=self._syn_options(now), why=why)
        self.retransmit_at = now + self.rto

    @classmethod
    def from_cookie(
        cls,
        owner: Owner,
        ack: Segment,
        *,
        iss: SeqNum,
        peer_mss: int,
        config: StackConfig,
        now: float,
        sink: Sink,
        adv_mss: int | None = None,
    ) -> Connection:
        """LISTEN + the ACK of a cookie SYN-ACK -> ESTABLISHED (RFC 4987 §3.6).

        The TCB is rebuilt from the ACK alone: IRS = SEG.SEQ - 1, ISS = SEG.ACK - 1
        (the cookie), the MSS from the cookie. The caller then processes the ACK
        itself with :meth:`on_segment`, which updates the window and delivers any data.
        """
        conn = cls(
            owner=owner,
            key=ack.key,
            config=config,
            iss=iss,
            irs=ack.seq - 1,
            peer_mss=peer_mss,
            peer_window=ack.window,
            now=now,
            passive=True,
            adv_mss=adv_mss,
        )
        conn.from_syn_cookie = True
        conn.snd_wl1 = ack.seq - 1  # so the window update of this very ACK applies
        conn.snd_una_off = conn.snd_nxt_off = 1
        conn._set_state(State.ESTABLISHED, ack, "ACK with a valid SYN cookie (RFC 4987 §3.6)", sink)
        owner.established(conn)
        return conn

    # ------------------------------------------------------------------ views

    @property
    def snd_una(self) -> SeqNum:
        return self.iss + self.snd_una_off

    @property
    def snd_nxt(self) -> SeqNum:
        return self.iss + self.snd_nxt_off

    @property
    def rcv_nxt(self) -> SeqNum:
        return self.irs + self.rcv_nxt_off

    @property
    def rcv_wnd(self) -> int:
        """RCV.WND: what is left of the window last advertised (its right edge never moves left)."""
        window = self.rcv_adv_off - self.rcv_nxt_off
        return window if window > 0 else 0

    @property
    def local(self) -> Endpoint:
        return self.key.local

    @property
    def remote(self) -> Endpoint:
        return self.key.remote

    @property
    def _data_end(self) -> int:
        """Send offset just past the last octet the application queued."""
        return self._buf_start + len(self._send_buf)

    @property
    def _fin_off(self) -> int:
        return self._data_end

    def info(self) -> ConnectionInfo:
        """A snapshot of the TCB (``getsockopt(TCP_INFO)``)."""
        return ConnectionInfo(
            key=self.key,
            state=self.state,
            iss=self.iss,
            irs=self.irs,
            snd_una=self.snd_una,
            snd_nxt=self.snd_nxt,
            snd_wnd=self.snd_wnd,
            rcv_nxt=self.rcv_nxt,
            rcv_wnd=self.rcv_wnd,
            send_mss=self.send_mss,
            advertised_mss=self.adv_mss,
            rto=self.rto,
            srtt=self.srtt,
            rttvar=self.rttvar,
            cwnd=self.cwnd,
            ssthresh=self.ssthresh,
            retransmissions=self.retries,
            out_of_order_bytes=self.ooo.held_bytes,
            out_of_order_segments=self.ooo.segments,
            send_buffered=len(self._send_buf),
            receive_buffered=len(self.rcv_buf),
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            from_syn_cookie=self.from_syn_cookie,
            passive=self.passive,
            nodelay=self.nodelay,
            error=self.error,
            snd_wscale=self.snd_shift,
            rcv_wscale=self.rcv_shift,
            timestamps=self.ts_ok,
            sack=self.sack_ok,
            sacked_bytes=sum(end - start for start, end in self.sacked),
            ca_state=self.ca_state,
            lost_bytes=self._lost_bytes,
            total_retransmissions=self.total_retransmissions,
            fast_retransmits=self.fast_retransmits,
            sack_recoveries=self.sack_recoveries,
            loss_probes=self.loss_probes,
            loss_probe_recoveries=self.loss_probe_recoveries,
            timeouts=self.timeouts,
            reordering_seen=self.reordering_seen,
        )

    @property
    def ca_state(self) -> str:
        """Where loss recovery stands, in Linux's words (``tcpi_ca_state``): ``open``;
        ``disorder`` (duplicate ACKs or SACKed data, no loss presumed yet); ``recovery`` (fast
        or SACK-based recovery); ``loss`` (after a retransmission timeout)."""
        if self._ca == _OPEN and (self._dupacks or self.sacked):
            return "disorder"
        return CA_STATES[self._ca]

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`on_timer` has work to do (None: no timer armed)."""
        best: float | None = None
        for t in (self.retransmit_at, self.persist_at, self.fin_wait_2_at, self._idle_at()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _idle_at(self) -> float | None:
        timeout = self.config.idle_timeout
        if timeout is None or self.state in (State.SYN_SENT, State.SYN_RECEIVED, State.CLOSED, State.LISTEN):
            return None
        return self.last_progress + timeout

    # ------------------------------------------------------------------ readiness

    @property
    def readable(self) -> bool:
        """:meth:`recv` would not block: data, the peer's FIN, an error, or a dead connection."""
        return bool(self.rcv_buf) or self.fin_received or self.error != 0 or self.state is State.CLOSED

    @property
    def writable(self) -> bool:
        """:meth:`send` would not block: room in the send buffer, or an error to report."""
        if self.error != 0 or self.state is State.CLOSED:
            return True
        return (
            self.state in (State.ESTABLISHED, State.CLOSE_WAIT)
            and not self.shut_wr
            and len(self._send_buf) < self.config.max_send_buffer
        )

    @property
    def connected(self) -> bool:
        """The handshake completed and the connection was not reset or timed out."""
        return self.state in _HANDSHAKE_DONE or self.state is State.TIME_WAIT

    @property
    def closed(self) -> bool:
        """Nothing more will happen on this connection (CLOSED, or TIME-WAIT: our side is done)."""
        return self.state in (State.CLOSED, State.TIME_WAIT)

    def poll(self) -> int:
        """``poll(2)``'s revents for this socket: :data:`POLLIN`, :data:`POLLOUT`,
        :data:`POLLERR`, :data:`POLLHUP`, :data:`POLLRDHUP`, as Linux sets them."""
        events = 0
        if self.readable:
            events |= POLLIN
        if self.writable and self.state not in (State.SYN_SENT, State.SYN_RECEIVED):
            events |= POLLOUT
        if self.error != 0:
            events |= POLLERR
        if self.fin_received or self.shut_rd:
            events |= POLLRDHUP
        if self.state is State.CLOSED or (self.fin_received and self.shut_wr):
            events |= POLLHUP
        return events

    # ------------------------------------------------------------------ state changes

    def _set_state(self, new: State, cause: Segment | None, why: str, sink: Sink) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:  # state_changed's check, written out: once a segment
            raise InvalidTransitionError(f"{old} -> {new} is not a TCP state change ({why})")
        sink.event(StateChanged(sink.now, self.key, old, new, cause, why))
        self.state = new
        if new is State.FIN_WAIT_2:
            self.fin_wait_2_at = sink.now + self.config.fin_wait_2_timeout
        if new in (State.CLOSED, State.LISTEN, State.TIME_WAIT):
            self.retransmit_at = self.persist_at = self.fin_wait_2_at = None
            self.close_why = why

    # ------------------------------------------------------------------ sending

    def _tsval(self, now: float) -> int:
        """Our TSval: a millisecond clock (RFC 7323 §5.4 asks for 1 ms to 1 s a tick)."""
        return (int(now * 1000) + self.ts_offset) & MASK

    def _syn_options(self, now: float) -> tuple[TcpOption, ...]:
        """The options of our SYN (what we offer) or SYN-ACK (what was agreed): MSS (RFC 9293
        §3.7.1), SACK-permitted (RFC 2018), timestamps and window scale (RFC 7323), laid out
        as Linux lays them out, each group on a 4-octet boundary."""
        # Only the timestamps differ from one SYN to the next: the options around them are
        # built once for each layout (a handful per stack: the MSS and scale are the config's).
        layout = (self.adv_mss, self.ts_ok, self.sack_ok, self.ws_ok, self.rcv_shift)
        around = _SYN_LAYOUTS.get(layout)
        if around is None:
            if len(_SYN_LAYOUTS) >= 64:
                _SYN_LAYOUTS.clear()
            before: tuple[TcpOption, ...] = (MaxSegmentSize(self.adv_mss),)
            if self.ts_ok:
                before += (SackPermitted(),) if self.sack_ok else (_NOP, _NOP)
            elif self.sack_ok:
                before += (_NOP, _NOP, SackPermitted())
            after: tuple[TcpOption, ...] = (_NOP, WindowScale(self.rcv_shift)) if self.ws_ok else ()
            around = _SYN_LAYOUTS[layout] = (before, after)
        before, after = around
        if not self.ts_ok:
            return before + after
        stamps = Timestamps(self._tsval(now), self.ts_recent if self.state is not State.SYN_SENT else 0)
        return (*before, stamps, *after)

    def _options_agreed(self, peer_mss: int | None, ipv6: bool) -> None:
        """The peer's SYN says what both sides use: the MSS, less the timestamps' 12 octets
        when they are on every segment (RFC 9293 §3.7.1 counts options in the header), and
        the initial window from it."""
        self.send_mss = effective_send_mss(peer_mss, ipv6=ipv6, our_mss=self.adv_mss)
        if self.ts_ok:
            self.send_mss -= TIMESTAMPS_LENGTH
        # RFC 6928 §2 (and RFC 5681 §3.1): after a lost SYN the initial window is one segment.
        self.cwnd = (
            self.send_mss
            if self._syn_retransmitted
            else min(10 * self.send_mss, max(2 * self.send_mss, 14600))
        )

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: the block holding the latest out-of-order arrival first, then the
        others (at most 3 beside timestamps, 4 without), as sequence numbers. A FIN held
        out of order counts as the octet of sequence space it takes (as Linux reports it),
        so that a sender learns that what came before it is missing."""
        ranges = self.ooo.ranges()
        fin = self.ooo.fin_offset
        if fin is not None:
            if ranges and ranges[-1][1] == fin:
                ranges[-1] = (ranges[-1][0], fin + 1)
            else:
                ranges.append((fin, fin + 1))
        recent = self._sack_recent
        ranges.sort(key=lambda r: (not r[0] <= recent < r[1], -r[0]))
        base = self.irs.value
        limit = 3 if self.ts_ok else 4
        return tuple(((base + start) & MASK, (base + end) & MASK) for start, end in ranges[:limit])

    def _advertise(self) -> int:
        """The window to put in a segment we send, moving the right edge on when there is
        room enough (it never moves left: RFC 9293 §3.8.6, SHLD-14)."""
        free = self.rcv_buffer_size - len(self.rcv_buf)
        # Receiver silly window avoidance (RFC 9293 §3.8.6.2.2, MUST-39): the right edge
        # moves on only when that adds at least min(half the buffer, one MSS), so that the
        # peer is never offered a sliver of window at a time.
        if free - (self.rcv_adv_off - self.rcv_nxt_off) >= min(self.rcv_buffer_size // 2, self.send_mss):
            self.rcv_adv_off = self.rcv_nxt_off + free
        # RFC 7323 §2.3: the field carries the window shifted right by our scale.
        return min((self.rcv_adv_off - self.rcv_nxt_off) >> self.rcv_shift, 65535)

    def _segment(
        self, flags: TcpFlags, seq_off: int, now: float, payload: bytes, options: tuple[TcpOption, ...] | None
    ) -> Segment:
        """The segment ``<SEQ=ISS+seq_off><ACK=RCV.NXT>`` with ``flags`` (no ACK field unless
        ``flags`` has ACK); ``options`` None: the ones every segment of this connection
        carries (timestamps, SACK blocks). A RST advertises no window."""
        local, remote = self.key
        bits = int(flags)
        if bits & _SYN:
            # The window of a SYN or SYN-ACK is never scaled (RFC 7323 §2.2).
            window = self.rcv_buffer_size if self.rcv_buffer_size < 65535 else 65535
        elif bits & _RST:
            window = 0
        else:
            window = self._advertise()
        if options is None:
            options = ()
            if self.ts_ok and not bits & _RST:
                # RFC 7323 §3.2: on every segment once agreed (a RST may go without). The
                # segments sent in one millisecond with one TS.Recent share one option tuple.
                tsval = self._tsval(now)
                stamps = self._stamps
                if stamps is None or stamps.tsval != tsval or stamps.tsecr != self.ts_recent:
                    stamps = self._stamps = Timestamps(tsval, self.ts_recent)
                    self._stamp_options = (_NOP, _NOP, stamps)
                options = self._stamp_options
            if self.sack_ok and self.ooo and not bits & (_RST | _SYN):
                # RFC 2018 §4: SACK on every ACK while data is held out of order, data
                # segments included (the peer may be sending too); a data segment carries
                # the blocks that fit beside its payload (_transmit leaves room for them).
                blocks = self._sack_blocks()
                if payload:
                    fit = (self.send_mss - len(payload) - 4) // 8
                    blocks = blocks[:fit] if fit > 0 else ()
                if blocks:
                    options += (_NOP, _NOP, Sack(blocks))
        if bits & _ACK:
            self._last_ack_off = self.rcv_nxt_off
            ack = SeqNum(self.irs.value + self.rcv_nxt_off)  # RCV.NXT
        else:
            ack = _NO_ACK
        return Segment(
            src=local.addr,
            dst=remote.addr,
            sport=local.port,
            dport=remote.port,
            seq=SeqNum(self.iss.value + seq_off),
            ack=ack,
            flags=flags,
            window=window,
            options=options,
            payload=payload,
        )

    def _send(
        self,
        sink: Sink,
        flags: TcpFlags,
        seq_off: int,
        *,
        payload: bytes = b"",
        options: tuple[TcpOption, ...] | None = None,
        retransmission: bool = False,
        why: str = "",
    ) -> None:
        segment = self._segment(flags, seq_off, sink.now, payload, options)
        sink.send(self.key, segment, self.state, retransmission=retransmission, why=why)

    def _send_ack(self, sink: Sink, why: str = "") -> None:
        """``<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>``."""
        self._send(sink, ACK, self.snd_nxt_off, why=why)

    def _reply_with_ack(
        self, segment: Segment, sink: Sink, reason: DropReason, why: str, detail: str = ""
    ) -> None:
        """Drop ``segment``, answering it with an ACK unless the budget is spent (RFC 5961 §7)."""
        if self._ack_budget.take(sink.now):
            self._send_ack(sink, why)
            sink.drop(self.key, segment, reason, detail)
        else:
            sink.drop(self.key, segment, DropReason.CHALLENGE_ACK_LIMITED, f"{reason.value}: {detail or why}")

    def _transmit(self, now: float, sink: Sink, *, probe: bool = False) -> None:
        """Send what the windows allow: segments presumed lost first (RFC 6675 §4 NextSeg,
        rule 1), then new data, then the FIN once all data is out. ``probe``: one segment of
        new data whatever the congestion window says (a tail loss probe, RFC 8985 §7.3)."""
        match self.state:
            case State.ESTABLISHED | State.CLOSE_WAIT | State.FIN_WAIT_1 | State.LAST_ACK | State.CLOSING:
                pass
            case (
                State.SYN_SENT
                | State.SYN_RECEIVED
                | State.FIN_WAIT_2
                | State.TIME_WAIT
                | State.CLOSED
                | State.LISTEN
            ):
                return  # nothing of ours may be sent (yet / any more)
            case _:
                assert_never(self.state)
        if (
            not probe
            and not self._lost_bytes
            and self._ca != _SACK
            and self.snd_nxt_off == self._buf_start + len(self._send_buf)
            and (self._fin_sent or not self._fin_queued)
        ):
            # Nothing to send or resend (an ACK of everything, say): what the rest of this
            # method would do then, without its arithmetic. It runs after most segments.
            self.persist_at = None
            self.probes = 0
            return
        if self._lost_bytes and not probe:
            self._retransmit_lost(now, sink)
        mss = self.send_mss
        if self.sack_ok and self.ooo:
            mss -= 4 + 8 * len(self._sack_blocks())  # room for the SACK option (RFC 2018 §3)
        # The congestion window bounds the octets in the network: the flight, less what the
        # peer SACKed and what is presumed lost (RFC 6675 §4, pipe; without SACK or losses,
        # the flight itself).
        limit = self.cwnd + self._sacked_bytes + self._lost_bytes
        if self._dupacks and self._ca == _OPEN and not self.sacked:
            # Limited transmit (RFC 3042 §2): the first two duplicate ACKs each let one new
            # segment out beyond the congestion window, so that a small window still gets
            # the three duplicate ACKs a fast retransmit needs. With SACK, each SACKed
            # segment leaves the pipe, which does the same.
            limit += min(self._dupacks, 2) * mss
        if probe:
            limit = self.snd_nxt_off - self.snd_una_off + mss
        data_end = self._data_end
        sent = False
        while self.snd_nxt_off < data_end:
            in_flight = self.snd_nxt_off - self.snd_una_off
            room = min(self.snd_wnd, limit) - in_flight
            if room <= 0:
                break
            queued = data_end - self.snd_nxt_off
            size = min(queued, mss, room)
            if size < mss and in_flight > 0 and not probe:
                if size < queued:
                    # Sender silly window avoidance (RFC 9293 §3.8.6.2.1, MUST-38): the window
                    # cuts the segment short; wait for a full one, or for at least half the
                    # largest window the peer offered, while an ACK is still to come.
                    if size < self.max_snd_wnd // 2:
                        break
                elif not self.nodelay and self._small_off > self.snd_una_off:
                    # Nagle (RFC 9293 §3.7.4, SHLD-7) in Minshall's variant, as Linux: the tail
                    # of the queue waits while an earlier short segment is unacknowledged.
                    break
            start = self.snd_nxt_off - self._buf_start
            payload = bytes(self._send_buf[start : start + size])
            last = self.snd_nxt_off + size == data_end
            # PSH on the segment that empties the queue (RFC 9293 §3.9.1, the "push" of a SEND)
            self._send(
                sink, PSH_ACK if last else ACK, self.snd_nxt_off, payload=payload, why="TLP" if probe else ""
            )
            self._rtx.append(Sent(self.snd_nxt_off, self.snd_nxt_off + size, now))
            self.snd_nxt_off += size
            self.bytes_out += size
            if size < mss:
                self._small_off = self.snd_nxt_off
            if self._rtt_probe is None:
                self._rtt_probe = (self.snd_nxt_off, now)
            sent = True
            if probe:
                break
        # The FIN occupies one sequence number, so like data it needs one octet of
        # window (a FIN past a zero window is not acceptable, RFC 9293 §3.10.7.4).
        if (
            self._fin_queued
            and not self._fin_sent
            and self.snd_nxt_off == data_end
            and not (probe and sent)
            and min(self.snd_wnd, limit) - (self.snd_nxt_off - self.snd_una_off) >= 1
        ):
            self._send(sink, FIN_ACK, self.snd_nxt_off, why="TLP" if probe else "FIN")
            self._fin_sent = True
            self._rtx.append(Sent(self.snd_nxt_off, self.snd_nxt_off + 1, now))
            self.snd_nxt_off += 1
            if self._rtt_probe is None:
                self._rtt_probe = (self.snd_nxt_off, now)
            sent = True
        if sent:
            if probe:
                self._tlp_start, self._tlp_retrans = self._rtx[-1].start, False
            else:
                # RFC 8985 §7.2: new data (not itself a probe) re-schedules the probe timeout;
                # RFC 6298 §5.1: otherwise the retransmission timer starts if it is not running.
                self._rearm(now, restart=False)
        elif self._ca == _SACK and not self._lost_bytes and not probe:
            self._rescue(now, sink)
        pending = self.snd_nxt_off < data_end or (self._fin_queued and not self._fin_sent)
        if pending and self.snd_wnd == 0 and self.snd_nxt_off == self.snd_una_off:
            # RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: zero window, nothing in flight to
            # elicit a window update, so probe; the first probe after one RTO.
            if self.persist_at is None:
                self.persist_interval = self.rto
                self.persist_at = now + self.persist_interval
        else:
            self.persist_at = None
            self.probes = 0

    def _resend(self, sent: Sent, now: float, sink: Sink, why: str) -> None:
        """Send one entry of the retransmission queue again, as it first went (RFC 6298 §5.4,
        RFC 6675 §5); it is in flight again, with a new transmit time for RACK."""
        data_end = self._data_end
        start = sent.start - self._buf_start
        payload = bytes(self._send_buf[start : min(sent.end, data_end) - self._buf_start])
        flags = FIN_ACK if sent.end > data_end else PSH_ACK if sent.end == data_end else ACK
        self._send(sink, flags, sent.start, payload=payload, retransmission=True, why=why)
        if sent.lost:
            sent.lost = False
            self._lost_bytes -= sent.end - sent.start
        sent.sent_at = now
        sent.retransmits += 1
        self.total_retransmissions += 1
        self._rtt_probe = None  # Karn (RFC 6298 §3): no RTT sample from what was sent twice

    def _retransmit_lost(self, now: float, sink: Sink) -> None:
        """RFC 6675 §5 step (C), NextSeg rule (1): send again what is presumed lost, oldest
        first, while the congestion window has room for it (cwnd - pipe)."""
        mss = self.send_mss
        pipe = self.snd_nxt_off - self.snd_una_off - self._sacked_bytes - self._lost_bytes
        why = (
            "RTO recovery"
            if self._ca == _LOSS
            else "fast retransmit"
            if self._ca == _RENO
            else "SACK recovery"
        )
        for sent in self._rtx:
            if not sent.lost:
                continue
            length = sent.end - sent.start
            if self.cwnd - pipe < min(length, mss):
                break
            self._resend(sent, now, sink, why)
            pipe += length
            if not self._lost_bytes:
                break

    def _rescue(self, now: float, sink: Sink) -> None:
        """RFC 6675 §4 NextSeg rule (4), the rescue retransmission: in SACK recovery with
        nothing lost left to send and no new data, once per recovery send the highest
        segment not SACKed, so that a loss at the tail of the flight (nothing after it to be
        SACKed) does not wait for the retransmission timer."""
        if self.snd_una_off < self._rescue_off:  # RFC 6675: HighACK > RescueRxt
            return
        pipe = self.snd_nxt_off - self.snd_una_off - self._sacked_bytes
        for sent in reversed(self._rtx):
            if sent.sacked:
                continue
            # Not one already sent again: RACK sees whether that copy arrives.
            if not sent.retransmits and self.cwnd - pipe >= min(sent.end - sent.start, self.send_mss):
                self._rescue_off = self._recover + 1  # RescueRxt = RecoveryPoint: once per recovery
                self._resend(sent, now, sink, "SACK recovery: rescue retransmission")
            return

    def _rearm(self, now: float, *, restart: bool) -> None:
        """Arm the one timer of the send side: RACK's reordering timer if a segment awaits its
        reordering window, else a probe timeout (RFC 8985 §7.2) when a tail loss probe may be
        sent, else the retransmission timer (restarted by an ACK of new data: RFC 6298 §5.3;
        otherwise started only if it is not running: §5.1). Nothing outstanding: no timer."""
        if self.snd_una_off == self.snd_nxt_off:
            self.retransmit_at = None
            self._reo_at = 0.0
            return
        if self._reo_at:
            self.retransmit_at, self._timer = self._reo_at, _REORDER_TIMER
            return
        config = self.config
        if (
            config.tail_loss_probes
            and self.sack_ok
            and not self._tlp_end
            and self._ca != _RENO
            and not self._lost_bytes
        ):
            # RFC 8985 §7.2: a PTO only with SACK, nothing SACKed and no recovery under way;
            # 2*SRTT (1 s before any sample), a delayed ACK more when one segment is out and
            # the peer holds nothing out of order (else it ACKs at once), at most the RTO.
            # l4kit also probes with SACKed data outstanding and in the tail of a recovery,
            # once everything presumed lost has been sent again and RACK has no segment
            # waiting for its reordering window: a segment (or a retransmission) lost with
            # nothing delivered after it is invisible to RACK, and the RTO that would find
            # it is at least 1 s (RFC 6298 §2.4; Linux's is 200 ms).
            srtt = self.srtt
            pto = 2 * srtt if srtt is not None else 1.0
            if len(self._rtx) == 1 and not self._sacked_segs:
                pto += WC_DEL_ACK_T
            pto = min(max(pto, config.min_pto), self.rto)
            self.retransmit_at, self._timer = now + pto, _PTO_TIMER
            return
        if restart or self.retransmit_at is None or self._timer != _RTO_TIMER:
            self.retransmit_at, self._timer = now + self.rto, _RTO_TIMER

    def _retransmit_earliest(self, sink: Sink, why: str) -> None:
        """RFC 6298 §5.4 for the SYN or SYN-ACK: retransmit it."""
        self._syn_retransmitted = True
        flags = SYN if self.state is State.SYN_SENT else SYN_ACK
        self._send(sink, flags, 0, options=self._syn_options(sink.now), retransmission=True, why=why)

    # ------------------------------------------------------------------ abort

    def _abort(self, sink: Sink, why: str, *, cause: Segment | None = None, error: int = 0) -> NoReturn:
        """ABORT (RFC 9293 §3.10.5): send a reset, enter CLOSED, tell the driver.

        The reset is ``<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>``: the RFC's
        ``<SEQ=SND.NXT><CTL=RST>`` plus the ACK that Linux also sends, which makes a
        peer whose SYN-ACK was lost (still in SYN-SENT) accept it (RFC 9293 §3.10.7.3).
        ``error`` is what the application's next call reports (0: nothing, it asked).
        """
        self._send(sink, RST_ACK, self.snd_nxt_off, why=f"RST: {why}")
        self._set_state(State.CLOSED, cause, why, sink)
        self.error = error
        sink.event(ConnectionReset(sink.now, self.key, False, why))
        raise _Closed

    def _fail(self, sink: Sink, why: str, error: int, *, cause: Segment | None = None) -> NoReturn:
        """CLOSED without a reset of ours (the peer's RST, a connect that timed out), the
        application to be told ``error``."""
        self._set_state(State.CLOSED, cause, why, sink)
        self.error = error
        raise _Closed

    def abort_segment(self) -> Segment:
        """The RST this connection sends when it aborts (see :meth:`_abort`)."""
        return self._segment(RST_ACK, self.snd_nxt_off, self._owner.current_sink().now, b"", None)

    def abort_now(self, sink: Sink, why: str) -> None:
        """Abort from the stack (it is shutting down): RST and CLOSED."""
        with contextlib.suppress(_Closed):
            if self.state is State.SYN_SENT:
                self._fail(sink, why, errno.ECONNABORTED)
            self._abort(sink, why, error=errno.ECONNABORTED)

    # ------------------------------------------------------------------ the socket API

    def _check_handle(self) -> None:
        if self.closed_by_app:
            raise socket_error(errno.EBADF, "the socket was closed")

    def _take_error(self) -> None:
        code = self.error
        if code:
            self.error = 0
            raise socket_error(code)

    def send(self, data: bytes) -> int:
        """SEND (RFC 9293 §3.10.2): queue what the bounded send buffer takes of ``data``
        and send what the windows allow; returns how many octets were taken.

        Raises ``BlockingIOError`` (EAGAIN) when the buffer is full or the handshake is
        not over, ``BrokenPipeError`` (EPIPE) after ``shutdown(SHUT_WR)`` or once the
        connection is gone, the pending error (ECONNRESET, ETIMEDOUT ...) first.
        """
        self._check_handle()
        self._take_error()
        state = self.state
        if self.shut_wr or state in (
            State.FIN_WAIT_1,
            State.FIN_WAIT_2,
            State.CLOSING,
            State.LAST_ACK,
            State.TIME_WAIT,
        ):
            raise socket_error(errno.EPIPE)
        if state is State.CLOSED:
            raise socket_error(errno.EPIPE if self.bytes_in or self.bytes_out else errno.ENOTCONN)
        if state in (State.SYN_SENT, State.SYN_RECEIVED, State.LISTEN):
            raise socket_error(errno.EAGAIN, "the handshake is not over")
        room = self.config.max_send_buffer - len(self._send_buf)
        if not data:
            return 0
        if room <= 0:
            raise socket_error(errno.EAGAIN, "send buffer full")
        taken = data[:room]
        self._send_buf += taken
        sink = self._owner.current_sink()
        self._transmit(sink.now, sink)
        self._owner.after_call(self)
        return len(taken)

    def recv(self, limit: int = 65536) -> bytes:
        """RECEIVE (RFC 9293 §3.10.3): up to ``limit`` octets, in order, each once; ``b""``
        at end of stream (the peer's FIN, or ``shutdown(SHUT_RD)``).

        Raises ``BlockingIOError`` (EAGAIN) when nothing is there yet, the pending
        error (ECONNRESET, ECONNREFUSED, ETIMEDOUT) once, ``OSError`` (ENOTCONN) on a
        connection that never was.
        """
        self._check_handle()
        if self.rcv_buf and not self.shut_rd:
            data = bytes(self.rcv_buf[:limit])
            del self.rcv_buf[:limit]
            self._window_update()
            return data
        self._take_error()
        if self.fin_received or self.shut_rd:
            return b""
        if self.state is State.CLOSED:
            if self.bytes_in or self.bytes_out:
                return b""
            raise socket_error(errno.ENOTCONN)
        raise socket_error(errno.EAGAIN)

    def _window_update(self) -> None:
        """After a read: tell the peer when the window has grown enough to matter
        (RFC 9293 §3.8.6.2.2, the receiver's side of silly window avoidance: by at
        least min(half the buffer, one MSS))."""
        if self.state not in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            return
        free = self.rcv_buffer_size - len(self.rcv_buf)
        if free - self.rcv_wnd >= min(self.rcv_buffer_size // 2, self.send_mss):
            sink = self._owner.current_sink()
            self._send_ack(sink, "window update")
            self._owner.after_call(self)

    def shutdown(self, how: int = SHUT_RDWR) -> None:
        """SHUT_WR: our FIN follows what is queued (RFC 9293 §3.10.4 CLOSE, half-close);
        SHUT_RD: nothing more is read (what arrives is acknowledged and dropped)."""
        self._check_handle()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise socket_error(errno.EINVAL, f"shutdown how={how}")
        if self.state in (State.SYN_SENT, State.CLOSED, State.LISTEN) and not self.connected:
            raise socket_error(errno.ENOTCONN)
        if how in (SHUT_RD, SHUT_RDWR):
            self.shut_rd = True
            self.rcv_buf.clear()
        if how in (SHUT_WR, SHUT_RDWR) and not self.shut_wr:
            sink = self._owner.current_sink()
            with contextlib.suppress(_Closed):
                self._close(sink, "shutdown")
                self._transmit(sink.now, sink)
        self._owner.after_call(self)

    def close(self) -> None:
        """CLOSE (RFC 9293 §3.10.4) and give up the handle: our FIN follows what is queued.

        Unread data makes it a reset instead, as Linux does (RFC 2525 §2.17: the peer
        must learn that data was lost); in SYN-SENT the TCB is simply deleted.
        """
        if self.closed_by_app:
            return
        self.closed_by_app = True
        sink = self._owner.current_sink()
        # try/except rather than contextlib.suppress, here and in on_segment: a suppress
        # object and its two calls cost more than the rest of a pure-Python close.
        try:
            if self.state is State.SYN_SENT:
                self._fail(sink, "closed while connecting", 0)
            if self.state is State.CLOSED:
                return
            if self.rcv_buf and self.state not in (State.LISTEN, State.SYN_RECEIVED):
                self._abort(sink, f"closed with {len(self.rcv_buf)} octets unread")
            if not self.shut_wr:
                self._close(sink, "application closed")
                self._transmit(sink.now, sink)
        except _Closed:
            pass
        self._owner.after_call(self)

    def abort(self) -> None:
        """ABORT (RFC 9293 §3.10.5): RST (unless still connecting) and CLOSED at once;
        the handle is given up."""
        self.closed_by_app = True
        if self.state in (State.CLOSED, State.TIME_WAIT):
            return
        sink = self._owner.current_sink()
        with contextlib.suppress(_Closed):
            if self.state is State.SYN_SENT:
                self._fail(sink, "aborted while connecting", 0)
            self._abort(sink, "application aborted")
        self._owner.after_call(self)

    def set_nodelay(self, on: bool) -> None:
        """``TCP_NODELAY``: send small segments at once rather than coalescing them."""
        self.nodelay = on

    def _close(self, sink: Sink, why: str) -> None:
        """Our side's CLOSE (RFC 9293 §3.10.4): ESTABLISHED or SYN-RECEIVED -> FIN-WAIT-1,
        CLOSE-WAIT -> LAST-ACK; the FIN follows the queued data (sent by :meth:`_transmit`)."""
        self.shut_wr = True
        self._fin_queued = True
        match self.state:
            case State.ESTABLISHED | State.SYN_RECEIVED:
                self._set_state(State.FIN_WAIT_1, None, why, sink)
            case State.CLOSE_WAIT:
                self._set_state(State.LAST_ACK, None, why, sink)
            case State.FIN_WAIT_1 | State.FIN_WAIT_2 | State.CLOSING | State.LAST_ACK | State.TIME_WAIT:
                pass  # our FIN is already on its way
            case _:
                raise MissingCaseError(f"close in {self.state}")

    # ------------------------------------------------------------------ receiving

    def on_segment(self, segment: Segment, now: float, sink: Sink) -> None:
        """Process one received segment (RFC 9293 §3.10.7.3/§3.10.7.4, with RFC 5961)."""
        try:  # not contextlib.suppress: see close
            if self.state is State.SYN_SENT:
                self._receive_syn_sent(segment, now, sink)
            else:
                self._receive(segment, now, sink)
        except _Closed:
            pass

    def _receive_syn_sent(self, segment: Segment, now: float, sink: Sink) -> None:
        """SYN-SENT STATE (RFC 9293 §3.10.7.3), in the RFC's order."""
        flags = int(segment.flags)
        # first, check the ACK bit: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
        # (unless the RST bit is set, if so drop the segment and return)".
        ack_ok = False
        if flags & _ACK:
            if segment.ack != self.snd_nxt:  # SND.UNA = ISS, SND.NXT = ISS + 1
                if flags & _RST:
                    sink.drop(self.key, segment, DropReason.UNACCEPTABLE, "RST whose ACK is not ISS+1")
                else:
                    sink.send(
                        self.key, reset_for(segment), self.state, why="RST: ACK of something never sent"
                    )
                    sink.drop(self.key, segment, DropReason.UNACCEPTABLE, "ACK is not ISS+1")
                return
            ack_ok = True
        # second, check the RST bit: acceptable only with an acceptable ACK (RFC 5961 §3.2
        # keeps this rule for SYN-SENT: the ACK must acknowledge the SYN).
        if flags & _RST:
            if not ack_ok:
                sink.drop(self.key, segment, DropReason.RST_OUT_OF_WINDOW, "RST without ACK in SYN-SENT")
                return
            sink.event(ConnectionReset(now, self.key, True, "connection refused"))
            self._fail(sink, "connection refused", errno.ECONNREFUSED, cause=segment)
        # third (security) does not apply. fourth, check the SYN bit.
        if not flags & _SYN:
            # fifth: "If neither of the SYN or RST bits is set, then drop the segment".
            sink.drop(self.key, segment, DropReason.NO_ACK, "neither SYN nor RST in SYN-SENT")
            return
        if flags & _FIN:
            sink.drop(self.key, segment, DropReason.MALFORMED, "SYN with FIN")
            return
        self.irs = segment.seq
        self.rcv_nxt_off = 1
        self.rcv_adv_off = 1 + self.rcv_buffer_size
        self.snd_wl1 = segment.seq
        # What we offered, the peer's SYN takes up or not: window scaling only if both
        # sent the option (RFC 7323 §2.2), timestamps if its SYN carries them (§3.2), SACK
        # if it permits it too (RFC 2018 §2).
        peer_mss, peer_shift, stamps, sack_permitted = _syn_offer(segment)
        if self.ws_ok and peer_shift is not None:
            self.snd_shift = min(peer_shift, 14)
        else:
            self.ws_ok = False
            self.snd_shift = self.rcv_shift = 0
        if self.ts_ok and stamps is not None:
            self.ts_recent = stamps.tsval
        else:
            self.ts_ok = False
        self.sack_ok = self.sack_ok and sack_permitted
        self._options_agreed(peer_mss, segment.is_ipv6)
        if ack_ok:
            # "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            # ESTABLISHED, form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            self.snd_una_off = 1
            self.snd_wnd = self.max_snd_wnd = segment.window
            self.snd_wl2 = segment.ack
            self.retransmit_at = None
            self.retries = 0
            probe = self._rtt_probe
            echoed = stamps.tsecr if self.ts_ok and stamps is not None else 0
            if echoed:
                self._rtt_from_echo(echoed, now)  # RFC 7323 §4.1: valid even after a retransmitted SYN
            elif probe is not None:
                self._rtt_sample(now - probe[1])
            self._rtt_probe = None
            if self._syn_retransmitted:
                self.rto = max(self.rto, SYN_RTO_AFTER_RETRANSMISSION)  # RFC 6298 §5.7
            self.last_progress = now
            self._set_state(State.ESTABLISHED, segment, "SYN-ACK received", sink)
            # Data on a SYN-ACK is text like any other ("continue processing at the sixth step").
            if segment.payload:
                self._receive_text_and_fin(segment.with_(seq=segment.seq + 1, flags=ACK), 0, now, sink)
                self._notify(sink)
            self._send_ack(sink)
            return
        # "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT>
        # <CTL=SYN,ACK> and send it" (simultaneous open, RFC 9293 §3.5 figure 7).
        self.snd_wnd = self.max_snd_wnd = segment.window
        self._rtt_probe = None  # the answer may be to either SYN
        self._set_state(State.SYN_RECEIVED, segment, "SYN received (simultaneous open)", sink)
        self._send(sink, SYN_ACK, 0, options=self._syn_options(now), why="SYN-ACK (simultaneous open)")

    def _receive(self, segment: Segment, now: float, sink: Sink) -> None:
        state = self.state
        flags = int(segment.flags)
        # SEG.SEQ - RCV.NXT, signed, modulo 2**32 (without building RCV.NXT as a SeqNum)
        delta = (segment.seq.value - self.irs.value - self.rcv_nxt_off) % MOD
        if delta >= HALF:
            delta -= MOD
        rcv_wnd = self.rcv_adv_off - self.rcv_nxt_off
        rcv_wnd = max(rcv_wnd, 0)
        if state not in _RECEIVING:
            raise MissingCaseError(f"a Connection received a segment in {state}")

        if state is State.SYN_RECEIVED and flags & _SYN and not flags & _RST and segment.seq == self.irs:
            if not flags & _ACK and self.passive:
                # A retransmitted SYN (the SYN-ACK was lost): same SYN-ACK, same ISN. RFC
                # 9293 would only ACK it (it is below RCV.NXT); Linux (tcp_check_req) answers
                # with the SYN-ACK, which is what makes a lost SYN-ACK recoverable.
                self._retransmit_earliest(sink, "SYN-ACK again for a retransmitted SYN")
                self._rtt_probe = None  # Karn: the handshake ACK may answer either SYN-ACK
                return
            if flags & _ACK and not self.passive and segment.ack == self.snd_nxt:
                # Simultaneous open: the peer's SYN-ACK answers our SYN (RFC 9293 §3.5
                # figure 7, line 6). Its SEQ is IRS, one below RCV.NXT, so the
                # acceptability test would refuse it; Linux passes it (tcp_validate_incoming).
                self._handshake_done(segment, now, sink, "SYN-ACK received (simultaneous open)")
                self._update_window(segment)  # the first window of the synchronized connection
                return

        # second (RFC 9293 §3.10.7.4) with RFC 5961 §3.2: check the RST bit.
        if flags & _RST:
            verdict = rst_verdict(delta, rcv_wnd)
            match verdict:
                case RstVerdict.RESET:
                    if state is State.SYN_RECEIVED and self.passive:
                        # "If this connection was initiated with a passive OPEN ... return
                        # this connection to LISTEN state" (the TCB goes away).
                        self._set_state(State.LISTEN, segment, "RST in SYN-RECEIVED", sink)
                        sink.event(ConnectionReset(now, self.key, True, "RST from peer"))
                        raise _Closed
                    if state is State.SYN_RECEIVED:
                        # "If this connection was initiated with an active OPEN ..., then the
                        # connection was refused; signal the user 'connection refused'".
                        sink.event(ConnectionReset(now, self.key, True, "connection refused"))
                        self._fail(sink, "connection refused", errno.ECONNREFUSED, cause=segment)
                    sink.event(ConnectionReset(now, self.key, True, "RST from peer"))
                    closing = state in (State.CLOSING, State.LAST_ACK)
                    self._fail(sink, "RST from peer", 0 if closing else errno.ECONNRESET, cause=segment)
                case RstVerdict.CHALLENGE:
                    self._reply_with_ack(
                        segment,
                        sink,
                        DropReason.RST_IN_WINDOW,
                        "challenge ACK (RFC 5961 §3.2)",
                        f"RST seq is RCV.NXT+{delta}",
                    )
                case RstVerdict.IGNORE:
                    sink.drop(
                        self.key, segment, DropReason.RST_OUT_OF_WINDOW, f"RST seq is RCV.NXT{delta:+d}"
                    )
                case _:
                    assert_never(verdict)
            return

        # fourth: check the SYN bit (before the acceptability test: RFC 5961 §4.2 says
        # "irrespective of the sequence number").
        if flags & _SYN:
            syn = syn_verdict(state, flags, delta, segment.seg_len, rcv_wnd, passive=self.passive)
            match syn:
                case SynVerdict.UNACCEPTABLE:
                    self._reply_with_ack(
                        segment,
                        sink,
                        DropReason.UNACCEPTABLE,
                        "ACK (RFC 9293 §3.10.7.4)",
                        "SYN outside the window",
                    )
                case SynVerdict.BACK_TO_LISTEN:
                    sink.drop(
                        self.key,
                        segment,
                        DropReason.SYN_IN_SYN_RECEIVED,
                        "new SYN: half-open connection dropped",
                    )
                    self._set_state(State.LISTEN, segment, "new SYN in SYN-RECEIVED", sink)
                    raise _Closed
                case SynVerdict.CHALLENGE | SynVerdict.REOPEN:  # a Connection is never in TIME-WAIT
                    self._reply_with_ack(
                        segment, sink, DropReason.SYN_IN_WINDOW, "challenge ACK (RFC 5961 §4.2)"
                    )
                case _:
                    assert_never(syn)
            return

        # The options this connection reads on every segment, in one pass: timestamps once
        # agreed, SACK blocks once permitted (a Linux peer sends NOP, NOP, Timestamps).
        stamps: Timestamps | None = None
        sack: tuple[tuple[int, int], ...] | None = None
        if self.ts_ok or self.sack_ok:
            for option in segment.options:  # the first of each counts, as Segment.timestamps reads it
                if isinstance(option, Timestamps):
                    if stamps is None:
                        stamps = option
                elif isinstance(option, Sack) and sack is None:
                    sack = option.blocks
            if not self.ts_ok:
                stamps = None
        if stamps is not None and (stamps.tsval - self.ts_recent) & MASK >= HALF:
            # PAWS (RFC 7323 §5.3, R1): a TSval older than TS.Recent is an old duplicate
            # (a wrapped sequence number would otherwise pass): "Send an acknowledgment in
            # reply ... and drop the segment".
            self._reply_with_ack(
                segment,
                sink,
                DropReason.PAWS,
                "ACK (PAWS)",
                f"TSval is TS.Recent{stamps.tsval - self.ts_recent:+d}",
            )
            return

        # first: the acceptability test.
        if not segment_acceptable(segment.seg_len, delta, rcv_wnd):
            why = "duplicate ACK for old data" if delta < 0 else "ACK (segment outside the window)"
            self._reply_with_ack(
                segment,
                sink,
                DropReason.UNACCEPTABLE,
                why,
                f"SEG.SEQ is RCV.NXT{delta:+d}, SEG.LEN {segment.seg_len}, RCV.WND {rcv_wnd}",
            )
            return

        if stamps is not None and self.rcv_nxt_off + delta <= self._last_ack_off:
            # RFC 7323 §4.3 (R3): "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent",
            # TS.Recent = SEG.TSval (PAWS above has ruled out the older ones).
            self.ts_recent = stamps.tsval

        # fifth: check the ACK field.
        if not flags & _ACK:
            sink.drop(self.key, segment, DropReason.NO_ACK, "ACK bit off in a synchronized state")
            return

        if state is State.SYN_RECEIVED:
            # "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state"; otherwise
            # "form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it".
            if segment.ack != self.snd_nxt:  # SND.UNA = ISS, SND.NXT = ISS+1
                sink.send(self.key, reset_for(segment), state, why="RST: ACK does not acknowledge our SYN")
                sink.drop(
                    self.key,
                    segment,
                    DropReason.BAD_HANDSHAKE_ACK,
                    f"SEG.ACK is ISS{segment.ack - self.iss:+d}, expected ISS+1",
                )
                return
            if not self._handshake_done(segment, now, sink, "handshake ACK"):
                return

        advance = (segment.ack.value - self.iss.value - self.snd_una_off) % MOD  # SEG.ACK - SND.UNA
        ack_off = self.snd_una_off + (advance - MOD if advance >= HALF else advance)
        # RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if not self.snd_una_off - self.max_snd_wnd <= ack_off <= self.snd_nxt_off:
            self._reply_with_ack(
                segment,
                sink,
                DropReason.ACK_OUT_OF_RANGE,
                "challenge ACK (RFC 5961 §5.2)",
                f"SEG.ACK is SND.UNA{ack_off - self.snd_una_off:+d}, SND.NXT is SND.UNA+"
                f"{self.snd_nxt_off - self.snd_una_off}",
            )
            return
        una = self.snd_una_off
        if ack_off >= una:
            echoed = stamps.tsecr if stamps is not None else 0
            blocks = self._sack_ranges(sack, ack_off) if sack and self.sack_ok else []
            if ack_off > una:
                self._on_new_ack(ack_off, now, sink, echoed)
                # After the cumulative ACK: RACK takes what is delivered in the order of its end.
                if blocks:
                    self._note_sacks(blocks, now)
            else:
                sacked = self._note_sacks(blocks, now) if blocks else False
                if self.snd_nxt_off > una and (
                    sacked
                    or (
                        not segment.payload
                        and not flags & (_SYN | _FIN)
                        and segment.window << self.snd_shift == self.snd_wnd
                    )
                ):
                    self._on_duplicate_ack(now, sink)
                elif self._tlp_end and not sacked and not segment.payload and ack_off >= self._tlp_end:
                    # RFC 8985 §7.4: a second ACK of the probe's sequence space: the probe
                    # and what it repeated both arrived, nothing was lost.
                    self._tlp_end = 0
            if self._ca or self.sacked:
                self._detect_losses(now, sink)
        if ack_off >= self.snd_una_off and (
            self.snd_wl1 < segment.seq or (self.snd_wl1 == segment.seq and self.snd_wl2 <= segment.ack)
        ):
            self._update_window(segment)
        fin_acked = self._fin_sent and self.snd_una_off > self._buf_start + len(self._send_buf)  # _fin_off
        match self.state:
            case State.ESTABLISHED | State.CLOSE_WAIT | State.FIN_WAIT_2:
                pass
            case State.FIN_WAIT_1:
                if fin_acked:  # "if the FIN segment is now acknowledged, then enter FIN-WAIT-2"
                    self._set_state(State.FIN_WAIT_2, segment, "our FIN acknowledged", sink)
            case State.CLOSING:
                if fin_acked:  # "if the ACK acknowledges our FIN, then enter the TIME-WAIT state"
                    self._set_state(State.TIME_WAIT, segment, "our FIN acknowledged", sink)
                    return
            case State.LAST_ACK:
                if fin_acked:  # "If our FIN is now acknowledged, delete the TCB, enter CLOSED"
                    self._set_state(State.CLOSED, segment, "our FIN acknowledged", sink)
                    raise _Closed
            case _:
                raise MissingCaseError(f"ACK processing in {self.state}")

        # sixth (URG) is not implemented: the urgent pointer is ignored (RFC 6093 §5
        # recommends new applications not use it); the octets are ordinary data.
        ack_needed = self._receive_text_and_fin(segment, delta, now, sink)
        sent_before = len(sink.output.segments)
        if self.handler is not None:
            self._notify(sink)
        self._transmit(now, sink)
        if ack_needed and len(sink.output.segments) == sent_before:
            self._send_ack(sink)

    def _handshake_done(self, segment: Segment, now: float, sink: Sink, why: str) -> bool:
        """SYN-RECEIVED -> ESTABLISHED. False when a full accept queue refuses the
        connection for now (the ACK is dropped, as Linux drops it when its listen queue
        overflows; the peer's next segment completes the handshake)."""
        if self.passive and not self._owner.admit(self):
            sink.drop(
                self.key, segment, DropReason.ACCEPT_QUEUE_FULL, "the listening socket's backlog is full"
            )
            return False
        self._set_state(State.ESTABLISHED, segment, why, sink)
        if self._syn_retransmitted:
            self.rto = max(self.rto, SYN_RTO_AFTER_RETRANSMISSION)  # RFC 6298 §5.7
        if self.passive:
            self._owner.established(self)
        return self.state is State.ESTABLISHED

    def _update_window(self, segment: Segment) -> None:
        """The send window from ``segment``, whose SND.WL1/SND.WL2 test passed ("If SND.WL1 <
        SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)", RFC 9293 §3.10.7.4 fifth)."""
        # RFC 7323 §2.3: every window field but a SYN's is shifted by the peer's scale.
        window = segment.window if int(segment.flags) & _SYN else segment.window << self.snd_shift
        self.snd_wnd = window
        self.max_snd_wnd = max(self.max_snd_wnd, window)
        self.snd_wl1 = segment.seq
        self.snd_wl2 = segment.ack

    def _sack_ranges(self, blocks: tuple[tuple[int, int], ...], ack_off: int) -> list[tuple[int, int]]:
        """A received segment's SACK ``blocks`` (RFC 2018 §3, at least one) as send offsets.
        A first block below SEG.ACK, or inside the second, is a D-SACK (RFC 2883 §4): the
        peer got it twice; it is taken out and reported to :meth:`_on_dsack`."""
        base = self.iss.value
        una = self.snd_una_off
        ranges: list[tuple[int, int]] = []
        for left, right in blocks:
            start = una + ((left - base - una + HALF) & MASK) - HALF
            end = una + ((right - base - una + HALF) & MASK) - HALF
            ranges.append((start, end))
        first_start, first_end = ranges[0]
        if first_start < ack_off or (
            len(ranges) > 1 and ranges[1][0] <= first_start and first_end <= ranges[1][1]
        ):
            self._on_dsack(first_start, first_end)
            del ranges[0]
        return ranges

    def _note_sacks(self, ranges: list[tuple[int, int]], now: float) -> bool:
        """RFC 2018 §5, RFC 6675 §5 (Update()): what the peer holds beyond SND.UNA goes on the
        scoreboard (within what was sent) and marks the entries of the retransmission queue
        it covers whole. Returns whether anything new was SACKed."""
        una = self.snd_una_off
        before = 0
        for start, end in self.sacked:
            before += end - max(start, una) if end > una else 0
        for left, right in ranges:
            start, end = max(left, una), min(right, self.snd_nxt_off)
            if start < end:
                self.sacked.append((start, end))
        if not self.sacked:
            return False
        merged: list[tuple[int, int]] = []
        after = 0
        for left, end in sorted(self.sacked):
            if end <= una:
                continue
            start = max(left, una)
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    after += end - merged[-1][1]
                    merged[-1] = (merged[-1][0], end)
            else:
                after += end - start
                merged.append((start, end))
        self.sacked = merged
        if after <= before:
            return False
        # Mark the entries the scoreboard now covers whole (both lists are in order).
        i = 0
        for sent in self._rtx:
            if sent.sacked:
                continue
            while i < len(merged) and merged[i][1] < sent.end:
                i += 1
            if i == len(merged):
                break
            if merged[i][0] <= sent.start:
                sent.sacked = True
                length = sent.end - sent.start
                self._sacked_bytes += length
                self._sacked_segs += 1
                if sent.lost:
                    sent.lost = False
                    self._lost_bytes -= length
                # The TSecr of an ACK with SACK echoes the last segment in order, not
                # the one SACKed (RFC 7323 §4.3): only the RTT can tell (as Linux).
                self._rack_delivered(sent, now, 0)
        return True

    def _on_dsack(self, start: int, end: int) -> None:
        """A D-SACK (RFC 2883): the peer got [start, end) twice. A probe it covers was not
        needed (RFC 8985 §7.4.2); and RACK widens its reordering window, once per round
        trip (RFC 8985 §6.2 step 4), since the first copy was only late."""
        if self._tlp_end and self._tlp_retrans and start < self._tlp_end and self._tlp_start < end:
            self._tlp_end = 0
        if not self._dsack_round:
            self._dsack_round = self.snd_nxt_off
            self._reo_mult += 1
            self._reo_persist = 16

    def _rack_delivered(self, sent: Sent, now: float, echoed: int) -> None:
        """RFC 8985 §6.2 steps 2 and 3 for a segment newly acknowledged or SACKed: remember the
        most recently sent segment delivered and its RTT, and whether the peer got a segment
        after a later one (reordering)."""
        rtt = now - sent.sent_at
        if sent.retransmits:
            # The ACK may be for an earlier copy: a TSecr older than the retransmission
            # says so (``echoed``, for a cumulative ACK), and so does an RTT below the least
            # ever seen.
            if echoed and (echoed - self._tsval(sent.sent_at)) & MASK >= HALF:
                return
            if rtt < self._min_rtt:
                return
        elif rtt < self._min_rtt:
            self._min_rtt = rtt
        if sent.sent_at > self._rack_ts or (sent.sent_at == self._rack_ts and sent.end > self._rack_end):
            self._rack_ts, self._rack_end, self._rack_rtt = sent.sent_at, sent.end, rtt
        if sent.end > self._rack_fack:
            self._rack_fack = sent.end
        elif not sent.retransmits:
            self.reordering_seen = True

    def _rtt_from_echo(self, echoed: int, now: float) -> None:
        """RTTM (RFC 7323 §4.1): the RTT is now minus the TSval the peer echoes."""
        elapsed = (self._tsval(now) - echoed) & MASK
        if elapsed < HALF:
            self._rtt_sample(elapsed / 1000)

    def _on_new_ack(self, ack_off: int, now: float, sink: Sink, echoed: int = 0) -> None:
        """SND.UNA < SEG.ACK =< SND.NXT: octets acknowledged (RFC 9293 §3.10.7.4 fifth)."""
        # RFC 5681 §3.1 counts data octets: the SYN's and the FIN's sequence numbers grow no
        # window (the ACK of a SYN-ACK growing cwnd by one made the next burst's last
        # segment one octet long).
        data_end = self._buf_start + len(self._send_buf)
        acked = min(ack_off, data_end) - max(self.snd_una_off, 1)
        probe = self._rtt_probe
        if echoed:
            self._rtt_from_echo(echoed, now)
            self._rtt_probe = None
        elif probe is not None and ack_off >= probe[0]:
            self._rtt_sample(now - probe[1])
            self._rtt_probe = None
        self.snd_una_off = ack_off
        drop = min(ack_off, data_end) - self._buf_start
        if drop > 0:
            del self._send_buf[:drop]
            self._buf_start += drop
        rtx = self._rtx
        done = 0
        for sent in rtx:
            if sent.end > ack_off:
                if sent.start < ack_off:  # acknowledged in part: the rest stays queued
                    self._forget(sent, ack_off)
                break
            done += 1
            if sent.sacked or sent.lost:
                self._forget(sent, sent.end)
            if not sent.sacked:
                self._rack_delivered(sent, now, echoed)
        if done:
            del rtx[:done]
        if self.sacked and self.sacked[0][0] < ack_off:
            self.sacked = [(max(start, ack_off), end) for start, end in self.sacked if end > ack_off]
        self.retries = 0
        self.last_progress = now
        self._dupacks = 0
        ca = self._ca
        if acked <= 0:
            pass
        elif ca in (_OPEN, _LOSS):
            # RFC 5681 §3.1: slow start below ssthresh, congestion avoidance above it (after a
            # timeout too: slow start from one segment). Fast recovery does not grow it.
            if self.cwnd < self.ssthresh:
                self.cwnd += min(acked, self.send_mss)
            else:
                self.cwnd += max(1, self.send_mss * self.send_mss // self.cwnd)
        if ca:
            self._recovery_ack(acked, now, sink)
        if self._tlp_end and ack_off >= self._tlp_end:
            self._tlp_acked(ack_off, now, sink)
        if self._dsack_round and ack_off >= self._dsack_round:
            self._dsack_round = 0
        # RFC 6298 §5.2 / §5.3: stop the timer when all is acknowledged, else restart it (in
        # NewReno's recovery, on the first partial ACK only: RFC 6582 §3.2 step 5).
        self._reo_at = 0.0
        self._rearm(now, restart=self._ca != _RENO or self._partial_acks <= 1)

    def _forget(self, sent: Sent, upto: int) -> None:
        """Take [sent.start, upto) of an entry out of the scoreboard's counts (it is acknowledged)."""
        length = upto - sent.start
        if sent.sacked:
            self._sacked_bytes -= length
            if upto == sent.end:
                self._sacked_segs -= 1
        if sent.lost:
            self._lost_bytes -= length
        sent.start = upto

    def _on_duplicate_ack(self, now: float, sink: Sink) -> None:
        """A duplicate ACK (RFC 5681 §2; with SACK, one that SACKs something new: RFC 6675 §2).
        Without SACK information the third begins a fast retransmit (RFC 5681 §3.2), unless
        the ACK does not cover more than the last recovery point (RFC 6582 §3.2 step 2), and
        each one after it inflates the window by a segment (§3.2 step 4). With SACK, RACK
        decides from the scoreboard (see :meth:`_detect_losses`)."""
        self._dupacks += 1
        if self._ca == _RENO:
            self.cwnd += self.send_mss
        elif (
            self._ca == _OPEN
            and self._dupacks == DUP_THRESH
            and not self.sacked
            and self.snd_una_off > self._recover
        ):
            first = self._rtx[0]
            flight = self.snd_nxt_off - self.snd_una_off
            self.ssthresh = max(flight // 2, 2 * self.send_mss)  # RFC 5681 eq. (4)
            self.cwnd = self.ssthresh + DUP_THRESH * self.send_mss
            self._enter(_RENO, RecoveryStep.FAST_RETRANSMIT, now, sink, f"{DUP_THRESH} duplicate ACKs")
            self._resend(first, now, sink, f"fast retransmit ({DUP_THRESH} duplicate ACKs)")

    def _detect_losses(self, now: float, sink: Sink) -> None:
        """After an ACK with SACK information, or in recovery: RACK marks what is lost
        (RFC 8985 §6.2 step 5) and arms its reordering timer for what may still be only
        late; the first loss begins SACK recovery (RFC 6675 §5)."""
        if self.sack_ok:
            timeout = self._rack_detect(now)
            self._reo_at = now + timeout if timeout > 0 else 0.0
        if self._lost_bytes and self._ca == _OPEN:
            lost = next(sent for sent in self._rtx if sent.lost)
            flight = self.snd_nxt_off - self.snd_una_off
            # RFC 6675 §5 (4.2): ssthresh = cwnd = FlightSize / 2 (at least 2 segments).
            self.ssthresh = self.cwnd = max(flight // 2, 2 * self.send_mss)
            count = sum(1 for sent in self._rtx if sent.lost)
            self._enter(
                _SACK,
                RecoveryStep.SACK_RECOVERY,
                now,
                sink,
                f"{count} segment{'s' if count > 1 else ''} lost, {self._sacked_segs} SACKed",
            )
            self._rescue_off = lost.end
            # (4.3): the first segment presumed lost goes now, whatever the window says.
            self._resend(lost, now, sink, "SACK recovery")
        self._rearm(now, restart=False)

    def _rack_detect(self, now: float) -> float:
        """RACK_detect_loss (RFC 8985 §6.2 step 5): a segment sent before the latest one
        delivered is lost once RACK.rtt plus the reordering window has passed since it was
        sent. Returns how long until the next one would be (0: none pending)."""
        reo_wnd = self._reo_wnd()
        rack_ts, rack_end = self._rack_ts, self._rack_end
        deadline = self._rack_rtt + reo_wnd - now
        timeout = 0.0
        for sent in self._rtx:
            if sent.sacked or sent.lost:
                continue
            if sent.sent_at < rack_ts or (sent.sent_at == rack_ts and sent.end < rack_end):
                remaining = sent.sent_at + deadline
                if remaining <= 1e-9:
                    sent.lost = True
                    self._lost_bytes += sent.end - sent.start
                elif remaining > timeout:
                    timeout = remaining
        return timeout

    def _reo_wnd(self) -> float:
        """RACK.reo_wnd (RFC 8985 §6.2 step 4): a quarter of the least RTT, times a multiplier
        that each round with a D-SACK raises; none in recovery or once DupThresh segments are
        SACKed, unless reordering was seen; never more than SRTT."""
        if not self.reordering_seen and (self._ca != _OPEN or self._sacked_segs >= DUP_THRESH):
            return 0.0
        srtt = self.srtt if self.srtt is not None else 0.0
        return min(self._reo_mult * self._min_rtt / 4, srtt)

    def _enter(self, ca: int, step: RecoveryStep, now: float, sink: Sink, detail: str) -> None:
        """Begin a recovery episode: the recovery point is SND.NXT ("recover", RFC 6582;
        RecoveryPoint, RFC 6675 §5)."""
        self._ca = ca
        self._recover = self.snd_nxt_off
        self._partial_acks = 0
        self._tlp_end = 0
        if ca == _RENO:
            self.fast_retransmits += 1
        elif ca == _SACK:
            self.sack_recoveries += 1
        else:
            self.timeouts += 1
        sink.event(LossRecovery(now, self.key, step, self.state, self.cwnd, self.ssthresh, detail))

    def _recovery_ack(self, acked: int, now: float, sink: Sink) -> None:
        """An ACK of new data during recovery. At or past the recovery point the episode is
        over: NewReno sets cwnd to min(ssthresh, FlightSize + SMSS) (RFC 6582 §3.2 step 6,
        option 1), SACK recovery leaves it at ssthresh (RFC 6675 §5), after a timeout slow
        start simply goes on. Short of it, NewReno's partial ACK resends the next segment at
        once and deflates the window by what was acknowledged (RFC 6582 §3.2 step 5)."""
        ca = self._ca
        mss = self.send_mss
        if self.snd_una_off >= self._recover:
            if ca == _RENO:
                self.cwnd = min(self.ssthresh, max(self.snd_nxt_off - self.snd_una_off, mss) + mss)
            elif ca == _SACK:
                self.cwnd = self.ssthresh
            self._ca = _OPEN
            self._reo_persist -= 1  # RFC 8985 §6.2 step 4: 16 recoveries without a D-SACK
            if self._reo_persist <= 0:
                self._reo_mult = 1
            sink.event(
                LossRecovery(now, self.key, RecoveryStep.RECOVERED, self.state, self.cwnd, self.ssthresh)
            )
            return
        if ca == _RENO and self._rtx:
            self._partial_acks += 1
            self._resend(self._rtx[0], now, sink, "fast retransmit (partial ACK)")
            self.cwnd = max(self.cwnd - acked + (mss if acked >= mss else 0), mss)

    def _tlp_acked(self, ack_off: int, now: float, sink: Sink) -> None:
        """RFC 8985 §7.4: an ACK at or past the probe. A probe of new data needs nothing more
        (RACK sees what it shows). A retransmitted one that is acknowledged, followed by more,
        without a D-SACK repaired a loss: the congestion window is reduced as for any
        loss (Linux's tcp_process_tlp_ack)."""
        if not self._tlp_retrans:
            self._tlp_end = 0
        elif ack_off > self._tlp_end:
            self._tlp_end = 0
            if self._ca != _OPEN:
                return  # a probe in recovery: the recovery has reduced the window already
            self.loss_probe_recoveries += 1
            self.ssthresh = self.cwnd = max(self.cwnd // 2, 2 * self.send_mss)
            sink.event(
                LossRecovery(now, self.key, RecoveryStep.TLP_RECOVERY, self.state, self.cwnd, self.ssthresh)
            )

    def _rtt_sample(self, rtt: float) -> None:
        """RFC 6298 §2.2 / §2.3 (alpha 1/8, beta 1/4, K 4), clamped to [min_rto, max_rto]."""
        rtt = max(rtt, 0.0)
        self._min_rtt = min(self._min_rtt, rtt)  # RACK.min_RTT: every sample (RFC 8985 §6.2)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        rto = self.srtt + max(CLOCK_GRANULARITY, 4 * self.rttvar)
        self.rto = min(max(rto, self.config.min_rto), self.config.max_rto)

    def _receive_text_and_fin(self, segment: Segment, delta: int, now: float, sink: Sink) -> bool:
        """Steps seven and eight of RFC 9293 §3.10.7.4. Returns whether an ACK is owed."""
        payload = segment.payload
        fin = bool(int(segment.flags) & _FIN)
        if not payload and not fin:
            return False
        start = self.rcv_nxt_off + delta
        match self.state:
            case State.ESTABLISHED | State.FIN_WAIT_1 | State.FIN_WAIT_2:
                pass
            case State.CLOSE_WAIT | State.CLOSING | State.LAST_ACK:
                # "This should not occur since a FIN has been received from the remote
                # side. Ignore the segment text." (and a second FIN likewise)
                sink.drop(self.key, segment, DropReason.DATA_AFTER_FIN, "the peer already sent its FIN")
                return True
            case _:
                raise MissingCaseError(f"segment text in {self.state}")
        # Trim what was received before (an overlapping retransmission) ...
        if start < self.rcv_nxt_off:
            payload = payload[self.rcv_nxt_off - start :]
            start = self.rcv_nxt_off
        # ... and what lies beyond the window (with the FIN that would follow it).
        limit = self.rcv_adv_off if self.rcv_adv_off > self.rcv_nxt_off else self.rcv_nxt_off
        if start + len(payload) > limit:
            payload = payload[: max(limit - start, 0)]
            fin = False
        if payload and self.closed_by_app:
            # RFC 9293 §3.6.1 (SHLD-2, from RFC 1122 §4.2.2.13): "if new data is received
            # after CLOSE is called, its TCP SHOULD send a RST to show that data was lost".
            sink.drop(self.key, segment, DropReason.AFTER_CLOSE, f"{len(payload)} new octets after close")
            self._abort(sink, "data after the application closed", cause=segment)
        if start > self.rcv_nxt_off:
            self._sack_recent = start
            if not self.ooo.insert(start, payload, fin=fin):
                sink.drop(
                    self.key,
                    segment,
                    DropReason.OUT_OF_ORDER_FULL,
                    f"holding {self.ooo.held_bytes} octets in {self.ooo.segments} ranges",
                )
            # RFC 5681 §4.2 / RFC 9293 §3.10.7.4: out-of-order data is ACKed at once
            # (the duplicate ACK tells the peer where the gap is).
            return True
        # In order: deliver it, and whatever it joins up with in the reassembly buffer.
        fin_reached = fin
        if not fin:
            more, fin_reached = self.ooo.pop_ready(self.rcv_nxt_off + len(payload))
            payload += more
        if payload:
            self._deliver(payload, now, sink)
        if fin_reached:
            self._receive_fin(segment, now, sink)
        return True

    def _deliver(self, data: bytes, now: float, sink: Sink) -> None:
        self.rcv_nxt_off += len(data)
        self.bytes_in += len(data)
        self.last_progress = now
        sink.event(DataReceived(now, self.key, data))
        if not self.shut_rd:
            self.rcv_buf += data

    def _notify(self, sink: Sink) -> None:
        """Give the application its turn once this segment's TCP processing is complete
        (text and FIN), as a socket application reads after the kernel is done: a request
        and a FIN in one segment give ESTABLISHED -> CLOSE-WAIT first, then the
        application's reply and close (CLOSE-WAIT -> LAST-ACK)."""
        handler = self.handler
        eof = self.fin_received and not self._eof_notified
        if handler is None or self.closed_by_app or not (self.rcv_buf or eof):
            return
        self._eof_notified = self.fin_received
        handler.on_readable(self)
        if self.state is State.CLOSED:
            raise _Closed

    def _receive_fin(self, segment: Segment, now: float, sink: Sink) -> None:
        """Eighth, check the FIN bit (RFC 9293 §3.10.7.4): the FIN is in order."""
        self.rcv_nxt_off += 1
        self.last_progress = now
        self.fin_received = True
        sink.event(PeerClosed(now, self.key))
        match self.state:
            case State.ESTABLISHED:
                self._set_state(State.CLOSE_WAIT, segment, "FIN received", sink)
            case State.FIN_WAIT_1:
                # Our FIN is not yet acknowledged (else the ACK step moved us to FIN-WAIT-2).
                self._set_state(State.CLOSING, segment, "FIN received (simultaneous close)", sink)
            case State.FIN_WAIT_2:
                self._set_state(State.TIME_WAIT, segment, "FIN received", sink)
            case _:
                raise MissingCaseError(f"FIN in {self.state}")

    # ------------------------------------------------------------------ timers

    def on_timer(self, now: float, sink: Sink) -> None:
        """Run every timer that is due at ``now`` (RFC 6298 §5, RFC 9293 §3.8.6.1, §3.10.8)."""
        with contextlib.suppress(_Closed):
            self._on_timer(now, sink)

    def _on_retransmission_timeout(self, now: float, sink: Sink) -> None:
        """RFC 6298 §5.4-§5.6: retransmit the earliest unacknowledged segment, back off, restart
        the timer; give up after the configured number of tries (R2, RFC 9293 §3.8.3)."""
        state = self.state
        if state is State.SYN_SENT:
            limit = self.config.syn_retries
        elif state is State.SYN_RECEIVED and self.passive:
            limit = self.config.syn_ack_retries
        else:
            limit = self.config.max_retransmissions
        if self.retries >= limit:
            sink.event(
                TimerFired(now, self.key, TimerKind.RETRANSMISSION, state, self.retries + 1, "giving up")
            )
            if state is State.SYN_SENT:
                # No RST: nothing was ever synchronized (Linux sends none either).
                self._fail(sink, f"connect timed out after {self.retries} retransmissions", errno.ETIMEDOUT)
            self._abort(sink, f"no ACK after {self.retries} retransmissions", error=errno.ETIMEDOUT)
        self.retries += 1
        what = {State.SYN_SENT: "SYN", State.SYN_RECEIVED: "SYN-ACK"}.get(state, "segment")
        sink.event(
            TimerFired(
                now,
                self.key,
                TimerKind.RETRANSMISSION,
                state,
                self.retries,
                f"{what} not acknowledged within {self.rto:g} s",
            )
        )
        why = f"retransmission {self.retries} (RTO {self.rto:g} s)"
        # RFC 5681 §3.1 eq. (4)/(5): after a timeout, ssthresh = max(FlightSize/2, 2*SMSS)
        # (once: later timeouts of the same data keep it), cwnd = 1 SMSS.
        flight = self.snd_nxt_off - self.snd_una_off
        if self._ca != _LOSS:
            self.ssthresh = max(flight // 2, 2 * self.send_mss)
        self.cwnd = self.send_mss
        self._rtt_probe = None  # Karn: no RTT sample from a retransmitted segment
        if self.snd_una_off == 0:
            self._retransmit_earliest(sink, why)
        else:
            # RFC 8985 §6.3, RFC 6675 §5.1: every segment not SACKed is presumed lost, the
            # first one always (the peer may have reneged on what it SACKed, RFC 2018 §8),
            # and goes again now; the rest follow as the ACKs open the window (slow start).
            lost = 0
            for sent in self._rtx:
                if sent is self._rtx[0] and sent.sacked:
                    sent.sacked = False
                    self._sacked_bytes -= sent.end - sent.start
                    self._sacked_segs -= 1
                if not sent.sacked and not sent.lost:
                    sent.lost = True
                    self._lost_bytes += sent.end - sent.start
                if sent.lost:
                    lost += 1
            self._dupacks = 0
            self._reo_at = 0.0
            self._enter(
                _LOSS,
                RecoveryStep.RTO,
                now,
                sink,
                f"{lost} segment{'s' if lost > 1 else ''} presumed lost after {self.rto:g} s",
            )
            self._resend(self._rtx[0], now, sink, why)
        # RFC 6298 §5.5 / §5.6: back off, restart the timer.
        self.rto = min(self.rto * 2, self.config.max_rto)
        self.retransmit_at, self._timer = now + self.rto, _RTO_TIMER

    def _on_probe_timeout(self, now: float, sink: Sink) -> None:
        """RFC 8985 §7.3: the probe timeout passed without an ACK. Send one segment of new data
        if there is some and the peer's window takes it, else the last segment again, so
        that the peer's ACK (with SACK) shows what of the tail was lost; then the
        retransmission timer, not another probe, guards what is outstanding."""
        self.retransmit_at, self._timer = now + self.rto, _RTO_TIMER
        sink.event(
            TimerFired(now, self.key, TimerKind.LOSS_PROBE, self.state, 1, "no ACK within the probe timeout")
        )
        before = len(sink.output.segments)
        self._transmit(now, sink, probe=True)
        if len(sink.output.segments) == before and self._rtx:
            if self._ca == _OPEN:
                # The last segment (RFC 8985 §7.3); the last one not SACKed, if the peer
                # holds the tail already.
                again = next((sent for sent in reversed(self._rtx) if not sent.sacked), self._rtx[-1])
            else:  # in recovery: the first one not SACKed, which holds SND.UNA back
                again = next((sent for sent in self._rtx if not sent.sacked), self._rtx[0])
            self._resend(again, now, sink, "TLP")
            self._tlp_start, self._tlp_retrans = again.start, True
        self._tlp_end = self.snd_nxt_off
        self.loss_probes += 1
        sink.event(
            LossRecovery(
                now,
                self.key,
                RecoveryStep.TLP,
                self.state,
                self.cwnd,
                self.ssthresh,
                (
                    "new data"
                    if not self._tlp_retrans
                    else "the last segment again"
                    if self._ca == _OPEN
                    else "in recovery: the first segment not SACKed again"
                ),
            )
        )

    def _on_timer(self, now: float, sink: Sink) -> None:
        state = self.state
        if self.fin_wait_2_at is not None and now >= self.fin_wait_2_at:
            # The peer acknowledged our FIN but never sent its own. Without a limit an
            # orphaned FIN-WAIT-2 lives forever (Linux: tcp_fin_timeout, 60 s).
            sink.event(TimerFired(now, self.key, TimerKind.FIN_WAIT_2, state))
            self._abort(sink, "FIN-WAIT-2 timeout", error=errno.ETIMEDOUT)
        idle_at = self._idle_at()
        if idle_at is not None and now >= idle_at:
            # Nothing received and nothing of ours acknowledged for idle_timeout: a client
            # that connects and says nothing must not hold a slot for ever. The first time,
            # close our side as the application would (FIN after what is queued); a peer
            # that still has not finished idle_timeout later is reset (RFC 9293 §3.10.8's
            # user timeout). The reset also bounds a peer that holds its window at zero,
            # which RFC 9293 §3.8.6.1 lets a sender abort to free resources.
            timeout = self.config.idle_timeout
            if not self.shut_wr and state in (State.ESTABLISHED, State.CLOSE_WAIT):
                sink.event(
                    TimerFired(
                        now, self.key, TimerKind.IDLE, state, 1, f"nothing received for {timeout:g} s: FIN"
                    )
                )
                self.closed_by_app = True
                self._close(sink, "idle timeout")
                self.last_progress = now
                self._transmit(now, sink)
            else:
                sink.event(
                    TimerFired(
                        now, self.key, TimerKind.IDLE, state, 2, f"still open {timeout:g} s later: RST"
                    )
                )
                self._abort(sink, "idle timeout", error=errno.ETIMEDOUT)
        if self.retransmit_at is not None and now >= self.retransmit_at:
            if self._timer == _PTO_TIMER:
                self._on_probe_timeout(now, sink)
            elif self._timer == _REORDER_TIMER:
                sink.event(TimerFired(now, self.key, TimerKind.REORDER, state, 1, "reordering window over"))
                self._reo_at = 0.0
                self.retransmit_at = None
                self._detect_losses(now, sink)
                self._transmit(now, sink)
                self._rearm(now, restart=False)
            else:
                self._on_retransmission_timeout(now, sink)
        if self.persist_at is not None and now >= self.persist_at:
            self.probes += 1
            sink.event(
                TimerFired(now, self.key, TimerKind.PERSIST, state, self.probes, "peer window is zero")
            )
            # The probe is <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>, as Linux sends
            # (tcp_xmit_probe_skb): an old sequence number, which the peer must answer
            # with an ACK carrying its current window (RFC 9293 §3.10.7.4, first), and no
            # data, so our sequence space never runs ahead of what the peer accepted.
            self._send(sink, ACK, self.snd_una_off - 1, why=f"zero-window probe {self.probes}")
            self.persist_interval = min(self.persist_interval * 2, self.config.max_rto)
            self.persist_at = now + self.persist_interval


# ----------------------------------------------------------------------------- TIME-WAIT


class TimeWaitOutcome(enum.Enum):
    STAY = "stay"
    RESTART = "restart"  # the 2*MSL timer was restarted (a retransmitted FIN)
    CLOSED = "closed"  # an acceptable RST ended it


class TimeWait:
    """What a connection leaves behind in TIME-WAIT (RFC 9293 §3.6.1, MUST-13).

    Only what is needed to answer the stragglers: our SND.NXT (all of it has been
    acknowledged, FIN included), the peer's RCV.NXT (past its FIN) and a deadline.
    """

    __slots__ = ("_ack_budget", "bytes_in", "bytes_out", "expires_at", "key", "rcv_nxt", "rcv_wnd", "snd_nxt")

    def __init__(
        self,
        *,
        key: FourTuple,
        snd_nxt: SeqNum,
        rcv_nxt: SeqNum,
        rcv_wnd: int,
        expires_at: float,
        bytes_in: int,
        bytes_out: int,
        challenge_acks_per_second: int,
    ) -> None:
        self.key = key
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.rcv_wnd = rcv_wnd
        self.expires_at = expires_at
        self.bytes_in = bytes_in
        self.bytes_out = bytes_out
        self._ack_budget = _AckBudget(challenge_acks_per_second)

    @classmethod
    def of(cls, conn: Connection, now: float) -> TimeWait:
        return cls(
            key=conn.key,
            snd_nxt=conn.snd_nxt,
            rcv_nxt=conn.rcv_nxt,
            rcv_wnd=conn.rcv_wnd,
            expires_at=now + conn.config.time_wait_timeout,
            bytes_in=conn.bytes_in,
            bytes_out=conn.bytes_out,
            challenge_acks_per_second=conn.config.challenge_acks_per_second,
        )

    def _ack(self, to: Segment, sink: Sink, reason: DropReason | None, why: str) -> None:
        if not self._ack_budget.take(sink.now):
            sink.drop(self.key, to, DropReason.CHALLENGE_ACK_LIMITED, why)
            return
        reply = reply_segment(to, seq=self.snd_nxt, ack=self.rcv_nxt, flags=ACK, window=self.rcv_wnd)
        sink.send(self.key, reply, State.TIME_WAIT, why=why)
        if reason is not None:
            sink.drop(self.key, to, reason, why)

    def reopened_by(self, segment: Segment) -> bool:
        """Whether ``segment`` is a SYN that ends this incarnation and opens a new one
        (:func:`syn_verdict`); the listener then gives it to LISTEN."""
        flags = int(segment.flags)
        if not flags & _SYN or flags & _RST:
            return False
        delta = segment.seq - self.rcv_nxt
        return syn_verdict(State.TIME_WAIT, flags, delta, segment.seg_len, self.rcv_wnd) is SynVerdict.REOPEN

    def on_segment(self, segment: Segment, now: float, sink: Sink) -> TimeWaitOutcome:
        """RFC 9293 §3.10.7.4 for TIME-WAIT, with RFC 5961 and the reopening rule of §3.6.1."""
        flags = int(segment.flags)
        delta = segment.seq - self.rcv_nxt
        if flags & _RST:
            verdict = rst_verdict(delta, self.rcv_wnd)
            match verdict:
                case RstVerdict.RESET:
                    return TimeWaitOutcome.CLOSED
                case RstVerdict.CHALLENGE:
                    self._ack(segment, sink, DropReason.RST_IN_WINDOW, "challenge ACK (RFC 5961 §3.2)")
                case RstVerdict.IGNORE:
                    sink.drop(
                        self.key, segment, DropReason.RST_OUT_OF_WINDOW, f"RST seq is RCV.NXT{delta:+d}"
                    )
                case _:
                    assert_never(verdict)
            return TimeWaitOutcome.STAY
        if flags & _SYN:  # one that reopens the 4-tuple never gets here (see reopened_by)
            self._ack(segment, sink, DropReason.SYN_IN_WINDOW, "challenge ACK (RFC 5961 §4.2)")
            return TimeWaitOutcome.STAY
        if flags & _FIN and segment.seq + len(segment.payload) + 1 == self.rcv_nxt:
            # "The only thing that can arrive in this state is a retransmission of the
            # remote FIN. Acknowledge it, and restart the 2 MSL timeout."
            self._ack(segment, sink, None, "ACK of a retransmitted FIN")
            return TimeWaitOutcome.RESTART
        if not segment_acceptable(segment.seg_len, delta, self.rcv_wnd):
            self._ack(segment, sink, DropReason.UNACCEPTABLE, "ACK (segment outside the window)")
            return TimeWaitOutcome.STAY
        if not flags & _ACK:
            sink.drop(self.key, segment, DropReason.NO_ACK, "ACK bit off in a synchronized state")
            return TimeWaitOutcome.STAY
        if segment.ack > self.snd_nxt:
            self._ack(segment, sink, DropReason.ACK_OUT_OF_RANGE, "challenge ACK (RFC 5961 §5.2)")
            return TimeWaitOutcome.STAY
        if segment.payload or flags & _FIN:
            sink.drop(self.key, segment, DropReason.DATA_AFTER_FIN, "the peer already sent its FIN")
            self._ack(segment, sink, None, "ACK (TIME-WAIT)")
        return TimeWaitOutcome.STAY

"""The TCP connection state machine: every state change of l4kit is checked here.

Theory of operation
===================

This module follows RFC 9293 §3.10.7 ("SEGMENT ARRIVES") step by step, with the
RFC 5961 hardening (§3 RST, §4 SYN, §5 ACK, §7 rate limit) folded in, for a
*passive* opener: l4kit answers connections and never makes them, so SYN-SENT
exists as a name and is never entered.

Three kinds of object hold the state of one local endpoint:

* **LISTEN** has no per-connection state at all. :func:`listen_action` decides what
  a segment for an unknown 4-tuple means (RFC 9293 §3.10.7.2); the listener acts on
  that decision (new connection, SYN cookie, RST, drop).
* a :class:`Connection` is a full TCB, from SYN-RECEIVED to CLOSED.
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

The transition table, as a diagram (server side; ``app`` = the application
closed, ``FIN``/``ACK``/``RST`` = what was received, ``timer`` = a timeout)::

    LISTEN --SYN--> SYN-RECEIVED --ACK--> ESTABLISHED
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
it) and piggybacks the ACK on data when there is some. Window scaling, SACK and
timestamps are not offered in the SYN-ACK, so none of them is in use (RFC 7323 §1.3,
RFC 2018 §2): the peer's window field is taken unscaled.

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
    Output,
    PeerClosed,
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
    text = os.strerror(code) + (f": {what}" if what else "")
    if code == errno.EAGAIN:
        return BlockingIOError(code, text)
    if code == errno.ECONNREFUSED:
        return ConnectionRefusedError(code, text)
    if code == errno.ECONNRESET:
        return ConnectionResetError(code, text)
    if code == errno.ECONNABORTED:
        return ConnectionAbortedError(code, text)
    if code == errno.EPIPE:
        return BrokenPipeError(code, text)
    if code == errno.ETIMEDOUT:
        return TimeoutError(code, text)
    return OSError(code, text)


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
        "_eof_notified",
        "_fin_queued",
        "_fin_sent",
        "_last_ack_off",
        "_owner",
        "_recover",
        "_rtt_probe",
        "_sack_recent",
        "_send_buf",
        "_small_off",
        "_syn_retransmitted",
        "adv_mss",
        "bytes_in",
        "bytes_out",
        "close_why",
        "closed_by_app",
        "config",
        "counted_half_open",
        "cwnd",
        "error",
        "fin_received",
        "fin_wait_2_at",
        "from_syn_cookie",
        "handler",
        "irs",
        "iss",
        "key",
        "last_progress",
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
        "retransmit_at",
        "retries",
        "rto",
        "rttvar",
        "sack_ok",
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
        self._last_ack_off = 1  # Last.ACK.sent, as a receive offset (RFC 7323 §4.3)
        self.sack_ok = False  # offered in SYN-SENT, agreed after
        self.sacked: list[tuple[int, int]] = []  # the scoreboard: send offsets the peer SACKed
        self._sack_recent = -1  # receive offset of the latest out-of-order arrival (RFC 2018 §4)
        ipv6 = ":" in key.local.addr
        self.send_mss = effective_send_mss(peer_mss, ipv6=ipv6, our_mss=self.adv_mss)
        # RFC 5681 §3.1 / RFC 6928: initial window min(10*MSS, max(2*MSS, 14600))
        self.cwnd = min(10 * self.send_mss, max(2 * self.send_mss, 14600))
        self.ssthresh = 1 << 30
        self._recover: int | None = None
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
        conn = cls(
            owner=owner,
            key=syn.key,
            config=config,
            iss=iss,
            irs=syn.seq,
            peer_mss=syn.mss,
            peer_window=syn.window,
            now=now,
            passive=True,
            adv_mss=adv_mss,
        )
        conn._set_state(State.SYN_RECEIVED, syn, "SYN received (passive open)", sink)
        config_ = conn.config
        peer_shift = syn.window_scale
        if config_.window_scale and peer_shift is not None:
            conn.ws_ok = True
            conn.snd_shift = min(peer_shift, 14)  # RFC 7323 §2.3: above 14 is taken as 14
            conn.rcv_shift = window_shift(conn.rcv_buffer_size)
        stamps = syn.timestamps
        if config_.timestamps and stamps is not None:
            conn.ts_ok = True
            conn.ts_recent = stamps.tsval
        conn.sack_ok = config_.sack and syn.sack_permitted
        conn._options_agreed(syn.mss, syn.is_ipv6)
        conn.snd_nxt_off = 1
        conn._rtt_probe = (1, now)
        conn._send(sink, SYN_ACK, 0, options=conn._syn_options(now), why="SYN-ACK")
        conn.retransmit_at = now + conn.rto
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
        conn.snd_nxt_off = 1
        conn._rtt_probe = (1, now)
        conn._send(sink, SYN, 0, options=conn._syn_options(now), why="SYN")
        conn.retransmit_at = now + conn.rto
        return conn

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
        )

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
        return self.state in (
            State.ESTABLISHED,
            State.FIN_WAIT_1,
            State.FIN_WAIT_2,
            State.CLOSE_WAIT,
            State.CLOSING,
            State.LAST_ACK,
            State.TIME_WAIT,
        )

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
        options: list[TcpOption] = [MaxSegmentSize(self.adv_mss)]
        if self.ts_ok:
            stamps = Timestamps(self._tsval(now), self.ts_recent if self.state is not State.SYN_SENT else 0)
            if self.sack_ok:
                options += [SackPermitted(), stamps]
            else:
                options += [NoOperation(), NoOperation(), stamps]
        elif self.sack_ok:
            options += [NoOperation(), NoOperation(), SackPermitted()]
        if self.ws_ok:
            options += [NoOperation(), WindowScale(self.rcv_shift)]
        return tuple(options)

    def _options_agreed(self, peer_mss: int | None, ipv6: bool) -> None:
        """The peer's SYN says what both sides use: the MSS, less the timestamps' 12 octets
        when they are on every segment (RFC 9293 §3.7.1 counts options in the header), and
        the initial window from it."""
        self.send_mss = effective_send_mss(peer_mss, ipv6=ipv6, our_mss=self.adv_mss)
        if self.ts_ok:
            self.send_mss -= TIMESTAMPS_LENGTH
        self.cwnd = min(10 * self.send_mss, max(2 * self.send_mss, 14600))

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: the block holding the latest out-of-order arrival first, then the
        others (at most 3 beside timestamps, 4 without), as sequence numbers."""
        ranges = self.ooo.ranges()
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
        self,
        flags: TcpFlags,
        seq_off: int,
        now: float,
        *,
        payload: bytes = b"",
        options: tuple[TcpOption, ...] | None = None,
        window: int | None = None,
    ) -> Segment:
        local, remote = self.key
        bits = int(flags)
        if bits & _SYN:
            # The window of a SYN or SYN-ACK is never scaled (RFC 7323 §2.2).
            window = self.rcv_buffer_size if self.rcv_buffer_size < 65535 else 65535
        elif window is None:
            window = self._advertise()
        if options is None:
            options = ()
            if self.ts_ok and not bits & _RST:
                # RFC 7323 §3.2: on every segment once agreed (a RST may go without).
                options = (_NOP, _NOP, Timestamps(self._tsval(now), self.ts_recent))
            if self.sack_ok and not payload and self.ooo.segments and not bits & (_RST | _SYN):
                options += (_NOP, _NOP, Sack(self._sack_blocks()))
        if bits & _ACK:
            self._last_ack_off = self.rcv_nxt_off
        return Segment(
            src=local.addr,
            dst=remote.addr,
            sport=local.port,
            dport=remote.port,
            seq=self.iss + seq_off,
            ack=self.rcv_nxt if bits & _ACK else SeqNum(0),
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
        window = 0 if int(flags) & _RST else None
        segment = self._segment(flags, seq_off, sink.now, payload=payload, options=options, window=window)
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

    def _arm_retransmit(self, now: float) -> None:
        """RFC 6298 §5.1: start the timer when data is sent and it is not running."""
        if self.retransmit_at is None:
            self.retransmit_at = now + self.rto

    def _transmit(self, now: float, sink: Sink) -> None:
        """Send what the windows allow: new data, then the FIN once all data is out."""
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
        data_end = self._data_end
        while self.snd_nxt_off < data_end:
            in_flight = self.snd_nxt_off - self.snd_una_off
            room = min(self.snd_wnd, self.cwnd) - in_flight
            if room <= 0:
                break
            queued = data_end - self.snd_nxt_off
            size = min(queued, self.send_mss, room)
            if size < self.send_mss and in_flight > 0:
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
            self._send(sink, PSH_ACK if last else ACK, self.snd_nxt_off, payload=payload)
            self.snd_nxt_off += size
            self.bytes_out += size
            if size < self.send_mss:
                self._small_off = self.snd_nxt_off
            if self._rtt_probe is None:
                self._rtt_probe = (self.snd_nxt_off, now)
            self._arm_retransmit(now)
        # The FIN occupies one sequence number, so like data it needs one octet of
        # window (a FIN past a zero window is not acceptable, RFC 9293 §3.10.7.4).
        if (
            self._fin_queued
            and not self._fin_sent
            and self.snd_nxt_off == data_end
            and min(self.snd_wnd, self.cwnd) - (self.snd_nxt_off - self.snd_una_off) >= 1
        ):
            self._send(sink, FIN_ACK, self.snd_nxt_off, why="FIN")
            self._fin_sent = True
            self.snd_nxt_off += 1
            if self._rtt_probe is None:
                self._rtt_probe = (self.snd_nxt_off, now)
            self._arm_retransmit(now)
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

    def _retransmit_earliest(self, sink: Sink, why: str) -> None:
        """RFC 6298 §5.4: retransmit the earliest segment not yet acknowledged."""
        una = self.snd_una_off
        if una == 0:
            self._syn_retransmitted = True
            flags = SYN if self.state is State.SYN_SENT else SYN_ACK
            self._send(sink, flags, 0, options=self._syn_options(sink.now), retransmission=True, why=why)
            return
        data_end = self._data_end
        # RFC 2018 §5.1: what the peer SACKed is not sent again; the first hole is.
        first, hole_end = una, self.snd_nxt_off
        for start, end in self.sacked:
            if start <= first < end:
                first = end
            elif start > first:
                hole_end = start
                break
        if first < data_end and first < self.snd_nxt_off:
            size = min(self.send_mss, hole_end - first, data_end - first)
            start = first - self._buf_start
            payload = bytes(self._send_buf[start : start + size])
            flags = PSH_ACK if first + size == data_end else ACK
            self._send(sink, flags, first, payload=payload, retransmission=True, why=why)
            return
        una = first
        if self._fin_sent and una == self._fin_off:
            self._send(sink, FIN_ACK, una, retransmission=True, why=why)
            return
        raise MissingCaseError(f"retransmission with nothing outstanding (una={una}, nxt={self.snd_nxt_off})")

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
        return self._segment(RST_ACK, self.snd_nxt_off, self._owner.current_sink().now, window=0)

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
        with contextlib.suppress(_Closed):
            if self.state is State.SYN_SENT:
                self._fail(sink, "closed while connecting", 0)
            if self.state is State.CLOSED:
                return
            if self.rcv_buf and self.state not in (State.LISTEN, State.SYN_RECEIVED):
                self._abort(sink, f"closed with {len(self.rcv_buf)} octets unread")
            if not self.shut_wr:
                self._close(sink, "application closed")
                self._transmit(sink.now, sink)
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
        with contextlib.suppress(_Closed):
            if self.state is State.SYN_SENT:
                self._receive_syn_sent(segment, now, sink)
            else:
                self._receive(segment, now, sink)

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
        peer_shift = segment.window_scale
        if self.ws_ok and peer_shift is not None:
            self.snd_shift = min(peer_shift, 14)
        else:
            self.ws_ok = False
            self.snd_shift = self.rcv_shift = 0
        stamps = segment.timestamps
        if self.ts_ok and stamps is not None:
            self.ts_recent = stamps.tsval
        else:
            self.ts_ok = False
        self.sack_ok = self.sack_ok and segment.sack_permitted
        self._options_agreed(segment.mss, segment.is_ipv6)
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

        match state:
            case (
                State.SYN_RECEIVED
                | State.ESTABLISHED
                | State.FIN_WAIT_1
                | State.FIN_WAIT_2
                | State.CLOSE_WAIT
                | State.CLOSING
                | State.LAST_ACK
            ):
                pass
            case _:
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

        stamps = segment.timestamps if self.ts_ok else None
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
        if self.sack_ok and ack_off >= self.snd_una_off:
            self._note_sacks(segment, ack_off)
        if ack_off > self.snd_una_off:
            self._on_new_ack(ack_off, now, sink, stamps.tsecr if stamps is not None else 0)
        if ack_off >= self.snd_una_off and (
            self.snd_wl1 < segment.seq or (self.snd_wl1 == segment.seq and self.snd_wl2 <= segment.ack)
        ):
            self._update_window(segment)
        fin_acked = self._fin_sent and self.snd_una_off > self._fin_off
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

    def _note_sacks(self, segment: Segment, ack_off: int) -> None:
        """RFC 2018 §5: what the peer holds beyond SEG.ACK goes on the scoreboard (as send
        offsets, within what was sent), so that a retransmission skips it."""
        for option in segment.options:
            if not isinstance(option, Sack):
                continue
            base = self.iss.value
            for left, right in option.blocks:
                start = self.snd_una_off + ((left - base - self.snd_una_off + HALF) & MASK) - HALF
                end = self.snd_una_off + ((right - base - self.snd_una_off + HALF) & MASK) - HALF
                start, end = max(start, ack_off), min(end, self.snd_nxt_off)
                if start < end:
                    self.sacked.append((start, end))
        if self.sacked:
            merged: list[tuple[int, int]] = []
            for left, end in sorted(self.sacked):
                if end <= ack_off:
                    continue
                start = max(left, ack_off)
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self.sacked = merged

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
        acked = min(ack_off, self._data_end) - max(self.snd_una_off, 1)
        probe = self._rtt_probe
        if echoed:
            self._rtt_from_echo(echoed, now)
            self._rtt_probe = None
        elif probe is not None and ack_off >= probe[0]:
            self._rtt_sample(now - probe[1])
            self._rtt_probe = None
        self.snd_una_off = ack_off
        drop = min(ack_off, self._data_end) - self._buf_start
        if drop > 0:
            del self._send_buf[:drop]
            self._buf_start += drop
        self.retries = 0
        self.last_progress = now
        # RFC 5681 §3.1: slow start below ssthresh, congestion avoidance above it.
        if acked <= 0:
            pass
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.send_mss)
        else:
            self.cwnd += max(1, self.send_mss * self.send_mss // self.cwnd)
        # RFC 6298 §5.2 / §5.3: stop the timer when all is acknowledged, else restart it.
        self.retransmit_at = None if self.snd_una_off == self.snd_nxt_off else now + self.rto
        if self._recover is not None:
            if self.snd_una_off >= self._recover:
                self._recover = None
            elif self.snd_una_off < self.snd_nxt_off:
                # After a timeout, an ACK that covers only part of what was in flight
                # shows the next segment was lost too: resend it now rather than wait
                # for another (backed-off) timeout (the partial-ACK rule of RFC 6582 §3.2).
                self._retransmit_earliest(sink, "retransmission after a partial ACK")

    def _rtt_sample(self, rtt: float) -> None:
        """RFC 6298 §2.2 / §2.3 (alpha 1/8, beta 1/4, K 4), clamped to [min_rto, max_rto]."""
        rtt = max(rtt, 0.0)
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
                    self._fail(
                        sink, f"connect timed out after {self.retries} retransmissions", errno.ETIMEDOUT
                    )
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
            # RFC 5681 §3.1 eq. (4)/(5): after a timeout, ssthresh = max(FlightSize/2, 2*SMSS),
            # cwnd = 1 SMSS.
            flight = self.snd_nxt_off - self.snd_una_off
            self.ssthresh = max(flight // 2, 2 * self.send_mss)
            self.cwnd = self.send_mss
            self._recover = self.snd_nxt_off
            self._rtt_probe = None  # Karn: no RTT sample from a retransmitted segment
            self._retransmit_earliest(sink, f"retransmission {self.retries} (RTO {self.rto:g} s)")
            # RFC 6298 §5.5 / §5.6: back off, restart the timer.
            self.rto = min(self.rto * 2, self.config.max_rto)
            self.retransmit_at = now + self.rto
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

"""What the core tells its driver.

Every call into the core (:meth:`Listener.receive`, :meth:`Listener.tick`)
returns an :class:`Output`: the segments to put on the wire, in order, and the
events that happened, in order. Events are small frozen values; the drivers
render them (Rich tables, JSON) and count them (exit summary), the core never
does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from l4kit.core.states import State
from l4kit.wire.segment import FourTuple, Segment


class DropReason(enum.Enum):
    """Why a received segment was dropped without effect. The value is the
    stable tag the responder counts drops under in its exit summary."""

    BAD_CHECKSUM = "bad-checksum"
    NOT_FOR_US = "not-for-us"  # address or port the listener does not serve
    UNACCEPTABLE = "unacceptable"  # RFC 9293 §3.10.7.4 acceptability test failed (ACKed)
    NO_ACK = "no-ack"  # synchronized state, ACK bit off (RFC 9293 §3.10.7.4, fifth)
    RST_OUT_OF_WINDOW = "rst-out-of-window"  # RFC 5961 §3.2, silently ignored
    RST_IN_LISTEN = "rst-in-listen"  # RFC 9293 §3.10.7.2
    ACK_OUT_OF_RANGE = "ack-out-of-range"  # RFC 5961 §5.2 (challenge ACK sent)
    SYN_IN_WINDOW = "syn-synchronized"  # RFC 5961 §4.2 (challenge ACK sent)
    CHALLENGE_ACK_LIMITED = "challenge-ack-rate-limited"  # RFC 5961 §7
    BAD_COOKIE = "bad-syn-cookie"  # an ACK to LISTEN whose cookie did not validate
    TABLE_FULL = "table-full"  # max connections reached
    OUT_OF_ORDER_FULL = "reassembly-full"  # out-of-order buffer bound reached
    NO_CONNECTION = "no-connection"  # non-SYN for an unknown 4-tuple (RST sent unless disabled)
    AFTER_CLOSE = "data-after-close"  # data after the application closed (RST sent)
    FLAGLESS = "no-flags"  # a segment with none of SYN/ACK/RST in LISTEN
    MALFORMED = "malformed"  # illegal header (SYN+FIN, bad options) reaching the core
    # Added by issue 4 (the agreed members above are unchanged):
    RST_IN_WINDOW = "rst-in-window"  # RFC 5961 §3.2: in window but not exact, challenge ACK sent
    HALF_OPEN_FULL = "half-open-full"  # SYN dropped: half-open table full and SYN cookies switched off
    BAD_HANDSHAKE_ACK = "bad-handshake-ack"  # SYN-RECEIVED, ACK outside (SND.UNA, SND.NXT] (RST sent)
    SYN_IN_SYN_RECEIVED = "syn-in-syn-received"  # RFC 9293 §3.10.7.4 fourth: back to LISTEN
    DATA_AFTER_FIN = "data-after-fin"  # text after the peer's FIN (RFC 9293 §3.10.7.4, seventh)
    INTERNAL_ERROR = "internal-error"  # a bug in l4kit: the connection was reset, never half-updated

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SegmentReceived:
    """A segment reached a connection: state before and after processing it."""

    time: float
    key: FourTuple
    segment: Segment
    before: State
    after: State


@dataclass(frozen=True, slots=True)
class SegmentSent:
    """The core asks the driver to send this segment (it is also in ``Output.segments``)."""

    time: float
    key: FourTuple
    segment: Segment
    before: State
    after: State
    retransmission: bool = False
    why: str = ""  # added by issue 4: "SYN-ACK", "challenge ACK (RFC 5961 §4.2)", "persist probe", ...


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A connection moved between RFC 9293 states; ``cause`` is the received
    segment that moved it, or ``None`` when a timer or the application did."""

    time: float
    key: FourTuple
    before: State
    after: State
    cause: Segment | None
    why: str = ""


@dataclass(frozen=True, slots=True)
class DataReceived:
    """In-order payload octets delivered to the application (each octet once)."""

    time: float
    key: FourTuple
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer's FIN was received in order (no more data will come)."""

    time: float
    key: FourTuple


@dataclass(frozen=True, slots=True)
class ConnectionReset:
    """The connection was reset: by the peer's RST, or by us (``by_peer=False``:
    retransmissions exhausted, data after close, ...)."""

    time: float
    key: FourTuple
    by_peer: bool
    why: str


@dataclass(frozen=True, slots=True)
class SegmentDropped:
    """A received segment was dropped; ``key`` is None when it matched no connection."""

    time: float
    key: FourTuple | None
    segment: Segment | None
    reason: DropReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A connection left the table (CLOSED): normal close, reset or timeout."""

    time: float
    key: FourTuple
    why: str
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class SynCookie:
    """A SYN was answered statelessly with a cookie (``accepted=False``), or an
    ACK carrying a valid cookie created a connection (``accepted=True``)."""

    time: float
    key: FourTuple
    accepted: bool


class TimerKind(enum.Enum):
    """The timers a connection runs (RFC 9293 §3.8.1, §3.10.8; RFC 6298; RFC 1122 §4.2.2.17)."""

    RETRANSMISSION = "retransmission"  # RFC 6298: SYN-ACK, data or FIN not acknowledged in time
    PERSIST = "persist"  # RFC 1122 §4.2.2.17 / RFC 9293 §3.8.6.1: zero-window probe
    IDLE = "idle"  # no progress in either direction (user timeout, RFC 9293 §3.10.8)
    FIN_WAIT_2 = "fin-wait-2"  # the peer never sent its FIN (Linux tcp_fin_timeout)
    TIME_WAIT = "time-wait"  # 2*MSL over (RFC 9293 §3.6.1)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A connection timer went off (added by issue 4; ``--verbose`` shows these).

    ``attempt`` counts retransmissions or probes of the same segment (1 for the first);
    it is 0 for the timeouts.
    """

    time: float
    key: FourTuple
    timer: TimerKind
    state: State
    attempt: int = 0
    detail: str = ""


Event = (
    SegmentReceived
    | SegmentSent
    | StateChanged
    | DataReceived
    | PeerClosed
    | ConnectionReset
    | SegmentDropped
    | ConnectionClosed
    | SynCookie
    | TimerFired
)


@dataclass(slots=True)
class Output:
    """The result of one call into the core: segments to send, events to show."""

    segments: list[Segment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.segments.extend(other.segments)
        self.events.extend(other.events)

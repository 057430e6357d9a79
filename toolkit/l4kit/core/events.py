"""What the core tells its driver.

Every call into the core (:meth:`Listener.receive`, :meth:`Listener.tick`)
returns an :class:`Output`: the segments to put on the wire, in order, and the
events that happened, in the order they happened. Events are protocol facts only,
small frozen values: a segment received with the state before it, a state change
with its cause, a segment sent with the state it was sent in. Which table row shows
which transition is the drivers' concern (``l4kit.drivers.transitions``); they
render the events (Rich tables, JSON) and count them (exit summary), the core
never does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, get_args

from l4kit.core.states import State
from l4kit.wire.segment import FourTuple, Segment
from l4kit.wire.value import FrozenValue, pure_python_init


class DropReason(enum.Enum):
    """Why a received segment was dropped without effect. The value is the
    stable tag the responder counts drops under in its exit summary."""

    BAD_CHECKSUM = "bad-checksum"
    NOT_FOR_US = "not-for-us"  # address or port the listener does not serve
    UNACCEPTABLE = "unacceptable"  # RFC 9293 §3.10.7.4 acceptability test failed (ACKed)
    PAWS = "paws"  # RFC 7323 §5.3: a TSval older than TS.Recent (ACKed)
    NO_ACK = "no-ack"  # synchronized state, ACK bit off (RFC 9293 §3.10.7.4, fifth)
    RST_OUT_OF_WINDOW = "rst-out-of-window"  # RFC 5961 §3.2, silently ignored
    RST_IN_LISTEN = "rst-in-listen"  # RFC 9293 §3.10.7.2
    ACK_OUT_OF_RANGE = "ack-out-of-range"  # RFC 5961 §5.2 (challenge ACK sent)
    SYN_IN_WINDOW = "syn-synchronized"  # RFC 5961 §4.2 (challenge ACK sent)
    CHALLENGE_ACK_LIMITED = "challenge-ack-rate-limited"  # RFC 5961 §7
    BAD_COOKIE = "bad-syn-cookie"  # an ACK to LISTEN whose cookie did not validate
    TABLE_FULL = "table-full"  # max connections reached
    ACCEPT_QUEUE_FULL = "accept-queue-full"  # handshake ACK dropped: the listening socket's backlog is full
    OUT_OF_ORDER_FULL = "reassembly-full"  # out-of-order buffer bound reached
    NO_CONNECTION = "no-connection"  # non-SYN for an unknown 4-tuple (RST sent unless disabled)
    AFTER_CLOSE = "data-after-close"  # data after the application closed (RST sent)
    FLAGLESS = "no-flags"  # a segment with none of SYN/ACK/RST in LISTEN
    MALFORMED = "malformed"  # illegal header (SYN+FIN, bad options) reaching the core
    RST_IN_WINDOW = "rst-in-window"  # RFC 5961 §3.2: in window but not exact, challenge ACK sent
    HALF_OPEN_FULL = "half-open-full"  # SYN dropped: half-open table full and SYN cookies switched off
    BAD_HANDSHAKE_ACK = "bad-handshake-ack"  # SYN-RECEIVED, ACK outside (SND.UNA, SND.NXT] (RST sent)
    SYN_IN_SYN_RECEIVED = "syn-in-syn-received"  # RFC 9293 §3.10.7.4 fourth: back to LISTEN
    DATA_AFTER_FIN = "data-after-fin"  # text after the peer's FIN (RFC 9293 §3.10.7.4, seventh)
    INTERNAL_ERROR = "internal-error"  # a bug in l4kit: the connection was reset, never half-updated

    def __str__(self) -> str:
        return self.value


class _Event(FrozenValue):
    """What every event is: an immutable value, compared, hashed and shown field by field
    like a frozen dataclass (``FIELDS`` is each one's field order).

    Sixteen of these are made for every connection the responder serves, so this module
    is compiled by mypyc and each class writes its ``__init__`` out
    (:mod:`l4kit.wire.value` says why and how it stays immutable as pure Python).
    """

    __slots__ = ()


class SegmentReceived(_Event):
    """A segment reached a connection (or a listener, for a SYN it answers): ``state`` is
    the receiver's state before processing it. What it changed follows as
    :class:`StateChanged` events whose ``cause`` is this segment."""

    FIELDS = ("time", "key", "segment", "state")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple, segment: Segment, state: State) -> None:
        self.time: Final = time
        self.key: Final = key
        self.segment: Final = segment
        self.state: Final = state


class SegmentSent(_Event):
    """The core asks the driver to send this segment (it is also in ``Output.segments``);
    ``state`` is the sender's state when it was sent (LISTEN for a listener's stateless
    answers: a SYN cookie's SYN-ACK, a RST for no connection)."""

    FIELDS = ("time", "key", "segment", "state", "retransmission", "why")
    __slots__ = FIELDS

    def __init__(  # noqa: PLR0917 - the core passes them positionally
        self,
        time: float,
        key: FourTuple,
        segment: Segment,
        state: State,
        retransmission: bool = False,
        why: str = "",  # "SYN-ACK", "challenge ACK (RFC 5961 §4.2)", "zero-window probe 1", ...
    ) -> None:
        self.time: Final = time
        self.key: Final = key
        self.segment: Final = segment
        self.state: Final = state
        self.retransmission: Final = retransmission
        self.why: Final = why


class StateChanged(_Event):
    """A connection moved between RFC 9293 states; ``cause`` is the received
    segment that moved it, or ``None`` when a timer or the application did
    (``why`` says which)."""

    FIELDS = ("time", "key", "before", "after", "cause", "why")
    __slots__ = FIELDS

    def __init__(  # noqa: PLR0917 - the dataclass's signature: the core passes them positionally
        self, time: float, key: FourTuple, before: State, after: State, cause: Segment | None, why: str = ""
    ) -> None:
        self.time: Final = time
        self.key: Final = key
        self.before: Final = before
        self.after: Final = after
        self.cause: Final = cause
        self.why: Final = why


class DataReceived(_Event):
    """In-order payload octets delivered to the application (each octet once)."""

    FIELDS = ("time", "key", "data")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple, data: bytes) -> None:
        self.time: Final = time
        self.key: Final = key
        self.data: Final = data


class PeerClosed(_Event):
    """The peer's FIN was received in order (no more data will come)."""

    FIELDS = ("time", "key")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple) -> None:
        self.time: Final = time
        self.key: Final = key


class ConnectionReset(_Event):
    """The connection was reset: by the peer's RST, or by us (``by_peer=False``:
    retransmissions exhausted, data after close, ...)."""

    FIELDS = ("time", "key", "by_peer", "why")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple, by_peer: bool, why: str) -> None:
        self.time: Final = time
        self.key: Final = key
        self.by_peer: Final = by_peer
        self.why: Final = why


class SegmentDropped(_Event):
    """A received segment was dropped; ``key`` is None when it matched no connection."""

    FIELDS = ("time", "key", "segment", "reason", "detail")
    __slots__ = FIELDS

    def __init__(
        self,
        time: float,
        key: FourTuple | None,
        segment: Segment | None,
        reason: DropReason,
        detail: str = "",
    ) -> None:
        self.time: Final = time
        self.key: Final = key
        self.segment: Final = segment
        self.reason: Final = reason
        self.detail: Final = detail


class ConnectionClosed(_Event):
    """A connection left the table (CLOSED): normal close, reset or timeout."""

    FIELDS = ("time", "key", "why", "bytes_in", "bytes_out")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple, why: str, bytes_in: int, bytes_out: int) -> None:
        self.time: Final = time
        self.key: Final = key
        self.why: Final = why
        self.bytes_in: Final = bytes_in
        self.bytes_out: Final = bytes_out


class SynCookie(_Event):
    """A SYN was answered statelessly with a cookie (``accepted=False``), or an
    ACK carrying a valid cookie created a connection (``accepted=True``)."""

    FIELDS = ("time", "key", "accepted")
    __slots__ = FIELDS

    def __init__(self, time: float, key: FourTuple, accepted: bool) -> None:
        self.time: Final = time
        self.key: Final = key
        self.accepted: Final = accepted


class TimerKind(enum.Enum):
    """The timers a connection runs (RFC 9293 §3.8.1, §3.10.8; RFC 6298; RFC 1122 §4.2.2.17)."""

    RETRANSMISSION = "retransmission"  # RFC 6298: SYN-ACK, data or FIN not acknowledged in time
    PERSIST = "persist"  # RFC 1122 §4.2.2.17 / RFC 9293 §3.8.6.1: zero-window probe
    IDLE = "idle"  # nothing received nor acknowledged: FIN (attempt 1), then RST (2) (RFC 9293 §3.10.8)
    FIN_WAIT_2 = "fin-wait-2"  # the peer never sent its FIN (Linux tcp_fin_timeout)
    TIME_WAIT = "time-wait"  # 2*MSL over (RFC 9293 §3.6.1)

    def __str__(self) -> str:
        return self.value


class TimerFired(_Event):
    """A connection timer went off (``--verbose`` shows these).

    ``attempt`` counts retransmissions or probes of the same segment (1 for the first);
    it is 0 for the timeouts.
    """

    FIELDS = ("time", "key", "timer", "state", "attempt", "detail")
    __slots__ = FIELDS

    def __init__(  # noqa: PLR0917 - the dataclass's signature: the core passes them positionally
        self, time: float, key: FourTuple, timer: TimerKind, state: State, attempt: int = 0, detail: str = ""
    ) -> None:
        self.time: Final = time
        self.key: Final = key
        self.timer: Final = timer
        self.state: Final = state
        self.attempt: Final = attempt
        self.detail: Final = detail


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


for _kind in get_args(Event):
    pure_python_init(_kind)

"""A TCP endpoint with a socket API: listening sockets, connections, timers, bounds.

The :class:`Stack` is what a host's TCP is to its applications, without I/O: the driver
hands it received segments (:meth:`Stack.receive`) and the time (:meth:`Stack.tick`,
when :meth:`Stack.poll_at` says), and sends what every call returns (an
:class:`~l4kit.core.events.Output`). Applications use sockets: :meth:`Stack.listen`
gives a :class:`ListenSocket` (``accept``), :meth:`Stack.connect` a
:class:`~l4kit.core.connection.Connection` (``send``, ``recv``, ``shutdown``,
``close``, ``abort``, readiness); what their calls send waits for the driver's next
call, or for :meth:`Stack.flush`. Errors are the socket module's exceptions with its
errno (``ConnectionRefusedError``, ``BlockingIOError`` ...). ``docs/core-api.md`` shows
the whole API with examples.

What the stack owns, and why each part is bounded:

* the **connection table** (``max_connections`` entries, SYN-RECEIVED included):
  a SYN that would overflow it is dropped (``TABLE_FULL``); the client retries;
* the **half-open count** (``max_half_open``): beyond it, SYN cookies answer SYNs
  without keeping any state (RFC 4987 §3.6), so a SYN flood costs no memory and a
  real client still completes its handshake;
* each listening socket's **accept queue** (its ``backlog``): a handshake ACK that
  would overflow it is dropped, as Linux does, and the peer's next one completes it;
* the **TIME-WAIT records** (``max_time_wait``), kept outside the connection table:
  a server closes first, so every connection ends in TIME-WAIT on its side, and a TCB
  per TIME-WAIT would fill a 1,024-entry table after 1,024 clients. When the records
  are full, the oldest one (the nearest to expiring) is dropped, as Linux does when it
  overflows ``tcp_max_tw_buckets``;
* the **timer heap**: one entry per armed connection deadline, so :meth:`Stack.poll_at`
  is a peek, not a scan. Stale entries (a deadline that moved) are skipped when they
  reach the top, and the heap is rebuilt when they outnumber the live ones.

The defaults of every bound and timer, and why each was chosen, are in
:mod:`l4kit.core.config`.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import ipaddress
import itertools
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, assert_never

from l4kit.checksum import ChecksumStatus
from l4kit.core.app import Application
from l4kit.core.config import StackConfig
from l4kit.core.connection import (
    DEFAULT_MSS_IPV4,
    DEFAULT_MSS_IPV6,
    POLLIN,
    Connection,
    ConnectionInfo,
    ListenAction,
    Sink,
    TimeWait,
    TimeWaitOutcome,
    listen_action,
    malformed_detail,
    reset_for,
    socket_error,
    state_changed,
    syn_ack_for,
)
from l4kit.core.events import (
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    DropReason,
    LossRecovery,
    Output,
    PeerClosed,
    RecoveryStep,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    StateChanged,
    SynCookie,
    TimerFired,
    TimerKind,
)
from l4kit.core.isn import Rfc6528Isn, derive_key
from l4kit.core.states import State
from l4kit.core.syncookies import SynCookies
from l4kit.wire.flags import TcpFlags
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

WILDCARDS: Final = frozenset({"0.0.0.0", "::"})
_FIN: Final = int(TcpFlags.FIN)
_SYN: Final = int(TcpFlags.SYN)
_RST: Final = int(TcpFlags.RST)
# The events no counter of ListenerStats reads: the commonest, skipped by one set lookup.
_UNCOUNTED: Final = frozenset({SegmentReceived, DataReceived, PeerClosed, ConnectionClosed})

AppFactory = Callable[[FourTuple], Application]


def canonical_address(address: str) -> str:
    """``address`` as ``ipaddress`` writes it (``2001:DB8:0::1`` -> ``2001:db8::1``)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise socket_error(errno.EINVAL, f"not an IP address: {address!r}") from None


@dataclass(frozen=True, slots=True)
class ListenerStats:
    """Counters for the responder's exit summary (a snapshot; never updated in place)."""

    connections_open: int  # in the table now (half-open included, TIME-WAIT not)
    half_open: int  # SYN-RECEIVED now
    half_open_peak: int  # the most SYN-RECEIVED at once so far (at max_half_open, cookies took over)
    time_wait: int  # TIME-WAIT records now
    connections_established: int  # total that reached ESTABLISHED (cookie ones included)
    syn_cookies_sent: int
    syn_cookies_accepted: int
    segments_in: int
    segments_out: int
    retransmissions: int
    resets_sent: int
    resets_received: int  # RSTs from peers that closed a connection
    time_wait_evicted: int  # TIME-WAIT records dropped early because max_time_wait was reached
    internal_errors: int  # connections reset because of a bug in l4kit (should stay 0)
    idle_closed: int  # connections closed (FIN) because nothing arrived for idle_timeout
    idle_reset: int  # of those, and of connections already closing, the ones reset after another idle_timeout
    drops: Mapping[DropReason, int] = field(default_factory=lambda: MappingProxyType({}))
    # loss recovery (the LossRecovery events): how each loss was repaired
    fast_retransmits: int = 0  # three duplicate ACKs, no SACK (RFC 5681 §3.2, NewReno)
    sack_recoveries: int = 0  # losses found on the SACK scoreboard (RFC 6675, RACK)
    loss_probes: int = 0  # tail loss probes sent (RFC 8985 §7)
    loss_probe_recoveries: int = 0  # probes that repaired a loss
    timeouts: int = 0  # retransmission timeouts of data or FIN (RTO recovery)

    @property
    def drops_total(self) -> int:
        return sum(self.drops.values())


class ListenSocket:
    """A socket in LISTEN (RFC 9293 §3.10.1 passive OPEN): what :meth:`Stack.listen` returns.

    A connection whose handshake completes is queued for :meth:`accept`, or, when the
    socket has an ``app_factory``, given its application at once (nothing is queued).
    """

    __slots__ = ("_stack", "app_factory", "backlog", "closed", "local", "mss", "queue")

    def __init__(
        self, stack: Stack, local: Endpoint, backlog: int, app_factory: AppFactory | None, mss: int | None
    ) -> None:
        self._stack = stack
        self.local = local
        self.backlog = backlog
        self.app_factory = app_factory
        self.mss = mss
        self.queue: deque[Connection] = deque()
        self.closed = False

    def accept(self) -> Connection:
        """The oldest connection whose handshake completed (ESTABLISHED, or later if the
        peer already closed); ``BlockingIOError`` (EAGAIN) if there is none."""
        if self.closed:
            raise socket_error(errno.EBADF, "the listening socket was closed")
        if not self.queue:
            raise socket_error(errno.EAGAIN, "no connection to accept")
        return self.queue.popleft()

    @property
    def readable(self) -> bool:
        """:meth:`accept` would not block."""
        return bool(self.queue)

    def poll(self) -> int:
        return POLLIN if self.queue else 0

    def close(self) -> None:
        """Stop listening; connections not yet accepted are reset (as Linux does)."""
        if not self.closed:
            self._stack._close_listener(self)


class Stack:
    """One TCP endpoint: demultiplexes segments by 4-tuple to connections, listening
    sockets and TIME-WAIT records, and runs their timers.

    Time enters only as ``now`` (seconds, any monotonic origin). Every call returns
    an :class:`Output`; ``poll_at()`` says when ``tick`` must be called next.
    Nothing a peer sends can make these methods raise: a bug is contained to the
    connection it happened in (reset, ``DropReason.INTERNAL_ERROR``).
    """

    def __init__(
        self,
        config: StackConfig,
        *,
        isn: Callable[[FourTuple, float], SeqNum] | None = None,
    ) -> None:
        self.config = config
        self._isn: Callable[[FourTuple, float], SeqNum] = (
            isn if isn is not None else Rfc6528Isn(config.secret)
        )
        self._port_key = derive_key(config.secret, b"ports")
        self._next_port = 0
        self._cookies = SynCookies(config.secret, period=config.syn_cookie_period)
        self._cookies_valid_until = float("-inf")
        self._listeners: dict[Endpoint, ListenSocket] = {}
        self._connections: dict[FourTuple, Connection] = {}
        self._half_open = 0
        self._half_open_peak = 0
        self._time_wait: OrderedDict[FourTuple, TimeWait] = OrderedDict()  # oldest deadline first
        self._heap: list[tuple[float, int, Connection]] = []
        self._tiebreak = itertools.count()
        # what socket calls made outside a call into the core produced, for the next call
        self._pending = Output()
        self._sink = Sink(self._pending, 0.0)
        self._busy = False  # inside receive/tick/shutdown: socket calls join that call's output
        self._touched: list[Connection] = []  # changed by an application during the call
        self._current: Connection | None = None  # the connection a call is processing
        self.now = 0.0
        # counters
        self._segments_in = 0
        self._segments_out = 0
        self._retransmissions = 0
        self._resets_sent = 0
        self._resets_received = 0
        self._established = 0
        self._cookies_sent = 0
        self._cookies_accepted = 0
        self._time_wait_evicted = 0
        self._internal_errors = 0
        self._idle_closed = 0
        self._idle_reset = 0
        self._drops: Counter[DropReason] = Counter()
        self._recovery_steps: Counter[RecoveryStep] = Counter()

    # ------------------------------------------------------------------ the driver's side

    def receive(self, segment: Segment, now: float) -> Output:
        """Process one received segment."""
        out = self._begin(now)
        self._segments_in += 1
        mark_segments, mark_events = len(out.segments), len(out.events)
        try:
            self._receive(segment, now, self._sink)
        except Exception as exc:  # a bug outside any connection: contain it, never raise to the driver
            del out.segments[mark_segments:]
            del out.events[mark_events:]
            out.events.append(SegmentDropped(now, None, segment, DropReason.INTERNAL_ERROR, repr(exc)))
        return self._end()

    def tick(self, now: float) -> Output:
        """Run due timers (retransmissions, persist probes, timeouts)."""
        self._begin(now)
        sink = self._sink
        heap = self._heap
        due: list[Connection] = []
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            if conn.scheduled != deadline or self._connections.get(conn.key) is not conn:
                continue  # stale: the deadline moved, or the connection is gone
            conn.scheduled = None
            due.append(conn)
        # Each due connection runs once per call (collected first, so a timer that
        # re-arms itself at or before ``now`` cannot keep this loop going).
        for conn in due:
            if self._connections.get(conn.key) is conn:
                self._guarded(conn, sink, None, conn.on_timer, now, sink)
        while self._time_wait:
            record = next(iter(self._time_wait.values()))
            if record.expires_at > now:
                break
            del self._time_wait[record.key]
            sink.event(TimerFired(now, record.key, TimerKind.TIME_WAIT, State.TIME_WAIT))
            self._end_time_wait(record, sink, "TIME-WAIT over (2*MSL)", None)
        return self._end()

    def flush(self, now: float | None = None) -> Output:
        """What socket calls made since the last call into the stack sent and reported
        (a connect's SYN, what ``send`` let out, a FIN, a RST); ``now`` moves the stack's
        clock on for the calls that follow (it never goes back)."""
        if now is not None and now > self.now:
            self.now = now
        out = self._pending
        self._pending = Output()
        self._sink = Sink(self._pending, self.now)
        self._account(out)
        return out

    def poll_at(self) -> float | None:
        """The earliest time ``tick`` has work to do, or None if no timer is armed."""
        heap = self._heap
        while heap:
            deadline, _, conn = heap[0]
            if conn.scheduled == deadline and self._connections.get(conn.key) is conn:
                break
            heapq.heappop(heap)
        best = heap[0][0] if heap else None
        if self._time_wait:
            first = next(iter(self._time_wait.values())).expires_at
            if best is None or first < best:
                best = first
        return best

    def shutdown(self, now: float, why: str = "stack shut down") -> Output:
        """Abort every connection with RST (the driver is stopping)."""
        self._begin(now)
        sink = self._sink
        for conn in list(self._connections.values()):
            self._guarded(conn, sink, None, conn.abort_now, sink, why)
        for record in list(self._time_wait.values()):
            self._end_time_wait(record, sink, why, None)
        self._time_wait.clear()
        self._heap.clear()
        return self._end()

    def _begin(self, now: float) -> Output:
        self.now = max(self.now, now)
        # Between calls the sink already collects into _pending (socket calls use it).
        self._sink.now = now
        self._busy = True
        return self._pending

    def _end(self) -> Output:
        self._busy = False
        if self._touched:
            touched, self._touched = self._touched, []
            for conn in touched:
                self._after(conn)
        out = self._pending
        self._pending = Output()
        self._sink = Sink(self._pending, self.now)
        self._account(out)
        return out

    # ------------------------------------------------------------------ the applications' side

    def listen(
        self,
        address: str,
        port: int,
        backlog: int = 128,
        *,
        app_factory: AppFactory | None = None,
        mss: int | None = None,
    ) -> ListenSocket:
        """LISTEN on ``address`` (``0.0.0.0`` / ``::``: every address of that family) and
        ``port``. ``OSError`` EADDRINUSE if something listens there already, EINVAL for a
        bad address, port or backlog."""
        local = Endpoint(canonical_address(address), port)
        if not 1 <= port <= 65535:
            raise socket_error(errno.EINVAL, f"port {port} is outside 1-65535")
        if backlog < 1:
            raise socket_error(errno.EINVAL, f"backlog {backlog} must be at least 1")
        if mss is not None and not 88 <= mss <= 65535:
            raise socket_error(errno.EINVAL, f"mss {mss} is outside 88-65535")
        if local in self._listeners:
            raise socket_error(errno.EADDRINUSE, str(local))
        sock = ListenSocket(self, local, backlog, app_factory, mss)
        self._listeners[local] = sock
        return sock

    def connect(
        self,
        local: Endpoint,
        remote: Endpoint,
        *,
        mss: int | None = None,
        nodelay: bool = False,
        app: Application | None = None,
    ) -> Connection:
        """Active OPEN (RFC 9293 §3.10.1): a connection in SYN-SENT, its SYN on the way.

        Non-blocking, as ``connect`` on a non-blocking socket: the connection is
        :attr:`~Connection.connected` (and writable) once the handshake completes; a
        refusal or a timeout is its pending error (ECONNREFUSED, ETIMEDOUT), raised by
        its next ``send``/``recv``. ``local.port`` 0 picks an ephemeral port (RFC 6056
        §3.3.3, keyed by the stack's secret). ``OSError`` EADDRINUSE when the 4-tuple is
        in use (TIME-WAIT included), EADDRNOTAVAIL when no ephemeral port is free, EINVAL
        for a bad address or port, ENOBUFS when the connection table is full.
        """
        local = Endpoint(canonical_address(local.addr), local.port)
        remote = Endpoint(canonical_address(remote.addr), remote.port)
        if (":" in local.addr) != (":" in remote.addr) or local.addr in WILDCARDS:
            raise socket_error(errno.EINVAL, f"cannot connect from {local} to {remote}")
        if not 1 <= remote.port <= 65535 or not 0 <= local.port <= 65535:
            raise socket_error(errno.EINVAL, f"port out of range: {local} -> {remote}")
        if mss is not None and not 88 <= mss <= 65535:
            raise socket_error(errno.EINVAL, f"mss {mss} is outside 88-65535")
        if len(self._connections) >= self.config.max_connections:
            raise socket_error(errno.ENOBUFS, f"{len(self._connections)} connections")
        if local.port == 0:
            local = Endpoint(local.addr, self._ephemeral_port(local.addr, remote))
        key = FourTuple(local, remote)
        if key in self._connections or key in self._time_wait:
            raise socket_error(errno.EADDRINUSE, str(key))
        sink = self.current_sink()
        conn = Connection.active_open(
            self, key, iss=self._isn(key, sink.now), config=self.config, now=sink.now, sink=sink, adv_mss=mss
        )
        conn.nodelay = nodelay
        conn.handler = app
        self._connections[key] = conn
        self._after(conn)
        return conn

    def _ephemeral_port(self, address: str, remote: Endpoint) -> int:
        """RFC 6056 §3.3.3 (Algorithm 3): a keyed hash of the addresses picks where the
        search starts, a counter moves it on; the first port whose 4-tuple is free."""
        low, high = self.config.ephemeral_ports
        count = high - low + 1
        digest = hashlib.blake2b(
            f"{address}|{remote.addr}|{remote.port}".encode(), key=self._port_key, digest_size=4
        ).digest()
        offset = int.from_bytes(digest, "big")
        for i in range(count):
            port = low + (offset + self._next_port + i) % count
            key = FourTuple(Endpoint(address, port), remote)
            if key not in self._connections and key not in self._time_wait:
                self._next_port += i + 1
                return port
        raise socket_error(errno.EADDRNOTAVAIL, "no ephemeral port is free")

    # Owner: what a connection asks of the stack

    def current_sink(self) -> Sink:
        if not self._busy:
            self._sink.now = self.now
        return self._sink

    def after_call(self, conn: Connection) -> None:
        if not self._busy:
            self._after(conn)
        elif conn is not self._current:  # the one being processed is settled by _guarded
            self._touched.append(conn)

    def admit(self, conn: Connection) -> bool:
        """Whether ``conn``'s listening socket can take it now (its accept queue has room)."""
        sock = self._listener_for(conn.key.local)
        if sock is None or sock.app_factory is not None:
            return True
        return len(sock.queue) < sock.backlog

    def established(self, conn: Connection) -> None:
        sock = self._listener_for(conn.key.local)
        if sock is None:
            return
        if sock.app_factory is not None:
            conn.handler = sock.app_factory(conn.key)
        else:
            sock.queue.append(conn)

    def _after(self, conn: Connection) -> None:
        if self._connections.get(conn.key) is conn:
            self._settle(conn, self._sink)

    def _listener_for(self, local: Endpoint) -> ListenSocket | None:
        sock = self._listeners.get(local)
        if sock is None:
            wildcard = "::" if ":" in local.addr else "0.0.0.0"
            sock = self._listeners.get(Endpoint(wildcard, local.port))
        return sock

    def _close_listener(self, sock: ListenSocket) -> None:
        sock.closed = True
        self._listeners.pop(sock.local, None)
        sink = self.current_sink()
        for conn in list(sock.queue):
            conn.abort()
        sock.queue.clear()
        # Half-open connections of this socket have nowhere to go: reset them too.
        for conn in list(self._connections.values()):
            if (
                conn.passive
                and conn.state is State.SYN_RECEIVED
                and self._listener_for(conn.key.local) is None
            ):
                self._guarded(conn, sink, None, conn.abort_now, sink, "listening socket closed")

    # ------------------------------------------------------------------ inspection

    @property
    def stats(self) -> ListenerStats:
        return ListenerStats(
            connections_open=len(self._connections),
            half_open=self._half_open,
            half_open_peak=self._half_open_peak,
            time_wait=len(self._time_wait),
            connections_established=self._established,
            syn_cookies_sent=self._cookies_sent,
            syn_cookies_accepted=self._cookies_accepted,
            segments_in=self._segments_in,
            segments_out=self._segments_out,
            retransmissions=self._retransmissions,
            resets_sent=self._resets_sent,
            resets_received=self._resets_received,
            time_wait_evicted=self._time_wait_evicted,
            internal_errors=self._internal_errors,
            idle_closed=self._idle_closed,
            idle_reset=self._idle_reset,
            drops=MappingProxyType(dict(self._drops)),
            fast_retransmits=self._recovery_steps.get(RecoveryStep.FAST_RETRANSMIT, 0),
            sack_recoveries=self._recovery_steps.get(RecoveryStep.SACK_RECOVERY, 0),
            loss_probes=self._recovery_steps.get(RecoveryStep.TLP, 0),
            loss_probe_recoveries=self._recovery_steps.get(RecoveryStep.TLP_RECOVERY, 0),
            timeouts=self._recovery_steps.get(RecoveryStep.RTO, 0),
        )

    def connection_info(self, key: FourTuple) -> ConnectionInfo | None:
        """A snapshot of the TCB for ``key`` (None if not in the table; TIME-WAIT is not)."""
        conn = self._connections.get(key)
        return conn.info() if conn is not None else None

    def connection(self, key: FourTuple) -> Connection | None:
        """The connection of ``key`` (None if not in the table)."""
        return self._connections.get(key)

    def connections(self) -> Iterator[ConnectionInfo]:
        """Snapshots of every connection in the table."""
        return (conn.info() for conn in list(self._connections.values()))

    def state_of(self, key: FourTuple) -> State:
        """The RFC 9293 state of ``key`` from this side (LISTEN if a socket listens on its
        local end, CLOSED if nothing does)."""
        conn = self._connections.get(key)
        if conn is not None:
            return conn.state
        if key in self._time_wait:
            return State.TIME_WAIT
        return State.LISTEN if self._listener_for(key.local) is not None else State.CLOSED

    # ------------------------------------------------------------------ receive

    def _receive(self, segment: Segment, now: float, sink: Sink) -> None:
        if segment.checksum is ChecksumStatus.BAD:
            # A corrupt segment says nothing trustworthy, not even its 4-tuple (RFC 9293
            # §3.1: a segment with a bad checksum is discarded). OFFLOADED is accepted.
            sink.drop(None, segment, DropReason.BAD_CHECKSUM)
            return
        detail = malformed_detail(segment)
        if detail is not None:
            sink.drop(None, segment, DropReason.MALFORMED, detail)
            return
        key = segment.key
        conn = self._connections.get(key)
        if conn is not None:
            sink.event(SegmentReceived(now, key, segment, conn.state))
            self._guarded(conn, sink, segment, conn.on_segment, segment, now, sink)
            return
        record = self._time_wait.get(key)
        if record is not None:
            self._receive_time_wait(record, segment, now, sink)
            return
        listener = self._listener_for(key.local)
        if listener is None:
            self._receive_closed(segment, sink)
            return
        self._receive_listen(listener, segment, now, sink, min_iss=None)

    def _receive_closed(self, segment: Segment, sink: Sink) -> None:
        """CLOSED (RFC 9293 §3.10.7.1): nothing here; a RST answers all but a RST."""
        if int(segment.flags) & _RST:
            sink.drop(None, segment, DropReason.RST_IN_LISTEN, "RST for no connection")
            return
        sink.drop(None, segment, DropReason.NO_CONNECTION, "no socket on this port")
        self._reset(segment, sink, "RST: port closed")

    def _guarded(
        self, conn: Connection, sink: Sink, segment: Segment | None, work: Callable[..., None], *args: object
    ) -> None:
        """Run ``work(*args)`` on ``conn`` (``segment``: the one it processes, if any); on any
        exception reset the connection cleanly (h11's rule): what the work produced is thrown
        away, the peer gets a RST. The arguments are passed through rather than bound in a
        ``functools.partial``: this runs for every segment."""
        out = sink.output
        mark_segments, mark_events = len(out.segments), len(out.events)
        before = conn.state
        self._current = conn
        try:
            work(*args)
        except Exception as exc:
            self._current = None
            del out.segments[mark_segments:]
            del out.events[mark_events:]
            self._internal_error(conn, exc, sink, segment, before)
            return
        self._current = None
        self._settle(conn, sink)

    def _internal_error(
        self, conn: Connection, exc: Exception, sink: Sink, segment: Segment | None, before: State
    ) -> None:
        why = f"internal error: {type(exc).__name__}: {exc}"
        self._internal_errors += 1
        del self._connections[conn.key]
        conn.scheduled = None
        self._uncount_half_open(conn)
        conn.state = State.CLOSED  # for the application's handle: the connection is gone
        conn.error = errno.ECONNABORTED
        if segment is not None:
            sink.drop(conn.key, segment, DropReason.INTERNAL_ERROR, why)
        rst = conn.abort_segment()
        sink.send(conn.key, rst, before, why="RST: internal error")
        sink.event(state_changed(sink.now, conn.key, before, State.CLOSED, segment, why))
        sink.event(ConnectionReset(sink.now, conn.key, False, why))
        sink.event(ConnectionClosed(sink.now, conn.key, why, conn.bytes_in, conn.bytes_out))

    def _uncount_half_open(self, conn: Connection) -> None:
        if conn.counted_half_open:
            conn.counted_half_open = False
            self._half_open -= 1

    def _settle(self, conn: Connection, sink: Sink) -> None:
        """Move ``conn`` to where its new state belongs: the table, TIME-WAIT, or nowhere."""
        state = conn.state
        if conn.counted_half_open and state is not State.SYN_RECEIVED:
            self._uncount_half_open(conn)
        if state is State.CLOSED or state is State.LISTEN:
            del self._connections[conn.key]
            conn.scheduled = None
            sink.event(ConnectionClosed(sink.now, conn.key, conn.close_why, conn.bytes_in, conn.bytes_out))
        elif state is State.TIME_WAIT:
            del self._connections[conn.key]
            conn.scheduled = None
            self._add_time_wait(TimeWait.of(conn, sink.now), sink)
        else:
            self._schedule(conn)

    def _schedule(self, conn: Connection) -> None:
        deadline = conn.next_deadline()
        if deadline == conn.scheduled:
            return
        conn.scheduled = deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._tiebreak), conn))
            if len(self._heap) > 4 * len(self._connections) + 64:
                self._heap = [
                    (c.scheduled, next(self._tiebreak), c)
                    for c in self._connections.values()
                    if c.scheduled is not None
                ]
                heapq.heapify(self._heap)

    def _add_time_wait(self, record: TimeWait, sink: Sink) -> None:
        if self.config.max_time_wait == 0 or self.config.time_wait_timeout == 0:
            self._end_time_wait(record, sink, "TIME-WAIT skipped (no room configured)", None)
            return
        while len(self._time_wait) >= self.config.max_time_wait:
            _, oldest = self._time_wait.popitem(last=False)
            self._time_wait_evicted += 1
            self._end_time_wait(oldest, sink, "TIME-WAIT table full: oldest record dropped", None)
        self._time_wait[record.key] = record

    def _end_time_wait(self, record: TimeWait, sink: Sink, why: str, cause: Segment | None) -> None:
        sink.event(state_changed(sink.now, record.key, State.TIME_WAIT, State.CLOSED, cause, why))
        sink.event(ConnectionClosed(sink.now, record.key, why, record.bytes_in, record.bytes_out))

    def _receive_time_wait(self, record: TimeWait, segment: Segment, now: float, sink: Sink) -> None:
        if record.reopened_by(segment):
            # The old incarnation ends; the SYN is LISTEN's (and the new connection's) to show.
            del self._time_wait[record.key]
            self._end_time_wait(record, sink, "new SYN reopens the 4-tuple (RFC 9293 §3.6.1)", segment)
            # "assigns its initial sequence number for the new connection to be larger
            # than the largest sequence number it used on the previous connection
            # incarnation" -- Linux adds 65535 + 2 to the old SND.NXT when it must.
            listener = self._listener_for(record.key.local)
            if listener is None:
                self._receive_closed(segment, sink)
                return
            self._receive_listen(listener, segment, now, sink, min_iss=record.snd_nxt + 65537)
            return
        sink.event(SegmentReceived(now, record.key, segment, State.TIME_WAIT))
        outcome = record.on_segment(segment, now, sink)
        match outcome:
            case TimeWaitOutcome.STAY:
                pass
            case TimeWaitOutcome.RESTART:
                record.expires_at = now + self.config.time_wait_timeout
                self._time_wait.move_to_end(record.key)
            case TimeWaitOutcome.CLOSED:
                del self._time_wait[record.key]
                sink.event(ConnectionReset(now, record.key, True, "RST in TIME-WAIT"))
                self._end_time_wait(record, sink, "RST in TIME-WAIT", segment)
            case _:
                assert_never(outcome)

    def _receive_listen(
        self, listener: ListenSocket, segment: Segment, now: float, sink: Sink, *, min_iss: SeqNum | None
    ) -> None:
        """LISTEN (RFC 9293 §3.10.7.2): no connection has this 4-tuple."""
        action = listen_action(segment)
        match action:
            case ListenAction.IGNORE_RST:
                # "An incoming RST should be ignored" -- and a RST is never answered with a RST.
                sink.drop(None, segment, DropReason.RST_IN_LISTEN)
            case ListenAction.RESET_ACK:
                if self._try_cookie(listener, segment, now, sink):
                    return
                reason = (
                    DropReason.BAD_COOKIE
                    if self._cookie_candidate(segment, now)
                    else DropReason.NO_CONNECTION
                )
                sink.drop(None, segment, reason, "ACK for no connection")
                self._reset(segment, sink, "RST: no such connection")
            case ListenAction.OPEN:
                self._open(listener, segment, now, sink, min_iss)
            case ListenAction.DROP_SYN_FIN:
                sink.drop(None, segment, DropReason.MALFORMED, "SYN with FIN")
            case ListenAction.DROP_OTHER:
                if int(segment.flags) & _FIN or segment.payload:
                    # Not a LISTEN matter in RFC 9293 (it drops these), but a FIN or data
                    # for no connection is a peer that lost its state: the RST tells it so.
                    sink.drop(None, segment, DropReason.NO_CONNECTION, "no ACK, no SYN")
                    self._reset(segment, sink, "RST: no such connection")
                else:
                    sink.drop(
                        None, segment, DropReason.FLAGLESS, f"flags {segment.flags.letters or '.'} in LISTEN"
                    )
            case _:
                assert_never(action)

    def _reset(self, segment: Segment, sink: Sink, why: str) -> None:
        if self.config.rst_unknown:
            sink.send(segment.key, reset_for(segment), State.LISTEN, why=why)

    def _open(
        self, listener: ListenSocket, syn: Segment, now: float, sink: Sink, min_iss: SeqNum | None
    ) -> None:
        key = syn.key
        config = self.config
        if len(self._connections) >= config.max_connections:
            sink.drop(None, syn, DropReason.TABLE_FULL, f"{len(self._connections)} connections")
            return
        if self._half_open >= config.max_half_open:
            if not config.syn_cookies:
                sink.drop(None, syn, DropReason.HALF_OPEN_FULL, f"{self._half_open} half-open")
                return
            # RFC 4987 §3.6: the half-open table is full, so the ISN carries the state.
            # Without an MSS option the peer's MSS is the RFC 9293 §3.7.1 default.
            peer_mss = (
                syn.mss if syn.mss is not None else (DEFAULT_MSS_IPV6 if syn.is_ipv6 else DEFAULT_MSS_IPV4)
            )
            cookie = self._cookies.make(key, syn.seq, peer_mss, now)
            self._cookies_valid_until = now + 2 * config.syn_cookie_period
            sink.event(SegmentReceived(now, key, syn, State.LISTEN))
            sink.event(SynCookie(now, key, False))
            mss = listener.mss if listener.mss is not None else config.mss
            syn_ack = syn_ack_for(syn, cookie, mss=mss, window=config.window)
            sink.send(key, syn_ack, State.LISTEN, why="SYN-ACK (SYN cookie)")
            return
        iss = self._isn(key, now)
        if min_iss is not None and not iss > min_iss:
            iss = min_iss
        sink.event(SegmentReceived(now, key, syn, State.LISTEN))
        conn = Connection.passive_open(
            self, syn, iss=iss, config=config, now=now, sink=sink, adv_mss=listener.mss
        )
        self._connections[key] = conn
        conn.counted_half_open = True
        self._half_open += 1
        self._half_open_peak = max(self._half_open_peak, self._half_open)
        self._schedule(conn)

    def _cookie_candidate(self, segment: Segment, now: float) -> bool:
        """Worth checking as a cookie: cookies are on, were sent lately, and it is a plain ACK."""
        return (
            self.config.syn_cookies
            and now <= self._cookies_valid_until
            and not int(segment.flags) & (_SYN | _RST)
        )

    def _try_cookie(self, listener: ListenSocket, segment: Segment, now: float, sink: Sink) -> bool:
        """An ACK for no connection may complete a cookie handshake (RFC 4987 §3.6)."""
        if not self._cookie_candidate(segment, now):
            return False
        key = segment.key
        peer_mss = self._cookies.check(key, segment.ack - 1, segment.seq - 1, now)
        if peer_mss is None:
            return False
        if len(self._connections) >= self.config.max_connections:
            # No RST: the cookie stays valid, the client retransmits and may find room.
            sink.drop(None, segment, DropReason.TABLE_FULL, "valid SYN cookie, but the table is full")
            return True
        if listener.app_factory is None and len(listener.queue) >= listener.backlog:
            sink.drop(
                None, segment, DropReason.ACCEPT_QUEUE_FULL, "valid SYN cookie, but the accept queue is full"
            )
            return True
        sink.event(SegmentReceived(now, key, segment, State.LISTEN))
        sink.event(SynCookie(now, key, True))
        conn = Connection.from_cookie(
            self,
            segment,
            iss=segment.ack - 1,
            peer_mss=peer_mss,
            config=self.config,
            now=now,
            sink=sink,
            adv_mss=listener.mss,
        )
        self._connections[key] = conn
        self._guarded(conn, sink, segment, conn.on_segment, segment, now, sink)
        return True

    # ------------------------------------------------------------------ accounting

    def _account(self, out: Output) -> None:
        """Update the counters from what one call produced (one place, so a rolled-back
        connection's events are never counted)."""
        self._segments_out += len(out.segments)
        uncounted = _UNCOUNTED
        for event in out.events:
            if type(event) in uncounted:
                continue
            if isinstance(event, StateChanged):
                if event.after is State.ESTABLISHED:
                    self._established += 1
            elif isinstance(event, SegmentSent):
                if event.retransmission:
                    self._retransmissions += 1
                if int(event.segment.flags) & _RST:
                    self._resets_sent += 1
            elif isinstance(event, SegmentDropped):
                self._drops[event.reason] += 1
            elif isinstance(event, SynCookie):
                if event.accepted:
                    self._cookies_accepted += 1
                else:
                    self._cookies_sent += 1
            elif isinstance(event, ConnectionReset):
                if event.by_peer:
                    self._resets_received += 1
            elif isinstance(event, LossRecovery):
                self._recovery_steps[event.step] += 1
            elif isinstance(event, TimerFired) and event.timer is TimerKind.IDLE:
                if event.attempt == 1:
                    self._idle_closed += 1
                else:
                    self._idle_reset += 1


__all__ = ["ListenSocket", "ListenerStats", "Stack", "StackConfig"]

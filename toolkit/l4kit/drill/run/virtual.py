"""The l4kit target: a script played against l4kit's own TCP core on a virtual clock.

No privileges, no network, no real time: the core (:class:`l4kit.core.Stack`) gets
the script's packets as :class:`~l4kit.wire.Segment` values at the script's times,
its timers run when the virtual clock passes them, and the script's system calls
go to its socket API (listen, accept, connect, send, recv, shutdown, close, poll,
errno-named errors). A run is deterministic: the same script gives the same
packets at the same microseconds, every time.

The runner (:mod:`l4kit.drill.run.loop`) is the same as the kernel target's. What
differs is underneath:

- time moves only when the runner waits (for an event's time, for a packet): the
  clock then jumps from one of the core's timers to the next, running each;
- a blocking call (``+0...0.1 read(...)``) runs in a thread that only ever runs
  while the main thread waits for it: it parks when the core would block, and is
  woken when what it waits for becomes true (readiness, or its start time), at the
  virtual time it became true;
- a call that would block without being written as blocking fails its line
  (nothing could arrive while the script waited: the kernel would hang);
- shell commands are not run (the core has no sysctls); ICMP, and the system calls
  and options the core has no counterpart for, fail with ``unsupported: ...``.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from l4kit.core import SHUT_RD, SHUT_RDWR, SHUT_WR, Stack, StackConfig
from l4kit.core.connection import Connection
from l4kit.core.events import Output, SegmentReceived, SegmentSent
from l4kit.core.stack import ListenSocket
from l4kit.core.states import State
from l4kit.drill.run.loop import (
    CallOutcome,
    Failure,
    Frame,
    RunConfig,
    Runner,
    ScriptResult,
    TargetUnsupported,
)
from l4kit.drill.run.syscalls import (
    CallError,
    FdTable,
    UnsupportedCall,
    accepted,
    bracketed,
    call_args,
    check_result,
    check_revents,
    pollfds,
    shown,
    value,
)
from l4kit.drill.run.tcpinfo import CONSTANTS
from l4kit.drill.script.model import AnyValue, Expression, Field, ListValue, Script, Struct, Syscall
from l4kit.drill.script.printer import format_expression
from l4kit.drill.script.session import Mismatch, ScriptSocket, Sockets
from l4kit.drill.script.symbols import SYMBOLS
from l4kit.drill.script.wirepacket import WirePacket, decode_wire
from l4kit.errors import ParseError
from l4kit.wire.packet import decode_packet, encode_packet
from l4kit.wire.segment import Endpoint, FourTuple

START_US: Final = 1_000_000  # the virtual clock's reading when a script starts
LINUX_RECEIVE_BUFFER: Final = 15_728_640
SECRET: Final = b"l4kit drill virtual clock"  # fixed: the same ISNs and ports in every run
O_NONBLOCK: Final = SYMBOLS["O_NONBLOCK"]
O_RDWR: Final = SYMBOLS["O_RDWR"]

# Linux's numbering of the states, as tcpi_state reports them.
_TCPI_STATE: Final = {
    State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11,
}  # fmt: skip


class _Cancelled(BaseException):
    """Raised in a parked blocking call's thread when the script ends without it."""


class WouldBlock(Exception):  # noqa: N818 - a call's answer, not an error
    """The call cannot complete now; ``ready`` says when to try it again."""

    def __init__(self, ready: Callable[[], bool], what: str) -> None:
        super().__init__(what)
        self.ready = ready
        self.what = what


@dataclass
class VirtualSocket:
    """A script's socket on the core: unbound, listening, or a connection."""

    family: int
    nonblocking: bool = False
    bound: tuple[str, int] | None = None
    listener: ListenSocket | None = None
    conn: Connection | None = None
    mss: int | None = None
    nodelay: bool = False
    connecting: bool = False
    sent_so_far: int = 0  # of a blocking write that waits for room, what it has queued


class _Worker:
    """The thread of a blocking call: it runs only while the main thread waits for it."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.parked = threading.Event()
        self.done = False
        self.wake_at: int | None = None
        self.ready: Callable[[], bool] | None = None
        self.thread: threading.Thread | None = None
        self.cancelled = False

    def runnable(self, now: int) -> bool:
        if self.done or not self.parked.is_set():
            return False
        if self.wake_at is not None:
            return now >= self.wake_at
        return self.ready is not None and self.ready()


class VirtualTarget:
    """l4kit's core on a virtual clock (see the module docstring)."""

    name = "l4kit"
    runs_commands = False

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.addresses = config.addresses
        self.clock = START_US
        self.stack = Stack(
            StackConfig(
                secret=SECRET,
                # Linux's floor for the retransmission timeout (its TCP_RTO_MIN), so that
                # scripts written for Linux time their retransmissions alike; RFC 6298's
                # 1 s floor is a SHOULD.
                min_rto=0.2,
                # The receive buffer of the environment packetdrill's scripts assume
                # (tcp_rmem's maximum 15728640), so the SYN-ACK offers Linux's window
                # scale there, 8.
                window=LINUX_RECEIVE_BUFFER,
            )
        )
        self.calls = VirtualCalls(self)
        self.outbound: deque[WirePacket] = deque()
        self.capture: list[Frame] = []
        self.worker: _Worker | None = None
        self.counts: dict[FourTuple, list[int]] = {}  # per connection: segments in, out, retransmitted
        self._local = threading.local()
        self._next_port = 40000

    # ------------------------------------------------------------ clock

    @property
    def now_s(self) -> float:
        return self.clock / 1e6

    def now_us(self) -> int:
        return self.clock

    def start_time(self) -> int:
        return self.clock

    def begin(self, start_us: int) -> None:
        pass

    def sleep_until(self, when_us: int) -> None:
        worker = self._current_worker()
        if worker is not None:  # a blocking call's thread waits for its start time
            if when_us > self.clock:
                self._park(worker, wake_at=when_us)
            return
        self._advance(when_us)

    def _timer_due_us(self) -> int | None:
        due = self.stack.poll_at()
        return None if due is None else max(math.ceil(due * 1e6), self.clock)

    def _advance(self, until_us: int) -> None:
        """Move the clock to ``until_us``, running the core's timers and waking the
        blocking call at the times they fall due, in order."""
        self._run_worker()
        while True:
            steps = [self._timer_due_us()]
            worker = self.worker
            if worker is not None and not worker.done and worker.wake_at is not None:
                steps.append(worker.wake_at)
            due = min((step for step in steps if step is not None and step <= until_us), default=None)
            if due is None:
                break
            self.clock = max(self.clock, due)
            timer = self._timer_due_us()
            if timer is not None and timer <= self.clock:
                self._take(self.stack.tick(self.now_s))
            self._run_worker()
        self.clock = max(self.clock, until_us)
        self._run_worker()

    # ------------------------------------------------------------ packets

    def _take(self, output: Output) -> None:
        counts = self.counts
        for event in output.events:
            if type(event) is SegmentSent:
                tally = counts.setdefault(event.key, [0, 0, 0])
                tally[1] += 1
                tally[2] += event.retransmission
            elif type(event) is SegmentReceived:
                counts.setdefault(event.key, [0, 0, 0])[0] += 1
        for segment in output.segments:
            data = encode_packet(segment)
            packet = decode_wire(data, self.clock)
            if packet is not None:
                self.outbound.append(packet)
                if self.config.capture:
                    self.capture.append(Frame(self.clock, data, True))

    def inject(self, data: bytes) -> None:
        if self.config.capture:
            self.capture.append(Frame(self.clock, data, False))
        if _is_icmp(data):
            raise TargetUnsupported("ICMP messages on the l4kit target")
        try:
            segment = decode_packet(data)
        except ParseError:
            return  # what the core's decoder refuses, the core never sees
        self._take(self.stack.receive(segment, self.now_s))
        self._run_worker()

    def sniff(self, deadline_us: int | None) -> WirePacket | None:
        limit = deadline_us if deadline_us is not None else self.clock + 600_000_000
        while not self.outbound:
            timer = self._timer_due_us()
            if timer is None or timer > limit:
                self._advance(limit)
                if not self.outbound:
                    return None
                break
            self._advance(timer)
        return self.outbound.popleft()

    def frames(self) -> list[Frame]:
        return list(self.capture)

    def ephemeral_port(self) -> int:
        self._next_port += 1
        return self._next_port - 1

    # ------------------------------------------------------------ calls

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        worker = self._current_worker()
        while True:
            # A socket call runs at the time of the core's last driver call: move that to now.
            self._flush()
            try:
                outcome = self.calls.execute(call, sockets)
            except WouldBlock as blocked:
                if worker is None:
                    return CallOutcome(
                        "",
                        Mismatch(
                            "blocking",
                            "a call that returns",
                            f"blocked: {blocked.what}",
                            f"the call would block ({blocked.what}) and nothing can arrive while the "
                            "script waits for it: write it as a blocking call (+0...1 "
                            f"{call.name}(...)) or make the socket non-blocking",
                        ),
                    )
                self._flush()
                self._park(worker, ready=blocked.ready)
                continue
            self._flush()
            return outcome

    def _flush(self) -> None:
        self._take(self.stack.flush(self.now_s))

    def _current_worker(self) -> _Worker | None:
        worker: _Worker | None = getattr(self._local, "worker", None)
        return worker

    def _park(
        self, worker: _Worker, *, wake_at: int | None = None, ready: Callable[[], bool] | None = None
    ) -> None:
        """In a blocking call's thread: hand control back to the main thread until
        woken (at ``wake_at``, or once ``ready()``)."""
        worker.wake_at = wake_at
        worker.ready = ready
        worker.wake.clear()
        worker.parked.set()
        worker.wake.wait()
        if worker.cancelled:
            raise _Cancelled

    def _run_worker(self) -> None:
        """In the main thread: let the blocking call run if what it waits for came
        true, until it parks again or returns."""
        worker = self.worker
        while worker is not None and worker.runnable(self.clock):
            worker.parked.clear()
            worker.wake_at = None
            worker.ready = None
            worker.wake.set()
            worker.parked.wait()

    def start_blocking(self, work: Callable[[], None]) -> object:
        worker = _Worker()

        def body() -> None:
            self._local.worker = worker
            try:
                work()
            except _Cancelled:
                pass
            finally:
                worker.done = True
                worker.parked.set()

        worker.thread = threading.Thread(target=body, name="drill-virtual-call", daemon=True)
        self.worker = worker
        worker.thread.start()
        worker.parked.wait()
        return worker

    def close(self) -> None:
        """End a blocking call still parked when the script ends, so its thread exits."""
        worker = self.worker
        if worker is not None and not worker.done and worker.thread is not None:
            worker.cancelled = True
            worker.parked.clear()
            worker.wake.set()
            worker.thread.join(timeout=5)

    def is_done(self, handle: object) -> bool:
        assert isinstance(handle, _Worker)
        return handle.done

    def wait_done(self, handle: object, timeout_us: int) -> bool:
        assert isinstance(handle, _Worker)
        deadline = self.clock + timeout_us
        while not handle.done:
            steps = [self._timer_due_us()]
            if handle.wake_at is not None:
                steps.append(handle.wake_at)
            due = min((step for step in steps if step is not None and step <= deadline), default=None)
            if due is None:
                self._advance(deadline)
                break
            self._advance(due)
        return handle.done

    def run_command(self, text: str) -> tuple[int, str]:
        return 0, ""

    def tcp_info(self, sock: ScriptSocket) -> dict[str, int] | None:
        handle = sock.live_fd
        if not isinstance(handle, VirtualSocket) or handle not in self.calls.open_sockets():
            return None
        return tcp_info_values(handle, self.counts)


def _is_icmp(data: bytes) -> bool:
    version = data[0] >> 4 if data else 0
    return (version == 4 and len(data) > 9 and data[9] == 1) or (
        version == 6 and len(data) > 6 and data[6] == 58
    )


def tcp_info_values(sock: VirtualSocket, counts: dict[FourTuple, list[int]]) -> dict[str, int]:
    """The ``tcpi_*`` values the core has (Linux's names and units: microseconds,
    segments), and the constants scripts compare them with. ``counts`` are the
    segments in, out and retransmitted per connection, as the core's events told."""
    values = dict(CONSTANTS)
    if sock.conn is None:
        values["tcpi_state"] = (
            _TCPI_STATE[State.LISTEN] if sock.listener is not None else _TCPI_STATE[State.CLOSED]
        )
        return values
    info = sock.conn.info()
    mss = max(info.send_mss, 1)
    values.update(
        tcpi_state=_TCPI_STATE[info.state],
        tcpi_ca_state=0,
        tcpi_retransmits=info.retransmissions,
        tcpi_options=(
            (CONSTANTS["TCPI_OPT_TIMESTAMPS"] if info.timestamps else 0)
            | (CONSTANTS["TCPI_OPT_SACK"] if info.sack else 0)
            | (CONSTANTS["TCPI_OPT_WSCALE"] if info.snd_wscale or info.rcv_wscale else 0)
        ),
        tcpi_snd_wscale=info.snd_wscale,
        tcpi_rcv_wscale=info.rcv_wscale,
        tcpi_sacked=math.ceil(info.sacked_bytes / mss),
        tcpi_rto=round(info.rto * 1e6),
        tcpi_snd_mss=info.send_mss,
        tcpi_rcv_mss=info.advertised_mss,
        tcpi_advmss=info.advertised_mss,
        tcpi_unacked=math.ceil((info.snd_nxt - info.snd_una) / mss) if info.snd_nxt != info.snd_una else 0,
        tcpi_rtt=round((info.srtt or 0.0) * 1e6),
        tcpi_rttvar=round(info.rttvar * 1e6),
        tcpi_snd_cwnd=info.cwnd // mss,
        tcpi_snd_ssthresh=info.ssthresh // mss,
        tcpi_snd_wnd=info.snd_wnd,
        tcpi_rcv_wnd=info.rcv_wnd,
        tcpi_bytes_received=info.bytes_in,
        tcpi_bytes_sent=info.bytes_out,
        tcpi_notsent_bytes=info.send_buffered,
    )
    segs_in, segs_out, retransmitted = counts.get(info.key, (0, 0, 0))
    values.update(tcpi_segs_in=segs_in, tcpi_segs_out=segs_out, tcpi_total_retrans=retransmitted)
    return values


class VirtualCalls:
    """The script's system calls on the core's socket API."""

    def __init__(self, target: VirtualTarget) -> None:
        self.target = target
        self.fds = FdTable()
        self.sockets: dict[int, VirtualSocket] = {}

    def open_sockets(self) -> list[VirtualSocket]:
        return list(self.sockets.values())

    @property
    def stack(self) -> Stack:
        return self.target.stack

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        handler = getattr(self, f"call_{call.name}", None)
        if handler is None:
            return CallOutcome("", unsupported=f"{call.name}() on the l4kit target")
        try:
            outcome: CallOutcome = handler(call, sockets)
        except CallError as exc:
            return CallOutcome("", Mismatch("argument", "", "", str(exc)))
        except UnsupportedCall as exc:
            return CallOutcome("", unsupported=f"{exc} on the l4kit target")
        return outcome

    # ------------------------------------------------------------ helpers

    def _socket(self, expr: Expression) -> tuple[int, VirtualSocket]:
        script_fd = value(expr)
        sock = self.sockets.get(script_fd)
        if sock is None:
            raise CallError(f"unable to find fd with script fd {script_fd}")
        return script_fd, sock

    def _peer_socket(self, call: Syscall, preposition: str) -> tuple[int, VirtualSocket]:
        """The socket of ``bind``/``accept``/``connect(fd, ..., ...)``: the run knows the
        addresses, so the script may write none."""
        fd_expr, addr, length = call_args(call, 3)
        found = self._socket(fd_expr)
        if not isinstance(addr, AnyValue) or not isinstance(length, AnyValue):
            raise UnsupportedCall(f"{call.name}() {preposition} an address other than ...")
        return found

    @staticmethod
    def _done(call: Syscall, result: int, err: int = 0, *, fd_result: bool = False) -> CallOutcome:
        return CallOutcome(shown(result, err), check_result(call, result, err, fd_result=fd_result))

    @staticmethod
    def _buffer(expr: Expression) -> None:
        if not isinstance(expr, AnyValue):
            raise UnsupportedCall(f"a buffer other than ... ({format_expression(expr)})")

    @staticmethod
    def _errno(exc: OSError) -> int:
        return exc.errno or errno.EIO

    def _conn(self, sock: VirtualSocket) -> Connection:
        if sock.conn is None:
            raise OSError(errno.ENOTCONN, "not connected")
        return sock.conn

    def _local_address(self) -> str:
        return self.target.addresses.local_ip

    # ------------------------------------------------------------ sockets

    def call_socket(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        domain_expr, type_expr, proto_expr = call_args(call, 3)
        domain = self.target.config.socket_family if isinstance(domain_expr, AnyValue) else value(domain_expr)
        kind = value(type_expr)
        if kind & 0xF != SYMBOLS["SOCK_STREAM"] or value(proto_expr) not in (0, SYMBOLS["IPPROTO_TCP"]):
            raise UnsupportedCall("sockets other than TCP stream sockets")
        script_fd = value(call.result)
        if script_fd in self.sockets:
            raise CallError(f"duplicate fd {script_fd} in script")
        sock = VirtualSocket(family=domain, nonblocking=bool(kind & SYMBOLS["SOCK_NONBLOCK"]))
        self.sockets[script_fd] = sock
        sockets.opened(script_fd, sock)
        return CallOutcome(f"= {script_fd}", check_result(call, script_fd, 0, fd_result=True))

    def call_bind(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        _, sock = self._peer_socket(call, "to")
        if sock.bound is not None:
            return self._done(call, -1, errno.EINVAL)
        sock.bound = (self._local_address(), self.target.addresses.bind_port)
        return self._done(call, 0)

    def call_listen(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, backlog = call_args(call, 2)
        script_fd, sock = self._socket(fd_expr)
        address, port = sock.bound or (self._local_address(), self.target.addresses.bind_port)
        try:
            sock.listener = self.stack.listen(address, port, max(value(backlog), 1), mss=sock.mss)
        except OSError as exc:
            return self._done(call, -1, self._errno(exc))
        outcome = self._done(call, 0)
        if outcome.mismatch is None:
            sockets.listening(script_fd)
        return outcome

    def call_accept(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        _, sock = self._peer_socket(call, "with")
        listener = sock.listener
        if listener is None:
            return self._done(call, -1, errno.EINVAL, fd_result=True)
        try:
            conn = listener.accept()
        except BlockingIOError:
            if sock.nonblocking:
                return self._done(call, -1, errno.EAGAIN, fd_result=True)
            raise WouldBlock(
                lambda: listener.readable or listener.closed, "no connection to accept"
            ) from None
        except OSError as exc:
            return self._done(call, -1, self._errno(exc), fd_result=True)
        new_fd = value(call.result)
        new_sock = VirtualSocket(family=sock.family, conn=conn, nodelay=sock.nodelay)
        self.sockets[new_fd] = new_sock  # as packetdrill, an accepted fd may shadow an open one
        outcome = CallOutcome(f"= {new_fd}", check_result(call, new_fd, 0, fd_result=True))
        if outcome.mismatch is None:
            return accepted(outcome, sockets, new_fd, new_sock)
        return outcome

    def call_connect(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        script_fd, sock = self._peer_socket(call, "to")
        if sock.conn is not None:
            conn = sock.conn
            if conn.connected:
                return self._done(call, -1, errno.EISCONN)
            if sock.connecting and conn.state is State.SYN_SENT:
                if sock.nonblocking:
                    return self._done(call, -1, errno.EALREADY)
                raise WouldBlock(lambda: conn.state is not State.SYN_SENT, "the handshake is not over")
            return self._connect_result(call, sock)
        sockets.connecting(script_fd, self.target.addresses)
        addresses = self.target.addresses
        local_port = sock.bound[1] if sock.bound else 0
        try:
            sock.conn = self.stack.connect(
                Endpoint(self._local_address(), local_port),
                Endpoint(addresses.remote_ip, addresses.connect_port),
                mss=sock.mss,
                nodelay=sock.nodelay,
            )
        except OSError as exc:
            return self._done(call, -1, self._errno(exc))
        sock.connecting = True
        if sock.nonblocking:
            return self._done(call, -1, errno.EINPROGRESS)
        conn = sock.conn
        raise WouldBlock(lambda: conn.state is not State.SYN_SENT, "the handshake is not over")

    def _connect_result(self, call: Syscall, sock: VirtualSocket) -> CallOutcome:
        conn = self._conn(sock)
        sock.connecting = False
        if conn.connected:
            return self._done(call, 0)
        return self._done(call, -1, conn.info().error or errno.ECONNREFUSED)

    def call_close(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        (fd_expr,) = call_args(call, 1)
        script_fd, sock = self._socket(fd_expr)
        if sock.listener is not None:
            sock.listener.close()
        if sock.conn is not None:
            sock.conn.close()
        del self.sockets[script_fd]
        sockets.closed(script_fd)
        return self._done(call, 0)

    def call_shutdown(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, how = call_args(call, 2)
        _, sock = self._socket(fd_expr)
        how_value = value(how)
        if how_value not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            return self._done(call, -1, errno.EINVAL)
        try:
            self._conn(sock).shutdown(how_value)
        except OSError as exc:
            return self._done(call, -1, self._errno(exc))
        return self._done(call, 0)

    # ------------------------------------------------------------ data

    def _receive(self, call: Syscall, sock: VirtualSocket, count: int) -> CallOutcome:
        try:
            conn = self._conn(sock)
            data = conn.recv(count)
        except BlockingIOError:
            if sock.nonblocking:
                return self._done(call, -1, errno.EAGAIN)
            raise WouldBlock(lambda: conn.readable, "nothing to read") from None
        except OSError as exc:
            return self._done(call, -1, self._errno(exc))
        return self._done(call, len(data))

    def _transmit(self, call: Syscall, sock: VirtualSocket, count: int) -> CallOutcome:
        """``write``: a blocking socket returns once all ``count`` octets are queued (it
        waits for room, keeping what it queued so far); a non-blocking one returns what
        the buffer took, or EAGAIN."""
        sent = sock.sent_so_far
        try:
            conn = self._conn(sock)
            while sent < count:
                sent += conn.send(bytes(count - sent))
        except BlockingIOError:
            if sock.nonblocking:
                return self._done(call, sent) if sent else self._done(call, -1, errno.EAGAIN)
            sock.sent_so_far = sent
            raise WouldBlock(lambda: conn.writable, "the send buffer is full") from None
        except OSError as exc:
            sock.sent_so_far = 0
            return self._done(call, sent) if sent else self._done(call, -1, self._errno(exc))
        sock.sent_so_far = 0
        return self._done(call, sent)

    def _data_args(self, call: Syscall, *, flags: bool) -> tuple[VirtualSocket, int]:
        """The socket and count of ``read``/``write(fd, ..., count)``, or of
        ``recv``/``send(fd, ..., count, flags)`` (no flags but 0 are run)."""
        args = call_args(call, 4 if flags else 3)
        _, sock = self._socket(args[0])
        self._buffer(args[1])
        if flags and value(args[3]):
            raise UnsupportedCall(f"{call.name}() flags {format_expression(args[3])}")
        return sock, value(args[2])

    def call_read(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        return self._receive(call, *self._data_args(call, flags=False))

    def call_recv(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        return self._receive(call, *self._data_args(call, flags=True))

    def call_write(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        return self._transmit(call, *self._data_args(call, flags=False))

    def call_send(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        return self._transmit(call, *self._data_args(call, flags=True))

    # ------------------------------------------------------------ control

    def call_fcntl(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        args = call_args(call, (2, 3))
        _, sock = self._socket(args[0])
        command = value(args[1])
        if command == SYMBOLS["F_GETFL"]:
            return self._done(call, O_RDWR | (O_NONBLOCK if sock.nonblocking else 0))
        if command == SYMBOLS["F_SETFL"] and len(args) == 3:
            sock.nonblocking = bool(value(args[2]) & O_NONBLOCK)
            return self._done(call, 0)
        raise UnsupportedCall(f"fcntl({format_expression(args[1])})")

    def call_setsockopt(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, level, name, val, _length = call_args(call, 5)
        _, sock = self._socket(fd_expr)
        option = (value(level), value(name))
        if option in (
            (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_REUSEADDR"]),
            (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_REUSEPORT"]),
        ):
            bracketed(val)
            return self._done(call, 0)  # the core has no address reuse to refuse
        if option == (SYMBOLS["IPPROTO_TCP"], SYMBOLS["TCP_NODELAY"]):
            sock.nodelay = bool(bracketed(val))
            if sock.conn is not None:
                sock.conn.set_nodelay(sock.nodelay)
            return self._done(call, 0)
        if option == (SYMBOLS["IPPROTO_TCP"], SYMBOLS["TCP_MAXSEG"]):
            mss = bracketed(val)
            if not 88 <= mss <= 65535:
                return self._done(call, -1, errno.EINVAL)
            sock.mss = mss
            return self._done(call, 0)
        raise UnsupportedCall(f"setsockopt({format_expression(level)}, {format_expression(name)})")

    def call_getsockopt(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, level, name, val, _length = call_args(call, 5)
        _, sock = self._socket(fd_expr)
        option = (value(level), value(name))
        if option == (SYMBOLS["IPPROTO_TCP"], SYMBOLS["TCP_INFO"]) and isinstance(val, Struct):
            return self._compare_fields(call, tcp_info_values(sock, self.target.counts), val)
        if option == (SYMBOLS["SOL_SOCKET"], SYMBOLS["SO_ERROR"]):
            have = sock.conn.info().error if sock.conn is not None else 0
            if sock.conn is not None:
                sock.conn.error = 0  # reading SO_ERROR clears it, as in Linux
        elif option == (SYMBOLS["IPPROTO_TCP"], SYMBOLS["TCP_NODELAY"]):
            have = int(sock.nodelay)
        elif option == (SYMBOLS["IPPROTO_TCP"], SYMBOLS["TCP_MAXSEG"]):
            have = sock.conn.info().send_mss if sock.conn is not None else (sock.mss or 536)
        else:
            raise UnsupportedCall(f"getsockopt({format_expression(level)}, {format_expression(name)})")
        want = bracketed(val) if isinstance(val, ListValue) else None
        outcome = self._done(call, 0)
        if outcome.mismatch is None and want is not None and want != have:
            return CallOutcome(
                outcome.shown,
                Mismatch(
                    "optval", str(want), str(have), f"Bad getsockopt optval: expected: {want} actual: {have}"
                ),
            )
        return CallOutcome(f"{outcome.shown} [{have}]", outcome.mismatch)

    def _compare_fields(self, call: Syscall, info: dict[str, int], val: Struct) -> CallOutcome:
        outcome = self._done(call, 0)
        for item in val.items:
            if not isinstance(item, Field):
                raise CallError(
                    f"expected tcpi_name=value in the TCP_INFO structure, not {format_expression(item)}"
                )
            if item.name not in info:
                raise UnsupportedCall(f"TCP_INFO field {item.name}")
            if isinstance(item.value, AnyValue):
                continue
            want, have = value(item.value), info[item.name]
            if want != have:
                message = f"Bad getsockopt TCP_INFO {item.name}: expected: {want} actual: {have}"
                return CallOutcome(outcome.shown, Mismatch(item.name, str(want), str(have), message))
        return outcome

    def call_poll(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fds, nfds, timeout = call_args(call, 3)
        entries = pollfds(fds, nfds, lambda fd: self._socket(fd)[1])
        always = SYMBOLS["POLLERR"] | SYMBOLS["POLLHUP"] | SYMBOLS["POLLNVAL"]

        def revents_now() -> list[int]:
            out = []
            for sock, events, _ in entries:
                bits = (
                    sock.conn.poll()
                    if sock.conn is not None
                    else (sock.listener.poll() if sock.listener else 0)
                )
                out.append(bits & (events | always))
            return out

        revents = revents_now()
        if not any(revents) and value(timeout) != 0:
            raise UnsupportedCall("poll() with a timeout when nothing is ready")
        result = sum(1 for bits in revents if bits)
        outcome = self._done(call, result)
        if outcome.mismatch is not None:
            return outcome
        return check_revents(outcome, [want for _, _, want in entries], revents, hex) or outcome


# ---------------------------------------------------------------- running


def run_script(script: Script, config: RunConfig) -> ScriptResult:
    """Run ``script`` against l4kit's core on a virtual clock (in this process)."""
    start = time.monotonic()
    target = VirtualTarget(config)
    runner = Runner(script, target, config)
    try:
        passed, failure = runner.run()
    except Exception as exc:  # a bug in the target must fail the script, not the command
        passed, failure = False, Failure(0, f"internal error: {exc!r}")
    finally:
        target.close()
    frames = target.frames() if config.capture else []
    return runner.result("l4kit", passed, failure, time.monotonic() - start, frames)


def benchmark(paths: list[object], seconds: float = 2.0) -> float:
    """Scripts per second, parsing included, over ``paths`` (``benchmarks/bench_drill.py``)."""
    from pathlib import Path

    from l4kit.drill.run.settings import build_config
    from l4kit.drill.script import parse

    texts = [(str(path), Path(str(path)).read_text()) for path in paths]
    count = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for name, text in texts:
            script = parse(text, name)
            config = build_config([(option.name, option.value) for option in script.options], {})
            run_script(script, config)
            count += 1
    return count / (time.perf_counter() - begin)

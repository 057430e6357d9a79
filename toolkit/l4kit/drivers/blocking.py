"""Blocking sockets on the sans-IO core, for drivers that run applications in threads.

The core never blocks and never reads a clock. :class:`BlockingStack` shares one
:class:`~l4kit.core.stack.Stack` between threads: the driver's thread gives it what
arrives (:meth:`BlockingStack.receive`) and runs its timers (:meth:`BlockingStack.tick`,
when :meth:`BlockingStack.poll_at` says); application threads call the blocking socket
methods, which wait on a condition variable until the core's readiness says the call
can complete, or until their timeout. Every call into the core holds one lock; what it
sends goes to ``transmit`` (under that lock, in order), and ``wake`` tells the driver's
thread that a deadline may have moved (a ``send`` armed a retransmission timer).
:class:`TimerThread` is that thread for drivers whose other threads block on I/O.

Errors are those of the non-blocking API (:func:`~l4kit.core.connection.socket_error`):
``ConnectionRefusedError``, ``ConnectionResetError``, ``TimeoutError`` ..., and
``TimeoutError`` (ETIMEDOUT) when a call's own ``timeout`` runs out.
"""

from __future__ import annotations

import errno
import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from l4kit.core.connection import Connection, socket_error
from l4kit.core.events import Output
from l4kit.core.stack import AppFactory, ListenSocket, Stack
from l4kit.wire.segment import Endpoint, Segment

T = TypeVar("T")

#: A timer source: when it is next due (None: nothing armed), and what runs it then.
Timer = tuple[Callable[[], float | None], Callable[[], object]]


class BlockingStack:
    """A :class:`Stack` for threads: one lock, one condition, blocking sockets."""

    def __init__(
        self,
        stack: Stack,
        transmit: Callable[[Output], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.stack = stack
        self._transmit = transmit
        self._clock = clock
        self._wake = wake
        self._ready = threading.Condition()

    # ------------------------------------------------------------------ the driver's thread

    def receive(self, segment: Segment) -> None:
        with self._ready:
            self._transmit(self.stack.receive(segment, self._clock()))
            self._ready.notify_all()

    def tick(self) -> None:
        with self._ready:
            self._transmit(self.stack.tick(self._clock()))
            self._ready.notify_all()

    def poll_at(self) -> float | None:
        with self._ready:
            return self.stack.poll_at()

    def shutdown(self) -> None:
        with self._ready:
            self._transmit(self.stack.shutdown(self._clock()))
            self._ready.notify_all()

    # ------------------------------------------------------------------ application threads

    def connect(self, local: Endpoint, remote: Endpoint, *, timeout: float | None = None) -> BlockingSocket:
        """Connect and wait for the handshake (ConnectionRefusedError, TimeoutError ...)."""
        conn = self._call(lambda: self.stack.connect(local, remote))
        sock = BlockingSocket(self, conn)
        try:
            self._wait(lambda: conn.connected or conn.closed or conn.error != 0, timeout, "connect")
        except BaseException:
            # Our own timeout (or an interrupt): give the half-made connection up
            # (RFC 9293 §3.10.5, ABORT in SYN-SENT: the TCB goes, nothing is sent).
            self._call(conn.abort)
            raise
        with self._ready:
            if conn.error:
                code, conn.error = conn.error, 0
                raise socket_error(code)
            if not conn.connected:
                raise socket_error(errno.ECONNABORTED, "the connection ended during the handshake")
        return sock

    def listen(
        self, address: str, port: int, backlog: int = 128, *, app_factory: AppFactory | None = None
    ) -> BlockingListener:
        return BlockingListener(
            self, self._call(lambda: self.stack.listen(address, port, backlog, app_factory=app_factory))
        )

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` (calls on the stack, or on a connection) under the lock, then
        send what it produced and wake every waiting thread."""
        return self._call(work)

    def locked(self, work: Callable[[], T]) -> T:
        """Run ``work`` under the lock, nothing else (a read of state the lock guards)."""
        with self._ready:
            return work()

    def wait(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Wait until ``ready()`` (read under the lock) holds; ``TimeoutError`` after ``timeout``."""
        self._wait(ready, timeout, what)

    def _call(self, work: Callable[[], T]) -> T:
        """One socket call: under the lock, then what it sent goes out."""
        with self._ready:
            # The stack's clock moves only when a driver calls it: bring it to now
            # first, so that what the call arms (a SYN's retransmission timer) counts
            # from the present, not from the last segment or timer.
            earlier = self.stack.flush(self._clock())
            if earlier.segments or earlier.events:
                self._transmit(earlier)
            try:
                return work()
            finally:
                out = self.stack.flush(self._clock())
                if out.segments or out.events:
                    self._transmit(out)
                self._ready.notify_all()
                if self._wake is not None:
                    self._wake()

    def _wait(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not ready():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise socket_error(errno.ETIMEDOUT, f"{what} timed out")
                self._ready.wait(left)


class BlockingSocket:
    """A connection's blocking calls (each with an optional ``timeout`` in seconds)."""

    def __init__(self, owner: BlockingStack, conn: Connection) -> None:
        self._owner = owner
        self.conn = conn

    def sendall(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send all of ``data``, waiting for room in the send buffer."""
        offset = 0
        while offset < len(data):
            self._owner._wait(lambda: self.conn.writable, timeout, "send")
            offset += self._owner._call(functools.partial(self._try_send, data[offset:]))

    def _try_send(self, data: bytes) -> int:
        """What ``send`` took (0 when another thread filled the buffer meanwhile)."""
        try:
            return self.conn.send(data)
        except BlockingIOError:
            return 0

    def recv(self, limit: int = 65536, *, timeout: float | None = None) -> bytes:
        """Up to ``limit`` octets, waiting for some; ``b""`` at end of stream."""
        self._owner._wait(lambda: self.conn.readable, timeout, "recv")
        return self._owner._call(lambda: self.conn.recv(limit))

    def shutdown(self, how: int) -> None:
        self._owner._call(lambda: self.conn.shutdown(how))

    def close(self) -> None:
        self._owner._call(self.conn.close)

    def abort(self) -> None:
        self._owner._call(self.conn.abort)


class BlockingListener:
    """A listening socket's blocking ``accept``."""

    def __init__(self, owner: BlockingStack, sock: ListenSocket) -> None:
        self._owner = owner
        self.sock = sock

    def accept(self, *, timeout: float | None = None) -> BlockingSocket:
        self._owner._wait(lambda: self.sock.readable or self.sock.closed, timeout, "accept")
        return BlockingSocket(self._owner, self._owner._call(self.sock.accept))

    def close(self) -> None:
        self._owner._call(self.sock.close)


class TimerThread:
    """A thread that runs timers when they are due and otherwise sleeps until the
    earliest deadline, or until :meth:`wake` says a deadline may have moved."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.closing = False
        self._clock = clock
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timers: Sequence[Timer]) -> None:
        """Run ``timers`` (the first one due runs first) until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, args=(tuple(timers),), name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self.closing = True
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, timers: tuple[Timer, ...]) -> None:
        while True:
            self._wakeup.clear()
            if self.closing:
                return
            now = self._clock()
            deadlines = []
            for poll_at, run in timers:
                due = poll_at()
                if due is not None and due <= now:
                    run()
                    break
                if due is not None:
                    deadlines.append(due)
            else:
                self._wakeup.wait(min(deadlines) - now if deadlines else None)

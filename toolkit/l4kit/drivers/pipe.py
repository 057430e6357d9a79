"""Two cores joined by a sans-IO pipe: a client core and a server core, no network.

:class:`PipeClient` is a client like :class:`l4kit.live.Client` (``connect`` gives a
:class:`~l4kit.drivers.client.ClientSocket` with the same blocking calls), but every
segment its core sends is handed straight to the server's core (any object with
``receive(segment, now)``, ``tick(now)`` and ``poll_at()``: a
:class:`~l4kit.core.stack.Stack`, l4kit's responder's
:class:`~l4kit.core.listener.Listener`), and every segment that one answers straight
back: a lossless, in-order wire of zero delay. ``replay --through-responder`` plays
captured clients against l4kit's own responder this way, through the same code as
``l4kit liveplay`` against a live server.

Both cores share one lock (the client's :class:`~l4kit.drivers.blocking.BlockingStack`);
a timer thread runs the timers of both.
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from l4kit.core.config import StackConfig
from l4kit.core.events import Output
from l4kit.core.stack import Stack
from l4kit.drivers.blocking import BlockingStack, TimerThread
from l4kit.drivers.client import ClientSocket
from l4kit.drivers.transitions import SegmentRow, TransitionRecorder
from l4kit.wire.segment import Endpoint, FourTuple, Segment

# Segments carried in one call: two cores exchange a handful per call; a loop between
# them (a bug) must not hang the caller.
MAX_CARRIED = 100_000


class ServerCore(Protocol):
    def receive(self, segment: Segment, now: float) -> Output: ...

    def tick(self, now: float) -> Output: ...

    def poll_at(self) -> float | None: ...


class PipeClient:
    """A client core whose wire is ``server``, another core."""

    def __init__(
        self,
        server: ServerCore,
        *,
        local_address: str = "192.0.2.1",
        config: StackConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.local_address = local_address
        self.stack = Stack(config or StackConfig(secret=os.urandom(32)))
        self._timers = TimerThread("l4kit-pipe-timers", clock)
        self.blocking = BlockingStack(self.stack, self._carry, clock=clock, wake=self._timers.wake)
        self._clock = clock
        self._recorder = TransitionRecorder()
        self._rows: dict[FourTuple, list[SegmentRow]] = {}
        # The server core's timers run under the lock too: what they send reaches the client core.
        server_due = functools.partial(self.blocking.locked, server.poll_at)
        server_run = functools.partial(self.blocking.call, self._server_tick)
        self._timers.start([(self.blocking.poll_at, self.blocking.tick), (server_due, server_run)])

    def connect(
        self, host: str, port: int, *, source_port: int = 0, timeout: float | None = 10.0
    ) -> ClientSocket:
        """Connect to ``host``:``port`` (the server core's address) from
        ``local_address`` (the same family as ``host``; ``::1`` for IPv6 when
        ``local_address`` is IPv4)."""
        local_address = self.local_address
        if (":" in host) != (":" in local_address):
            local_address = "2001:db8::1" if ":" in host else "192.0.2.1"
        local = Endpoint(local_address, source_port)
        remote = Endpoint(host, port)
        if source_port == 0:
            local = Endpoint(local_address, self._free_port(local_address, remote))
        key = FourTuple(local, remote)
        rows = self._rows.setdefault(key, [])
        conn = self.blocking.connect(local, remote, timeout=timeout)
        return ClientSocket(self.blocking, conn, key, rows, timeout=timeout)

    def _free_port(self, address: str, remote: Endpoint) -> int:
        low, high = self.stack.config.ephemeral_ports
        for port in range(low, high + 1):
            key = FourTuple(Endpoint(address, port), remote)
            if key not in self._rows:
                return port
        raise OSError("no ephemeral port is free")

    # ------------------------------------------------------------------ the pipe

    def _carry(self, out: Output) -> None:
        """The client core's output (under the lock): its segments to the server core,
        the server's answers back, until both are quiet."""
        self._record(out)
        self._to_server(deque(out.segments))
        self._timers.wake()

    def _to_server(self, queue: deque[Segment]) -> None:
        carried = 0
        while queue and carried < MAX_CARRIED:
            segment = queue.popleft()
            carried += 1
            now = self._clock()
            answered = self.server.receive(segment, now)
            for back in answered.segments:
                out = self.stack.receive(back, now)
                self._record(out)
                queue.extend(out.segments)

    def _record(self, out: Output) -> None:
        for row in self._recorder.feed_all(out.events):
            rows = self._rows.get(row.key)
            if rows is not None:
                rows.append(row)

    def _server_tick(self) -> None:
        """The server core's due timers; what they send reaches the client core."""
        now = self._clock()
        queue: deque[Segment] = deque()
        for segment in self.server.tick(now).segments:
            out = self.stack.receive(segment, now)
            self._record(out)
            queue.extend(out.segments)
        self._to_server(queue)

    def close(self) -> None:
        """Reset what is still open in the client core; stop the timer thread."""
        if self._timers.closing:
            return
        self.blocking.shutdown()
        self._timers.stop()

    def __enter__(self) -> PipeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

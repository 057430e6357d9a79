"""A client connection's blocking socket, whatever carries its segments.

:class:`ClientSocket` is what :meth:`l4kit.live.Client.connect` (the live wire) and
:meth:`l4kit.drivers.pipe.PipeClient.connect` (a sans-IO pipe to another core) return:
the calls of a blocking socket with a default timeout, byte counts, and the
connection's flag transitions as :class:`~l4kit.drivers.transitions.SegmentRow` values
(the rows every table prints), kept after the socket is closed. What the socket holds
outside the core (a live socket's firewall rule, port and filter) is given back once,
by ``release``, when it is closed or aborted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

from l4kit.core.connection import SHUT_WR, ConnectionInfo
from l4kit.core.states import State
from l4kit.drivers.blocking import BlockingSocket, BlockingStack
from l4kit.drivers.transitions import SegmentRow
from l4kit.wire.segment import Endpoint, FourTuple

DEFAULT: Any = object()  # "the socket's own timeout" (None means: wait for ever)


class ClientSocket:
    """One connection: blocking calls with a timeout.

    ``timeout`` (seconds, None: wait for ever) is the default of every call; each call
    takes its own. Errors are the socket module's: ``ConnectionResetError``,
    ``TimeoutError``, ``BrokenPipeError`` ...
    """

    def __init__(
        self,
        blocking: BlockingStack,
        conn: BlockingSocket,
        key: FourTuple,
        rows: list[SegmentRow],
        *,
        timeout: float | None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._blocking = blocking
        self._conn = conn
        self._release = release
        self._released = False
        self.key = key
        self.rows = rows
        self.timeout = timeout
        self.sent = 0  # payload octets handed to the connection
        self.received = 0  # payload octets read from it

    @property
    def local(self) -> Endpoint:
        return self.key.local

    @property
    def remote(self) -> Endpoint:
        return self.key.remote

    @property
    def state(self) -> State:
        """The connection's RFC 9293 state now."""
        return self._conn.conn.state

    def info(self) -> ConnectionInfo:
        """The connection's ``TCP_INFO`` (:meth:`l4kit.core.connection.Connection.info`)."""
        return self._blocking.call(self._conn.conn.info)

    def _timeout(self, timeout: Any) -> float | None:
        return self.timeout if timeout is DEFAULT else timeout

    def sendall(self, data: bytes, *, timeout: Any = DEFAULT) -> None:
        """Send all of ``data``, waiting for room in the send buffer."""
        self._conn.sendall(bytes(data), timeout=self._timeout(timeout))
        self.sent += len(data)

    def send(self, data: bytes, *, timeout: Any = DEFAULT) -> int:
        """As :meth:`sendall`; returns ``len(data)``."""
        self.sendall(data, timeout=timeout)
        return len(data)

    def recv(self, limit: int = 65536, *, timeout: Any = DEFAULT) -> bytes:
        """Up to ``limit`` octets as they arrived; ``b""`` once the peer has closed."""
        data = self._conn.recv(limit, timeout=self._timeout(timeout))
        self.received += len(data)
        return data

    def recv_all(self, *, timeout: Any = DEFAULT) -> bytes:
        """Everything until the peer's FIN (``timeout`` applies to each wait)."""
        chunks = []
        while chunk := self.recv(timeout=timeout):
            chunks.append(chunk)
        return b"".join(chunks)

    def shutdown(self, how: int = SHUT_WR) -> None:
        """``SHUT_WR`` (the default): our FIN after what is queued (a half-close)."""
        self._conn.shutdown(how)

    def wait_closed(self, timeout: Any = DEFAULT) -> bool:
        """Wait until the connection is over on our side (CLOSED or TIME-WAIT)."""
        conn = self._conn.conn
        with contextlib.suppress(TimeoutError):
            self._blocking.wait(lambda: conn.closed, self._timeout(timeout), "close")
        return conn.closed

    def close(self, *, linger: Any = DEFAULT) -> None:
        """CLOSE: our FIN after what is queued (a RST if data arrived unread, as Linux),
        then wait up to ``linger`` seconds (default: the socket's timeout) for the
        peer's FIN; what is still open then is reset."""
        if self._released:
            return
        try:
            conn = self._conn.conn
            if not conn.closed and not conn.closed_by_app:
                with contextlib.suppress(OSError):
                    self._conn.close()
            if not self.wait_closed(linger):
                with contextlib.suppress(OSError):
                    self._blocking.call(conn.abort)
        finally:
            self._give_back()

    def abort(self) -> None:
        """ABORT: RST now (RFC 9293 §3.10.5)."""
        if self._released:
            return
        try:
            with contextlib.suppress(OSError):
                self._conn.abort()
        finally:
            self._give_back()

    def on_release(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` too when the socket is closed or aborted (after what it holds
        is given back): a :func:`l4kit.live.connect` socket closes its own client so."""
        first = self._release

        def both() -> None:
            try:
                if first is not None:
                    first()
            finally:
                callback()

        self._release = both

    def _give_back(self) -> None:
        self._released = True
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def __enter__(self) -> ClientSocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.local} -> {self.remote} {self.state}>"

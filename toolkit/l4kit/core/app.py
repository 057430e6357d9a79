"""The application seam: what runs on top of a connection.

An application is sans-IO too. It is written on the socket API of
:class:`~l4kit.core.connection.Connection` (``recv``, ``send``, ``shutdown``,
``close``); attached to a connection (a listener's ``app_factory``, or
``Stack.listen(..., app_factory=...)``), it is called when there is something to read:
once a received segment's TCP processing is complete, before the core decides
whether to acknowledge it, so that an answer leaves with the ACK as one segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from l4kit.core.connection import Connection


class Application(Protocol):
    """One instance per connection."""

    def on_readable(self, conn: Connection) -> None:
        """``conn`` has data to read, or the peer closed (``conn.recv()`` returns ``b""``).
        Read, answer with ``conn.send``, close with ``conn.close`` or ``conn.shutdown``."""
        ...


@dataclass(frozen=True, slots=True)
class AppReply:
    """An answer as a value: ``data`` to send (may be empty), and whether to close after it.
    (What :class:`~l4kit.core.server.StringServer` computes for a batch of input.)"""

    data: bytes = b""
    close: bool = False

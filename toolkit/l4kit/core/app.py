"""The application seam: what runs on top of a connection.

THIS FILE IS THE AGREED PUBLIC API (issue 4 implements the string server here
or in a sibling module). An application is sans-IO too: bytes in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AppReply:
    """What the application wants sent: ``data`` (may be empty), and whether to
    close our side (send FIN) after it."""

    data: bytes = b""
    close: bool = False


class Application(Protocol):
    """One instance per connection."""

    def on_data(self, data: bytes) -> AppReply:
        """In-order octets from the peer (each octet delivered exactly once)."""
        ...

    def on_peer_closed(self) -> AppReply:
        """The peer sent FIN; no more data will come."""
        ...

"""The listener: a :class:`~l4kit.core.stack.Stack` that answers one address and port.

Drivers (live responder, replay --through-responder, notebooks) use what is
declared here, in ``l4kit.core.events``, ``l4kit.core.app`` and ``l4kit.core.config``.

What the listener owns, and why each part is bounded:

* the **connection table** (``max_connections`` entries, SYN-RECEIVED included):
  a SYN that would overflow it is dropped (``TABLE_FULL``); the client retries;
* the **half-open count** (``max_half_open``): beyond it, SYN cookies answer SYNs
  without keeping any state (RFC 4987 §3.6), so a SYN flood costs no memory and a
  real client still completes its handshake;
* the **TIME-WAIT records** (``max_time_wait``), kept outside the connection table:
  the responder closes first, so every connection ends in TIME-WAIT on our side,
  and a TCB per TIME-WAIT would fill a 1,024-entry table after 1,024 clients. When
  the records are full, the oldest one (the nearest to expiring) is dropped, as
  Linux does when it overflows ``tcp_max_tw_buckets``;
* the **timer heap**: one entry per armed connection deadline, so :meth:`Listener.poll_at`
  is a peek, not a scan. Stale entries (a deadline that moved) are skipped when they
  reach the top, and the heap is rebuilt when they outnumber the live ones.

The defaults of every bound and timer, and why each was chosen, are in
:mod:`l4kit.core.config`.
"""

from __future__ import annotations

from collections.abc import Callable

from l4kit.checksum import ChecksumStatus
from l4kit.core.app import Application
from l4kit.core.config import ListenerConfig
from l4kit.core.connection import ConnectionInfo
from l4kit.core.events import DropReason, Event, Output, SegmentDropped
from l4kit.core.stack import WILDCARDS, ListenerStats, Stack
from l4kit.wire.segment import FourTuple, Segment
from l4kit.wire.seqnum import SeqNum


class Listener(Stack):
    """A stack with one listening socket on ``config.local`` that gives every connection
    its application from ``app_factory`` (what ``l4kit respond``, replay's
    ``--through-responder`` and the notebooks run). A segment for another address or
    port is dropped (``NOT_FOR_US``), not answered: the driver's capture filter may let
    through traffic that belongs to the host's own TCP."""

    def __init__(
        self,
        config: ListenerConfig,
        app_factory: Callable[[FourTuple], Application],
        *,
        isn: Callable[[FourTuple, float], SeqNum] | None = None,
    ) -> None:
        super().__init__(config, isn=isn)
        self.local = config.local
        self._wildcard = config.local.addr in WILDCARDS
        self.listen(config.local.addr, config.local.port, config.max_connections, app_factory=app_factory)

    def receive(self, segment: Segment, now: float) -> Output:
        """Process one received segment."""
        if segment.checksum is not ChecksumStatus.BAD and not self._for_us(segment):
            out = self._begin(now)
            self._segments_in += 1
            self._sink.drop(None, segment, DropReason.NOT_FOR_US, f"to {segment.destination}")
            self._end()
            return out
        return super().receive(segment, now)

    def shutdown(self, now: float, why: str = "listener shut down") -> Output:
        """Abort every connection with RST (the responder is stopping)."""
        return super().shutdown(now, why)

    def _for_us(self, segment: Segment) -> bool:
        local = self.local
        if segment.dport != local.port:
            return False
        if self._wildcard:
            return (":" in segment.dst) == (":" in local.addr)
        return segment.dst == local.addr


__all__ = ["ConnectionInfo", "Event", "Listener", "ListenerConfig", "ListenerStats", "SegmentDropped"]

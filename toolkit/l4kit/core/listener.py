"""The listener: one local endpoint, a bounded table of connections.

THIS FILE IS THE AGREED PUBLIC API OF THE CORE (issue 4 implements it).
Drivers (live responder, replay --through-responder, notebooks) use only what is
declared here and in ``l4kit.core.events`` / ``l4kit.core.app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from l4kit.core.app import Application
from l4kit.core.events import Output
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig:
    """Everything the listener needs to know; no field is read from the environment."""

    local: Endpoint  # the address and port answered; anything else is dropped NOT_FOR_US
    max_connections: int = 1024  # synchronized + half-open connections held at once
    max_half_open: int = 256  # SYN-RECEIVED entries before SYN cookies take over
    rst_unknown: bool = True  # answer a non-SYN for an unknown 4-tuple with RST (RFC 9293)
    mss: int = 1460  # MSS advertised in our SYN-ACK
    window: int = 65535  # receive window advertised
    secret: bytes = b""  # key for RFC 6528 ISNs and SYN cookies; empty = drivers must supply one


class Listener:
    """Demultiplexes segments to connections by 4-tuple.

    Time enters only as ``now`` (seconds, any monotonic origin). Every call returns
    an :class:`Output`; ``poll_at()`` says when ``tick`` must be called next.
    """

    def __init__(
        self,
        config: ListenerConfig,
        app_factory: Callable[[FourTuple], Application],
        *,
        isn: Callable[[FourTuple, float], SeqNum] | None = None,
    ) -> None:
        raise NotImplementedError

    def receive(self, segment: Segment, now: float) -> Output:
        """Process one received segment."""
        raise NotImplementedError

    def tick(self, now: float) -> Output:
        """Run due timers (retransmissions, persist probes, timeouts)."""
        raise NotImplementedError

    def poll_at(self) -> float | None:
        """The earliest time ``tick`` has work to do, or None if no timer is armed."""
        raise NotImplementedError

    def shutdown(self, now: float) -> Output:
        """Abort every connection with RST (the responder is stopping)."""
        raise NotImplementedError

"""What the live responder reports: plain values, no Scapy, no Rich.

Kept apart from :mod:`l4kit.live.responder` so that the views (and the CLI's
error paths, which must work without root) can import them without loading Scapy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """A frame that never reached the core (it could not be decoded)."""

    time: float
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReadyInfo:
    iface: str
    address: str
    port: int
    mac: str
    bpf: str
    firewall: str
    socket_buffer: int


@dataclass(slots=True)
class ResponderSummary:
    """What the exit summary shows. ``drops`` counts, by reason tag, every frame
    or segment that had no effect: the core's :class:`DropReason` values, decode
    failures (``<layer>:<reason>``), ``kernel-buffer-full`` (PACKET_STATISTICS),
    ``truncated`` and ``unprocessed-at-exit`` (queued when the stop came).

    Every frame the filter matched is accounted for: ``frames_matched`` (the
    kernel's count) equals ``frames_in`` plus the frame-level drops."""

    duration: float = 0.0
    frames_in: int = 0
    frames_out: int = 0
    frames_matched: int = 0  # PACKET_STATISTICS tp_packets: matched by the BPF filter, drops included
    connections: int = 0
    open_at_exit: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    syn_cookies_sent: int = 0
    syn_cookies_accepted: int = 0
    retransmissions: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    send_errors: int = 0
    kernel_rsts_suppressed: int | None = None
    checksum_offloaded: int = 0
    listener_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

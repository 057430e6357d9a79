"""What the live commands report: plain values, no Scapy, no Rich.

Kept apart from the drivers (:mod:`~l4kit.live.responder`, :mod:`~l4kit.live.host`,
:mod:`~l4kit.live.doctor`, :mod:`~l4kit.live.sandbox`) so that the views can import
them without loading Scapy or any of the drivers' process machinery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class DisplayStats:
    """How the connections were shown (``l4kit respond`` without ``--quiet``).

    Each connection is counted once, by how it was first shown: ``tables`` in
    full, ``lines`` as one line each (the display was behind), ``skipped`` only
    counted (far behind). ``events_dropped`` counts display events the packet
    thread dropped because the renderer's queue was full: their connections
    may be missing from the three counts; the packets themselves were handled."""

    tables: int = 0
    lines: int = 0
    skipped: int = 0
    events_dropped: int = 0
    verbose_lines_skipped: int = 0


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
    connections_closed: int = 0  # every connection the core opened (half-open ones too); all close by exit
    open_at_exit: int = 0
    half_open_at_stop: int = 0  # SYN-RECEIVED when the stop came (before the abort)
    half_open_peak: int = 0
    max_half_open: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    syn_cookies_sent: int = 0
    syn_cookies_accepted: int = 0
    retransmissions: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    idle_closed: int = 0  # connections closed (FIN) after --idle-timeout with nothing received
    idle_reset: int = 0  # connections reset: still open another --idle-timeout later
    send_errors: int = 0
    kernel_rsts_suppressed: int | None = None
    checksum_offloaded: int = 0
    display: DisplayStats | None = None  # None with --quiet

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())


@dataclass(frozen=True, slots=True)
class Check:
    """One row of ``l4kit doctor``: a status (``ok``, ``missing`` for a required piece,
    ``warn`` for an optional one, ``info``), what was found, and the fix."""

    name: str
    status: str
    found: str
    fix: str = ""
    required: bool = True


@dataclass(slots=True)
class CleanupReport:
    """What ``l4kit cleanup`` undid (or would undo), and what it left alone and why."""

    actions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DemoResult:
    """One ``l4kit demo`` run: the client's output and exit, and the responder's."""

    namespace: str = ""
    ready_line: str = ""
    client_output: str = ""
    client_exit: int | None = None
    client_seconds: float = 0.0
    expected: str = ""
    responder_output: list[str] = field(default_factory=list)
    responder_exit: int | None = None
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure and self.client_output == self.expected and self.responder_exit == 0

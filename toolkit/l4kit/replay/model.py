"""What replay produces: one report per connection and a summary of the capture.

These are plain values: the views (Rich tables, JSON, Mermaid) render them and
never look at packets themselves. The views turn each packet record into the
shared :class:`~l4kit.views.transitions.TransitionRow`, so a replayed connection
and a live one print the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from l4kit.core.states import State
from l4kit.wire.flags import TcpFlags

__all__ = [
    "ConnectionReport",
    "DirectionStats",
    "PacketRecord",
    "ReplaySummary",
    "StateTransition",
    "preview",
]

PacketRecord = tuple[
    int,
    float,
    int,
    int,
    int,
    "int | None",
    int,
    int,
    str,
    tuple[str, ...],
    bytes,
    State,
    State,
    State,
    State,
    int,
]
"""One packet of a connection, as the engine keeps it (a tuple: cheap to make a
hundred thousand times): ``(frame, t, direction, flags, seq, ack, length, window,
checksum, notes, head, client_before, client_after, server_before, server_after,
window_scale)``.

``t`` is seconds since the connection's first packet; ``direction`` 0 for client to
server, 1 for server to client; ``flags`` the flag bits; ``seq``/``ack`` relative
(``ack`` None without the ACK flag); ``window`` the raw 16-bit field;
``window_scale`` the shift count that applies to it (RFC 7323: 0 on a SYN and when
the handshake agreed on no scaling), or :data:`NO_SCALE` when the capture does not
show it (no handshake seen); ``head`` the first :data:`PREVIEW_BYTES` + 1 payload
octets (for the preview). The ``R_*`` constants index it;
``l4kit.views.replay.to_transition_row`` turns it into the shared flag-transition
table row.
"""

R_FRAME: Final = 0
R_T: Final = 1
R_DIR: Final = 2
R_FLAGS: Final = 3
R_SEQ: Final = 4
R_ACK: Final = 5
R_LEN: Final = 6
R_WIN: Final = 7
R_CHECKSUM: Final = 8
R_NOTES: Final = 9
R_HEAD: Final = 10
R_CLIENT_BEFORE: Final = 11
R_CLIENT_AFTER: Final = 12
R_SERVER_BEFORE: Final = 13
R_SERVER_AFTER: Final = 14
R_WSCALE: Final = 15

NO_SCALE: Final = -1
"""``window_scale`` of a record whose window scale the capture does not show."""


def scaled_window(window: int, scale: int) -> int:
    """The window a receiver uses (Wireshark's calculated window size): the raw field
    shifted by the scale, the raw field when the scale is not known."""
    return window << scale if scale > 0 else window


PREVIEW_BYTES: Final = 32
DIRECTIONS: Final = ("c2s", "s2c")
FLAG_LETTERS: Final[tuple[str, ...]] = tuple(TcpFlags(v).letters for v in range(0x200))

# Payload preview: printable ASCII as is, the rest escaped as Python writes bytes.
_PREVIEW_TABLE: Final = {
    b: (
        chr(b)
        if 0x20 <= b < 0x7F and b != 0x5C
        else {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"}.get(b, f"\\x{b:02x}")
    )
    for b in range(256)
}


def preview(head: bytes, length: int) -> str:
    """The first :data:`PREVIEW_BYTES` payload octets as text (``\\n``, ``\\x00`` escapes),
    with ``…`` when the payload is longer."""
    text = head[:PREVIEW_BYTES].decode("latin-1").translate(_PREVIEW_TABLE)
    return text + "…" if length > PREVIEW_BYTES else text


def checksum_counts() -> dict[str, int]:
    """TCP checksum verdicts, all at 0: ``ok``, ``bad``, ``offloaded`` (the sender left it
    to the NIC), ``unverified`` (the capture holds only part of the segment)."""
    return {"ok": 0, "bad": 0, "offloaded": 0, "unverified": 0}


@dataclass(slots=True)
class DirectionStats:
    """One direction of a connection: ``packets``; ``bytes`` on the wire (frame
    lengths, as tshark's ``-z conv,tcp`` counts them); TCP ``payload`` octets;
    ``ip_bytes``, the IP packets' total lengths (Zeek's ``orig_ip_bytes``)."""

    packets: int = 0
    bytes: int = 0
    payload: int = 0
    ip_bytes: int = 0


class StateTransition(NamedTuple):
    """One side moved between RFC 9293 states at packet ``packet`` (0-based within the
    connection) of frame ``frame``, ``t`` seconds into the connection."""

    t: float
    packet: int
    frame: int
    side: str  # "client" or "server"
    before: State
    after: State


@dataclass(slots=True)
class ConnectionReport:
    """Everything replay says about one TCP connection.

    ``id`` numbers connections from 0 in the order of their first packet, like
    tshark's ``tcp.stream``. ``state`` and ``history`` are Zeek's ``conn_state``
    and ``history``; ``client_state``/``server_state`` the RFC 9293 states each
    side was last seen in. ``rows`` holds at most ``max_rows`` packets,
    ``rows_omitted`` counts the rest.
    """

    id: int
    client: str
    server: str
    start: float  # seconds since the epoch, first packet
    end: float  # last packet
    first_frame: int
    last_frame: int
    state: str = ""
    history: str = ""
    client_state: str = ""
    server_state: str = ""
    c2s: DirectionStats = field(default_factory=DirectionStats)
    s2c: DirectionStats = field(default_factory=DirectionStats)
    checksum: dict[str, int] = field(default_factory=checksum_counts)
    analysis: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: list[PacketRecord] = field(default_factory=list)
    rows_omitted: int = 0
    transitions: list[StateTransition] = field(default_factory=list)
    transitions_omitted: int = 0
    differences: list[str] | None = None  # --through-responder: None when not run
    # --through-responder: the client's turns played against the responder's core as
    # liveplay plays them (the keys of liveplay's JSON); None when not run
    liveplay: dict[str, Any] | None = None
    time_digits: int = 9  # decimals the capture's timestamps have (CaptureReader.time_digits)
    file: str = ""  # the capture the first packet came from
    # The endpoints as on the wire (4 or 16 octets, ports), for Community ID and uids.
    client_ip: bytes = b""
    client_port: int = 0
    server_ip: bytes = b""
    server_port: int = 0
    # Zeek's view (conn.log): payload octets from sequence numbers, content gaps, and
    # the time of the last packet before both sides had closed (see ZeekConnection).
    orig_bytes: int = 0
    resp_bytes: int = 0
    missed_bytes: int = 0
    zeek_end: float = 0.0

    @property
    def packets(self) -> int:
        return self.c2s.packets + self.s2c.packets

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def zeek_duration(self) -> float:
        """conn.log's ``duration``: up to the last packet before both sides closed."""
        return self.zeek_end - self.start


@dataclass(slots=True)
class ReplaySummary:
    """Counts over the whole capture.

    ``packets`` counts every frame read; ``tcp_packets`` those that carried TCP (a
    reassembled datagram in the frame that completed it); ``skipped`` the others by
    reason (``not-ip``, ``not-tcp``, ``unsupported-linktype``, a decoder's reason for
    a malformed header ...), except IP fragments that completed no datagram themselves:
    ``fragments`` counts those (``frames``) and what became of the datagrams
    (:data:`l4kit.replay.fragments.COUNT_NAMES`). ``checksum`` counts TCP checksum
    verdicts, ``ip_checksum_bad`` IPv4 headers with a wrong checksum.
    ``unsupported_linktypes`` counts the frames of each link type l4kit does not read;
    ``filter_frames`` the frames ``--filter`` matched (None without it).
    """

    file: str
    linktypes: list[int] = field(default_factory=list)
    packets: int = 0
    tcp_packets: int = 0
    connections: int = 0
    shown: int = 0  # connections selected by --port/--stream
    checksum: dict[str, int] = field(default_factory=checksum_counts)
    ip_checksum_bad: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    fragments: dict[str, int] = field(default_factory=dict)
    unsupported_linktypes: dict[int, int] = field(default_factory=dict)
    filter_frames: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    truncated: bool = False
    truncation_detail: str = ""
    # The captures read, in order: file, packets, first_frame (its first frame's
    # number in the run's numbering), truncated, truncation.
    files: list[dict[str, Any]] = field(default_factory=list)

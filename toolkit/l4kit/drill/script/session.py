"""The rules of a run that do not depend on the stack under test.

packetdrill tests one connection at a time, the *socket under test*. A script's
sequence numbers are relative to the initial sequence numbers (ISNs) of that
connection, and its addresses and ports are stand-ins: this module keeps what
has been learned about the live connection (:class:`ScriptSocket`), turns a script
packet into the live packet to inject (:func:`inbound_packet`), a live packet
into the script's number space (:func:`to_script_space`), compares it with the
script line (:func:`verify_outbound`), and checks times against the tolerance
(:func:`verify_time`). The messages name the field that differs, as
packetdrill's do (``live packet field tcp_ack_seq: expected: 2 (0x2) vs actual:
1 (0x1)``).

The mapping, as packetdrill does it:

- inbound: a SYN's sequence number is sent as written (it *is* the peer's ISN);
  any other is offset by that ISN. ACK numbers and SACK blocks are offset by the
  stack's ISN, learned from the SYN or SYN-ACK it sent. A TS ecr is replaced by
  the live TS val the stack sent where the script wrote that val.
- outbound: the reverse offsets; a TS val is shown relative to the first one the
  stack sent (it is only checked with ``--tcp_ts_tick_usecs``).

Nothing here does I/O.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field, replace

from l4kit.checksum import address_bytes, internet_checksum, pseudo_header_sum
from l4kit.drill.script.model import IcmpPacket, TcpPacket, TimeKind
from l4kit.drill.script.options import format_option, format_options, option_kind
from l4kit.drill.script.wirepacket import (
    ACK,
    AE,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    WirePacket,
    flags_from_text,
    flags_to_text,
    options_length,
)
from l4kit.wire.ip import IPv4Header, IPv6Header, encode_ipv4, encode_ipv6
from l4kit.wire.options import Sack, TcpOption, Timestamps

U32 = 0xFFFFFFFF
TTL_NOT_CHECKED = 255  # packetdrill's TTL/hop limit for injected packets, and "do not check"
ECN_CODEPOINTS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}


class SocketState(enum.Enum):
    NEW = "new"
    ACTIVE_CONNECTING = "connecting"
    ACTIVE_SYN_SENT = "syn-sent"
    ACTIVE_SYN_ACKED = "syn-acked"
    PASSIVE_LISTENING = "listening"
    PASSIVE_PACKET_RECEIVED = "packet-received"
    PASSIVE_SYNACK_SENT = "synack-sent"
    PASSIVE_SYNACK_ACKED = "synack-acked"


@dataclass(frozen=True, slots=True)
class Addresses:
    """The addresses of a run (packetdrill's defaults unless given): the stack's own
    address, the peer's, the port the stack binds and the one it connects to."""

    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    bind_port: int = 8080
    connect_port: int = 8080

    @property
    def version(self) -> int:
        return 6 if ":" in self.remote_ip else 4


@dataclass(slots=True)
class ScriptSocket:
    """What a run knows about one socket: its file descriptors (the script's number
    and the target's handle), its state in the script, and the live addresses and
    ISNs learned from packets."""

    state: SocketState
    script_fd: int | None = None
    live_fd: object = None
    live_local: tuple[str, int] | None = None
    live_remote: tuple[str, int] | None = None
    script_local_isn: int = 0
    live_local_isn: int = 0
    script_remote_isn: int = 0
    live_remote_isn: int = 0
    ts_val_map: dict[int, int] = field(default_factory=dict)
    first_script_ts_val: int | None = None
    first_actual_ts_val: int = 0
    flowlabel_script: int = 0
    flowlabel_live: int = 0
    closed: bool = False


class SessionError(Exception):
    """A rule of the run broken at one line (no socket for a packet, an unmapped TS ecr)."""


class Sockets:
    """The sockets of a run and the socket under test (packetdrill tests one at a time:
    the one created last, or the connection an inbound SYN opened)."""

    def __init__(self) -> None:
        self.all: list[ScriptSocket] = []
        self.under_test: ScriptSocket | None = None

    def by_fd(self, script_fd: int) -> ScriptSocket | None:
        for sock in reversed(self.all):  # the newest, when an accepted fd shadows an older one
            if not sock.closed and sock.script_fd == script_fd:
                return sock
        return None

    def opened(self, script_fd: int, live_fd: object) -> ScriptSocket:
        sock = ScriptSocket(SocketState.NEW, script_fd, live_fd)
        self.all.append(sock)
        self.under_test = sock
        return sock

    def listening(self, script_fd: int) -> None:
        sock = self.by_fd(script_fd)
        if sock is not None:
            sock.state = SocketState.PASSIVE_LISTENING

    def connecting(self, script_fd: int, addresses: Addresses, *, disconnect: bool = False) -> None:
        """connect() (or sendto() with an address, for Fast Open): the socket becomes an
        active opener if it was new; ``disconnect`` (AF_UNSPEC) makes it new again."""
        sock = self.by_fd(script_fd)
        if sock is None:
            return
        if disconnect:
            sock.state = SocketState.NEW
            return
        if sock.state != SocketState.NEW:
            return
        sock.state = SocketState.ACTIVE_CONNECTING
        sock.live_remote = (addresses.remote_ip, addresses.connect_port)
        sock.live_local = None

    def accepted(self, script_fd: int, live_fd: object) -> ScriptSocket | None:
        """accept() returned: the connection whose handshake the script played gets the fd."""
        for sock in self.all:
            if sock.state in (SocketState.PASSIVE_SYNACK_SENT, SocketState.PASSIVE_SYNACK_ACKED) and (
                sock.script_fd is None
            ):
                sock.script_fd = script_fd
                sock.live_fd = live_fd
                return sock
        return None

    def closed(self, script_fd: int) -> None:
        sock = self.by_fd(script_fd)
        if sock is not None:
            sock.closed = True

    def for_script_packet(
        self, packet: TcpPacket, addresses: Addresses, remote_port: int | None
    ) -> ScriptSocket:
        """The socket a script packet belongs to, creating the child connection for an
        inbound packet to a listener (``remote_port``: the peer's port for it)."""
        sut = self.under_test
        if packet.inbound and (sut is None or sut.state == SocketState.PASSIVE_LISTENING):
            child = ScriptSocket(
                SocketState.PASSIVE_PACKET_RECEIVED,
                live_local=(addresses.local_ip, addresses.bind_port),
                live_remote=(addresses.remote_ip, remote_port or 0),
                script_remote_isn=packet.seq,
                live_remote_isn=packet.seq,
            )
            self.all.append(child)
            self.under_test = child
            return child
        flags, _ = flags_from_text(packet.flags)
        if (
            not packet.inbound
            and flags & SYN
            and not flags & ACK
            and sut is not None
            and sut.state == SocketState.ACTIVE_CONNECTING
        ):
            sut.state = SocketState.ACTIVE_SYN_SENT
            sut.script_local_isn = packet.seq
            return sut
        if sut is None:
            raise SessionError("no matching socket for script packet")
        return sut

    def match_outbound(self, live: WirePacket, expected: ScriptSocket) -> ScriptSocket | None:
        """The socket a packet the stack sent belongs to, or ``None`` (then it is not
        the run's business and is skipped, as packetdrill does). A SYN of a
        connecting socket teaches its local address, port and ISN."""
        sut = self.under_test
        if sut is None:
            return None
        if (
            sut.live_local is not None
            and sut.live_remote is not None
            and (live.src, live.sport) == sut.live_local
            and (live.dst, live.dport) == sut.live_remote
        ):
            return sut
        if (
            live.flags & SYN
            and not live.flags & ACK
            and sut.state == SocketState.ACTIVE_SYN_SENT
            and sut.live_remote is not None
            and (live.dst, live.dport) == sut.live_remote
        ):
            sut.live_local = (live.src, live.sport)
            sut.live_local_isn = live.seq
            return sut
        return None


# ---------------------------------------------------------------- inbound


def inbound_packet(sock: ScriptSocket, packet: TcpPacket, *, tcp_ts_ecr_scaled: bool = False) -> WirePacket:
    """The live packet to inject for an inbound script line."""
    if sock.state == SocketState.PASSIVE_SYNACK_SENT and "." in packet.flags:
        sock.state = SocketState.PASSIVE_SYNACK_ACKED
    flags, _ = flags_from_text(packet.flags)
    if sock.state == SocketState.ACTIVE_SYN_SENT and flags & SYN and flags & ACK:
        sock.state = SocketState.ACTIVE_SYN_ACKED
        sock.script_remote_isn = packet.seq
        sock.live_remote_isn = packet.seq
    if sock.live_local is None or sock.live_remote is None:
        raise SessionError("the connection's live addresses are not known yet (no SYN seen from the stack)")
    is_syn = bool(flags & SYN)
    seq_offset = 0 if is_syn else sock.live_remote_isn
    ack_offset = (sock.live_local_isn - sock.script_local_isn) if is_syn else sock.live_local_isn
    options: tuple[TcpOption, ...] = packet.options or ()
    mapped: list[TcpOption] = []
    for written in options:
        option = written
        if isinstance(option, Sack):
            option = Sack(
                tuple(
                    ((left + ack_offset) & U32, (right + ack_offset) & U32) for left, right in option.blocks
                )
            )
        elif isinstance(option, Timestamps) and flags & ACK:
            live_ecr = sock.ts_val_map.get(option.tsecr)
            if live_ecr is None:
                if tcp_ts_ecr_scaled and sock.first_script_ts_val is not None:
                    live_ecr = (option.tsecr - sock.first_script_ts_val + sock.first_actual_ts_val) & U32
                else:
                    raise SessionError(
                        f"unable to infer live TS ecr for script TS ecr {option.tsecr}; "
                        "no matching or preceding outbound TS val"
                    )
            option = Timestamps(option.tsval, live_ecr)
        mapped.append(option)
    src, sport = sock.live_remote
    dst, dport = sock.live_local
    if packet.ports is not None:
        sport = packet.ports[0] or sport
        dport = packet.ports[1] or dport
    ip = packet.ip
    tos = 0
    if ip is not None:
        if ip.ecn is not None and ip.ecn in ECN_CODEPOINTS:
            tos = ECN_CODEPOINTS[ip.ecn]
        elif ip.tos is not None:
            tos = ip.tos
    ttl = ip.ttl if ip is not None and ip.ttl else TTL_NOT_CHECKED
    return WirePacket(
        version=6 if ":" in src else 4,
        src=src,
        dst=dst,
        tos=tos,
        ttl=ttl,
        flow_label=(ip.flow_label or 0) if ip is not None else 0,
        ip_header_len=20 if ":" not in src else 40,
        ip_length=0,
        ip_checksum_ok=True,
        sport=sport,
        dport=dport,
        seq=(packet.seq + seq_offset) & U32,
        ack=((packet.ack or 0) + ack_offset) & U32 if flags & ACK else (packet.ack or 0),
        data_offset=0,
        reserved=0,
        flags=flags,
        window=packet.window or 0,
        urgent=packet.urgent or 0,
        options=tuple(mapped),
        options_len=options_length(tuple(mapped)),
        payload=bytes(packet.payload_len),
    )


# ---------------------------------------------------------------- outbound


def expect_outbound(sock: ScriptSocket, packet: TcpPacket) -> None:
    """Before sniffing for an outbound line: a SYN-ACK the script expects from a
    passive connection fixes the script's ISN for the stack."""
    flags, _ = flags_from_text(packet.flags)
    if sock.state == SocketState.PASSIVE_PACKET_RECEIVED and flags & SYN and flags & ACK:
        sock.script_local_isn = packet.seq


def learn_outbound(sock: ScriptSocket, packet: TcpPacket, live: WirePacket) -> None:
    """After a packet for ``sock`` was sniffed: the first SYN-ACK of a passive
    connection teaches the stack's ISN."""
    flags, _ = flags_from_text(packet.flags)
    if sock.state == SocketState.PASSIVE_PACKET_RECEIVED and flags & SYN and flags & ACK:
        sock.state = SocketState.PASSIVE_SYNACK_SENT
        sock.live_local_isn = live.seq


def to_script_space(sock: ScriptSocket, live: WirePacket) -> WirePacket:
    """``live`` with sequence, ACK and SACK numbers relative to the ISNs."""
    is_syn = bool(live.flags & SYN)
    seq_offset = (sock.live_local_isn - sock.script_local_isn) if is_syn else sock.live_local_isn
    ack_offset = 0 if is_syn else sock.live_remote_isn
    options = tuple(
        Sack(tuple(((left - ack_offset) & U32, (right - ack_offset) & U32) for left, right in option.blocks))
        if isinstance(option, Sack)
        else option
        for option in live.options
    )
    return replace(
        live,
        seq=(live.seq - seq_offset) & U32,
        ack=(live.ack - ack_offset) & U32 if live.flags & ACK else live.ack,
        options=options,
    )


def map_timestamps(sock: ScriptSocket, script: TcpPacket, actual: WirePacket) -> WirePacket:
    """Remember which live TS val stands for the script's, and show the actual TS val
    relative to the first one the stack sent."""
    script_ts = _timestamps(script.options or ())
    actual_ts = _timestamps(actual.options)
    if script_ts is None or actual_ts is None:
        return actual
    sock.ts_val_map[script_ts.tsval] = actual_ts.tsval
    if sock.first_script_ts_val is None:
        sock.first_script_ts_val = script_ts.tsval
        sock.first_actual_ts_val = actual_ts.tsval
    shown = (sock.first_script_ts_val + actual_ts.tsval - sock.first_actual_ts_val) & U32
    options = tuple(Timestamps(shown, o.tsecr) if isinstance(o, Timestamps) else o for o in actual.options)
    return replace(actual, options=options)


def _timestamps(options: tuple[TcpOption, ...]) -> Timestamps | None:
    found = None
    for option in options:
        if isinstance(option, Timestamps):
            found = option
    return found


@dataclass(frozen=True, slots=True)
class Mismatch:
    """How an actual packet (or result) differs from the script: ``field`` as
    packetdrill names it, the expected and actual values, and the whole message."""

    field: str
    expected: str
    actual: str
    message: str


def _field(name: str, expected: int, actual: int) -> Mismatch | None:
    if expected == actual:
        return None
    return Mismatch(
        name,
        str(expected),
        str(actual),
        f"live packet field {name}: expected: {expected} ({expected:#x}) vs actual: {actual} ({actual:#x})",
    )


def check_fragment(current: WirePacket, previous: WirePacket) -> Mismatch | None:
    """Whether ``current`` continues ``previous`` (both in script space), so that a
    script line may stand for a burst the stack split: the same headers, the next
    sequence number."""
    checks = (
        ("ip_version", previous.version, current.version),
        ("ip_header_length", previous.ip_header_len, current.ip_header_len),
        ("ttl", previous.ttl, current.ttl),
        ("tcp_data_offset", previous.data_offset, current.data_offset),
        ("tcp_syn", previous.flags & SYN, current.flags & SYN),
        ("tcp_rst", previous.flags & RST, current.flags & RST),
        ("tcp_ack", previous.flags & ACK, current.flags & ACK),
        ("tcp_urg", previous.flags & URG, current.flags & URG),
        ("tcp_ece", previous.flags & ECE, current.flags & ECE),
        ("tcp_ae", previous.flags & AE, current.flags & AE),
        ("tcp_reserved_bits", previous.reserved, current.reserved),
        ("tcp_seq", (previous.seq + previous.payload_len) & U32, current.seq),
        ("tcp_ack_seq", previous.ack, current.ack),
        ("tcp_window", previous.window, current.window),
        ("tcp_urg_ptr", previous.urgent, current.urgent),
    )
    for name, expected, actual in checks:
        mismatch = _field(name, expected, actual)
        if mismatch is not None:
            return mismatch
    return None


def aggregate(packets: list[WirePacket]) -> WirePacket:
    """One packet for a burst: the last one's headers, the first one's sequence number
    and CWR bit, every payload."""
    first, last = packets[0], packets[-1]
    payload = b"".join(p.payload for p in packets)
    extra = len(payload) - last.payload_len
    flags = (last.flags & ~CWR) | (first.flags & CWR)
    return replace(last, seq=first.seq, flags=flags, payload=payload, ip_length=last.ip_length + extra)


def verify_outbound(
    script: TcpPacket,
    actual: WirePacket,
    sock: ScriptSocket,
    *,
    tcp_ts_tick_usecs: int = 0,
    ts_tolerance_usecs: int = 0,
) -> Mismatch | None:
    """The first difference between the script line and the packet the stack sent
    (already in script space), in packetdrill's order: IP header, TCP header, options,
    payload. Timing is checked apart (:func:`verify_time`)."""
    if not actual.ip_checksum_ok:
        return Mismatch("ip_checksum", "valid", "invalid", "bad outbound IP checksum")
    flags, ace = flags_from_text(script.flags)
    script_options = script.options
    script_options_len = options_length(script_options) if script_options is not None else 0
    allowance = actual.options_len if script_options is None else 0
    payload_len = script.payload_len
    version = actual.version
    # IP
    if version == 4:
        expected_length = 20 + 20 + script_options_len + payload_len + allowance
        mismatch = _field("ipv4_header_length", 5, actual.ip_header_len // 4) or _field(
            "ipv4_total_length", expected_length, actual.ip_length
        )
    else:
        expected_length = 20 + script_options_len + payload_len + allowance
        mismatch = _field("ipv6_payload_len", expected_length, actual.ip_length)
    if mismatch:
        return mismatch
    ip = script.ip
    if ip is not None:
        if ip.ecn == "ect01":
            if actual.tos & 3 not in (1, 2):
                return Mismatch(
                    "ip_ecn",
                    "0x1 or 0x2",
                    f"{actual.tos & 3:#x}",
                    f"live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: {actual.tos & 3:#x}",
                )
        elif ip.ecn is not None:
            mismatch = _field("ip_ecn", ECN_CODEPOINTS[ip.ecn], actual.tos & 3)
        elif ip.tos is not None:
            mismatch = _field("tos", ip.tos, actual.tos)
        if mismatch:
            return mismatch
        if ip.ttl:
            mismatch = _field("ttl", ip.ttl, actual.ttl)
            if mismatch:
                return mismatch
    # TCP
    checks: list[tuple[str, int, int]] = [
        ("tcp_data_offset", 5 + script_options_len // 4 + allowance // 4, actual.data_offset),
        ("tcp_fin", int(bool(flags & FIN)), int(bool(actual.flags & FIN))),
        ("tcp_syn", int(bool(flags & SYN)), int(bool(actual.flags & SYN))),
        ("tcp_rst", int(bool(flags & RST)), int(bool(actual.flags & RST))),
        ("tcp_psh", int(bool(flags & PSH)), int(bool(actual.flags & PSH))),
        ("tcp_ack", int(bool(flags & ACK)), int(bool(actual.flags & ACK))),
        ("tcp_urg", int(bool(flags & URG)), int(bool(actual.flags & URG))),
    ]
    if ace:
        checks.append(("tcp_ace", _ace(flags), _ace(actual.flags)))
    else:
        checks += [
            ("tcp_ece", int(bool(flags & ECE)), int(bool(actual.flags & ECE))),
            ("tcp_cwr", int(bool(flags & CWR)), int(bool(actual.flags & CWR))),
            ("tcp_ae", int(bool(flags & AE)), int(bool(actual.flags & AE))),
        ]
    checks += [
        ("tcp_reserved_bits", 0, actual.reserved),
        ("tcp_seq", script.seq, actual.seq),
        ("tcp_ack_seq", script.ack or 0, actual.ack),
    ]
    if script.window is not None:
        checks.append(("tcp_window", script.window, actual.window))
    checks.append(("tcp_urg_ptr", script.urgent or 0, actual.urgent))
    for name, expected, got in checks:
        mismatch = _field(name, expected, got)
        if mismatch:
            return mismatch
    if script_options is not None:
        mismatch = _verify_options(script_options, actual, tcp_ts_tick_usecs, ts_tolerance_usecs)
        if mismatch:
            return mismatch
    if actual.payload != bytes(payload_len):
        return Mismatch(
            "payload", f"{payload_len} zero octets", "other data", "incorrect outbound data payload"
        )
    return None


def _ace(bits: int) -> int:
    return (4 if bits & AE else 0) | (2 if bits & CWR else 0) | (1 if bits & ECE else 0)


def _verify_options(
    script_options: tuple[TcpOption, ...], actual: WirePacket, tick_usecs: int, tolerance_usecs: int
) -> Mismatch | None:
    expected = [(option_kind(o), o) for o in script_options]
    got = actual.option_kinds()
    if [kind for kind, _ in expected] != [kind for kind, _ in got]:
        return Mismatch(
            "tcp_options",
            format_options(script_options),
            format_options(actual.options),
            "bad outbound TCP options",
        )
    for (kind, want), (_, have) in zip(expected, got, strict=True):
        if kind in (0, 1):
            continue
        if isinstance(want, Timestamps) and isinstance(have, Timestamps):
            if tick_usecs:
                delta = (have.tsval - want.tsval + 2**31) % 2**32 - 2**31
                if abs(delta) * tick_usecs > tolerance_usecs:
                    return Mismatch(
                        "TS val",
                        str(want.tsval),
                        str(have.tsval),
                        f"bad outbound TCP timestamp value, tolerance {tolerance_usecs}",
                    )
            continue
        if want != have:
            wrong = "bad length" if options_length((want,)) != options_length((have,)) else "bad value"
            return Mismatch(
                f"TCP option (kind={kind})",
                format_option(want),
                format_option(have),
                f"{wrong} in outbound TCP option (kind={kind}): expected: {format_option(want)} "
                f"actual: {format_option(have)}",
            )
    return None


# ---------------------------------------------------------------- time


def verify_time(
    kind: TimeKind,
    expected_us: int,
    expected_end_us: int | None,
    actual_us: int,
    last_event_us: int | None,
    *,
    tolerance_usecs: int,
    tolerance_percent: float,
    what: str,
    offset_us: int = 0,
) -> str | None:
    """None when ``actual_us`` (script time, since the start) is close enough to when
    the script wanted it, else the message. The tolerance is ``tolerance_usecs``, or
    ``tolerance_percent`` of the time since the previous event when that is larger."""
    if kind == TimeKind.ANY:
        return None
    tolerance = tolerance_usecs
    if last_event_us is not None:
        tolerance = max(tolerance, int(tolerance_percent / 100.0 * (expected_us - last_event_us)))
    if kind in (TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE):
        end = expected_end_us if expected_end_us is not None else expected_us
        if expected_us - tolerance <= actual_us <= end + tolerance:
            return None
        if kind == TimeKind.ABSOLUTE_RANGE:
            return (
                f"timing error: expected {what} in time range {_secs(expected_us)}~{_secs(end)} sec "
                f"but happened at {_secs(actual_us)} sec"
            )
        return (
            f"timing error: expected {what} in relative time range +{_secs(expected_us - offset_us)}"
            f"~+{_secs(end - offset_us)} sec but happened at {(actual_us - offset_us) / 1e6:+.6f} sec"
        )
    if abs(actual_us - expected_us) <= tolerance:
        return None
    return (
        f"timing error: expected {what} at {_secs(expected_us)} sec but happened at {_secs(actual_us)} sec; "
        f"tolerance {_secs(tolerance)} sec"
    )


def _secs(usecs: int) -> str:
    return f"{usecs / 1e6:.6f}"


# ---------------------------------------------------------------- printing


def format_wire(packet: WirePacket, direction: str = ">") -> str:
    """A packet as a script line would write it (``> P. 1:1001(1000) ack 1 win 257 <...>``)."""
    parts = [
        direction,
        flags_to_text(packet.flags),
        f"{packet.seq}:{(packet.seq + packet.payload_len) & U32}({packet.payload_len})",
    ]
    if packet.flags & ACK:
        parts.append(f"ack {packet.ack}")
    parts.append(f"win {packet.window}")
    if packet.urgent:
        parts.append(f"urg {packet.urgent}")
    options = format_options(packet.options) if packet.options else ""
    if options:
        parts.append(options)
    return " ".join(parts)


# ---------------------------------------------------------------- ICMP

_ICMP4_TYPES = {
    "echo_reply": 0,
    "unreachable": 3,
    "source_quench": 4,
    "redirect": 5,
    "echo_request": 8,
    "time_exceeded": 11,
    "parameter_problem": 12,
    "timestamp_request": 13,
    "timestamp_reply": 14,
    "information_request": 15,
    "information_reply": 16,
    "address_mask_request": 17,
    "address_mask_reply": 18,
}
_ICMP4_UNREACHABLE_CODES = {
    "net_unreachable": 0,
    "host_unreachable": 1,
    "protocol_unreachable": 2,
    "port_unreachable": 3,
    "frag_needed": 4,
    "source_route_failed": 5,
    "net_unknown": 6,
    "host_unknown": 7,
    "source_host_isolated": 8,
    "net_prohibited": 9,
    "host_prohibited": 10,
    "net_unreachable_for_tos": 11,
    "host_unreachable_for_tos": 12,
    "packet_filtered": 13,
    "precedence_violation": 14,
    "precedence_cutoff": 15,
}
_ICMP6_TYPES = {
    "unreachable": 1,
    "packet_too_big": 2,
    "time_exceeded": 3,
    "parameter_problem": 4,
    "echo_request": 128,
    "echo_reply": 129,
}
_ICMP6_CODES = {
    "unreachable": {
        "net_unreachable": 0,
        "no_route": 0,
        "admin_prohibited": 1,
        "not_neighbour": 2,
        "address_unreachable": 3,
        "port_unreachable": 4,
    },
    "time_exceeded": {"exceeded_hop_limit": 0, "exceeded_frag_time": 1},
    "parameter_problem": {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2},
}


def _icmp_number(text: str, prefix: str, table: dict[str, int], what: str) -> int:
    if text.startswith(prefix) and text[len(prefix) :].isdigit():
        number = int(text[len(prefix) :])
    elif text in table:
        number = table[text]
    else:
        raise SessionError(f"bad ICMP {what} {text}")
    if not 0 <= number <= 255:
        raise SessionError(f"bad ICMP {what} {text}")
    return number


def inbound_icmp(sock: ScriptSocket, packet: IcmpPacket) -> bytes:
    """The ICMP message to inject: about the connection's outbound packets, quoting the
    IP header and first eight octets of the segment the script names."""
    if sock.live_local is None or sock.live_remote is None:
        raise SessionError("the connection's live addresses are not known yet (no SYN seen from the stack)")
    local, lport = sock.live_local
    remote, rport = sock.live_remote
    six = ":" in local
    types = _ICMP6_TYPES if six else _ICMP4_TYPES
    icmp_type = _icmp_number(packet.icmp_type, "type_", types, "type")
    codes = (
        _ICMP6_CODES.get(packet.icmp_type, {})
        if six
        else (_ICMP4_UNREACHABLE_CODES if icmp_type == 3 else {})
    )
    code = 0 if packet.code is None else _icmp_number(packet.code, "code_", codes, "code")
    if packet.mtu is not None:
        if six and (icmp_type, code) != (2, 0):
            raise SessionError("ICMPv6 MTU is only valid for packet_too_big-0")
        if not six and (icmp_type, code) != (3, 4):
            raise SessionError("ICMPv4 MTU is only valid for unreachable-frag_needed")
    kind, start, _end, length = packet.echoed or ("tcp", 0, 0, 0)
    src_b, dst_b = address_bytes(local), address_bytes(remote)
    if kind == "raw":
        quoted = b""
    else:
        proto = 6 if kind == "tcp" else 17
        l4_len = 20 if kind == "tcp" else 8
        if six:
            inner = struct.pack("!IHBB16s16s", 6 << 28, l4_len + length, proto, 0, src_b, dst_b)
        else:
            inner = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + l4_len + length, 0, 0, 0, proto, 0, src_b, dst_b
            )
        if kind == "tcp":
            first8 = struct.pack("!HHI", lport, rport, (start + sock.live_local_isn) & U32) + b"\0\0\0\0"
        else:
            first8 = struct.pack("!HHHH", lport, rport, 8 + length, 0)
        quoted = inner + first8
    if six:
        rest = (
            struct.pack("!I", packet.mtu)
            if packet.mtu is not None
            else struct.pack("!HH", packet.echo_id or 0, 0)
        )
    else:
        rest = (
            struct.pack("!HH", 0, packet.mtu)
            if packet.mtu is not None
            else struct.pack("!HH", packet.echo_id or 0, 0)
        )
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + quoted
    if kind == "raw" and length > len(body):
        body += bytes(length - len(body))
    ip = packet.ip
    tos = ECN_CODEPOINTS.get(ip.ecn or "", ip.tos or 0) if ip is not None else 0
    ttl = ip.ttl if ip is not None and ip.ttl else TTL_NOT_CHECKED
    if six:
        checksum = internet_checksum(body, pseudo_header_sum(remote, local, len(body), 58))
        body = body[:2] + struct.pack("!H", checksum) + body[4:]
        return encode_ipv6(
            IPv6Header(
                traffic_class=tos,
                flow_label=(ip.flow_label or 0) if ip else 0,
                next_header=58,
                hop_limit=ttl,
                src=remote,
                dst=local,
            ),
            body,
        )
    body = body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]
    return encode_ipv4(
        IPv4Header(tos=tos, dont_fragment=False, ttl=ttl, protocol=1, src=remote, dst=local), body
    )

"""The pure rules of a run: sequence-number mapping both ways, the comparison of a
script line with the packet a stack sent (each field named), aggregation, timing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from l4kit.drill.script import parse
from l4kit.drill.script.model import TcpPacket, TimeKind
from l4kit.drill.script.session import (
    Addresses,
    SessionError,
    Sockets,
    SocketState,
    aggregate,
    check_fragment,
    expect_outbound,
    format_wire,
    inbound_icmp,
    inbound_packet,
    learn_outbound,
    map_timestamps,
    to_script_space,
    verify_outbound,
    verify_time,
)
from l4kit.drill.script.wirepacket import ACK, PSH, SYN, WirePacket, decode_wire, encode_wire
from l4kit.wire.options import MaxSegmentSize, NoOperation, Sack, Timestamps

LIVE_ISN = 3_000_000_000  # the stack's ISN, far from the script's 0 (and wrapping past 2**32)


def packet(text: str) -> TcpPacket:
    action = parse(f"0 {text}\n", "t.pkt").events[0].action
    assert isinstance(action, TcpPacket)
    return action


def live(**fields: object) -> WirePacket:
    base = WirePacket(
        version=4, src="192.168.0.1", dst="192.0.2.1", tos=0, ttl=64, flow_label=0, ip_header_len=20,
        ip_length=40, ip_checksum_ok=True, sport=8080, dport=40000, seq=LIVE_ISN, ack=0, data_offset=5,
        reserved=0, flags=SYN | ACK, window=65535, urgent=0, options=(), options_len=0, payload=b"",
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def handshake() -> tuple[Sockets, object]:
    """A listener's child after `< S 100:100(0)` and the stack's SYN-ACK (ISN LIVE_ISN)."""
    sockets = Sockets()
    listener = sockets.opened(3, 3)
    listener.state = SocketState.PASSIVE_LISTENING
    syn = packet("< S 100:100(0) win 1000 <mss 1000>")
    sock = sockets.for_script_packet(syn, Addresses(), 40000)
    assert sock is not listener and sockets.under_test is sock
    injected = inbound_packet(sock, syn)
    assert (injected.seq, injected.src, injected.sport, injected.dst, injected.dport) == (
        100, "192.0.2.1", 40000, "192.168.0.1", 8080,
    )  # fmt: skip
    synack = packet("> S. 0:0(0) ack 101 <mss 1460>")
    expect_outbound(sock, synack)
    sent = live(ack=101, options=(MaxSegmentSize(1460),), options_len=4, data_offset=6, ip_length=44)
    assert sockets.match_outbound(sent, sock) is sock
    learn_outbound(sock, synack, sent)
    assert sock.state == SocketState.PASSIVE_SYNACK_SENT
    return sockets, sock


def test_inbound_numbers_are_offset_by_both_isns() -> None:
    _, sock = handshake()
    ack = inbound_packet(sock, packet("< . 1:1(0) ack 1 win 257"))  # type: ignore[arg-type]
    # The peer's non-SYN numbers are relative to its SYN (100); the ACK to the stack's ISN.
    assert ack.seq == 101
    assert ack.ack == (LIVE_ISN + 1) & 0xFFFFFFFF
    assert sock.state == SocketState.PASSIVE_SYNACK_ACKED  # type: ignore[attr-defined]
    sack = inbound_packet(sock, packet("< . 1:1(0) ack 1 win 257 <nop,nop,sack 1001:2001>"))  # type: ignore[arg-type]
    assert sack.options[2] == Sack((((LIVE_ISN + 1001) & 0xFFFFFFFF, (LIVE_ISN + 2001) & 0xFFFFFFFF),))


def test_outbound_numbers_come_back_to_script_space() -> None:
    _, sock = handshake()
    data = live(
        seq=(LIVE_ISN + 1) & 0xFFFFFFFF, ack=101 + 100, flags=PSH | ACK, payload=bytes(10), ip_length=50
    )
    converted = to_script_space(sock, data)  # type: ignore[arg-type]
    assert (converted.seq, converted.ack) == (1, 101)
    assert format_wire(converted) == "> P. 1:11(10) ack 101 win 65535"


def test_verify_names_the_first_field_that_differs() -> None:
    _, sock = handshake()
    sent = to_script_space(sock, live(seq=(LIVE_ISN + 1) & 0xFFFFFFFF, ack=201, flags=ACK))  # type: ignore[arg-type]
    assert verify_outbound(packet("> . 1:1(0) ack 101"), sent, sock) is None  # type: ignore[arg-type]
    mismatch = verify_outbound(packet("> . 1:1(0) ack 102"), sent, sock)  # type: ignore[arg-type]
    assert mismatch is not None
    assert (mismatch.field, mismatch.expected, mismatch.actual) == ("tcp_ack_seq", "102", "101")
    assert mismatch.message == "live packet field tcp_ack_seq: expected: 102 (0x66) vs actual: 101 (0x65)"
    # PSH is checked, the window only when the script writes one, options unless <...>.
    assert verify_outbound(packet("> P. 1:1(0) ack 101"), sent, sock).field == "tcp_psh"  # type: ignore[arg-type, union-attr]
    assert verify_outbound(packet("> . 1:1(0) ack 101 win 100"), sent, sock).field == "tcp_window"  # type: ignore[arg-type, union-attr]
    with_options = packet("> . 1:1(0) ack 101 <nop,nop,TS val 1 ecr 2>")
    assert verify_outbound(with_options, sent, sock).field == "ipv4_total_length"  # type: ignore[arg-type, union-attr]
    assert verify_outbound(packet("> . 1:1(0) ack 101 <...>"), sent, sock) is None  # type: ignore[arg-type]


def test_option_values_are_compared_but_ts_val_only_by_tick() -> None:
    _, sock = handshake()
    options = (MaxSegmentSize(1400),)
    sent = to_script_space(sock, live(options=options, options_len=4, data_offset=6, ip_length=44, ack=101))  # type: ignore[arg-type]
    mismatch = verify_outbound(packet("> S. 0:0(0) ack 101 <mss 1460>"), sent, sock)  # type: ignore[arg-type]
    assert mismatch is not None
    assert (
        mismatch.message == "bad value in outbound TCP option (kind=2): expected: mss 1460 actual: mss 1400"
    )
    stamped = replace(
        sent,
        options=(Timestamps(5000, 0), NoOperation(), NoOperation()),
        options_len=12,
        data_offset=8,
        ip_length=52,
    )
    script = packet("> S. 0:0(0) ack 101 <TS val 100 ecr 0,nop,nop>")
    assert verify_outbound(script, stamped, sock) is None  # type: ignore[arg-type]
    by_tick = verify_outbound(script, stamped, sock, tcp_ts_tick_usecs=1000, ts_tolerance_usecs=4000)  # type: ignore[arg-type]
    assert by_tick is not None and by_tick.field == "TS val"


def test_ts_ecr_is_replaced_by_the_live_val_the_script_named() -> None:
    _, sock = handshake()
    script_synack = packet("> S. 0:0(0) ack 1 <TS val 700 ecr 100,nop,nop>")
    sent = replace(live(ack=101), options=(Timestamps(987654, 100),))
    shown = map_timestamps(sock, script_synack, sent)  # type: ignore[arg-type]
    assert shown.options[0] == Timestamps(700, 100)  # shown relative to the first val the stack sent
    echoed = inbound_packet(sock, packet("< . 1:1(0) ack 1 win 257 <nop,nop,TS val 200 ecr 700>"))  # type: ignore[arg-type]
    assert echoed.options[2] == Timestamps(200, 987654)
    with pytest.raises(SessionError, match="unable to infer live TS ecr for script TS ecr 5"):
        inbound_packet(sock, packet("< . 1:1(0) ack 1 win 257 <nop,nop,TS val 200 ecr 5>"))  # type: ignore[arg-type]


def test_active_open_learns_port_and_isn_from_the_syn() -> None:
    sockets = Sockets()
    sock = sockets.opened(3, 7)
    sockets.connecting(3, Addresses())
    assert sock.state == SocketState.ACTIVE_CONNECTING
    assert sockets.for_script_packet(packet("> S 0:0(0) <...>"), Addresses(), None) is sock
    syn = live(sport=51000, dport=8080, flags=SYN, seq=12345)
    assert sockets.match_outbound(replace(syn, dport=9999), sock) is None  # not to the peer's port
    assert sockets.match_outbound(syn, sock) is sock
    assert sock.live_local == ("192.168.0.1", 51000) and sock.live_local_isn == 12345
    synack = inbound_packet(sock, packet("< S. 0:0(0) ack 1 win 1000"))
    assert synack.ack == 12346 and sock.state == SocketState.ACTIVE_SYN_ACKED


def test_fragments_aggregate_like_one_segment() -> None:
    first = live(seq=1, ack=1, flags=ACK, payload=bytes(1000), ip_length=1040)
    second = replace(first, seq=1001, flags=PSH | ACK)
    assert check_fragment(second, first) is None
    assert check_fragment(replace(second, seq=1500), first).field == "tcp_seq"  # type: ignore[union-attr]
    whole = aggregate([first, second])
    assert (whole.seq, whole.payload_len, whole.flags, whole.ip_length) == (1, 2000, PSH | ACK, 2040)


def test_icmp_quotes_the_connection_with_the_stack_sequence_number() -> None:
    from l4kit.drill.script.model import IcmpPacket

    _, sock = handshake()
    data = inbound_icmp(
        sock, IcmpPacket("<", "unreachable", "frag_needed", 1200, None, ("tcp", 1, 1001, 1000))
    )  # type: ignore[arg-type]
    assert data[9] == 1 and data[20:22] == b"\x03\x04"  # ICMP, destination unreachable / fragmentation needed
    assert int.from_bytes(data[26:28], "big") == 1200
    quoted = data[28:]
    assert quoted[12:16] == bytes([192, 168, 0, 1]) and int.from_bytes(quoted[20:22], "big") == 8080
    assert int.from_bytes(quoted[24:28], "big") == (LIVE_ISN + 1) & 0xFFFFFFFF
    with pytest.raises(SessionError, match="bad ICMP code"):
        inbound_icmp(sock, IcmpPacket("<", "unreachable", "no_such_code"))  # type: ignore[arg-type]


def test_wire_round_trip() -> None:
    sent = live(options=(MaxSegmentSize(1460),), options_len=4, data_offset=6, ip_length=44)
    decoded = decode_wire(encode_wire(sent), 7)
    assert decoded is not None
    assert (decoded.seq, decoded.options, decoded.ip_length, decoded.data_offset, decoded.time_us) == (
        sent.seq, sent.options, 44, 6, 7,
    )  # fmt: skip
    assert decode_wire(b"\x45\x00\x00\x14" + bytes(16), 0) is None  # not TCP


@pytest.mark.parametrize(
    ("kind", "expected", "end", "actual", "last", "ok"),
    [
        (TimeKind.RELATIVE, 100_000, None, 103_999, 0, True),
        (TimeKind.RELATIVE, 100_000, None, 112_499, 0, True),  # 12.5 % of the 100 ms since the last event
        (TimeKind.RELATIVE, 100_000, None, 112_501, 0, False),
        (TimeKind.RELATIVE, 10_000, None, 14_500, 0, False),  # 4 ms floor
        (TimeKind.ABSOLUTE_RANGE, 100_000, 200_000, 150_000, 0, True),
        (TimeKind.ABSOLUTE_RANGE, 100_000, 200_000, 212_000, 0, True),  # 12.5 % of 100 ms past the end
        (TimeKind.ABSOLUTE_RANGE, 100_000, 200_000, 213_000, 0, False),
        (TimeKind.ANY, 0, None, 10**9, 0, True),
    ],
)
def test_verify_time(
    kind: TimeKind, expected: int, end: int | None, actual: int, last: int, ok: bool
) -> None:
    error = verify_time(
        kind,
        expected,
        end,
        actual,
        last,
        tolerance_usecs=4000,
        tolerance_percent=12.5,
        what="outbound packet",
    )
    assert (error is None) == ok, error
    if not ok and kind == TimeKind.RELATIVE:
        assert error.startswith("timing error: expected outbound packet at 0.")  # type: ignore[union-attr]

"""LISTEN: what the listener does with segments for 4-tuples it does not know.

RFC 9293 §3.10.7.2 in order: RST ignored, ACK answered with <SEQ=SEG.ACK><CTL=RST>,
SYN opens, anything else dropped. Plus the checks before any state: checksum,
address, malformed headers.
"""

from __future__ import annotations

import pytest
from core_trace import CLIENT, ISS, SERVER, Trace, key_of

from l4kit.checksum import ChecksumStatus
from l4kit.core import DropReason, SegmentReceived, State, StateChanged
from l4kit.wire import Endpoint, MaxSegmentSize, SackPermitted, Timestamps, UnknownOption, WindowScale


def test_syn_gets_syn_ack_with_our_mss_and_nothing_else() -> None:
    t = Trace(mss=1400, window=30000, window_scale=False, timestamps=False, sack=False)
    t.send(
        0, "S", seq=1000, options=[MaxSegmentSize(1460), WindowScale(7), SackPermitted(), Timestamps(1, 0)]
    )
    syn_ack = t.recv("SA", seq=ISS, ack=1001, window=30000)
    # Window scaling, SACK and timestamps switched off: none is taken up (RFC 7323 §1.3, RFC 2018 §2).
    assert syn_ack.options == (MaxSegmentSize(1400),)
    assert (syn_ack.src, syn_ack.sport, syn_ack.dst, syn_ack.dport) == (
        SERVER.addr,
        SERVER.port,
        CLIENT.addr,
        CLIENT.port,
    )
    t.recv_nothing()
    assert t.state() is State.SYN_RECEIVED
    [received] = t.of_type(SegmentReceived)
    assert received.state is State.LISTEN
    [changed] = t.of_type(StateChanged)
    assert (changed.before, changed.after) == (State.LISTEN, State.SYN_RECEIVED)
    assert changed.cause is received.segment


def test_bare_ack_in_listen_gets_rst_with_seq_from_its_ack() -> None:
    t = Trace()
    t.send(0, "A", seq=1000, ack=777)
    t.recv("R", seq=777)
    t.recv_nothing()
    assert t.dropped() == [DropReason.NO_CONNECTION]
    assert t.state() is State.LISTEN


def test_syn_ack_in_listen_gets_rst() -> None:
    t = Trace()
    t.send(0, "SA", seq=1000, ack=4242)
    t.recv("R", seq=4242)


def test_flagless_segment_in_listen_is_dropped_silently() -> None:
    t = Trace()
    t.send(0, "", seq=1000)
    t.recv_nothing()
    assert t.dropped() == [DropReason.FLAGLESS]
    t.send(0, "P", seq=1000)  # PSH alone is no better
    t.recv_nothing()
    assert t.dropped() == [DropReason.FLAGLESS]


def test_rst_in_listen_is_ignored_never_answered() -> None:
    t = Trace()
    for flags in ("R", "RA", "SR", "FR"):
        t.send(0, flags, seq=1000, ack=5)
        t.recv_nothing()
        assert t.dropped() == [DropReason.RST_IN_LISTEN]


def test_fin_without_ack_for_unknown_connection_gets_rst_ack() -> None:
    # RFC 9293 §3.10.7.1: no ACK bit -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    t = Trace()
    t.send(0, "F", seq=1000, payload=b"abc")
    t.recv("RA", seq=0, ack=1000 + 3 + 1)


def test_rst_unknown_off_sends_nothing() -> None:
    t = Trace(rst_unknown=False)
    t.send(0, "A", seq=1000, ack=777)
    t.recv_nothing()
    assert t.dropped() == [DropReason.NO_CONNECTION]


def test_syn_fin_is_malformed() -> None:
    t = Trace()
    t.send(0, "FS", seq=1000)
    t.recv_nothing()
    assert t.dropped() == [DropReason.MALFORMED]
    assert t.listener.stats.connections_open == 0


def test_bad_checksum_is_dropped_and_offloaded_is_accepted() -> None:
    t = Trace()
    t.send(0, "S", seq=1000, checksum=ChecksumStatus.BAD)
    t.recv_nothing()
    assert t.dropped() == [DropReason.BAD_CHECKSUM]
    assert t.state() is State.LISTEN
    # The kernel's partial checksum on lo (docs/design.md, loopback trap 5) is not corruption.
    t.send(0, "S", seq=1000, checksum=ChecksumStatus.OFFLOADED)
    t.recv("SA", seq=ISS, ack=1001)


def test_bad_checksum_on_established_connection_changes_nothing() -> None:
    t = Trace()
    t.handshake()
    t.send(1, "R", seq=1001, checksum=ChecksumStatus.BAD)  # exact RST, but corrupt: not believed
    t.recv_nothing()
    assert t.state() is State.ESTABLISHED


@pytest.mark.parametrize(
    ("server", "description"),
    [(Endpoint("10.0.0.1", 9999), "other port"), (Endpoint("10.0.0.9", 8888), "other address")],
)
def test_segments_not_for_us_are_dropped_without_reply(server: Endpoint, description: str) -> None:
    t = Trace()
    t.send(0, "S", seq=1000, server=server)
    t.recv_nothing()
    assert t.dropped() == [DropReason.NOT_FOR_US], description


def test_wildcard_address_answers_any_destination_of_its_family() -> None:
    t = Trace(local=Endpoint("0.0.0.0", 8888))
    t.send(0, "S", seq=1000, server=Endpoint("192.0.2.7", 8888))
    reply = t.recv("SA", ack=1001)
    assert reply.src == "192.0.2.7"
    t.send(0, "S", seq=1000, server=Endpoint("2001:db8::1", 8888), client=Endpoint("2001:db8::2", 5))
    t.recv_nothing()
    assert t.dropped() == [DropReason.NOT_FOR_US]


@pytest.mark.parametrize(
    "option",
    [
        UnknownOption(2, b"\x05"),  # MSS with length 3
        UnknownOption(2, b""),  # MSS with length 2
        UnknownOption(3, b"\x01\x02"),  # window scale with length 4
        UnknownOption(4, b"\x00"),  # SACK-permitted with length 3
        UnknownOption(8, b"\x00" * 4),  # timestamps with length 6
    ],
)
def test_illegal_option_lengths_are_dropped_as_malformed(option: UnknownOption) -> None:
    # RFC 9293 §3.1 (MUST-7): handle an illegal option length without crashing.
    t = Trace()
    t.send(0, "S", seq=1000, options=[option])
    t.recv_nothing()
    assert t.dropped() == [DropReason.MALFORMED]
    # The same on an established connection: dropped, the connection carries on.
    t.handshake(client_isn=2000)
    t.send(1, "PA", seq=2001, ack=ISS + 1, payload=b"ping\n", options=[option])
    t.recv_nothing()
    assert t.dropped() == [DropReason.MALFORMED]
    t.send(1, "PA", seq=2001, ack=ISS + 1, payload=b"ping\n")
    t.recv("PA", payload=b"pong\n")


def test_illegal_option_length_bytes_never_reach_the_core() -> None:
    """The wire decoder refuses an option of length 1 (the core never sees it)."""
    from l4kit.errors import SanityError
    from l4kit.wire.packet import decode_packet, encode_packet

    t = Trace()
    good = encode_packet(t.segment("S", seq=1000, options=[MaxSegmentSize(1460)]))
    bad = bytearray(good)
    bad[20 + 20 + 1] = 1  # the MSS option's length octet
    with pytest.raises(SanityError):
        decode_packet(bytes(bad))


def test_unknown_option_kinds_are_ignored() -> None:
    t = Trace()
    t.send(0, "S", seq=1000, options=[UnknownOption(30, b"\x01\x02"), UnknownOption(99, b"")])
    t.recv("SA", ack=1001)


def test_port_zero_is_malformed() -> None:
    t = Trace()
    t.send(0, "S", seq=1000, client=Endpoint("10.0.0.2", 0))
    t.recv_nothing()
    assert t.dropped() == [DropReason.MALFORMED]


def test_data_on_syn_is_not_acknowledged() -> None:
    t = Trace()
    t.send(0, "S", seq=1000, payload=b"toppage\n")
    t.recv("SA", seq=ISS, ack=1001)  # the peer must send it again after the handshake
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.recv("PA", payload=b"hello world\n")


def test_ipv6_listener() -> None:
    server, client = Endpoint("2001:db8::1", 8888), Endpoint("2001:db8::2", 40000)
    t = Trace(local=server)
    t.send(0, "S", seq=1000, server=server, client=client)
    reply = t.recv("SA", seq=ISS, ack=1001)
    assert (reply.src, reply.dst) == ("2001:db8::1", "2001:db8::2")
    assert t.listener.connection_info(key_of(client, server)) is not None


def test_config_rejects_nonsense_with_one_line_errors() -> None:
    from l4kit.core import ListenerConfig
    from l4kit.errors import ConfigError

    for bad in (
        {"local": Endpoint("not-an-ip", 80)},
        {"local": Endpoint("127.0.0.1", 0)},
        {"local": SERVER, "mss": 10},
        {"local": SERVER, "window": 0},
        {"local": SERVER, "window": 70000, "window_scale": False},
        {"local": SERVER, "window": 65535 << 15},
        {"local": SERVER, "max_connections": 0},
        {"local": SERVER, "min_rto": 2.0, "max_rto": 1.0},
    ):
        with pytest.raises(ConfigError) as info:
            ListenerConfig(**bad)
        assert "\n" not in str(info.value)
    # IPv6 text is made canonical, so segments from the decoder compare equal.
    assert ListenerConfig(local=Endpoint("2001:DB8:0::1", 80)).local.addr == "2001:db8::1"

"""What the packet thread keeps per peer stays bounded under a spoofed flood (no root needed).

The responder's :class:`~l4kit.live.responder.Responder` is driven here directly,
with captured frames made by ``rawframes`` and a sender that only records: the
same object ``l4kit respond`` runs, minus the sockets. The core's own bounds
(connection table, half-open count, TIME-WAIT records) have their tests in
tests/unit/core; this checks what the driver adds on top.
"""

from __future__ import annotations

import os

import pytest
import rawframes

from l4kit.core.listener import Listener, ListenerConfig
from l4kit.live.apps import load_app_factory
from l4kit.live.packet_thread import MAX_PEER_MACS, Responder
from l4kit.live.ring import CapturedFrame
from l4kit.live.sender import fast_frame_encoder
from l4kit.views.layout import FittedTable
from l4kit.views.live import MAX_OPEN_LOGS, ConnectionTables
from l4kit.wire.packet import decode_packet
from l4kit.wire.segment import Endpoint

pytestmark = pytest.mark.reliability

OWN_MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("02000000c11e")
FLOOD_MAC = bytes.fromhex("02000000f100")


class RecordingSender:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.errors = 0

    def send(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True


def make_responder() -> tuple[Responder, RecordingSender]:
    listener = Listener(
        ListenerConfig(local=Endpoint("10.0.0.1", 8888), secret=os.urandom(32)),
        load_app_factory(None, False),
    )
    sender = RecordingSender()
    clock = iter(range(10**9))
    responder = Responder(
        listener,
        mac=OWN_MAC,
        encode=fast_frame_encoder(),
        sender=sender,  # type: ignore[arg-type]
        clock=lambda: next(clock) * 1e-6,
    )
    return responder, sender


def with_macs(frame: bytes, src_mac: bytes) -> bytes:
    return OWN_MAC + src_mac + frame[12:]


def test_a_spoofed_flood_does_not_grow_the_per_peer_state_without_bound() -> None:
    responder, sender = make_responder()
    flood = rawframes.syn_flood(40_000, dst="10.0.0.1", sources="10.128.0.0/9", seed=8)
    distinct_sources = {frame[26:30] for frame in flood}
    assert len(distinct_sources) > 39_000  # nearly every SYN from an address of its own
    for frame in flood:
        responder.on_sniffed(CapturedFrame(with_macs(frame, CLIENT_MAC), 0.0, False, False))
    assert responder.failure is None
    assert len(sender.frames) == len(flood)  # every SYN answered (SYN-ACK or cookie)
    # Without a bound this holds one entry per spoofed address (40,000 here, 2**24 for a /8).
    assert len(responder.peer_macs) <= MAX_PEER_MACS < len(distinct_sources)


def test_replies_go_to_the_mac_the_client_sent_from_even_after_a_flood() -> None:
    responder, sender = make_responder()
    for frame in rawframes.syn_flood(20_000, dst="10.0.0.1", sources="10.128.0.0/9", seed=9):
        responder.on_sniffed(CapturedFrame(with_macs(frame, FLOOD_MAC), 0.0, False, False))
    sender.frames.clear()
    mss = rawframes.tcp_option_mss(1460)
    syn = rawframes.ipv4_tcp("10.0.0.7", "10.0.0.1", 40000, 8888, seq=1, options=mss)
    responder.on_sniffed(CapturedFrame(with_macs(syn, CLIENT_MAC), 0.0, False, False))
    (reply,) = sender.frames
    assert reply[0:6] == CLIENT_MAC and reply[6:12] == OWN_MAC
    assert reply[14 + 33] == rawframes.SYN | rawframes.ACK  # the TCP flags octet: SYN-ACK


# ---------------------------------------------------------------- the live view's tables


def test_after_a_cookie_flood_the_next_connection_still_gets_its_table() -> None:
    # ``l4kit respond`` without --quiet turns the core's events into one table per
    # connection. A SYN answered with a cookie creates no connection, so nothing ever
    # closes its rows: they must not take a slot among the open connections' logs,
    # or after MAX_OPEN_LOGS cookie SYNs no connection would ever get a table again.
    listener = Listener(
        ListenerConfig(local=Endpoint("10.0.0.1", 8888), secret=os.urandom(32)), load_app_factory(None, False)
    )
    tables = ConnectionTables()
    now = 0.0
    flood = rawframes.syn_flood(MAX_OPEN_LOGS + 2_000, dst="10.0.0.1", sources="10.128.0.0/9", seed=10)
    flood += [  # and ACKs for no connection, each answered with a RST
        rawframes.ipv4_tcp("10.0.0.9", "10.0.0.1", 1024 + i, 8888, seq=i, ack=i, flags=rawframes.ACK)
        for i in range(2_000)
    ]
    for frame in flood:
        now += 1e-5
        tables.feed_batch(listener.receive(decode_packet(frame[14:]), now).events)
    assert listener.stats.syn_cookies_sent > MAX_OPEN_LOGS  # the half-open table filled early
    assert len(tables.logs) <= listener.stats.half_open  # only real (half-open) connections

    # A real client completes its handshake with a cookie and sends a request.
    mss = rawframes.tcp_option_mss(1460)
    syn = rawframes.ipv4_tcp("10.0.0.7", "10.0.0.1", 40000, 8888, seq=100, options=mss)
    out = listener.receive(decode_packet(syn[14:]), now)
    printed = tables.feed_batch(out.events)
    (syn_ack,) = out.segments
    request = rawframes.ipv4_tcp(
        "10.0.0.7", "10.0.0.1", 40000, 8888, seq=101, ack=syn_ack.seq.value + 1,
        flags=rawframes.ACK | rawframes.PSH, payload=b"toppage\n",
    )  # fmt: skip
    out = listener.receive(decode_packet(request[14:]), now)
    assert listener.stats.syn_cookies_accepted == 1
    printed += tables.feed_batch(out.events)
    # Its reply and FIN go out; the client acknowledges both and closes: TIME-WAIT.
    fin = rawframes.ipv4_tcp(
        "10.0.0.7", "10.0.0.1", 40000, 8888, seq=109, ack=syn_ack.seq.value + 1 + len(b"hello world\n") + 1,
        flags=rawframes.ACK | rawframes.FIN,
    )  # fmt: skip
    printed += tables.feed_batch(listener.receive(decode_packet(fin[14:]), now).events)
    (table,) = [item for item in printed if isinstance(item, FittedTable)]
    assert "10.0.0.7:40000" in str(table.title) and "TIME-WAIT" in str(table.title)
    flags = [row[2][0] for row in table.rows]
    assert flags[:2] == ["S", "SA"]  # the handshake rows, kept while the cookie was out
    seqs = [row[3][0] for row in table.rows]
    assert seqs[:3] == ["0", "0", "1"]  # relative to the ISNs, as for any connection

"""Liveplay without a network: turns cut from packets, the comparison, and whole plays
through a sans-IO pipe to l4kit's own responder core (``l4kit.drivers.pipe``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from l4kit.core import Listener, ListenerConfig, Routes, Stack, StackConfig, make_app_factory
from l4kit.drivers.pipe import PipeClient
from l4kit.errors import CaptureError
from l4kit.replay.liveplay import (
    CLIENT,
    SERVER,
    LiveplayReport,
    StreamCollector,
    first_difference,
    play,
    play_all,
)
from l4kit.replay.liveplay_capture import read_capture
from l4kit.views.client import client_rows, liveplay_json
from l4kit.wire import Endpoint

C, S = ("10.0.0.2", 40000), ("10.0.0.1", 8888)
CI, SI = 1000, 5000  # the captured ISNs


def packet(side: int, flags: str, seq: int, ack: int = 0, data: bytes = b"") -> bytes:
    src, dst = (C, S) if side == CLIENT else (S, C)
    layer = IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
    return bytes(layer / Raw(data)) if data else bytes(layer)


def collect(*packets: tuple[int, str, int, int, bytes]) -> StreamCollector:
    collector = StreamCollector(7, C, S)
    for t, (side, flags, seq, ack, data) in enumerate(packets):
        (collector.client_packet if side == CLIENT else collector.server_packet)(
            float(t), t + 1, packet(side, flags, seq, ack, data)
        )
    collector.finish()
    return collector


def test_turns_follow_the_conversation_and_count_each_octet_once() -> None:
    captured = collect(
        (CLIENT, "S", CI, 0, b""),
        (SERVER, "SA", SI, CI + 1, b""),
        (CLIENT, "PA", CI + 1, SI + 1, b"ping\n"),
        (CLIENT, "PA", CI + 6, SI + 1, b"help\n"),
        (CLIENT, "PA", CI + 1, SI + 1, b"ping\n"),  # a retransmission: nothing new
        (SERVER, "PA", SI + 1, CI + 11, b"pong\n"),
        (CLIENT, "PA", CI + 8, SI + 6, b"lp\nmore\n"),  # overlaps: only "more\n" is new
        (CLIENT, "FA", CI + 16, SI + 6, b""),
        (SERVER, "FA", SI + 6, CI + 17, b""),
    ).captured
    assert [(t.side, bytes(t.data)) for t in captured.turns] == [
        (CLIENT, b"ping\nhelp\n"),
        (SERVER, b"pong\n"),
        (CLIENT, b"more\n"),
    ]
    assert captured.turns[1].t == 5.0  # seconds from the connection's first packet
    assert (captured.client_end, captured.server_end, captured.server_closed_first) == ("FIN", "FIN", False)
    assert captured.handshake and not captured.refused
    assert captured.octets(CLIENT) == 15 and captured.octets(SERVER) == 5


def test_a_hole_in_the_capture_is_noted_and_the_server_closing_first_kept() -> None:
    captured = collect(
        (CLIENT, "S", CI, 0, b""),
        (SERVER, "SA", SI, CI + 1, b""),
        (CLIENT, "PA", CI + 1, SI + 1, b"abc"),
        (CLIENT, "PA", CI + 8, SI + 1, b"xyz"),  # 4 octets were never captured
        (SERVER, "FA", SI + 1, CI + 11, b""),
        (CLIENT, "RA", CI + 11, SI + 2, b""),
    ).captured
    assert [bytes(t.data) for t in captured.turns] == [b"abcxyz"]
    assert captured.notes == ["the capture misses 4 octets the client sent"]
    assert (captured.client_end, captured.server_end, captured.server_closed_first) == ("RST", "FIN", True)


def test_a_refused_connection_is_recognised() -> None:
    captured = collect((CLIENT, "S", CI, 0, b""), (SERVER, "RA", 0, CI + 1, b"")).captured
    assert captured.refused and captured.turns == []


@pytest.mark.parametrize(
    ("live", "captured", "expected"),
    [
        (b"abc", b"abc", None),
        (b"abX", b"abc", 2),
        (b"ab", b"abc", 2),
        (b"abcd", b"abc", 3),
        (b"", b"abc", 0),
        (b"Xbc", b"abc", 0),
        (bytes(1000) + b"!", bytes(1001), 1000),
    ],
)
def test_first_difference(live: bytes, captured: bytes, expected: int | None) -> None:
    assert first_difference(live, captured) == expected


def responder(routes: Routes, local: tuple[str, int] = S) -> Listener:
    config = ListenerConfig(local=Endpoint(*local), secret=b"k" * 32)
    return Listener(config, make_app_factory(routes, keep_open=False))


def conversation(reply: bytes, *, client_close: str = "FA") -> StreamCollector:
    request = b"ping\n"
    return collect(
        (CLIENT, "S", CI, 0, b""),
        (SERVER, "SA", SI, CI + 1, b""),
        (CLIENT, "PA", CI + 1, SI + 1, request),
        (SERVER, "PA", SI + 1, CI + 6, reply),
        (SERVER, "FA", SI + 1 + len(reply), CI + 6, b""),
        (CLIENT, client_close, CI + 6, SI + 2 + len(reply), b""),
    )


def test_play_through_the_responder_core_matches_the_capture() -> None:
    captured = conversation(b"pong\n").captured
    with PipeClient(responder(Routes.default())) as pipe:
        result = play(captured, pipe, *S, timeout=1.0)
    assert result.state == "completed"
    assert (result.sent, result.captured_sent, result.received, result.captured_received) == (5, 5, 5, 5)
    assert result.first_difference is None and result.identical
    rows = client_rows(result.rows)
    assert [r.flags for r in rows][:3] == ["S", "SA", "A"]
    assert rows[-1].after in ("CLOSED", "TIME-WAIT")


def test_play_reports_the_first_difference() -> None:
    captured = conversation(b"pong\n").captured
    with PipeClient(responder(Routes.from_mapping({"ping": "pang"}))) as pipe:
        result = play(captured, pipe, *S, timeout=1.0)
    assert result.state == "completed"
    assert result.first_difference == 1
    assert result.received == 5 and not result.identical
    assert "the server's octets differ from offset 1" in result.notes


def test_play_closes_with_rst_as_the_captured_client_did() -> None:
    captured = conversation(b"pong\n", client_close="RA").captured
    with PipeClient(responder(Routes.default())) as pipe:
        result = play(captured, pipe, *S, timeout=1.0)
    assert result.state == "completed"
    assert any(r.segment.flags.letters.startswith("R") for r in result.rows if not r.received)


def test_play_against_a_closed_port_is_refused() -> None:
    nobody = Stack(StackConfig(secret=b"s" * 32))  # no listening socket: RST to the SYN
    with PipeClient(nobody) as pipe:
        result = play(conversation(b"pong\n").captured, pipe, *S, timeout=1.0)
    assert result.state == "refused" and result.client is None
    assert result.first_difference == 0 and result.received == 0


def test_play_all_in_parallel_and_the_json_keys() -> None:
    connections = []
    for cid in range(4):
        captured = conversation(b"pong\n").captured
        captured.id = cid
        connections.append(captured)
    with PipeClient(responder(Routes.default())) as pipe:
        results = play_all(connections, pipe, *S, timeout=1.0, parallel=3)
    assert [r.id for r in results] == [0, 1, 2, 3]
    assert {r.client for r in results}.__len__() == 4  # four live connections
    document = json.loads(liveplay_json(LiveplayReport("x.pcap", "10.0.0.1:8888", results)))
    assert set(document) == {"connections", "summary"}
    assert set(document["connections"][0]) == {
        "id", "client", "server", "sent", "captured_sent", "received", "captured_received",
        "first_difference", "state", "notes",
    }  # fmt: skip
    assert document["summary"]["completed"] == document["summary"]["identical"] == 4


@pytest.mark.parametrize(("timing", "waits"), [("asis", True), ("fast", False)])
def test_timing_asis_keeps_the_captured_gap_before_a_client_turn(
    monkeypatch: pytest.MonkeyPatch, timing: str, waits: bool
) -> None:
    import l4kit.replay.liveplay as liveplay

    # The capture's client sent its request 40 s after the SYN (packet times are 0, 1, 2 ...
    # in collect(); this one is moved): asis sleeps about that long first, fast not at all.
    captured = conversation(b"pong\n").captured
    captured.turns[0].t = 40.0
    slept: list[float] = []
    monkeypatch.setattr(liveplay.time, "sleep", slept.append)
    with PipeClient(responder(Routes.default())) as pipe:
        result = play(captured, pipe, *S, timing=timing, timeout=1.0)
    assert result.state == "completed" and result.identical
    if waits:
        assert len(slept) == 1 and 39.0 < slept[0] <= 40.0
    else:
        assert slept == []


DATA = Path(__file__).resolve().parents[1] / "data"


def test_read_capture_gives_replays_ids_and_the_turns() -> None:
    # A capture of l4kit's responder on lo (tests/data/README.md): two connections.
    connections = read_capture(str(DATA / "lo-l4kit-responder.pcap"))
    assert [c.id for c in connections] == [0, 1]
    first, second = connections
    assert [(t.side, bytes(t.data)) for t in first.turns] == [
        (CLIENT, b"toppage\n"),
        (SERVER, b"hello world\n"),
    ]
    assert [bytes(t.data) for t in second.turns] == [
        b"ping\nhelp\n",
        b"pong\ncommands: help, ping, toppage\n",
    ]
    assert (first.client_end, first.server_end) == ("FIN", "FIN")
    assert [c.id for c in read_capture(str(DATA / "lo-l4kit-responder.pcap"), streams=[1])] == [1]
    with pytest.raises(CaptureError, match="no connection 5"):
        read_capture(str(DATA / "lo-l4kit-responder.pcap"), streams=[5])


def test_the_captured_responder_replays_identically_through_its_own_core() -> None:
    # What replay --through-responder does per connection: both captured connections,
    # played through the responder's core, get exactly the captured server's bytes.
    connections = read_capture(str(DATA / "lo-l4kit-responder.pcap"))
    with PipeClient(responder(Routes.default(), ("127.0.0.1", 8888))) as pipe:
        results = play_all(connections, pipe, "127.0.0.1", 8888, timeout=1.0)
    assert [(r.state, r.identical) for r in results] == [("completed", True), ("completed", True)]

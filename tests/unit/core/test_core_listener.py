"""The listener as a whole: ISNs, containment of bugs, shutdown, stats, events."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from core_trace import CLIENT, ISS, SERVER, Recorder, ReplyApp, Trace, check_invariants, key_of

from l4kit.checksum import ChecksumStatus
from l4kit.core import (
    AppReply,
    ConnectionClosed,
    ConnectionReset,
    DropReason,
    Listener,
    ListenerConfig,
    Rfc6528Isn,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    State,
    StateChanged,
    make_app_factory,
)
from l4kit.wire import Endpoint, FourTuple, SeqNum

KEY = FourTuple(SERVER, CLIENT)


# ----------------------------------------------------------------------------- RFC 6528 ISNs


def test_isn_is_clock_plus_keyed_hash() -> None:
    isn = Rfc6528Isn(b"secret")
    # M: a 4-microsecond clock, so one second later the ISN is 250,000 higher (mod 2**32).
    assert isn(KEY, 11.0) - isn(KEY, 10.0) == 250_000
    assert isn(KEY, 10.000004) - isn(KEY, 10.0) == 1
    # F: fixed for a 4-tuple and a secret (reproducible under test) ...
    assert isn(KEY, 3.0) == Rfc6528Isn(b"secret")(KEY, 3.0)
    # ... and different for another secret or another 4-tuple.
    other_port = FourTuple(SERVER, Endpoint(CLIENT.addr, CLIENT.port + 1))
    assert isn.offset(KEY) != Rfc6528Isn(b"other")(KEY, 0.0).value
    assert isn.offset(KEY) != isn.offset(other_port)


def test_isn_offset_depends_on_every_part_of_the_4_tuple() -> None:
    isn = Rfc6528Isn(b"secret")
    variants = [
        KEY,
        FourTuple(Endpoint("10.0.0.9", SERVER.port), CLIENT),
        FourTuple(Endpoint(SERVER.addr, 1), CLIENT),
        FourTuple(SERVER, Endpoint("10.0.0.9", CLIENT.port)),
        FourTuple(SERVER, Endpoint(CLIENT.addr, 1)),
        FourTuple(CLIENT, SERVER),  # the other direction
    ]
    offsets = {isn.offset(k) for k in variants}
    assert len(offsets) == len(variants)


def test_isn_hash_is_not_a_plain_unkeyed_hash() -> None:
    """F must need the secret: the plain hash of the 4-tuple text does not predict it."""
    text = f"{SERVER.addr}|{SERVER.port}|{CLIENT.addr}|{CLIENT.port}".encode()
    for unkeyed in (hashlib.blake2b(text, digest_size=4).digest(), hashlib.sha256(text).digest()[:4]):
        assert Rfc6528Isn(b"")(KEY, 0.0).value != int.from_bytes(unkeyed, "big")


def test_consecutive_connections_from_one_client_get_unrelated_looking_isns() -> None:
    t = Trace(isn=None)
    isns = []
    for i in range(3):
        client = Endpoint(CLIENT.addr, 30000 + i)
        t.send(i * 0.001, "S", seq=1000, client=client)
        isns.append(t.recv("SA").seq.value)
    steps = {(b - a) % 2**32 for a, b in itertools.pairwise(isns)}
    assert all(step > 1_000_000 for step in steps)  # not sequential (the clock moved only 250)


# ----------------------------------------------------------------------------- containment


class Exploding:
    def on_data(self, data: bytes) -> AppReply:
        raise ZeroDivisionError("boom")

    def on_peer_closed(self) -> AppReply:
        return AppReply(close=True)


def test_an_exception_in_the_application_resets_only_that_connection() -> None:
    t = Trace(app_factory=lambda key: Exploding() if key.remote.port == CLIENT.port else Recorder())
    t.allow_internal_errors = True
    t.handshake()
    out = t.listener.receive(t.segment("PA", seq=1001, ack=ISS + 1, payload=b"x"), 0.1)
    # Nothing half-done escapes: one RST, the connection gone, the reason reported.
    assert [s.flags.letters for s in out.segments] == ["RA"]
    kinds = [type(e).__name__ for e in out.events]
    assert kinds == [
        "SegmentReceived",
        "SegmentDropped",
        "SegmentSent",
        "StateChanged",
        "ConnectionReset",
        "ConnectionClosed",
    ]
    assert any(getattr(e, "reason", None) is DropReason.INTERNAL_ERROR for e in out.events)
    assert t.listener.state_of(key_of()) is State.LISTEN
    assert t.listener.stats.internal_errors == 1
    # The next client is served normally.
    other = Endpoint("10.0.0.3", 1234)
    t.send(0.2, "S", seq=1, client=other)
    t.recv("SA")


def test_application_is_not_called_after_it_closed() -> None:
    calls: list[str] = []

    class Closer(ReplyApp):
        def on_data(self, data: bytes) -> AppReply:
            calls.append("data")
            return AppReply(b"bye\n", close=True)

        def on_peer_closed(self) -> AppReply:
            calls.append("peer-closed")
            return AppReply(b"too late\n")

    t = Trace(app_factory=lambda key: Closer())
    t.handshake()
    t.send(0.1, "FPA", seq=1001, ack=ISS + 1, payload=b"x")
    t.recv("PA", payload=b"bye\n")
    t.recv("FA", ack=1003)
    assert calls == ["data"]
    assert t.state() is State.LAST_ACK


def test_factory_failure_is_contained() -> None:
    def factory(key: FourTuple) -> Recorder:
        raise RuntimeError("no app today")

    listener = Listener(ListenerConfig(local=SERVER, secret=b"s"), factory, isn=lambda k, n: SeqNum(ISS))
    listener.receive(Trace().segment("S", seq=1000), 0.0)
    out = listener.receive(Trace().segment("A", seq=1001, ack=ISS + 1), 0.1)
    assert [s.flags.letters for s in out.segments] == ["RA"]
    assert listener.stats.internal_errors == 1
    assert listener.stats.connections_open == 0
    assert listener.stats.half_open == 0


# ----------------------------------------------------------------------------- shutdown, stats, events


def test_shutdown_resets_every_connection_and_clears_time_wait() -> None:
    t = Trace()
    t.handshake()
    t.send(0, "S", seq=50, client=Endpoint("10.0.0.3", 1))  # half-open
    t.pending.clear()
    other = Endpoint("10.0.0.4", 2)
    t.handshake(client=other)
    t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n", client=other)
    t.pending.clear()
    t.send(0, "FA", seq=1009, ack=ISS + 14, client=other)
    t.pending.clear()
    assert t.listener.stats.time_wait == 1
    t.listener.shutdown(1.0)
    out = t.listener.shutdown(1.0)  # idempotent
    assert out.segments == []
    t2 = Trace()
    t2.handshake()
    out = t2.listener.shutdown(1.0)
    assert [s.flags.letters for s in out.segments] == ["RA"]
    assert out.segments[0].seq == SeqNum(ISS + 1)
    assert t2.listener.poll_at() is None
    assert t2.listener.stats.connections_open == 0
    resets = [e for e in out.events if isinstance(e, ConnectionReset)]
    assert [r.by_peer for r in resets] == [False]


def test_shutdown_with_several_connections() -> None:
    t = Trace()
    t.handshake()
    t.send(0, "S", seq=50, client=Endpoint("10.0.0.3", 1))
    t.pending.clear()
    out = t.listener.shutdown(1.0)
    assert sorted(s.flags.letters for s in out.segments) == ["RA", "RA"]
    assert len([e for e in out.events if isinstance(e, ConnectionClosed)]) == 2
    check_invariants(t.listener, out, None)
    assert t.listener.stats.connections_open == 0 and t.listener.stats.half_open == 0


def test_stats_count_what_happened() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    t.send(0.2, "A", seq=1009, ack=ISS + 1)  # a duplicate ACK: nothing to do
    t.send(0.3, "S", seq=5, client=Endpoint("10.0.0.3", 1), checksum=ChecksumStatus.BAD)
    t.tick(1.1)  # retransmission of the reply
    stats = t.listener.stats
    assert stats.segments_in == 5
    assert stats.segments_out == 4  # SYN-ACK, reply, FIN, retransmission
    assert stats.retransmissions == 1
    assert stats.drops == {DropReason.BAD_CHECKSUM: 1}
    assert stats.drops_total == 1
    assert stats.connections_established == 1


def test_every_segment_is_reported_with_the_state_it_met() -> None:
    t = Trace()
    t.handshake()
    t.send(0.1, "PA", seq=1001, ack=ISS + 1, payload=b"toppage\n")
    assert [e.state for e in t.of_type(SegmentReceived)] == [
        State.LISTEN,
        State.SYN_RECEIVED,
        State.ESTABLISHED,
    ]
    # In the order they happened: the request arrives, is delivered, the reply goes out,
    # the application closes (no segment caused that), the FIN goes out.
    facts = [
        (type(e).__name__, getattr(e, "state", None), getattr(e, "after", None))
        for e in t.last.events
        if isinstance(e, SegmentReceived | SegmentSent | StateChanged)
    ]
    assert facts == [
        ("SegmentReceived", State.ESTABLISHED, None),
        ("SegmentSent", State.ESTABLISHED, None),
        ("StateChanged", None, State.FIN_WAIT_1),
        ("SegmentSent", State.FIN_WAIT_1, None),
    ]
    assert t.of_type(StateChanged, last=True)[0].cause is None
    assert [s.segment.flags.letters for s in t.of_type(SegmentSent, last=True)] == ["PA", "FA"]


def test_notebook_style_use_with_the_real_string_server() -> None:
    listener = Listener(ListenerConfig(local=SERVER, secret=b"k"), make_app_factory())
    t = Trace()
    out = listener.receive(t.segment("S", seq=1000), 0.0)
    syn_ack = out.segments[0]
    listener.receive(t.segment("A", seq=1001, ack=syn_ack.seq.value + 1), 0.01)
    out = listener.receive(t.segment("PA", seq=1001, ack=syn_ack.seq.value + 1, payload=b"toppage\n"), 0.02)
    assert out.segments[0].payload == b"hello world\n"


@pytest.mark.parametrize("flags", ["A", "PA", "FA", "RA", "R", "S", "SA", "", "F", "FPU", "SRAFPU"])
def test_any_flag_combination_on_any_state_never_raises(flags: str) -> None:
    """Every flag combination, sequence and acknowledgment number in five states.

    Besides the explicit checks at the end, each ``t.send`` runs the trace harness's
    invariants (``core_trace.check_invariants``: no internal error, every transition
    allowed, no RST answered with a RST, SND.UNA <= SND.NXT, every bound kept).
    """
    for setup in ("listen", "syn-received", "established", "fin-wait-1", "time-wait"):
        t = Trace()
        if setup != "listen":
            t.send(0, "S", seq=1000)
        if setup in ("established", "fin-wait-1", "time-wait"):
            t.send(0, "A", seq=1001, ack=ISS + 1)
        if setup in ("fin-wait-1", "time-wait"):
            t.send(0, "PA", seq=1001, ack=ISS + 1, payload=b"ping\n")
        if setup == "time-wait":
            t.send(0, "FA", seq=1006, ack=ISS + 7)
        for seq in (0, 1000, 1001, 1006, 1007, 2**31, 2**32 - 1):
            for ack in (0, ISS, ISS + 1, ISS + 7, ISS + 100):
                out = t.send(1, flags, seq=seq, ack=ack, payload=b"zz" if seq % 2 else b"")
                assert not any(
                    isinstance(e, SegmentDropped) and e.reason is DropReason.INTERNAL_ERROR
                    for e in out.events
                )
        assert t.listener.stats.internal_errors == 0, setup

"""SYN cookies (RFC 4987 §3.6): a full half-open table answers SYNs without state,
and the ACK of a genuine cookie still makes a connection."""

from __future__ import annotations

import random

import pytest
from core_trace import ISS, SERVER, Trace, key_of

from l4kit.core import DropReason, State, StateChanged, SynCookie, SynCookies
from l4kit.core.syncookies import MSS_TABLE, mss_index
from l4kit.wire import Endpoint, FourTuple, MaxSegmentSize, SeqNum

A, B, C = (Endpoint("10.0.0.2", port) for port in (40001, 40002, 40003))


def full_half_open_table(**config: object) -> Trace:
    t = Trace(max_half_open=2, **config)  # type: ignore[arg-type]
    for client in (A, B):
        t.send(0, "S", seq=1000, client=client)
        t.recv("SA", seq=ISS, ack=1001)
    return t


def cookie_syn_ack(t: Trace, now: float, client: Endpoint = C, **syn: object) -> int:
    t.send(now, "S", seq=7000, client=client, **syn)
    reply = t.recv("SA", ack=7001)
    assert reply.options == (MaxSegmentSize(t.config.mss),)
    assert t.of_type(SynCookie, last=True) == [SynCookie(now, key_of(client), False)]
    return reply.seq.value


def test_full_half_open_table_switches_to_stateless_cookies() -> None:
    t = full_half_open_table()
    cookie_syn_ack(t, 0.1)
    stats = t.listener.stats
    assert (stats.connections_open, stats.half_open, stats.syn_cookies_sent) == (2, 2, 1)
    assert t.state(C) is State.LISTEN  # nothing was kept


def test_cookie_handshake_completes_and_the_data_on_the_ack_is_answered() -> None:
    t = full_half_open_table()
    cookie = cookie_syn_ack(t, 0.1)
    t.send(0.2, "PA", seq=7001, ack=cookie + 1, payload=b"toppage\n", client=C)
    t.recv("PA", seq=cookie + 1, ack=7009, payload=b"hello world\n")
    t.recv("FA", seq=cookie + 13, ack=7009)
    assert t.state(C) is State.FIN_WAIT_1
    assert t.of_type(SynCookie, last=True) == [SynCookie(0.2, key_of(C), True)]
    [change, *_] = t.of_type(StateChanged, last=True)
    assert (change.before, change.after) == (State.LISTEN, State.ESTABLISHED)
    info = t.listener.connection_info(key_of(C))
    assert info is not None and info.from_syn_cookie
    assert t.listener.stats.syn_cookies_accepted == 1


def test_cookie_keeps_the_peer_mss_rounded_down() -> None:
    t = full_half_open_table()
    cookie = cookie_syn_ack(t, 0.1, options=[MaxSegmentSize(1300)])
    t.send(0.2, "A", seq=7001, ack=cookie + 1, client=C)
    info = t.listener.connection_info(key_of(C))
    assert info is not None and info.send_mss == 1220


def test_cookie_without_mss_option_uses_the_default_mss() -> None:
    t = full_half_open_table()
    cookie = cookie_syn_ack(t, 0.1)
    t.send(0.2, "A", seq=7001, ack=cookie + 1, client=C)
    info = t.listener.connection_info(key_of(C))
    assert info is not None and info.send_mss == 536


@pytest.mark.parametrize(("d_seq", "d_ack"), [(0, 1), (0, -1), (1, 0), (-1, 0), (0, 1 << 24), (0, 1 << 27)])
def test_forged_or_mismatched_cookie_is_refused_with_rst(d_seq: int, d_ack: int) -> None:
    t = full_half_open_table()
    cookie = cookie_syn_ack(t, 0.1)
    ack = cookie + 1 + d_ack
    t.send(0.2, "A", seq=7001 + d_seq, ack=ack, client=C)
    t.recv("R", seq=ack)
    assert t.dropped() == [DropReason.BAD_COOKIE]
    assert t.state(C) is State.LISTEN


def test_cookie_is_not_valid_for_another_client() -> None:
    t = full_half_open_table()
    cookie = cookie_syn_ack(t, 0.1)
    t.send(0.2, "A", seq=7001, ack=cookie + 1, client=Endpoint("10.0.0.9", 40003))
    t.recv("R")
    assert t.dropped() == [DropReason.BAD_COOKIE]


def test_cookie_expires_after_one_to_two_periods() -> None:
    t = full_half_open_table(syn_cookie_period=64.0, idle_timeout=None)
    cookie = cookie_syn_ack(t, 0.1)
    t.send(127.9, "A", seq=7001, ack=cookie + 1, client=C)  # counter 0 -> 1: still good
    assert t.state(C) is State.ESTABLISHED
    t2 = full_half_open_table(syn_cookie_period=64.0, idle_timeout=None)
    cookie = cookie_syn_ack(t2, 0.1)
    t2.send(128.0, "A", seq=7001, ack=cookie + 1, client=C)  # counter 0 -> 2: expired
    t2.recv("R")
    assert t2.dropped() == [DropReason.BAD_COOKIE]


def test_cookie_of_another_secret_is_refused() -> None:
    t = full_half_open_table(secret=b"one")
    cookie = cookie_syn_ack(t, 0.1)
    u = full_half_open_table(secret=b"two")
    cookie_syn_ack(u, 0.1)  # cookies are in use there too
    u.send(0.2, "A", seq=7001, ack=cookie + 1, client=C)
    u.recv("R")


def test_random_acks_do_not_validate() -> None:
    rng = random.Random(4987)
    t = full_half_open_table()
    cookie_syn_ack(t, 0.1)
    for _ in range(2000):
        client = Endpoint("10.0.0.2", rng.randrange(1024, 65536))
        t.send(0.2, "A", seq=rng.randrange(2**32), ack=rng.randrange(2**32), client=client)
        t.pending.clear()
    assert t.listener.stats.syn_cookies_accepted == 0
    assert t.listener.stats.connections_open == 2


def test_cookies_switched_off_drop_the_syn() -> None:
    t = full_half_open_table(syn_cookies=False)
    t.send(0.1, "S", seq=7000, client=C)
    t.recv_nothing()
    assert t.dropped() == [DropReason.HALF_OPEN_FULL]


def test_full_table_drops_syns_and_valid_cookie_acks_without_rst() -> None:
    t = Trace(max_connections=2, max_half_open=1)
    t.send(0, "S", seq=1000, client=A)
    t.recv("SA")
    cookie = cookie_syn_ack(t, 0.1, client=B)
    t.send(0.1, "A", seq=1001, ack=ISS + 1, client=A)  # A is established: the table holds 1
    t.send(0.2, "S", seq=1000, client=Endpoint("10.0.0.2", 40009))  # takes the last slot
    t.recv("SA")
    t.send(0.3, "S", seq=1000, client=Endpoint("10.0.0.2", 40010))
    t.recv_nothing()
    assert t.dropped() == [DropReason.TABLE_FULL]
    t.send(0.3, "A", seq=7001, ack=cookie + 1, client=B)
    t.recv_nothing()  # no RST: the cookie stays good, the client will retransmit
    assert t.dropped() == [DropReason.TABLE_FULL]


def test_syn_flood_keeps_state_bounded_and_a_real_client_still_gets_in() -> None:
    t = Trace(max_half_open=64, max_connections=128)
    rng = random.Random(1)
    for i in range(5000):
        spoofed = Endpoint(f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65536))
        t.send(i * 0.0001, "S", seq=rng.randrange(2**32), client=spoofed)
        t.pending.clear()
    stats = t.listener.stats
    assert stats.connections_open == 64
    assert stats.half_open == 64
    assert stats.syn_cookies_sent == 5000 - 64
    # A real client during the flood: its SYN gets a cookie, its ACK makes the connection.
    real = Endpoint("10.9.9.9", 55555)
    cookie = cookie_syn_ack(t, 1.0, client=real)
    t.send(1.01, "PA", seq=7001, ack=cookie + 1, payload=b"ping\n", client=real)
    t.recv("PA", payload=b"pong\n")
    assert t.listener.stats.connections_open == 65


# ----------------------------------------------------------------------------- the cookie codec


KEY = FourTuple(SERVER, Endpoint("10.0.0.2", 40000))


def test_mss_index_rounds_down() -> None:
    assert [MSS_TABLE[mss_index(m)] for m in (0, 87, 88, 535, 536, 1459, 1460, 9000, 65535)] == [
        88,
        88,
        88,
        88,
        536,
        1440,
        1460,
        8960,
        65495,
    ]


@pytest.mark.parametrize("mss", [536, 1220, 1460, 65495])
def test_cookie_round_trip(mss: int) -> None:
    cookies = SynCookies(b"secret", period=64.0)
    cookie = cookies.make(KEY, SeqNum(123), mss, now=10.0)
    assert cookies.check(KEY, cookie, SeqNum(123), now=10.0) == mss
    assert cookies.check(KEY, cookie, SeqNum(124), now=10.0) is None
    assert SynCookies(b"other", period=64.0).check(KEY, cookie, SeqNum(123), now=10.0) is None


def test_cookie_counter_wraps_without_false_acceptance() -> None:
    cookies = SynCookies(b"secret", period=1.0)
    cookie = cookies.make(KEY, SeqNum(9), 1460, now=3.0)
    assert cookies.check(KEY, cookie, SeqNum(9), now=4.5) == 1460
    # 32 periods later the 5-bit counter shows the same value, but the hash covers the full count.
    assert cookies.check(KEY, cookie, SeqNum(9), now=3.0 + 32) is None

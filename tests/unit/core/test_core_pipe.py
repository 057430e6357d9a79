"""Two cores through a lossy, reordering, duplicating pipe deliver every octet once, in order.

A client stack connects to a server stack; each sends its own stream, then shuts its
side down, and reads the other's until end-of-stream. The pipe drops, duplicates and
delays segments at random (delays of different lengths reorder them); time is virtual
and jumps to the next delivery or timer. Whatever the pipe does, each side must read
exactly the other's stream and both connections must end cleanly.
"""

from __future__ import annotations

import heapq
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from l4kit.core import SHUT_WR, Connection, Stack, StackConfig, State
from l4kit.wire import Endpoint, Segment

CLIENT = Endpoint("10.0.0.2", 0)
SERVER = Endpoint("10.0.0.1", 7)

CONFIG = {
    "idle_timeout": None,
    "min_rto": 0.05,
    "initial_rto": 0.2,
    "max_rto": 2.0,
    "syn_retries": 40,
    "syn_ack_retries": 40,
    "max_retransmissions": 40,
    "fin_wait_2_timeout": 600.0,
    "time_wait_timeout": 5.0,
    "window": 4096,
    "max_out_of_order_bytes": 4096,
}


def stream(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


class Side:
    """An application on one end: sends ``out`` in chunks, then SHUT_WR; reads to EOF."""

    def __init__(self, out: bytes, chunk: int) -> None:
        self.out = out
        self.chunk = chunk
        self.sent = 0
        self.received = bytearray()
        self.eof = False
        self.conn: Connection | None = None

    def act(self) -> None:
        conn = self.conn
        if conn is None or not conn.connected:
            return
        while self.sent < len(self.out) and conn.writable and not conn.shut_wr:
            try:
                self.sent += conn.send(self.out[self.sent : self.sent + self.chunk])
            except BlockingIOError:
                break
        if (
            self.sent == len(self.out)
            and not conn.shut_wr
            and conn.state
            in (
                State.ESTABLISHED,
                State.CLOSE_WAIT,
            )
        ):
            conn.shutdown(SHUT_WR)
        while not self.eof and conn.readable and not conn.error:
            data = conn.recv(1000)
            if not data:
                self.eof = True
            self.received += data


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),  # the pipe's random choices
    st.floats(0.0, 0.3),  # loss
    st.floats(0.0, 0.2),  # duplication
    st.integers(0, 20_000),
    st.integers(0, 20_000),
    st.integers(1, 3000),
)
def test_every_octet_arrives_once_and_in_order(
    seed: int, loss: float, duplication: float, up: int, down: int, chunk: int
) -> None:
    rng = random.Random(seed)
    client = Stack(StackConfig(secret=b"c", **CONFIG))  # type: ignore[arg-type]
    server = Stack(StackConfig(secret=b"s", **CONFIG))  # type: ignore[arg-type]
    listening = server.listen(SERVER.addr, SERVER.port)
    a, b = Side(stream(1, up), chunk), Side(stream(2, down), chunk)
    a.conn = client.connect(CLIENT, SERVER)
    now = 0.0
    wire: list[tuple[float, int, Stack, Segment]] = []
    serial = 0

    dropped: dict[tuple[int, int, int, int], int] = {}

    def carry(sender: Stack, segments: list[Segment]) -> None:
        nonlocal serial
        receiver = server if sender is client else client
        for segment in segments:
            # The pipe may lose a segment, but not the same one (sender, seq, flags,
            # length) more than three times in a row: a link that loses everything
            # proves nothing (and the random numbers may all be 0.0).
            what = (id(sender), segment.seq.value, int(segment.flags), len(segment.payload))
            lose = rng.random() < loss and dropped.get(what, 0) < 3
            dropped[what] = dropped.get(what, 0) + 1 if lose else 0
            copies = 0 if lose else 1 + (rng.random() < duplication)
            for _ in range(copies):
                serial += 1
                heapq.heappush(wire, (now + rng.uniform(0.001, 0.08), serial, receiver, segment))

    for step in range(200_000):
        if b.conn is None and listening.readable:
            b.conn = listening.accept()
        a.act()
        b.act()
        carry(client, client.flush(now).segments)
        carry(server, server.flush(now).segments)
        due = [t for t in (client.poll_at(), server.poll_at()) if t is not None]
        if wire:
            due.append(wire[0][0])
        if not due:
            break
        now = max(now, min(due))
        assert now < 3600, f"no end after {step} steps"
        while wire and wire[0][0] <= now:
            _, _, receiver, segment = heapq.heappop(wire)
            sender = server if receiver is client else client
            carry(receiver, receiver.receive(segment, now).segments)
            del sender
        carry(client, client.tick(now).segments)
        carry(server, server.tick(now).segments)
    assert b.conn is not None and a.conn is not None
    assert bytes(b.received) == a.out and b.eof
    assert bytes(a.received) == b.out and a.eof
    assert a.conn.state in (State.CLOSED, State.TIME_WAIT) and b.conn.state in (State.CLOSED, State.TIME_WAIT)
    assert a.conn.error == 0 and b.conn.error == 0
    for stack in (client, server):
        assert stack.stats.internal_errors == 0
        assert stack.stats.connections_open == 0

"""Blocking sockets from threads on two sans-IO stacks wired to each other in memory."""

from __future__ import annotations

import errno
import queue
import threading
import time

import pytest

from l4kit.core import SHUT_WR, Output, Stack, StackConfig
from l4kit.drivers.blocking import BlockingStack
from l4kit.wire import Endpoint, Segment

SERVER = Endpoint("10.0.0.1", 7)
CLIENT = Endpoint("10.0.0.2", 0)


class Wire:
    """Two blocking stacks and one thread that carries their segments and runs their timers."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[tuple[BlockingStack, Segment]] = queue.Queue()
        config = {"idle_timeout": None, "initial_rto": 0.2, "min_rto": 0.05}
        self.server = BlockingStack(Stack(StackConfig(secret=b"s", **config)), self._to(lambda: self.client))  # type: ignore[arg-type]
        self.client = BlockingStack(Stack(StackConfig(secret=b"c", **config)), self._to(lambda: self.server))  # type: ignore[arg-type]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _to(self, other: object) -> object:
        def transmit(out: Output) -> None:
            for segment in out.segments:
                self.inbox.put((other(), segment))  # type: ignore[operator]

        return transmit

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                stack, segment = self.inbox.get(timeout=0.01)
                stack.receive(segment)
            except queue.Empty:
                pass
            for stack in (self.server, self.client):
                due = stack.poll_at()
                if due is not None and due <= time.monotonic():
                    stack.tick()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


@pytest.fixture
def wire() -> object:
    w = Wire()
    yield w
    w.stop()


def test_a_client_and_a_server_thread_talk_through_blocking_calls(wire: Wire) -> None:
    listening = wire.server.listen(SERVER.addr, SERVER.port)
    answers: list[bytes] = []

    def serve() -> None:
        conn = listening.accept(timeout=5)
        request = b""
        while not request.endswith(b"\n"):
            request += conn.recv(timeout=5)
        conn.sendall(request.upper() * 5000, timeout=5)  # more than a window: waits for room
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    sock = wire.client.connect(CLIENT, SERVER, timeout=5)
    sock.sendall(b"ping\n", timeout=5)
    sock.shutdown(SHUT_WR)
    while chunk := sock.recv(timeout=5):
        answers.append(chunk)
    server.join(5)
    assert b"".join(answers) == b"PING\n" * 5000


def test_connecting_to_a_closed_port_is_refused(wire: Wire) -> None:
    with pytest.raises(ConnectionRefusedError) as info:
        wire.client.connect(CLIENT, SERVER, timeout=5)
    assert info.value.errno == errno.ECONNREFUSED


def test_a_call_s_own_timeout(wire: Wire) -> None:
    listening = wire.server.listen(SERVER.addr, SERVER.port)
    sock = wire.client.connect(CLIENT, SERVER, timeout=5)
    listening.accept(timeout=5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2

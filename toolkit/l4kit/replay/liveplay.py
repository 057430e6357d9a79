"""Liveplay: the client side of captured TCP connections, played again with real TCP.

A capture holds what a client sent and what the server answered, but not a way to
send it again: its sequence numbers, windows and acknowledgments belong to a
connection that is gone. Liveplay does not rewrite packets. It opens a new
connection with l4kit's own TCP (fresh ISNs, the live server's windows and ACKs)
and plays the *application data* of the capture's client in the capture's turns:

1. **Reading** (:class:`StreamCollector`, fed by the replay engine in
   :func:`l4kit.replay.liveplay_capture.read_capture`, so connection
   ids are ``replay``'s and tshark's ``tcp.stream``): each direction's payload is
   reassembled in sequence-number order (a retransmission counts once; a hole the
   capture missed is noted and skipped) and cut into *turns*: the client's octets
   until the server's next ones, and so on. How each side ended is kept (FIN or
   RST, and who first).
2. **Playing** (:func:`play`): for each turn, the client's octets are sent; before
   the next client turn, the server's octets of its turn are awaited (up to
   ``timeout`` seconds: a server that answers less is waited for, then the play goes
   on). The connection is then ended as the capture's client ended it: a RST is an
   abort; a FIN is a half-close after which the server's remaining octets are read
   to its FIN (if the capture's server closed first, its FIN is awaited before
   ours, as the captured client did).
3. **Comparing**: what the live server sent with what the captured server sent:
   byte counts both ways, the first differing offset (None when identical; the
   shorter length when one is a prefix of the other), and how each side ended.

``--timing asis`` keeps the capture's gap before each client turn (measured from
the connection's first packet); ``fast`` sends as soon as the server's turn is in.

The connections go over any :class:`Connector`: the live wire
(:class:`l4kit.live.Client`, ``l4kit liveplay``), or a sans-IO pipe to l4kit's own
responder core (:class:`l4kit.drivers.pipe.PipeClient`, ``replay
--through-responder``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from l4kit.errors import ParseError
from l4kit.wire.flags import FIN_BIT, RST_BIT, SYN_BIT
from l4kit.wire.packet import decode_packet
from l4kit.wire.seqnum import MASK

CLIENT: Final = 0
SERVER: Final = 1
DEFAULT_TIMEOUT: Final = 5.0
MAX_PAYLOAD: Final = 64 * 1024 * 1024  # per connection and direction: a capture cannot make us hold more


class LiveSocket(Protocol):
    """What :func:`play` needs of a connection (:class:`l4kit.drivers.client.ClientSocket`)."""

    sent: int
    received: int
    rows: Any

    def sendall(self, data: bytes, *, timeout: Any = ...) -> None: ...

    def recv(self, limit: int = ..., *, timeout: Any = ...) -> bytes: ...

    def shutdown(self, how: int = ...) -> None: ...

    def close(self, *, linger: Any = ...) -> None: ...

    def abort(self) -> None: ...

    @property
    def local(self) -> Any: ...


class Connector(Protocol):
    """Opens connections: ``connect(host, port, timeout=...)`` (``source=`` the
    captured client's endpoint, for connectors that can use it)."""

    def connect(self, host: str, port: int, *, timeout: float | None) -> LiveSocket: ...


# ---------------------------------------------------------------- reading the capture


@dataclass(slots=True)
class Turn:
    side: int  # CLIENT or SERVER
    data: bytearray
    t: float  # seconds from the connection's first packet to the turn's first octet


@dataclass(slots=True)
class CapturedConnection:
    """One connection of the capture, as liveplay plays it."""

    id: int
    client: str  # "addr:port" as replay writes it
    server: str
    turns: list[Turn] = field(default_factory=list)
    client_end: str | None = None  # "FIN", "RST" or None (the capture's client never closed)
    server_end: str | None = None
    server_closed_first: bool = False
    refused: bool = False  # the server answered the SYN with RST
    handshake: bool = False  # the capture has the client's SYN
    notes: list[str] = field(default_factory=list)

    def octets(self, side: int) -> int:
        return sum(len(turn.data) for turn in self.turns if turn.side == side)

    def server_bytes(self) -> bytes:
        return b"".join(bytes(turn.data) for turn in self.turns if turn.side == SERVER)


class _Direction:
    """One direction's reassembly: octets in sequence order, each once."""

    __slots__ = ("base", "end_seen", "gaps", "taken")

    def __init__(self) -> None:
        self.base: int | None = None  # sequence number of the first payload octet
        self.taken = 0  # octets taken so far (offset of the next one)
        self.gaps = 0  # octets the capture missed
        self.end_seen = False

    def new_octets(self, seq: int, flags: int, payload: bytes) -> bytes:
        if flags & SYN_BIT:
            self.base = (seq + 1) & MASK
            payload_seq = (seq + 1) & MASK
        else:
            payload_seq = seq
        if not payload:
            return b""
        if self.base is None:
            self.base = payload_seq
        start = (payload_seq - self.base) & MASK
        if start >= 1 << 31:  # before the first octet: an old retransmission
            start -= 1 << 32
        end = start + len(payload)
        if end <= self.taken:
            return b""  # a retransmission of what was taken
        if start > self.taken:
            self.gaps += start - self.taken  # the capture lost these octets
            self.taken = end
            return payload
        new = payload[self.taken - start :]
        self.taken = end
        return new


class StreamCollector:
    """A replay engine collector (:class:`l4kit.replay.responder.Collector`) that cuts
    one connection into turns; ``on_done`` gets the :class:`CapturedConnection`."""

    def __init__(
        self,
        cid: int,
        client: tuple[str, int],
        server: tuple[str, int],
        on_done: Callable[[CapturedConnection], None] | None = None,
    ) -> None:
        self.captured = CapturedConnection(cid, _endpoint(*client), _endpoint(*server))
        self.on_done = on_done
        self._dirs = (_Direction(), _Direction())
        self._first_t: float | None = None
        self._size = 0

    def client_packet(self, t: float, frame: int, ip_packet: bytes) -> None:
        self._packet(CLIENT, t, ip_packet)

    def server_packet(self, t: float, frame: int, ip_packet: bytes) -> None:
        self._packet(SERVER, t, ip_packet)

    def _packet(self, side: int, t: float, ip_packet: bytes) -> None:
        if self._first_t is None:
            self._first_t = t
        try:
            segment = decode_packet(ip_packet)
        except ParseError:
            return
        captured = self.captured
        flags = int(segment.flags)
        if side == CLIENT and flags & SYN_BIT:
            captured.handshake = True
        if flags & RST_BIT:
            if side == SERVER and self._dirs[SERVER].base is None and not captured.turns:
                captured.refused = True
            self._end(side, "RST")
            return
        new = self._dirs[side].new_octets(segment.seq.value, flags, segment.payload)
        if new and self._size + len(new) <= MAX_PAYLOAD:
            self._size += len(new)
            turns = captured.turns
            if turns and turns[-1].side == side:
                turns[-1].data += new
            else:
                turns.append(Turn(side, bytearray(new), t - self._first_t))
        if flags & FIN_BIT:
            self._end(side, "FIN")

    def _end(self, side: int, how: str) -> None:
        captured = self.captured
        if side == CLIENT and captured.client_end is None:
            captured.client_end = how
        elif side == SERVER and captured.server_end is None:
            captured.server_end = how
            if captured.client_end is None:
                captured.server_closed_first = True

    def finish(self, report: Any = None) -> None:
        captured = self.captured
        for side, name in ((CLIENT, "client"), (SERVER, "server")):
            gaps = self._dirs[side].gaps
            if gaps:
                captured.notes.append(f"the capture misses {gaps} octets the {name} sent")
        if self._size >= MAX_PAYLOAD:
            captured.notes.append(f"only the first {MAX_PAYLOAD} octets of payload are played")
        if self.on_done is not None:
            self.on_done(captured)


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# ---------------------------------------------------------------- playing


@dataclass(slots=True)
class LiveplayResult:
    """One connection played: the JSON of ``l4kit liveplay`` (``docs/client.md``)."""

    id: int
    captured_client: str
    client: str | None  # the live connection's local endpoint (None: none was made)
    server: str
    sent: int = 0
    captured_sent: int = 0
    received: int = 0
    captured_received: int = 0
    first_difference: int | None = None
    state: str = "completed"  # completed, refused, timeout, reset, error
    notes: list[str] = field(default_factory=list)
    rows: Any = None  # the live connection's SegmentRow list (its flag-transition table)

    @property
    def identical(self) -> bool:
        return self.first_difference is None and self.sent == self.captured_sent

    def outcome(self) -> dict[str, Any]:
        """Octets sent and received against the capture's, the first difference, how it
        ended: the fields ``liveplay``'s JSON and ``replay --through-responder`` share."""
        return {
            "sent": self.sent,
            "captured_sent": self.captured_sent,
            "received": self.received,
            "captured_received": self.captured_received,
            "first_difference": self.first_difference,
            "state": self.state,
            "notes": list(self.notes),
        }


def first_difference(live: bytes, captured: bytes) -> int | None:
    """The first offset where ``live`` and ``captured`` differ; the shorter length when
    one is a prefix of the other; None when they are equal."""
    if live == captured:
        return None
    common = min(len(live), len(captured))
    if live[:common] == captured[:common]:
        return common
    low, high = 0, common  # a binary search on equal prefixes: C comparisons, no Python loop per octet
    while high - low > 1:
        middle = (low + high) // 2
        if live[:middle] == captured[:middle]:
            low = middle
        else:
            high = middle
    return low if live[low] != captured[low] else high


def play(
    captured: CapturedConnection,
    connector: Connector,
    host: str,
    port: int,
    *,
    timing: str = "fast",
    timeout: float = DEFAULT_TIMEOUT,
    stop: threading.Event | None = None,
) -> LiveplayResult:
    """Play one captured connection against ``host``:``port``; never raises for what the
    server does (refusal, reset, silence are the result's ``state``)."""
    server = _endpoint(host, port)
    result = LiveplayResult(
        id=captured.id,
        captured_client=captured.client,
        client=None,
        server=server,
        captured_sent=captured.octets(CLIENT),
        captured_received=captured.octets(SERVER),
    )
    result.notes += captured.notes
    expected = captured.server_bytes()
    if captured.refused:
        result.notes.append("the captured server refused this connection")
    if not captured.handshake:
        result.notes.append("the capture starts after the handshake")
    try:
        sock = connector.connect(host, port, timeout=timeout)
    except ConnectionRefusedError:
        result.state = "refused"
        result.notes.append(f"{server} answered the SYN with RST")
        result.first_difference = first_difference(b"", expected)
        return result
    except TimeoutError:
        result.state = "timeout"
        result.notes.append(f"no answer to the SYN within {timeout:g} s")
        result.first_difference = first_difference(b"", expected)
        return result
    result.client = str(sock.local)
    result.rows = sock.rows
    received = bytearray()
    state = _Play(sock, received, timeout)
    try:
        started = time.monotonic()
        expected_so_far = 0
        for number, turn in enumerate(captured.turns, 1):
            if stop is not None and stop.is_set():
                result.notes.append("stopped")
                break
            if turn.side == CLIENT:
                if timing == "asis":
                    delay = turn.t - (time.monotonic() - started)
                    if delay > 0:
                        time.sleep(delay)  # the captured gap before this turn
                sock.sendall(bytes(turn.data))
            else:
                expected_so_far += len(turn.data)
                if not state.read_until(expected_so_far):
                    if state.eof:
                        break
                    result.notes.append(
                        f"turn {number}: waited {timeout:g} s for {expected_so_far - len(received)} more "
                        "octets of the server"
                    )
        _end_as_captured(captured, state, result)
    except ConnectionResetError:
        state.reset = True
    except BrokenPipeError:
        state.reset = True
    except TimeoutError:
        result.state = "timeout"
        result.notes.append(f"the server took more than {timeout:g} s")
        with contextlib.suppress(OSError):
            sock.abort()
    finally:
        result.sent = sock.sent
        result.received = len(received)
    if state.reset:
        with contextlib.suppress(OSError):
            sock.abort()
        if captured.server_end == "RST":
            result.notes.append("reset by the server, as in the capture")
        else:
            result.state = "reset"
            result.notes.append("reset by the server")
    result.first_difference = first_difference(bytes(received), expected)
    if result.first_difference is not None and result.state == "completed":
        result.notes.append(f"the server's octets differ from offset {result.first_difference}")
    return result


class _Play:
    """The reading side of one played connection."""

    __slots__ = ("eof", "received", "reset", "sock", "timeout")

    def __init__(self, sock: LiveSocket, received: bytearray, timeout: float) -> None:
        self.sock = sock
        self.received = received
        self.timeout = timeout
        self.eof = False
        self.reset = False

    def read_until(self, total: int | None) -> bool:
        """Read until ``total`` octets in all (None: the server's FIN); False when the
        server's FIN or the timeout came first."""
        while total is None or len(self.received) < total:
            if self.eof:
                return total is None
            try:
                chunk = self.sock.recv(timeout=self.timeout)
            except TimeoutError:
                return False
            if not chunk:
                self.eof = True
                return total is None
            self.received += chunk
        return True


def _end_as_captured(captured: CapturedConnection, state: _Play, result: LiveplayResult) -> None:
    """Close as the capture's client did: a RST is an abort; a FIN follows the server's
    FIN when the captured server closed first, and is followed by it otherwise."""
    sock = state.sock
    waits_for_server = captured.server_closed_first or captured.client_end is None
    if waits_for_server and not state.read_until(None):
        result.notes.append(f"the server did not close within {state.timeout:g} s")
    if captured.client_end == "RST":
        sock.abort()
        result.notes.append("aborted (RST), as the capture's client did")
        return
    if captured.client_end is None:
        result.notes.append("the capture's client never closed: closed with FIN")
    sock.shutdown()
    if not state.read_until(None):
        result.state = "timeout"
        result.notes.append(f"the server did not close within {state.timeout:g} s of our FIN")
        sock.abort()
        return
    sock.close(linger=state.timeout)


@dataclass(slots=True)
class LiveplayReport:
    capture: str
    server: str
    results: list[LiveplayResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        results = self.results
        return {
            "capture": self.capture,
            "server": self.server,
            "connections": len(results),
            "completed": sum(1 for r in results if r.state == "completed"),
            "identical": sum(1 for r in results if r.state == "completed" and r.identical),
            "different": sum(
                1 for r in results if r.first_difference is not None or r.sent != r.captured_sent
            ),
            "refused": sum(1 for r in results if r.state == "refused"),
            "timeout": sum(1 for r in results if r.state == "timeout"),
            "reset": sum(1 for r in results if r.state == "reset"),
            "sent": sum(r.sent for r in results),
            "captured_sent": sum(r.captured_sent for r in results),
            "received": sum(r.received for r in results),
            "captured_received": sum(r.captured_received for r in results),
        }


def play_all(
    connections: Iterable[CapturedConnection],
    connector: Connector,
    host: str,
    port: int,
    *,
    timing: str = "fast",
    timeout: float = DEFAULT_TIMEOUT,
    parallel: int = 1,
) -> list[LiveplayResult]:
    """Play every connection, ``parallel`` at a time; results in id order."""
    items = sorted(connections, key=lambda c: c.id)
    if parallel <= 1 or len(items) <= 1:
        return [play(c, connector, host, port, timing=timing, timeout=timeout) for c in items]
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="l4kit-liveplay") as pool:
        futures = [
            pool.submit(play, c, connector, host, port, timing=timing, timeout=timeout, stop=stop)
            for c in items
        ]
        try:
            return [future.result() for future in futures]
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise

"""Userspace TCP sockets on a real interface: the core's active open over the live wire.

:class:`Client` is one userspace TCP host. It owns a :class:`~l4kit.core.stack.Stack`
(the sans-IO core, shared by every socket it opens) behind a
:class:`~l4kit.drivers.blocking.BlockingStack`, and per interface and address family
one :class:`Link`: a Scapy ``AsyncSniffer`` on a packet socket whose BPF filter passes
inbound TCP of this client's 4-tuples only (every socket on the interface shares it; the
filter is replaced when a socket joins or leaves), and one persistent Scapy L2 socket
that every frame leaves by. A timer thread runs the core's timers (retransmissions,
TIME-WAIT) when :meth:`Stack.poll_at` says. :meth:`Client.connect` gives a
:class:`Socket` with blocking calls and timeouts; :func:`connect` is the one-socket
shortcut::

    from l4kit.live import connect

    with connect("127.0.0.1", 8000, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        sock.shutdown()                 # our FIN: the request is complete
        reply = sock.recv_all()         # until the server's FIN
    for row in sock.rows:               # the flag transitions, as every table shows them
        print(row.segment.flags.letters, row.before, "->", row.after)

What each socket needs from the host, and how it is given back (the same machinery
as ``l4kit respond``, :mod:`l4kit.live.host`):

* **a local port the kernel does not use.** A kernel TCP socket is bound to the
  source address and port (port 0: the kernel picks a free ephemeral one) and held,
  never listening, for the socket's life: no kernel socket can take the port while
  l4kit uses it, and the kernel's own connections never pick it.
* **no kernel RST.** The kernel has no connection on that port, so it answers the
  server's SYN-ACK with RST (RFC 9293 §3.10.7.1). A firewall rule scoped to the
  socket's source address and port drops the kernel's outgoing RSTs from it, and
  nothing else; it is recorded in a state file first, removed when the socket is
  released, and ``l4kit cleanup`` removes it after a SIGKILL.
* **the loopback traps.** On ``lo`` with a 127.0.0.0/8 address, the interface's own
  ``route_localnet`` and ``accept_local`` (never ``all`` or ``default``), restored
  afterwards; frames to ``00:00:00:00:00:00``; outgoing copies ignored by the filter.
* **the next hop's link address** on a real interface, from the kernel's neighbour
  table (:mod:`l4kit.live.route`).

A released socket's connection may still be in TIME-WAIT in the core; the rule is gone
by then, so a late retransmission from the server gets the kernel's RST, as it would
after any program that exits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from l4kit.checksum import ChecksumStatus
from l4kit.codecs.fast import FastCodec
from l4kit.core import StackConfig
from l4kit.core.events import Output
from l4kit.core.stack import Stack
from l4kit.drivers.blocking import BlockingStack, TimerThread
from l4kit.drivers.client import ClientSocket
from l4kit.drivers.transitions import SegmentRow, TransitionRecorder
from l4kit.errors import ConfigError, L4kitError, ParseError
from l4kit.live import preflight
from l4kit.live.capture import (
    ETHERNET_HEADER_LEN,
    BpfProgram,
    InboundTcpSocket,
    TimerDue,
    attach_bpf,
    compile_bpf,
)
from l4kit.live.host import HostPreparation, plan_host
from l4kit.live.pcap import PcapWriterThread
from l4kit.live.privileges import require_live_privileges
from l4kit.live.ring import CapturedFrame
from l4kit.live.route import LOOPBACK_MAC, Route, resolve_mac, route_to
from l4kit.live.sender import FrameEncoder, L2Sender, frame_encoder
from l4kit.safefile import check_new_file
from l4kit.wire.segment import Endpoint, FourTuple

DEFAULT_TIMEOUT = 10.0
# A filter that passes nothing: a link whose sockets are all gone stays open, quiet.
NOTHING: BpfProgram = [(0x06, 0, 0, 0)]  # BPF_RET | BPF_K, 0
CLIENT_SOCKET_BUFFER = 4 * 1024 * 1024
HISTORY = 1024  # connections whose rows Client.history keeps
_CODEC = FastCodec()


def tuple_filter_text(keys: list[FourTuple]) -> str:
    """The BPF filter of a link: inbound TCP from each socket's server to the socket."""
    parts = [
        f"(src host {k.remote.addr} and src port {k.remote.port} and dst host {k.local.addr} "
        f"and dst port {k.local.port})"
        for k in keys
    ]
    return "inbound and tcp and (" + " or ".join(parts) + ")"


class Link:
    """One interface and address family: a filtered packet socket read by an
    ``AsyncSniffer``, and one L2 socket for sending."""

    def __init__(self, client: Client, iface: str, *, ipv6: bool) -> None:
        from scapy.sendrecv import AsyncSniffer

        self.client = client
        self.iface = iface
        self.ipv6 = ipv6
        self.keys: list[FourTuple] = []
        self.failure: BaseException | None = None
        self.capture = InboundTcpSocket(iface, NOTHING, ipv6=ipv6, buffer_bytes=CLIENT_SOCKET_BUFFER)
        try:
            self.sender = L2Sender(iface)
        except BaseException:
            self.capture.close()
            raise
        self.mac = self.capture.mac
        self.loopback = preflight.link_info(iface).loopback
        started = threading.Event()
        self.sniffer = AsyncSniffer(
            opened_socket=self.capture, prn=self.on_sniffed, store=False, started_callback=started.set
        )
        self.sniffer.start()
        if not started.wait(10):
            self.close()
            raise L4kitError(f"the sniffer on {iface} did not start: {self.sniffer.exception or 'timed out'}")

    def set_filter(self) -> None:
        """Replace the kernel filter with one for the link's 4-tuples (atomic: the
        kernel swaps the program; no frame sees a half-made one)."""
        program = compile_bpf(tuple_filter_text(self.keys), self.iface) if self.keys else NOTHING
        attach_bpf(self.capture.ins, program)

    def add(self, key: FourTuple) -> None:
        self.keys.append(key)
        self.set_filter()

    def remove(self, key: FourTuple) -> None:
        if key in self.keys:
            self.keys.remove(key)
            with contextlib.suppress(OSError, L4kitError):
                self.set_filter()

    # The sniffer's prn: it must never raise (Scapy would close the socket).
    def on_sniffed(self, item: CapturedFrame | TimerDue) -> None:
        if not isinstance(item, CapturedFrame):
            return  # a wake-up with nothing to read: the timer thread serves the timers
        try:
            self.client.on_frame(item)
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc

    def send(self, frame: bytes) -> bool:
        return self.sender.send(frame)

    def close(self) -> None:
        if self.sniffer.running:
            with contextlib.suppress(Exception):
                self.sniffer.stop(join=True)
        self.capture.close()
        self.sender.close()


@dataclass(slots=True)
class _Held:
    """What one socket holds on the host until it is released."""

    key: FourTuple
    link: Link
    mac: bytes
    reservation: socket.socket
    host: HostPreparation | None
    rows: list[SegmentRow] = field(default_factory=list)


class Client:
    """A userspace TCP host on the live wire: one core, shared by every socket.

    ``firewall`` is ``auto``, ``nft`` or ``iptables`` (how the kernel's RST is
    dropped); ``codec`` ``scapy`` (frames built as Scapy layers, the default) or
    ``fast``; ``pcap`` a file that gets every frame in and out (opened as
    :mod:`l4kit.safefile` opens files: never through a link, a new file unless
    ``force``). Use it as a context manager, or call :meth:`close`: every socket still
    open is reset and every change to the host undone.
    """

    def __init__(
        self,
        *,
        firewall: str = "auto",
        codec: str = "scapy",
        pcap: Path | None = None,
        force: bool = False,
        config: StackConfig | None = None,
        command: str = "a live l4kit client",
        notice: Callable[[str], None] | None = None,
    ) -> None:
        require_live_privileges(command, firewall=True)
        self.notice = notice
        self.firewall = firewall
        self.command = command
        self.encode: FrameEncoder = frame_encoder(codec)
        self.stack = Stack(config or StackConfig(secret=os.urandom(32)))
        self._timers = TimerThread("l4kit-client-timers")
        self.blocking = BlockingStack(self.stack, self._transmit, wake=self._timers.wake)
        self.frames_in = 0
        self.frames_out = 0
        self.send_errors = 0
        self.drops: dict[str, int] = {}
        self._recorder = TransitionRecorder()
        # Every connection's rows, the refused and timed-out ones too (bounded).
        self.history: deque[tuple[FourTuple, list[SegmentRow]]] = deque(maxlen=HISTORY)
        self._held: dict[FourTuple, _Held] = {}
        self._links: dict[tuple[str, bool], Link] = {}
        self._setup = threading.Lock()  # links and filters (never held while waiting on the core)
        self._pcap: PcapWriterThread | None = None
        if pcap is not None:
            check_new_file(pcap, overwrite=force, option="--pcap")
            self._pcap = PcapWriterThread(pcap, overwrite=force)
        # The core's timers run on their own thread: the sniffers block on their sockets.
        self._timers.start([(self.blocking.poll_at, self.blocking.tick)])

    # ------------------------------------------------------------------ sockets

    def connect(
        self,
        host: str,
        port: int,
        *,
        source_port: int = 0,
        iface: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> Socket:
        """Open a connection to ``host``:``port`` and wait for the handshake.

        ``host`` is an address or a name (resolved by the system's resolver; an IPv6
        address gives an IPv6 connection). ``source_port`` 0 lets the kernel pick a
        free ephemeral port; ``iface`` insists on the interface the route must use.
        Raises ``ConnectionRefusedError`` (a RST answered the SYN), ``TimeoutError``
        (no answer within ``timeout``, or the SYN retransmissions ran out),
        :class:`~l4kit.errors.ConfigError` for what the host cannot do (no route, the
        port in use, no such interface)."""
        if self._timers.closing:
            raise ConfigError("the client is closed")
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port}: not in 1-65535")
        if not 0 <= source_port <= 65535:
            raise ConfigError(f"source port {source_port}: not in 0-65535")
        address = resolve_host(host)
        if iface is not None:
            preflight.require_interface(iface)
        route = route_to(address, iface=iface)
        if iface is not None and route.iface != iface:
            raise ConfigError(f"the route to {address} goes through {route.iface}, not {iface}")
        if not preflight.link_info(route.iface).up:
            raise ConfigError(f"interface {route.iface} is down", hint=f"ip link set {route.iface} up")
        held = self._hold(route, address, port, source_port)
        try:
            conn = self.blocking.connect(held.key.local, held.key.remote, timeout=timeout)
        except BaseException:
            self._release(held)
            raise
        return Socket(
            self.blocking, conn, held.key, held.rows, timeout=timeout, release=lambda: self._release(held)
        )

    def _hold(self, route: Route, address: str, port: int, source_port: int) -> _Held:
        """Everything a new socket needs before its SYN leaves: the port, the rule, the
        sysctls, the link (with the filter passing its 4-tuple) and the next hop's address."""
        reservation = reserve_port(route.source, source_port)
        local = Endpoint(route.source, reservation.getsockname()[1])
        key = FourTuple(local, Endpoint(address, port))
        host = None
        try:
            host = HostPreparation(
                plan_host(route.iface, local.addr, local.port, firewall=self.firewall),
                tool="l4kit connect",
                notice=self.notice,
            )
            host.__enter__()
            with self._setup:
                link = self._link(route.iface, ipv6=":" in address)
                mac = (
                    LOOPBACK_MAC if link.loopback or route.local else resolve_mac(route.next_hop, route.iface)
                )
                held = _Held(key, link, mac, reservation, host)
                self._held[key] = held
                self.history.append((key, held.rows))
                link.add(key)
        except BaseException:
            with self._setup:
                if self._held.pop(key, None) is not None:
                    self._held_link_remove(key)
            if host is not None:
                host.restore()
            reservation.close()
            raise
        return held

    def _held_link_remove(self, key: FourTuple) -> None:
        for link in self._links.values():
            link.remove(key)

    def _link(self, iface: str, *, ipv6: bool) -> Link:
        link = self._links.get((iface, ipv6))
        if link is None:
            link = Link(self, iface, ipv6=ipv6)
            self._links[(iface, ipv6)] = link
        return link

    def _release(self, held: _Held) -> None:
        """Give back what the socket held: the filter's 4-tuple, the rule and sysctls, the port."""
        with self._setup:
            held.link.remove(held.key)
            self._held.pop(held.key, None)
        try:
            if held.host is not None:
                held.host.restore()
        finally:
            held.host = None
            held.reservation.close()

    # ------------------------------------------------------------------ the wire

    def on_frame(self, frame: CapturedFrame) -> None:
        """One inbound frame (a sniffer thread): decode it and give it to the core."""
        self.frames_in += 1
        data = frame.data
        if self._pcap is not None:
            self._pcap.write(frame.wall_time, data)
        # As the responder does: the kernel's checksum status first (a partial checksum
        # on lo is the kernel's own segment, never corrupt).
        known = (
            ChecksumStatus.OFFLOADED
            if frame.checksum_partial
            else (ChecksumStatus.OK if frame.checksum_valid else None)
        )
        try:
            segment = _CODEC.decode(data[ETHERNET_HEADER_LEN:], known)
        except ParseError as exc:
            tag = f"{exc.layer}:{exc.reason}"
            self.drops[tag] = self.drops.get(tag, 0) + 1
            return
        self.blocking.receive(segment)

    def _transmit(self, out: Output) -> None:
        """What one call into the core produced (under the core's lock): rows for each
        connection's table, frames onto the wire."""
        for row in self._recorder.feed_all(out.events):
            held = self._held.get(row.key)
            if held is not None:
                held.rows.append(row)
        for segment in out.segments:
            # Segment.key is the receiver's view: (destination, source); ours is the reverse.
            held = self._held.get(
                FourTuple(Endpoint(segment.src, segment.sport), Endpoint(segment.dst, segment.dport))
            )
            if held is None:
                self.drops["no-route"] = self.drops.get("no-route", 0) + 1
                continue
            frame = self.encode(segment, held.link.mac, held.mac)
            if held.link.send(frame):
                self.frames_out += 1
                if self._pcap is not None:
                    self._pcap.write(time.time(), frame)
            else:
                self.send_errors += 1
        self._timers.wake()

    def failure(self) -> BaseException | None:
        """An exception a sniffer thread met (None: all well)."""
        return next((link.failure for link in self._links.values() if link.failure is not None), None)

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        """Reset what is still open, undo every change to the host, stop the threads."""
        if self._timers.closing:
            return
        try:
            for held in list(self._held.values()):
                conn = self.stack.connection(held.key)
                if conn is not None and not conn.closed:
                    with contextlib.suppress(OSError):
                        self.blocking.call(conn.abort)
            self.blocking.shutdown()
        finally:
            errors: list[BaseException] = []
            for held in list(self._held.values()):
                try:
                    self._release(held)
                except BaseException as exc:  # restore the others all the same
                    errors.append(exc)
            self._timers.stop()
            for link in self._links.values():
                link.close()
            self._links.clear()
            if self._pcap is not None:
                self._pcap.close()
            if errors:
                raise errors[0]

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Socket(ClientSocket):
    """One connection of a :class:`Client` (:class:`~l4kit.drivers.client.ClientSocket`'s
    blocking calls); closing or aborting it gives back what it held on the host."""


def connect(
    host: str,
    port: int,
    *,
    source_port: int = 0,
    iface: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    firewall: str = "auto",
    codec: str = "scapy",
    pcap: Path | None = None,
    force: bool = False,
) -> Socket:
    """One connection with a :class:`Client` of its own, closed with the socket."""
    client = Client(firewall=firewall, codec=codec, pcap=pcap, force=force)
    try:
        sock = client.connect(host, port, source_port=source_port, iface=iface, timeout=timeout)
    except BaseException:
        client.close()
        raise
    sock.on_release(client.close)
    return sock


# ---------------------------------------------------------------- the host's side


def resolve_host(host: str) -> str:
    """An address for ``host`` (an address as is; a name through the system's resolver,
    its first TCP address)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host.strip("[]")))
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve {host!r}: {exc.strerror}") from None
    if not found:
        raise ConfigError(f"cannot resolve {host!r}")
    return str(found[0][4][0])


def reserve_port(address: str, port: int) -> socket.socket:
    """A kernel TCP socket bound to ``address``:``port`` (0: a free ephemeral port), never
    listening: while it is open no kernel socket can use the port, and l4kit can."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        what = f"port {port}" if port else "an ephemeral port"
        raise ConfigError(f"cannot reserve {what} on {address}: {exc.strerror or exc}") from None
    return sock

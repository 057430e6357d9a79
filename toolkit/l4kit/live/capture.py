"""Receiving: a packet socket with a BPF filter, read by Scapy's ``AsyncSniffer``.

The design (docs/design.md, "The live driver"): the responder runs a Scapy
``AsyncSniffer`` with ``opened_socket=`` an :class:`InboundTcpSocket`, a Scapy
``SuperSocket`` of our own around an ``AF_PACKET`` socket (packet(7)). Scapy's
sniffer thread then does what it always does (select, recv, ``prn`` callback,
``started_callback``, ``stop()``), but the hot path stays lean:

- The socket reads a PACKET_MMAP ring (:mod:`l4kit.live.ring`): the kernel writes
  each frame into memory shared with this process, and a frame costs no system
  call. The sniff loop's session (:class:`FrameBatches`) takes every frame the
  ring holds at once, so the loop's own work (its ``select``, its bookkeeping) is
  done once per batch; ``prn`` still sees one frame at a time.
- It returns :class:`CapturedFrame` objects (the raw bytes, the kernel's timestamp
  and checksum status), not dissected Scapy packets: dissecting costs more than the
  whole TCP state machine, and the wire layer decodes what the core needs.
- The filter runs in the kernel: ``inbound and tcp and dst host A and dst port P``,
  compiled by libpcap (through Scapy's ``compile_filter``, or ``tcpdump -ddd`` when
  Scapy cannot load libpcap). ``inbound`` loads the frame's packet type (the BPF
  ancillary field ``SKF_AD_PKTTYPE``) and rejects ``PACKET_OUTGOING``: on ``lo``
  every frame passes the tap twice, once leaving and once arriving, and answering
  both copies sends two SYN-ACKs with different ISNs (docs/design.md, trap 2). The
  packet type the ring records for each frame is checked again.
- The filter is attached before the socket is bound to the interface, so no
  unfiltered frame is ever queued.
- Each frame's ring header carries ``tp_status``: ``TP_STATUS_CSUMNOTREADY`` marks a frame
  whose checksum the kernel left partial (``CHECKSUM_PARTIAL``: a locally generated
  segment on ``lo``, trap 5), ``TP_STATUS_CSUM_VALID`` one the kernel already
  verified. The responder classifies the checksum from these before looking at the
  bytes.
- The ring is sized for bursts (``--rcvbuf``), and so is the socket's receive buffer
  (``SO_RCVBUFFORCE`` as root), which holds the frames too long for a ring slot; the
  kernel's drop counter (``PACKET_STATISTICS``) is read so that a flood that overruns
  the sniffer shows up in the exit summary instead of vanishing.
- Timers: the sniffer blocks in ``select`` on this socket. Its ``select`` method
  (Scapy calls the first socket's) wakes up at the core's next timer
  (``wakeup_at``), and the read then returns :data:`TIMER_DUE`, so the one thread
  that owns the core also serves its timers while no frame arrives. It does not
  block at all while the ring holds a frame.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from scapy.sessions import DefaultSession
from scapy.supersocket import SuperSocket

from l4kit.errors import ConfigError
from l4kit.live.ring import SOL_PACKET, CapturedFrame, RxRing

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHERNET_HEADER_LEN = 14

#: The most frames one read of the sniff loop takes from the ring: the loop checks for a
#: stop request between reads.
BATCH: Final = 256

DEFAULT_SOCKET_BUFFER = 16 * 1024 * 1024

BpfProgram = list[tuple[int, int, int, int]]


def bpf_filter_text(address: str, port: int) -> str:
    """The filter the sniffer runs: inbound TCP to the responder only (trap 2)."""
    return f"inbound and tcp and dst host {address} and dst port {port}"


def compile_bpf(filter_text: str, iface: str) -> BpfProgram:
    """The classic BPF program for ``filter_text`` as (code, jt, jf, k) tuples.

    Scapy compiles with libpcap (``pcap_compile`` through ctypes); where Scapy
    cannot load libpcap, ``tcpdump -ddd`` (which links it) does the same job.
    """
    try:
        return _compile_with_scapy(filter_text, iface)
    except ImportError:
        pass
    if shutil.which("tcpdump") is None:
        raise ConfigError(
            "cannot compile the BPF filter: neither libpcap (for Scapy) nor tcpdump is installed",
            hint="apt-get install tcpdump",
        )
    return compile_with_tcpdump(filter_text)


def _compile_with_scapy(filter_text: str, iface: str) -> BpfProgram:
    from scapy.arch.common import compile_filter, free_filter
    from scapy.error import Scapy_Exception

    try:
        program = compile_filter(filter_text, iface=iface)
    except Scapy_Exception as exc:
        raise ConfigError(f"cannot compile the BPF filter {filter_text!r}: {exc}") from None
    except OSError as exc:  # libpcap is there but refused the interface
        raise ConfigError(f"cannot compile the BPF filter {filter_text!r}: {exc}") from None
    try:
        insns = program.bf_insns
        return [
            (int(insns[i].code), int(insns[i].jt), int(insns[i].jf), int(insns[i].k) & 0xFFFFFFFF)
            for i in range(int(program.bf_len))
        ]
    finally:
        free_filter(program)


def compile_with_tcpdump(filter_text: str, linktype: str = "EN10MB") -> BpfProgram:
    """``tcpdump -y EN10MB -ddd FILTER``: a count line, then ``code jt jf k`` lines."""
    done = subprocess.run(
        ["tcpdump", "-y", linktype, "-ddd", filter_text],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if done.returncode != 0:
        raise ConfigError(f"tcpdump cannot compile the BPF filter {filter_text!r}: {done.stderr.strip()}")
    lines = done.stdout.split("\n")
    count = int(lines[0])
    program = []
    for line in lines[1 : 1 + count]:
        code, jt, jf, k = (int(x) for x in line.split())
        program.append((code, jt, jf, k & 0xFFFFFFFF))
    return program


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_bpf(sock: socket.socket, program: BpfProgram) -> None:
    """``setsockopt(SO_ATTACH_FILTER)`` with ``struct sock_fprog`` (socket(7))."""
    insns = (_SockFilter * len(program))(*(_SockFilter(c, t, f, k) for c, t, f, k in program))
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


class TimerDue:
    """Returned by ``recv`` when ``select`` woke up for the core's next timer."""

    __slots__ = ("sniffed_on",)

    def __init__(self) -> None:
        self.sniffed_on: Any = None

    def __repr__(self) -> str:
        return "TIMER_DUE"


TIMER_DUE = TimerDue()


class InboundTcpSocket(SuperSocket):  # type: ignore[misc,unused-ignore]  # Scapy is Any to the wheel build
    """The sniffer's socket: filtered in the kernel, read from a ring, no dissection, timer wake-ups."""

    desc = "inbound TCP frames for l4kit respond (AF_PACKET, BPF, TPACKET_V2 ring)"
    nonblocking_socket = False

    def __init__(
        self,
        iface: str,
        program: BpfProgram,
        *,
        ipv6: bool = False,
        buffer_bytes: int = DEFAULT_SOCKET_BUFFER,
        wakeup_at: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.iface = iface
        self.wakeup_at = wakeup_at
        self.kernel_packets = 0
        self.kernel_drops = 0
        self.buffer_bytes = 0
        self.error: OSError | None = None  # why reading failed (Scapy only logs it, then drops the socket)
        protocol = ETH_P_IPV6 if ipv6 else ETH_P_IP
        # Protocol 0: the socket receives nothing until bind() names one, by which
        # time the filter and the ring are in place.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            attach_bpf(sock, program)
            _size_receive_buffer(sock, buffer_bytes)
            self.ring = RxRing(sock, buffer_bytes)
            sock.bind((iface, protocol))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot open a packet socket on {iface}: {exc.strerror or exc}") from None
        self.buffer_bytes = self.ring.bytes
        name = sock.getsockname()
        self.hatype = int(name[3])
        self.mac = bytes(name[4]).ljust(6, b"\x00")[:6]
        if self.hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
            self.ring.close()
            sock.close()
            raise ConfigError(
                f"interface {iface} has link type {self.hatype}; "
                "l4kit respond answers on Ethernet and loopback interfaces only"
            )
        self.ins = sock
        self.outs = None
        self.promisc = False
        # SuperSocket's own fields that its close() and repr read.
        self.closed = False

    @property
    def truncated(self) -> int:
        """Frames longer than the ring's slot that the kernel could not queue whole."""
        return self.ring.truncated

    # --- Scapy SuperSocket interface -------------------------------------------------

    def select(self, sockets: list[Any], remain: float | None = None) -> list[Any]:  # type: ignore[override,unused-ignore]
        """Scapy's sniff loop calls the first socket's ``select``: at once while the ring
        holds a frame; otherwise wait for one, a stop request (Scapy's control pipe is in
        ``sockets``) or the core's next timer."""
        if self.ring.ready():
            return [self]
        deadline = self.wakeup_at()
        timeout = remain
        if deadline is not None:
            until_timer = max(0.0, deadline - time.monotonic())
            timeout = until_timer if timeout is None else min(timeout, until_timer)
        ready = select.select(sockets, [], [], timeout)[0]
        if not ready and deadline is not None and time.monotonic() >= deadline:
            return [self]
        return ready

    def recv_batch(self) -> Sequence[CapturedFrame | TimerDue]:
        """Every frame the ring holds (at most :data:`BATCH`); :data:`TIMER_DUE` alone when
        it holds none (``select`` woke up for the core's timer)."""
        frames = self.ring.read(BATCH)
        if frames:
            return frames
        # The socket was readable with nothing in the ring: an error (ENETDOWN when the
        # interface goes down or away) or a timer. Reading the error clears it.
        error = self.ins.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.error = OSError(error, os.strerror(error))
            raise self.error
        return _TIMER_BATCH

    def recv(self, x: int = 0, **kwargs: Any) -> CapturedFrame | TimerDue:  # type: ignore[override,unused-ignore]
        """One frame (the sniff loop of a plain ``sniff(opened_socket=...)``; ``respond``
        reads through :class:`FrameBatches`)."""
        frames = self.ring.read(1)
        return frames[0] if frames else TIMER_DUE

    def recv_raw(self, x: int = 0) -> tuple[None, None, None]:  # pragma: no cover - unused by sniff
        return None, None, None

    def send(self, x: Any) -> int:  # pragma: no cover - receive only
        raise ConfigError("the sniffer socket does not send; use the L2 sender")

    def fileno(self) -> int:
        return int(self.ins.fileno())

    def close(self) -> None:
        if not self.closed:
            self.read_kernel_statistics()
            self.closed = True
            self.ring.close()
            self.ins.close()

    def drain(self) -> int:
        """Discard what is still in the ring (at exit); returns how many frames. Nothing
        once closed (the sniff loop closes a socket whose read failed)."""
        return 0 if self.closed else self.ring.discard()

    # --- statistics ---------------------------------------------------------------

    def read_kernel_statistics(self) -> tuple[int, int]:
        """Add ``PACKET_STATISTICS`` (packets seen by the filter's accept, drops for a
        full ring) to the totals; the kernel resets them on every read."""
        try:
            raw = self.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return self.kernel_packets, self.kernel_drops
        packets, drops = struct.unpack("=II", raw)
        self.kernel_packets += packets
        self.kernel_drops += drops
        return self.kernel_packets, self.kernel_drops


_TIMER_BATCH: Final[Sequence[TimerDue]] = (TIMER_DUE,)


class FrameBatches(DefaultSession):  # type: ignore[misc,unused-ignore]  # as InboundTcpSocket
    """The sniff loop's session for :class:`InboundTcpSocket`: Scapy asks its session for
    what a ready socket holds and calls ``prn`` with each object it returns; this one
    returns every frame in the ring at once."""

    def recv(self, sock: Any) -> Sequence[CapturedFrame | TimerDue]:  # type: ignore[override,unused-ignore]
        return sock.recv_batch()  # type: ignore[no-any-return]


def _size_receive_buffer(sock: socket.socket, wanted: int) -> int:
    """SO_RCVBUFFORCE (CAP_NET_ADMIN) ignores ``net.core.rmem_max``; SO_RCVBUF is
    capped by it. Returns what the kernel granted (it doubles the request for
    bookkeeping, socket(7))."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

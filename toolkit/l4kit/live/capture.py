"""Receiving: a packet socket with a BPF filter, read by Scapy's ``AsyncSniffer``.

Design (issue 5, "AsyncSniffer + BPF"): the responder runs a Scapy
``AsyncSniffer`` with ``opened_socket=`` an :class:`InboundTcpSocket`, a Scapy
``SuperSocket`` of our own around an ``AF_PACKET`` socket (packet(7)). Scapy's
sniffer thread then does what it always does (select, recv, ``prn`` callback,
``started_callback``, ``stop()``), but the hot path stays lean:

- ``recv()`` returns a :class:`CapturedFrame` (the raw bytes, a timestamp and the
  kernel's checksum status), not a dissected Scapy packet: dissecting costs more
  than the whole TCP state machine, and the wire layer decodes what the core needs.
- The filter runs in the kernel: ``inbound and tcp and dst host A and dst port P``,
  compiled by libpcap (through Scapy's ``compile_filter``, or ``tcpdump -ddd`` when
  Scapy cannot load libpcap). ``inbound`` loads the frame's packet type (the BPF
  ancillary field ``SKF_AD_PKTTYPE``) and rejects ``PACKET_OUTGOING``: on ``lo``
  every frame passes the tap twice, once leaving and once arriving, and answering
  both copies sends two SYN-ACKs with different ISNs (DESIGN.md, trap 2). The
  packet type in the address of each frame is checked again, in case a filter-less
  fallback is ever used.
- The filter is attached before the socket is bound to the interface, so no
  unfiltered frame is ever queued.
- ``PACKET_AUXDATA`` carries ``tp_status``: ``TP_STATUS_CSUMNOTREADY`` marks a frame
  whose checksum the kernel left partial (``CHECKSUM_PARTIAL``: a locally generated
  segment on ``lo``, trap 5), ``TP_STATUS_CSUM_VALID`` one the kernel already
  verified. The responder classifies the checksum from these before looking at the
  bytes.
- The receive buffer is sized for bursts (``SO_RCVBUFFORCE`` as root), and the
  kernel's drop counter (``PACKET_STATISTICS``) is read so that a flood that
  overruns the sniffer shows up in the exit summary instead of vanishing.
- Timers: the sniffer blocks in ``select`` on this socket. Its ``select`` method
  (Scapy calls the first socket's) wakes up at the core's next timer
  (``wakeup_at``), and ``recv`` then returns :data:`TIMER_DUE`, so the one thread
  that owns the core also serves its timers while no frame arrives.
"""

from __future__ import annotations

import ctypes
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any, Final

from scapy.supersocket import SuperSocket

from l4kit.errors import ConfigError

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_CSUM_VALID = 1 << 7
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHERNET_HEADER_LEN = 14

# struct tpacket_auxdata (linux/if_packet.h): tp_status, tp_len, tp_snaplen,
# tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid.
_AUXDATA = struct.Struct("=IIIHHHH")
_AUXDATA_SPACE = socket.CMSG_SPACE(_AUXDATA.size)
# lo's MTU is 64 KiB and GSO can hand a packet socket a frame of up to 64 KiB of
# payload plus headers; anything longer arrives truncated (MSG_TRUNC) and is counted.
RECEIVE_BUFFER = 65536 + 1024
# socket's MSG_* constants are an IntFlag: ``flags & socket.MSG_TRUNC`` costs about 2 us a
# frame, the same test on ints about 30 ns.
_MSG_DONTWAIT: Final = int(socket.MSG_DONTWAIT)
_MSG_TRUNC: Final = int(socket.MSG_TRUNC)

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


class CapturedFrame:
    """One inbound frame as the sniffer hands it to the responder.

    ``sniffed_on`` is set by Scapy's sniff loop (it labels every object it reads).
    """

    __slots__ = ("checksum_partial", "checksum_valid", "data", "sniffed_on", "wall_time")

    def __init__(self, data: bytes, wall_time: float, checksum_partial: bool, checksum_valid: bool) -> None:
        self.data = data
        self.wall_time = wall_time
        self.checksum_partial = checksum_partial
        self.checksum_valid = checksum_valid
        self.sniffed_on: Any = None


class TimerDue:
    """Returned by ``recv`` when ``select`` woke up for the core's next timer."""

    __slots__ = ("sniffed_on",)

    def __init__(self) -> None:
        self.sniffed_on: Any = None

    def __repr__(self) -> str:
        return "TIMER_DUE"


TIMER_DUE = TimerDue()


class InboundTcpSocket(SuperSocket):
    """The sniffer's socket: filtered in the kernel, no dissection, timer wake-ups."""

    desc = "inbound TCP frames for l4kit respond (AF_PACKET, BPF, PACKET_AUXDATA)"
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
        self.truncated = 0
        self.buffer_bytes = 0
        self.error: OSError | None = None  # why recv failed (Scapy only logs it, then drops the socket)
        protocol = ETH_P_IPV6 if ipv6 else ETH_P_IP
        # Protocol 0: the socket receives nothing until bind() names one, by which
        # time the filter is in place.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            attach_bpf(sock, program)
            self.buffer_bytes = _size_receive_buffer(sock, buffer_bytes)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.bind((iface, protocol))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot open a packet socket on {iface}: {exc.strerror or exc}") from None
        name = sock.getsockname()
        self.hatype = int(name[3])
        self.mac = bytes(name[4]).ljust(6, b"\x00")[:6]
        if self.hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
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

    # --- Scapy SuperSocket interface -------------------------------------------------

    def select(self, sockets: list[Any], remain: float | None = None) -> list[Any]:  # type: ignore[override]
        """Scapy's sniff loop calls the first socket's ``select``: wait for a frame,
        a stop request (Scapy's control pipe is in ``sockets``) or the core's next timer."""
        deadline = self.wakeup_at()
        timeout = remain
        if deadline is not None:
            until_timer = max(0.0, deadline - time.monotonic())
            timeout = until_timer if timeout is None else min(timeout, until_timer)
        ready = select.select(sockets, [], [], timeout)[0]
        if not ready and deadline is not None and time.monotonic() >= deadline:
            return [self]
        return ready

    def recv(self, x: int = RECEIVE_BUFFER, **kwargs: Any) -> CapturedFrame | TimerDue | None:  # type: ignore[override]
        try:
            data, ancillary, flags, address = self.ins.recvmsg(RECEIVE_BUFFER, _AUXDATA_SPACE, _MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return TIMER_DUE
        except OSError as exc:  # ENETDOWN: the interface went down or was deleted
            self.error = exc
            raise
        if address[2] == socket.PACKET_OUTGOING:
            return None
        if flags & _MSG_TRUNC:
            self.truncated += 1
            return None
        status = 0
        for level, kind, payload in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= _AUXDATA.size:
                status = _AUXDATA.unpack_from(payload)[0]
        return CapturedFrame(
            data, time.time(), bool(status & TP_STATUS_CSUMNOTREADY), bool(status & TP_STATUS_CSUM_VALID)
        )

    def recv_raw(
        self, x: int = RECEIVE_BUFFER
    ) -> tuple[None, None, None]:  # pragma: no cover - unused by sniff
        return None, None, None

    def send(self, x: Any) -> int:  # pragma: no cover - receive only
        raise ConfigError("the sniffer socket does not send; use the L2 sender")

    def fileno(self) -> int:
        return int(self.ins.fileno())

    def close(self) -> None:
        if not self.closed:
            self.read_kernel_statistics()
            self.closed = True
            self.ins.close()

    def drain(self) -> int:
        """Read and discard what is still queued (at exit); returns how many frames."""
        count = 0
        while True:
            try:
                self.ins.recv(RECEIVE_BUFFER, _MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return count
            except OSError:
                return count
            count += 1

    # --- statistics ---------------------------------------------------------------

    def read_kernel_statistics(self) -> tuple[int, int]:
        """Add ``PACKET_STATISTICS`` (packets seen by the filter's accept, drops for a
        full buffer) to the totals; the kernel resets them on every read."""
        try:
            raw = self.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return self.kernel_packets, self.kernel_drops
        packets, drops = struct.unpack("=II", raw)
        self.kernel_packets += packets
        self.kernel_drops += drops
        return self.kernel_packets, self.kernel_drops


def _size_receive_buffer(sock: socket.socket, wanted: int) -> int:
    """SO_RCVBUFFORCE (CAP_NET_ADMIN) ignores ``net.core.rmem_max``; SO_RCVBUF is
    capped by it. Returns what the kernel granted (it doubles the request for
    bookkeeping, socket(7))."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

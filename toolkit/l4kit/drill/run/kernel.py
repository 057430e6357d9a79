"""The kernel target: the Linux stack, driven as packetdrill's local mode drives it.

Each script runs in a child process in a network namespace of its own (and a
mount namespace, so ``/sys`` shows that network namespace): the host's
interfaces, routes, firewall and sysctls are never touched, and everything the
script set up disappears with the child. Inside, a TUN device ``tun0`` carries
the test's traffic, with packetdrill's addresses (the stack is 192.168.0.1/16,
the peer 192.0.2.1, reached through tun0), so scripts run unchanged:

- packets the script sends (``<``) are written to the TUN device, as if they
  arrived from the peer;
- packets the stack sends are read from a packet socket on tun0, with the
  kernel's timestamp of when they left (TSO is on, as on a real NIC, so a burst
  may leave as one large segment);
- system calls are made on real sockets (:mod:`l4kit.drill.run.syscalls`); a
  blocking one in its own thread, which the run lets block before going on;
- shell commands run with ``/bin/sh -c`` in the namespace, from the script's
  directory, with ``PACKETDRILL_PID`` set as packetdrill sets it.

Like packetdrill, the child asks for the lowest real-time priority (SCHED_RR),
so that timing stays within the tolerance on a busy machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from l4kit.drill.run import libc
from l4kit.drill.run.loop import (
    CallOutcome,
    Failure,
    Frame,
    RunConfig,
    Runner,
    ScriptResult,
)
from l4kit.drill.run.syscalls import FdTable, KernelCalls
from l4kit.drill.run.tcpinfo import decode_cc_info, decode_meminfo, decode_tcp_info
from l4kit.drill.script.model import Script, Syscall, TcpPacket
from l4kit.drill.script.session import Mismatch, ScriptSocket, Sockets
from l4kit.drill.script.wirepacket import WirePacket, decode_wire

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2
PR_SET_TIMERSLACK = 29
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
VNET_HEADER = bytes(10)  # struct virtio_net_hdr, all zero: no GSO, checksum already complete
TUN_NAME = "tun0"
CALL_LIMIT_S = 30.0  # how long a call written as non-blocking may block in the kernel
JIFFY_STEPS = 2
JIFFY_OFFSET_US = 250
SPIN_US = 200  # sleep until this close to an event's time, then spin (packetdrill spins the last 20 us)


class KernelTarget:
    """The kernel of the current network namespace, seen through tun0."""

    name = "kernel"
    runs_commands = True

    def __init__(self, config: RunConfig, directory: Path) -> None:
        self.config = config
        self.addresses = config.addresses
        self.directory = directory
        self._worker = threading.local()
        self.calls = KernelCalls(config, self._entering_kernel)
        self._frames: list[Frame] = []
        self._held_ports: list[socket.socket] = []
        self._spare_port: int | None = None
        self.tun_fd = -1
        self.sniffer: socket.socket | None = None

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        self._alarmed = False
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.siginterrupt(signal.SIGALRM, True)  # the blocked call returns EINTR
        self.tun_fd = os.open("/dev/net/tun", os.O_RDWR)
        ifr = struct.pack("16sH", TUN_NAME.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(self.tun_fd, TUNSETIFF, ifr)
        fcntl.ioctl(self.tun_fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        os.set_blocking(self.tun_fd, False)
        config = self.config
        six = ":" in config.addresses.local_ip
        commands = [
            "link set lo up",
            f"link set {TUN_NAME} up" + (f" mtu {config.mtu}" if config.mtu else ""),
            f"addr add {config.addresses.local_ip}/{config.prefix_len} dev {TUN_NAME}"
            + (" nodad" if six else ""),
            f"route add {config.remote_prefix} via {config.gateway_ip} dev {TUN_NAME}",
        ]
        done = subprocess.run(
            ["ip", "-batch", "-"],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not set up {TUN_NAME}: {done.stderr.strip()}")
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        sniffer.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with contextlib.suppress(OSError):
            sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sniffer.bind((TUN_NAME, ETH_P_ALL))
        sniffer.setblocking(False)
        self.sniffer = sniffer
        self._spare_port = self._hold_port()

    def close(self) -> None:
        for live in set(self.calls.fds.live.values()):
            with contextlib.suppress(OSError):
                os.close(live)
        self.calls.fds = FdTable()
        if self.sniffer is not None:
            self.sniffer.close()
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
        for held in self._held_ports:
            held.close()

    # ------------------------------------------------------------ clock

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def start_time(self) -> int:
        """A start just after a tick of the kernel's clock, as packetdrill starts: the
        kernel's timers (delayed ACKs, retransmissions) run on those ticks, so a timer
        armed at a given script time then fires at the same script time in every run.
        ``times()`` moves on a tick (in steps of 10 ms); the second step it is seen to
        take is the one waited for, and the script starts 250 us after it."""
        last = os.times().elapsed
        steps = 0
        while steps < JIFFY_STEPS:
            now = os.times().elapsed
            if now != last:
                steps += 1
                last = now
        return self.now_us() + JIFFY_OFFSET_US

    def begin(self, start_us: int) -> None:
        self.calls.live_start_us = start_us

    def sleep_until(self, when_us: int) -> None:
        while True:
            remaining = when_us - self.now_us()
            if remaining <= 0:
                return
            if remaining > SPIN_US:
                time.sleep((remaining - SPIN_US) / 1e6)

    # ------------------------------------------------------------ packets

    def inject(self, data: bytes) -> None:
        os.write(self.tun_fd, VNET_HEADER + data)

    def _drain_tun(self) -> None:
        while True:
            try:
                os.read(self.tun_fd, 65600)
            except BlockingIOError:
                return
            except OSError:
                return

    def _receive(self, timeout_s: float | None) -> tuple[bytes, int, bool] | None:
        sniffer = self.sniffer
        assert sniffer is not None
        if timeout_s is not None and timeout_s <= 0:
            timeout_s = 0
        ready, _, _ = select.select([sniffer], [], [], timeout_s)
        if not ready:
            return None
        try:
            data, ancillary, _flags, address = sniffer.recvmsg(65600, 64)
        except BlockingIOError:
            return self._receive(0) if timeout_s == 0 else None
        stamp = self.now_us()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = struct.unpack_from("=qq", payload)
                stamp = seconds * 1_000_000 + nanoseconds // 1000
        outbound = address[2] == PACKET_OUTGOING
        if self.config.capture:
            self._frames.append(Frame(stamp, data, outbound))
        return data, stamp, outbound

    def sniff(self, deadline_us: int | None) -> WirePacket | None:
        while True:
            timeout = None if deadline_us is None else (deadline_us - self.now_us()) / 1e6
            received = self._receive(timeout)
            if received is None:
                if timeout is not None and timeout <= 0:
                    return None
                if deadline_us is not None and self.now_us() >= deadline_us:
                    return None
                continue
            data, stamp, outbound = received
            if not outbound:
                continue
            self._drain_tun()
            packet = decode_wire(data, stamp)
            if packet is not None:
                return packet

    def frames(self) -> list[Frame]:
        while self._receive(0) is not None:
            pass
        return sorted(self._frames, key=lambda frame: frame.time_us)

    def ephemeral_port(self) -> int:
        """A port for the peer's side of a connection the script opens from the
        outside: one the kernel hands out, held so that it is not handed out again.
        The first is taken at setup, so that the script's first SYN does not pay for
        the three system calls while its clock runs."""
        if self._spare_port is not None:
            port, self._spare_port = self._spare_port, None
            return port
        return self._hold_port()

    def _hold_port(self) -> int:
        family = socket.AF_INET6 if ":" in self.addresses.local_ip else socket.AF_INET
        holder = socket.socket(family, socket.SOCK_STREAM)
        holder.bind(("", 0))
        holder.listen(1)
        self._held_ports.append(holder)
        return int(holder.getsockname()[1])

    # ------------------------------------------------------------ calls

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        if threading.current_thread() is not threading.main_thread():  # a blocking call's own thread
            return self.calls.execute(call, sockets)
        # A call written without its return time runs in the run's own thread: if the
        # kernel blocks it, nothing the script would send next can reach the stack, so
        # packetdrill would wait for ever. An alarm interrupts it (EINTR) after a while.
        self._alarmed = False
        signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
        try:
            outcome = self.calls.execute(call, sockets)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if self._alarmed:
            return CallOutcome(
                outcome.shown,
                Mismatch(
                    "blocking",
                    "a call that returns",
                    f"blocked for {CALL_LIMIT_S:.0f} s",
                    f"the call blocked for {CALL_LIMIT_S:.0f} s, and nothing the script sends next can "
                    f"arrive while it waits: write it as a blocking call (+0...1 {call.name}(...)) or make "
                    "the socket non-blocking",
                ),
            )
        return outcome

    def _on_alarm(self, signum: int, frame: object) -> None:
        self._alarmed = True

    def _entering_kernel(self) -> None:
        entered = getattr(self._worker, "entered", None)
        if entered is not None:
            entered.set()

    def start_blocking(self, work: Callable[[], None]) -> object:
        entered = threading.Event()
        native: list[int] = []

        def body() -> None:
            native.append(threading.get_native_id())
            self._worker.entered = entered
            try:
                work()
            finally:
                entered.set()

        thread = threading.Thread(target=body, name="drill-blocking-call", daemon=True)
        thread.start()
        # The run goes on once the call's bookkeeping is done and it sleeps in the kernel
        # (or has returned), as packetdrill's does: not while it waits for its start time.
        entered.wait()
        stat = f"/proc/self/task/{native[0]}/stat"
        while thread.is_alive():
            try:
                with open(stat) as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state == "S":
                break
            time.sleep(0)
        return thread

    def is_done(self, handle: object) -> bool:
        assert isinstance(handle, threading.Thread)
        return not handle.is_alive()

    def wait_done(self, handle: object, timeout_us: int) -> bool:
        assert isinstance(handle, threading.Thread)
        handle.join(timeout_us / 1e6)
        return not handle.is_alive()

    def run_command(self, text: str) -> tuple[int, str]:
        env = {**os.environ, "PACKETDRILL_PID": str(os.getpid())}
        done = subprocess.run(
            ["/bin/sh", "-c", text],
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def tcp_info(self, sock: ScriptSocket) -> dict[str, int] | None:
        fd = sock.live_fd
        if not isinstance(fd, int):
            return None
        result, _err, data, _length = libc.getsockopt(fd, 6, 11, 512)  # IPPROTO_TCP, TCP_INFO
        if result < 0:
            return None
        values = decode_tcp_info(data)
        result, _err, data, _length = libc.getsockopt(fd, 6, 26, 64)  # TCP_CC_INFO
        if result == 0:
            values.update(decode_cc_info(data))
        result, _err, data, _length = libc.getsockopt(fd, 1, 55, 64)  # SO_MEMINFO
        if result == 0:
            values.update(decode_meminfo(data))
        return values


# ---------------------------------------------------------------- one script, isolated


def _enter_namespace() -> None:
    """A fresh network namespace (and mount namespace, with its own /sys) for this process."""
    result, err = libc.unshare(CLONE_NEWNET | CLONE_NEWNS)
    if result < 0:
        raise PermissionError(err, f"unshare: {os.strerror(err)}")
    # Mounts made here stay here; /sys remounted shows this namespace's devices, as `ip netns exec` does.
    libc.mount("none", "/", None, MS_REC | MS_SLAVE)
    if libc.umount2("/sys", MNT_DETACH)[0] == 0:
        libc.mount("sysfs", "/sys", "sysfs", 0)


def _realtime() -> None:
    libc.prctl(PR_SET_TIMERSLACK, 1)
    if (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(os.sched_get_priority_min(os.SCHED_RR)))


def _child_run(script: Script, config: RunConfig, directory: Path) -> ScriptResult:
    start = time.monotonic()
    # No collection pauses while the script's clock runs: the child is short-lived, and
    # a collection would also touch (and so copy) every page it shares with its parent.
    gc.disable()
    os.chdir(directory)
    _enter_namespace()
    rehearse(config, directory)
    _enter_namespace()  # a fresh one again: nothing of the rehearsal is left for the script
    _realtime()
    target = KernelTarget(config, directory)
    try:
        target.setup()
        runner = Runner(script, target, config)
        passed, failure = runner.run()
        frames = target.frames() if config.capture else []
        return runner.result("kernel", passed, failure, time.monotonic() - start, frames)
    finally:
        target.close()


REHEARSAL = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 1 <...>
+0 < P. 1:11(10) ack 11 win 257
+0 read(4, ..., 100) = 10
+0 getsockopt(4, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0 close(4) = 0
+0 close(3) = 0
"""


def rehearse(config: RunConfig, directory: Path) -> None:
    """Play a short passive open, with data both ways, against the kernel of the
    current (throwaway) namespace, its verdict ignored. A forked child pays for
    every page of its parent's code and data it first touches (copy on write) and
    starts with cold caches: about 0.1-0.5 ms an event, which early in a script adds
    up to enough to move a timer-driven packet past the next tick of the kernel's
    clock. The rehearsal pays that before the script's clock starts."""
    from l4kit.drill.script.parser import parse

    script = parse(REHEARSAL, "<rehearsal>")
    relaxed = replace(config, tolerance_usecs=10_000_000, capture=False)
    target = KernelTarget(relaxed, directory)
    target.start_time = target.now_us  # type: ignore[method-assign]  # no wait for a tick
    try:
        target.setup()
        Runner(script, target, relaxed).run()
    except Exception:  # a rehearsal that fails has still warmed what it ran
        pass
    finally:
        target.close()


def warm_up() -> None:
    """In the parent, before the children are forked: load and run the per-packet
    code paths a few times, so that no child imports a module or fills a cache
    of its own (each child then rehearses, see :func:`rehearse`)."""
    from l4kit.drill.script.parser import parse
    from l4kit.drill.script.printer import format_action
    from l4kit.drill.script.session import (
        Addresses,
        Sockets,
        format_wire,
        inbound_packet,
        map_timestamps,
        to_script_space,
        verify_outbound,
    )
    from l4kit.drill.script.wirepacket import encode_wire, scapy_flags

    script = parse(
        "0 < S 0:0(0) win 100 <mss 1000,sackOK,TS val 1 ecr 0,nop,wscale 7>\n"
        "+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 1 ecr 1,nop,wscale 8>\n",
        "<warm-up>",
    )
    inbound, outbound = script.events[0].action, script.events[1].action
    assert isinstance(inbound, TcpPacket) and isinstance(outbound, TcpPacket)
    for _ in range(50):
        sockets = Sockets()
        sock = sockets.for_script_packet(inbound, Addresses(), 40000)
        data = encode_wire(inbound_packet(sock, inbound))
        live = decode_wire(data, 0)
        assert live is not None
        converted = map_timestamps(sock, outbound, to_script_space(sock, live))
        verify_outbound(outbound, converted, sock)
        format_wire(converted)
        scapy_flags(converted.flags)
        format_action(outbound)


def run_script(script: Script, config: RunConfig) -> ScriptResult:
    """Run ``script`` against the kernel, in a child process in its own namespaces."""
    directory = Path(os.path.dirname(os.path.abspath(script.path)))
    start = time.monotonic()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 0
        try:
            os.close(read_end)
            try:
                result = _child_run(script, config, directory)
            except BaseException as exc:
                result = ScriptResult(
                    path=script.path,
                    target="kernel",
                    passed=False,
                    failure=Failure(0, f"internal error: {exc!r}", actual=traceback.format_exc()),
                    lines=[],
                    duration_s=time.monotonic() - start,
                )
            data = pickle.dumps(result)
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        data = incoming.read()
    os.waitpid(pid, 0)
    if not data:
        return ScriptResult(
            path=script.path,
            target="kernel",
            passed=False,
            failure=Failure(0, "internal error: the run's process ended without a result"),
            lines=[],
            duration_s=time.monotonic() - start,
        )
    result = pickle.loads(data)
    assert isinstance(result, ScriptResult)
    return result

"""The live driver: frames from the sniffer into the core, the core's segments onto the wire.

Threads (the core is not thread-safe, so exactly one thread touches it):

- Scapy's ``AsyncSniffer`` thread owns the :class:`~l4kit.core.listener.Listener`.
  Its ``prn`` callback (:meth:`~l4kit.live.packet_thread.Responder.on_sniffed`)
  decodes each frame, feeds the core, sends the replies and serves the core's timers
  (the sniffer socket wakes it at ``poll_at()``, see :mod:`l4kit.live.capture`).
- The main thread prepares the host, starts the sniffer, waits for a stop
  (SIGINT, SIGTERM, SIGHUP, ``--duration``, an error), then stops the sniffer and,
  with the sniffer thread gone, aborts what is still open (``Listener.shutdown``).
- Off the packet path: the pcap writer thread, and whatever consumes the event
  batches handed to ``on_events`` (the CLI's renderer thread). The packet thread only
  appends to queues there; rendering never slows the responder.

Signal handlers only set a flag: no exception is ever raised in the middle of
host preparation or restoration, so the ``with HostPreparation`` block always
runs to its end and restores the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from l4kit.core.listener import Listener, ListenerConfig
from l4kit.errors import ConfigError, L4kitError
from l4kit.live import preflight
from l4kit.live.apps import load_app_factory
from l4kit.live.capture import FrameBatches, InboundTcpSocket, bpf_filter_text, compile_bpf
from l4kit.live.firewall import NftFirewall
from l4kit.live.host import HostPlan, HostPreparation, loopback_sysctls, plan_host
from l4kit.live.options import RespondOptions
from l4kit.live.packet_thread import EventSink, Responder
from l4kit.live.pcap import PcapWriterThread
from l4kit.live.privileges import require_live_privileges
from l4kit.live.report import ReadyInfo, ResponderSummary
from l4kit.live.sender import L2Sender, frame_encoders
from l4kit.safefile import check_new_file
from l4kit.wire.segment import Endpoint

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_TIMEOUT = 10.0
# The packet thread shares the GIL with the renderer thread (a flag-transition table is
# about 0.25 ms of Python, printed in groups: l4kit.views.live) and the pcap writer. When
# a frame arrives while another thread holds the GIL, the packet thread waits until that
# thread is asked to let go: Python's switch interval, 5 ms by default. 0.5 ms keeps
# replies from queueing behind a table (measured with Rich's own tables: 1.5x the
# connections per second, lower p99; with today's cheaper tables 0.05-0.5 ms measure
# the same).
GIL_SWITCH_INTERVAL = 0.0005
Notice = Callable[[str], None]


# ---------------------------------------------------------------- signals


class StopFlag:
    """Set by a signal handler, by ``--duration`` or by a failure; polled by the
    main thread (a handler must not take locks, so no threading.Event here)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def __bool__(self) -> bool:
        return self.reason is not None


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Any:
    """Turn SIGINT/SIGTERM/SIGHUP into ``flag`` for the duration of the block
    (only possible from the main thread; elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        flag.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def gil_switch_interval(seconds: float) -> Any:
    """``sys.setswitchinterval`` for the duration of the block, then the previous value."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# ---------------------------------------------------------------- the whole run


@dataclass(slots=True)
class Preparation:
    """The checks' results, before anything on the host is changed."""

    options: RespondOptions
    plan: HostPlan | None
    bpf: str
    program: list[tuple[int, int, int, int]]
    warnings: list[str]


def prepare(options: RespondOptions) -> Preparation:
    """Every check that can fail without side effects, in the order a user
    would fix them: privileges, interface, address, the ``--pcap`` path, BPF
    compiler, firewall tool."""
    require_live_privileges(firewall=not options.no_firewall)
    preflight.require_interface(options.iface)
    link = preflight.link_info(options.iface)
    if not link.up:
        raise ConfigError(f"interface {options.iface} is down", hint=f"ip link set {options.iface} up")
    preflight.require_address_on_interface(options.address, options.iface, loopback=link.loopback)
    warnings = []
    warning = preflight.kernel_listener_warning(options.address, options.port)
    if warning:
        warnings.append(warning)
    if options.pcap is not None:
        check_new_file(options.pcap, overwrite=options.force, option="--pcap")
    bpf = bpf_filter_text(options.address, options.port)
    program = compile_bpf(bpf, options.iface)
    if options.no_firewall:
        plan = None
    else:
        plan = plan_host(options.iface, options.address, options.port, firewall=options.firewall)
    return Preparation(options, plan, bpf, program, warnings)


def no_firewall_commands(options: RespondOptions) -> list[str]:
    """What ``--no-firewall`` tells the user to run themselves (nft's commands
    when this host has neither tool: installing nftables is the advice)."""
    try:
        plan = plan_host(options.iface, options.address, options.port, probe=False)
    except ConfigError:
        sysctls = loopback_sysctls(options.iface, options.address)
        plan = HostPlan(
            options.iface, options.address, options.port, NftFirewall(options.address, options.port), sysctls
        )
    return plan.commands()


def run_responder(
    options: RespondOptions,
    *,
    on_events: EventSink | None = None,
    on_ready: Callable[[ReadyInfo], None] | None = None,
    notice: Notice | None = None,
    stop: StopFlag | None = None,
) -> ResponderSummary:
    """Run until stopped; return the exit summary. The host is restored on
    every way out of this function (including exceptions)."""
    say: Notice = notice or (lambda _text: None)
    flag = stop or StopFlag()
    prep = prepare(options)
    for warning in prep.warnings:
        say(f"warning: {warning}")
    app_factory = load_app_factory(options.routes, options.keep_open)
    listener = Listener(
        ListenerConfig(
            local=Endpoint(options.address, options.port),
            max_connections=options.max_conns,
            max_half_open=min(options.max_half_open, options.max_conns),
            secret=os.urandom(32),
            syn_ack_retries=options.synack_retries,
            max_retransmissions=options.retries,
            idle_timeout=options.idle_timeout or None,
            window_scale=not options.no_wscale,
            timestamps=not options.no_timestamps,
            sack=not options.no_sack,
        ),
        app_factory,
    )
    encode, encode_stateless = frame_encoders(options.codec)
    started_at = time.monotonic()
    with stop_on_signals(flag), contextlib.ExitStack() as stack:
        stack.enter_context(gil_switch_interval(GIL_SWITCH_INTERVAL))
        capture = InboundTcpSocket(
            options.iface,
            prep.program,
            ipv6=":" in options.address,
            buffer_bytes=options.rcvbuf,
            wakeup_at=listener.poll_at,
        )
        stack.callback(capture.close)
        sender = L2Sender(options.iface)
        stack.callback(sender.close)
        pcap = None
        if options.pcap is not None:
            pcap = PcapWriterThread(options.pcap, overwrite=options.force)
            stack.callback(pcap.close)
        host = None
        if prep.plan is not None:
            host = stack.enter_context(HostPreparation(prep.plan, notice=say))
        else:
            say(
                "--no-firewall: nothing on this host was changed. Unless these are in place, the kernel "
                "answers clients with RST or drops the replies:\n  "
                + "\n  ".join(no_firewall_commands(options))
            )
        responder = Responder(
            listener,
            mac=capture.mac,
            encode=encode,
            encode_stateless=encode_stateless,
            sender=sender,
            pcap=pcap,
            on_events=on_events,
        )
        summary = _sniff_until_stopped(
            options, prep=prep, capture=capture, responder=responder, flag=flag, on_ready=on_ready
        )
        summary.duration = time.monotonic() - started_at
        if host is not None:
            host.restore()
            summary.kernel_rsts_suppressed = host.kernel_rsts_dropped
    if responder.failure is not None:
        raise responder.failure
    return summary


def _sniff_until_stopped(
    options: RespondOptions,
    *,
    prep: Preparation,
    capture: InboundTcpSocket,
    responder: Responder,
    flag: StopFlag,
    on_ready: Callable[[ReadyInfo], None] | None,
) -> ResponderSummary:
    from scapy.sendrecv import AsyncSniffer

    started = threading.Event()
    sniffer = AsyncSniffer(
        opened_socket=capture,
        session=FrameBatches,
        prn=responder.on_sniffed,
        store=False,
        started_callback=started.set,
    )
    sniffer.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not started.wait(0.05):
            if sniffer.exception is not None or time.monotonic() > deadline or flag:
                break
        if not started.is_set():
            if flag:
                return responder.summary
            raise L4kitError(f"the sniffer did not start: {sniffer.exception or 'timed out'}")
        if on_ready is not None:
            on_ready(
                ReadyInfo(
                    iface=options.iface,
                    address=options.address,
                    port=options.port,
                    mac=capture.mac.hex(":"),
                    bpf=prep.bpf,
                    firewall=prep.plan.firewall.describe() if prep.plan and prep.plan.firewall else "none",
                    socket_buffer=capture.buffer_bytes,
                )
            )
        end = None if options.duration is None else time.monotonic() + options.duration
        while not flag:
            if responder.failed.is_set():
                flag.set("failure")
            elif sniffer.thread is not None and not sniffer.thread.is_alive():
                flag.set("sniffer stopped")
                if responder.failure is None:
                    failed, iface = capture.error, options.iface
                    if failed is None:
                        why = f"the sniffer stopped: {sniffer.exception or 'socket closed'}"
                    else:
                        why = f"the sniffer stopped: receiving on {iface} failed: {failed.strerror or failed}"
                    hint = None if failed is None else f"is {iface} still up? ip link show {iface}"
                    responder.failure = L4kitError(why, hint=hint)
            elif end is not None and time.monotonic() >= end:
                flag.set("duration")
            else:
                time.sleep(0.05)
    finally:
        if sniffer.running:
            sniffer.stop(join=True)
        elif sniffer.thread is not None:
            sniffer.thread.join(timeout=5)
    if responder.failure is None:
        responder.shutdown()
    summary = responder.summary
    unread = capture.drain()
    if unread:
        summary.drops["unprocessed-at-exit"] += unread
    capture.read_kernel_statistics()
    summary.frames_matched = capture.kernel_packets
    if capture.kernel_drops:
        summary.drops["kernel-buffer-full"] += capture.kernel_drops
    if capture.truncated:
        summary.drops["truncated"] += capture.truncated
    return responder.finish_summary()

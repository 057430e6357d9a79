"""The event loop of a run, the same for every target.

A :class:`Runner` plays a parsed script against a :class:`Target` (the Linux
kernel, or l4kit's core on a virtual clock) with packetdrill's timing rules:

- a relative time (``+0.1``) counts from when the previous event actually
  happened (its packet written or sniffed, its call returned: the run's checking
  after that does not count), except between two inbound packets, whose script
  times chain so that a burst keeps its spacing;
- the runner sleeps until an event's time, then checks it was not late; a packet
  the stack sends is sniffed at once and its own timestamp checked, so early
  packets are caught too;
- the tolerance is ``--tolerance_usecs`` (4 ms), or 12.5 % of the time since the
  previous event when that is larger;
- a blocking call (``+0...0.1 read(...)``) runs in its own thread; the run goes on
  once the call is blocked, and the call must return at its end time.

The first line that does not match ends the run with a :class:`Failure` naming
the line, the field, what was expected and what happened. Every line run is kept
as a :class:`LineRecord` for the report.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from l4kit.drill.script.model import (
    Code,
    Command,
    Event,
    IcmpPacket,
    Script,
    Syscall,
    TcpPacket,
    TimeKind,
    Unsupported,
)
from l4kit.drill.script.printer import format_action, format_seconds
from l4kit.drill.script.session import (
    Addresses,
    Mismatch,
    ScriptSocket,
    SessionError,
    Sockets,
    aggregate,
    check_fragment,
    expect_outbound,
    format_wire,
    inbound_icmp,
    inbound_packet,
    learn_outbound,
    map_timestamps,
    to_script_space,
    verify_outbound,
    verify_time,
)
from l4kit.drill.script.wirepacket import WirePacket, encode_wire, scapy_flags

DEFAULT_TOLERANCE_USECS = 4000
DEFAULT_TOLERANCE_PERCENT = 12.5
SNIFF_SLACK_SECS = 2  # how long past its time a packet is waited for before the run fails
IDLE_WAIT_US = 1_000_000  # how long a call waits for a blocking call before it to return


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What a run needs beyond the script: addresses, timing rules, definitions."""

    addresses: Addresses = field(default_factory=Addresses)
    ip_version: str = "ipv4"
    tolerance_usecs: int = DEFAULT_TOLERANCE_USECS
    tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT
    tcp_ts_tick_usecs: int = 0
    tcp_ts_ecr_scaled: bool = False
    strict_segments: bool = False
    gateway_ip: str = "192.168.0.1"
    prefix_len: int = 16
    remote_prefix: str = "192.0.2.0/24"
    mtu: int | None = None
    verbose: bool = False
    capture: bool = False

    @property
    def socket_family(self) -> int:
        """The socket() domain for ``...``: AF_INET, or AF_INET6 for IPv6 and IPv4-mapped IPv6."""
        return 2 if self.ip_version == "ipv4" else 10


@dataclass(slots=True)
class LineRecord:
    """One line as it ran: the script's event, what happened (the packet sent or
    received, in script numbers, or a note such as a call's result), and the script
    time it happened at. The texts are made when shown, not while the run is timed."""

    event: Event
    note: str = ""
    packet: WirePacket | None = None
    time_us: int | None = None
    ok: bool = True

    @property
    def line(self) -> int:
        return self.event.line

    @property
    def kind(self) -> str:
        action = self.event.action
        if isinstance(action, (TcpPacket, IcmpPacket)):
            return "inbound" if action.inbound else "outbound"
        return type(action).__name__.lower()

    @property
    def expected(self) -> str:
        """The script line, in packetdrill notation."""
        return format_action(self.event.action)

    @property
    def actual(self) -> str:
        """What happened: the packet in packetdrill notation, or the note."""
        if self.packet is None:
            return self.note
        action = self.event.action
        direction = "<" if isinstance(action, (TcpPacket, IcmpPacket)) and action.inbound else ">"
        return format_wire(self.packet, direction)

    @property
    def scapy(self) -> str:
        """The packet's flags in Scapy's notation (``SA``, ``PA``)."""
        if self.packet is None:
            return "ICMP" if isinstance(self.event.action, IcmpPacket) else ""
        return scapy_flags(self.packet.flags)


@dataclass(slots=True)
class Failure:
    line: int
    message: str
    field: str | None = None
    expected: str | None = None
    actual: str | None = None
    unsupported: bool = False


@dataclass(slots=True)
class Frame:
    """A packet that crossed the test interface, for ``--pcap``: ``outbound`` when the
    stack under test sent it."""

    time_us: int
    data: bytes
    outbound: bool


@dataclass(slots=True)
class ScriptResult:
    path: str
    target: str
    passed: bool
    failure: Failure | None
    lines: list[LineRecord]
    duration_s: float
    frames: list[Frame] = field(default_factory=list)
    output: str = ""


class TargetUnsupported(Exception):  # noqa: N818 - what a target lacks, not an error in l4kit
    """Something the target has no counterpart for (ICMP for l4kit's core...): the line
    fails as ``unsupported: <what>``."""


class StepFailed(Exception):  # noqa: N818 - a step that failed, not an error in l4kit
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(slots=True)
class CallOutcome:
    """What a system call returned, as the table shows it (``= 1000``,
    ``= -1 EAGAIN (Resource temporarily unavailable)``), and its mismatch if any."""

    shown: str
    mismatch: Mismatch | None = None
    unsupported: str | None = None


class Target(Protocol):
    """A stack under test, as the runner drives it."""

    name: str
    addresses: Addresses
    runs_commands: bool  # False: shell commands and the init/cleanup commands are not run

    def now_us(self) -> int:
        """The target's clock, in microseconds."""
        ...

    def sleep_until(self, when_us: int) -> None:
        """Let the target's time pass until ``when_us``."""
        ...

    def start_time(self) -> int:
        """When the script's time 0 should be, on the target's clock (now, or soon)."""
        ...

    def begin(self, start_us: int) -> None:
        """The script's time 0 is ``start_us`` on the target's clock."""
        ...

    def inject(self, data: bytes) -> None:
        """Give the IP packet ``data`` to the stack as if it came from the peer."""
        ...

    def sniff(self, deadline_us: int | None) -> WirePacket | None:
        """The next packet the stack sent (``time_us`` set to when), or ``None`` if
        none comes before ``deadline_us``."""
        ...

    def ephemeral_port(self) -> int:
        """A port for the peer of a connection the script opens with an inbound SYN."""
        ...

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        """Run one system call and compare its result with the script's."""
        ...

    def start_blocking(self, work: Callable[[], None]) -> object:
        """Run ``work`` (a blocking call) beside the run; return once it is blocked or done."""
        ...

    def is_done(self, handle: object) -> bool: ...

    def wait_done(self, handle: object, timeout_us: int) -> bool:
        """Wait up to ``timeout_us`` for the blocking call to return."""
        ...

    def run_command(self, text: str) -> tuple[int, str]:
        """Run a shell command where the stack lives; its exit status and output."""
        ...

    def tcp_info(self, sock: ScriptSocket) -> dict[str, int] | None:
        """The ``tcpi_*`` values (and the constants scripts compare them with) of a socket."""
        ...

    def frames(self) -> list[Frame]: ...


class Runner:
    def __init__(self, script: Script, target: Target, config: RunConfig) -> None:
        self.script = script
        self.target = target
        self.config = config
        self.sockets = Sockets()
        self.records: list[LineRecord] = []
        self.live_start = 0
        self.num_events = 0
        self.last_event: Event | None = None
        self.last_time_us: int | None = None
        self.script_last_time_us = 0
        self.happened_at: int | None = None  # when the previous event's action was done (script time)
        self.blocking: object | None = None
        self.blocking_event: Event | None = None
        self.thread_failure: Failure | None = None
        self.lock = threading.RLock()
        self.code_namespace: dict[str, object] = {}
        self.output: list[str] = []

    # ------------------------------------------------------------ the run

    def result(
        self, target: str, passed: bool, failure: Failure | None, duration_s: float, frames: list[Frame]
    ) -> ScriptResult:
        """The result of :meth:`run` (``passed``, ``failure``) on ``target``, as reported."""
        return ScriptResult(
            path=self.script.path,
            target=target,
            passed=passed,
            failure=failure,
            lines=self.records,
            duration_s=duration_s,
            frames=frames,
            output="".join(self.output),
        )

    def run(self) -> tuple[bool, Failure | None]:
        script = self.script
        failure: Failure | None = None
        init_ran = False
        try:
            if script.init_command is not None and self.target.runs_commands:
                status, output = self.target.run_command(script.init_command.text)
                self._output(output)
                if status != 0:
                    raise StepFailed(
                        Failure(
                            0,
                            f"error executing init command: non-zero status {status}",
                            actual=output.strip(),
                        )
                    )
                init_ran = True
            self.live_start = self.target.start_time()
            self.target.begin(self.live_start)
            for event in script.events:
                self._event(event)
                self._check_thread()
                self.num_events += 1
                self.last_event = event
                self.script_last_time_us = self.last_time_us or 0
            self._finish_blocking()
        except StepFailed as exc:
            failure = exc.failure
        finally:
            if init_ran and script.cleanup_command is not None and self.target.runs_commands:
                status, output = self.target.run_command(script.cleanup_command.text)
                self._output(output)
                if status != 0 and failure is None:
                    failure = Failure(
                        script.events[-1].line,
                        f"error executing cleanup command: non-zero status {status}",
                        actual=output.strip(),
                    )
        if failure is None and self.thread_failure is not None:
            failure = self.thread_failure
        return failure is None, failure

    def _mark(self) -> None:
        """Note that the current event's action is done (a packet written or sniffed,
        a call returned): the next relative time counts from here, not from when the
        run's own checking and bookkeeping after it are done."""
        self.happened_at = self.now()

    def _output(self, text: str) -> None:
        if text:
            self.output.append(text)

    def _check_thread(self) -> None:
        if self.thread_failure is not None:
            raise StepFailed(self.thread_failure)

    def _finish_blocking(self) -> None:
        if self.blocking is not None and not self.target.wait_done(self.blocking, IDLE_WAIT_US):
            line = self.blocking_event.line if self.blocking_event else 0
            raise StepFailed(
                Failure(line, "runtime error: exiting while a blocking system call is in progress")
            )
        self._check_thread()

    def now(self) -> int:
        """Script time now: microseconds since the run started."""
        return self.target.now_us() - self.live_start

    # ------------------------------------------------------------ timing

    def _anchor(self, event: Event) -> tuple[int, int | None, int]:
        """The event's time on the script's clock (relative times anchored), its range
        end, and the offset that anchored it."""
        time = event.time
        start = time.start_us
        end = time.end_us
        offset = 0
        if time.kind in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE, TimeKind.ANY):
            previous = self.last_event
            if (
                previous is not None
                and _is_inbound(previous)
                and _is_inbound(event)
                and self.last_time_us is not None
            ):
                offset = self.last_time_us
            elif self.happened_at is not None:
                offset = self.happened_at
            else:
                offset = self.now()
            start += offset
            if end is not None:
                end += offset
        return start, end, offset

    def _wait(self, event: Event, time_us: int, end_us: int | None, what: str, offset: int) -> None:
        self.target.sleep_until(self.live_start + time_us)
        if self.num_events > 0:
            self._check_time(event, time_us, end_us, self.now(), what, offset)

    def _check_time(  # noqa: PLR0917 - the time of one event, as verify_time takes it
        self, event: Event, time_us: int, end_us: int | None, actual_us: int, what: str, offset: int
    ) -> None:
        error = verify_time(
            event.time.kind,
            time_us,
            end_us,
            actual_us,
            self.script_last_time_us if self.last_event is not None else None,
            tolerance_usecs=self.config.tolerance_usecs,
            tolerance_percent=self.config.tolerance_percent,
            what=what,
            offset_us=offset,
        )
        if error is not None:
            self._record(event, f"at {format_seconds(actual_us)} s", time_us=actual_us, ok=False)
            raise StepFailed(
                Failure(
                    event.line,
                    error,
                    field="time",
                    expected=f"{format_seconds(time_us)} s",
                    actual=f"{format_seconds(actual_us)} s",
                )
            )

    def _record(
        self,
        event: Event,
        note: str = "",
        packet: WirePacket | None = None,
        time_us: int | None = None,
        ok: bool = True,
    ) -> None:
        self.records.append(LineRecord(event, note, packet, time_us, ok))

    # ------------------------------------------------------------ events

    def _event(self, event: Event) -> None:
        try:
            self._dispatch(event)
        except TargetUnsupported as exc:
            self._record(event, "unsupported", ok=False)
            raise StepFailed(Failure(event.line, f"unsupported: {exc}", unsupported=True)) from None

    def _dispatch(self, event: Event) -> None:
        time_us, end_us, offset = self._anchor(event)
        self.last_time_us = time_us
        self.happened_at = None
        action = event.action
        if isinstance(action, TcpPacket):
            if action.inbound:
                self._inbound(event, action, time_us, end_us, offset)
            else:
                self._outbound(event, action, time_us, end_us, offset)
        elif isinstance(action, IcmpPacket):
            if not action.inbound:
                self._record(event, "unsupported", ok=False)
                raise StepFailed(Failure(event.line, "unsupported: outbound ICMP packets", unsupported=True))
            self._inbound_icmp(event, action, time_us, end_us, offset)
        elif isinstance(action, Syscall):
            self._syscall(event, action, time_us, end_us, offset)
        elif isinstance(action, Command):
            self._await_idle()
            self._wait(event, time_us, end_us, "command", offset)
            if not self.target.runs_commands:
                self._record(
                    event, f"not run: the {self.target.name} target runs no shell", time_us=self.now()
                )
                return
            status, output = self.target.run_command(action.text)
            self._mark()
            self._output(output)
            ok = status == 0
            self._record(event, f"exit status {status}", time_us=self.now(), ok=ok)
            if not ok:
                raise StepFailed(
                    Failure(
                        event.line,
                        f"error executing `{action.text}` command: non-zero status {status}",
                        field="exit status",
                        expected="0",
                        actual=str(status),
                    )
                )
        elif isinstance(action, Code):
            self._await_idle()
            self._wait(event, time_us, end_us, "data collection for code", offset)
            self._code(event, action)
            self._mark()
        else:
            assert isinstance(action, Unsupported)
            self._record(event, "unsupported", ok=False)
            raise StepFailed(Failure(event.line, f"unsupported: {action.what}", unsupported=True))

    def _inbound(
        self, event: Event, packet: TcpPacket, time_us: int, end_us: int | None, offset: int
    ) -> None:
        with self.lock:
            try:
                sock = self.sockets.for_script_packet(packet, self.target.addresses, None)
                if sock.live_remote is not None and sock.live_remote[1] == 0:
                    sock.live_remote = (sock.live_remote[0], self.target.ephemeral_port())
            except SessionError as exc:
                raise StepFailed(Failure(event.line, f"error handling packet: {exc}")) from None
        # Built before the wait, so that at its time the packet only has to be written.
        with self.lock:
            try:
                live = inbound_packet(sock, packet, tcp_ts_ecr_scaled=self.config.tcp_ts_ecr_scaled)
            except SessionError as exc:
                self._record(event, "not sent", ok=False)
                raise StepFailed(Failure(event.line, f"error handling packet: {exc}")) from None
        data = encode_wire(live)
        self._wait(event, time_us, end_us, "inbound packet", offset)
        sent_at = self.now()
        self.target.inject(data)
        self._mark()
        self._record(event, packet=to_script_space_inbound(packet, live), time_us=sent_at)

    def _inbound_icmp(
        self, event: Event, packet: IcmpPacket, time_us: int, end_us: int | None, offset: int
    ) -> None:
        sock = self.sockets.under_test
        if sock is None:
            raise StepFailed(
                Failure(event.line, "error handling packet: no matching socket for script packet")
            )
        with self.lock:
            try:
                data = inbound_icmp(sock, packet)
            except SessionError as exc:
                self._record(event, "not sent", ok=False)
                raise StepFailed(Failure(event.line, f"error handling packet: {exc}")) from None
        self._wait(event, time_us, end_us, "inbound packet", offset)
        sent_at = self.now()
        self.target.inject(data)
        self._mark()
        self._record(event, format_action(packet), time_us=sent_at)

    def _outbound(
        self, event: Event, packet: TcpPacket, time_us: int, end_us: int | None, offset: int
    ) -> None:
        with self.lock:
            try:
                sock = self.sockets.for_script_packet(packet, self.target.addresses, None)
            except SessionError as exc:
                raise StepFailed(Failure(event.line, f"error handling packet: {exc}")) from None
            expect_outbound(sock, packet)
        wait_s = max(time_us, end_us or 0) - self.script_last_time_us
        deadline: int | None = None
        if event.time.kind != TimeKind.ANY:
            deadline = self.target.now_us() + (max(wait_s, 0) // 1_000_000 + SNIFF_SLACK_SECS) * 1_000_000
        else:
            deadline = self.target.now_us() + 600 * 1_000_000
        sniffed: list[WirePacket] = []
        total = 0
        expected_len = packet.payload_len
        while True:
            live = self.target.sniff(deadline)
            self._mark()
            self._check_thread()
            if live is None:
                self._record(event, "nothing", time_us=self.now(), ok=False)
                raise StepFailed(
                    Failure(
                        event.line,
                        "error handling packet: timed out waiting for the packet "
                        f"(nothing sent by {format_seconds(deadline - self.live_start)} s)",
                        field="packet",
                        expected=format_action(packet),
                        actual="no packet",
                    )
                )
            with self.lock:
                owner = self.sockets.match_outbound(live, sock)
                if owner is None:
                    continue
                if owner is not sock:
                    raise StepFailed(
                        Failure(event.line, "error handling packet: packet is not for expected socket")
                    )
                learn_outbound(sock, packet, live)
                converted = to_script_space(sock, live)
            if sniffed and _four_tuple(sniffed[-1]) != _four_tuple(converted):
                # Another connection's packet began the burst (a retransmitted SYN of an
                # older socket matched the connecting one): start again from this one.
                sniffed = []
                total = 0
            if sniffed:
                mismatch = check_fragment(converted, sniffed[-1])
                if (
                    mismatch is None
                    and converted.payload_len < expected_len - total
                    and (converted.payload_len != sniffed[-1].payload_len)
                ):
                    mismatch = Mismatch(
                        "fragment payload",
                        str(sniffed[-1].payload_len),
                        str(converted.payload_len),
                        f"fragment payload: expected {sniffed[-1].payload_len} bytes vs actual "
                        f"{converted.payload_len} bytes; total payload: expected {expected_len} bytes vs "
                        f"actual {converted.payload_len + total} bytes",
                    )
                if mismatch is not None:
                    self._fail_packet(event, packet, converted, mismatch)
            sniffed.append(converted)
            total += converted.payload_len
            if total >= expected_len or self.config.strict_segments:
                break
        actual = sniffed[0] if len(sniffed) == 1 else aggregate(sniffed)
        with self.lock:
            actual = map_timestamps(sock, packet, actual)
        if total != expected_len:
            self._fail_packet(
                event,
                packet,
                actual,
                Mismatch(
                    "payload length",
                    str(expected_len),
                    str(total),
                    f"live packet payload: expected {expected_len} bytes vs actual {total} bytes",
                ),
            )
        mismatch = verify_outbound(
            packet,
            actual,
            sock,
            tcp_ts_tick_usecs=self.config.tcp_ts_tick_usecs,
            ts_tolerance_usecs=max(
                self.config.tolerance_usecs, int(self.config.tolerance_percent / 100 * time_us)
            ),
        )
        if mismatch is not None:
            self._fail_packet(event, packet, actual, mismatch)
        happened = actual.time_us - self.live_start
        self._check_time_packet(event, time_us, end_us, happened, offset, actual)
        self._record(event, packet=actual, time_us=happened)

    def _check_time_packet(  # noqa: PLR0917 - the time of one packet, as verify_time takes it
        self,
        event: Event,
        time_us: int,
        end_us: int | None,
        happened: int,
        offset: int,
        actual: WirePacket,
    ) -> None:
        error = verify_time(
            event.time.kind,
            time_us,
            end_us,
            happened,
            self.script_last_time_us if self.last_event is not None else None,
            tolerance_usecs=self.config.tolerance_usecs,
            tolerance_percent=self.config.tolerance_percent,
            what="outbound packet",
            offset_us=offset,
        )
        if error is not None:
            self._record(event, packet=actual, time_us=happened, ok=False)
            raise StepFailed(
                Failure(
                    event.line,
                    f"error handling packet: {error}",
                    field="time",
                    expected=f"{format_seconds(time_us)} s",
                    actual=f"{format_seconds(happened)} s",
                )
            )

    def _fail_packet(self, event: Event, packet: TcpPacket, actual: WirePacket, mismatch: Mismatch) -> None:
        shown = format_wire(actual)
        happened = actual.time_us - self.live_start
        wanted = self.last_time_us if self.last_time_us is not None else event.time.start_us
        self._record(event, packet=actual, time_us=happened, ok=False)
        raise StepFailed(
            Failure(
                event.line,
                f"error handling packet: {mismatch.message}\n"
                f"script packet: {wanted / 1e6:.6f} {format_action(packet)}\n"
                f"actual packet: {happened / 1e6:.6f} {shown}",
                field=mismatch.field,
                expected=mismatch.expected,
                actual=mismatch.actual,
            )
        )

    # ------------------------------------------------------------ calls

    def _await_idle(self) -> bool:
        if self.blocking is None:
            return True
        done = self.target.wait_done(self.blocking, IDLE_WAIT_US)
        self._check_thread()
        if done:
            self.blocking = None
            self.blocking_event = None
        return done

    def _syscall(self, event: Event, call: Syscall, time_us: int, end_us: int | None, offset: int) -> None:
        if not call.blocking:
            self._await_idle()
            self._wait(event, time_us, end_us, "system call start", offset)
            with self.lock:
                outcome = self.target.execute(call, self.sockets)
            self._mark()
            self._finish_call(event, call, outcome, self.happened_at or 0)
            return
        if not self._await_idle():
            raise StepFailed(
                Failure(
                    event.line,
                    f"runtime error in {call.name} call: blocking system call while another blocking "
                    "system call is already in progress",
                )
            )
        assert call.end_us is not None
        call_end = call.end_us + (offset if event.time.kind == TimeKind.RELATIVE else 0)
        first = self.num_events == 0
        last_time = self.script_last_time_us if self.last_event is not None else None

        def work() -> None:
            try:
                self.target.sleep_until(self.live_start + time_us)
                if not first:
                    started = self.now()
                    error = verify_time(
                        event.time.kind,
                        time_us,
                        end_us,
                        started,
                        last_time,
                        tolerance_usecs=self.config.tolerance_usecs,
                        tolerance_percent=self.config.tolerance_percent,
                        what="system call start",
                        offset_us=offset,
                    )
                    if error is not None:
                        raise StepFailed(Failure(event.line, error, field="time"))
                outcome = self.target.execute(call, self.sockets)
                returned = self.now()
                with self.lock:
                    self._finish_call(event, call, outcome, returned)
                error = verify_time(
                    TimeKind.ABSOLUTE if event.time.kind == TimeKind.ANY else event.time.kind,
                    call_end,
                    None,
                    returned,
                    time_us,
                    tolerance_usecs=self.config.tolerance_usecs,
                    tolerance_percent=self.config.tolerance_percent,
                    what="system call return",
                    offset_us=offset,
                )
                if error is not None:
                    self.records[-1].ok = False
                    raise StepFailed(
                        Failure(
                            event.line,
                            error,
                            field="return time",
                            expected=f"{format_seconds(call_end)} s",
                            actual=f"{format_seconds(returned)} s",
                        )
                    )
            except StepFailed as exc:
                self.thread_failure = exc.failure
            except TargetUnsupported as exc:
                self.thread_failure = Failure(event.line, f"unsupported: {exc}", unsupported=True)
            except Exception as exc:  # a bug in a target must fail the script, not hang the run
                self.thread_failure = Failure(event.line, f"internal error in {call.name}: {exc!r}")

        self.blocking_event = event
        self.blocking = self.target.start_blocking(work)
        self._mark()
        self._check_thread()

    def _finish_call(self, event: Event, call: Syscall, outcome: CallOutcome, returned: int) -> None:
        if outcome.unsupported is not None:
            self._record(event, "unsupported", time_us=returned, ok=False)
            raise StepFailed(Failure(event.line, f"unsupported: {outcome.unsupported}", unsupported=True))
        ok = outcome.mismatch is None
        self._record(event, outcome.shown, time_us=returned, ok=ok)
        if outcome.mismatch is not None:
            mismatch = outcome.mismatch
            raise StepFailed(
                Failure(
                    event.line,
                    f"runtime error in {call.name} call: {mismatch.message}",
                    field=mismatch.field,
                    expected=mismatch.expected,
                    actual=mismatch.actual,
                )
            )

    # ------------------------------------------------------------ code

    def _code(self, event: Event, code: Code) -> None:
        sock = self.sockets.under_test
        if sock is None:
            self._record(event, "no socket", ok=False)
            raise StepFailed(Failure(event.line, "runtime error in code: no socket to use for code"))
        info = self.target.tcp_info(sock)
        if info is None:
            self._record(event, "no TCP_INFO", ok=False)
            raise StepFailed(
                Failure(event.line, "runtime error in code: can't find getsockopt to get TCP info")
            )
        namespace = self.code_namespace
        namespace.update(info)
        printed = io.StringIO()
        try:
            # As packetdrill writes it to a file: a blank line after it, so that a snippet
            # ending in a backslash continuation still compiles.
            compiled = compile(code.text + "\n\n", f"{self.script.path}:{event.line}", "exec")
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                exec(compiled, namespace)  # the script's own Python, as packetdrill runs it
        except AssertionError as exc:
            self._output(printed.getvalue())
            detail = str(exc)
            self._record(event, f"assertion failed: {detail}", time_us=self.now(), ok=False)
            raise StepFailed(
                Failure(
                    event.line,
                    f"error in Python code: AssertionError: {detail}".rstrip(": "),
                    field="assert",
                    expected=code.text,
                    actual=detail,
                )
            ) from None
        except Exception as exc:
            self._output(printed.getvalue())
            self._record(event, f"{type(exc).__name__}: {exc}", time_us=self.now(), ok=False)
            raise StepFailed(
                Failure(event.line, f"error in Python code: {type(exc).__name__}: {exc}")
            ) from None
        self._output(printed.getvalue())
        self._record(event, "ok", time_us=self.now())


def _four_tuple(packet: WirePacket) -> tuple[str, int, str, int]:
    return packet.src, packet.sport, packet.dst, packet.dport


def _is_inbound(event: Event) -> bool:
    return isinstance(event.action, (TcpPacket, IcmpPacket)) and event.action.inbound


def to_script_space_inbound(packet: TcpPacket, live: WirePacket) -> WirePacket:
    """An injected packet shown with the script's numbers (what the line wrote)."""
    return replace(live, seq=packet.seq, ack=packet.ack or 0, options=packet.options or ())

"""The event loop against a scripted stack on a virtual clock: the timing rules
(late, early, tolerance), aggregation of a split burst, timeouts, code blocks and
unsupported lines, each failure naming the line and the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from l4kit.drill.run.loop import CallOutcome, Frame, RunConfig, Runner
from l4kit.drill.script import parse
from l4kit.drill.script.model import IntValue, Syscall
from l4kit.drill.script.session import Addresses, ScriptSocket, Sockets
from l4kit.drill.script.wirepacket import ACK, PSH, SYN, WirePacket, decode_wire

ISN = 777_000
Reaction = Callable[[WirePacket], list[tuple[int, WirePacket]]]


def segment(**fields: object) -> WirePacket:
    base = WirePacket(
        version=4, src="192.168.0.1", dst="192.0.2.1", tos=0, ttl=64, flow_label=0, ip_header_len=20,
        ip_length=40, ip_checksum_ok=True, sport=8080, dport=40000, seq=ISN, ack=0, data_offset=5,
        reserved=0, flags=ACK, window=1000, urgent=0, options=(), options_len=0, payload=b"",
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


class ScriptedStack:
    """A stack whose answers the test writes: ``react`` gets each injected packet and
    returns (delay in us, packet) pairs the stack sends; calls succeed as written."""

    name = "scripted"
    runs_commands = True

    def __init__(self, react: Reaction) -> None:
        self.addresses = Addresses()
        self.react = react
        self.clock = 1_000_000
        self.queue: list[tuple[int, WirePacket]] = []
        self.injected: list[WirePacket] = []

    def now_us(self) -> int:
        return self.clock

    def sleep_until(self, when_us: int) -> None:
        self.clock = max(self.clock, when_us)

    def start_time(self) -> int:
        return self.clock

    def begin(self, start_us: int) -> None:
        pass

    def inject(self, data: bytes) -> None:
        packet = decode_wire(data, self.clock)
        assert packet is not None
        self.injected.append(packet)
        for delay, answer in self.react(packet):
            self.queue.append((self.clock + delay, answer))
        self.queue.sort(key=lambda entry: entry[0])

    def sniff(self, deadline_us: int | None) -> WirePacket | None:
        if self.queue and (deadline_us is None or self.queue[0][0] <= deadline_us):
            when, packet = self.queue.pop(0)
            self.clock = max(self.clock, when)
            return replace(packet, time_us=when)
        self.clock = deadline_us or self.clock
        return None

    def ephemeral_port(self) -> int:
        return 40000

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        assert isinstance(call.result, IntValue)
        if call.name == "socket":
            sockets.opened(call.result.value, call.result.value)
        elif call.name == "listen":
            sockets.listening(3)
        elif call.name == "accept":
            sockets.accepted(call.result.value, call.result.value)
        return CallOutcome(f"= {call.result.value}")

    def start_blocking(self, work: Callable[[], None]) -> object:
        work()
        return None

    def is_done(self, handle: object) -> bool:
        return True

    def wait_done(self, handle: object, timeout_us: int) -> bool:
        return True

    def run_command(self, text: str) -> tuple[int, str]:
        return (0 if text == "true" else 1), f"ran {text}\n"

    def tcp_info(self, sock: ScriptSocket) -> dict[str, int] | None:
        return {"tcpi_state": 1, "TCP_ESTABLISHED": 1}

    def frames(self) -> list[Frame]:
        return []


SERVER = """0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 1000 <mss 1000>
"""


def synack_after(delay: int) -> Reaction:
    def react(packet: WirePacket) -> list[tuple[int, WirePacket]]:
        if packet.flags & SYN:
            return [(delay, segment(flags=SYN | ACK, ack=packet.seq + 1))]
        return []

    return react


def run(text: str, react: Reaction, config: RunConfig | None = None) -> Runner:
    runner = Runner(parse(text, "t.pkt"), ScriptedStack(react), config or RunConfig())  # type: ignore[arg-type]
    passed, failure = runner.run()
    runner.passed, runner.failure = passed, failure  # type: ignore[attr-defined]
    return runner


def test_passive_open_passes_and_records_every_line() -> None:
    runner = run(
        SERVER + "+0 > S. 0:0(0) ack 1\n+.1 < . 1:1(0) ack 1 win 1000\n+0 accept(3, ..., ...) = 4\n",
        synack_after(50),
    )
    assert runner.passed, runner.failure  # type: ignore[attr-defined]
    assert [record.line for record in runner.records] == [1, 2, 3, 4, 5, 6, 7]
    synack = runner.records[4]
    assert (synack.actual, synack.scapy, synack.time_us, synack.ok) == (
        "> S. 0:0(0) ack 1 win 1000",
        "SA",
        50,
        True,
    )
    ack = runner.records[5]
    assert ack.expected == "< . 1:1(0) ack 1 win 1000" and ack.time_us == 100_050
    assert runner.target.injected[1].ack == ISN + 1  # type: ignore[attr-defined]  # the stack's ISN, learned


def test_late_packet_fails_with_the_time() -> None:
    runner = run(SERVER + "+0 > S. 0:0(0) ack 1\n", synack_after(5000))
    failure = runner.failure  # type: ignore[attr-defined]
    assert failure.line == 5 and failure.field == "time"
    assert failure.message.startswith(
        "error handling packet: timing error: expected outbound packet at 0.000000"
    )
    assert "but happened at 0.005000 sec; tolerance 0.004000 sec" in failure.message
    assert not runner.records[-1].ok


def test_early_packet_fails_too() -> None:
    runner = run(SERVER + "+.1 > S. 0:0(0) ack 1\n", synack_after(0))
    assert runner.failure.field == "time"  # type: ignore[attr-defined]
    # With a wide enough tolerance the same run passes.
    assert run(SERVER + "+.1 > S. 0:0(0) ack 1\n", synack_after(0), RunConfig(tolerance_usecs=100_000)).passed  # type: ignore[attr-defined]


def test_wrong_field_is_named_with_both_packets() -> None:
    runner = run(SERVER + "+0 > S. 0:0(0) ack 2\n", synack_after(0))
    failure = runner.failure  # type: ignore[attr-defined]
    assert (failure.line, failure.field, failure.expected, failure.actual) == (5, "tcp_ack_seq", "2", "1")
    assert failure.message.splitlines() == [
        "error handling packet: live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)",
        "script packet: 0.000000 > S. 0:0(0) ack 2",
        "actual packet: 0.000000 > S. 0:0(0) ack 1 win 1000",
    ]


def data_after_ack(*sizes: int) -> Reaction:
    """The SYN-ACK at once; on the handshake's ACK, data segments of these sizes."""

    def react(packet: WirePacket) -> list[tuple[int, WirePacket]]:
        if packet.flags & SYN:
            return [(0, segment(flags=SYN | ACK, ack=packet.seq + 1))]
        out, seq = [], ISN + 1
        for size in sizes:
            out.append(
                (
                    10,
                    segment(
                        flags=PSH | ACK, seq=seq, ack=packet.seq, payload=bytes(size), ip_length=40 + size
                    ),
                )
            )
            seq += size
        return out

    return react


HANDSHAKE = SERVER + "+0 > S. 0:0(0) ack 1\n+0 < . 1:1(0) ack 1 win 1000\n"


def test_a_burst_split_in_two_matches_one_line() -> None:
    assert run(HANDSHAKE + "+0 > P. 1:2001(2000) ack 1\n", data_after_ack(1000, 1000)).passed  # type: ignore[attr-defined]
    runner = run(HANDSHAKE + "+0 > P. 1:1001(1000) ack 1\n", data_after_ack(2000))
    assert runner.failure.message.startswith(  # type: ignore[attr-defined]
        "error handling packet: live packet payload: expected 1000 bytes vs actual 2000 bytes"
    )


def test_nothing_sent_times_out_after_two_seconds() -> None:
    runner = run(HANDSHAKE + "+.5 > P. 1:11(10) ack 1\n", data_after_ack())
    failure = runner.failure  # type: ignore[attr-defined]
    assert failure.line == 7 and failure.actual == "no packet"
    assert failure.message == "error handling packet: timed out waiting for the packet (nothing sent by 2 s)"


def test_code_blocks_see_tcp_info_and_their_failures_name_the_line() -> None:
    runner = run(
        HANDSHAKE + '+0 %{ print("state is", tcpi_state); assert tcpi_state == TCP_ESTABLISHED }%\n',
        data_after_ack(),
    )
    assert runner.passed and "state is 1" in "".join(runner.output)  # type: ignore[attr-defined]
    runner = run(HANDSHAKE + "+0 %{ assert tcpi_state == 7, 'not closed' }%\n", data_after_ack())
    failure = runner.failure  # type: ignore[attr-defined]
    assert (failure.line, failure.message) == (7, "error in Python code: AssertionError: not closed")


def test_commands_and_unsupported_lines() -> None:
    assert run("0 `true`\n", data_after_ack()).passed  # type: ignore[attr-defined]
    runner = run("0 `false`\n", data_after_ack())
    assert runner.failure.message == "error executing `false` command: non-zero status 1"  # type: ignore[attr-defined]
    runner = run("0 `true`\n+0 < udp (10)\n", data_after_ack())
    failure = runner.failure  # type: ignore[attr-defined]
    assert failure.unsupported and failure.line == 2 and failure.message == "unsupported: UDP packets"


@pytest.mark.parametrize("init_status", ["true", "false"])
def test_init_and_cleanup_commands(init_status: str) -> None:
    runner = run(f"`{init_status}`\n0 `true`\n`true`\n", data_after_ack())
    assert runner.passed == (init_status == "true")  # type: ignore[attr-defined]
    ran = "".join(runner.output)
    # The cleanup runs only after an init command that ran, whatever the verdict.
    assert (ran == "ran true\n" * 3) if init_status == "true" else (ran == "ran false\n")


def test_relative_times_count_from_the_packet_not_from_the_checks_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from l4kit.drill.run import loop

    stack = ScriptedStack(synack_after(50))
    verify = loop.verify_outbound

    def slow_verify(*args: object, **kwargs: object) -> object:
        stack.clock += 3000  # checking the packet takes 3 ms
        return verify(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "verify_outbound", slow_verify)
    runner = Runner(
        parse(SERVER + "+0 > S. 0:0(0) ack 1\n+.01 < . 1:1(0) ack 1 win 1000\n", "t.pkt"),
        stack,  # type: ignore[arg-type]
        RunConfig(),
    )
    assert runner.run() == (True, None)
    synack, ack = runner.records[4], runner.records[5]
    # The ACK goes 10 ms after the SYN-ACK was sniffed, however long the checks of the
    # SYN-ACK took: not 10 ms after they were done.
    assert (synack.time_us, ack.time_us) == (50, 10_050)

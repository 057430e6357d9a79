"""The packetdrill language: what the parser builds, and the errors it names.

Tables of (text, expected value) and (text, expected ``file:line: message``); the
property tests (print -> parse round trip, no exception but ScriptSyntaxError on
any input) are in ``test_drill_parser_properties.py``.
"""

from __future__ import annotations

import pytest

from l4kit.drill.script import ScriptSyntaxError, parse
from l4kit.drill.script.model import (
    AnyValue,
    BitOr,
    Call,
    Code,
    Command,
    EventTime,
    Field,
    IcmpPacket,
    IntValue,
    IpInfo,
    ListValue,
    StringValue,
    Struct,
    Syscall,
    TcpPacket,
    TimeKind,
    Unsupported,
    Word,
)
from l4kit.drill.script.printer import format_script
from l4kit.wire.options import (
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    Timestamps,
    UnknownOption,
    WindowScale,
)


def one(text: str):  # type: ignore[no-untyped-def]
    """The action of a one-event script at time 0."""
    script = parse(f"0 {text}\n", "t.pkt")
    assert len(script.events) == 1
    return script.events[0].action


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("0 > S 0:0(0)", EventTime(TimeKind.ABSOLUTE, 0)),
        ("+0 > S 0:0(0)", EventTime(TimeKind.RELATIVE, 0)),
        ("* > S 0:0(0)", EventTime(TimeKind.ANY)),
        ("0~0.25 > S 0:0(0)", EventTime(TimeKind.ABSOLUTE_RANGE, 0, 250_000)),
        ("+0~+.5 > S 0:0(0)", EventTime(TimeKind.RELATIVE_RANGE, 0, 500_000)),
    ],
)
def test_event_times(text: str, time: EventTime) -> None:
    assert parse(text + "\n", "t.pkt").events[0].time == time


def test_times_are_exact_microseconds() -> None:
    script = parse("0 `true`\n+.1 `true`\n+0.3 `true`\n1.000001 `true`\n", "t.pkt")
    assert [e.time.start_us for e in script.events] == [0, 100_000, 300_000, 1_000_001]
    assert [e.line for e in script.events] == [1, 2, 3, 4]


# ---------------------------------------------------------------- packets


def test_inbound_syn_with_options() -> None:
    assert one("< S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>") == TcpPacket(
        "<",
        "S",
        0,
        0,
        0,
        window=32792,
        options=(
            MaxSegmentSize(1000),
            SackPermitted(),
            NoOperation(),
            NoOperation(),
            NoOperation(),
            WindowScale(7),
        ),
    )


def test_outbound_synack_any_options_and_data() -> None:
    assert one("> S. 0:0(0) ack 1 <...>") == TcpPacket(">", "S.", 0, 0, 0, ack=1, options=None)
    assert one("> P. 1:1001(1000) ack 1") == TcpPacket(">", "P.", 1, 1001, 1000, ack=1)


def test_flags_notation() -> None:
    assert one("> F. 1:1(0) ack 1").flags == "F."
    assert one("> R 1:1(0)").flags == "R"
    assert one("> . 1:1(0) ack 1").flags == "."
    assert one("> - 1:1(0)").flags == ""
    assert one("> SEW 0:0(0)").flags == "SEW"
    assert one("> S.2 0:0(0) ack 1").flags == "S.2"


def test_sack_timestamps_fast_open_and_unknown_kinds() -> None:
    options = one(
        "< . 1:1(0) ack 1 win 257 <nop,nop,TS val 100 ecr 200,nop,nop,sack 1001:2001 3001:4001>"
    ).options
    assert options == (
        NoOperation(),
        NoOperation(),
        Timestamps(100, 200),
        NoOperation(),
        NoOperation(),
        Sack(((1001, 2001), (3001, 4001))),
    )
    assert one("< S 0:0(0) win 1 <FO 3021b9d889017eeb,30 0a0b,nop,nop>").options == (
        UnknownOption(34, bytes.fromhex("3021b9d889017eeb")),
        UnknownOption(30, b"\x0a\x0b"),
        NoOperation(),
        NoOperation(),
    )
    assert one("> S 0:0(0) <FOEXP>").options == (UnknownOption(254, b"\xf9\x89"),)


def test_ip_fields() -> None:
    assert one("< [ect0] S 0:0(0) win 100").ip == IpInfo(ecn="ect0")
    assert one("> [ect01] . 1:1(0) ack 1").ip == IpInfo(ecn="ect01")
    assert one("< (tos 0x10) . 1:1(0) ack 1 win 100").ip == IpInfo(tos=0x10)
    assert one("< (ttl 64) . 1:1(0) ack 1 win 100").ip == IpInfo(ttl=64)
    assert one("< [noecn, flowlabel 0x1] . 1:1(0) ack 1 win 100").ip == IpInfo(ecn="noecn", flow_label=1)
    assert one("> 8080>40000 . 1:1(0) ack 1").ports == (8080, 40000)


def test_icmp() -> None:
    assert one("< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]") == IcmpPacket(
        "<", "unreachable", "frag_needed", 1200, None, ("tcp", 1, 1461, 1460)
    )
    assert one("< icmp unreachable [udp (10)]").echoed == ("udp", 0, 0, 10)


def test_encapsulations_parse_as_unsupported_events() -> None:
    action = one("< GREv0 : S 0:0(0) win 100")
    assert isinstance(action, Unsupported)
    assert action.what == "GRE packets"
    script = parse("0 < udp (10)\n+0 `true`\n", "t.pkt")
    assert isinstance(script.events[0].action, Unsupported)
    assert script.events[1].action == Command("true")


# ---------------------------------------------------------------- calls


def test_syscalls() -> None:
    assert one("socket(..., SOCK_STREAM, IPPROTO_TCP) = 3") == Syscall(
        "socket", (AnyValue(), Word("SOCK_STREAM"), Word("IPPROTO_TCP")), IntValue(3)
    )
    assert one("connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)") == Syscall(
        "connect",
        (IntValue(3), AnyValue(), AnyValue()),
        IntValue(-1),
        "EINPROGRESS",
        "Operation now in progress",
    )
    assert one("fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0").args[2] == BitOr(
        Word("O_RDWR"), Word("O_NONBLOCK")
    )
    assert one("fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)") == Syscall(
        "fcntl", (IntValue(3), Word("F_GETFL")), IntValue(2, hex=True), note="flags O_RDWR"
    )
    blocking = one("...0.1 read(4, ..., 2000) = 2000")
    assert blocking.end_us == 100_000
    assert blocking.blocking


def test_structures() -> None:
    call = one("sendmsg(3, {msg_name(...)=..., msg_iov(1)=[{..., 100}], msg_flags=0}, MSG_FASTOPEN) = 100")
    msg = call.args[1]
    assert msg == Struct(
        (
            Field("msg_name", AnyValue(), AnyValue()),
            Field("msg_iov", ListValue((Struct((AnyValue(), IntValue(100))),)), IntValue(1)),
            Field("msg_flags", IntValue(0)),
        )
    )
    poll = one("poll([{fd=5, events=POLLIN, revents=POLLIN}], 1, 0) = 1").args[0]
    assert poll == ListValue(
        (
            Struct(
                (Field("fd", IntValue(5)), Field("events", Word("POLLIN")), Field("revents", Word("POLLIN")))
            ),
        )
    )
    addr = one('bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0')
    assert addr.args[1].get("sin_port") == Field("sin_port", Call("htons", (IntValue(8080),)))
    assert one('setsockopt(3, SOL_TCP, TCP_CONGESTION, "reno" "x"..., 4) = 0').args[3] == StringValue(
        "renox", True
    )


def test_commands_code_options_init_and_cleanup() -> None:
    script = parse(
        "--tolerance_usecs=10000\n--define=X=1\n`../common/defaults.sh`\n"
        "0 `echo hi`\n+0 %{ assert tcpi_state == 1 }%\n`cleanup.sh`\n",
        "t.pkt",
    )
    assert script.option("tolerance_usecs") == "10000"
    assert script.option("define") == "X=1"
    assert script.init_command == Command("../common/defaults.sh")
    assert script.cleanup_command == Command("cleanup.sh")
    assert [e.action for e in script.events] == [Command("echo hi"), Code("assert tcpi_state == 1")]


def test_defines_replace_words() -> None:
    script = parse(
        "0 setsockopt(3, SOL_TCP, OPT, [VALUE], 4) = 0\n", "t.pkt", {"OPT": "TCP_NODELAY", "VALUE": "1"}
    )
    assert script.events[0].action.args[2] == Word("TCP_NODELAY")
    assert script.events[0].action.args[3] == ListValue((IntValue(1),))
    # --define lines in the script too; the command line wins.
    text = "--define=N=5\n0 listen(3, N) = 0\n"
    assert parse(text, "t.pkt").events[0].action.args[1] == IntValue(5)
    assert parse(text, "t.pkt", {"N": "7"}).events[0].action.args[1] == IntValue(7)


def test_comments() -> None:
    script = parse("// a comment\n0 `true` /* inline */ // trailing\n/* multi\nline */ +1 `true`\n", "t.pkt")
    assert [e.line for e in script.events] == [2, 4]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t.pkt:1: a script needs at least one event"),
        ("0 < S 0:0(0)\n", "t.pkt:1: window must be specified for inbound packets"),
        (
            "0 < S 0:0(0) win 1 <...>\n",
            "t.pkt:1: <...> for TCP options can only be used with outbound packets",
        ),
        ("0 > S 0:10(5)\n", "t.pkt:1: inconsistent TCP sequence numbers and payload size: 0:10(5)"),
        ("0 > S 0:0(0) <mss 1460>\n+0 > S 0:0(0) <nop>\n", "t.pkt:2: TCP options are not padded correctly"),
        ("0 > X 0:0(0)\n", "t.pkt:1: Invalid TCP flag: 'X'"),
        ("0 > S 0:0(0)\n+1 < S 0:0(0) win 70000\n", "t.pkt:2: window 70000 out of range (0..65535)"),
        ("1 `true`\n", "t.pkt:1: the first event should be at time 0"),
        ("0 `true`\n2 `true`\n1 `true`\n", "t.pkt:3: time goes backward in script"),
        ("0 `true`\n* `true`\n", "t.pkt:2: event time * can only be used with outbound packets"),
        (
            "0 `true`\n+0~+1 read(3, ..., 1) = 1\n",
            "t.pkt:2: event time range can only be used with outbound packets",
        ),
        ("0 read(3, ..., 1)\n", "t.pkt:1: expected '=' and the expected result of read"),
        ("0 read(3, ..., 1 = 1\n", "t.pkt:1: expected ')' or ',' in the arguments of read"),
        ("0 `unterminated\n", "t.pkt:1: command starting with ` is never closed"),
        ("0 %{ x = 1\n", "t.pkt:1: code block '%{' is never closed"),
        ("0 `true`\n/* open\n", "t.pkt:2: comment '/*' is never closed"),
        ("0 `true`\n+0 banana\n", "t.pkt:2: expected '(' after banana"),
        ("0 `true`\n`cleanup`\n+0 `true`\n", "t.pkt:2: a command without a time runs after the last event"),
        ("0 > S 0:0(0) <mss 1460,2 05b4>\n", "t.pkt:1: option kind 2 has a name in the language"),
        ("0 > S 0:0(0) <FO abc>\n", "t.pkt:1: a Fast Open cookie must be an even number of hex digits"),
    ],
)
def test_errors_name_file_line_and_what(text: str, message: str) -> None:
    with pytest.raises(ScriptSyntaxError) as caught:
        parse(text, "t.pkt")
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_printing_is_canonical_and_parses_back() -> None:
    text = (
        "--tolerance_usecs=10000\n`init`\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+.1 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>\n"
        "+0 > S. 0:0(0) ack 1 <...>\n"
        "+0...0.25 read(4, ..., 10) = 10\n"
        "+0.000250 %{ assert tcpi_rto > 0 }%\n"
    )
    script = parse(text, "t.pkt")
    printed = format_script(script)
    assert "+0.1 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>" in printed
    assert "+0...0.25 read(4, ..., 10) = 10" in printed
    assert "+0.00025 %{ assert tcpi_rto > 0 }%" in printed
    assert parse(printed, "t.pkt") == script

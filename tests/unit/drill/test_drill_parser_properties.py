"""Property tests of the language: any script the model can hold prints to text that
parses back to the same script, and no input makes the parser raise anything but a
ScriptSyntaxError naming a line of the input."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l4kit.drill.script import ScriptSyntaxError, parse
from l4kit.drill.script.lexer import KEYWORDS
from l4kit.drill.script.model import (
    AnyValue,
    BitOr,
    Call,
    Code,
    Command,
    Event,
    EventTime,
    Expression,
    Field,
    IcmpPacket,
    IntValue,
    IpInfo,
    ListValue,
    Option,
    Script,
    StringValue,
    Struct,
    Syscall,
    TcpPacket,
    TimeKind,
    Word,
)
from l4kit.drill.script.options import written_length
from l4kit.drill.script.printer import format_script
from l4kit.wire.options import (
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
usecs = st.integers(0, 10**9)

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda word: word not in KEYWORDS and word != "sequence"
)
symbols = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True).filter(lambda word: word not in KEYWORDS)
safe_text = st.text(alphabet=string.ascii_letters + string.digits + " .,:;=+-_/()[]{}<>*", max_size=30)


def primaries(children: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
    fields = st.builds(Field, identifiers, children)
    struct_items = st.one_of(children, fields, st.builds(Field, identifiers, children, children))
    return st.one_of(
        st.builds(ListValue, st.lists(children, max_size=3).map(tuple)),
        st.builds(Struct, st.lists(struct_items, max_size=3).map(tuple)),
        st.builds(
            Call,
            st.sampled_from(["htons", "inet_addr", "inet6_addr"]),
            st.lists(children, max_size=2).map(tuple),
        ),
    )


leaves: st.SearchStrategy[Expression] = st.one_of(
    st.just(AnyValue()),
    st.builds(IntValue, st.integers(-(2**40), 2**40)),
    st.builds(IntValue, st.integers(0, 2**40), st.just(True)),
    st.builds(Word, identifiers),
    st.builds(StringValue, safe_text.filter(lambda t: '"' not in t), st.booleans()),
)
simple = st.recursive(leaves, primaries, max_leaves=8)


def or_chains(first: Expression, rest: list[Expression]) -> Expression:
    for item in rest:
        first = BitOr(first, item)
    return first


expressions = st.one_of(
    simple,
    st.builds(or_chains, simple, st.lists(simple, min_size=1, max_size=3)),
    st.builds(Field, identifiers, simple),
)

single_options: st.SearchStrategy[TcpOption] = st.one_of(
    st.just(NoOperation()),
    st.just(EndOfOptions()),
    st.builds(MaxSegmentSize, u16),
    st.builds(WindowScale, st.integers(0, 255)),
    st.just(SackPermitted()),
    st.builds(Sack, st.lists(st.tuples(u32, u32), min_size=1, max_size=3).map(tuple)),
    st.builds(Timestamps, u32, u32),
    st.builds(UnknownOption, st.just(34), st.binary(max_size=8)),
    st.builds(UnknownOption, st.just(254), st.binary(max_size=6).map(lambda b: b"\xf9\x89" + b)),
    st.builds(UnknownOption, st.just(19), st.binary(min_size=1, max_size=16)),
    st.builds(
        UnknownOption, st.integers(6, 255).filter(lambda k: k not in (8, 19, 34)), st.binary(max_size=6)
    ),
)


@st.composite
def option_lists(draw: st.DrawFn) -> tuple[TcpOption, ...]:
    """Options as scripts must write them: padded with nop to a multiple of 4, at most 40 octets."""
    options: list[TcpOption] = []
    for option in draw(st.lists(single_options, max_size=5)):
        if written_length((*options, option)) > 36:
            break
        options.append(option)
    while written_length(tuple(options)) % 4:
        options.append(NoOperation())
    return tuple(options)


flag_texts = st.sampled_from(
    ["S", "S.", ".", "P.", "F.", "FP.", "R", "R.", "", "SEW", "E.", "W.", "S.2", ".5"]
)
ip_infos = st.one_of(
    st.none(),
    st.builds(IpInfo, ecn=st.sampled_from(["noecn", "ect0", "ect1", "ce"])),
    st.builds(IpInfo, tos=st.integers(0, 255)),
    st.builds(IpInfo, ttl=st.integers(1, 255)),
    st.builds(IpInfo, ecn=st.sampled_from(["ect0", "ce"]), flow_label=st.integers(0, 0xFFFFF)),
    st.builds(IpInfo, flow_label=st.integers(0, 0xFFFFF)),
)


@st.composite
def tcp_packets(draw: st.DrawFn, inbound: bool) -> TcpPacket:
    seq = draw(u32)
    length = draw(st.integers(0, 2000))
    options = draw(option_lists()) if inbound else draw(st.one_of(st.none(), option_lists()))
    ip = draw(ip_infos)
    if not inbound and draw(st.booleans()):
        ip = IpInfo(ecn="ect01")
    return TcpPacket(
        "<" if inbound else ">",
        draw(flag_texts),
        seq,
        (seq + length) & 0xFFFFFFFF,
        length,
        ack=draw(st.none() | u32),
        window=draw(u16) if inbound else draw(st.none() | u16),
        urgent=draw(st.none() | u16),
        options=options,
        ip=ip,
        ports=draw(st.none() | st.tuples(u16, u16)),
    )


icmp_packets = st.builds(
    IcmpPacket,
    st.just("<"),
    st.sampled_from(["unreachable", "packet_too_big", "time_exceeded"]),
    st.none() | st.sampled_from(["frag_needed", "host_unreachable", "code_3"]),
    st.none() | u16,
    st.none() | u16,
    st.none()
    | st.builds(lambda s, n: ("tcp", s, (s + n) & 0xFFFFFFFF, n), u32, st.integers(0, 2000))
    | st.builds(lambda k, n: (k, 0, 0, n), st.sampled_from(["udp", "raw"]), u16),
)

syscalls = st.builds(
    Syscall,
    identifiers.filter(lambda w: w not in ("htons", "inet_addr", "inet6_addr")),
    st.lists(expressions, max_size=4).map(tuple),
    st.one_of(st.builds(IntValue, st.integers(-1, 2**31)), st.builds(Word, symbols)),
    st.none() | symbols,
    st.none()
    | st.lists(st.from_regex(r"[a-z][a-z]{0,8}", fullmatch=True), min_size=1, max_size=4).map(" ".join),
    st.none() | usecs,
)
commands = st.builds(Command, safe_text.filter(lambda t: "`" not in t and "\\" not in t))
codes = st.builds(
    Code,
    st.text(alphabet=string.ascii_letters + string.digits + " =+()\n", max_size=40)
    .map(lambda t: t.strip(" \t"))
    .filter(lambda t: "}%" not in t),
)


@st.composite
def events(draw: st.DrawFn, first: bool) -> Event:
    kind = draw(st.sampled_from(["in", "out", "icmp", "call", "command", "code"]))
    if kind == "out":
        action: object = draw(tcp_packets(inbound=False))
        time_kinds = [TimeKind.RELATIVE, TimeKind.ANY, TimeKind.RELATIVE_RANGE]
    else:
        action = {
            "in": lambda: draw(tcp_packets(inbound=True)),
            "icmp": lambda: draw(icmp_packets),
            "call": lambda: draw(syscalls),
            "command": lambda: draw(commands),
            "code": lambda: draw(codes),
        }[kind]()
        time_kinds = [TimeKind.RELATIVE]
    if first:
        time = EventTime(draw(st.sampled_from([TimeKind.ABSOLUTE, TimeKind.RELATIVE])), 0)
    else:
        time_kind = draw(st.sampled_from(time_kinds))
        start = draw(usecs)
        if time_kind == TimeKind.ANY:
            time = EventTime(TimeKind.ANY)
        elif time_kind == TimeKind.RELATIVE_RANGE:
            time = EventTime(time_kind, start, start + draw(usecs))
        else:
            time = EventTime(time_kind, start)
    return Event(0, time, action)  # type: ignore[arg-type]


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    first = draw(events(first=True))
    rest = draw(st.lists(events(first=False), max_size=6))
    options = draw(
        st.lists(
            st.builds(
                Option,
                st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda n: n != "define"),
                st.none() | st.from_regex(r"[a-z0-9_]{1,10}", fullmatch=True),
            ),
            max_size=3,
        )
    )
    init = draw(st.none() | commands)
    cleanup = draw(st.none() | commands)
    return Script(tuple([first, *rest]), tuple(options), init, cleanup)


def _without_lines(script: Script) -> tuple[object, ...]:
    return (
        tuple((e.time, e.action) for e in script.events),
        script.options,
        script.init_command,
        script.cleanup_command,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_print_parse_round_trip(script: Script) -> None:
    text = format_script(script)
    parsed = parse(text, "gen.pkt")
    assert _without_lines(parsed) == _without_lines(script), text
    # Printing again gives the same text: the printed form is canonical.
    assert format_script(parsed) == text


def _parse_or_syntax_error(text: str) -> None:
    try:
        script = parse(text, "fuzz.pkt")
    except ScriptSyntaxError as exc:
        lines = text.count("\n") + 1
        assert 1 <= exc.line <= lines, (exc.line, lines)
        assert str(exc).startswith(f"fuzz.pkt:{exc.line}: ")
        assert "\n" not in str(exc)
    else:
        assert script.events


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    _parse_or_syntax_error(text)


VOCABULARY = [
    "0",
    "+0",
    "+.1",
    "1.5",
    "*",
    "~",
    "+",
    "<",
    ">",
    "S",
    "S.",
    "P.",
    ".",
    "R",
    "F.",
    "-",
    "0:0(0)",
    "1:1001(1000)",
    "ack",
    "win",
    "urg",
    "1",
    "257",
    "<",
    ">",
    "<...>",
    "mss",
    "1460",
    "nop",
    ",",
    "sackOK",
    "wscale",
    "7",
    "sack",
    "1:2",
    "TS",
    "val",
    "ecr",
    "FO",
    "abcd",
    "FOEXP",
    "md5",
    "eol",
    "[ect0]",
    "(tos 0x10)",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    "=",
    "|",
    "...",
    "socket(..., SOCK_STREAM, IPPROTO_TCP)",
    "read",
    "write(4, ..., 10)",
    "= 3",
    "= -1",
    "EAGAIN",
    "(Resource temporarily unavailable)",
    "`true`",
    "%{ x = 1 }%",
    "--tolerance_usecs=1",
    "--define=A=B",
    "icmp",
    "unreachable",
    "frag_needed",
    "mtu",
    "[1:2(1)]",
    "udp",
    "GREv0",
    ":",
    "msg_iov(1)",
    "htons(1)",
    '"str"',
    "\n",
    "\n",
    "//c\n",
    "/*c*/",
    "0x10",
    "::1",
    "192.0.2.1",
    "ipv4",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40))
def test_token_soup_never_raises_anything_else(words: list[str]) -> None:
    _parse_or_syntax_error(" ".join(words))

"""The packetdrill language, parsed into :mod:`l4kit.drill.script.model` values.

Written from packetdrill's documentation and from how its scripts behave; the
grammar, in the order a script is written::

    script   := option* command? event+ command?
    option   := --name[=value]
    event    := time action
    time     := [+]secs | [+]secs~[+]secs | *            (secs: 1, 0.1, .1)
    action   := packet | syscall | `shell command` | %{ python }%
    packet   := (<|>) [ip-info] [sport>dport] flags start:end(len)
                [ack N] [win N] [urg N] [<option, ...> | <...>]
    syscall  := [...secs] name(arg, ...) = result [ERRNO] [(note)]

The first command, written before any event and without a time, runs before the
script starts; one written after the last event runs at the end. Every error is
a :class:`ScriptSyntaxError` naming the file and line; :func:`parse` raises
nothing else, whatever the input (a property test holds it to that).

Things packetdrill parses and l4kit does not run (UDP and ICMP packets,
encapsulations, AccECN options) become :class:`~l4kit.drill.script.model.Unsupported`
events, so the script parses and fails at that line with ``unsupported: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from l4kit.drill.script.errors import ScriptSyntaxError
from l4kit.drill.script.lexer import U16, U32, Token, TokenCursor, describe, tokenize
from l4kit.drill.script.model import (
    Action,
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
    Unsupported,
    Word,
)
from l4kit.drill.script.options import read_options, written_length
from l4kit.wire.options import TcpOption

_T = TypeVar("_T")

MAX_TCP_HEADER = 60
_VALID_FLAGS = ".FSRPEWAU01234567"
_ECN_FLAGS = "EWA"
_ACE_FLAGS = "01234567"
_ECN_WORDS = ("noecn", "ect0", "ect1", "ce", "ect01")
_CALLS = ("htons", "inet_addr", "inet6_addr")


def parse(text: str, path: str = "<script>", defines: Mapping[str, str] | None = None) -> Script:
    """Parse a script. ``defines`` are ``-D NAME=VALUE`` definitions; ``--define``
    lines in the script add to them (the command line wins, as in packetdrill)."""
    try:
        script = _Parser(tokenize(text, path, defines), path).script()
        extra = _script_defines(script)
        if extra:
            merged = {**extra, **(defines or {})}
            script = _Parser(tokenize(text, path, merged), path).script()
        return script
    except ScriptSyntaxError:
        raise
    except RecursionError:
        raise ScriptSyntaxError(path, 1, "expressions nested too deeply") from None


def _script_defines(script: Script) -> dict[str, str]:
    found = {}
    for option in script.options:
        if option.name == "define" and option.value and "=" in option.value:
            name, _, value = option.value.partition("=")
            found[name] = value
    return found


def parse_time_text(text: str) -> int | None:
    """Seconds as written (``1``, ``0.1``, ``.1``) to microseconds, exactly; ``None`` if negative."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value < 0:
        return None
    return int(value * 1_000_000)


class _Parser(TokenCursor):
    # ------------------------------------------------------------ script

    def script(self) -> Script:
        options = []
        while self.peek().kind == "OPTION":
            options.append(self.option())
        init = None
        if self.peek().kind == "BACKQ":
            init = Command(str(self.next().value))
        events: list[Event] = []
        cleanup = None
        while self.peek().kind != "EOF":
            if self.peek().kind == "BACKQ":
                token = self.next()
                cleanup = Command(str(token.value))
                if self.peek().kind != "EOF":
                    self.fail(
                        "a command without a time runs after the last event and must end the script "
                        f"(found {describe(self.peek())} after it)",
                        token,
                    )
                break
            events.append(self.event())
        if not events:
            self.fail("a script needs at least one event (a time, then a packet, call, command or code)")
        self.check_times(events)
        return Script(tuple(events), tuple(options), init, cleanup, path=self.path)

    def check_times(self, events: list[Event]) -> None:
        first = events[0]
        if first.time.kind != TimeKind.ANY and first.time.start_us != 0:
            raise ScriptSyntaxError(self.path, first.line, "the first event should be at time 0")
        last_absolute: Event | None = None
        for event in events:
            if event.time.kind in (TimeKind.ABSOLUTE, TimeKind.ABSOLUTE_RANGE):
                if last_absolute is not None and event.time.start_us < last_absolute.time.start_us:
                    raise ScriptSyntaxError(
                        self.path,
                        event.line,
                        f"time goes backward in script from {last_absolute.time.start_us} usec "
                        f"to {event.time.start_us} usec",
                    )
                last_absolute = event
            else:
                last_absolute = None

    def option(self) -> Option:
        token = self.next()
        name = str(token.value)
        if self.peek().kind != "=" or self.peek().line != token.line:
            return Option(name)
        self.next()
        value = self.peek()
        if value.kind in ("EOF", "BACKQ", "CODE") or value.line != token.line:
            self.fail(f"option --{name}= has no value", token)
        self.next()
        text = value.text if value.kind not in ("STRING",) else str(value.value)
        if value.kind in ("WORD", "KW") and self.peek().kind == "=" and self.peek().line == token.line:
            self.next()
            rhs = self.next()
            if rhs.kind == "EOF":
                self.fail(f"option --{name}={text}= has no value", token)
            text = f"{text}={rhs.text}"
        return Option(name, text)

    # ------------------------------------------------------------ events

    def event(self) -> Event:
        start = self.peek()
        time = self.event_time()
        token = self.peek()
        action: Action
        if token.kind in ("<", ">"):
            action = self.packet()
        elif token.kind in ("WORD", "KW", "ELLIPSIS"):
            action = self.syscall()
        elif token.kind == "BACKQ":
            action = Command(str(self.next().value))
        elif token.kind == "CODE":
            action = Code(str(self.next().value))
        else:
            self.fail(
                f"expected a packet (< or >), a system call, a `command` or %{{ code }}% "
                f"after the time, found {describe(token)}"
            )
        outbound_packet = isinstance(action, (TcpPacket, IcmpPacket)) and not action.inbound
        if isinstance(action, Unsupported) and action.text.lstrip().startswith(">"):
            outbound_packet = True
        if time.kind == TimeKind.ANY and not outbound_packet:
            raise ScriptSyntaxError(
                self.path, start.line, "event time * can only be used with outbound packets"
            )
        if time.kind in (TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE) and not outbound_packet:
            raise ScriptSyntaxError(
                self.path, start.line, "event time range can only be used with outbound packets"
            )
        return Event(start.line, time, action)

    def time_value(self) -> int:
        token = self.peek()
        if token.kind not in ("INT", "FLOAT"):
            self.fail(f"expected a time in seconds but found {describe(token)}", token)
        self.next()
        usecs = parse_time_text(token.text)
        if usecs is None:
            self.fail("negative time", token)
        return usecs

    def event_time(self) -> EventTime:
        token = self.peek()
        if token.kind == "*":
            self.next()
            return EventTime(TimeKind.ANY)
        if token.kind == "+":
            self.next()
            start = self.time_value()
            if self.peek().kind == "~":
                self.next()
                self.expect("+", "'+' (a relative range is written +a~+b)")
                end = self.time_value()
                self.check_range(token, start, end)
                return EventTime(TimeKind.RELATIVE_RANGE, start, end)
            return EventTime(TimeKind.RELATIVE, start)
        if token.kind in ("INT", "FLOAT"):
            start = self.time_value()
            if self.peek().kind == "~":
                self.next()
                end = self.time_value()
                self.check_range(token, start, end)
                return EventTime(TimeKind.ABSOLUTE_RANGE, start, end)
            return EventTime(TimeKind.ABSOLUTE, start)
        self.fail(f"expected an event time (0, +.1, 1.5~2, *) but found {describe(token)}", token)

    def check_range(self, token: Token, start: int, end: int) -> None:
        if end < start:
            self.fail("time range is backwards", token)

    def skip_event(self, first: Token, what: str) -> Unsupported:
        """Consume the rest of an event l4kit does not run: the tokens on its line,
        and further lines while brackets are open."""
        depth = 0
        start = self.pos
        while True:
            token = self.peek()
            if token.kind == "EOF" or (depth <= 0 and token.line != first.line and self.pos > start):
                break
            if token.kind in "([{":
                depth += 1
            elif token.kind in ")]}":
                depth -= 1
            self.next()
        text = " ".join(t.text for t in self.tokens[start : self.pos])
        return Unsupported(what, text)

    # ------------------------------------------------------------ packets

    def icmp(self, direction_token: Token, ip: IpInfo | None) -> IcmpPacket:
        self.next()
        type_token = self.peek()
        if type_token.kind != "WORD":
            self.fail(
                f"expected an ICMP type (unreachable, packet_too_big...) but found {describe(type_token)}"
            )
        self.next()
        code = None
        if self.peek().kind == "WORD" and self.peek().line == direction_token.line:
            code = self.next().text
        mtu = self.keyword_integer("mtu", "ICMP MTU", U32)
        echo_id = self.keyword_integer("id", "ICMP echo id", U16)
        echoed = None
        if self.peek().kind == "[" and self.peek().line == direction_token.line:
            self.next()
            token = self.peek()
            if token.is_kw("udp") or token.is_kw("raw"):
                self.next()
                self.expect("(", "'(' and a length")
                length = self.integer("payload length", 0, U16)
                self.expect(")", "')'")
                echoed = (token.text, 0, 0, length)
            else:
                echoed = ("tcp", *self.sequence_range())
            self.expect("]", "']' after the echoed packet")
        return IcmpPacket(
            "<" if direction_token.kind == "<" else ">", type_token.text, code, mtu, echo_id, echoed, ip
        )

    def keyword_integer(self, word: str, what: str, high: int) -> int | None:
        """``word N`` (N from 0 to ``high``), or ``None`` when the next token is not ``word``."""
        if not self.peek().is_kw(word):
            return None
        self.next()
        return self.integer(what, 0, high)

    def sequence_range(self) -> tuple[int, int, int]:
        """``start:end(length)``, whose end must be start + length (modulo 2**32)."""
        token = self.peek()
        seq = self.integer("start sequence number", 0, U32)
        self.expect(":", "':' (sequence numbers are written start:end(length))")
        end = self.integer("end sequence number", 0, U32)
        self.expect("(", "'(' (sequence numbers are written start:end(length))")
        length = self.integer("payload length", 0, U16)
        self.expect(")", "')'")
        if end != (seq + length) & U32:
            self.fail(f"inconsistent TCP sequence numbers and payload size: {seq}:{end}({length})", token)
        return seq, end, length

    def packet(self) -> TcpPacket | IcmpPacket | Unsupported:
        direction_token = self.peek()
        direction = direction_token.kind
        start = self.pos
        self.next()
        token = self.peek()
        for word, what in (
            ("ipv4", "IPv4 encapsulation"),
            ("ipv6", "IPv6 encapsulation"),
            ("GREv0", "GRE packets"),
            ("gre", "GRE packets"),
            ("mpls", "MPLS packets"),
        ):
            if token.is_kw(word):
                self.pos = start
                return self.skip_event(direction_token, what)
        ip = None
        if token.kind in ("(", "["):
            ip = self.ip_info()
        token = self.peek()
        if token.is_kw("icmp"):
            return self.icmp(direction_token, ip)
        for word, what in (("udp", "UDP packets"), ("encap", "PSP encapsulation")):
            if token.is_kw(word):
                self.pos = start
                return self.skip_event(direction_token, what)
        ports = None
        if token.kind == "INT" and self.peek(1).kind == ">":
            sport = self.integer("source port", 0, U16)
            self.next()
            dport = self.integer("destination port", 0, U16)
            ports = (sport, dport)
        flags = self.flags()
        seq, end, length = self.sequence_range()
        ack = self.keyword_integer("ack", "ack", U32)
        window = self.keyword_integer("win", "window", U16)
        urgent = self.keyword_integer("urg", "urgent pointer", U16)
        options: tuple[TcpOption, ...] | None = ()
        if self.peek().kind == "<" and self.peek().line == direction_token.line:
            options_token = self.next()
            if self.peek().kind == "ELLIPSIS":
                self.next()
                options = None
                if direction == "<":
                    self.fail("<...> for TCP options can only be used with outbound packets", options_token)
            else:
                parsed = read_options(self)
                if isinstance(parsed, Unsupported):
                    self.pos = start
                    return self.skip_event(direction_token, parsed.what)
                options = parsed
            self.expect(">", "'>' to end the TCP options")
        if direction == "<" and window is None:
            self.fail("window must be specified for inbound packets", direction_token)
        if ip is not None and ip.ecn == "ect01" and direction == "<":
            self.fail("[ect01] can only be used with outbound packets", direction_token)
        if options:
            size = written_length(options)
            if size % 4:
                self.fail(
                    "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: "
                    f"{size % 4} excess bytes",
                    direction_token,
                )
            if 20 + size > MAX_TCP_HEADER:
                self.fail(f"TCP header too large ({20 + size} octets of header)", direction_token)
        return TcpPacket(
            direction="<" if direction == "<" else ">",
            flags=flags,
            seq=seq,
            end_seq=end,
            payload_len=length,
            ack=ack,
            window=window,
            urgent=urgent,
            options=options,
            ip=ip,
            ports=ports,
        )

    def ip_info(self) -> IpInfo:
        opening = self.next()
        closing = ")" if opening.kind == "(" else "]"
        ecn = tos = flow_label = ttl = None
        token = self.peek()
        if token.kind == "KW" and token.text in _ECN_WORDS:
            ecn = self.next().text
        elif token.is_kw("tos"):
            self.next()
            tos_token = self.peek()
            if tos_token.kind != "HEX":
                self.fail(f"expected the TOS byte in hex (tos 0x10) but found {describe(tos_token)}")
            tos = self.integer("tos", 0, 0xFF)
        elif token.is_kw("ttl"):
            self.next()
            ttl = self.integer("ttl", 0, 0xFF)
        if ttl is None and (ecn is not None or tos is not None) and self.peek().kind == ",":
            self.next()
            if not self.peek().is_kw("flowlabel"):
                self.fail(f"expected 'flowlabel' but found {describe(self.peek())}")
        if ttl is None and self.peek().is_kw("flowlabel"):
            self.next()
            if self.peek().kind != "HEX":
                self.fail(f"expected the flow label in hex (flowlabel 0x1) but found {describe(self.peek())}")
            flow_label = self.integer("flowlabel", 0, 0xFFFFF)
        if ecn is None and tos is None and flow_label is None and ttl is None:
            self.fail(
                f"expected ECN (noecn, ect0, ect1, ce, ect01), 'tos 0x..', 'ttl N' or 'flowlabel 0x..' "
                f"but found {describe(self.peek())}"
            )
        self.expect(closing, f"'{closing}'")
        return IpInfo(ecn=ecn, tos=tos, flow_label=flow_label, ttl=ttl)

    def flags(self) -> str:
        token = self.peek()
        text: str
        if token.kind == "WORD":
            self.next()
            text = token.text
            follow = self.peek()
            if follow.kind == "." and follow.line == token.line:
                self.next()
                text += "."
            elif follow.kind == "FLOAT" and follow.text.startswith(".") and follow.line == token.line:
                self.next()
                text += follow.text
        elif token.kind == ".":
            self.next()
            text = "."
        elif token.kind == "FLOAT" and token.text.startswith("."):
            self.next()
            text = token.text
        elif token.kind == "-":
            self.next()
            text = ""
        else:
            self.fail(f"expected TCP flags (S, S., P., F., R, ., -) but found {describe(token)}", token)
        has_ecn = has_ace = False
        for ch in text:
            if ch not in _VALID_FLAGS:
                self.fail(f"Invalid TCP flag: '{ch}'", token)
            if ch in _ECN_FLAGS:
                if has_ace:
                    self.fail(f"Conflicting TCP flag: '{ch}'", token)
                has_ecn = True
            if ch in _ACE_FLAGS:
                if has_ecn or has_ace:
                    self.fail(f"Conflicting TCP flag: '{ch}'", token)
                has_ace = True
        return text

    # ------------------------------------------------------------ system calls

    def syscall(self) -> Syscall:
        end_us = None
        if self.peek().kind == "ELLIPSIS":
            self.next()
            end_us = self.time_value()
        name_token = self.peek()
        if name_token.kind not in ("WORD", "KW"):
            self.fail(f"expected a system call name but found {describe(name_token)}", name_token)
        self.next()
        self.expect("(", f"'(' after {name_token.text}")
        args = self.comma_list(self.expression, ")")
        self.expect(")", f"')' or ',' in the arguments of {name_token.text}")
        self.expect("=", f"'=' and the expected result of {name_token.text}")
        result = self.expression()
        errno = note = None
        if self.peek().kind == "WORD":
            errno = self.next().text
        if self.peek().kind == "(":
            note = self.note()
        return Syscall(name_token.text, tuple(args), result, errno, note, end_us)

    def comma_list(self, item: Callable[[], _T], closing: str) -> list[_T]:
        """Items separated by commas, up to the ``closing`` token (not taken): none when
        it comes first."""
        items: list[_T] = []
        if self.peek().kind != closing:
            items.append(item())
            while self.peek().kind == ",":
                self.next()
                items.append(item())
        return items

    def note(self) -> str:
        opening = self.next()
        words = []
        depth = 1
        while True:
            token = self.peek()
            if token.kind == "EOF":
                self.fail("the note in parentheses is never closed", opening)
            self.next()
            if token.kind == "(":
                depth += 1
            elif token.kind == ")":
                depth -= 1
                if depth == 0:
                    break
            words.append(token.text)
        return " ".join(words)

    def expression(self) -> Expression:
        lhs = self.primary()
        while self.peek().kind == "|":
            self.next()
            lhs = BitOr(lhs, self.primary())
        return lhs

    def primary(self) -> Expression:
        token = self.peek()
        kind = token.kind
        if kind == "ELLIPSIS":
            self.next()
            return AnyValue()
        if kind in ("INT", "HEX"):
            self.next()
            assert isinstance(token.value, int)
            return IntValue(token.value, hex=kind == "HEX")
        if kind == "STRING":
            text = ""
            while self.peek().kind == "STRING":
                text += str(self.next().value)
            if self.peek().kind == "ELLIPSIS":
                self.next()
                return StringValue(text, ellipsis=True)
            return StringValue(text)
        if kind in ("WORD", "KW"):
            self.next()
            if self.peek().kind == "=":
                self.next()
                return Field(token.text, self.expression())
            if self.peek().kind == "(" and token.text in _CALLS:
                self.next()
                args = self.comma_list(self.expression, ")")
                self.expect(")", f"')' after the arguments of {token.text}")
                return Call(token.text, tuple(args))
            return Word(token.text)
        if kind == "[":
            self.next()
            items = self.comma_list(self.expression, "]")
            self.expect("]", "']' or ',' in a list")
            return ListValue(tuple(items))
        if kind == "{":
            self.next()
            fields = self.comma_list(self.struct_item, "}")
            self.expect("}", "'}' or ',' in a structure")
            return Struct(tuple(fields))
        self.fail(
            f"expected a value (a number, a symbol, ..., [..], {{..}}) but found {describe(token)}", token
        )

    def struct_item(self) -> Expression | Field:
        token = self.peek()
        if token.kind in ("WORD", "KW") and self.peek(1).kind == "(" and token.text not in _CALLS:
            # msg_name(...)=..., msg_iov(1)=[...]
            self.next()
            self.next()
            arg = self.expression()
            self.expect(")", "')'")
            self.expect("=", f"'=' after {token.text}(...)")
            return Field(token.text, self.expression(), arg)
        return self.expression()

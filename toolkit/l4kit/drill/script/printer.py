"""Scripts back to text, in packetdrill's notation.

``parse(format_script(s)) == s`` for every script the parser can build (the
property tests check it); the text is canonical, not a copy of the source:
times as ``0.1`` rather than ``.100``, one event a line, options as
:mod:`l4kit.drill.script.options` writes them. The same functions print the packets a
stack actually sent, so expected and actual lines read alike.
"""

from __future__ import annotations

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
    Script,
    StringValue,
    Struct,
    Syscall,
    TcpPacket,
    TimeKind,
    Unsupported,
    Word,
)
from l4kit.drill.script.options import format_options


def format_seconds(usecs: int) -> str:
    """Microseconds as the language writes seconds: ``0``, ``1``, ``0.1``, ``0.000250``."""
    sign = "-" if usecs < 0 else ""
    secs, frac = divmod(abs(usecs), 1_000_000)
    if not frac:
        return f"{sign}{secs}"
    return f"{sign}{secs}.{frac:06d}".rstrip("0")


def format_time(time: EventTime) -> str:
    if time.kind == TimeKind.ANY:
        return "*"
    start = format_seconds(time.start_us)
    end = format_seconds(time.end_us or 0)
    if time.kind == TimeKind.RELATIVE:
        return f"+{start}"
    if time.kind == TimeKind.ABSOLUTE_RANGE:
        return f"{start}~{end}"
    if time.kind == TimeKind.RELATIVE_RANGE:
        return f"+{start}~+{end}"
    return start


def format_ip_info(ip: IpInfo) -> str:
    if ip.ttl is not None:
        return f"(ttl {ip.ttl})"
    parts = []
    if ip.ecn is not None:
        parts.append(ip.ecn)
    elif ip.tos is not None:
        parts.append(f"tos {ip.tos:#04x}")
    if ip.flow_label is not None:
        parts.append(f"flowlabel {ip.flow_label:#x}")
    inner = ", ".join(parts)
    return f"[{inner}]" if ip.ecn is not None else f"({inner})"


def format_packet(packet: TcpPacket) -> str:
    """``< S 0:0(0) win 32792 <mss 1000,nop,wscale 7>``."""
    parts: list[str] = [packet.direction]
    if packet.ip is not None:
        parts.append(format_ip_info(packet.ip))
    if packet.ports is not None:
        parts.append(f"{packet.ports[0]}>{packet.ports[1]}")
    parts.append(packet.flags or "-")
    parts.append(f"{packet.seq}:{packet.end_seq}({packet.payload_len})")
    if packet.ack is not None:
        parts.append(f"ack {packet.ack}")
    if packet.window is not None:
        parts.append(f"win {packet.window}")
    if packet.urgent is not None:
        parts.append(f"urg {packet.urgent}")
    options = format_options(packet.options)
    if options:
        parts.append(options)
    return " ".join(parts)


def format_icmp(packet: IcmpPacket) -> str:
    """``< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]``."""
    parts: list[str] = [packet.direction]
    if packet.ip is not None:
        parts.append(format_ip_info(packet.ip))
    parts += ["icmp", packet.icmp_type]
    if packet.code is not None:
        parts.append(packet.code)
    if packet.mtu is not None:
        parts.append(f"mtu {packet.mtu}")
    if packet.echo_id is not None:
        parts.append(f"id {packet.echo_id}")
    if packet.echoed is not None:
        kind, start, end, length = packet.echoed
        parts.append(f"[{start}:{end}({length})]" if kind == "tcp" else f"[{kind} ({length})]")
    return " ".join(parts)


def format_expression(expr: Expression) -> str:
    if isinstance(expr, AnyValue):
        return "..."
    if isinstance(expr, IntValue):
        if expr.hex and expr.value >= 0:
            return f"{expr.value:#x}"
        return str(expr.value)
    if isinstance(expr, Word):
        return expr.name
    if isinstance(expr, StringValue):
        return f'"{expr.text}"' + ("..." if expr.ellipsis else "")
    if isinstance(expr, BitOr):
        return f"{format_expression(expr.lhs)}|{format_expression(expr.rhs)}"
    if isinstance(expr, ListValue):
        return "[" + ", ".join(format_expression(item) for item in expr.items) + "]"
    if isinstance(expr, Struct):
        return "{" + ", ".join(format_expression(item) for item in expr.items) + "}"
    if isinstance(expr, Field):
        arg = f"({format_expression(expr.arg)})" if expr.arg is not None else ""
        return f"{expr.name}{arg}={format_expression(expr.value)}"
    if isinstance(expr, Call):
        return f"{expr.name}(" + ", ".join(format_expression(arg) for arg in expr.args) + ")"
    raise TypeError(f"not an expression: {expr!r}")


def format_syscall(call: Syscall) -> str:
    end = f"...{format_seconds(call.end_us)} " if call.end_us is not None else ""
    args = ", ".join(format_expression(arg) for arg in call.args)
    text = f"{end}{call.name}({args}) = {format_expression(call.result)}"
    if call.errno is not None:
        text += f" {call.errno}"
    if call.note is not None:
        text += f" ({call.note})"
    return text


def format_action(action: TcpPacket | IcmpPacket | Syscall | Command | Code | Unsupported) -> str:
    if isinstance(action, TcpPacket):
        return format_packet(action)
    if isinstance(action, IcmpPacket):
        return format_icmp(action)
    if isinstance(action, Syscall):
        return format_syscall(action)
    if isinstance(action, Command):
        return f"`{action.text}`"
    if isinstance(action, Code):
        return f"%{{ {action.text} }}%"
    return action.text


def format_event(event: Event) -> str:
    action = event.action
    # A blocking call's end time follows its start time directly: "+0...0.1 read(...)".
    separator = "" if isinstance(action, Syscall) and action.end_us is not None else " "
    return f"{format_time(event.time)}{separator}{format_action(action)}"


def format_script(script: Script) -> str:
    lines = []
    for option in script.options:
        lines.append(f"--{option.name}" + (f"={option.value}" if option.value is not None else ""))
    if script.init_command is not None:
        lines.append(f"`{script.init_command.text}`")
    lines.extend(format_event(event) for event in script.events)
    if script.cleanup_command is not None:
        lines.append(f"`{script.cleanup_command.text}`")
    return "\n".join(lines) + "\n"

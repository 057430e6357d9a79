"""The packetdrill language and the pure rules of running it: nothing here does I/O."""

from l4kit.drill.script.errors import ScriptSyntaxError
from l4kit.drill.script.model import Event, EventTime, Script, Syscall, TcpPacket, TimeKind
from l4kit.drill.script.parser import parse
from l4kit.drill.script.printer import format_event, format_packet, format_script

__all__ = [
    "Event",
    "EventTime",
    "Script",
    "ScriptSyntaxError",
    "Syscall",
    "TcpPacket",
    "TimeKind",
    "format_event",
    "format_packet",
    "format_script",
    "parse",
]

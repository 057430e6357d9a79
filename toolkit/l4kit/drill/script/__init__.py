"""The packetdrill language and the pure rules of running it: nothing here does I/O.

* :mod:`~l4kit.drill.script.lexer` and :mod:`~l4kit.drill.script.parser` read a script
  into :mod:`~l4kit.drill.script.model` values, which :mod:`~l4kit.drill.script.printer`
  writes back in packetdrill's notation; :mod:`~l4kit.drill.script.errors` holds the one
  error a script's text can raise;
* :mod:`~l4kit.drill.script.options`: TCP options in the language, read and written in
  one place for the parser, the printer and the packet checks;
* :mod:`~l4kit.drill.script.session`: the rules of a run that do not depend on the stack
  under test (sequence-number mapping, packet and time checks);
* :mod:`~l4kit.drill.script.symbols`: Linux's names for the numbers in system calls;
* :mod:`~l4kit.drill.script.wirepacket`: TCP/IP packets as a run sees them.
"""

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

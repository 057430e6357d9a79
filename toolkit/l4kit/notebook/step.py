"""What one step did (:class:`Step`), and the words the steps are told in.

Flag and option names, the stories of the state changes, segment labels and payload
previews: the text helpers of the stepper and the diagram.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Final

from scapy.packet import Packet

from l4kit.core import Event, State
from l4kit.notebook.scenario import CLIENT_SIDE, SERVER_SIDE, StateChange
from l4kit.notebook.working import ChecksumWorking
from l4kit.wire import Segment, SeqNum, TcpFlags, TcpOption
from l4kit.wire.options import MaxSegmentSize, SackPermitted, Timestamps, WindowScale


@dataclass(frozen=True, slots=True)
class Step:
    """What one call of :meth:`Stepper.step` did.

    ``direction`` is ``"c2s"`` (client to server), ``"s2c"``, or ``"timer"`` for
    the step in which time passes and TIME-WAIT ends (then ``packet``,
    ``segment``, ``checksum`` and ``scapy`` are ``None``). ``packet`` is the
    built Scapy packet (lengths and checksums filled in, as a capture would
    show it) and ``scapy`` the Python line that makes it. ``arithmetic`` says
    what the sequence and acknowledgment numbers mean; ``story`` what the state
    changes mean; ``notes`` what the core reported (its reasons, drops);
    ``in_flight`` what is on the wire afterwards, oldest first; ``events`` the
    core's own events of this step. ``sent_at`` is the number of the step in
    which the segment was put on the wire (0: before the first step; None:
    sent by hand and delivered at once), so a drawing can start its arrow there.
    """

    number: int
    label: str
    direction: str
    time: float
    client: StateChange
    server: StateChange
    packet: Packet | None = None
    segment: Segment | None = None
    scapy: str | None = None
    arithmetic: tuple[str, ...] = ()
    story: tuple[str, ...] = ()
    checksum: ChecksumWorking | None = None
    notes: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()
    sender_state_now: State | None = None
    sent_at: int | None = None
    events: tuple[Event, ...] = field(default=(), repr=False)

    @property
    def sender(self) -> str | None:
        return {"c2s": CLIENT_SIDE, "s2c": SERVER_SIDE}.get(self.direction)

    @property
    def flags(self) -> str:
        return self.segment.flags.letters if self.segment is not None else ""

    @property
    def title(self) -> str:
        if self.segment is None:
            return f"Step {self.number}: {self.label}"
        who = "client → server" if self.direction == "c2s" else "server → client"
        return f"Step {self.number}: {self.label} ({who}, {self.segment.source} > {self.segment.destination})"

    def state_text(self, side: str) -> str:
        """``side``'s state change in words; for the sender, also its state now if it moved on
        after sending this segment (the package docstring, l4kit.notebook, says why that happens)."""
        change = self.client if side == CLIENT_SIDE else self.server
        now = self.sender_state_now
        if side == self.sender and now is not None and now is not change.after:
            return f"{change} when it sent this (now {now})"
        return str(change)

    def header_fields(self) -> list[tuple[str, str]]:
        """``(name, value)`` of the TCP fields worth reading in this step."""
        seg = self.segment
        if seg is None:
            return []
        fields = [
            ("flags", f"{seg.flags.letters or '.'} ({_flag_names(seg.flags)})"),
            ("seq", str(seg.seq.value)),
            (
                "ack",
                str(seg.ack.value) if seg.flags & TcpFlags.ACK else f"{seg.ack.value} (ACK flag off: unused)",
            ),
            ("data", f"{len(seg.payload)} octets {seg.payload!r}" if seg.payload else "none"),
            ("window", str(seg.window)),
        ]
        if seg.options:
            fields.append(("options", ", ".join(_option_text(o) for o in seg.options)))
        return fields

    def lines(self) -> list[str]:
        """The step as text: the same content as the HTML form."""
        out = [self.title]
        out += [f"  {name:<8} {value}" for name, value in self.header_fields()]
        out.append(f"  client   {self.state_text(CLIENT_SIDE)}")
        out.append(f"  server   {self.state_text(SERVER_SIDE)}")
        out += [f"  · {sentence}" for sentence in self.story]
        out += [f"  # {sentence}" for sentence in self.arithmetic]
        if self.checksum is not None:
            c = self.checksum
            verdict = "equal" if c.agrees else "DIFFERENT"
            out.append(f"  checksum l4kit 0x{c.l4kit:04x}, Scapy 0x{c.scapy:04x}: {verdict} ({c.status})")
        out += [f"  {note}" for note in self.notes]
        if self.in_flight:
            out.append("  on the wire now: " + "; ".join(self.in_flight))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        colour = {"c2s": "#1f77b4", "s2c": "#9467bd"}.get(self.direction, "#7f7f7f")
        e = html.escape
        parts = [
            f'<div style="border-left:4px solid {colour};padding:2px 10px;margin:4px 0">',
            f"<b>{e(self.title)}</b>",
            '<table style="margin:4px 0">',
        ]
        parts += [
            f'<tr><td style="text-align:left"><b>{e(k)}</b></td><td style="text-align:left">{e(v)}</td></tr>'
            for k, v in self.header_fields()
        ]
        for side, change in ((CLIENT_SIDE, self.client), (SERVER_SIDE, self.server)):
            text = e(self.state_text(side))
            shown = f"<b>{text}</b>" if change.changed else text
            parts.append(
                f'<tr><td style="text-align:left"><b>{side}</b></td>'
                f'<td style="text-align:left">{shown}</td></tr>'
            )
        parts.append("</table>")
        if self.story or self.arithmetic:
            parts.append('<ul style="margin:2px 0">')
            parts += [f"<li>{e(s)}</li>" for s in self.story]
            parts += [
                f"<li><code>{e(s.split(':', 1)[0])}</code>:{e(s.split(':', 1)[1])}</li>"
                if ":" in s
                else f"<li>{e(s)}</li>"
                for s in self.arithmetic
            ]
            parts.append("</ul>")
        if self.checksum is not None:
            c = self.checksum
            mark = "✓" if c.agrees else "✗"
            parts.append(
                f"<div>checksum: l4kit <code>0x{c.l4kit:04x}</code>, Scapy <code>0x{c.scapy:04x}</code> "
                f"{mark} ({e(str(c.status))})</div>"
            )
        parts += [f"<div><i>{e(n)}</i></div>" for n in self.notes]
        if self.in_flight:
            parts.append(f"<div>on the wire now: {e('; '.join(self.in_flight))}</div>")
        parts.append("</div>")
        return "".join(parts)


# ---------------------------------------------------------------- words


_TRANSITION_STORIES: Final[dict[tuple[State, State], str]] = {
    (State.CLOSED, State.SYN_SENT): (
        "{Who} opens the connection (active open, RFC 9293 §3.10.1): it sends a SYN and waits in "
        "SYN-SENT for the server's SYN-ACK."
    ),
    (State.LISTEN, State.SYN_RECEIVED): (
        "{Who} was listening on the port; a SYN arrived (passive open), so it creates a connection, "
        "answers with a SYN-ACK and waits in SYN-RECEIVED for the ACK that ends the handshake."
    ),
    (State.SYN_SENT, State.ESTABLISHED): (
        "{Who}'s SYN is acknowledged and the server's SYN has arrived: for the client the connection "
        "is open (ESTABLISHED); its ACK will tell the server."
    ),
    (State.SYN_RECEIVED, State.ESTABLISHED): (
        "The ACK acknowledges {who}'s SYN: the three-way handshake is complete, both sides are ESTABLISHED."
    ),
    (State.ESTABLISHED, State.FIN_WAIT_1): (
        "{Who} has nothing more to send: it sends a FIN and waits in FIN-WAIT-1 for it to be acknowledged."
    ),
    (State.ESTABLISHED, State.CLOSE_WAIT): (
        "{Who} received a FIN: the other side will send no more data, but {who} can still send "
        "(CLOSE-WAIT, waiting for its own application to close)."
    ),
    (State.FIN_WAIT_1, State.FIN_WAIT_2): (
        "{Who}'s FIN is acknowledged; it waits in FIN-WAIT-2 for the other side's FIN."
    ),
    (State.FIN_WAIT_1, State.CLOSING): (
        "{Who} received a FIN before its own FIN was acknowledged: both sides are closing at once "
        "(simultaneous close, CLOSING)."
    ),
    (State.FIN_WAIT_1, State.TIME_WAIT): (
        "The segment acknowledges {who}'s FIN and carries the other side's FIN: {who} acknowledges it and "
        "waits in TIME-WAIT (RFC 9293 §3.6.1)."
    ),
    (State.FIN_WAIT_2, State.TIME_WAIT): (
        "The other side's FIN arrived: {who} acknowledges it and waits in TIME-WAIT (RFC 9293 §3.6.1)."
    ),
    (State.CLOSING, State.TIME_WAIT): "{Who}'s FIN is acknowledged: TIME-WAIT (RFC 9293 §3.6.1).",
    (State.CLOSE_WAIT, State.LAST_ACK): (
        "{Who} closes too (nc exits once it has read to the end): its FIN goes out and it waits in "
        "LAST-ACK for the acknowledgment."
    ),
    (
        State.LAST_ACK,
        State.CLOSED,
    ): "{Who}'s FIN is acknowledged: the connection is gone on {who}'s side (CLOSED).",
    (State.TIME_WAIT, State.CLOSED): "{Who}'s TIME-WAIT is over: it forgets the connection (CLOSED).",
}


def _stories(side: str, change: StateChange) -> list[str]:
    if not change.changed:
        return []
    who = "The client" if side == CLIENT_SIDE else "The server"
    template = _TRANSITION_STORIES.get((change.before, change.after))
    if template is None and change.after is State.CLOSED:
        template = (
            "{Who}'s connection is aborted: it is gone at once, without the FIN exchange "
            "(a RST, or the core gave up)."
        )
    if template is None:
        return [f"{who} moves from {change.before} to {change.after}."]
    return [template.format(Who=who, who=who.lower())]


def _label_flags(seg: Segment, sender: str) -> str:
    flags = seg.flags
    if flags & TcpFlags.RST:
        return "RST-ACK" if flags & TcpFlags.ACK else "RST"
    if flags & TcpFlags.SYN:
        return "SYN-ACK" if flags & TcpFlags.ACK else "SYN"
    if flags & TcpFlags.FIN:
        base = "FIN-ACK" if flags & TcpFlags.ACK else "FIN"
        return f"data + {base}" if seg.payload else base
    if seg.payload:
        return "data" if sender == CLIENT_SIDE else "reply"
    return "ACK" if flags & TcpFlags.ACK else "no flags"


def _flag_names(flags: TcpFlags) -> str:
    """The names of the set bits joined by ``+`` (``SYN+ACK``), in bit order."""
    return "+".join(str(bit.name) for bit in TcpFlags if flags & bit) or "none"


def _option_text(option: TcpOption) -> str:
    """An option in Scapy's words (``TCP(options=[("MSS", 1460)])``)."""
    match option:
        case MaxSegmentSize(value=value):
            return f"MSS {value}"
        case WindowScale(shift=shift):
            return f"WScale {shift}"
        case SackPermitted():
            return "SAckOK"
        case Timestamps(tsval=tsval, tsecr=tsecr):
            return f"Timestamp {tsval}/{tsecr}"
        case _:
            return repr(option)


def _short(payload: bytes, limit: int = 20) -> str:
    text = payload[:limit].decode("ascii", "backslashreplace").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'" + ("…" if len(payload) > limit else "")


def _wrap_note(isn: SeqNum, rel: int) -> str:
    return " (mod 2**32)" if isn.value + rel >= 1 << 32 else ""

"""Step through one TCP conversation a segment at a time: the driver behind the notebooks.

A :class:`Stepper` puts two parties on one imaginary wire:

* a **scripted client**, written here with Scapy (every segment it sends is an
  ``IP()/TCP()/Raw()`` a learner could type, and :attr:`Step.scapy` shows that line).
  It does what ``echo toppage | nc SERVER 8888`` does: open the connection, send
  the request, read the reply, and close when the server closes;
* the **l4kit core** (:class:`~l4kit.core.Listener` with the string server), the
  very state machine ``l4kit respond`` runs, with a fixed secret and fixed initial
  sequence numbers so that the numbers a notebook's text quotes are the numbers
  its cells print.

Each call of :meth:`Stepper.step` delivers *one* segment, the oldest one in
flight, to the other side, and returns a :class:`Step`: the Scapy packet, the
direction, each side's RFC 9293 state before and after, the sequence and
acknowledgment arithmetic in words, and the TCP checksum worked out with
:mod:`l4kit.checksum` next to the one Scapy computed. Nothing touches a network
and nothing reads a clock: time is a counter that advances by
:data:`STEP_SECONDS` per step (and by the TIME-WAIT period for the last one).

Which state a step shows
------------------------
A segment has a sender and a receiver. For the *receiver* a step shows the
state change its arrival caused. For the *sender* it shows the state change
that sending it caused, which happened when the sender sent it: the core answers
a request at once (reply and FIN-ACK leave together), so the FIN-ACK's
``ESTABLISHED → FIN-WAIT-1`` is shown on the step that delivers the FIN-ACK,
while :attr:`Stepper.server_state` already says ``FIN-WAIT-1`` one step
earlier. :attr:`Step.in_flight` lists what is on the wire after each step.

Rendering: a :class:`Step` shows itself as HTML in Jupyter (``_repr_html_``) and
as text everywhere else; :meth:`Stepper.diagram` returns a sequence diagram as
Mermaid text and as a matplotlib drawing (Mermaid is not rendered by plain
Jupyter or by nbclient, a drawing is). The drawing starts each arrow when its
segment was sent (:attr:`Step.sent_at`) and ends it when the segment arrived,
so segments that were in flight at the same time cross, as in the textbook
figures of a simultaneous close; Mermaid can only draw them one after another.
:func:`time_sequence_graph` draws a Wireshark-style time-sequence ("Stevens") graph from any rows that carry
``t``, ``direction``, ``seq``, ``ack``, ``length`` and ``flags`` (the rows of
``l4kit replay`` do).

This module is a driver (DESIGN.md): it imports the core, the wire layer, the
codecs and Scapy, never the Rich views or the CLI. matplotlib is imported only
by the drawing functions (it comes with ``pip install 'l4kit[notebooks]'``).
"""

from __future__ import annotations

import html
import io
import ipaddress
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from l4kit.checksum import (
    IPPROTO_TCP,
    ONES,
    ChecksumStatus,
    address_bytes,
    classify_tcp_checksum,
    ones_complement_sum,
    pseudo_header_sum,
    tcp_checksum,
)
from l4kit.codecs.scapy_codec import from_scapy, to_scapy
from l4kit.core import (
    ConnectionClosed,
    Event,
    Listener,
    ListenerConfig,
    Routes,
    SegmentDropped,
    SegmentReceived,
    SegmentSent,
    State,
    StateChanged,
    make_app_factory,
)
from l4kit.errors import ConfigError, L4kitError
from l4kit.mermaid import mermaid_escape
from l4kit.wire import Endpoint, FourTuple, Segment, SeqNum, TcpFlags, TcpOption
from l4kit.wire.options import MaxSegmentSize, SackPermitted, Timestamps, WindowScale

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The client's address and port: RFC 5737 documentation addresses, never routed anywhere.
CLIENT: Final = Endpoint("192.0.2.1", 40000)
#: The server's address and port (8888, the port of the original exercise).
SERVER: Final = Endpoint("192.0.2.2", 8888)
#: The client's initial sequence number: small and round, so the arithmetic reads easily.
CLIENT_ISN: Final = 1000
#: The server's initial sequence number (a real server picks an unguessable one, RFC 6528).
SERVER_ISN: Final = 5000
#: The listener's secret. Fixed and public: it keys SYN cookies and, with ``server_isn=None``,
#: the RFC 6528 ISN, and a notebook must print the same numbers on every run.
NOTEBOOK_SECRET: Final = b"l4kit notebooks: a fixed and public key"
#: Seconds of imaginary time between two steps.
STEP_SECONDS: Final = 0.001

CLIENT_SIDE: Final = "client"
SERVER_SIDE: Final = "server"
_ARROWS: Final = {"c2s": "→", "s2c": "←", "timer": "·"}


class SteppingError(L4kitError):
    """A step that cannot be taken: nothing is in flight, or a packet the stepper cannot send."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class StateChange:
    """One side's RFC 9293 state before and after a step."""

    before: State
    after: State

    @property
    def changed(self) -> bool:
        return self.before is not self.after

    def __str__(self) -> str:
        return f"{self.before} → {self.after}" if self.changed else f"{self.after} (unchanged)"


@dataclass(frozen=True, slots=True)
class ChecksumWorking:
    """The TCP checksum of one packet worked out word by word (RFC 1071 §1, RFC 9293 §3.1).

    ``pseudo_words`` are the 16-bit words of the pseudo-header (IPv4: source,
    destination, zero and protocol, TCP length; IPv6 (RFC 8200 §8.1): source,
    destination, 32-bit length, zeros and next header), ``tcp_words`` those of
    the TCP header and data with the checksum field taken as zero (an odd
    length gets a zero octet on the right, RFC 1071 §4.1). ``wide_sum`` is their
    plain sum; ``folds`` the end-around carries added back in, one pair
    ``(before, after)`` per fold; ``ones_sum`` the folded 16-bit sum and
    ``computed`` its complement. ``l4kit`` is :func:`l4kit.checksum.tcp_checksum`
    of the same bytes, ``scapy`` the field Scapy wrote, and ``status`` what
    :func:`l4kit.checksum.classify_tcp_checksum` says of the packet as it is.
    """

    src: str
    dst: str
    pseudo_words: tuple[int, ...]
    pseudo_labels: tuple[str, ...]
    tcp_words: tuple[int, ...]
    tcp_length: int
    wide_sum: int
    folds: tuple[tuple[int, int], ...]
    ones_sum: int
    computed: int
    l4kit_pseudo_sum: int
    l4kit_tcp_sum: int
    l4kit: int
    scapy: int
    status: ChecksumStatus

    @property
    def agrees(self) -> bool:
        """The word-by-word sum, :mod:`l4kit.checksum` and Scapy give the same value."""
        return self.computed == self.l4kit == self.scapy

    @classmethod
    def of_packet(cls, pkt: Packet) -> ChecksumWorking:
        """Work out the checksum of the TCP segment in ``pkt`` (an IPv4 or IPv6 packet with TCP).

        The packet is built first, so a packet made in a notebook gets the checksum
        Scapy computes. Raises :class:`SteppingError` for a packet without IP and TCP.
        """
        ip_layer = _ip_layer(pkt)
        built = type(ip_layer)(raw(ip_layer))
        if TCP not in built:
            raise SteppingError(f"no TCP segment in {pkt.summary()}")
        src, dst = str(built.src), str(built.dst)
        segment = _tcp_bytes(built)
        zeroed = segment[:16] + b"\x00\x00" + segment[18:]
        length = len(segment)
        labels: tuple[str, ...]
        if isinstance(built, IPv6):
            pseudo = address_bytes(src) + address_bytes(dst) + length.to_bytes(4, "big") + bytes([0, 0, 0, 6])
            labels = (
                ("source",) * 8
                + ("destination",) * 8
                + ("length (high)", "length", "zero", "zero, next header")
            )
        else:
            pseudo = (
                address_bytes(src) + address_bytes(dst) + bytes([0, IPPROTO_TCP]) + length.to_bytes(2, "big")
            )
            labels = ("source", "source", "destination", "destination", "zero, protocol", "TCP length")
        tcp_words = _words(zeroed)
        pseudo_words = _words(pseudo)
        wide = sum(pseudo_words) + sum(tcp_words)
        folds: list[tuple[int, int]] = []
        folded = wide
        while folded > ONES:
            after = (folded & ONES) + (folded >> 16)
            folds.append((folded, after))
            folded = after
        return cls(
            src=src,
            dst=dst,
            pseudo_words=pseudo_words,
            pseudo_labels=labels,
            tcp_words=tcp_words,
            tcp_length=length,
            wide_sum=wide,
            folds=tuple(folds),
            ones_sum=folded,
            computed=~folded & ONES,
            l4kit_pseudo_sum=pseudo_header_sum(src, dst, length),
            l4kit_tcp_sum=ones_complement_sum(zeroed),
            l4kit=tcp_checksum(src, dst, zeroed),
            scapy=int(built[TCP].chksum),
            status=classify_tcp_checksum(src, dst, segment),
        )

    def lines(self) -> list[str]:
        """The working as text, one line per stage."""
        out = [
            f"pseudo-header words ({', '.join(_dedupe(self.pseudo_labels))}): "
            + _hex_words(self.pseudo_words),
            f"TCP header + data, {self.tcp_length} octets, checksum field as 0000: "
            + _hex_words(self.tcp_words),
            f"sum of the {len(self.pseudo_words) + len(self.tcp_words)} words = 0x{self.wide_sum:x}",
        ]
        for before, after in self.folds:
            out.append(
                f"end-around carry: 0x{before & ONES:04x} + 0x{before >> 16:x} = 0x{after:x}"
                + ("" if after <= ONES else " (carries again)")
            )
        out.append(
            f"one's complement sum 0x{self.ones_sum:04x}; "
            f"complement: ~0x{self.ones_sum:04x} = 0x{self.computed:04x}"
        )
        out.append(
            f"l4kit.checksum: pseudo_header_sum = 0x{self.l4kit_pseudo_sum:04x}, "
            f"ones_complement_sum(TCP) = 0x{self.l4kit_tcp_sum:04x}, tcp_checksum = 0x{self.l4kit:04x}"
        )
        verdict = "all three agree" if self.agrees else "THEY DIFFER"
        out.append(f"Scapy wrote 0x{self.scapy:04x}: {verdict}; classify_tcp_checksum says {self.status}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


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
        after sending this segment (the module docstring says why that happens)."""
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


# ---------------------------------------------------------------- the scripted client


@dataclass(slots=True)
class _Outgoing:
    """A segment put on the wire, with the sender's state change that sending it caused."""

    sender: str
    template: Packet  # as built by the sender, lengths and checksums left to Scapy
    scapy: str
    before: State
    after: State
    why: str = ""
    sent_at: int | None = None  # set by the stepper: see Step.sent_at


class ScriptedClient:
    """The client of ``echo REQUEST | nc SERVER PORT``, written with Scapy.

    An active opener for a loss-free, in-order wire (the stepper's): it sends SYN,
    completes the handshake, sends ``request`` (with FIN right after it when
    ``closes_first``, like ``nc -N``), acknowledges what arrives and, when the
    server closes, closes too (``nc`` exits when it reads end-of-file). With
    ``delayed_ack`` it holds an ACK while more from the server is already on its
    way, so that one ACK covers both (RFC 9293 §3.8.6.3 lets a receiver delay
    ACKs; RFC 1122 §4.2.3.2 bounds the delay). States follow RFC 9293 §3.10.7.3
    (SYN-SENT) and §3.10.7.4 (the synchronized states).
    """

    def __init__(
        self,
        local: Endpoint,
        remote: Endpoint,
        *,
        isn: int,
        request: bytes,
        window: int = 65535,
        mss: int = 1460,
        closes_first: bool = False,
        delayed_ack: bool = True,
    ) -> None:
        self.local = local
        self.remote = remote
        self.iss = SeqNum(isn)
        self.request = request
        self.window = window
        self.mss = mss
        self.closes_first = closes_first
        self.delayed_ack = delayed_ack
        self.state = State.CLOSED
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.rcv_nxt: SeqNum | None = None
        self.fin_seq: SeqNum | None = None
        self.received = bytearray()
        self.ack_pending = False

    # -- building packets

    def _packet(
        self, flags: str, payload: bytes = b"", options: list[tuple[str, Any]] | None = None
    ) -> tuple[Packet, str]:
        """The Scapy packet for a segment from this client, and the line that builds it."""
        ip_class = IPv6 if ":" in self.local.addr else IP
        ip_args: dict[str, Any] = {"src": self.local.addr, "dst": self.remote.addr}
        tcp_args: dict[str, Any] = {
            "sport": self.local.port,
            "dport": self.remote.port,
            "flags": flags,
            "seq": self.snd_nxt.value,
        }
        if "A" in flags and self.rcv_nxt is not None:
            tcp_args["ack"] = self.rcv_nxt.value
        tcp_args["window"] = self.window
        if options:
            tcp_args["options"] = options
        pkt = ip_class(**ip_args) / TCP(**tcp_args)
        text = f"{ip_class.__name__}({_kwargs_text(ip_args)}) / TCP({_kwargs_text(tcp_args)})"
        if payload:
            pkt = pkt / Raw(load=payload)
            text += f" / Raw(load={payload!r})"
        return pkt, text

    def _send(
        self, flags: str, before: State | None = None, payload: bytes = b"", why: str = "", **kw: Any
    ) -> _Outgoing:
        """Put a segment on the wire; ``before``: the state before the change that sending it
        makes (default: the state now, for a segment that changes nothing)."""
        pkt, text = self._packet(flags, payload, **kw)
        used = len(payload) + ("S" in flags) + ("F" in flags)
        if "F" in flags:
            self.fin_seq = self.snd_nxt + len(payload)
        self.snd_nxt = self.snd_nxt + used
        if "A" in flags:
            self.ack_pending = False
        return _Outgoing(CLIENT_SIDE, pkt, text, self.state if before is None else before, self.state, why)

    def connect(self) -> list[_Outgoing]:
        """Active open (RFC 9293 §3.10.1): SYN with our MSS, CLOSED → SYN-SENT."""
        if self.state is not State.CLOSED or self.snd_nxt != self.iss:
            raise SteppingError("the client has already connected")
        self.state = State.SYN_SENT
        return [self._send("S", State.CLOSED, why="active open", options=[("MSS", self.mss)])]

    def close(self) -> list[_Outgoing]:
        """The application closes: FIN (RFC 9293 §3.10.4); nothing if already closing."""
        before = self.state
        if before is State.ESTABLISHED:
            self.state = State.FIN_WAIT_1
        elif before is State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        else:
            return []
        return [self._send("FA", before, why="close")]

    def receive(self, pkt: Packet, *, more_coming: bool) -> tuple[list[_Outgoing], list[str], State]:
        """Process a segment from the server; ``more_coming``: another one is already on its way.

        Returns the segments sent in reply, notes on anything unusual, and the state the
        segment itself left the client in (before any close it led to).
        """
        tcp = pkt[TCP]
        if (str(pkt.src), int(tcp.sport), str(pkt.dst), int(tcp.dport)) != (*self.remote, *self.local):
            return [], [f"not for this client ({pkt.summary()}): ignored"], self.state
        opening = self.state is State.SYN_SENT
        replies, notes = self._receive(pkt, more_coming)
        received_state = self.state
        if self.state is State.CLOSE_WAIT:
            # nc reads end-of-file and exits: its FIN carries the ACK of the server's FIN.
            replies = self.close()
        elif opening and self.state is State.ESTABLISHED and self.closes_first:
            replies += self.close()  # nc -N: shut down the sending side after the request
        return replies, notes, received_state

    def _receive(self, pkt: Packet, more_coming: bool) -> tuple[list[_Outgoing], list[str]]:
        tcp = pkt[TCP]
        flags = TcpFlags(int(tcp.flags))
        seq, ack = SeqNum(int(tcp.seq)), SeqNum(int(tcp.ack))
        payload = bytes(tcp.payload)
        notes: list[str] = []
        state = self.state
        has_ack = bool(flags & TcpFlags.ACK)
        if state is State.SYN_SENT:
            # RFC 9293 §3.10.7.3: first check the ACK, then RST, then SYN.
            if has_ack and ack != self.snd_nxt:
                if flags & TcpFlags.RST:
                    return [], ["RST with an unacceptable ACK ignored"]
                return [self._rst(ack)], ["ACK does not acknowledge our SYN: RST"]
            if flags & TcpFlags.RST:
                if has_ack:
                    self.state = State.CLOSED
                    notes.append("connection refused (RST)")
                return [], notes
            if not flags & TcpFlags.SYN:
                return [], ["neither SYN nor RST in SYN-SENT: dropped"]
            self.rcv_nxt = seq + 1
            if not has_ack:
                return [], ["simultaneous open is not scripted: dropped"]
            self.snd_una = ack
            self.state = State.ESTABLISHED
            out = [self._send("A", why="handshake ACK")]
            # The request in segments of at most the server's MSS (RFC 9293 §3.7.1: 536 without
            # the option); PSH on the last one, as a stack does when the write is done.
            peer_mss = dict((o[0], o[1]) for o in tcp.options if isinstance(o, tuple)).get("MSS", 536)
            chunks = [self.request[i : i + peer_mss] for i in range(0, len(self.request), peer_mss)]
            for n, chunk in enumerate(chunks, start=1):
                out.append(self._send("PA" if n == len(chunks) else "A", payload=chunk, why="request"))
            return out, notes
        if state in (State.CLOSED, State.TIME_WAIT) and not self.rcv_nxt:
            return [], [f"segment for a {state} client ignored"]
        if flags & TcpFlags.RST:
            self.state = State.CLOSED
            return [], ["connection reset by the server"]
        assert self.rcv_nxt is not None
        if seq != self.rcv_nxt:
            if state is State.CLOSED:
                return [], ["segment after the connection closed ignored"]
            notes.append(f"out of order (expected seq {self.rcv_nxt.value}): answered with an ACK")
            return [self._send("A", why="duplicate ACK")], notes
        if has_ack and self.snd_una < ack <= self.snd_nxt:
            self.snd_una = ack
        fin_acked = self.fin_seq is not None and has_ack and ack == self.fin_seq + 1
        if fin_acked:
            if self.state is State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
            elif self.state is State.CLOSING:
                self.state = State.TIME_WAIT
            elif self.state is State.LAST_ACK:
                self.state = State.CLOSED
                return [], notes
        if payload:
            self.received += payload
            self.rcv_nxt = self.rcv_nxt + len(payload)
            self.ack_pending = True
        if flags & TcpFlags.FIN:
            self.rcv_nxt = self.rcv_nxt + 1
            self.ack_pending = True
            self.state = {
                State.ESTABLISHED: State.CLOSE_WAIT,
                State.FIN_WAIT_1: State.CLOSING,
                State.FIN_WAIT_2: State.TIME_WAIT,
            }.get(self.state, self.state)
        if self.state is State.CLOSE_WAIT:
            return [], notes  # receive() closes, and the FIN carries the ACK
        # A FIN is acknowledged at once (as Linux does); data may wait for what follows it.
        if self.ack_pending and not (self.delayed_ack and more_coming and not flags & TcpFlags.FIN):
            return [self._send("A", why="ACK")], notes
        return [], notes

    def _rst(self, ack: SeqNum) -> _Outgoing:
        pkt, text = self._packet("R")
        pkt[TCP].seq = ack.value
        text = text.replace(f"seq={self.snd_nxt.value}", f"seq={ack.value}")
        return _Outgoing(CLIENT_SIDE, pkt, text, self.state, self.state, "RST")


# ---------------------------------------------------------------- the stepper


class Stepper:
    """A scripted Scapy client and the l4kit core, one delivered segment per :meth:`step`.

    Everything is deterministic: the client's ISN is ``client_isn``; the
    server's is ``server_isn``, or, with ``server_isn=None``, the RFC 6528 ISN
    the responder would pick, from :data:`NOTEBOOK_SECRET` and the imaginary
    clock. The client sends ``request``; the server answers with ``routes``
    (default: ``toppage`` → ``hello world``) and closes (``keep_open=False``),
    as ``l4kit respond`` does. ``client_closes_first`` makes the client send its
    FIN right after the request (``nc -N``); ``delayed_ack=False`` makes it
    acknowledge every segment at once.
    """

    def __init__(
        self,
        *,
        client: Endpoint = CLIENT,
        server: Endpoint = SERVER,
        client_isn: int = CLIENT_ISN,
        server_isn: int | None = SERVER_ISN,
        request: bytes | str = b"toppage\n",
        routes: Routes | None = None,
        keep_open: bool = False,
        client_closes_first: bool = False,
        delayed_ack: bool = True,
        secret: bytes = NOTEBOOK_SECRET,
    ) -> None:
        for name, value in (("client_isn", client_isn), ("server_isn", server_isn)):
            if value is not None and not 0 <= value < 1 << 32:
                raise ConfigError(f"{name} {value} is outside 0 to 2**32 - 1")
        client, server = _endpoint("client", client), _endpoint("server", server)
        if (":" in client.addr) != (":" in server.addr):
            raise ConfigError(f"client {client} and server {server} are of different IP versions")
        self.client_endpoint = client
        self.server_endpoint = server
        self.key = FourTuple(server, client)  # the server's view, as the core keys it
        config = ListenerConfig(local=server, secret=secret)
        fixed = None if server_isn is None else SeqNum(server_isn)
        self.listener = Listener(
            config,
            make_app_factory(routes, keep_open=keep_open),
            isn=None if fixed is None else (lambda key, now: fixed),
        )
        self.client = ScriptedClient(
            client,
            server,
            isn=client_isn,
            request=request.encode() if isinstance(request, str) else request,
            closes_first=client_closes_first,
            delayed_ack=delayed_ack,
        )
        self.history: list[Step] = []
        self.now = 0.0
        self._wire: deque[_Outgoing] = deque()
        self._server_closed = False
        self._isn: dict[str, SeqNum] = {CLIENT_SIDE: SeqNum(client_isn)}
        # What each side has put into the sequence space, for the arithmetic: (start, length, what).
        self._ledger: dict[str, list[tuple[SeqNum, int, str]]] = {CLIENT_SIDE: [], SERVER_SIDE: []}
        self._last_ack: dict[str, SeqNum | None] = {CLIENT_SIDE: None, SERVER_SIDE: None}
        self._put(self.client.connect(), sent_at=0)

    # -- state

    @property
    def client_state(self) -> State:
        return self.client.state

    @property
    def server_state(self) -> State:
        """The core's state of this connection now (CLOSED once it has left the table)."""
        if self._server_closed:
            return State.CLOSED
        return self.listener.state_of(self.key)

    @property
    def in_flight(self) -> list[str]:
        """What is on the wire, oldest first, in words."""
        return [_describe(o) for o in self._wire]

    @property
    def done(self) -> bool:
        """Nothing in flight and no timer left to wait for."""
        return not self._wire and not self._waiting_for_timer()

    def _waiting_for_timer(self) -> bool:
        return State.TIME_WAIT in (self.server_state, self.client_state)

    # -- stepping

    def step(self) -> Step:
        """Deliver the oldest segment in flight, or, when none is and a side waits in
        TIME-WAIT, let the TIME-WAIT period pass. Raises :class:`SteppingError` when
        there is nothing left to do."""
        if self._wire:
            sent = self._wire.popleft()
            self.now = round(self.now + STEP_SECONDS, 9)
            if sent.sender == CLIENT_SIDE:
                return self._to_server(sent)
            return self._to_client(sent)
        if self._waiting_for_timer():
            return self._time_passes()
        raise SteppingError(
            "nothing is in flight and no timer is running: the conversation is over"
            if self.client_state is State.CLOSED and self.server_state is State.CLOSED
            else "nothing is in flight: call close() to make the client close, or send() a packet"
        )

    def run(self) -> list[Step]:
        """Step until :attr:`done`; the steps taken."""
        steps = []
        while not self.done:
            steps.append(self.step())
            if len(self.history) > 10_000:  # a script that never ends is a bug
                raise SteppingError("more than 10000 steps: the conversation does not end")
        return steps

    def close(self) -> None:
        """Make the client close its side now (its FIN goes on the wire)."""
        self._put(self.client.close(), sent_at=len(self.history))

    def send(self, pkt: Packet) -> Step:
        """Deliver a packet of your own from the client's side to the server, at once.

        For experiments: a RST, a segment out of the window, a second SYN. The
        scripted client does not know about it (its state and numbers stay as
        they were); what the server answers goes on the wire like anything else.
        """
        ip_layer = _ip_layer(pkt)
        if TCP not in ip_layer:
            raise SteppingError(f"not a TCP segment: {pkt.summary()}")
        self.now = round(self.now + STEP_SECONDS, 9)
        state = self.client_state
        return self._to_server(_Outgoing(CLIENT_SIDE, ip_layer, pkt.command(), state, state, "sent by hand"))

    # -- one delivery

    def _put(self, segments: Iterable[_Outgoing], *, sent_at: int) -> None:
        """Put ``segments`` on the wire after step ``sent_at`` (the one being taken, or 0 at the start)."""
        for outgoing in segments:
            outgoing.sent_at = sent_at
            self._wire.append(outgoing)

    def _ours(self, segment: Segment) -> bool:
        """Whether ``segment`` belongs to the stepped connection (either direction)."""
        ends = {segment.source, segment.destination}
        return ends == {self.client_endpoint, self.server_endpoint}

    def _to_server(self, sent: _Outgoing) -> Step:
        built = _built(sent.template)
        segment = from_scapy(built)
        self._note_sent(CLIENT_SIDE, segment)
        server_before = self.server_state
        out = self.listener.receive(segment, self.now)
        server_change = StateChange(server_before, server_before)
        notes: list[str] = []
        for event in out.events:
            if isinstance(event, SegmentReceived) and event.segment is segment:
                server_change = StateChange(event.before, event.after)
            elif isinstance(event, SegmentDropped):
                notes.append(
                    f"core: dropped, {event.reason}" + (f" ({event.detail})" if event.detail else "")
                )
            elif isinstance(event, StateChanged) and event.why:
                notes.append(f"core: {event.before} → {event.after}, {event.why}")
            elif isinstance(event, ConnectionClosed) and event.key == self.key:
                self._server_closed = True
                notes.append(f"core: connection closed, {event.why}")
        replies = [e for e in out.events if isinstance(e, SegmentSent)]
        self._put(
            (
                _Outgoing(
                    SERVER_SIDE,
                    to_scapy(e.segment),
                    _segment_expression(e.segment),
                    e.before,
                    e.after,
                    e.why,
                )
                for e in replies
            ),
            sent_at=len(self.history) + 1,
        )
        if len(replies) > 1:
            notes.append(
                f"core: the server sent {len(replies)} segments in one go ("
                + ", ".join(_label_flags(e.segment, SERVER_SIDE) for e in replies)
                + "): they arrive in the next steps"
            )
        client_change = StateChange(sent.before, sent.after)
        return self._record(
            sent=sent,
            built=built,
            segment=segment,
            client=client_change,
            server=server_change,
            notes=notes,
            events=tuple(out.events),
        )

    def _to_client(self, sent: _Outgoing) -> Step:
        built = _built(sent.template)
        segment = from_scapy(built)
        self._note_sent(SERVER_SIDE, segment)
        client_before = self.client_state
        more = any(o.sender == SERVER_SIDE for o in self._wire)
        replies, client_notes, received_state = self.client.receive(built, more_coming=more)
        notes = [f"client: {note}" for note in client_notes]
        self._put(replies, sent_at=len(self.history) + 1)
        if self.client.ack_pending and not replies:
            notes.append("client: delays its ACK, more from the server is already on its way")
        elif replies and received_state is State.CLOSE_WAIT:
            notes.append("client: its application (nc) reads end-of-file and closes at once")
        return self._record(
            sent=sent,
            built=built,
            segment=segment,
            client=StateChange(client_before, received_state),
            server=StateChange(sent.before, sent.after),
            notes=notes,
            events=(),
        )

    def _time_passes(self) -> Step:
        period = self.listener.config.time_wait_timeout
        self.now = round(self.now + period, 9)
        client_before, server_before = self.client_state, self.server_state
        out = self.listener.tick(self.now)
        notes = []
        for event in out.events:
            if isinstance(event, ConnectionClosed) and event.key == self.key:
                self._server_closed = True
                notes.append(f"core: connection closed, {event.why}")
        if self.client.state is State.TIME_WAIT:
            self.client.state = State.CLOSED
        client, server = (
            StateChange(client_before, self.client_state),
            StateChange(server_before, self.server_state),
        )
        story = [
            f"{period:g} s pass with nothing on the wire. TIME-WAIT lasts 2·MSL (RFC 9293 §3.6.1; l4kit uses "
            "Linux's 60 s): long enough for a lost last ACK to be asked for again by a repeated FIN, "
            "and for old duplicates of this connection to die out before the 4-tuple is used again."
        ]
        story += _stories(CLIENT_SIDE, client) + _stories(SERVER_SIDE, server)
        step = Step(
            number=len(self.history) + 1,
            label="closed",
            direction="timer",
            time=self.now,
            client=client,
            server=server,
            story=tuple(story),
            notes=tuple(notes),
            events=tuple(out.events),
        )
        self.history.append(step)
        return step

    def _note_sent(self, side: str, segment: Segment) -> None:
        """Record what ``segment`` puts into its sender's sequence space (for the arithmetic)."""
        if not self._ours(segment):
            return
        if segment.flags & TcpFlags.SYN:
            self._isn[side] = segment.seq
        ledger = self._ledger[side]
        position = segment.seq
        parts: list[tuple[int, str]] = []
        if segment.flags & TcpFlags.SYN:
            parts.append((1, "the SYN"))
        if segment.payload:
            parts.append((len(segment.payload), _short(segment.payload)))
        if segment.flags & TcpFlags.FIN:
            parts.append((1, "the FIN"))
        for length, what in parts:
            if not any(start == position for start, _, _ in ledger):
                ledger.append((position, length, what))
            position = position + length

    def _record(
        self,
        *,
        sent: _Outgoing,
        built: Packet,
        segment: Segment,
        client: StateChange,
        server: StateChange,
        notes: list[str],
        events: tuple[Event, ...],
    ) -> Step:
        sender = sent.sender
        receiver = SERVER_SIDE if sender == CLIENT_SIDE else CLIENT_SIDE
        if self._ours(segment):
            arithmetic = self._arithmetic(segment, sender, receiver)
        else:
            arithmetic = [
                f"{segment.source} > {segment.destination} is another connection than the one stepped "
                f"({self.client_endpoint} <-> {self.server_endpoint}): no arithmetic for it."
            ]
        story = _stories(CLIENT_SIDE, client) + _stories(SERVER_SIDE, server)
        if sender == SERVER_SIDE and sent.why not in ("", "SYN-ACK", "FIN", "ACK"):
            notes.insert(0, f"core: sent as {sent.why}")
        step = Step(
            number=len(self.history) + 1,
            label=_label_flags(segment, sender),
            direction="c2s" if sender == CLIENT_SIDE else "s2c",
            time=self.now,
            client=client,
            server=server,
            packet=built,
            segment=segment,
            scapy=sent.scapy,
            arithmetic=tuple(arithmetic),
            story=tuple(story),
            checksum=ChecksumWorking.of_packet(built),
            notes=tuple(notes),
            in_flight=tuple(self.in_flight),
            sender_state_now=self.client_state if sender == CLIENT_SIDE else self.server_state,
            sent_at=sent.sent_at,
            events=events,
        )
        self.history.append(step)
        if segment.flags & TcpFlags.ACK and self._ours(segment):
            self._last_ack[sender] = segment.ack
        return step

    def _arithmetic(self, seg: Segment, sender: str, receiver: str) -> list[str]:
        out: list[str] = []
        seq = seg.seq
        isn = self._isn.get(sender)
        if seg.flags & TcpFlags.SYN:
            out.append(
                f"seq {seq.value}: the {sender}'s initial sequence number (ISN). The SYN itself "
                "takes up this one number (RFC 9293 §3.4), so the first data octet will be "
                f"number {(seq + 1).value}."
            )
        elif isn is not None:
            rel = seq - isn
            parts = self._breakdown(sender, rel)
            out.append(
                f"seq {seq.value} = {sender} ISN {isn.value} + {rel}{_wrap_note(isn, rel)}"
                + (
                    f" ({parts}): the {sender} has used the numbers before {seq.value}, "
                    f"so this segment starts at {seq.value}."
                    if parts is not None
                    else f": not where any segment of the {sender} so far ended (made by hand?)."
                )
            )
        if seg.flags & TcpFlags.RST:
            out.append(
                "RST: abort the connection at once. The receiver believes it only if seq is exactly the "
                "next number it expects; anywhere else in its window it answers with a challenge ACK "
                "instead (RFC 5961 §3.2), so that a blind attacker must guess the exact number."
            )
        used = seg.seg_len
        if seg.payload:
            last = seq + (len(seg.payload) - 1)
            out.append(
                f"length: {len(seg.payload)} data octets numbered {seq.value}..{last.value}"
                + (" and the FIN after them" if seg.flags & TcpFlags.FIN else "")
                + f"; the {sender}'s next sequence number is {seq.value} + {used} = {(seq + used).value}."
            )
        elif seg.flags & TcpFlags.FIN:
            out.append(
                f"length: no data, but the FIN takes up one sequence number ({seq.value}), so that it "
                f"can be acknowledged: the {sender}'s next sequence number is {(seq + 1).value}."
            )
        elif not seg.flags & (TcpFlags.SYN | TcpFlags.RST):
            out.append(
                "length: no data, no SYN, no FIN: this segment takes up no sequence number, "
                f"so the {sender}'s next segment carries seq {seq.value} again."
            )
        if seg.flags & TcpFlags.ACK:
            peer_isn = self._isn.get(receiver)
            if peer_isn is not None:
                rel = seg.ack - peer_isn
                newly = self._newly_acked(sender, receiver, seg.ack)
                parts = self._breakdown(receiver, rel) or f"{rel} octets, not at the end of a segment"
                out.append(
                    f"ack {seg.ack.value} = {receiver} ISN {peer_isn.value} + {rel}"
                    f"{_wrap_note(peer_isn, rel)} ({parts}): everything the {receiver} sent before number "
                    f"{seg.ack.value} arrived; {seg.ack.value} is the next octet expected."
                    + (f" New in this ACK: {newly}." if newly else " Nothing new is acknowledged.")
                )
        else:
            out.append(
                f"ack {seg.ack.value}: the ACK flag is off, so this field means nothing"
                + (
                    f" (the {sender} knows none of the {receiver}'s sequence numbers yet)."
                    if receiver not in self._isn or seg.flags & TcpFlags.SYN
                    else "."
                )
            )
        out.append(f"window {seg.window}: the {sender} can take {seg.window} more octets right now.")
        if seg.mss is not None:
            out.append(
                f"MSS {seg.mss}: the largest segment the {sender} wants to receive "
                "(RFC 9293 §3.7.1; only in a SYN)."
            )
        return out

    def _breakdown(self, side: str, rel: int) -> str | None:
        """``rel`` octets of ``side``'s sequence space as the parts that used them (None: ``rel``
        is not at the end of any of them)."""
        isn = self._isn[side]
        parts: list[str] = []
        total = 0
        for start, length, what in sorted(self._ledger[side], key=lambda item: item[0] - isn):
            if total >= rel:
                break
            if start - isn != total:
                break
            parts.append(f"{length} for {what}")
            total += length
        if total != rel:
            return None
        return " + ".join(parts) if parts else "nothing yet"

    def _newly_acked(self, sender: str, receiver: str, ack: SeqNum) -> str:
        previous = self._last_ack[sender]
        isn = self._isn[receiver]
        low = 0 if previous is None else previous - isn
        high = ack - isn
        items = [
            what if what.startswith("the ") else f"the data {what}"
            for start, _, what in self._ledger[receiver]
            if low <= start - isn < high
        ]
        return ", ".join(items)

    # -- pictures

    def diagram(self) -> SequenceDiagram:
        """The sequence diagram of every step so far (Mermaid text, a drawing, a text picture)."""
        return SequenceDiagram(
            tuple(self.history),
            f"client {self.client_endpoint}",
            f"server {self.server_endpoint}",
        )

    def rows(self) -> list[StepRow]:
        """One row per delivered segment, numbers relative to each side's ISN (as Wireshark shows them)."""
        rows = []
        for step in self.history:
            seg = step.segment
            if seg is None or step.sender is None or not self._ours(seg):
                continue
            receiver = SERVER_SIDE if step.sender == CLIENT_SIDE else CLIENT_SIDE
            own, peer = self._isn.get(step.sender), self._isn.get(receiver)
            rows.append(
                StepRow(
                    step=step.number,
                    t=step.time,
                    direction=step.direction,
                    flags=seg.flags.letters,
                    seq=seg.seq - own if own is not None else seg.seq.value,
                    ack=(seg.ack - peer) if seg.flags & TcpFlags.ACK and peer is not None else None,
                    length=len(seg.payload),
                    window=seg.window,
                    payload=seg.payload,
                    checksum=str(step.checksum.status) if step.checksum else "",
                    client=step.client,
                    server=step.server,
                )
            )
        return rows


@dataclass(frozen=True, slots=True)
class StepRow:
    """A delivered segment as a table row: ``seq``/``ack`` relative to the ISNs, ``t`` in seconds."""

    step: int
    t: float
    direction: str
    flags: str
    seq: int
    ack: int | None
    length: int
    window: int
    payload: bytes
    checksum: str
    client: StateChange
    server: StateChange


# ---------------------------------------------------------------- pictures


class SequenceDiagram:
    """The steps of a :class:`Stepper` as a sequence diagram.

    ``mermaid`` is the Mermaid text (paste it into a Markdown file, GitHub and
    JupyterLab 4.1+ draw it); :meth:`figure` draws it with matplotlib, which
    needs no browser and renders in any Jupyter and in nbclient; ``str()`` is a
    plain-text picture. In Jupyter the drawing is what shows.
    """

    def __init__(self, steps: Sequence[Step], client_label: str, server_label: str) -> None:
        self.steps = tuple(steps)
        self.client_label = client_label
        self.server_label = server_label

    @property
    def mermaid(self) -> str:
        lines = [
            "sequenceDiagram",
            f"    participant C as {mermaid_escape(self.client_label)}",
            f"    participant S as {mermaid_escape(self.server_label)}",
        ]
        if self.steps:
            first = self.steps[0]
            lines.append(f"    Note over C: {first.client.before}")
            lines.append(f"    Note over S: {first.server.before}")
        for step in self.steps:
            if step.direction == "timer":
                lines.append(f"    Note over C,S: {step.number}. time passes ({mermaid_escape(step.label)})")
            else:
                arrow = "C->>S" if step.direction == "c2s" else "S->>C"
                lines.append(f"    {arrow}: {step.number}. {mermaid_escape(_arrow_label(step))}")
            for side, change in (("C", step.client), ("S", step.server)):
                if change.changed:
                    lines.append(f"    Note over {side}: {change.after}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        width = 54
        left, right = self.client_label, self.server_label
        out = [f"{left:<24}{'':{width - 24}}{right:>24}"]
        if self.steps:
            out.append(
                f"{self.steps[0].client.before!s:<24}{'':{width - 24}}{self.steps[0].server.before!s:>24}"
            )
        for step in self.steps:
            c = str(step.client.after) if step.client.changed else ""
            s = str(step.server.after) if step.server.changed else ""
            if step.direction == "timer":
                middle = f" {step.number}. (time passes) ".center(width, "·")
            else:
                text = f" {step.number}. {_arrow_label(step)} "
                middle = (
                    (text.ljust(width - 1, "─") + "▶")
                    if step.direction == "c2s"
                    else ("◀" + text.rjust(width - 1, "─"))
                )
            out.append(f"{c:<14}{middle}{s:>14}".rstrip())
        return "\n".join(out)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def figure(self) -> Figure:
        """The diagram drawn with matplotlib: client on the left, server on the right, time down."""
        figure_class = _matplotlib_figure()
        n = len(self.steps)
        fig = figure_class(figsize=(9.5, 1.2 + 0.62 * max(n, 1)))
        ax = fig.add_subplot()
        x_client, x_server = 0.0, 1.0
        bottom = n + 0.6
        ax.set_xlim(-0.62, 1.62)
        ax.set_ylim(bottom, -0.9)
        ax.axis("off")
        for x, label in ((x_client, self.client_label), (x_server, self.server_label)):
            ax.plot([x, x], [-0.3, bottom], color="#555555", linewidth=1.2)
            ax.text(x, -0.5, label, ha="center", va="bottom", fontsize=10, fontweight="bold")
        if self.steps:
            ax.text(
                x_client - 0.04, -0.1, str(self.steps[0].client.before), ha="right", va="center", fontsize=8.5
            )
            ax.text(
                x_server + 0.04, -0.1, str(self.steps[0].server.before), ha="left", va="center", fontsize=8.5
            )
        labels: dict[tuple[str, float], list[StateChange]] = {}
        for i, step in enumerate(self.steps):
            # An arrow leaves when its segment was put on the wire (right after the arrival that
            # made the sender send it) and ends when it is delivered, so crossing segments cross.
            y0, y1 = i + 0.2, i + 0.8
            if step.sent_at is not None and step.sent_at >= 1:
                y0 = min(y0, step.sent_at - 0.2)
            if step.direction == "timer":
                ax.plot([x_client, x_server], [i + 0.5, i + 0.5], linestyle=":", color="#7f7f7f")
                ax.text(
                    0.5,
                    i + 0.42,
                    f"{step.number}. {step.label}: time passes",
                    ha="center",
                    va="bottom",
                    fontsize=8.5,
                    color="#555555",
                )
            else:
                start, end = (x_client, x_server) if step.direction == "c2s" else (x_server, x_client)
                colour = "#1f77b4" if step.direction == "c2s" else "#9467bd"
                ax.annotate(
                    "",
                    xy=(end, y1),
                    xytext=(start, y0),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.4},
                )
                ax.text(
                    0.5,
                    (y0 + y1) / 2 + 0.1,
                    f"{step.number}. {_arrow_label(step)}",
                    ha="center",
                    va="bottom",
                    fontsize=8.5,
                    color=colour,
                    rotation=0,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.85},
                )
            # The sender changed state when the segment left (top of the arrow), the receiver
            # when it arrived (the arrow's head).
            y_client = {"c2s": y0, "s2c": y1}.get(step.direction, i + 0.5)
            y_server = {"c2s": y1, "s2c": y0}.get(step.direction, i + 0.5)
            for side, y, change in (("client", y_client, step.client), ("server", y_server, step.server)):
                if change.changed:
                    labels.setdefault((side, round(y, 3)), []).append(change)
        # Changes at the same instant on one side (a segment arrives and another leaves because
        # of it) share one label: "ESTABLISHED → FIN-WAIT-1".
        for (side, y), changes in labels.items():
            names = [str(change.after) for change in changes]
            text = " → ".join(dict.fromkeys(names))
            x, align = (x_client - 0.04, "right") if side == "client" else (x_server + 0.04, "left")
            ax.text(x, y, text, ha=align, va="center", fontsize=8.5, fontweight="bold")
        fig.tight_layout()
        return fig

    def _repr_png_(self) -> bytes:
        return figure_png(self.figure())


class SequencePoint(Protocol):
    """What :func:`time_sequence_graph` reads from a row (``TransitionRow`` and :class:`StepRow` fit)."""

    @property
    def t(self) -> float: ...
    @property
    def direction(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int | None: ...
    @property
    def length(self) -> int: ...
    @property
    def flags(self) -> str: ...


class Drawing:
    """A matplotlib figure that shows itself in Jupyter as a PNG image.

    Made without pyplot (no global state, nothing opens a window), so Jupyter's
    matplotlib integration does not know about it: ``_repr_png_`` renders it
    with the Agg canvas instead. ``figure`` is the matplotlib figure, for
    ``drawing.figure.savefig("graph.svg")`` and further drawing.
    """

    def __init__(self, figure: Figure) -> None:
        self.figure = figure

    def png(self, *, dpi: int = 90) -> bytes:
        return figure_png(self.figure, dpi=dpi)

    def _repr_png_(self) -> bytes:
        return self.png()

    def __repr__(self) -> str:
        width, height = self.figure.get_size_inches()
        return f"<Drawing {width:g}x{height:g} in, {len(self.figure.axes)} axes>"


def time_sequence_graph(
    rows: Iterable[SequencePoint], *, title: str = "", client: str = "client", server: str = "server"
) -> Drawing:
    """A time-sequence graph like Wireshark's Stevens / tcptrace graphs, one panel per direction.

    Each segment is a vertical bar from its relative sequence number to the
    end of its data (a dot for a segment without data; SYN and FIN marked), at
    the time it was seen; the line is the other side's acknowledgment number
    over time, so the gap between bars and line is data in flight. ``rows``
    need ``t``, ``direction`` (``"c2s"``/``"s2c"``), relative ``seq`` and
    ``ack``, ``length`` and ``flags`` (the rows of ``l4kit replay`` and
    :meth:`Stepper.rows` do).
    """
    figure_class = _matplotlib_figure()
    data = list(rows)
    fig = figure_class(figsize=(9.5, 5.2))
    axes = fig.subplots(2, 1, sharex=True)
    names = {"c2s": f"{client} → {server}", "s2c": f"{server} → {client}"}
    for ax, direction, colour in ((axes[0], "c2s", "#1f77b4"), (axes[1], "s2c", "#9467bd")):
        _time_sequence_panel(ax, data, direction, colour)
        ax.set_title(f"data {names[direction]}", fontsize=10, loc="left")
        ax.set_ylabel("relative sequence number")
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return Drawing(fig)


def _time_sequence_panel(ax: Axes, rows: list[SequencePoint], direction: str, colour: str) -> None:
    sent = [r for r in rows if r.direction == direction]
    acks = [(r.t, r.ack) for r in rows if r.direction != direction and r.ack is not None and "A" in r.flags]
    for r in sent:
        top = r.seq + max(r.length, 0)
        if r.length > 0:
            ax.plot([r.t, r.t], [r.seq, top], color=colour, linewidth=2.2, solid_capstyle="butt")
            ax.plot([r.t], [top], marker="_", color=colour, markersize=8)
        marker = "o" if "S" in r.flags else ("s" if "F" in r.flags else ("x" if "R" in r.flags else "."))
        ax.plot(
            [r.t],
            [top if "F" in r.flags else r.seq],
            marker=marker,
            color=colour,
            markersize=6 if marker != "." else 4,
            linestyle="none",
        )
    if acks:
        times = [t for t, _ in acks]
        values = [a for _, a in acks]
        ax.step(times, values, where="post", color="#2ca02c", linewidth=1.0, label="ack from the other side")
    # Legend entries for the markers (empty plots: proxies that draw nothing).
    ax.plot([], [], color=colour, linewidth=2.2, label="data (seq to seq+len)")
    ax.plot([], [], marker="o", color=colour, linestyle="none", label="SYN")
    ax.plot([], [], marker="s", color=colour, linestyle="none", label="FIN")
    ax.legend(loc="upper left", fontsize=7.5)
    if not sent:
        ax.text(
            0.5, 0.5, "no segments in this direction", transform=ax.transAxes, ha="center", color="#777777"
        )


def figure_png(fig: Figure, *, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG octets (the Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _matplotlib_figure() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "drawing needs matplotlib, which is not installed", hint="pip install 'l4kit[notebooks]'"
        ) from None
    return Figure


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


def _arrow_label(step: Step) -> str:
    seg = step.segment
    if seg is None:
        return step.label
    parts = [step.label, f"seq={seg.seq.value}"]
    if seg.flags & TcpFlags.ACK:
        parts.append(f"ack={seg.ack.value}")
    if seg.payload:
        parts.append(f"len={len(seg.payload)} {_short(seg.payload)}")
    return " ".join(parts)


def _describe(sent: _Outgoing) -> str:
    tcp = sent.template[TCP]
    flags = TcpFlags(int(tcp.flags))
    payload = bytes(tcp.payload)
    arrow = _ARROWS["c2s" if sent.sender == CLIENT_SIDE else "s2c"]
    text = f"{sent.sender} {arrow} {flags.letters or '.'} seq={int(tcp.seq)}"
    if flags & TcpFlags.ACK:
        text += f" ack={int(tcp.ack)}"
    if payload:
        text += f" {_short(payload)}"
    return text


_FLAG_NAMES: Final = {
    TcpFlags.FIN: "FIN",
    TcpFlags.SYN: "SYN",
    TcpFlags.RST: "RST",
    TcpFlags.PSH: "PSH",
    TcpFlags.ACK: "ACK",
    TcpFlags.URG: "URG",
    TcpFlags.ECE: "ECE",
    TcpFlags.CWR: "CWR",
    TcpFlags.NS: "NS",
}


def _flag_names(flags: TcpFlags) -> str:
    return "+".join(name for bit, name in _FLAG_NAMES.items() if flags & bit) or "none"


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


def _words(data: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        data += b"\x00"  # RFC 1071 §4.1: pad an odd length with a zero octet on the right
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def _hex_words(words: Sequence[int]) -> str:
    return " ".join(f"{w:04x}" for w in words)


def _dedupe(labels: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for label in labels:
        if label not in seen:
            seen.append(label)
    return seen


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _segment_expression(seg: Segment) -> str:
    """The Scapy line that makes ``seg`` (flags as letters, as ``TCP(flags="SA")`` takes them)."""
    ip_name = "IPv6" if seg.is_ipv6 else "IP"
    tcp: dict[str, Any] = {
        "sport": seg.sport,
        "dport": seg.dport,
        "flags": seg.flags.letters,
        "seq": seg.seq.value,
        "ack": seg.ack.value,
        "window": seg.window,
    }
    pkt = to_scapy(seg)
    options = pkt[TCP].options
    if options:
        tcp["options"] = options
    text = f"{ip_name}(src={seg.src!r}, dst={seg.dst!r}) / TCP({_kwargs_text(tcp)})"
    if seg.payload:
        text += f" / Raw(load={seg.payload!r})"
    return text


def _endpoint(name: str, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with its address in canonical text; a clear error for a name or a bad port.

    An address, never a host name: Scapy would look a name up in the DNS, and the stepper is offline.
    """
    try:
        address = ipaddress.ip_address(endpoint.addr)
    except ValueError:
        raise ConfigError(f"{name} address {endpoint.addr!r} is not an IP address") from None
    if not 1 <= endpoint.port <= 65535:
        raise ConfigError(f"{name} port {endpoint.port} is outside 1-65535")
    return Endpoint(str(address), endpoint.port)


def _ip_layer(pkt: Packet) -> Packet:
    for layer in pkt.iterpayloads():
        if isinstance(layer, (IP, IPv6)):
            return layer
    raise SteppingError(f"no IP or IPv6 layer in {pkt.summary()}")


def _built(pkt: Packet) -> Packet:
    """``pkt`` built and dissected again: lengths and checksums filled in, as a capture shows it."""
    ip_layer = _ip_layer(pkt)
    return type(ip_layer)(raw(ip_layer))


def _tcp_bytes(built: Packet) -> bytes:
    """The TCP header and data of a built IPv4/IPv6 packet (link padding cut off by the IP length)."""
    data = raw(built)
    if isinstance(built, IPv6):
        return data[40 : 40 + int(built.plen)]
    header = (data[0] & 0x0F) * 4
    return data[header : int(built.len)]


__all__ = [
    "CLIENT",
    "CLIENT_ISN",
    "NOTEBOOK_SECRET",
    "SERVER",
    "SERVER_ISN",
    "STEP_SECONDS",
    "ChecksumWorking",
    "Drawing",
    "ScriptedClient",
    "SequenceDiagram",
    "SequencePoint",
    "StateChange",
    "Step",
    "StepRow",
    "Stepper",
    "SteppingError",
    "figure_png",
    "time_sequence_graph",
]

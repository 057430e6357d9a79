"""The scripted Scapy client (:class:`ScriptedClient`) and what it puts on the wire.

Also the helpers that write a segment as the Scapy line that makes it and check the
endpoints a stepper is given.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from l4kit.codecs.scapy_codec import to_scapy
from l4kit.core import State
from l4kit.errors import ConfigError
from l4kit.notebook.scenario import CLIENT_SIDE, SteppingError
from l4kit.wire import Endpoint, Segment, SeqNum, TcpFlags


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

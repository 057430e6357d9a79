"""The :class:`Stepper`: the scripted client and the l4kit core, one delivered segment per step.

The package docstring (:mod:`l4kit.notebook`) says what a step shows and why.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from scapy.layers.inet import TCP
from scapy.packet import Packet

from l4kit.codecs.scapy_codec import from_scapy, to_scapy
from l4kit.core import (
    ConnectionClosed,
    Event,
    Listener,
    ListenerConfig,
    Routes,
    SegmentDropped,
    State,
    StateChanged,
    make_app_factory,
)
from l4kit.drivers.transitions import TransitionRecorder
from l4kit.errors import ConfigError
from l4kit.notebook.client import ScriptedClient, _endpoint, _Outgoing, _segment_expression
from l4kit.notebook.diagram import SequenceDiagram, StepRow
from l4kit.notebook.scenario import (
    _ARROWS,
    CLIENT,
    CLIENT_ISN,
    CLIENT_SIDE,
    NOTEBOOK_SECRET,
    SERVER,
    SERVER_ISN,
    SERVER_SIDE,
    STEP_SECONDS,
    StateChange,
    SteppingError,
)
from l4kit.notebook.step import Step, _label_flags, _short, _stories, _wrap_note
from l4kit.notebook.working import ChecksumWorking, _built, _ip_layer
from l4kit.wire import Endpoint, FourTuple, Segment, SeqNum, TcpFlags


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
        self.recorder = TransitionRecorder()  # which state change each server segment shows
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
        rows = self.recorder.feed_all(out.events)
        server_change = StateChange(server_before, server_before)
        notes: list[str] = []
        for row in rows:
            if row.received and row.segment is segment:
                server_change = StateChange(row.before, row.after)
        for event in out.events:
            if isinstance(event, SegmentDropped):
                notes.append(
                    f"core: dropped, {event.reason}" + (f" ({event.detail})" if event.detail else "")
                )
            elif isinstance(event, StateChanged) and event.why:
                notes.append(f"core: {event.before} → {event.after}, {event.why}")
            elif isinstance(event, ConnectionClosed) and event.key == self.key:
                self._server_closed = True
                notes.append(f"core: connection closed, {event.why}")
        replies = [row for row in rows if not row.received]
        self._put(
            (
                _Outgoing(
                    SERVER_SIDE,
                    to_scapy(row.segment),
                    _segment_expression(row.segment),
                    row.before,
                    row.after,
                    row.why,
                )
                for row in replies
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
        self.recorder.feed_all(out.events)
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

"""The replay engine: frames in, one report per TCP connection out.

Theory of operation
===================

Frames come from :class:`~l4kit.replay.capture.CaptureReader` one at a time. Each
is decoded by the wire layer (:mod:`l4kit.wire.link` for the link header, then
:func:`l4kit.replay.fastpath.decode`, which classifies the TCP checksum as ok,
bad or offloaded) and handed to its *conversation*: the connection it belongs
to, found by its 4-tuple.

Conversations
-------------
* Keyed by the 4-tuple, both directions. A SYN without ACK whose sequence
  number differs from the client's ISN starts a *new* conversation on the same
  4-tuple when the previous one has closed (both FINs, or a RST) or never got an
  answer: port reuse, noted ``port numbers reused`` as Wireshark does. (tshark
  also splits on a new-ISN SYN inside an open connection; l4kit keeps that in
  the connection and notes the RFC 5961 challenge ACK the receiver owes, since
  that is what a SYN injection looks like.)
* The client is the sender of the first SYN without ACK. Without one: the
  receiver of a SYN-ACK; otherwise the endpoint with the higher port (ephemeral
  ports are the high ones), and on a tie the first sender. When that makes the
  first packet's sender the server, Zeek's history starts with ``^``.
* Ids count from 0 in the order of each conversation's first packet, as
  tshark's ``tcp.stream`` does.

Memory
------
Nothing is kept per packet except, for the connections being shown, up to
``max_rows`` packet records each (small tuples). A conversation is *finished* —
its report emitted through ``on_connection`` and its state dropped — when it
has closed and then been quiet for ``linger`` seconds of capture time (late
ACKs and retransmitted FINs still land in it), when a SYN reuses its 4-tuple,
or at the end of the capture. Memory is therefore bounded by the connections
open at any moment, not by the size of the file, and reports come out in the
order connections finish (each carries its id).

Per packet
----------
Each shown conversation runs three independent observers: Zeek's
``conn_state``/``history`` (:mod:`l4kit.replay.zeek`), Wireshark's sequence
analysis notes (:mod:`l4kit.replay.analysis`) and both sides' RFC 9293 states
(:mod:`l4kit.replay.states`). A segment with a bad TCP checksum, or in a packet
with a bad IPv4 header checksum, is shown but not given to the observers: the
receiving stack drops it (RFC 9293 §3.10.7; Zeek ignores it too and records
``C``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from l4kit.core.states import State
from l4kit.errors import ParseError
from l4kit.replay import fastpath
from l4kit.replay.analysis import SequenceAnalysis
from l4kit.replay.model import (
    R_CLIENT_BEFORE,
    R_FRAME,
    R_SERVER_BEFORE,
    ConnectionReport,
    PacketRecord,
    ReplaySummary,
    StateTransition,
)
from l4kit.replay.states import PassiveStates
from l4kit.replay.zeek import ZeekConnection
from l4kit.wire import link

if TYPE_CHECKING:  # the responder (and the core) are imported only for --through-responder
    from l4kit.core import Routes
    from l4kit.replay.responder import ThroughResponder

_MASK32: Final = 0xFFFFFFFF
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10

DEFAULT_MAX_ROWS: Final = 1000
DEFAULT_LINGER: Final = 10.0
MAX_HISTORY: Final = 4096  # a hostile trace could grow Zeek's history without end

NOTE_BAD_IP_CHECKSUM: Final = "bad IPv4 header checksum: dropped by the receiver"
NOTE_BAD_TCP_CHECKSUM: Final = "bad TCP checksum: dropped by the receiver"
NOTE_REFUSED: Final = "no listener: the server answered the SYN with RST (RFC 9293 §3.10.7.1)"
NOTE_PORT_REUSE: Final = "port numbers reused"
NOTE_SIMULTANEOUS_OPEN: Final = "simultaneous open: both sides sent a SYN (RFC 9293 §3.5)"

_BAD: Final = fastpath.BAD
_decode: Final = fastpath.decode
_NO_NOTES: Final[tuple[str, ...]] = ()
_SIDES: Final = ("client", "server")


def _endpoint_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Conversation:
    """One TCP connection being followed."""

    __slots__ = (
        "analysis",
        "client",
        "closed",
        "fin_c",
        "fin_s",
        "isn",
        "keys",
        "report",
        "rst",
        "selected",
        "states",
        "through",
        "zeek",
    )

    def __init__(self, report: ConnectionReport, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.report = report
        self.client = client
        self.keys = (
            (client[0], client[1], server[0], server[1]),
            (server[0], server[1], client[0], client[1]),
        )
        self.isn: list[int | None] = [None, None]  # the SYN sequence number seen from each side
        self.fin_c = False
        self.fin_s = False
        self.rst = False
        self.closed = False
        self.selected = False
        self.zeek: ZeekConnection | None = None
        self.analysis: SequenceAnalysis | None = None
        self.states: PassiveStates | None = None
        self.through: ThroughResponder | None = None


class Replayer:
    """Feed it frames in capture order; it calls ``on_connection`` once per finished
    connection that is shown (``--port`` / ``--stream``), and :meth:`finish`
    flushes the rest and returns the summary."""

    def __init__(
        self,
        on_connection: Callable[[ConnectionReport], None],
        *,
        file: str = "",
        port: int | None = None,
        stream: int | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        linger: float = DEFAULT_LINGER,
        through_responder: Routes | None = None,
    ) -> None:
        """``through_responder``: the routes to run l4kit's responder with on each
        shown connection's client side (``--through-responder``); None: do not."""
        self.on_connection = on_connection
        self.routes = through_responder
        self.port = port
        self.stream = stream
        self.max_rows = max_rows
        self.linger = linger
        self.summary = ReplaySummary(file=file)
        self._open: dict[tuple[str, int, str, int], Conversation] = {}
        self._closing: deque[tuple[float, Conversation]] = deque()
        self._next_id = 0
        self.current: ConnectionReport | None = None  # the report of the last record returned
        self._decoders: dict[int, Callable[[bytes], bytes]] = {}

    # ------------------------------------------------------------------ frames

    def feed(self, number: int, t: float, linktype: int, frame: bytes, wirelen: int) -> PacketRecord | None:
        """One captured frame. Returns its record when it belongs to a shown
        connection (whose report is then :attr:`current`), else None.

        This is the per-packet path: the three observers are called from here with
        plain values, and the record is a tuple.
        """
        summary = self.summary
        summary.packets += 1
        summary.last_time = t
        try:
            decoder = self._decoders.get(linktype) or self._decoder_for(linktype)
            ip = decoder(frame)
            src, dst, sport, dport, seq, ack, flags, window, payload_len, head, status, ip_ok, wscale = (
                _decode(ip)
            )
        except ParseError as exc:
            summary.skipped[exc.reason] = summary.skipped.get(exc.reason, 0) + 1
            if summary.first_time is None:
                summary.first_time = t
            return None
        if not ip_ok:
            summary.ip_checksum_bad += 1
        if self._closing and self._closing[0][0] + self.linger < t:
            self._expire(t)

        # ---- the conversation, a new one on port reuse
        conv = self._open.get((src, sport, dst, dport))
        reused = False
        if conv is not None and flags & (SYN | ACK) == SYN:
            # Port reuse: a SYN from a side whose earlier SYN had another sequence number,
            # on a connection that closed or never got an answer (as tshark splits streams,
            # which compares with the same direction's ISN).
            isn = conv.isn[0 if sport == conv.client[1] and src == conv.client[0] else 1]
            if isn is not None and seq != isn and (conv.closed or not conv.report.s2c.packets):
                self._finish(conv)
                conv = None
                reused = True
        if conv is None:
            if summary.first_time is None:
                summary.first_time = t
            conv = self._start(src, sport, dst, dport, flags, t, number)
        d = 0 if sport == conv.client[1] and src == conv.client[0] else 1

        report = conv.report
        stats = report.s2c if d else report.c2s
        stats.packets += 1
        stats.bytes += wirelen
        stats.payload += payload_len
        report.end = t
        report.last_frame = number
        report.checksum[status] += 1
        if flags & SYN:
            conv.isn[d] = seq
        dropped = status is _BAD or not ip_ok
        if flags & (RST | FIN) and not dropped and not conv.closed:
            if flags & RST:
                conv.rst = True
            elif d:
                conv.fin_s = True
            else:
                conv.fin_c = True
            if conv.rst or (conv.fin_c and conv.fin_s):
                conv.closed = True
                self._closing.append((t, conv))
        if not conv.selected:
            return None

        # ---- the three observers
        zeek = conv.zeek
        analysis = conv.analysis
        states = conv.states
        assert zeek is not None and analysis is not None and states is not None
        self.current = report
        sides = states.sides
        client_before = sides[0].state
        server_before = sides[1].state
        fwd = analysis.sides[d]
        notes: tuple[str, ...]
        if dropped:
            notes = (NOTE_BAD_TCP_CHECKSUM if ip_ok else NOTE_BAD_IP_CHECKSUM,)
            zeek.bad_checksum(not d)
        else:
            if len(zeek.history) < MAX_HISTORY:
                zeek.packet(not d, flags, seq, ack, payload_len, window)
            if flags & SYN:
                analysis.note_window_scale(d, flags, wscale)
            notes = analysis.segment(d, t, number, flags, seq, ack, 0 if flags & RST else payload_len, window)
            if notes:
                counts = report.analysis
                for n in notes:
                    name = n.split(" #", 1)[0]
                    counts[name] = counts.get(name, 0) + 1
            shift = fwd.win_scale
            rfc_note = states.segment(
                d,
                flags,
                seq,
                ack,
                payload_len + (flags & SYN) // SYN + (flags & FIN),
                window << shift if shift > 0 and not flags & SYN else window,
            )
            if rfc_note:
                notes += (rfc_note,)
            if states.hindsight:
                # What this segment showed changes what earlier rows said.
                states.hindsight = False
                if states.correction is not None:
                    side, wrong, right = states.correction
                    self._correct_early_fin(report, side, wrong, right)
                    if side == 0 and client_before is wrong:
                        client_before = right
                    elif side == 1 and server_before is wrong:
                        server_before = right
                if states.refused and NOTE_REFUSED not in report.notes:
                    report.notes.append(NOTE_REFUSED)
                    notes += (NOTE_REFUSED,)
                    self._correct_refused(report)
                    server_before = State.CLOSED
                elif states.active_server and NOTE_SIMULTANEOUS_OPEN not in report.notes:
                    report.notes.append(NOTE_SIMULTANEOUS_OPEN)
                    notes += (NOTE_SIMULTANEOUS_OPEN,)
                    self._correct_refused(report)
                    server_before = State.CLOSED
        if reused:
            notes = (NOTE_PORT_REUSE, *notes)

        # ---- the record
        base = analysis.sides[1 - d].base_seq
        client_after = sides[0].state
        server_after = sides[1].state
        record: PacketRecord = (
            number,
            t - report.start,
            d,
            flags,
            (seq - (fwd.base_seq or 0)) & _MASK32,
            ((ack - (base or 0)) & _MASK32) if flags & ACK else None,
            payload_len,
            window,
            status,
            notes,
            head,
            client_before,
            client_after,
            server_before,
            server_after,
        )
        rows = report.rows
        if len(rows) < self.max_rows:
            rows.append(record)
        else:
            report.rows_omitted += 1
        if client_before is not client_after or server_before is not server_after:
            self._transitions(report, record)
        if conv.through is not None:
            if d:
                conv.through.server_packet(number, ip)
            else:
                conv.through.client_packet(t, number, ip)
        return record

    def _decoder_for(self, linktype: int) -> Callable[[bytes], bytes]:
        decoder = link.decoder_for(linktype)  # raises ParseError("unsupported-linktype")
        self._decoders[linktype] = decoder
        self.summary.linktypes.append(linktype)
        return decoder

    def _start(  # noqa: PLR0917 - called from the per-packet path with its plain values
        self, src: str, sport: int, dst: str, dport: int, flags: int, t: float, frame: int
    ) -> Conversation:
        if flags & SYN:
            sender_is_client = not flags & ACK  # a SYN-ACK answers the client
        elif sport != dport:
            sender_is_client = sport > dport  # ephemeral ports are the high ones
        else:
            sender_is_client = True
        client, server = ((src, sport), (dst, dport)) if sender_is_client else ((dst, dport), (src, sport))
        cid = self._next_id
        self._next_id += 1
        summary = self.summary
        summary.connections += 1
        report = ConnectionReport(
            id=cid,
            client=_endpoint_text(*client),
            server=_endpoint_text(*server),
            start=t,
            end=t,
            first_frame=frame,
            last_frame=frame,
        )
        conv = Conversation(report, client, server)
        if (self.port is None or self.port in (sport, dport)) and (self.stream is None or self.stream == cid):
            conv.selected = True
            summary.shown += 1
            conv.zeek = ZeekConnection(flipped=not sender_is_client)
            conv.analysis = SequenceAnalysis()
            conv.states = PassiveStates()
            note = conv.states.start(0 if sender_is_client else 1, flags)
            if note:
                report.notes.append(note)
            if self.routes is not None:
                from l4kit.replay.responder import ThroughResponder

                conv.through = ThroughResponder(self.routes, client, server)
        for key in conv.keys:
            self._open[key] = conv
        return conv

    def _transitions(self, report: ConnectionReport, rec: PacketRecord) -> None:
        index = report.packets - 1
        for side, before, after in ((0, rec[11], rec[12]), (1, rec[13], rec[14])):
            if before is not after:
                if len(report.transitions) < self.max_rows:
                    report.transitions.append(
                        StateTransition(rec[1], index, rec[0], _SIDES[side], before, after)
                    )
                else:
                    report.transitions_omitted += 1

    @staticmethod
    def _correct_early_fin(report: ConnectionReport, side: int, wrong: State, right: State) -> None:
        """A FIN was shown processed when captured, but the receiver's next segment
        showed it had not got it yet: rewrite that side's state in the rows since."""
        before_i = R_CLIENT_BEFORE if side == 0 else R_SERVER_BEFORE
        after_i = before_i + 1
        rows = report.rows
        for i in range(len(rows) - 1, -1, -1):
            rec = rows[i]
            if rec[after_i] is not wrong:
                break
            fixed = list(rec)
            fixed[after_i] = right
            if rec[before_i] is wrong:
                fixed[before_i] = right
            rows[i] = tuple(fixed)  # type: ignore[assignment]
            if rec[before_i] is not wrong:  # the row that applied the FIN
                name = _SIDES[side]
                report.transitions = [
                    tr for tr in report.transitions if not (tr.frame == rec[R_FRAME] and tr.side == name)
                ]
                break

    @staticmethod
    def _correct_refused(report: ConnectionReport) -> None:
        """The server side turned out to have no listener (it refused, or opened actively
        itself): it was CLOSED all along, not LISTEN / SYN-RECEIVED as the rows made
        before that showed said."""
        closed = State.CLOSED
        fixed = {State.LISTEN: closed, State.SYN_RECEIVED: closed}
        report.rows = [(*r[:13], fixed.get(r[13], r[13]), fixed.get(r[14], r[14])) for r in report.rows]
        report.transitions = [tr for tr in report.transitions if tr.side != "server"]

    # ------------------------------------------------------------ finishing

    def _expire(self, now: float) -> None:
        closing = self._closing
        while closing and closing[0][0] + self.linger < now:
            queued_at, conv = closing.popleft()
            if self._open.get(conv.keys[0]) is not conv:
                continue  # already finished (port reuse)
            if conv.report.end > queued_at:
                closing.append((conv.report.end, conv))  # still active after closing: look again later
                continue
            self._finish(conv)

    def _finish(self, conv: Conversation) -> None:
        for key in conv.keys:
            if self._open.get(key) is conv:
                del self._open[key]
        report = conv.report
        summary = self.summary
        summary.tcp_packets += report.c2s.packets + report.s2c.packets
        for status, count in report.checksum.items():
            summary.checksum[status] += count
        if not conv.selected:
            return
        zeek = conv.zeek
        states = conv.states
        assert zeek is not None and states is not None
        report.state = zeek.conn_state()
        history = zeek.history_string
        report.history = history if len(history) < MAX_HISTORY else history + "…"
        report.client_state = states.client.value
        report.server_state = states.server.value
        if conv.through is not None:
            report.differences = conv.through.differences()
            conv.through = None
        self.on_connection(report)

    def finish(self) -> ReplaySummary:
        """End of the capture: finish every open connection (in id order) and return the summary."""
        remaining = sorted({id(c): c for c in self._open.values()}.values(), key=lambda c: c.report.id)
        for conv in remaining:
            self._finish(conv)
        self._closing.clear()
        return self.summary

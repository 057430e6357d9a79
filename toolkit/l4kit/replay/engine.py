"""The replay engine: frames in, one report per TCP connection out.

Theory of operation
===================

Frames come from :class:`~l4kit.replay.capture.CaptureReader` one at a time
(:meth:`Replayer.run` reads them all; :meth:`Replayer.feed` takes one). Each is
decoded in place (:mod:`l4kit.wire.link` finds the IP header,
:func:`l4kit.replay.fastpath.decode_at` reads the IP and TCP headers, and the TCP
checksum is classified as ok, bad or offloaded when the packet's connection is
analysed here) and handed to its *conversation*: the connection it belongs to,
found by its 4-tuple.

Frames and ids as tshark numbers them
-------------------------------------
Every frame tshark gives a ``tcp.stream`` gets the same connection here
(``docs/replay-json.md``, Numbering): an IP fragment goes to the
:class:`~l4kit.replay.fragments.Reassembler`, and the datagram it completes is
analysed in that frame; an odd segment (SYN+FIN, port 0, a bogus header length,
an ICMP error's quote) comes with an *oddity* from the decoder, a note and how far
the observers take it. ``--filter`` (``frame_filter``) decides only which records
are kept: every frame is analysed, so a filtered run shows a subset of the
unfiltered run's rows, numbered the same.

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

Several processes
-----------------
A capture can be split between processes by connection (``shards``/``shard``,
:mod:`l4kit.replay.parallel`): every process follows every conversation (ids,
closes, port reuse, when each finishes) and analyses only its share, so the
reports of all of them merge into exactly the order one process makes.

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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from l4kit.core.states import State
from l4kit.errors import ParseError
from l4kit.replay import fastpath
from l4kit.replay.analysis import WS_NONE, SequenceAnalysis
from l4kit.replay.capture import Frame
from l4kit.replay.fragments import FragmentError, Reassembler
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
from l4kit.wire.flags import ACK_BIT as ACK
from l4kit.wire.flags import FIN_BIT as FIN
from l4kit.wire.flags import RST_BIT as RST
from l4kit.wire.flags import SYN_BIT as SYN
from l4kit.wire.ip import address_text
from l4kit.wire.seqnum import MASK

if TYPE_CHECKING:  # the responder (and the core) are imported only for --through-responder
    from l4kit.core import Routes
    from l4kit.replay.responder import Collector


DEFAULT_MAX_ROWS: Final = 1000
DEFAULT_LINGER: Final = 10.0
MAX_HISTORY: Final = 4096  # a hostile trace could grow Zeek's history without end

NOTE_BAD_IP_CHECKSUM: Final = "bad IPv4 header checksum: dropped by the receiver"
NOTE_BAD_TCP_CHECKSUM: Final = "bad TCP checksum: dropped by the receiver"
NOTE_REFUSED: Final = "no listener: the server answered the SYN with RST (RFC 9293 §3.10.7.1)"
NOTE_PORT_REUSE: Final = "port numbers reused"
NOTE_SIMULTANEOUS_OPEN: Final = "simultaneous open: both sides sent a SYN (RFC 9293 §3.5)"

_BAD: Final = fastpath.BAD
_OBSERVE_ALL: Final = fastpath.OBSERVE_ALL
_OBSERVE_NONE: Final = fastpath.OBSERVE_NONE
_WS_NONE: Final = WS_NONE
_NO_NOTES: Final[tuple[str, ...]] = ()
_SIDES: Final = ("client", "server")
_tuple_new: Final = tuple.__new__
_ETHERNET_IP: Final = (b"\x08\x00", b"\x86\xdd")  # EtherType IPv4, IPv6

OnRecord = Callable[[ConnectionReport, PacketRecord, int, bytes], bool]
"""``(report, record, linktype, frame) -> stop``: see :meth:`Replayer.run`."""

FrameFilter = Callable[[bytes], bool]
"""Whether a frame is shown (``--filter``): called with every frame, in capture order."""


def _no_offset(frame: bytes) -> int:
    raise AssertionError("a linktype's offset function is looked up before use")


def _endpoint_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Conversation:
    """One TCP connection being followed.

    ``listed``: it passes ``--port``/``--stream``, so it has a place in the output;
    ``owned``: this process accounts for it (always, unless the capture is split
    between processes, see :class:`Replayer`); ``selected``: both, so its packets
    go through the observers and its report is emitted.
    """

    __slots__ = (
        "analysis",
        "closed",
        "end",
        "fin_c",
        "fin_s",
        "id",
        "isn",
        "keys",
        "listed",
        "owned",
        "packets",
        "report",
        "rst",
        "s2c_packets",
        "selected",
        "states",
        "through",
        "zeek",
    )

    def __init__(self, cid: int, keys: tuple[bytes, bytes], report: ConnectionReport | None) -> None:
        self.id = cid
        self.keys = keys  # (client to server, server to client), see fastpath.decode_at
        self.report = report  # None when another process accounts for it
        self.end = 0.0  # time of the last packet
        self.packets = 0
        self.s2c_packets = 0
        self.isn: list[int | None] = [None, None]  # the SYN sequence number seen from each side
        self.fin_c = False
        self.fin_s = False
        self.rst = False
        self.closed = False
        self.listed = False
        self.owned = True
        self.selected = False
        self.zeek: ZeekConnection | None = None
        self.analysis: SequenceAnalysis | None = None
        self.states: PassiveStates | None = None
        self.through: Collector | None = None


CollectorFactory = Callable[[int, tuple[str, int], tuple[str, int]], "Collector"]
"""``(id, client, server) -> collector``: what gets each shown connection's packets
(``--through-responder``, ``liveplay``); see :class:`l4kit.replay.responder.Collector`."""


class Replayer:
    """Feed it frames in capture order; it calls ``on_connection`` once per finished
    connection that is shown (``--port`` / ``--stream``), and :meth:`finish`
    flushes the rest and returns the summary.

    Splitting a capture between processes (``shards``, ``shard``): every process
    reads every frame and keeps the cheap bookkeeping of every connection (which
    connection a packet belongs to, when it closes, port reuse: this decides ids and
    the order reports come out in), but runs the observers and emits reports only
    for the connections whose ``id % shards == shard``, and counts checksum verdicts
    (TCP and IPv4 header) only for those: the summaries' ``shown``, ``checksum`` and
    ``ip_checksum_bad`` add up. :attr:`emitted` numbers every report any of the processes emits,
    in the order one process alone would emit them (``emitted - 1`` is the index of
    the report being emitted), so the outputs merge back in that order
    (:mod:`l4kit.replay.parallel`).
    """

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
        shards: int = 1,
        shard: int = 0,
        on_other_shard: Callable[[int, int], None] | None = None,
        time_digits: int = 9,
        conn_only: bool = False,
        frame_filter: FrameFilter | None = None,
        reassembler: Reassembler | None = None,
        collect: CollectorFactory | None = None,
    ) -> None:
        """``through_responder``: the routes to run l4kit's responder with on each
        shown connection's client side (``--through-responder``); None: do not.
        ``on_other_shard(index, shard)``: called where another shard's report comes
        in the output (see :mod:`l4kit.replay.parallel`). ``time_digits``: the decimals
        of the capture's timestamps (:attr:`CaptureReader.time_digits`), kept on each
        report for the JSON text. ``frame_filter``: which frames are shown (``--filter``);
        the others are analysed all the same, so ids, frame numbers and every row shown
        are those of the run without it. ``reassembler``: how IP fragments are put
        together (a :class:`~l4kit.replay.fragments.Reassembler` with the kernel's
        limits by default). ``conn_only``: run only Zeek's observer, for what
        conn.log says (no packet records, analysis notes or RFC 9293 states).
        ``collect``: makes the collector that gets the packets of each shown connection,
        in order, and its report when it is finished (``liveplay`` reads the turns of each
        connection this way)."""
        self.on_connection = on_connection
        self.routes = through_responder
        self.collect = collect
        self.port = port
        self.stream = stream
        self.max_rows = max_rows
        self.linger = linger
        self.shards = shards
        self.shard = shard
        self.on_other_shard = on_other_shard
        self.time_digits = time_digits
        self.conn_only = conn_only
        self.frame_filter = frame_filter
        self.reassembler = reassembler if reassembler is not None else Reassembler()
        self.summary = ReplaySummary(file=file)
        # The capture being read: each report names the one its first packet came from
        # (several captures read as one, see l4kit.replay.inputs, change it between files).
        self.file = file
        # Both keys of every open conversation, each with the direction it stands for.
        self._open: dict[bytes, tuple[Conversation, int]] = {}
        self._open_count = 0
        self._closing: deque[tuple[float, Conversation]] = deque()
        self._next_id = 0
        self.emitted = 0  # reports emitted so far, by this process or (when split) another
        self.current: ConnectionReport | None = None  # the report of the last record returned
        self._offsets: dict[int, Callable[[bytes], int]] = {}

    @property
    def open_connections(self) -> int:
        """How many connections are being followed (what memory is bounded by)."""
        return self._open_count

    # ------------------------------------------------------------------ frames

    def feed(self, number: int, t: float, linktype: int, frame: bytes, wirelen: int) -> PacketRecord | None:
        """One captured frame. Returns its record when it belongs to a shown
        connection (whose report is then :attr:`current`), else None.

        For one frame at a time (a notebook, ``--step``); :meth:`run` reads a whole
        capture faster.
        """
        records: list[PacketRecord] = []

        def keep(report: ConnectionReport, record: PacketRecord, linktype: int, frame: bytes) -> bool:
            records.append(record)
            return False

        self.run(((number, t, linktype, frame, wirelen),), keep)
        return records[0] if records else None

    def run(self, frames: Iterable[Frame], on_record: OnRecord | None = None) -> bool:
        """Feed every frame of ``frames`` in order.

        ``on_record(report, record, linktype, frame)`` is called with the record of
        each packet of a shown connection (its report is also :attr:`current`); when
        it returns True, reading stops and ``run`` returns True.

        This is the per-packet path of replay: one loop with what it uses in local
        variables, the three observers called with plain values, the record a tuple.
        """
        summary = self.summary
        # Methods and functions are called directly, not through local aliases: once
        # compiled (setup.py), a direct call is a C call, an alias a Python one.
        opened = self._open
        closing = self._closing
        linger = self.linger
        max_rows = self.max_rows
        ethernet_ip = _ETHERNET_IP
        head_len = fastpath.HEAD
        frame_filter = self.frame_filter
        visible = True
        matched = 0
        last_linktype = -1
        offset_of: Callable[[bytes], int] = _no_offset
        packets = 0
        t = 0.0
        first_time = summary.first_time
        stopped = False
        try:
            for number, t, linktype, frame, wirelen in frames:
                packets += 1
                if first_time is None:
                    first_time = summary.first_time = t
                if frame_filter is not None:
                    visible = frame_filter(frame)
                    if visible:
                        matched += 1
                try:
                    if linktype != last_linktype:
                        offset_of = self._offset_for(linktype)
                        last_linktype = linktype
                    # Ethernet without VLAN tags, the common case, without a call
                    offset = 14 if linktype == 1 and frame[12:14] in ethernet_ip else offset_of(frame)
                    decoded = fastpath.decode_at(frame, offset, wirelen - len(frame))
                except FragmentError as fragment:
                    whole = self._defragment(frame, fragment.offset, offset, linktype, t)
                    if whole is None:
                        continue
                    # From here on the frame is the reassembled packet (what --step shows too).
                    decoded, frame = whole  # noqa: PLW2901
                    offset = 0
                    linktype = link.LINKTYPE_RAW  # noqa: PLW2901
                except ParseError as exc:
                    skipped = summary.skipped
                    skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
                    continue
                (
                    key,
                    sport,
                    dport,
                    seq,
                    ack,
                    flags,
                    window,
                    payload_len,
                    ip_ok,
                    wscale,
                    status,
                    head,
                    start,
                    end,
                    oddity,
                ) = decoded
                if closing and closing[0][0] + linger < t:
                    self._expire(t)

                # ---- the conversation, a new one on port reuse
                entry = opened.get(key)
                reused = False
                if entry is not None:
                    conv, d = entry
                    if flags & (SYN | ACK) == SYN:
                        # Port reuse: a SYN from a side whose earlier SYN had another sequence
                        # number, on a connection that closed or never got an answer (as tshark
                        # splits streams, which compares with the same direction's ISN).
                        isn = conv.isn[d]
                        if isn is not None and seq != isn and (conv.closed or not conv.s2c_packets):
                            self._finish(conv)
                            conv, d = self._start(key, sport, dport, flags, t, number)
                            reused = True
                else:
                    conv, d = self._start(key, sport, dport, flags, t, number)

                conv.end = t
                conv.packets += 1
                if d:
                    conv.s2c_packets += 1
                if flags & SYN:
                    conv.isn[d] = seq
                report = conv.report
                if report is not None:  # owned: counted here
                    stats = report.s2c if d else report.c2s
                    stats.packets += 1
                    stats.bytes += wirelen
                    stats.payload += payload_len
                    # in place, the segment ends where the IP packet does
                    stats.ip_bytes += end - offset if start else fastpath.ip_length(frame, offset)
                    report.end = t
                    report.last_frame = number
                    if ip_ok is None:
                        ip_ok = fastpath.ipv4_header_ok(frame, offset)
                    if not ip_ok:
                        summary.ip_checksum_bad += 1
                    if status is None:
                        status = fastpath.checksum_status(frame, key, start, end)
                    report.checksum[status] += 1
                if flags & (RST | FIN) and not conv.closed and (oddity is None or oddity[1] == _OBSERVE_ALL):
                    if ip_ok is None:
                        ip_ok = fastpath.ipv4_header_ok(frame, offset)
                    if status is None:
                        status = fastpath.checksum_status(frame, key, start, end)
                    if status is not _BAD and ip_ok:
                        if flags & RST:
                            conv.rst = True
                        elif d:
                            conv.fin_s = True
                        else:
                            conv.fin_c = True
                        if conv.rst or (conv.fin_c and conv.fin_s):
                            conv.closed = True
                            closing.append((t, conv))
                if not conv.selected:
                    continue
                if conv.analysis is None:
                    # conn.log only (conn_only): Zeek's observer, no packet record
                    zeek = conv.zeek
                    assert zeek is not None and report is not None
                    if status is _BAD or not ip_ok:
                        zeek.bad_checksum(not d)
                    elif oddity is None or oddity[1] != _OBSERVE_NONE:
                        if not zeek.both_closed:
                            report.zeek_end = t
                        if len(zeek.history) < MAX_HISTORY:
                            zeek.packet(not d, flags, seq, ack, payload_len, window)
                    continue
                if head is None:
                    head = frame[end - payload_len : end - payload_len + head_len] if payload_len else b""

                # ---- the three observers
                zeek = conv.zeek
                analysis = conv.analysis
                states = conv.states
                # A selected conversation is owned: its report exists, both verdicts were made.
                assert zeek is not None and analysis is not None and states is not None
                assert report is not None and status is not None and ip_ok is not None
                sides = states.sides
                client_before = sides[0].state
                server_before = sides[1].state
                fwd = analysis.sides[d]
                notes: tuple[str, ...]
                observe = _OBSERVE_ALL if oddity is None else oddity[1]
                if status is _BAD or not ip_ok:
                    notes = (NOTE_BAD_TCP_CHECKSUM if ip_ok else NOTE_BAD_IP_CHECKSUM,)
                    zeek.bad_checksum(not d)
                elif observe == _OBSERVE_NONE:
                    notes = ()
                else:
                    if not zeek.both_closed:
                        report.zeek_end = t
                    if len(zeek.history) < MAX_HISTORY:
                        zeek.packet(not d, flags, seq, ack, payload_len, window)
                    if flags & SYN:
                        if start:  # decoded in place: the option is read now
                            wscale = fastpath.window_scale_at(frame, start)
                        analysis.note_window_scale(d, flags, wscale)
                    notes = analysis.segment(d, t, flags, seq, ack, 0 if flags & RST else payload_len, window)
                    if notes:
                        counts = report.analysis
                        for n in notes:
                            name = n.split(" #", 1)[0]
                            counts[name] = counts.get(name, 0) + 1
                    if observe == _OBSERVE_ALL:
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
                            client_before, server_before, notes = self._hindsight(
                                report, states, client_before, server_before, notes
                            )
                        via = states.via
                        if via is not None:
                            # The sender processed the peer's FIN before sending this segment:
                            # that change is its own transition, and this row starts after it.
                            v_side, v_state = via
                            v_before = client_before if v_side == 0 else server_before
                            if v_state is not v_before and v_state is not sides[v_side].state:
                                self._transition(
                                    report,
                                    t - report.start,
                                    conv.packets - 1,
                                    number,
                                    v_side,
                                    v_before,
                                    v_state,
                                )
                                notes += (
                                    f"{_SIDES[v_side]} processed the FIN first: {v_before} → {v_state}",
                                )
                                if v_side == 0:
                                    client_before = v_state
                                else:
                                    server_before = v_state
                if oddity is not None:
                    notes = oddity[0] + notes
                if reused:
                    notes = (NOTE_PORT_REUSE, *notes)

                if conv.through is not None:
                    self._through(conv.through, d, t, number, frame[offset:])

                # ---- the record
                if not visible:
                    continue  # --filter: analysed, not shown
                base = analysis.sides[1 - d].base_seq
                client_after = sides[0].state
                server_after = sides[1].state
                since_start = t - report.start
                # The window's scale: a SYN's window is never scaled (RFC 7323 §2.2).
                scale = fwd.win_scale
                record: PacketRecord = (
                    number,
                    since_start,
                    d,
                    flags,
                    (seq - (fwd.base_seq or 0)) & MASK,
                    ((ack - (base or 0)) & MASK) if flags & ACK else None,
                    payload_len,
                    window,
                    status,
                    notes,
                    head,
                    client_before,
                    client_after,
                    server_before,
                    server_after,
                    0 if flags & SYN or scale == _WS_NONE else scale,
                )
                rows = report.rows
                if len(rows) < max_rows:
                    rows.append(record)
                else:
                    report.rows_omitted += 1
                if client_before is not client_after:
                    self._transition(
                        report, since_start, conv.packets - 1, number, 0, client_before, client_after
                    )
                if server_before is not server_after:
                    self._transition(
                        report, since_start, conv.packets - 1, number, 1, server_before, server_after
                    )
                if on_record is not None:
                    self.current = report
                    if on_record(report, record, linktype, frame):
                        stopped = True
                        break
        finally:
            summary.packets += packets
            if packets:
                summary.last_time = t
            if frame_filter is not None:
                summary.filter_frames = (summary.filter_frames or 0) + matched
        return stopped

    @staticmethod
    def _through(through: Collector, d: int, t: float, number: int, ip: bytes) -> None:
        if d:
            through.server_packet(t, number, ip)
        else:
            through.client_packet(t, number, ip)

    def _hindsight(
        self,
        report: ConnectionReport,
        states: PassiveStates,
        client_before: State,
        server_before: State,
        notes: tuple[str, ...],
    ) -> tuple[State, State, tuple[str, ...]]:
        """What this segment showed changes what earlier rows said: correct them, and
        the states before this segment."""
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
        return client_before, server_before, notes

    def _offset_for(self, linktype: int) -> Callable[[bytes], int]:
        summary = self.summary
        if linktype not in summary.linktypes:
            summary.linktypes.append(linktype)
        offset_of = self._offsets.get(linktype)
        if offset_of is None:
            if not link.is_supported(linktype):
                # A pcapng interface of a link type l4kit does not read: its frames are
                # counted (skipped) and the other interfaces' shown.
                unsupported = summary.unsupported_linktypes
                unsupported[linktype] = unsupported.get(linktype, 0) + 1
            offset_of = link.ip_offset_for(linktype)  # raises ParseError("unsupported-linktype")
            self._offsets[linktype] = offset_of
        return offset_of

    def _defragment(
        self, frame: bytes, ip_offset: int, link_offset: int, linktype: int, t: float
    ) -> tuple[fastpath.Decoded, bytes] | None:
        """An IP fragment: None until it completes its datagram, then the datagram's
        segment decoded and the reassembled packet (see :mod:`l4kit.replay.fragments`)."""
        skipped = self.summary.skipped
        # Wireshark keeps the fragments of different VLANs apart (the innermost tag's id).
        vlan = frame[link_offset - 4 : link_offset - 2] if linktype == 1 and link_offset > 14 else b""
        try:
            whole = self.reassembler.add(frame, ip_offset, t, vlan)
            if whole is None:
                return None
            packet, drop_notes = whole
            decoded = fastpath.decode_at(packet, 0, 0)
        except ParseError as exc:  # a fragment that cannot be read, or a datagram without TCP
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            return None
        if drop_notes:  # a receiver would have dropped the datagram: shown, not analysed
            oddity = decoded[14]
            notes = drop_notes + oddity[0] if oddity is not None else drop_notes
            decoded = (*decoded[:14], (notes, _OBSERVE_NONE))
        return decoded, packet

    def _start(  # noqa: PLR0917 - called from the per-packet path with its plain values
        self, key: bytes, sport: int, dport: int, flags: int, t: float, frame: int
    ) -> tuple[Conversation, int]:
        """A new conversation, started by this packet; returns it and the packet's direction."""
        if flags & SYN:
            sender_is_client = not flags & ACK  # a SYN-ACK answers the client
        elif sport != dport:
            sender_is_client = sport > dport  # ephemeral ports are the high ones
        else:
            sender_is_client = True
        half = (len(key) - 4) >> 1  # see fastpath.reverse_key
        back = key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]
        cid = self._next_id
        self._next_id += 1
        summary = self.summary
        summary.connections += 1
        listed = (self.port is None or self.port in (sport, dport)) and (
            self.stream is None or self.stream == cid
        )
        owned = self.shards == 1 or cid % self.shards == self.shard
        keys = (key, back) if sender_is_client else (back, key)
        if not owned:
            # Another process accounts for it: only what decides ids and the order of
            # reports is kept here.
            conv = Conversation(cid, keys, None)
            conv.owned = False
            conv.listed = listed
        else:
            src, dst = address_text(key[:half]), address_text(key[half : 2 * half])
            client, server = (
                ((src, sport), (dst, dport)) if sender_is_client else ((dst, dport), (src, sport))
            )
            report = ConnectionReport(
                id=cid,
                client=_endpoint_text(*client),
                server=_endpoint_text(*server),
                start=t,
                end=t,
                first_frame=frame,
                last_frame=frame,
                time_digits=self.time_digits,
                file=self.file,
                client_ip=key[:half] if sender_is_client else key[half : 2 * half],
                client_port=client[1],
                server_ip=key[half : 2 * half] if sender_is_client else key[:half],
                server_port=server[1],
                zeek_end=t,
            )
            conv = Conversation(cid, keys, report)
            conv.listed = listed
            if listed:
                conv.selected = True
                summary.shown += 1
                conv.zeek = ZeekConnection(flipped=not sender_is_client)
                if not self.conn_only:
                    conv.analysis = SequenceAnalysis()
                    conv.states = PassiveStates()
                    note = conv.states.start(0 if sender_is_client else 1, flags)
                    if note:
                        report.notes.append(note)
                if self.collect is not None:
                    conv.through = self.collect(cid, client, server)
                elif self.routes is not None:
                    from l4kit.replay.responder import ThroughResponder

                    conv.through = ThroughResponder(self.routes, client, server)
        d = 0 if sender_is_client else 1
        if back == key:
            # Both ends are the same address and port (a socket connected to itself):
            # every packet matches the client's key, so all count as client to server.
            d = 0
        self._open[back] = (conv, 1 - d)
        self._open[key] = (conv, d)
        self._open_count += 1
        return conv, d

    def _transition(  # noqa: PLR0917 - from the per-packet path, with its plain values
        self,
        report: ConnectionReport,
        t: float,
        index: int,
        frame: int,
        side: int,
        before: State,
        after: State,
    ) -> None:
        """Side ``side`` moved from ``before`` to ``after`` at the connection's packet ``index``."""
        transitions = report.transitions
        if len(transitions) < self.max_rows:
            # tuple.__new__: a NamedTuple without its Python-level __new__ (per packet)
            transitions.append(_tuple_new(StateTransition, (t, index, frame, _SIDES[side], before, after)))
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
        report.rows = [
            (*r[:13], fixed.get(r[13], r[13]), fixed.get(r[14], r[14]), r[15]) for r in report.rows
        ]
        report.transitions = [tr for tr in report.transitions if tr.side != "server"]

    # ------------------------------------------------------------ finishing

    def _expire(self, now: float) -> None:
        closing = self._closing
        while closing and closing[0][0] + self.linger < now:
            queued_at, conv = closing.popleft()
            entry = self._open.get(conv.keys[0])
            if entry is None or entry[0] is not conv:
                continue  # already finished (port reuse)
            if conv.end > queued_at:
                closing.append((conv.end, conv))  # still active after closing: look again later
                continue
            self._finish(conv)

    def _finish(self, conv: Conversation) -> None:
        for key in conv.keys:
            entry = self._open.get(key)
            if entry is not None and entry[0] is conv:
                del self._open[key]
        self._open_count -= 1
        summary = self.summary
        summary.tcp_packets += conv.packets
        report = conv.report
        if report is not None:
            for status, count in report.checksum.items():
                summary.checksum[status] += count
        if (
            conv.selected
            and self.frame_filter is not None
            and report is not None
            and not report.rows
            and not report.rows_omitted
        ):
            summary.shown -= 1  # --filter matched none of its frames: not shown
            return
        if conv.listed:
            self.emitted += 1
            if report is None and self.on_other_shard is not None:
                self.on_other_shard(self.emitted - 1, conv.id % self.shards)
        if not conv.selected:
            return
        assert report is not None
        zeek = conv.zeek
        states = conv.states
        assert zeek is not None
        report.state = zeek.conn_state()
        report.orig_bytes = zeek.orig.size(zeek.resp)
        report.resp_bytes = zeek.resp.size(zeek.orig)
        report.missed_bytes = zeek.orig.missed + zeek.resp.missed
        history = zeek.history_string
        report.history = history if len(history) < MAX_HISTORY else history + "…"
        if states is not None:
            report.client_state = states.client.value
            report.server_state = states.server.value
        if conv.through is not None:
            conv.through.finish(report)
            conv.through = None
        self.on_connection(report)

    def finish(self) -> ReplaySummary:
        """End of the capture: finish every open connection (in id order) and return the summary."""
        remaining = sorted({id(c): c for c, _ in self._open.values()}.values(), key=lambda c: c.id)
        for conv in remaining:
            self._finish(conv)
        self._closing.clear()
        self.summary.fragments = dict(self.reassembler.finish())
        return self.summary

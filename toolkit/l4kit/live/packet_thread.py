"""What runs on the sniffer thread: frames in, the core, replies out.

:class:`Responder` is Scapy's ``prn``: for each frame the sniffer reads it decodes
the frame, feeds the segment to the core, encodes and sends the core's replies, and
serves the core's timers. It is the only thing that touches the core while the
responder runs (:mod:`l4kit.live.responder` starts and stops it).

Compiled by mypyc with the core (``setup.py``): its calls into the core, the codec and
the events are then native calls, and its counters plain integers, folded into the
:class:`~l4kit.live.report.ResponderSummary` when the run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from l4kit.checksum import ChecksumStatus
from l4kit.codecs.fast import FastCodec
from l4kit.core.events import ConnectionClosed, Output, SynCookie
from l4kit.core.listener import Listener
from l4kit.errors import ParseError
from l4kit.live.capture import ETHERNET_HEADER_LEN, TimerDue
from l4kit.live.pcap import PcapWriterThread
from l4kit.live.report import FrameDropped, ResponderSummary
from l4kit.live.ring import CapturedFrame
from l4kit.live.sender import FrameEncoder

#: Link addresses learned per peer IP address. A flood from spoofed addresses must not
#: grow this without end (one entry per address of a /8 is 2**24 entries): past the
#: bound the oldest entry goes; a live peer's next frame teaches its address again.
MAX_PEER_MACS: Final = 16_384
#: While frames keep coming the sniffer never sleeps until a timer is due, so the
#: packet thread asks the core about its timers itself, at most this often (seconds):
#: a timer fires at most this late, and the core is not asked after every frame.
TIMER_CHECK_INTERVAL: Final = 0.001

EventSink = Callable[[Sequence[object]], None]
"""Where the packet thread hands each batch of the core's events (the renderer's queue)."""


class FrameSender(Protocol):
    """Sends one frame; False when it could not (counted, never raised)."""

    def send(self, frame: bytes) -> bool: ...


_OFFLOADED: Final = ChecksumStatus.OFFLOADED
_OK: Final = ChecksumStatus.OK

# One codec decodes every frame (all it keeps is the text of recent addresses). It reads
# the common case (IPv4, no IP options) with one struct layout and leaves the rest to
# decode_packet, with the same results and errors (tests/unit/test_fast_codec.py); no
# frame is dissected by Scapy.
_DECODER: Final = FastCodec()


class Responder:
    """Decode, core, encode, send: the sniffer's ``prn``.

    ``encode`` writes every reply; ``encode_stateless`` the SYN-ACK that carries a SYN
    cookie (the core keeps nothing for it, and a flood makes it most of the replies):
    the Scapy codec builds that one from a template. ``sender`` is anything with
    ``send(frame) -> bool``.
    """

    def __init__(
        self,
        listener: Listener,
        *,
        mac: bytes,
        encode: FrameEncoder,
        sender: FrameSender,
        encode_stateless: FrameEncoder | None = None,
        pcap: PcapWriterThread | None = None,
        on_events: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listener = listener
        self.mac = mac
        self.encode = encode
        self.encode_stateless: FrameEncoder = encode if encode_stateless is None else encode_stateless
        self.sender = sender
        self.pcap = pcap
        self.on_events = on_events
        self.clock = clock
        self.summary = ResponderSummary()
        self.peer_macs: dict[str, bytes] = {}
        self.failure: BaseException | None = None
        self.failed = threading.Event()
        self._timers_checked_at = float("-inf")
        # Counters, folded into the summary by finish_summary().
        self.frames_in = 0
        self.frames_out = 0
        self.send_errors = 0
        self.checksum_offloaded = 0
        self.connections_closed = 0
        self.bytes_in = 0
        self.bytes_out = 0

    # The sniffer's prn. It must never raise: Scapy's sniff loop would close the
    # socket and the responder would go deaf while looking alive.
    def on_sniffed(self, item: CapturedFrame | TimerDue) -> None:
        try:
            if not isinstance(item, CapturedFrame):
                self.tick()
                return
            now = self.clock()
            self.on_frame(item, now)
            if now - self._timers_checked_at >= TIMER_CHECK_INTERVAL:
                self._timers_checked_at = now
                due = self.listener.poll_at()
                if due is not None and due <= now:
                    self.tick()
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
            self.failed.set()

    def on_frame(self, frame: CapturedFrame, now: float) -> None:
        data = frame.data
        self.frames_in += 1
        if self.pcap is not None:
            self.pcap.write(frame.wall_time, data)
        # The kernel may already know the checksum status: CHECKSUM_PARTIAL says the field
        # holds only the pseudo-header sum (docs/design.md, trap 5): the segment never left this
        # host, so it cannot be corrupt; it simply cannot be verified from the bytes.
        # CSUM_VALID says the card verified it. Either way the payload is not summed again.
        known: ChecksumStatus | None = None
        if frame.checksum_partial:
            known = _OFFLOADED
        elif frame.checksum_valid:
            known = _OK
        try:
            segment = _DECODER.decode(data[ETHERNET_HEADER_LEN:], known)
        except ParseError as exc:
            tag = f"{exc.layer}:{exc.reason}"
            self.summary.drops[tag] += 1
            if self.on_events is not None:
                self.on_events([FrameDropped(now, tag, exc.detail)])
            return
        if known is _OFFLOADED:
            self.checksum_offloaded += 1
        macs, src, mac = self.peer_macs, segment.src, data[6:12]
        if macs.get(src) != mac:
            if len(macs) >= MAX_PEER_MACS and src not in macs:
                del macs[next(iter(macs))]
            macs[src] = mac
        self.emit(self.listener.receive(segment, now))

    def tick(self) -> None:
        now = self.clock()
        self._timers_checked_at = now
        self.emit(self.listener.tick(now))

    def emit(self, out: Output) -> None:
        events = out.events
        stateless = False
        for event in events:
            kind = type(event)
            if kind is ConnectionClosed:
                assert isinstance(event, ConnectionClosed)
                self.connections_closed += 1
                self.bytes_in += event.bytes_in
                self.bytes_out += event.bytes_out
            elif kind is SynCookie:
                assert isinstance(event, SynCookie)
                stateless = not event.accepted
        # A SYN answered with a cookie: its SYN-ACK is the only segment.
        encode = self.encode_stateless if stateless and len(out.segments) == 1 else self.encode
        macs, mac = self.peer_macs, self.mac
        for segment in out.segments:
            frame = encode(segment, mac, macs.get(segment.dst, mac))
            if self.sender.send(frame):
                self.frames_out += 1
                if self.pcap is not None:
                    self.pcap.write(time.time(), frame)
            else:
                self.send_errors += 1
        if events and self.on_events is not None:
            self.on_events(events)

    def shutdown(self) -> None:
        """Abort what is still open (RST, RFC 9293 §3.10.4 ABORT); called from the
        main thread once the sniffer thread has stopped."""
        stats = self.listener.stats
        self.summary.open_at_exit = stats.connections_open
        self.summary.half_open_at_stop = stats.half_open
        self.emit(self.listener.shutdown(self.clock()))

    def finish_summary(self) -> ResponderSummary:
        """Fold the packet thread's counters and the core's into the summary.

        The connections closed are counted from the core's ConnectionClosed events:
        every connection the core opens ends with one (the stop aborts the rest), so
        the display's accounting adds up to this count."""
        summary = self.summary
        summary.frames_in = self.frames_in
        summary.frames_out = self.frames_out
        summary.send_errors = self.send_errors
        summary.checksum_offloaded = self.checksum_offloaded
        summary.connections_closed = self.connections_closed
        summary.bytes_in = self.bytes_in
        summary.bytes_out = self.bytes_out
        stats = self.listener.stats
        summary.connections = stats.connections_established
        summary.half_open_peak = stats.half_open_peak
        summary.max_half_open = self.listener.config.max_half_open
        summary.syn_cookies_sent = stats.syn_cookies_sent
        summary.syn_cookies_accepted = stats.syn_cookies_accepted
        summary.retransmissions = stats.retransmissions
        summary.fast_retransmits = stats.fast_retransmits
        summary.sack_recoveries = stats.sack_recoveries
        summary.loss_probes = stats.loss_probes
        summary.loss_probe_recoveries = stats.loss_probe_recoveries
        summary.timeouts = stats.timeouts
        summary.resets_sent = stats.resets_sent
        summary.resets_received = stats.resets_received
        summary.idle_closed = stats.idle_closed
        summary.idle_reset = stats.idle_reset
        for reason, count in stats.drops.items():
            summary.drops[str(reason)] += count
        return summary

"""IP fragment reassembly for replay: Wireshark's numbering, the receiver's verdict.

Wireshark reassembles IPv4 and IPv6 datagrams by default (``ip.defragment``,
``ipv6.defragment``): the fragments that do not complete a datagram show no TCP,
and the TCP segment appears in the frame whose fragment completes it, which for
fragments out of order is the last to arrive, not the one with the last offset.
Replay numbers frames and connections as tshark does, so it reassembles in the
same places. Each datagram is keyed as both tools key it: source, destination,
identification, the protocol (IPv4) and, as Wireshark does, the VLAN the frame
came on.

What a receiver would have done with the datagram is Linux's
(``net/ipv4/inet_fragment.c``, ``inet_frag_queue_insert``), and decides whether the
segment is analysed:

* a fragment that lies within fragments already queued is a duplicate: dropped, the
  datagram kept;
* one that overlaps part of what is queued makes the receiver discard the whole
  datagram (RFC 5722 for IPv6; Linux does the same for IPv4). Wireshark still
  reassembles it, so the segment is shown where tshark shows it, with a note, and
  not analysed;
* a fragment with a bad IPv4 header checksum is dropped before reassembly
  (``ip_rcv``): the datagram is shown the same way;
* a last fragment that disagrees with the length already known, a fragment past
  that length, an empty one, or one past 65,535 octets are malformed: dropped.

Memory is bounded as the kernel bounds it (``net.ipv4.ipfrag_*``,
``net.ipv6.ip6frag_*``): a datagram not complete :data:`IPV4_TIMEOUT` (IPv6:
:data:`IPV6_TIMEOUT`) seconds of capture time after its first fragment is dropped,
and while the fragments held exceed :data:`MEMORY` octets every new fragment is
dropped (the kernel counts its buffers' true size; this counts captured octets).
Wireshark keeps waiting instead, so a datagram whose fragments are further apart
than the timeout is reassembled by tshark and not here. :attr:`Reassembler.counts`
says what happened to every fragment and datagram; replay's summary shows it.
"""

from __future__ import annotations

import struct
from typing import Final

from l4kit.errors import ParseError

IPV4_TIMEOUT: Final = 30.0
"""Seconds a datagram may take to complete (Linux's ``net.ipv4.ipfrag_time``)."""

IPV6_TIMEOUT: Final = 60.0
"""The same for IPv6 (``net.ipv6.ip6frag_time``)."""

MEMORY: Final = 4 << 20
"""Octets of fragments held at most (``net.ipv4.ipfrag_high_thresh``, 4 MiB)."""

_MAX_DATAGRAM: Final = 0xFFFF
_IPV6_FRAGMENT: Final = 44
_IPV6_UNFRAGMENTABLE: Final = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_U16: Final = struct.Struct("!H")

NOTE_OVERLAP: Final = "overlapping IP fragments: the receiver discards the datagram (RFC 5722)"
NOTE_FRAGMENT_CHECKSUM: Final = "a fragment with a bad IPv4 header checksum: the receiver drops the datagram"

COUNT_NAMES: Final = {
    "frames": "frames were fragments",
    "reassembled": "datagrams reassembled",
    "overlap": "datagrams with overlapping fragments (shown, not analysed)",
    "ip-checksum": "datagrams with a fragment whose IPv4 header checksum is wrong (shown, not analysed)",
    "timeout": "datagrams dropped incomplete after the timeout",
    "incomplete": "datagrams still incomplete at the end of the capture",
    "memory": "fragments dropped over the memory budget",
    "duplicate": "duplicate fragments dropped",
    "malformed": "malformed fragments dropped",
}
"""The keys of :attr:`Reassembler.counts`, with what each counts."""

COMPLETED: Final = ("reassembled", "overlap", "ip-checksum")
"""The counts of datagrams completed, each in one of the ``frames``."""


class FragmentError(ParseError):
    """The IP packet at ``offset`` in the frame is a fragment: hand it to a :class:`Reassembler`."""

    def __init__(self, layer: str, offset: int, detail: str = "") -> None:
        super().__init__(layer, "fragment", detail)
        self.offset = offset


class _Datagram:
    """The fragments of one datagram so far."""

    __slots__ = (
        "created",
        "drop_notes",
        "header",
        "held",
        "length",
        "pieces",
        "runs",
        "timeout",
    )

    def __init__(self, created: float, timeout: float) -> None:
        self.created = created
        self.timeout = timeout
        # (offset, data) in arrival order: what Wireshark puts together.
        self.pieces: list[tuple[int, bytes]] = []
        # The receiver's queue as Linux keeps it: runs of adjacent fragments, [start, end).
        self.runs: list[list[int]] = []
        self.length: int | None = None  # known once the last fragment is in
        self.header: bytes | None = None  # the first fragment's headers, for the reassembled packet
        self.held = 0
        self.drop_notes: list[str] = []

    def insert(self, start: int, end: int) -> str:
        """Linux's verdict on a fragment ``[start, end)``: ``"ok"``, ``"duplicate"`` or ``"overlap"``.

        A fragment past the end of the last run extends it when adjacent or starts a
        new run; anything else must lie in a gap between runs (a run of its own), or
        entirely within one run (a duplicate); otherwise it overlaps."""
        runs = self.runs
        if not runs:
            runs.append([start, end])
            return "ok"
        tail = runs[-1]
        if tail[1] < end:
            if start < tail[1]:
                return "overlap"
            if start == tail[1]:
                tail[1] = end
            else:
                runs.append([start, end])
            return "ok"
        for i, (run_start, run_end) in enumerate(runs):
            if end <= run_start:
                runs.insert(i, [start, end])
                return "ok"
            if start >= run_end:
                continue
            return "duplicate" if start >= run_start and end <= run_end else "overlap"
        raise AssertionError("a fragment ending before the last run's end lies before it")

    def complete(self) -> bool:
        """Wireshark's test: the last fragment is in and the data covers ``[0, length)``."""
        if self.length is None:
            return False
        covered = 0
        for offset, data in sorted(self.pieces, key=lambda p: p[0]):
            if offset > covered:
                return False
            covered = max(covered, offset + len(data))
        return covered >= self.length

    def data(self) -> bytes:
        """The payload as Wireshark puts it together: by offset, the first fragment at
        an offset winning over later ones where they overlap."""
        assert self.length is not None
        out = bytearray(self.length)
        filled = 0
        for offset, data in sorted(self.pieces, key=lambda p: p[0]):  # stable: arrival order kept
            end = min(offset + len(data), self.length)
            if end > filled:
                begin = max(offset, filled)
                out[begin:end] = data[begin - offset : end - offset]
                filled = end
        return bytes(out)


class Reassembler:
    """Feed it every fragment in capture order (:meth:`add`); it returns each datagram
    in the frame that completes it."""

    def __init__(
        self, *, ipv4_timeout: float = IPV4_TIMEOUT, ipv6_timeout: float = IPV6_TIMEOUT, memory: int = MEMORY
    ) -> None:
        self.ipv4_timeout = ipv4_timeout
        self.ipv6_timeout = ipv6_timeout
        self.memory = memory
        self.held = 0  # octets of fragments held, all datagrams
        # In order of creation, which is the order they time out in (the timeout runs from
        # the first fragment, as the kernel's timer does).
        self._datagrams: dict[tuple[bytes, ...], _Datagram] = {}
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _expire(self, now: float) -> None:
        datagrams = self._datagrams
        while datagrams:
            key = next(iter(datagrams))
            datagram = datagrams[key]
            if now - datagram.created <= datagram.timeout:
                break
            del datagrams[key]
            self.held -= datagram.held
            self._count("timeout")

    def add(
        self, frame: bytes, offset: int, t: float, vlan: bytes = b""
    ) -> tuple[bytes, tuple[str, ...]] | None:
        """The fragment of the IP packet at ``offset`` in ``frame`` (captured at ``t``,
        on VLAN ``vlan``). Returns ``(packet, notes)`` when it completes its datagram:
        the reassembled IP packet, and why a receiver would drop it (empty: it would
        not). Raises :class:`ParseError` for a header that cannot be read."""
        if frame[offset] >> 4 == 4:
            parsed = _ipv4_fragment(frame, offset)
            timeout = self.ipv4_timeout
        else:
            parsed = _ipv6_fragment(frame, offset)
            timeout = self.ipv6_timeout
        self._count("frames")
        self._expire(t)
        key_fields, start, more, data, header, drop_note = parsed
        key = (*key_fields, vlan)
        end = start + len(data)
        if self.held > self.memory:  # as inet_frag_find: nothing is queued while over the budget
            self._count("memory")
            return None
        datagram = self._datagrams.get(key)
        if datagram is None:
            datagram = _Datagram(t, timeout)
            self._datagrams[key] = datagram
        # Linux's checks of the fragment's place (ip_frag_queue, ip6_frag_queue).
        if not more:
            if (datagram.length is not None and end != datagram.length) or any(
                e > end for _, e in datagram.runs
            ):
                self._count("malformed")
                return None
        elif datagram.length is not None and end > datagram.length:
            self._count("malformed")
            return None
        if end == start or end > _MAX_DATAGRAM:
            self._count("malformed")
            return None
        verdict = datagram.insert(start, end)
        if verdict == "duplicate":
            self._count("duplicate")
            return None
        if verdict == "overlap" and NOTE_OVERLAP not in datagram.drop_notes:
            datagram.drop_notes.append(NOTE_OVERLAP)
        if drop_note and drop_note not in datagram.drop_notes:
            datagram.drop_notes.append(drop_note)
        if not more:
            datagram.length = end
        if start == 0 and datagram.header is None:
            datagram.header = header
        datagram.pieces.append((start, data))
        datagram.held += len(data)
        self.held += len(data)
        if datagram.header is None or datagram.length is None or datagram.held < datagram.length:
            return None  # (enough octets is necessary; complete() says whether they cover it all)
        if not datagram.complete():
            return None
        del self._datagrams[key]
        self.held -= datagram.held
        if NOTE_OVERLAP in datagram.drop_notes:
            self._count("overlap")
        elif datagram.drop_notes:
            self._count("ip-checksum")
        else:
            self._count("reassembled")
        return _reassembled(datagram.header, datagram.data()), tuple(datagram.drop_notes)

    def finish(self) -> dict[str, int]:
        """The end of the capture: the datagrams still waiting are counted as incomplete."""
        for datagram in self._datagrams.values():
            self.held -= datagram.held
            self._count("incomplete")
        self._datagrams.clear()
        return self.counts


# ---------------------------------------------------------------- the headers

# (key fields, offset in the datagram, more fragments follow, the fragment's data,
#  the headers a reassembled packet starts with, a note when a receiver drops it)
_Parsed = tuple[tuple[bytes, ...], int, bool, bytes, bytes, str]


def _ipv4_fragment(frame: bytes, offset: int) -> _Parsed:
    available = len(frame) - offset
    if available < 20:
        raise ParseError("ipv4", "truncated", "a fragment's IPv4 header is cut short")
    header_len = (frame[offset] & 0x0F) * 4
    (total,) = _U16.unpack_from(frame, offset + 2)
    if header_len < 20 or total < header_len:
        raise ParseError("ipv4", "bad-ihl", "a fragment's IPv4 header is malformed")
    if header_len > available or total > available:
        raise ParseError("ipv4", "truncated", "a fragment cut short by the capture")
    (flags_offset,) = _U16.unpack_from(frame, offset + 6)
    header = frame[offset : offset + header_len]
    note = "" if int.from_bytes(header, "big") % 0xFFFF == 0 else NOTE_FRAGMENT_CHECKSUM
    key = (
        b"4",
        frame[offset + 12 : offset + 20],
        frame[offset + 4 : offset + 6],
        frame[offset + 9 : offset + 10],
    )
    data = frame[offset + header_len : offset + total]
    return key, (flags_offset & 0x1FFF) * 8, bool(flags_offset & 0x2000), data, header, note


def _ipv6_fragment(frame: bytes, offset: int) -> _Parsed:
    available = len(frame) - offset
    if available < 40:
        raise ParseError("ipv6", "truncated", "a fragment's IPv6 header is cut short")
    (payload_len,) = _U16.unpack_from(frame, offset + 4)
    end = offset + 40 + payload_len
    if end > len(frame):
        raise ParseError("ipv6", "truncated", "a fragment cut short by the capture")
    next_header = frame[offset + 6]
    pointer = offset + 6  # where the next-header value that names the Fragment header is
    position = offset + 40
    while next_header in _IPV6_UNFRAGMENTABLE:
        if position + 8 > end:
            raise ParseError("ipv6", "truncated", "an extension header past the payload")
        pointer = position
        next_header = frame[position]
        position += (frame[position + 1] + 1) * 8
    if next_header != _IPV6_FRAGMENT or position + 8 > end:
        raise ParseError("ipv6", "truncated", "no readable Fragment header")
    upper = frame[position]
    (offset_more,) = _U16.unpack_from(frame, position + 2)
    ident = frame[position + 4 : position + 8]
    # The headers before the Fragment header, naming the fragment's upper layer instead.
    header = bytearray(frame[offset:position])
    header[pointer - offset] = upper
    key = (b"6", frame[offset + 8 : offset + 40], ident)
    data = frame[position + 8 : end]
    return key, offset_more & 0xFFF8, bool(offset_more & 1), data, bytes(header), ""


def _reassembled(header: bytes, data: bytes) -> bytes:
    """The datagram as one unfragmented packet: the first fragment's headers with the
    lengths set, the fragmentation fields cleared (IPv4: and the header checksum made
    right; a receiver that would drop the datagram is said by the notes)."""
    if header[0] >> 4 == 4:
        head = bytearray(header)
        _U16.pack_into(head, 2, len(head) + len(data))
        head[6] &= 0x40  # keep DF, clear MF and the offset
        head[7] = 0
        head[10:12] = b"\x00\x00"
        rest = int.from_bytes(head, "big") % 0xFFFF
        _U16.pack_into(head, 10, 0xFFFF - rest if rest else 0)
        return bytes(head) + data
    head = bytearray(header)
    _U16.pack_into(head, 4, len(head) - 40 + len(data))
    return bytes(head) + data

"""The out-of-order buffer: data that arrived after a gap, held until the gap fills.

RFC 9293 §3.10.7.4 (seventh): segments with higher beginning sequence numbers
than RCV.NXT "may be held for later processing". Holding them is what lets two
halves of a request that arrive in the wrong order be delivered once and in order.

Positions are plain ints on the receive side's *offset* axis (0 is the peer's
SYN, 1 its first data octet), never raw sequence numbers, so there is no wrap to
get wrong here: the connection converts at the edge.

The buffer is bounded twice, per connection: by octets (``max_bytes``) and by the
number of disjoint ranges held (``max_segments``), because a peer that sends
one-octet segments with gaps between them would otherwise cost one Python
object per octet. A segment that would break either bound is refused whole
(the caller drops it with ``DropReason.OUT_OF_ORDER_FULL``; the peer retransmits).
Where new data overlaps data already held, the octets already held win (the
first copy is kept; RFC 9293 leaves the choice to the implementation).
"""

from __future__ import annotations


class ReassemblyBuffer:
    """Disjoint, sorted ranges ``[start, start + len(data))`` and a FIN position."""

    __slots__ = ("_ranges", "fin_offset", "held_bytes", "max_bytes", "max_segments")

    def __init__(self, *, max_bytes: int, max_segments: int) -> None:
        self._ranges: list[tuple[int, bytes]] = []
        self.held_bytes = 0
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.fin_offset: int | None = None

    @property
    def segments(self) -> int:
        """Disjoint ranges held (what ``max_segments`` bounds)."""
        return len(self._ranges)

    def ranges(self) -> list[tuple[int, int]]:
        """The ranges held, ``(start, end)``, in order (what SACK blocks report)."""
        return [(start, start + len(data)) for start, data in self._ranges]

    def __bool__(self) -> bool:
        return bool(self._ranges) or self.fin_offset is not None

    def insert(self, start: int, data: bytes, *, fin: bool) -> bool:
        """Hold ``data`` found at ``start`` (``fin``: the FIN follows it).

        Returns False, holding nothing, when the bounds would be exceeded.
        """
        end = start + len(data)
        if self.fin_offset is not None and end > self.fin_offset:
            # Nothing exists after the FIN; a peer that says otherwise is confused.
            data = data[: max(self.fin_offset - start, 0)]
            end = start + len(data)
            fin = False
        pieces: list[tuple[int, bytes]] = []
        cursor = start
        for r_start, r_data in self._ranges:
            r_end = r_start + len(r_data)
            if r_end <= cursor:
                continue
            if r_start >= end:
                break
            if r_start > cursor:
                pieces.append((cursor, data[cursor - start : r_start - start]))
            cursor = max(cursor, r_end)
        if cursor < end:
            pieces.append((cursor, data[cursor - start :]))
        added = sum(len(p) for _, p in pieces)
        merged = self._merged(pieces) if pieces else self._ranges
        if self.held_bytes + added > self.max_bytes or len(merged) > self.max_segments:
            return False
        self._ranges = merged
        self.held_bytes += added
        if (
            fin
            and self.fin_offset is None
            and not (self._ranges and self._ranges[-1][0] + len(self._ranges[-1][1]) > end)
        ):
            self.fin_offset = end
        return True

    def _merged(self, pieces: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        combined = sorted(self._ranges + pieces, key=lambda r: r[0])
        out: list[tuple[int, bytes]] = []
        for r_start, r_data in combined:
            if out and out[-1][0] + len(out[-1][1]) == r_start:
                out[-1] = (out[-1][0], out[-1][1] + r_data)
            else:
                out.append((r_start, r_data))
        return out

    def pop_ready(self, rcv_next: int) -> tuple[bytes, bool]:
        """Take the octets that now follow ``rcv_next`` without a gap.

        Returns the data and whether the FIN directly follows it. Ranges that lie
        wholly before ``rcv_next`` (already delivered by an overlapping segment)
        are discarded.
        """
        chunks: list[bytes] = []
        cursor = rcv_next
        while self._ranges:
            r_start, r_data = self._ranges[0]
            r_end = r_start + len(r_data)
            if r_start > cursor:
                break
            self._ranges.pop(0)
            self.held_bytes -= len(r_data)
            if r_end > cursor:
                chunks.append(r_data[cursor - r_start :])
                cursor = r_end
        fin = self.fin_offset is not None and self.fin_offset == cursor
        if fin:
            self.fin_offset = None
        return b"".join(chunks), fin

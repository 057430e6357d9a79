"""The sniffer's receive ring: PACKET_MMAP, TPACKET_V2 (packet_mmap.rst in the kernel's docs).

The kernel copies each frame the BPF filter accepts into a slot of a ring shared
with this process, writes a header in front of it (status, lengths, timestamp,
checksum flags, the ``sockaddr_ll``) and flips the slot's status to
``TP_STATUS_USER``; the reader copies the frame out and hands the slot back by
writing ``TP_STATUS_KERNEL``. A frame costs no system call: the reader blocks in
``select`` only when the slot it looks at next is still the kernel's, and reads
every frame that is there when it wakes up. ``recvmsg`` on a plain packet socket
costs a ``select`` and a ``recvmsg`` for every frame, plus the ancillary data that
carries the checksum status.

Why TPACKET_V2 and not V3 (variable-length frames in blocks): V3 wakes the reader
only when a block is closed, full or at its retire timeout (whole milliseconds),
not for each frame. The responder answers one frame at a time: with V3 every
handshake waited for the timeout (about 2 ms a SYN-ACK on loopback, measured; the
kernel's own TCP answers in tens of microseconds). V2 wakes the reader for every
frame that finds it asleep.

Slots have a fixed size (:data:`FRAME_SIZE`): small, so that a burst of short frames
(SYNs, ACKs, requests) fits many to the megabyte. A longer frame
(loopback's MTU is 64 KiB, and GSO makes larger ones) is marked ``TP_STATUS_COPY``:
with ``PACKET_COPY_THRESH`` set, the kernel also queues the whole frame on the
socket, where ``recv`` reads it, in the same order. A frame too long for the slot
that the kernel could not queue (the socket buffer was full) is counted as
truncated.

The ring is a fixed amount of kernel memory (``--rcvbuf``): when every slot is
full, the kernel drops the frame and counts it (``PACKET_STATISTICS``).
"""

from __future__ import annotations

import mmap
import socket
import struct
from typing import Any, Final

SOL_PACKET: Final = 263
PACKET_RX_RING: Final = 5
PACKET_COPY_THRESH: Final = 7
PACKET_VERSION: Final = 10
TPACKET_V2: Final = 1

TP_STATUS_USER: Final = 1 << 0
TP_STATUS_COPY: Final = 1 << 1
TP_STATUS_CSUMNOTREADY: Final = 1 << 3
TP_STATUS_CSUM_VALID: Final = 1 << 7

#: One slot: the 32-octet header, the sockaddr_ll, then the frame from ``tp_mac`` on
#: (66 on Ethernet): 958 octets of frame; 16,384 slots in the default 16 MiB.
FRAME_SIZE: Final = 1024
#: The ring is made of blocks of slots; the kernel allocates each block in one piece.
BLOCK_SIZE: Final = 64 * 1024
#: Longer frames than a slot holds come through the socket; this is the longest read.
LONG_FRAME: Final = 65536 + 1024

# struct tpacket2_hdr (linux/if_packet.h): tp_status, tp_len, tp_snaplen, tp_mac, tp_net,
# tp_sec, tp_nsec (then VLAN fields and padding: 32 octets in all).
_HEADER: Final = struct.Struct("=IIIHHII")
_STATUS_KERNEL: Final = b"\x00\x00\x00\x00"
# struct sockaddr_ll follows the header at TPACKET_ALIGN(32); sll_pkttype is its octet 10.
_PKTTYPE_OFFSET: Final = 32 + 10
_PACKET_OUTGOING: Final = int(socket.PACKET_OUTGOING)
_MSG_DONTWAIT: Final = int(socket.MSG_DONTWAIT)
_MSG_TRUNC: Final = int(socket.MSG_TRUNC)


class CapturedFrame:
    """One inbound frame as the sniffer hands it to the responder: its bytes, the
    kernel's receive time (wall clock) and the checksum status the kernel knows.

    ``sniffed_on`` is set by Scapy's sniff loop (it labels every object it reads).
    """

    __slots__ = ("checksum_partial", "checksum_valid", "data", "sniffed_on", "wall_time")

    def __init__(self, data: bytes, wall_time: float, checksum_partial: bool, checksum_valid: bool) -> None:
        self.data = data
        self.wall_time = wall_time
        self.checksum_partial = checksum_partial
        self.checksum_valid = checksum_valid
        self.sniffed_on: Any = None


def ring_geometry(ring_bytes: int) -> tuple[int, int, int]:
    """(block size, blocks, slots) for a ring of at most ``ring_bytes`` (at least one
    page: two slots)."""
    page = mmap.PAGESIZE
    block = BLOCK_SIZE if ring_bytes >= BLOCK_SIZE else max(page, FRAME_SIZE)
    blocks = max(1, ring_bytes // block)
    return block, blocks, blocks * (block // FRAME_SIZE)


class RxRing:
    """A TPACKET_V2 receive ring on ``sock``, an ``AF_PACKET`` socket not yet bound.

    Only one thread reads it (the sniffer's).
    """

    def __init__(self, sock: socket.socket, ring_bytes: int) -> None:
        block, blocks, slots = ring_geometry(ring_bytes)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("=IIII", block, blocks, FRAME_SIZE, slots))
        sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
        self.bytes = block * blocks
        self._sock = sock
        self._map = mmap.mmap(sock.fileno(), self.bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        per_block = block // FRAME_SIZE
        self._slots = [b * block + f * FRAME_SIZE for b in range(blocks) for f in range(per_block)]
        self._next = 0
        self.truncated = 0

    @property
    def slots(self) -> int:
        return len(self._slots)

    def ready(self) -> bool:
        """Whether the next slot holds a frame (no system call)."""
        return bool(self._map[self._slots[self._next]] & TP_STATUS_USER)

    def read(self, limit: int) -> list[CapturedFrame]:
        """Up to ``limit`` frames, in arrival order; empty when the ring is."""
        ring, slots, index = self._map, self._slots, self._next
        count = len(slots)
        frames: list[CapturedFrame] = []
        while len(frames) < limit:
            offset = slots[index]
            if not ring[offset] & TP_STATUS_USER:
                break
            status, length, snaplen, start, _net, seconds, nanoseconds = _HEADER.unpack_from(ring, offset)
            outgoing = ring[offset + _PKTTYPE_OFFSET] == _PACKET_OUTGOING
            data: bytes | None
            if status & TP_STATUS_COPY:
                data = self._read_long()
            elif snaplen < length:
                data = None
            else:
                data = ring[offset + start : offset + start + snaplen]
            ring[offset : offset + 4] = _STATUS_KERNEL
            index += 1
            if index == count:
                index = 0
            if data is None:
                self.truncated += 1
            elif not outgoing:  # the filter rejects these already: a second check (trap 2)
                frames.append(
                    CapturedFrame(
                        data,
                        seconds + nanoseconds * 1e-9,
                        bool(status & TP_STATUS_CSUMNOTREADY),
                        bool(status & TP_STATUS_CSUM_VALID),
                    )
                )
        self._next = index
        return frames

    def _read_long(self) -> bytes | None:
        """The whole of a frame longer than a slot, queued on the socket."""
        try:
            data, _, flags, _ = self._sock.recvmsg(LONG_FRAME, 0, _MSG_DONTWAIT)
        except OSError:
            return None
        return None if flags & _MSG_TRUNC else data

    def discard(self) -> int:
        """Hand every slot that holds a frame back to the kernel; returns how many."""
        count = 0
        while self.ready():
            count += len(self.read(1024))
        return count

    def close(self) -> None:
        self._map.close()

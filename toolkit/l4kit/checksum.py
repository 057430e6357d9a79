"""The Internet checksum (RFC 1071) in pure Python.

(Issue 3 fills this module: internet_checksum, tcp_checksum, the RFC 1624
incremental update and offload-aware verification.)
"""

from __future__ import annotations

import enum


class ChecksumStatus(enum.Enum):
    """What a received segment's checksum says.

    ``OK``: the field is the correct one's-complement checksum.
    ``BAD``: neither correct nor an offloaded partial sum: the segment is corrupt.
    ``OFFLOADED``: the sender left the checksum to hardware (or, on Linux
    loopback, to nobody): the field holds the folded pseudo-header sum and the
    segment cannot be verified from the bytes alone.
    """

    OK = "ok"
    BAD = "bad"
    OFFLOADED = "offloaded"

    def __str__(self) -> str:
        return self.value

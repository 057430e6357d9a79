"""The wire layer: sequence numbers, flags, options, header codecs.

Imports nothing of l4kit above ``errors`` and ``checksum``.
"""

from l4kit.wire.flags import TcpFlags
from l4kit.wire.options import (
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)
from l4kit.wire.segment import Endpoint, FourTuple, Segment
from l4kit.wire.seqnum import SeqNum

__all__ = [
    "EndOfOptions",
    "Endpoint",
    "FourTuple",
    "MaxSegmentSize",
    "NoOperation",
    "Sack",
    "SackPermitted",
    "Segment",
    "SeqNum",
    "TcpFlags",
    "TcpOption",
    "Timestamps",
    "UnknownOption",
    "WindowScale",
]

"""TCP control bits, printed in Scapy's notation.

Scapy prints the flags of a segment as the letters of its set bits in bit
order ``F S R P A U E C N`` (FIN is bit 0), so a SYN-ACK is ``SA``, data with
push is ``PA``, a FIN-ACK is ``FA`` and a reset-ACK is ``RA``. l4kit uses the
same notation everywhere (tables, JSON, tests) so that what it prints can be
typed into Scapy unchanged: ``TCP(flags="SA")``.
"""

from __future__ import annotations

import enum
from typing import Final

_LETTERS: Final = "FSRPAUECN"

# The control bits as plain ints, for code that tests received flags once per packet
# (replay's trackers, the core): an IntFlag operation costs about a microsecond, an
# int one a few nanoseconds. TcpFlags below is built from the same values.
FIN_BIT: Final = 0x001
SYN_BIT: Final = 0x002
RST_BIT: Final = 0x004
PSH_BIT: Final = 0x008
ACK_BIT: Final = 0x010


class TcpFlags(enum.IntFlag):
    """The nine TCP flag bits (RFC 9293 §3.1, RFC 3168 ECE/CWR, RFC 3540 NS).

    ``NS`` (the "accurate ECN" / nonce bit) lives in the data-offset byte on
    the wire; l4kit keeps it in bit 8 like Scapy does.
    """

    FIN = FIN_BIT
    SYN = SYN_BIT
    RST = RST_BIT
    PSH = PSH_BIT
    ACK = ACK_BIT
    URG = 0x020
    ECE = 0x040
    CWR = 0x080
    NS = 0x100

    @classmethod
    def parse(cls, text: str) -> TcpFlags:
        """``TcpFlags.parse("SA") == TcpFlags.SYN | TcpFlags.ACK``; empty text is no flags."""
        value = 0
        for ch in text:
            i = _LETTERS.find(ch)
            if i < 0:
                raise ValueError(f"unknown TCP flag letter {ch!r} (use letters from {_LETTERS})")
            value |= 1 << i
        return cls(value)

    @property
    def letters(self) -> str:
        """The Scapy notation, e.g. ``"SA"``; ``""`` for a segment with no flags."""
        v = int(self)
        return "".join(ch for i, ch in enumerate(_LETTERS) if v >> i & 1)

    def __str__(self) -> str:
        return self.letters

    def __format__(self, spec: str) -> str:
        return format(self.letters, spec)


F: Final = TcpFlags.FIN
S: Final = TcpFlags.SYN
R: Final = TcpFlags.RST
P: Final = TcpFlags.PSH
A: Final = TcpFlags.ACK
U: Final = TcpFlags.URG

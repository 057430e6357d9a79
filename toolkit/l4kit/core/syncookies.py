"""SYN cookies (RFC 4987 §3.6): answer a SYN without keeping any state.

When the half-open table is full, the listener answers a SYN with a SYN-ACK whose
ISN *is* the state: the connection is rebuilt from the ACK that answers it, whose
acknowledgment number is that ISN plus one. The layout follows D. J. Bernstein's
original (the one RFC 4987 §3.6 describes)::

     31      27 26  24 23                                   0
    +----------+------+--------------------------------------+
    | t mod 32 | MSS  |  keyed hash(4-tuple, t, client ISN)   |
    +----------+------+--------------------------------------+

* ``t`` is a counter that advances every :attr:`SynCookies.period` seconds; a
  cookie validates only for the current and the previous count, so it expires
  after one to two periods (RFC 4987 §3.6: "the t value ... prevents replay").
* ``MSS`` is a 3-bit index into :data:`MSS_TABLE`: the peer's MSS rounded down to
  one of eight values; that is all of the SYN's options a cookie keeps, so a
  connection made from a cookie uses no window scaling, SACK or timestamps (as
  Linux without cookie timestamps).
* the hash is 24 bits of BLAKE2b keyed with a secret derived from the listener
  secret, over the 4-tuple, the full counter, the client's ISN and the MSS index
  (so none of the other fields can be changed without breaking it, as in Linux,
  which mixes its MSS index into the hash too). Without the
  secret, a blind attacker guesses a valid cookie with probability 2**-24 per ACK,
  the same margin as Linux's cookies.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Final

from l4kit.core.isn import derive_key, four_tuple_bytes
from l4kit.wire.segment import FourTuple
from l4kit.wire.seqnum import SeqNum

MSS_TABLE: Final[tuple[int, ...]] = (88, 536, 1220, 1360, 1440, 1460, 8960, 65495)
"""The MSS values a cookie can carry: the minimum l4kit accepts, the IPv4 and IPv6
defaults (RFC 9293 §3.7.1, RFC 8200), common tunnel and Ethernet values, jumbo
frames, and Linux loopback (MTU 65536)."""

_HASH_BITS: Final = 24
_HASH_MASK: Final = (1 << _HASH_BITS) - 1
_COUNTER_BITS: Final = 5


def mss_index(mss: int) -> int:
    """The index of the largest :data:`MSS_TABLE` entry not above ``mss`` (0 if none is)."""
    return max(bisect.bisect_right(MSS_TABLE, mss) - 1, 0)


class SynCookies:
    """Makes and checks cookies; holds only the key and the period."""

    __slots__ = ("_key", "period")

    def __init__(self, secret: bytes, *, period: float = 64.0) -> None:
        if period <= 0:
            raise ValueError("the SYN cookie period must be positive")
        self._key = derive_key(secret, b"syncookie")
        self.period = period

    def _counter(self, now: float) -> int:
        return int(now // self.period)

    def _hash(self, key: FourTuple, counter: int, client_isn: SeqNum, mss_idx: int) -> int:
        message = b"".join(
            (
                four_tuple_bytes(key),
                counter.to_bytes(8, "big", signed=True),
                client_isn.value.to_bytes(4, "big"),
                bytes((mss_idx,)),
            )
        )
        digest = hashlib.blake2b(message, key=self._key, digest_size=4).digest()
        return int.from_bytes(digest, "big") & _HASH_MASK

    def make(self, key: FourTuple, client_isn: SeqNum, peer_mss: int, now: float) -> SeqNum:
        """The ISN of the cookie SYN-ACK for a SYN with sequence number ``client_isn``."""
        counter = self._counter(now)
        idx = mss_index(peer_mss)
        value = (counter % (1 << _COUNTER_BITS)) << 27 | idx << 24 | self._hash(key, counter, client_isn, idx)
        return SeqNum(value)

    def check(self, key: FourTuple, cookie: SeqNum, client_isn: SeqNum, now: float) -> int | None:
        """The MSS encoded in ``cookie`` (the ACK's acknowledgment number minus one)
        if it is genuine and at most one period old, else None."""
        value = cookie.value
        counter_low = value >> 27
        idx = value >> 24 & 0x7
        current = self._counter(now)
        for counter in (current, current - 1):
            if counter % (1 << _COUNTER_BITS) != counter_low:
                continue
            if self._hash(key, counter, client_isn, idx) == value & _HASH_MASK:
                return MSS_TABLE[idx]
        return None

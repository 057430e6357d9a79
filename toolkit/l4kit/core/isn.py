"""Initial sequence numbers (RFC 6528) and the keys derived from the listener secret.

RFC 6528 §3 (carried into RFC 9293 §3.4.1): ``ISN = M + F(localip, localport,
remoteip, remoteport, secretkey)`` where ``M`` is a timer that ticks every 4
microseconds and ``F`` is a keyed hash. The timer keeps ISNs of successive
incarnations of one 4-tuple increasing (so old duplicates fall outside the new
window); the hash makes the ISN of one 4-tuple unguessable from the ISNs of
another (the off-path spoofing attacks of RFC 6528 §1).

The core never reads a clock: ``M`` comes from the ``now`` the driver passes in,
so the same secret and the same ``now`` give the same ISN, which is what the
tests and notebooks rely on.
"""

from __future__ import annotations

import hashlib
from typing import Final

from l4kit.wire.segment import FourTuple
from l4kit.wire.seqnum import SeqNum

TICKS_PER_SECOND: Final = 250_000
"""RFC 6528 §3: "M is the 4 microsecond timer"."""


def derive_key(secret: bytes, purpose: bytes) -> bytes:
    """A 32-octet key for one purpose (ISNs, SYN cookies) from the listener secret.

    Separate keys mean that an ISN never reveals anything about a cookie hash of
    the same 4-tuple, and the other way round. Any secret length works (BLAKE2b
    keys are limited to 64 octets, so the secret is hashed, not used directly).
    """
    return hashlib.blake2b(secret, digest_size=32, person=b"l4kit-" + purpose[:10]).digest()


def four_tuple_bytes(key: FourTuple) -> bytes:
    """A canonical, unambiguous encoding of a 4-tuple for hashing."""
    return f"{key.local.addr}|{key.local.port}|{key.remote.addr}|{key.remote.port}".encode("ascii", "replace")


class Rfc6528Isn:
    """The default ISN source: ``M + F`` of RFC 6528 §3, F = keyed BLAKE2b.

    Callable as ``isn(key, now)``, the signature :class:`~l4kit.core.listener.Listener`
    accepts for its ``isn=`` override.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, b"isn")

    def offset(self, key: FourTuple) -> int:
        """F(localip, localport, remoteip, remoteport, secretkey), a 32-bit value."""
        digest = hashlib.blake2b(four_tuple_bytes(key), key=self._key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def __call__(self, key: FourTuple, now: float) -> SeqNum:
        clock = int(now * TICKS_PER_SECOND)  # M: the 4-microsecond timer
        return SeqNum(clock + self.offset(key))

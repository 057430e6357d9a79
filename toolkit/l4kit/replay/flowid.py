"""Names for a connection that other tools understand: Community ID and Zeek's uid.

Community ID
============
The Community ID flow hash (version 1, https://github.com/corelight/community-id-spec)
gives a flow the same string in every tool that computes it (Zeek's community-id
package, Suricata, Arkime, Elastic), so their records join on it. For TCP it is

    "1:" + base64(SHA-1(seed ‖ saddr ‖ daddr ‖ proto ‖ 0 ‖ sport ‖ dport))

with the seed a 16-bit number (0 unless both sides agree on another), addresses
in network byte order (4 or 16 octets), the protocol number and a zero padding
octet, ports in network byte order; the endpoints ordered so that the smaller
address (then the smaller port) comes first, which makes the hash the same for
both directions. ``tests/unit/test_replay_flowid.py`` checks it against the
reference implementation (the ``communityid`` package) on random flows.

Zeek's uid
==========
Zeek names each connection ``C`` followed by 96 random bits written in base 62
(``UID::Base62``: the first 64 bits, then the last 32, each with its least
significant digit first, in the alphabet ``0-9a-zA-Z``). l4kit writes the same form
from a hash of what identifies the connection in the capture — the time of its
first packet to the nanosecond and both endpoints — instead of random bits, so the
same capture gives the same uids on every run, split between processes or machines
or not, and a connection read from a rotated capture gets the uid it has in the
unsplit one.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from l4kit.replay.model import ConnectionReport

COMMUNITY_ID_VERSION: Final = "1:"
TCP: Final = 6

_BASE62: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PORTS: Final = struct.Struct("!HH")
_UID_KEY: Final = struct.Struct("!qHH")


def community_id(  # noqa: PLR0917 - a flow's five fields, in the spec's order
    saddr: bytes, daddr: bytes, sport: int, dport: int, proto: int = TCP, seed: int = 0
) -> str:
    """The Community ID v1 of a flow with ports (TCP, UDP, SCTP): ``saddr`` and
    ``daddr`` as packed addresses (4 or 16 octets, both of one family)."""
    if daddr < saddr or (daddr == saddr and dport < sport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    digest = hashlib.sha1(
        seed.to_bytes(2, "big") + saddr + daddr + bytes((proto, 0)) + _PORTS.pack(sport, dport),
        usedforsecurity=False,
    ).digest()
    return COMMUNITY_ID_VERSION + base64.b64encode(digest).decode("ascii")


def _base62(value: int) -> str:
    """``value`` in base 62, least significant digit first, as Zeek's ``uitoa_n`` writes it."""
    digits = []
    while True:
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
        if not value:
            return "".join(digits)


def zeek_uid(  # noqa: PLR0917 - the connection's identity, field by field
    start: float, orig_ip: bytes, orig_port: int, resp_ip: bytes, resp_port: int, proto: int = TCP
) -> str:
    """A uid in Zeek's form (``C`` and 96 bits in base 62) for the connection whose
    first packet was at ``start`` (seconds since the epoch) between the originator
    ``orig_ip``:``orig_port`` and the responder ``resp_ip``:``resp_port``."""
    key = _UID_KEY.pack(round(start * 1e9), orig_port, resp_port) + bytes((proto,)) + orig_ip + resp_ip
    bits = int.from_bytes(hashlib.blake2b(key, digest_size=12).digest(), "big")
    return "C" + _base62(bits >> 32) + _base62(bits & 0xFFFFFFFF)


def connection_uid(r: ConnectionReport) -> str:
    """A connection's uid (:func:`zeek_uid`), the client being Zeek's originator."""
    return zeek_uid(r.start, r.client_ip, r.client_port, r.server_ip, r.server_port)


def connection_community_id(r: ConnectionReport) -> str:
    """A connection's Community ID v1 (:func:`community_id`)."""
    return community_id(r.client_ip, r.server_ip, r.client_port, r.server_port)

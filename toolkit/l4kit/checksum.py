"""The Internet checksum (RFC 1071) in pure Python, and what a captured one means.

The arithmetic
==============

The checksum of IPv4, TCP and UDP is the *one's complement of the one's
complement sum* of the data taken as 16-bit big-endian words (RFC 1071 §1):

* **One's complement addition** is ordinary addition in which a carry out of
  bit 15 is added back into bit 0 (the *end-around carry*):
  ``0xFFFF + 0x0001 = 0x1_0000 -> 0x0000 + 1 = 0x0001``. Adding with a wide
  accumulator and folding the carries in at the end gives the same result
  (RFC 1071 §2 (C), "deferred carries").
* **Odd length**: the last octet is the high byte of a word whose low byte is
  zero, as if one zero octet were appended on the right (RFC 1071 §4.1).
* **Two zeros**: one's complement arithmetic has ``+0 = 0x0000`` and
  ``-0 = 0xFFFF``. A sum of words that are not all zero never comes out as
  ``0x0000`` (the end-around carry turns it into ``0xFFFF``), so the checksum
  written into a header (the complement of the sum) is ``0x0000`` exactly when
  the sum is ``0xFFFF``, and ``0xFFFF`` only for data that is all zero. A
  receiver sums everything *including* the checksum field and expects ``-0``
  (``0xFFFF``), because ``x + ~x = 0xFFFF`` for every ``x``. Both zeros are the
  same number, so comparisons of one's complement values are made modulo
  ``0xFFFF`` below.
* **Why modulo 0xFFFF works**: ``2**16 = 0xFFFF + 1``, so ``2**16 ≡ 1 (mod
  0xFFFF)`` and a big-endian integer ``Σ w_i·2**(16·i)`` is congruent to the
  plain sum of its words ``Σ w_i``. The end-around carry is exactly reduction
  modulo ``0xFFFF`` except that a non-zero multiple of ``0xFFFF`` folds to
  ``0xFFFF``, not ``0``. So the whole buffer becomes one Python integer
  (``int.from_bytes``, a C loop) and the sum is that integer modulo ``0xFFFF``.

Making it fast in pure Python
-----------------------------

``int % 0xFFFF`` on a big integer costs one machine division per 30-bit digit.
Splitting the integer into a high and a low half and adding them
(``(x >> h) + (x & (2**h - 1))``, with ``h`` a multiple of 16) keeps the value
modulo ``0xFFFF`` (again because ``2**h ≡ 1``) and costs one shift, one mask
and one add, which are much cheaper than the divisions; after a few halvings
the remaining ``%`` is short. See ``benchmarks/bench_checksum.py`` for the
figures against ``scapy.utils.checksum``.

Offloaded checksums
===================

A Linux host that leaves the TCP checksum to the network card (TX checksum
offload, and always on ``lo``, where nobody computes it) hands the segment to
the capture with the checksum field holding only the *folded, not
complemented* pseudo-header sum (``th->check = ~tcp_v4_check(len, saddr,
daddr, 0)``): the card is expected to add the data and complement. Measured on
``lo``: 127.0.0.1 -> 127.0.0.1, a 40-byte segment, field ``0xfe30``
(``0x7f00 + 0x0001 + 0x7f00 + 0x0001 + 0x0006 + 0x0028``).
:func:`classify_tcp_checksum` reports such a segment as ``OFFLOADED``: it cannot
be verified from the bytes, and it is not corrupt.

Only the standard library is used, and no I/O.
"""

from __future__ import annotations

import enum
import ipaddress
from functools import lru_cache
from typing import Final

from l4kit.errors import ConfigError

#: ``0xFFFF``: one's complement "negative zero", and the modulus of 16-bit one's complement sums.
ONES: Final = 0xFFFF

IPPROTO_TCP: Final = 6

# Below this many bits a plain ``% 0xFFFF`` is cheaper than another halving step.
_FOLD_BELOW_BITS: Final = 1024

# Halving masks 2**h - 1 for h = 2**k bits, built on first use (h <= 2**19 for 64 KiB of
# data, so at most about ten of them).
_LOW_MASKS: dict[int, int] = {}


def _low_mask(bits: int) -> int:
    mask = _LOW_MASKS[bits] = (1 << bits) - 1
    return mask


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


# ---------------------------------------------------------------- sums


def internet_checksum(data: bytes, init: int = 0) -> int:
    """The Internet checksum of ``data`` (RFC 1071): ``~(init + Σ words)`` in 16 bits.

    ``init`` is a one's complement sum to start from, usually
    :func:`pseudo_header_sum`. With ``init=0`` this equals
    ``scapy.utils.checksum(data)``. Verifying data that already contains its
    checksum field gives ``0`` when the checksum is right (the sum is ``-0``).
    The result is ``0xFFFF`` only for data (and ``init``) that is all zero.

    >>> hex(internet_checksum(bytes.fromhex("0001f203f4f5f6f7")))  # RFC 1071 §3 example
    '0x220d'
    """
    x = int.from_bytes(data, "big")
    bits = x.bit_length()
    if bits > _FOLD_BELOW_BITS:
        # Fold halves together: h is the largest power of two below the bit length, a
        # multiple of 16, so 2**h ≡ 1 (mod 0xFFFF) and the sum is unchanged mod 0xFFFF.
        h = 1 << ((bits - 1).bit_length() - 1)
        while h >= _FOLD_BELOW_BITS:
            x = (x >> h) + (x & (_LOW_MASKS.get(h) or _low_mask(h)))
            h >>= 1
    r = x % ONES
    if len(data) & 1:
        # Padding one zero octet on the right multiplies the integer by 2**8.
        r = (r << 8) % ONES
    r += init
    if r >= ONES:
        r %= ONES
    if r:
        return ONES - r  # ~r & 0xFFFF
    # A sum ≡ 0 is -0 (0xFFFF, checksum 0x0000) unless every word is zero: x and init are
    # non-negative, so their total is zero only if both are.
    return 0 if (x or init) else ONES


def ones_complement_sum(data: bytes, init: int = 0) -> int:
    """The 16-bit one's complement sum of ``data``'s words plus ``init``, folded (not complemented).

    Odd length: a zero octet is padded on the right. The result is ``0x0000``
    only when every word and ``init`` are zero; any other sum that is a
    multiple of ``0xFFFF`` comes out as ``0xFFFF`` (one's complement ``-0``),
    as the end-around carry produces it.
    """
    return ONES - internet_checksum(data, init)


# ---------------------------------------------------------------- addresses


@lru_cache(maxsize=4096)
def parse_address(addr: str | bytes) -> tuple[bytes, int]:
    """``(packed, Σ 16-bit words mod 0xFFFF)`` of an address given as text or packed octets.

    Cached: a host talks to few peers, and parsing text costs more than a
    checksum of a small segment. Raises :class:`~l4kit.errors.ConfigError` for
    text that is not an address, or bytes that are neither 4 nor 16 long.
    """
    if isinstance(addr, str):
        packed = _dotted_quad(addr)
        if packed is None:
            try:
                packed = ipaddress.ip_address(addr).packed
            except ValueError:
                raise ConfigError(f"not an IPv4 or IPv6 address: {addr!r}") from None
    elif len(addr) in (4, 16):
        packed = bytes(addr)
    else:
        raise ConfigError(f"a packed IP address is 4 or 16 octets, not {len(addr)}")
    return packed, int.from_bytes(packed, "big") % ONES


def _dotted_quad(text: str) -> bytes | None:
    """The four octets of IPv4 text as ``ipaddress`` reads it (four decimal numbers up to
    255, no leading zeros), or None for anything else, which ``ipaddress`` then reads or
    refuses. A SYN flood from spoofed addresses misses the cache on nearly every SYN-ACK,
    and this costs a fraction of ``ipaddress.ip_address``."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 3) or (part[0] == "0" and len(part) > 1):
            return None
    values = [int(part) for part in parts]
    return bytes(values) if max(values) <= 255 else None


def address_bytes(addr: str | bytes) -> bytes:
    """The 4- or 16-octet form of an address given as text or already packed.

    Raises :class:`~l4kit.errors.ConfigError` for text that is not an address,
    or bytes that are neither 4 nor 16 long.
    """
    return parse_address(addr)[0]


def pseudo_header_sum(src: str | bytes, dst: str | bytes, length: int, proto: int = IPPROTO_TCP) -> int:
    """The folded 16-bit one's complement sum of the TCP/UDP pseudo-header.

    IPv4 (RFC 9293 §3.1): source, destination, a zero octet, the protocol and the
    16-bit TCP length. IPv6 (RFC 8200 §8.1): source, destination, the 32-bit
    upper-layer length, three zero octets and the next header. The version is
    taken from the addresses (4 or 16 octets). Both layouts sum to the same
    words modulo ``0xFFFF`` (the 32-bit length's high word just adds in), so one
    formula serves both. The result is not complemented: it is what an
    offloading sender leaves in the checksum field.
    """
    src_packed, src_sum = parse_address(src)
    dst_packed, dst_sum = parse_address(dst)
    if len(src_packed) != len(dst_packed):
        raise ConfigError(f"source {src!r} and destination {dst!r} are of different IP versions")
    total = src_sum + dst_sum + proto + length
    r = total % ONES
    return ONES if r == 0 and total else r


def tcp_checksum(src: str | bytes, dst: str | bytes, segment: bytes) -> int:
    """The TCP checksum for ``segment`` (header with its checksum field zeroed, then data).

    Equal to what Scapy writes into ``TCP.chksum`` of a built IPv4 or IPv6
    packet with the same addresses.
    """
    return internet_checksum(segment, pseudo_header_sum(src, dst, len(segment)))


# ---------------------------------------------------------------- incremental update (RFC 1624)


def update_checksum16(checksum: int, old: int, new: int) -> int:
    """The checksum after one 16-bit word of the covered data changed from ``old`` to ``new``.

    RFC 1624 §3, eqn. 3: ``HC' = ~(~HC + ~m + m')`` in one's complement
    arithmetic. Unlike eqn. 2 (``HC - ~m - m'``) it cannot produce ``0xFFFF``
    for a sum that a full recomputation gives as ``0x0000``. The word must sit
    at an even offset of the summed data (a TCP port, window or urgent pointer).
    """
    total = (ONES - checksum) + (ONES - old) + new
    r = total % ONES
    if r == 0 and total:
        return 0
    return ONES - r


def update_checksum32(checksum: int, old: int, new: int) -> int:
    """:func:`update_checksum16` for a 32-bit field (sequence or acknowledgment number).

    A 32-bit field is two 16-bit words; RFC 1624's equation applies to their
    sum, so both words are replaced in one step.
    """
    total = (ONES - checksum) + (ONES - (old >> 16)) + (ONES - (old & ONES)) + (new >> 16) + (new & ONES)
    r = total % ONES
    if r == 0 and total:
        return 0
    return ONES - r


# ---------------------------------------------------------------- verification


def classify_tcp_checksum(src: str | bytes, dst: str | bytes, segment: bytes) -> ChecksumStatus:
    """Say whether a captured TCP ``segment`` (checksum field as received) is ok, bad or offloaded.

    The rule:

    1. ``OK`` when the one's complement sum of pseudo-header, header (with its
       checksum field) and data is ``-0``: the checksum is right.
    2. ``OFFLOADED`` when the field equals the folded pseudo-header sum, not
       complemented (``0x0000`` and ``0xFFFF`` compare equal): the sender left
       the checksum to the card, and the capture saw the segment before that.
    3. ``BAD`` otherwise, including a segment too short to hold the field.
    """
    length = len(segment)
    if length < 18:
        return ChecksumStatus.BAD
    psum = pseudo_header_sum(src, dst, length)
    if internet_checksum(segment, psum) == 0:
        return ChecksumStatus.OK
    field = (segment[16] << 8) | segment[17]
    if field % ONES == psum % ONES:
        return ChecksumStatus.OFFLOADED
    return ChecksumStatus.BAD


def ipv4_header_checksum_ok(header: bytes) -> bool:
    """Whether an IPv4 header (all ``IHL * 4`` octets, checksum field as received) sums to ``-0``.

    RFC 791 §3.1: the header checksum covers the header only. Linux computes it
    in software even when it offloads TCP, so captures carry a valid one.
    """
    return len(header) >= 20 and internet_checksum(header) == 0

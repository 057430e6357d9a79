"""The TCP checksum of one packet worked out word by word (:class:`ChecksumWorking`).

Also the Scapy packet helpers the stepper shares with it: the IP layer of a packet,
and a packet built as a capture would show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet

from l4kit.checksum import (
    IPPROTO_TCP,
    ONES,
    ChecksumStatus,
    address_bytes,
    classify_tcp_checksum,
    ones_complement_sum,
    pseudo_header_sum,
    tcp_checksum,
)
from l4kit.notebook.scenario import SteppingError


@dataclass(frozen=True, slots=True)
class ChecksumWorking:
    """The TCP checksum of one packet worked out word by word (RFC 1071 §1, RFC 9293 §3.1).

    ``pseudo_words`` are the 16-bit words of the pseudo-header (IPv4: source,
    destination, zero and protocol, TCP length; IPv6 (RFC 8200 §8.1): source,
    destination, 32-bit length, zeros and next header), ``tcp_words`` those of
    the TCP header and data with the checksum field taken as zero (an odd
    length gets a zero octet on the right, RFC 1071 §4.1). ``wide_sum`` is their
    plain sum; ``folds`` the end-around carries added back in, one pair
    ``(before, after)`` per fold; ``ones_sum`` the folded 16-bit sum and
    ``computed`` its complement. ``l4kit`` is :func:`l4kit.checksum.tcp_checksum`
    of the same bytes, ``scapy`` the field Scapy wrote, and ``status`` what
    :func:`l4kit.checksum.classify_tcp_checksum` says of the packet as it is.
    """

    src: str
    dst: str
    pseudo_words: tuple[int, ...]
    pseudo_labels: tuple[str, ...]
    tcp_words: tuple[int, ...]
    tcp_length: int
    wide_sum: int
    folds: tuple[tuple[int, int], ...]
    ones_sum: int
    computed: int
    l4kit_pseudo_sum: int
    l4kit_tcp_sum: int
    l4kit: int
    scapy: int
    status: ChecksumStatus

    @property
    def agrees(self) -> bool:
        """The word-by-word sum, :mod:`l4kit.checksum` and Scapy give the same value."""
        return self.computed == self.l4kit == self.scapy

    @classmethod
    def of_packet(cls, pkt: Packet) -> ChecksumWorking:
        """Work out the checksum of the TCP segment in ``pkt`` (an IPv4 or IPv6 packet with TCP).

        The packet is built first, so a packet made in a notebook gets the checksum
        Scapy computes. Raises :class:`SteppingError` for a packet without IP and TCP.
        """
        ip_layer = _ip_layer(pkt)
        built = type(ip_layer)(raw(ip_layer))
        if TCP not in built:
            raise SteppingError(f"no TCP segment in {pkt.summary()}")
        src, dst = str(built.src), str(built.dst)
        segment = _tcp_bytes(built)
        zeroed = segment[:16] + b"\x00\x00" + segment[18:]
        length = len(segment)
        labels: tuple[str, ...]
        if isinstance(built, IPv6):
            pseudo = address_bytes(src) + address_bytes(dst) + length.to_bytes(4, "big") + bytes([0, 0, 0, 6])
            labels = (
                ("source",) * 8
                + ("destination",) * 8
                + ("length (high)", "length", "zero", "zero, next header")
            )
        else:
            pseudo = (
                address_bytes(src) + address_bytes(dst) + bytes([0, IPPROTO_TCP]) + length.to_bytes(2, "big")
            )
            labels = ("source", "source", "destination", "destination", "zero, protocol", "TCP length")
        tcp_words = _words(zeroed)
        pseudo_words = _words(pseudo)
        wide = sum(pseudo_words) + sum(tcp_words)
        folds: list[tuple[int, int]] = []
        folded = wide
        while folded > ONES:
            after = (folded & ONES) + (folded >> 16)
            folds.append((folded, after))
            folded = after
        return cls(
            src=src,
            dst=dst,
            pseudo_words=pseudo_words,
            pseudo_labels=labels,
            tcp_words=tcp_words,
            tcp_length=length,
            wide_sum=wide,
            folds=tuple(folds),
            ones_sum=folded,
            computed=~folded & ONES,
            l4kit_pseudo_sum=pseudo_header_sum(src, dst, length),
            l4kit_tcp_sum=ones_complement_sum(zeroed),
            l4kit=tcp_checksum(src, dst, zeroed),
            scapy=int(built[TCP].chksum),
            status=classify_tcp_checksum(src, dst, segment),
        )

    def lines(self) -> list[str]:
        """The working as text, one line per stage."""
        out = [
            f"pseudo-header words ({', '.join(_dedupe(self.pseudo_labels))}): "
            + _hex_words(self.pseudo_words),
            f"TCP header + data, {self.tcp_length} octets, checksum field as 0000: "
            + _hex_words(self.tcp_words),
            f"sum of the {len(self.pseudo_words) + len(self.tcp_words)} words = 0x{self.wide_sum:x}",
        ]
        for before, after in self.folds:
            out.append(
                f"end-around carry: 0x{before & ONES:04x} + 0x{before >> 16:x} = 0x{after:x}"
                + ("" if after <= ONES else " (carries again)")
            )
        out.append(
            f"one's complement sum 0x{self.ones_sum:04x}; "
            f"complement: ~0x{self.ones_sum:04x} = 0x{self.computed:04x}"
        )
        out.append(
            f"l4kit.checksum: pseudo_header_sum = 0x{self.l4kit_pseudo_sum:04x}, "
            f"ones_complement_sum(TCP) = 0x{self.l4kit_tcp_sum:04x}, tcp_checksum = 0x{self.l4kit:04x}"
        )
        verdict = "all three agree" if self.agrees else "THEY DIFFER"
        out.append(f"Scapy wrote 0x{self.scapy:04x}: {verdict}; classify_tcp_checksum says {self.status}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _words(data: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        data += b"\x00"  # RFC 1071 §4.1: pad an odd length with a zero octet on the right
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def _hex_words(words: Sequence[int]) -> str:
    return " ".join(f"{w:04x}" for w in words)


def _dedupe(labels: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for label in labels:
        if label not in seen:
            seen.append(label)
    return seen


def _ip_layer(pkt: Packet) -> Packet:
    for layer in pkt.iterpayloads():
        if isinstance(layer, (IP, IPv6)):
            return layer
    raise SteppingError(f"no IP or IPv6 layer in {pkt.summary()}")


def _built(pkt: Packet) -> Packet:
    """``pkt`` built and dissected again: lengths and checksums filled in, as a capture shows it."""
    ip_layer = _ip_layer(pkt)
    return type(ip_layer)(raw(ip_layer))


def _tcp_bytes(built: Packet) -> bytes:
    """The TCP header and data of a built IPv4/IPv6 packet (link padding cut off by the IP length)."""
    data = raw(built)
    if isinstance(built, IPv6):
        return data[40 : 40 + int(built.plen)]
    header = (data[0] & 0x0F) * 4
    return data[header : int(built.len)]

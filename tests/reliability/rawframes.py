"""Frames for the reliability tests: built once, sent fast through one packet socket.

Two halves:

- **Building** (in the test process, no root): :func:`ipv4_tcp` packs an IPv4/TCP
  frame with ``struct`` and computes both checksums with :func:`ones_complement_checksum`
  (RFC 1071), a dozen lines of its own, so that the frames the tests send do not
  depend on the l4kit code they test. Every field a hostile frame needs to get
  wrong can be overridden (data offset, IHL, total length, fragment bits, either
  checksum, truncation). ``tests/reliability/test_rawframes.py`` checks the
  builder against Scapy's ``raw(Ether()/IP()/TCP())``, octet for octet.
  Scapy builds ~3,000 frames a second here; ``struct`` builds a 20,000-SYN flood
  in a fraction of a second.
- **Sending** (inside the test's namespace, as root): ``python rawframes.py send
  --file F`` reads length-prefixed frames (:func:`write_frames`), opens one
  ``AF_PACKET`` socket on ``lo`` and writes them back to back, then prints one
  JSON line with what it sent. ``--mark N`` prints ``mark`` after the N-th frame,
  so a test can start something else while a flood is still going.

Loopback frames carry the all-zero MAC in both address fields (docs/design.md, loopback trap 3).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import random
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LO_MAC = b"\x00" * 6
ETH_P_IP = 0x0800
ETHERNET_HEADER = LO_MAC + LO_MAC + struct.pack("!H", ETH_P_IP)
IPPROTO_TCP = 6
DF = 0x4000
MF = 0x2000

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE = (1 << bit for bit in range(9))
FLAG_LETTERS = "FSRPAUECN"  # the order of the bits above (tcpdump/Scapy letters; N = AE/NS)

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIHHHH")
_LENGTH = struct.Struct("!I")


def flags_value(letters: str) -> int:
    """``"SA"`` -> SYN|ACK."""
    return sum(1 << FLAG_LETTERS.index(letter) for letter in letters)


def flags_letters(value: int) -> str:
    return "".join(letter for bit, letter in enumerate(FLAG_LETTERS) if value >> bit & 1)


def ones_complement_checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_option_mss(mss: int) -> bytes:
    return struct.pack("!BBH", 2, 4, mss)


def ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = SYN,
    window: int = 65535,
    urgent: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
    data_offset: int | None = None,
    tcp_checksum: int | None = None,
    tcp_length: int | None = None,
    ihl: int = 5,
    ip_options: bytes = b"",
    total_length: int | None = None,
    fragment: int = DF,
    ip_id: int = 1,
    ttl: int = 64,
    protocol: int = IPPROTO_TCP,
    ip_checksum: int | None = None,
    version: int = 4,
    link: bool = True,
) -> bytes:
    """An Ethernet/IPv4/TCP frame; ``None`` fields are computed as Scapy would.

    ``tcp_length`` cuts the TCP part (header and payload) to that many octets
    *before* the lengths and checksums are computed, so the IP header is
    consistent and only the TCP header is short: a truncated TCP header, not a
    truncated packet. ``total_length`` overrides the IPv4 total length after
    that (a packet shorter than it claims).
    """
    if len(options) % 4:
        options += b"\x00" * (4 - len(options) % 4)
    offset_words = data_offset if data_offset is not None else 5 + len(options) // 4
    tcp = bytearray(
        _TCP.pack(
            sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset_words << 12 | flags, window, 0, urgent
        )
        + options
        + payload
    )
    if tcp_length is not None:
        del tcp[tcp_length:]
    src_b, dst_b = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    if tcp_checksum is None:
        pseudo = src_b + dst_b + struct.pack("!BBH", 0, IPPROTO_TCP, len(tcp))
        tcp_checksum = ones_complement_checksum(pseudo + bytes(tcp)) if len(tcp) >= 18 else 0
    if len(tcp) >= 18:
        tcp[16:18] = struct.pack("!H", tcp_checksum)
    if len(ip_options) % 4:
        ip_options += b"\x00" * (4 - len(ip_options) % 4)
    header_len = 20 + len(ip_options)
    total = total_length if total_length is not None else header_len + len(tcp)
    header = bytearray(
        _IPV4.pack(version << 4 | ihl, 0, total, ip_id, fragment, ttl, protocol, 0, src_b, dst_b) + ip_options
    )
    if ip_checksum is None:
        ip_checksum = ones_complement_checksum(bytes(header))
    header[10:12] = struct.pack("!H", ip_checksum)
    packet = bytes(header) + bytes(tcp)
    return ETHERNET_HEADER + packet if link else packet


# ---------------------------------------------------------------- floods


def syn_flood(
    count: int,
    *,
    dst: str = "127.0.0.1",
    dport: int = 8888,
    sources: str = "127.2.0.0/16",
    seed: int = 0,
) -> list[bytes]:
    """``count`` SYNs, each from a random address of ``sources`` and a random port
    (>= 1024), random ISN, MSS option: the 4-tuples of a spoofed flood.

    Built from one template: only addresses, port, sequence number and the two
    checksums change from frame to frame.
    """
    rng = random.Random(seed)
    network = ipaddress.IPv4Network(sources)
    first, size = int(network.network_address), network.num_addresses
    template = bytearray(ipv4_tcp("0.0.0.0", dst, 1024, dport, flags=SYN, options=tcp_option_mss(1460)))
    ip_start, tcp_start = 14, 34
    tcp_len = len(template) - tcp_start
    dst_b = ipaddress.IPv4Address(dst).packed
    frames = []
    for _ in range(count):
        src_b = (first + rng.randrange(1, size - 1)).to_bytes(4, "big")
        frame = template[:]
        frame[ip_start + 12 : ip_start + 16] = src_b
        frame[ip_start + 10 : ip_start + 12] = b"\x00\x00"
        frame[ip_start + 10 : ip_start + 12] = struct.pack(
            "!H", ones_complement_checksum(bytes(frame[ip_start:tcp_start]))
        )
        frame[tcp_start : tcp_start + 2] = struct.pack("!H", rng.randrange(1024, 65536))
        frame[tcp_start + 4 : tcp_start + 8] = struct.pack("!I", rng.getrandbits(32))
        frame[tcp_start + 16 : tcp_start + 18] = b"\x00\x00"
        pseudo = src_b + dst_b + struct.pack("!BBH", 0, IPPROTO_TCP, tcp_len)
        frame[tcp_start + 16 : tcp_start + 18] = struct.pack(
            "!H", ones_complement_checksum(pseudo + bytes(frame[tcp_start:]))
        )
        frames.append(bytes(frame))
    return frames


# ---------------------------------------------------------------- hostile input


@dataclass(frozen=True, slots=True)
class HostileCase:
    """Frames of one kind, and what should become of each of them.

    ``tag`` is the drop reason the responder's exit summary should count every
    one of them under (a wire decoder's ``<layer>:<reason>`` or a core
    ``DropReason`` value), or ``None`` for frames the kernel filter
    (``inbound and tcp and dst host A and dst port P``) must not let through at all.
    """

    name: str
    tag: str | None
    frames: tuple[bytes, ...]


def hostile_cases(
    *,
    dst: str = "127.0.0.1",
    dport: int = 8888,
    sources: str = "127.3.0.0/16",
    seed: int = 1,
    per_case: int = 250,
) -> list[HostileCase]:
    """Every kind of bad frame the hostile-input test sends, ``per_case`` of most kinds, each from a
    fresh 4-tuple (so no frame meets state another one left behind).

    Expected outcomes follow the RFCs and the wire layer's documented reasons, not
    the code: a TCP header needs 20 octets (RFC 9293 §3.1); an option length
    counts its own two octets, so 0 and 1 are illegal; a first IPv4 fragment
    carries the ports but l4kit does not reassemble; later fragments carry no
    ports, so libpcap's ``dst port`` never matches them (it tests the offset).
    """
    rng = random.Random(seed)
    network = ipaddress.IPv4Network(sources)
    first, size = int(network.network_address), network.num_addresses
    used: set[tuple[int, int]] = set()

    def peer() -> tuple[str, int]:
        while True:
            address, port = first + rng.randrange(1, size - 1), rng.randrange(1024, 65536)
            if (address, port) not in used:
                used.add((address, port))
                return str(ipaddress.IPv4Address(address)), port

    def many(build: Iterable[bytes]) -> tuple[bytes, ...]:
        return tuple(build)

    def n(kind: str, tag: str | None, make: object) -> HostileCase:
        assert callable(make)
        return HostileCase(kind, tag, many(make(*peer(), i) for i in range(per_case)))

    def seq() -> int:
        return rng.getrandbits(32)

    cases = [
        # Integrity: the bytes cannot be read as a header.
        n("tcp header cut to 4..19 octets", "tcp:truncated",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), tcp_length=4 + i % 16)),
        n("ip total length past the frame", "ipv4:truncated",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), total_length=40 + 1 + i % 1400)),
        n("data offset past the segment", "tcp:data-offset-past-end",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), data_offset=6 + i % 10)),
        n("option length runs past the header", "tcp:option-past-header",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), options=bytes([2, 8, 5, 0xB4]))),
        n("option kind with no length octet", "tcp:option-past-header",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), options=bytes([1, 1, 1, 8]))),
        # Sanity: readable, but illegal.
        n("data offset below 5", "tcp:bad-data-offset",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), data_offset=i % 5)),
        n("option length 0", "tcp:bad-option-length",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), options=bytes([8 + i % 20, 0, 0, 0]))),
        n("option length 1", "tcp:bad-option-length",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), options=bytes([8 + i % 20, 1, 0, 0]))),
        n("MSS option of length 3", "tcp:bad-mss-length",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), options=bytes([2, 3, 5, 0]))),
        n("source port 0", "tcp:port-zero",
          lambda s, p, i: ipv4_tcp(s, dst, 0, dport, seq=seq())),
        n("IPv4 header checksum wrong", "ipv4:bad-ip-checksum",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), ip_checksum=0x1234 + i)),
        n("TCP checksum wrong", "bad-checksum",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), tcp_checksum=0x1234 + i)),
        # IHL below 5: libpcap reads the ports at IHL * 4, so the filter finds other
        # octets there (the total length, an address) and never matches.
        n("IHL below 5", None,
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), ihl=i % 5)),
        # Fragments: l4kit does not reassemble.
        n("first IPv4 fragment (MF, offset 0)", "ipv4:fragment",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), fragment=MF, payload=b"x" * 8)),
        n("later IPv4 fragment (offset > 0)", None,
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), fragment=1 + i % 100)),
        # Addressed elsewhere: the kernel filter keeps them away from l4kit.
        n("another destination address", None,
          lambda s, p, i: ipv4_tcp(s, "127.0.0.2", p, dport, seq=seq())),
        n("another destination port", None,
          lambda s, p, i: ipv4_tcp(s, dst, p, dport + 1 + i % 100, seq=seq())),
        # Readable segments that LISTEN must refuse (RFC 9293 §3.10.7.2).
        n("ACK for no connection", "no-connection",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), ack=seq(), flags=ACK)),
        n("RST for no connection", "rst-in-listen",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), flags=RST)),
        n("no flags at all", "no-flags",
          lambda s, p, i: ipv4_tcp(s, dst, p, dport, seq=seq(), flags=0)),
    ]  # fmt: skip
    # Every combination of the nine flag bits (FIN SYN RST PSH ACK URG ECE CWR AE), once.
    combos = []
    for value in range(512):
        s, p = peer()
        combos.append(ipv4_tcp(s, dst, p, dport, seq=seq(), ack=seq(), flags=value))
    cases.append(HostileCase("every flag combination (512)", "by-flags", tuple(combos)))
    return cases


def listen_outcome(flags: int, *, payload: bool = False) -> str:
    """What LISTEN does with a well-formed segment for an unknown 4-tuple.

    RFC 9293 §3.10.7.2, in its order: "first check for a RST" (ignored), "second
    check for an ACK" (answered with RST), "third check for a SYN" (a connection
    is opened). SYN with FIN is rejected as illegal before that (the wire
    layer's ``syn-fin``; Linux drops it too). Anything else is dropped; l4kit
    answers a FIN or data with RST (counted ``no-connection``) and drops the
    rest as ``no-flags``. Returns a drop tag, or ``"open"``.
    """
    if flags & SYN and flags & FIN:
        return "tcp:syn-fin"
    if flags & RST:
        return "rst-in-listen"
    if flags & ACK:
        return "no-connection"
    if flags & SYN:
        return "open"
    if flags & FIN or payload:
        return "no-connection"
    return "no-flags"


# ---------------------------------------------------------------- frame files


def write_frames(path: Path, frames: Iterable[bytes]) -> int:
    count = 0
    with open(path, "wb") as out:
        for frame in frames:
            out.write(_LENGTH.pack(len(frame)) + frame)
            count += 1
    return count


def read_frames(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    i = 0
    while i < len(data):
        (length,) = _LENGTH.unpack_from(data, i)
        yield data[i + 4 : i + 4 + length]
        i += 4 + length


def write_pcap(path: Path, frames: Iterable[bytes]) -> None:
    """A classic pcap of ``frames`` (for tcpdump to judge what its filter matches)."""
    with open(path, "wb") as out:
        out.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for frame in frames:
            out.write(struct.pack("=IIII", 0, 0, len(frame), len(frame)) + frame)


# ---------------------------------------------------------------- sending (inside the namespace)


def send_frames(frames: list[bytes], iface: str = "lo", mark: int | None = None) -> dict[str, float]:
    """Write every frame through one AF_PACKET socket, back to back.

    A full socket send buffer (ENOBUFS/EAGAIN) waits until the socket is writable
    and retries the same frame, so every frame is sent exactly once.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((iface, 0))
    retries = 0
    started = time.monotonic()
    for index, frame in enumerate(frames, 1):
        while True:
            try:
                sock.send(frame)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                retries += 1
                select.select([], [sock], [], 0.01)
        if index == mark:
            print("mark", flush=True)
    seconds = time.monotonic() - started
    sock.close()
    return {"sent": len(frames), "retries": retries, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="send the frames of a file through one packet socket")
    send.add_argument("--file", type=Path, required=True)
    send.add_argument("--iface", default="lo")
    send.add_argument("--mark", type=int, default=None, help="print 'mark' after this many frames")
    args = parser.parse_args(argv)
    frames = list(read_frames(args.file))
    print(json.dumps(send_frames(frames, args.iface, args.mark)), flush=True)


if __name__ == "__main__":
    sys.exit(main())

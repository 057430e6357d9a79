"""Sending: every reply through one persistent Scapy L2 socket.

``sendp(pkt, iface=...)`` opens and closes a socket per call; the responder
opens ``conf.L2socket`` once and calls its ``send`` for every frame (what
``sendp(..., socket=s)`` does inside, without the per-call bookkeeping).

The socket is opened with protocol 0: it can send, but receives nothing. A
socket bound with ``ETH_P_ALL`` (Scapy's default) would get a copy of every
frame on the interface queued into a buffer that nobody reads.

Link addresses (DESIGN.md, trap 3): the source MAC is the interface's own; the
destination is the MAC the client's frames came from (learned per client IP
address by the responder), falling back to the interface's own. On ``lo`` both
are ``00:00:00:00:00:00``: a broadcast destination, Scapy's default, makes the
kernel's TCP discard the frame as not addressed to the host (PACKET_BROADCAST).

Codecs: ``scapy`` builds ``Ether()/IP()/TCP()/Raw()`` with
:func:`l4kit.codecs.scapy_codec.to_frame` (the reference, and the default);
``fast`` puts the 14-byte Ethernet header in front of
:func:`l4kit.wire.packet.encode_packet`'s bytes. Both go through the same socket.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from l4kit.errors import ConfigError
from l4kit.live.capture import ETH_P_IP, ETH_P_IPV6
from l4kit.wire.segment import Segment

FrameEncoder = Callable[[Segment, bytes, bytes], bytes]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def scapy_frame_encoder() -> FrameEncoder:
    """Ether/IP/TCP/Raw built by Scapy layers (the product card's way)."""
    from l4kit.codecs.scapy_codec import to_frame

    def encode(segment: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        return bytes(to_frame(segment, src_mac=mac_text(src_mac), dst_mac=mac_text(dst_mac)))

    return encode


def fast_frame_encoder() -> FrameEncoder:
    """The Ethernet header by ``struct``, the IP packet by the wire layer's encoder."""
    from l4kit.wire.packet import encode_packet

    header = struct.Struct("!6s6sH")

    def encode(segment: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        ethertype = ETH_P_IPV6 if segment.is_ipv6 else ETH_P_IP
        return header.pack(dst_mac, src_mac, ethertype) + encode_packet(segment)

    return encode


def frame_encoder(codec: str) -> FrameEncoder:
    if codec == "scapy":
        return scapy_frame_encoder()
    if codec == "fast":
        return fast_frame_encoder()
    raise ConfigError(f"unknown codec {codec!r} (use scapy or fast)")


class L2Sender:
    """One ``conf.L2socket`` for the whole run."""

    def __init__(self, iface: str) -> None:
        from scapy.config import conf

        try:
            self.socket = conf.L2socket(iface=iface, type=0)
        except OSError as exc:
            raise ConfigError(f"cannot open a sending socket on {iface}: {exc.strerror or exc}") from None
        self.errors = 0
        self.last_error = ""

    def send(self, frame: bytes) -> bool:
        """Send one frame; a failure (ENOBUFS under a flood, the interface going
        down) is counted, not raised: TCP recovers a lost segment by retransmission."""
        try:
            # SuperSocket.send takes anything bytes() accepts (it calls raw(x)).
            self.socket.send(frame)  # type: ignore[arg-type]
            return True
        except OSError as exc:
            self.errors += 1
            self.last_error = exc.strerror or str(exc)
            return False

    def close(self) -> None:
        self.socket.close()

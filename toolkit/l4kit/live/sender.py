"""Sending: every reply through one persistent Scapy L2 socket.

``sendp(pkt, iface=...)`` opens and closes a socket per call; the responder
opens ``conf.L2socket`` once and calls its ``send`` for every frame (what
``sendp(..., socket=s)`` does inside, without the per-call bookkeeping).

The socket is opened with protocol 0: it can send, but receives nothing. A
socket bound with ``ETH_P_ALL`` (Scapy's default) would get a copy of every
frame on the interface queued into a buffer that nobody reads.

Link addresses (docs/design.md, trap 3): the source MAC is the interface's own; the
destination is the MAC the client's frames came from (learned per client IP
address by the responder), falling back to the interface's own. On ``lo`` both
are ``00:00:00:00:00:00``: a broadcast destination, Scapy's default, makes the
kernel's TCP discard the frame as not addressed to the host (PACKET_BROADCAST).

Codecs (``respond --codec``), both through the same socket:

* ``scapy`` (the default, l4kit as a Scapy tool): every reply is built as Scapy
  ``IP()/TCP()/Raw`` layers (``IPv6()`` for IPv6) and Scapy turns those layers into
  bytes. Built naively, as ``Ether()/IP()/TCP()/Raw()`` with ``/``, that costs about
  0.4 ms a frame, and almost none of it is the TCP header: ``/`` copies both sides,
  ``build()`` first expands every layer into a clone (in case a field holds a set of
  values), and the TCP checksum copies the IP layer again to build the pseudo-header.
  :class:`ScapyFrameEncoder` keeps the layers and skips only that overhead: one IP,
  one TCP and one Raw layer for every reply (a set per IP version: new layers cost
  more than the build), every field's value written into the layer's ``fields`` in
  Scapy's internal form, the lengths and checksums given (computed by l4kit's
  checksum code through :class:`~l4kit.codecs.fast.FastCodec`), and each layer
  serialized by its own ``self_build`` (Scapy writing every field of ``fields_desc``),
  the results joined behind the 14 octets of the Ethernet header. ``build()`` would
  add only what these replies never need: expanding the layers into clones, and
  ``post_build`` filling lengths and checksums that are already there. Scapy still
  writes every header field, about 40 µs a frame on the AMD VM of the README's
  figures (60 µs through ``build()``). The result is bit-identical to
  :func:`l4kit.codecs.scapy_codec.to_frame`, the reference that leaves lengths and
  checksums to Scapy (``tests/unit/test_fast_codec_scapy_encoder.py``). The one
  exception is a SYN cookie's SYN-ACK (:meth:`ScapyFrameEncoder.stateless`): a reply
  to a 4-tuple the responder keeps nothing for, and under a SYN flood nearly every
  reply, it comes from the struct codec's template, the same octets.
* ``fast``: :meth:`l4kit.codecs.fast.FastCodec.encode_frame`, per-connection
  templates and incremental checksums, one ``struct.pack`` per frame; the same bytes.

Sending: :meth:`L2Sender.send` writes the frame to the Scapy socket's own packet
socket. ``SuperSocket.send`` would only call ``raw()`` on the bytes (a copy) and
try to stamp a ``sent_time`` on them (an exception each time, for ``bytes``).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from l4kit.codecs.fast import FastCodec
from l4kit.errors import ConfigError
from l4kit.live.capture import ETH_P_IP, ETH_P_IPV6
from l4kit.wire.segment import Segment

FrameEncoder = Callable[[Segment, bytes, bytes], bytes]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class ScapyFrameEncoder:
    """``--codec scapy``: each reply as Scapy ``IP()/TCP()/Raw`` layers, serialized by Scapy
    (see the module docstring for what is kept and why)."""

    def __init__(self, *, ttl: int = 64, ip_id: int = 0) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        from scapy.packet import Raw

        from l4kit.codecs.scapy_codec import scapy_options, to_frame

        self._ip, self._tcp, self._ipv6, self._raw = IP, TCP, IPv6, Raw
        self._scapy_options, self._to_frame = scapy_options, to_frame
        self.ttl, self.ip_id = ttl, ip_id
        self._checksums = FastCodec(ttl=ttl, ip_id=ip_id)
        # One IP (or IPv6), TCP and Raw layer per IP version, for every reply: new layers
        # cost more than the build, and every field a reply has is set on them.
        self._pairs: dict[bool, tuple[Any, Any, Any]] = {}
        self._ethernet: dict[tuple[bytes, bytes, bool], bytes] = {}

    def _layers(self, seg: Segment) -> tuple[Any, Any, Any]:
        v6 = seg.is_ipv6
        layers = self._pairs.get(v6)
        if layers is None:
            ip: Any = (
                self._ipv6(hlim=self.ttl) if v6 else self._ip(ttl=self.ttl, id=self.ip_id, flags="DF", ihl=5)
            )
            tcp = self._tcp()
            ip.add_payload(tcp)
            data = self._raw(load=b"")
            if not v6:
                # Don't Fragment as a plain int, as the TCP flags below: Scapy keeps a
                # FlagValue, and build() would make two more of it for every frame.
                ip.fields["flags"] = 0x2
            # Every field of every layer in the layer's own ``fields`` (proto/nh too, which
            # TCP overloads on the IP layer): Scapy's self_build reads each field with
            # getfieldval, and a field found there costs no KeyError from the dicts behind it.
            for layer in (ip, tcp):
                for field in layer.fields_desc:
                    layer.fields[field.name] = layer.getfieldval(field.name)
            layers = self._pairs[v6] = (ip, tcp, data)
        return layers

    def __call__(self, seg: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        options = self._scapy_options(seg.options) if seg.options else []
        if options is None:
            # Options Scapy's list cannot say (EOL then non-zero padding): the reference way.
            return bytes(
                self._to_frame(
                    seg, src_mac=mac_text(src_mac), dst_mac=mac_text(dst_mac), ttl=self.ttl, ip_id=self.ip_id
                )
            )
        # The lengths and checksums (and every range check) come from the struct codec.
        packet = self._checksums.encode(seg)
        ip, tcp, data = self._layers(seg)
        # The values go straight into the layers' field dicts, in Scapy's internal form:
        # plain ints, the address text (already a valid address: the struct codec packed
        # it), the options as Scapy's list. setfieldval would convert each one (the TCP
        # flags into a FlagValue) and clear the layer's caches through Packet.__setattr__,
        # half of the frame's cost; these layers are never dissected, so their caches stay
        # empty, and build() reads fields from these dicts.
        ip_fields, tcp_fields = ip.fields, tcp.fields
        ip_fields["src"] = seg.src
        ip_fields["dst"] = seg.dst
        tcp_offset = 40 if seg.is_ipv6 else 20
        tcp_fields["sport"] = seg.sport
        tcp_fields["dport"] = seg.dport
        tcp_fields["seq"] = seg.seq.value
        tcp_fields["ack"] = seg.ack.value
        tcp_fields["dataofs"] = packet[tcp_offset + 12] >> 4
        tcp_fields["flags"] = int(seg.flags)
        tcp_fields["window"] = seg.window
        tcp_fields["urgptr"] = seg.urgent
        tcp_fields["options"] = options
        tcp_fields["chksum"] = (packet[tcp_offset + 16] << 8) | packet[tcp_offset + 17]
        if seg.is_ipv6:
            ip_fields["plen"] = len(packet) - 40
            ethertype = ETH_P_IPV6
        else:
            ip_fields["len"] = len(packet)
            ip_fields["chksum"] = (packet[10] << 8) | packet[11]
            ethertype = ETH_P_IP
        header = self._ethernet_header(src_mac, dst_mac, seg.is_ipv6, ethertype)
        if seg.payload:
            data.fields["load"] = seg.payload
            return header + ip.self_build() + tcp.self_build() + data.self_build()  # type: ignore[no-any-return]
        return header + ip.self_build() + tcp.self_build()  # type: ignore[no-any-return]

    def stateless(self, seg: Segment, src_mac: bytes, dst_mac: bytes) -> bytes:
        """A SYN cookie's SYN-ACK, from a template: the struct codec writes the same
        octets as the layers would (bit for bit, tested), in a few microseconds
        instead of about a hundred. Under a SYN flood these are nearly every reply, and
        each one that waits delays a real client's SYN behind it."""
        return self._checksums.encode_frame_once(seg, src_mac, dst_mac)

    def _ethernet_header(self, src_mac: bytes, dst_mac: bytes, v6: bool, ethertype: int) -> bytes:
        header = self._ethernet.get((src_mac, dst_mac, v6))
        if header is None:
            header = self._ethernet[(src_mac, dst_mac, v6)] = struct.pack(
                "!6s6sH", dst_mac, src_mac, ethertype
            )
            if len(self._ethernet) > 1024:
                self._ethernet.clear()
        return header


def scapy_frame_encoder() -> FrameEncoder:
    """IP/TCP/Raw built as Scapy layers (the default codec); see :class:`ScapyFrameEncoder`."""
    return ScapyFrameEncoder()


def fast_frame_encoder() -> FrameEncoder:
    """The struct codec with per-connection templates (:class:`~l4kit.codecs.fast.FastCodec`)."""
    return FastCodec().encode_frame


def frame_encoder(codec: str) -> FrameEncoder:
    return frame_encoders(codec)[0]


def frame_encoders(codec: str) -> tuple[FrameEncoder, FrameEncoder]:
    """The encoder of every reply, and the one of a SYN cookie's SYN-ACK (a 4-tuple the
    responder keeps nothing for: built from a template, and the template not kept)."""
    if codec == "scapy":
        scapy = ScapyFrameEncoder()
        return scapy, scapy.stateless
    if codec == "fast":
        fast = FastCodec()
        return fast.encode_frame, fast.encode_frame_once
    raise ConfigError(f"unknown codec {codec!r} (use scapy or fast)")


class L2Sender:
    """One ``conf.L2socket`` for the whole run."""

    def __init__(self, iface: str) -> None:
        from scapy.config import conf

        # type=0: a send-only packet socket (it is bound to no protocol, so the kernel
        # queues nothing on it). Scapy cannot guess a link layer for protocol 0 on lo
        # and logs a WARNING about it; nothing is ever received here, so the guess is
        # irrelevant and the warning would only worry the user.
        runtime_log = logging.getLogger("scapy.runtime")
        level = runtime_log.level
        runtime_log.setLevel(logging.ERROR)
        try:
            self.socket = conf.L2socket(iface=iface, type=0)
        except OSError as exc:
            raise ConfigError(f"cannot open a sending socket on {iface}: {exc.strerror or exc}") from None
        finally:
            runtime_log.setLevel(level)
        # The packet socket itself (L2Socket.outs): see the module docstring.
        outs = self.socket.outs
        if outs is None:  # pragma: no cover - an L2Socket always has one
            self.socket.close()
            raise ConfigError(f"the sending socket on {iface} cannot send")
        self._send: Callable[[bytes], int] = outs.send
        self.errors = 0

    def send(self, frame: bytes) -> bool:
        """Send one frame; a failure (ENOBUFS under a flood, the interface going
        down) is counted, not raised: TCP recovers a lost segment by retransmission."""
        try:
            self._send(frame)
            return True
        except OSError:
            self.errors += 1
            return False

    def close(self) -> None:
        self.socket.close()

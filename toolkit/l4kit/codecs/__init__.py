"""Codecs: a core :class:`~l4kit.wire.segment.Segment` to packet bytes or Scapy packets, and back.

Two codecs, one contract (DESIGN.md, "Architecture"):

* :mod:`l4kit.codecs.scapy_codec`, the reference named on the product card:
  ``IP()/TCP()/Raw`` layers, for display, notebooks and ``sendp``. Importing it
  imports Scapy, so it is not imported here.
* the fast struct codec of the wire layer, re-exported here:
  :func:`~l4kit.wire.packet.encode_packet` / :func:`~l4kit.wire.packet.decode_packet`,
  whose bytes equal ``raw()`` of the Scapy codec's packet for every segment.
"""

from l4kit.wire.packet import decode_packet, encode_packet

__all__ = ["decode_packet", "encode_packet"]

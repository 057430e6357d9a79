"""Codecs: a core :class:`~l4kit.wire.segment.Segment` to packet bytes or Scapy packets, and back.

Two codecs with one contract, their bytes identical for every segment
(docs/design.md, "Codecs"):

* :mod:`l4kit.codecs.scapy_codec`, the reference and ``respond``'s default
  (``--codec scapy``): ``IP()/TCP()/Raw`` layers, for display, notebooks and
  ``sendp``. Importing it imports Scapy, so it is not imported here.
* :class:`l4kit.codecs.fast.FastCodec`, what ``--codec fast`` runs: ``struct``
  layouts with a per-connection template and incremental checksums (RFC 1624).
  It falls back to the wire layer's one-shot codec,
  :func:`~l4kit.wire.packet.encode_packet` / :func:`~l4kit.wire.packet.decode_packet`
  (re-exported here), whose bytes equal ``raw()`` of the Scapy codec's packet.
"""

from l4kit.wire.packet import decode_packet, encode_packet

__all__ = ["decode_packet", "encode_packet"]

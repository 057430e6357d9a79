"""``l4kit replay``: the TCP conversations in captures, as tables, JSON and analytics.

The pipeline, one module a stage (docs/design.md, "Replay's pipeline"):

* :mod:`~l4kit.replay.runner` finds the captures, orders them by their first frame
  and stitches rotated files into one capture;
* :mod:`~l4kit.replay.capture` reads pcap and pcapng (gzip'd too) as a stream of raw
  frames, ``--filter`` through tcpdump;
* :mod:`~l4kit.replay.fastpath` decodes each frame in place (the link layer through
  :mod:`l4kit.wire.link`), and :mod:`~l4kit.replay.fragments` reassembles IP
  fragments where tshark does;
* :mod:`~l4kit.replay.engine` gives each packet to its connection, numbered as
  tshark's ``tcp.stream``, and runs three observers per connection:
  :mod:`~l4kit.replay.zeek` (Zeek's ``conn_state`` and ``history``),
  :mod:`~l4kit.replay.analysis` (Wireshark's analysis notes) and
  :mod:`~l4kit.replay.states` (both sides' RFC 9293 states);
* each finished connection becomes a :class:`~l4kit.replay.model.ConnectionReport`,
  written by :mod:`~l4kit.replay.jsontext` (JSON), :mod:`~l4kit.replay.zeeklog`
  (Zeek's conn.log, with :mod:`~l4kit.replay.flowid`'s Community ID),
  :mod:`~l4kit.replay.parquet` (Parquet) or the views (tables, Mermaid);
* :mod:`~l4kit.replay.parallel` splits the connections between processes and
  :mod:`~l4kit.replay.cluster` between the tasks of a Dask cluster, both with the
  output of one process; :mod:`~l4kit.replay.responder` feeds the clients' segments
  to l4kit's own core (``--through-responder``).

``l4kit liveplay`` reads captures through the same engine:
:mod:`~l4kit.replay.liveplay_capture` cuts each connection into turns and
:mod:`~l4kit.replay.liveplay` plays the client's turns again over real TCP and
compares what the server answers.
"""

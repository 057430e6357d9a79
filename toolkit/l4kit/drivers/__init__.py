"""What every driver of the core shares.

The drivers (the live responder, replay's ``--through-responder``, the notebooks, the
tests, and the clients built on the socket API) sit above the sans-IO core and below
the views. This package holds what they would otherwise each write again:

* :mod:`l4kit.drivers.transitions`: the one place that turns the core's protocol facts
  into table rows (which row shows which state transition);
* :mod:`l4kit.drivers.blocking`: blocking sockets for threads, on the non-blocking
  socket API of :class:`~l4kit.core.stack.Stack`;
* :mod:`l4kit.drivers.client`: a client connection's blocking socket with its byte
  counts and flag transitions, whatever carries its segments;
* :mod:`l4kit.drivers.pipe`: a client core joined to a server core by a sans-IO pipe,
  no network (``replay --through-responder`` plays captured clients through it).
"""

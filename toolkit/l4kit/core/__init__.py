"""The sans-IO TCP core.

Segments and time go in, segments and events come out. Nothing here opens a
socket, reads a clock, prints, or imports Scapy (enforced by import-linter).

Public API (what drivers, notebooks and tests use; ``docs/core-api.md`` has it all)::

    from l4kit.core import Stack, StackConfig
    from l4kit.wire import Endpoint

    stack = Stack(StackConfig(secret=os.urandom(32)))
    server = stack.listen("10.0.0.1", 8888, backlog=16)      # a ListenSocket
    client = stack.connect(Endpoint("10.0.0.2", 0), Endpoint("10.0.0.9", 80))
    out = stack.flush(now)                 # -> Output(segments=[the SYN], events=[...])
    out = stack.receive(segment, now)      # a segment from the wire
    out = stack.tick(now)                  # when now >= stack.poll_at()
    conn = server.accept()                 # BlockingIOError (EAGAIN) until one is ready
    conn.send(b"hello"); conn.recv(4096); conn.shutdown(SHUT_WR); conn.close()

    # the string server of `l4kit respond`: one listening socket, an application per connection
    listener = Listener(
        ListenerConfig(local=Endpoint("127.0.0.1", 8888), secret=os.urandom(32)),
        make_app_factory(Routes.default(), keep_open=False),
    )

* :class:`Stack`, :class:`ListenSocket`, :class:`ListenerStats` (``l4kit.core.stack``),
  :class:`Listener` (``l4kit.core.listener``), :class:`StackConfig` and
  :class:`ListenerConfig` (``l4kit.core.config``)
* :class:`Connection`, the socket of one connection, its :class:`ConnectionInfo`,
  :func:`socket_error`, ``SHUT_RD``/``SHUT_WR``/``SHUT_RDWR``, the ``POLL*`` bits and
  :data:`TRANSITIONS` (every legal state change) from ``l4kit.core.connection``
* :class:`Output` and the events: :class:`SegmentReceived`, :class:`SegmentSent`,
  :class:`StateChanged`, :class:`DataReceived`, :class:`PeerClosed`,
  :class:`ConnectionReset`, :class:`SegmentDropped` (with a :class:`DropReason`),
  :class:`ConnectionClosed`, :class:`SynCookie`, :class:`TimerFired` (``l4kit.core.events``)
* :class:`State`, the RFC 9293 states (``l4kit.core.states``)
* :class:`Application` / :class:`AppReply`, the seam for what runs on a connection (``l4kit.core.app``)
* :class:`StringServer`, :class:`Routes`, :func:`make_app_factory` (``l4kit.core.server``)
* :class:`Rfc6528Isn` (the default ISN source, ``l4kit.core.isn``) and :class:`SynCookies`
  (``l4kit.core.syncookies``)

Inside, not exported: the bounded out-of-order buffer (``l4kit.core.reassembly``) and
the exceptions that mean a bug in the core (``l4kit.core.bugs``).
"""

from importlib import import_module
from typing import TYPE_CHECKING

# The type checker sees every module through star imports; ``__all__`` is the one list
# of public names (ruff cannot tell which module defines each, hence its F403/F405).
# ruff: noqa: F403, F405
if TYPE_CHECKING:
    from l4kit.core.app import *
    from l4kit.core.config import *
    from l4kit.core.connection import *
    from l4kit.core.events import *
    from l4kit.core.isn import *
    from l4kit.core.listener import *
    from l4kit.core.server import *
    from l4kit.core.stack import *
    from l4kit.core.states import *
    from l4kit.core.syncookies import *

__all__ = [
    "DEFAULT_ROUTES_TOML",
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLOUT",
    "POLLRDHUP",
    "SHUT_RD",
    "SHUT_RDWR",
    "SHUT_WR",
    "TRANSITIONS",
    "AppReply",
    "Application",
    "Connection",
    "ConnectionClosed",
    "ConnectionInfo",
    "ConnectionReset",
    "DataReceived",
    "DropReason",
    "Event",
    "ListenSocket",
    "Listener",
    "ListenerConfig",
    "ListenerStats",
    "LossRecovery",
    "Output",
    "PeerClosed",
    "RecoveryStep",
    "Rfc6528Isn",
    "Routes",
    "SegmentDropped",
    "SegmentReceived",
    "SegmentSent",
    "Stack",
    "StackConfig",
    "State",
    "StateChanged",
    "StringServer",
    "SynCookie",
    "SynCookies",
    "TimerFired",
    "TimerKind",
    "events",  # the module
    "make_app_factory",
    "socket_error",
]

# The names load on first use (PEP 562): ``l4kit replay`` needs only
# ``l4kit.core.states``, and importing the whole state machine, the listener and the
# string server for it is a noticeable part of a short command's start-up (about
# 85 ms against 14 ms). A name is looked for in these modules, cheapest first.
_MODULES = (
    "states",
    "app",
    "config",
    "events",
    "isn",
    "syncookies",
    "server",
    "connection",
    "stack",
    "listener",
)


def __getattr__(name: str) -> object:
    if name == "events":
        return import_module("l4kit.core.events")
    if name in __all__:
        for module in _MODULES:
            namespace = vars(import_module(f"l4kit.core.{module}"))
            if name in namespace:
                value = namespace[name]
                globals()[name] = value
                return value
    raise AttributeError(f"module 'l4kit.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""The application the live responder serves: the string server (:mod:`l4kit.core.server`).

Scapy-free, so that ``l4kit demo`` can ask the core what the right reply is
without loading the packet machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from l4kit.core import Application, Routes, StringServer, make_app_factory
from l4kit.wire.segment import FourTuple


def load_app_factory(routes_file: Path | None, keep_open: bool) -> Callable[[FourTuple], Application]:
    """One string server per connection, on the embedded routes or a TOML file."""
    return make_app_factory(Routes.load(routes_file), keep_open)


def expected_reply(message: str, routes_file: Path | None = None) -> str:
    """What the core's string server answers to one request line: the demo
    compares the bytes a real ``nc`` printed with this."""
    reply = StringServer(Routes.load(routes_file)).on_data((message + "\n").encode())
    return reply.data.decode("utf-8", "replace")

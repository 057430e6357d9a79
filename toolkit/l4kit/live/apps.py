"""The application the live responder serves: the string server of DESIGN.md.

Scapy-free, so that ``l4kit demo`` can ask the core what the right reply is
without loading the packet machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from l4kit.core import Application, Routes, StringServer, make_app_factory
from l4kit.errors import ConfigError
from l4kit.wire.segment import FourTuple


def load_routes(routes_file: Path | None) -> Routes:
    """The embedded routes, or those of a TOML file (errors name the file)."""
    if routes_file is None:
        return Routes.default()
    try:
        text = routes_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read routes file {routes_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"routes file {routes_file} is not UTF-8 text") from None
    return Routes.parse_toml(text, source=str(routes_file))


def load_app_factory(routes_file: Path | None, keep_open: bool) -> Callable[[FourTuple], Application]:
    """One string server per connection, on the embedded routes or a TOML file."""
    return make_app_factory(load_routes(routes_file), keep_open)


def expected_reply(message: str, routes_file: Path | None = None) -> str:
    """What the core's string server answers to one request line: the demo
    compares the bytes a real ``nc`` printed with this."""
    reply = StringServer(load_routes(routes_file)).on_data((message + "\n").encode())
    return reply.data.decode("utf-8", "replace")

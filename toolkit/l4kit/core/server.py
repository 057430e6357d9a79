"""The string server: the application of the original exercise, on top of the core.

A request is one line: octets up to ``\\n`` (an ``\\r`` before it is dropped, so
``telnet`` and ``printf 'ping\\r\\n'`` work too). Requests may arrive split over
several segments or several in one segment; the TCP core hands over a byte stream
and this module finds the lines in it. A request *is* the command, compared
exactly after trimming surrounding blanks. An unknown command gets one line,
``error: unknown command 'xyz' (try: help)``; an empty line (or one of blanks only)
is a request too, answered ``error: empty request (try: help)``, so that a client
that sends one gets an answer and the close like any other. The reply
is the route's text followed by ``\\n``, so ``echo toppage | nc 127.0.0.1 8888``
prints ``hello world`` on a line of its own.

Close policy:

* default: once a segment (or several) completes one or more request lines, answer
  all of them and close (FIN). ``nc`` then sees end-of-file and exits by itself,
  as in the original exercise;
* ``keep_open=True``: answer every line as it completes and keep the connection
  until the client closes; then close too.

In both, a client that closes (FIN) with an unterminated request gets it answered
first (``printf toppage | nc -N ...``). A line longer than ``max_line`` octets is
answered with an error and the connection is closed: a peer that never sends a
newline must not make the server hold an unbounded buffer.

Routes come from TOML *text* (the core does no I/O; the drivers read files)::

    [routes]
    toppage = "hello world"
    ping = "pong"

``help`` lists the commands unless the file defines a ``help`` route itself.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from l4kit.core.app import Application, AppReply

if TYPE_CHECKING:
    from l4kit.core.connection import Connection
from l4kit.errors import ConfigError
from l4kit.wire.segment import FourTuple

DEFAULT_ROUTES_TOML: Final = """\
# l4kit string server routes: a request line equal to a key gets the value as reply.
# `help` lists the commands unless a `help` route is defined here.
[routes]
toppage = "hello world"
ping = "pong"
"""
"""The embedded default routes (also shipped as ``l4kit/data/routes.toml`` to copy from)."""

MAX_COMMAND_LENGTH: Final = 64
MAX_REPLY_LENGTH: Final = 64 * 1024
MAX_ROUTES: Final = 1000
DEFAULT_MAX_LINE: Final = 1024
RECEIVE_ALL: Final = 1 << 20  # a recv() limit above any receive buffer: take what is there


def _printable(text: str, limit: int = 40) -> str:
    """``text`` safe to echo back to a terminal: control characters escaped, long text cut."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in shown)


@dataclass(frozen=True, slots=True)
class Routes:
    """Command -> reply text. Immutable; build with :meth:`default`, :meth:`parse_toml`
    or :meth:`from_mapping`."""

    table: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def default(cls) -> Routes:
        """``toppage`` -> ``hello world``, ``ping`` -> ``pong``, ``help`` -> the list."""
        return cls.parse_toml(DEFAULT_ROUTES_TOML, source="embedded routes")

    @classmethod
    def from_mapping(cls, routes: Mapping[str, object], *, source: str = "routes") -> Routes:
        """Validate ``routes`` and add ``help`` if it is missing (the values are checked
        here, so any TOML value may come in)."""
        if not isinstance(routes, Mapping):
            raise ConfigError(f'{source}: [routes] must be a table of command = "reply"')
        if len(routes) > MAX_ROUTES:
            raise ConfigError(f"{source}: {len(routes)} routes, at most {MAX_ROUTES} allowed")
        table: dict[str, str] = {}
        for command, reply in routes.items():
            if not isinstance(command, str) or not command:
                raise ConfigError(f"{source}: empty command name")
            if len(command) > MAX_COMMAND_LENGTH:
                raise ConfigError(
                    f"{source}: command {_printable(command)!r} is longer than {MAX_COMMAND_LENGTH}"
                )
            if any(ch.isspace() or not ch.isprintable() for ch in command):
                raise ConfigError(
                    f"{source}: command {_printable(command)!r} contains blanks or control characters "
                    "(a command is one word)"
                )
            if not isinstance(reply, str):
                raise ConfigError(
                    f"{source}: the reply of {command!r} must be a string, not {type(reply).__name__} "
                    f'(write {command} = "...")'
                )
            if len(reply.encode("utf-8")) > MAX_REPLY_LENGTH:
                raise ConfigError(
                    f"{source}: the reply of {command!r} is longer than {MAX_REPLY_LENGTH} octets"
                )
            table[command] = reply
        if "help" not in table:
            table["help"] = "commands: " + ", ".join(sorted([*table, "help"]))
        return cls(MappingProxyType(table))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> Routes:
        """The routes of the TOML file at ``path`` (the embedded ones for None): what
        ``--routes`` names, for ``respond`` and ``replay --through-responder`` alike.
        Every problem, the file's reading included, is one :class:`ConfigError` line
        that names it."""
        if path is None:
            return cls.default()
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError(f"--routes {path}: cannot read routes file ({exc.strerror or exc})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--routes {path}: not UTF-8 text (octet {exc.start})") from None
        return cls.parse_toml(text, source=f"--routes {path}")

    @classmethod
    def parse_toml(cls, text: str, *, source: str = "routes") -> Routes:
        """Routes from TOML text of the shape ``[routes]`` / ``command = "reply"``.

        ``source`` names the text in error messages (the file name, for the drivers).
        Every problem is a :class:`~l4kit.errors.ConfigError` with a one-line message.
        """
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        unknown = sorted(set(document) - {"routes"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown key {unknown[0]!r} (expected only a [routes] table)",
                hint='write [routes] then one command = "reply" per line',
            )
        if "routes" not in document:
            raise ConfigError(
                f"{source}: no [routes] table", hint='write [routes] then one command = "reply" per line'
            )
        routes = document["routes"]
        if not isinstance(routes, dict):
            raise ConfigError(f"{source}: routes must be a table ([routes]), not {type(routes).__name__}")
        for command, reply in routes.items():
            if isinstance(reply, dict):
                raise ConfigError(
                    f'{source}: [routes.{command}] is a table; a route is command = "reply" '
                    "(quote commands that contain dots)"
                )
        return cls.from_mapping(routes, source=source)

    @property
    def commands(self) -> list[str]:
        return sorted(self.table)

    def reply_for(self, command: str) -> str:
        """The reply line for one request (without the trailing newline)."""
        if not command:
            return "error: empty request (try: help)"
        reply = self.table.get(command)
        if reply is not None:
            return reply
        return f"error: unknown command '{_printable(command)}' (try: help)"

    def __iter__(self) -> Iterator[str]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.table)


class StringServer:
    """One instance per connection: lines in, replies out, on the socket API (an
    :class:`Application`). :meth:`on_data` and :meth:`on_peer_closed` are the line logic,
    as values; :meth:`on_readable` reads the connection, sends the answer and closes."""

    __slots__ = ("_buffer", "_closed", "keep_open", "max_line", "requests", "routes")

    def __init__(
        self, routes: Routes | None = None, keep_open: bool = False, *, max_line: int = DEFAULT_MAX_LINE
    ) -> None:
        self.routes = routes if routes is not None else Routes.default()
        self.keep_open = keep_open
        self.max_line = max_line
        self.requests = 0
        self._buffer = bytearray()
        self._closed = False

    def _answer(self, line: bytes) -> bytes:
        if line.endswith(b"\r"):
            line = line[:-1]
        command = line.decode("utf-8", "replace").strip()
        self.requests += 1
        reply = self.routes.reply_for(command)
        return (reply if reply.endswith("\n") else reply + "\n").encode("utf-8")

    def on_readable(self, conn: Connection) -> None:
        # What is there to read, then the end of the stream if the peer closed: a request
        # and its FIN may come in one segment (or be joined by reassembly).
        while conn.readable:
            data = conn.recv(RECEIVE_ALL)
            reply = self.on_data(data) if data else self.on_peer_closed()
            if reply.data:
                conn.send(reply.data)
            if reply.close:
                conn.close()
                return
            if not data:
                return

    def on_data(self, data: bytes) -> AppReply:
        """What ``data`` (the next octets of the stream) asks for."""
        if self._closed:
            return AppReply()
        self._buffer += data
        replies: list[bytes] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                break
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if len(line) > self.max_line:
                return self._too_long(replies)
            replies.append(self._answer(line))
        if len(self._buffer) > self.max_line:
            return self._too_long(replies)
        if replies and not self.keep_open:
            self._closed = True  # the first batch is answered: close (the default policy)
            return AppReply(b"".join(replies), close=True)
        return AppReply(b"".join(replies))

    def _too_long(self, replies: list[bytes]) -> AppReply:
        self._closed = True
        self._buffer.clear()
        replies.append(f"error: line longer than {self.max_line} bytes\n".encode())
        return AppReply(b"".join(replies), close=True)

    def on_peer_closed(self) -> AppReply:
        """What to do at the end of the stream: answer an unterminated request, close."""
        if self._closed:
            return AppReply(close=True)
        self._closed = True
        pending = bytes(self._buffer)
        self._buffer.clear()
        answer = self._answer(pending) if pending else None
        # The client has nothing more to say: answer what is left, and close too.
        return AppReply(answer or b"", close=True)


def make_app_factory(
    routes: Routes | None = None, keep_open: bool = False, *, max_line: int = DEFAULT_MAX_LINE
) -> Callable[[FourTuple], Application]:
    """The ``app_factory`` for :class:`~l4kit.core.listener.Listener`: a new
    :class:`StringServer` for each connection, all sharing ``routes``."""
    shared = routes if routes is not None else Routes.default()

    def factory(key: FourTuple) -> Application:
        return StringServer(shared, keep_open, max_line=max_line)

    return factory

"""The package's own exceptions.

Everything a user can cause (no root, a missing file, a capture that is not a
capture, a port in use) is raised as an :class:`L4kitError` subclass with a
message that reads as one line. The CLI turns it into one Rich error line and a
non-zero exit; a traceback means a bug in l4kit, never a user mistake.
"""

from __future__ import annotations


class L4kitError(Exception):
    """Base of every foreseeable l4kit failure.

    ``exit_code`` is what the CLI exits with; ``hint`` is an optional second
    sentence that says how to fix the problem.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ParseError(L4kitError):
    """Bytes that cannot be turned into a header.

    The only exception a decoder may raise. ``layer`` names the header being
    decoded (``"tcp"``, ``"ipv4"``, ...) and ``reason`` is a short, stable,
    machine-readable tag (``"truncated"``, ``"bad-data-offset"``, ...) that the
    responder counts drops under.
    """

    def __init__(self, layer: str, reason: str, detail: str = "") -> None:
        self.layer = layer
        self.reason = reason
        self.detail = detail
        text = f"{layer}: {reason}" + (f": {detail}" if detail else "")
        super().__init__(text)


class IntegrityError(ParseError):
    """The bytes cannot be read as the header: too short, a length field that
    points past the buffer, an option that runs off the end."""


class SanityError(ParseError):
    """The header is readable but illegal: SYN together with FIN, port 0,
    an option length of 0 or 1, a data offset below 5."""


class PrivilegeError(L4kitError):
    """Missing root or a capability (CAP_NET_RAW / CAP_NET_ADMIN)."""


class ConfigError(L4kitError):
    """A bad option value, route file or interface/address choice."""


class CaptureError(L4kitError):
    """A capture file that is missing, unreadable or of an unsupported kind."""

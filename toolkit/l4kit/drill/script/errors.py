"""The one error a script's text can raise: where it is wrong, and how."""

from __future__ import annotations

from l4kit.errors import L4kitError


class ScriptSyntaxError(L4kitError):
    """A script that does not parse: ``file:line: what is wrong``. Exit status 2,
    like any other usage error."""

    exit_code = 2

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.reason = message

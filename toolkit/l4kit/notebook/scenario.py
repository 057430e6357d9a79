"""The notebooks' fixed scenario and the small pieces the rest of the package shares.

The addresses, ports, initial sequence numbers, secret and step length that every
notebook uses, with :class:`SteppingError` and :class:`StateChange`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l4kit.core import State
from l4kit.errors import L4kitError
from l4kit.wire import Endpoint

#: The client's address and port: RFC 5737 documentation addresses, never routed anywhere.
CLIENT: Final = Endpoint("192.0.2.1", 40000)
#: The server's address and port (8888, the port of the original exercise).
SERVER: Final = Endpoint("192.0.2.2", 8888)
#: The client's initial sequence number: small and round, so the arithmetic reads easily.
CLIENT_ISN: Final = 1000
#: The server's initial sequence number (a real server picks an unguessable one, RFC 6528).
SERVER_ISN: Final = 5000
#: The listener's secret. Fixed and public: it keys SYN cookies and, with ``server_isn=None``,
#: the RFC 6528 ISN, and a notebook must print the same numbers on every run.
NOTEBOOK_SECRET: Final = b"l4kit notebooks: a fixed and public key"
#: Seconds of imaginary time between two steps.
STEP_SECONDS: Final = 0.001

CLIENT_SIDE: Final = "client"
SERVER_SIDE: Final = "server"
_ARROWS: Final = {"c2s": "→", "s2c": "←", "timer": "·"}


class SteppingError(L4kitError):
    """A step that cannot be taken: nothing is in flight, or a packet the stepper cannot send."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class StateChange:
    """One side's RFC 9293 state before and after a step."""

    before: State
    after: State

    @property
    def changed(self) -> bool:
        return self.before is not self.after

    def __str__(self) -> str:
        return f"{self.before} → {self.after}" if self.changed else f"{self.after} (unchanged)"

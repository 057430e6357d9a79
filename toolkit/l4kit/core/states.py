"""RFC 9293 connection states, named as the RFC names them."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """The connection states of RFC 9293 §3.3.2, printed with the RFC's names."""

    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"
    CLOSED = "CLOSED"

    def __str__(self) -> str:
        return self.value

    @property
    def synchronized(self) -> bool:
        """RFC 9293 §3.10.7.4: the states after the handshake, where a
        segment without ACK is dropped and a SYN gets a challenge ACK."""
        return self not in (State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED, State.CLOSED)

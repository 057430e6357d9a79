"""The sans-IO TCP core.

Segments and time go in, segments and events come out. Nothing here opens a
socket, reads a clock, prints, or imports Scapy (enforced by import-linter).
"""

from l4kit.core.states import State

__all__ = ["State"]

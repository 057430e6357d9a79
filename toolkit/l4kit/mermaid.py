"""Text inside a Mermaid sequence diagram, escaped.

Replay's ``--format mermaid`` and the notebooks' ``SequenceDiagram.mermaid`` both
write labels that come from the wire (payload previews) or from the user (endpoint
names); one escaper serves both. Pure string work, no imports of l4kit.
"""

from __future__ import annotations

from typing import Final

# Mermaid's entity codes (#35; is '#', #59; is ';'), as its documentation spells them.
_MERMAID_ESCAPES: Final = str.maketrans(
    {"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", '"': "#quot;", "\n": " ", "\r": " "}
)


def mermaid_escape(text: str) -> str:
    """Text safe inside a Mermaid message or note, escaped in one pass: ``#`` (it
    starts every entity code), ``;`` (a statement separator), ``<``/``>`` (HTML),
    quotes; a raw newline would end the line (payload previews show it as ``\\n``)."""
    return text.translate(_MERMAID_ESCAPES)

"""The ``l4kit.replay/1.1`` JSON text of a connection, formatted by hand.

This runs once per packet of a capture: building a dict per packet for
:func:`json.dumps` costs several times as much as formatting the text directly, so
the text is written here and ``tests/unit/test_replay_views.py`` checks that,
parsed back, it is exactly what ``json.dumps`` of the same values gives. The schema
is documented in ``docs/replay-json.md``; fields are only ever added within major
version 1 (each addition raises the minor version), never renamed or removed.

Kept apart from the Rich views (:mod:`l4kit.views.replay`) so that it imports
nothing but the replay model, and so that it can be compiled with the engine (see
``setup.py``).
"""

from __future__ import annotations

import json
from codecs import escape_encode
from typing import Any, Final

from l4kit.replay.flowid import connection_community_id, connection_uid
from l4kit.replay.model import (
    DIRECTIONS,
    FLAG_LETTERS,
    PREVIEW_BYTES,
    ConnectionReport,
    PacketRecord,
    ReplaySummary,
    StateTransition,
)

JSON_SCHEMA: Final = "l4kit.replay/1.1"


_NOTES_JSON: dict[tuple[str, ...], str] = {(): "[]"}
_NOTES_JSON_LIMIT: Final = 4096  # distinct note combinations cached (duplicate ACK #n has no end)

_PREVIEW_CHARS: Final = PREVIEW_BYTES
_DIRECTION_FLAGS: Final[tuple[list[str], ...]] = tuple(
    [f'"dir": "{direction}", "flags": "{letters}", "seq": ' for letters in FLAG_LETTERS]
    for direction in DIRECTIONS
)


def _seconds(t: float, digits: int = 9) -> str:
    """``t`` to ``digits`` decimals (6 or 9: the capture's timestamps, see
    :attr:`~l4kit.replay.capture.CaptureReader.time_digits`) as a JSON number, without
    trailing zeros (the same value as ``repr(round(t, digits))``, in half the time)."""
    # "%" is the fastest float formatting there is
    text = ("%.6f" % t if digits == 6 else "%.9f" % t).rstrip("0")  # noqa: UP031
    return text + "0" if text[-1] == "." else text


def _relative_seconds(t: float, digits: int = 9) -> str:
    """:func:`_seconds` for the time of a packet within its connection, once per
    packet: below 10**6 s, ``t * 10**9`` is exact to a sixteenth of a nanosecond, so
    integer arithmetic gives the same digits (rounding ties aside, within 1 ns)
    at half the cost of formatting a float, once compiled (``setup.py``)."""
    if 0.0 <= t < 1e6:
        unit = 1_000_000 if digits == 6 else 1_000_000_000  # microseconds or nanoseconds
        count = int(t * unit + 0.5)
        whole = count // unit
        fraction = count - whole * unit
        if fraction:  # unit + fraction: the fraction's digits with their leading zeros
            return f"{whole}.{str(fraction + unit)[1:].rstrip('0')}"
        return f"{whole}.0"
    return _seconds(t, digits)


def _data_json(head: bytes, length: int) -> str:
    """``json.dumps(preview(head, length))`` without a loop in Python.

    :func:`~l4kit.replay.model.preview` escapes octets as Python writes bytes, and
    so does ``codecs.escape_encode`` (in C), except that it also escapes ``'``. JSON
    then escapes backslash and ``"``; the rest of a preview is printable ASCII.
    (1.5-2x faster than a table lookup per octet, compiled or not;
    ``tests/unit/test_replay_views.py`` checks it against ``json.dumps(preview())``
    for every octet.)"""
    head = head[:_PREVIEW_CHARS]
    escaped = escape_encode(head)[0]
    if 39 in head:  # '
        escaped = escaped.replace(b"\\'", b"'")
    escaped = escaped.replace(b"\\", b"\\\\")
    if 34 in head:  # "
        escaped = escaped.replace(b'"', b'\\"')
    text = escaped.decode("ascii")
    return f'"{text}\\u2026"' if length > _PREVIEW_CHARS else f'"{text}"'


def _notes_json(notes: tuple[str, ...]) -> str:
    text = json.dumps(list(notes))
    if len(_NOTES_JSON) < _NOTES_JSON_LIMIT:
        _NOTES_JSON[notes] = text
    return text


def _row_json(rec: PacketRecord, digits: int = 9) -> str:
    """One packet as JSON text, formatted directly: this runs once per packet of the
    capture, and building a dict for ``json.dumps`` costs several times as much.
    (Identical to ``json.dumps`` of the dict: ``tests/unit/test_replay_views.py``.)"""
    frame, t, direction, flags, seq, ack, length, window, checksum, notes, head, _, _, _, _, scale = rec
    seconds = _relative_seconds(t, digits)
    scaled = "" if scale < 0 else f', "win_scaled": {window << scale}, "win_scale": {scale}'
    return (
        f'{{"frame": {frame}, "t": {seconds}, {_DIRECTION_FLAGS[direction][flags]}{seq}, '
        f'"ack": {"null" if ack is None else ack}, "len": {length}, "win": {window}{scaled}, '
        f'"checksum": "{checksum}", "notes": {_NOTES_JSON.get(notes) or _notes_json(notes)}, '
        f'"data": {_data_json(head, length) if length else chr(34) * 2}}}'
    )


def _transition_json(tr: StateTransition, digits: int = 9) -> str:
    # ``_value_``: the member's value as a plain attribute (``.value`` is a property).
    t, packet, frame, side, before, after = tr
    return (
        f'{{"t": {_relative_seconds(t, digits)}, "packet": {packet}, "frame": {frame}, '
        f'"side": "{side}", "from": "{before._value_}", "to": "{after._value_}"}}'
    )


def _connection_fields(r: ConnectionReport) -> dict[str, Any]:
    return {
        "id": r.id,
        "client": r.client,
        "server": r.server,
        "state": r.state,
        "history": r.history,
        "client_state": r.client_state,
        "server_state": r.server_state,
        "start": round(r.start, 9),
        "duration": round(r.duration, 9),
        "first_frame": r.first_frame,
        "last_frame": r.last_frame,
        "c2s": {
            "packets": r.c2s.packets,
            "bytes": r.c2s.bytes,
            "payload": r.c2s.payload,
            "ip_bytes": r.c2s.ip_bytes,
        },
        "s2c": {
            "packets": r.s2c.packets,
            "bytes": r.s2c.bytes,
            "payload": r.s2c.payload,
            "ip_bytes": r.s2c.ip_bytes,
        },
        "checksum": _checksum_fields(r.checksum),
        "analysis": dict(sorted(r.analysis.items())),
        "notes": list(r.notes),
        "file": r.file,
        "uid": connection_uid(r),
        "community_id": connection_community_id(r),
    }


def _unverified(counts: dict[str, int]) -> str:
    """The ``unverified`` count, present only when some checksum could not be checked."""
    return f', "unverified": {counts["unverified"]}' if counts["unverified"] else ""


def _checksum_fields(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v or k != "unverified"}


def _history_json(history: str) -> str:
    """Zeek's history as a JSON string: letters and ``^`` need no escaping (the ``…`` of
    a history cut at its limit does)."""
    if history.isascii() and history.lstrip("^").isalpha():
        return f'"{history}"'
    return json.dumps(history)


def connection_json_text(r: ConnectionReport) -> str:
    """One connection in the ``l4kit.replay/1.1`` schema, as one line of JSON text."""
    c2s, s2c, ck, digits = r.c2s, r.s2c, r.checksum, r.time_digits
    # Addresses, state names and counts need no JSON escaping; the free texts go
    # through json.dumps (test_replay_views checks this equals json.dumps of the dict).
    head = (
        f'{{"id": {r.id}, "client": "{r.client}", "server": "{r.server}", "state": "{r.state}", '
        f'"history": {_history_json(r.history)}, "client_state": "{r.client_state}", '
        f'"server_state": "{r.server_state}", "start": {_seconds(r.start, digits)}, '
        f'"duration": {_relative_seconds(r.duration, digits)}, "first_frame": {r.first_frame}, '
        f'"last_frame": {r.last_frame}, '
        f'"c2s": {{"packets": {c2s.packets}, "bytes": {c2s.bytes}, "payload": {c2s.payload}, '
        f'"ip_bytes": {c2s.ip_bytes}}}, '
        f'"s2c": {{"packets": {s2c.packets}, "bytes": {s2c.bytes}, "payload": {s2c.payload}, '
        f'"ip_bytes": {s2c.ip_bytes}}}, '
        f'"checksum": {{"ok": {ck["ok"]}, "bad": {ck["bad"]}, "offloaded": {ck["offloaded"]}'
        f"{_unverified(ck)}}}, "
        f'"analysis": {json.dumps(dict(sorted(r.analysis.items()))) if r.analysis else "{}"}, '
        f'"notes": {json.dumps(r.notes) if r.notes else "[]"}'
    )
    packets = ", ".join([_row_json(rec, digits) for rec in r.rows])
    transitions = ", ".join([_transition_json(tr, digits) for tr in r.transitions])
    tail = ""
    if r.differences is not None:
        tail = ', "differences": ' + json.dumps(list(r.differences))
    if r.liveplay is not None:
        tail += ', "liveplay": ' + json.dumps(r.liveplay)
    return (
        f'{head}, "packets": [{packets}], "packets_omitted": {r.rows_omitted}, '
        f'"transitions": [{transitions}], "transitions_omitted": {r.transitions_omitted}, '
        f'"file": {json.dumps(r.file)}, "uid": "{connection_uid(r)}", '
        f'"community_id": "{connection_community_id(r)}"{tail}}}'
    )


def connection_json(r: ConnectionReport) -> dict[str, Any]:
    """One connection in the ``l4kit.replay/1.1`` schema, as Python values."""
    result: dict[str, Any] = json.loads(connection_json_text(r))
    return result


def summary_json(s: ReplaySummary) -> dict[str, Any]:
    return {
        "packets": s.packets,
        "tcp_packets": s.tcp_packets,
        "connections": s.connections,
        "shown": s.shown,
        "checksum": _checksum_fields(s.checksum),
        "ip_checksum_bad": s.ip_checksum_bad,
        "skipped": dict(sorted(s.skipped.items())),
        **({"fragments": dict(s.fragments)} if s.fragments else {}),
        **({"filter_frames": s.filter_frames} if s.filter_frames is not None else {}),
        "linktypes": list(s.linktypes),
        "first_time": s.first_time,
        "last_time": s.last_time,
        "truncated": s.truncated,
        "truncation": s.truncation_detail,
        "files": [dict(f) for f in s.files],
    }

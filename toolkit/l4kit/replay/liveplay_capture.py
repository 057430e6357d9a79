"""The connections of a capture, cut into turns for liveplay (:mod:`l4kit.replay.liveplay`).

Read by replay's own engine, so a connection's id is the one ``l4kit replay`` and
tshark's ``tcp.stream`` give it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from l4kit.errors import CaptureError
from l4kit.replay.capture import CaptureReader
from l4kit.replay.engine import Replayer
from l4kit.replay.liveplay import CapturedConnection, StreamCollector
from l4kit.wire import link


def read_capture(path: str, *, streams: Iterable[int] = ()) -> list[CapturedConnection]:
    """Every TCP connection of the capture (or those whose ids are in ``streams``), cut
    into turns, in id order. CaptureError (exit 2) for a file that is not a capture, an
    unsupported link type, or a capture without TCP."""
    wanted = set(streams)
    found: list[CapturedConnection] = []

    def collect(cid: int, client: tuple[str, int], server: tuple[str, int]) -> StreamCollector:
        return StreamCollector(cid, client, server, found.append)

    with CaptureReader(path) as capture:
        frames = iter(capture)
        first = next(frames, None)
        if first is not None and not link.is_supported(first[2]):
            raise CaptureError(f"{path}: unsupported link type {link.linktype_name(first[2])}", exit_code=2)
        replayer = Replayer(
            lambda _report: None, file=path, max_rows=1, collect=collect, time_digits=capture.time_digits
        )
        replayer.run(itertools.chain([first] if first else [], frames))
        summary = replayer.finish()
    if summary.connections == 0:
        raise CaptureError(f"{path}: no TCP connection in the capture", exit_code=2)
    missing = sorted(wanted - {c.id for c in found})
    if missing:
        raise CaptureError(
            f"{path}: no connection {', '.join(map(str, missing))} (ids 0-{summary.connections - 1})",
            exit_code=2,
        )
    return sorted((c for c in found if not wanted or c.id in wanted), key=lambda c: c.id)

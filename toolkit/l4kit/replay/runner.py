"""Replay over one capture or many: finding them, ordering them, stitching rotated files.

Theory of operation
===================

Inputs
------
``l4kit replay`` takes capture files and directories (:func:`find_captures`: every
capture in a directory, at any depth, recognised by its first octets). Each is
*probed* (:func:`probe`): opened, and the time of its first frame read. Captures
are read in the order of their first frame (then in the order given), so that
files a rotating ``tcpdump -C``/``-G`` wrote come in the order they were written,
whatever their names.

Chains
------
Connections run over the boundary of a rotated capture's files. A file whose first
frame comes no earlier than the previous file's last frame, and at most
:data:`STITCH_GAP` seconds later, *continues* it (:func:`continues`): the same
:class:`~l4kit.replay.engine.Replayer` goes on reading, so a connection with the
same 4-tuple in the next file is the same connection (its sequence numbers carry
on, its Zeek history and states too), ids keep counting and frames keep their
numbers as if the files were one (as ``mergecap -a`` would join them). Files
that continue each other form a *chain*; any other file starts a new chain (with
``--no-stitch`` every file does): the connections still open are finished there,
and ids count from 0 again (each row names its file, see
:attr:`~l4kit.replay.model.ConnectionReport.file`). Zeek's own limit shows in the
gap: past its ``tcp_inactivity_timeout`` (5 minutes) Zeek would have expired a quiet
connection anyway.

The decision needs only the times of the frames replay reads, so every process
makes it alike: reading the files one after the other (:func:`replay_captures`),
or up front from fully probed files (:func:`plan_chains`, for a cluster, which
gives each chain its own tasks).

Splitting
---------
As for one capture (:mod:`l4kit.replay.parallel`), every process that shares a
run reads every frame of every file and analyses its share of the connections;
reports are numbered across chains in the order one process alone would emit
them, so the outputs merge back into exactly that order.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from l4kit.errors import CaptureError
from l4kit.replay.capture import EXIT_BAD_INPUT, CaptureReader, Frame
from l4kit.replay.engine import OnRecord, Replayer
from l4kit.replay.model import ConnectionReport, ReplaySummary

if TYPE_CHECKING:
    from l4kit.core import Routes

STITCH_GAP: Final = 300.0
"""Seconds between the last frame of one file and the first of the next beyond which
the next does not continue it: Zeek's ``tcp_inactivity_timeout``."""

SHARD_COUNTS: Final = ("shown", "checksum", "ip_checksum_bad")
"""Summary counts each process of a split run makes for its own share only (the
others every process makes for every frame, alike)."""

_CAPTURE_MAGICS: Final = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)
_GZIP: Final = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Capture:
    """One input file: its path, the time of its first frame (None: it has none), its
    size when it is a regular file; when probed to its end (:func:`probe`), the times
    of its first and last frames, which decide the chains (:func:`plan_chains`)."""

    path: str
    first_time: float | None = None
    size: int | None = None
    read_first: float | None = None
    read_last: float | None = None


@dataclass(slots=True)
class ReplayOptions:
    """What selects and shapes the reports (the command's options)."""

    port: int | None = None
    stream: int | None = None
    max_rows: int = 1000
    bpf: str | None = None
    routes: Routes | None = None  # --through-responder
    stitch: bool = True
    conn_only: bool = False  # what conn.log says only (Replayer's conn_only)


@dataclass(slots=True)
class RunResult:
    """What a run read: the summary over every capture, and the number of chains."""

    summary: ReplaySummary
    chains: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def _looks_like_capture(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in _CAPTURE_MAGICS or head[:2] == _GZIP


def find_captures(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The capture files ``paths`` name: files as given, directories walked (sorted,
    hidden entries skipped) for the files that start like a capture (pcap, pcapng or
    gzip). Returns them and the files found in directories that were left out."""
    found: list[str] = []
    ignored: list[str] = []
    for given in paths:
        p = Path(given)
        if not p.is_dir():
            found.append(given)  # the reader says what is wrong with it, if anything
            continue
        inside = []
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    inside.append(Path(root) / name)
        for candidate in inside:
            (found if _looks_like_capture(candidate) else ignored).append(str(candidate))
        if not any(_looks_like_capture(c) for c in inside):
            message = f"{given}: is a directory with no capture file in it"
            raise CaptureError(message, exit_code=EXIT_BAD_INPUT)
    return found, ignored


def file_size(path: str) -> int | None:
    """The size of a regular file (what every process of a split run reads of it);
    None for a pipe or a device, which can be read only once."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def probe(path: str, *, to_end: bool = False) -> Capture:
    """Open ``path`` and read its first frame; ``to_end``: read every frame, for the time
    of the last (replay reads every frame, ``--filter`` or not: it decides only which
    are shown). Bad input raises :class:`~l4kit.errors.CaptureError` here, before
    anything is written."""
    size = file_size(path)
    with CaptureReader(path, size=size) as reader:
        frames = iter(reader)
        first = next(frames, None)
        read_first = read_last = None
        if to_end and first is not None:
            last = first
            for frame in frames:
                last = frame
            read_first, read_last = first[1], last[1]
    return Capture(
        path,
        first_time=first[1] if first is not None else None,
        size=size,
        read_first=read_first,
        read_last=read_last,
    )


def order_captures(captures: Iterable[Capture]) -> list[Capture]:
    """In the order of their first frames (then as given); captures without a frame last."""
    indexed = list(enumerate(captures))
    indexed.sort(key=lambda ic: (ic[1].first_time is None, ic[1].first_time or 0.0, ic[0]))
    return [c for _, c in indexed]


def continues(previous_last: float | None, first: float | None) -> bool:
    """Whether a file whose first frame is at ``first`` continues one whose last frame
    was at ``previous_last`` (see the module's documentation)."""
    if previous_last is None or first is None:
        return False
    return previous_last <= first <= previous_last + STITCH_GAP


def plan_chains(captures: Sequence[Capture], *, stitch: bool) -> list[list[Capture]]:
    """The chains of ``captures`` (ordered; probed to their ends when ``stitch``), as
    :func:`replay_captures` forms them while reading: a file replay reads no frame
    of joins the chain before it."""
    chains: list[list[Capture]] = []
    last: float | None = None
    for capture in captures:
        first = capture.read_first if stitch else capture.first_time
        if first is None and chains:  # no frame: it changes nothing
            chains[-1].append(capture)
            continue
        if not chains or not (stitch and continues(last, first)):
            chains.append([])
        chains[-1].append(capture)
        last = capture.read_last
    return chains


# ---------------------------------------------------------------- reading


def _renumbered(frames: Iterator[Frame], offset: int) -> Iterator[Frame]:
    for number, t, linktype, data, wirelen in frames:
        yield (number + offset, t, linktype, data, wirelen)


Sink = Callable[[int, ConnectionReport], None]
"""``(index, report)``: a report, and its place in the output of the whole run."""


def replay_captures(
    captures: Sequence[Capture],
    sink: Sink,
    options: ReplayOptions,
    *,
    shards: int = 1,
    shard: int = 0,
    pull: Callable[[int, int], None] | None = None,
    on_record: OnRecord | None = None,
    watch: Callable[[CaptureReader | None], None] | None = None,
    on_start: Callable[[float | None], None] | None = None,
) -> RunResult:
    """Read ``captures`` in order, chain by chain, and hand each shown connection's
    report to ``sink`` with its index in the run's output.

    ``shards``/``shard``/``pull``: this process's share of a split run (see
    :class:`~l4kit.replay.engine.Replayer`); ``pull(index, shard)`` is called where
    another share's report comes in the output. ``on_record``: see
    :meth:`Replayer.run` (``--step``; True stops the run). ``watch``: called with
    each reader as it is opened, and None when reading ends (a progress display
    follows the reader's position). ``on_start(t)``: called once, when the run's first
    frame (at ``t``) has been read and before any report, or at the end with None
    when there was none: a writer starts its output then, so that a capture that
    cannot be read prints nothing but its error.
    """
    total: ReplaySummary | None = None
    result = RunResult(ReplaySummary(file=captures[0].path if captures else ""))
    replayer: Replayer | None = None
    base = 0  # reports of the chains before this one
    offset = 0  # frames of the files before this one in the chain
    sized = shards > 1  # every process must read the same bytes of a growing file

    def new_replayer(path: str) -> Replayer:
        def emit(report: ConnectionReport) -> None:
            assert replayer is not None
            sink(base + replayer.emitted - 1, report)

        def other(index: int, owner: int) -> None:
            if pull is not None:
                pull(base + index, owner)

        return Replayer(
            emit,
            file=path,
            port=options.port,
            stream=options.stream,
            max_rows=options.max_rows,
            through_responder=options.routes,
            shards=shards,
            shard=shard,
            on_other_shard=other if pull is not None else None,
            conn_only=options.conn_only and options.routes is None,
        )

    def end_chain() -> None:
        nonlocal total, base, replayer
        if replayer is None:
            return
        summary = replayer.finish()
        base += replayer.emitted
        total = summary if total is None else merge_summaries(total, summary)
        result.chains += 1
        replayer = None

    stopped = False
    started = False
    try:
        for capture in captures:
            with CaptureReader(capture.path, bpf=options.bpf, size=capture.size if sized else None) as reader:
                if watch is not None:
                    watch(reader)
                frames = iter(reader)
                first = next(frames, None)
                if first is not None and not started:
                    started = True
                    if on_start is not None:
                        on_start(first[1])
                if (
                    replayer is not None
                    and first is not None
                    and not (options.stitch and continues(replayer.summary.last_time, first[1]))
                ):
                    end_chain()
                if replayer is None:
                    replayer = new_replayer(capture.path)
                    offset = 0
                replayer.file = capture.path
                replayer.time_digits = reader.time_digits
                replayer.frame_filter = reader.frame_filter
                before = replayer.summary.packets
                stream: Iterator[Frame] = chain([first], frames) if first is not None else iter(())
                if offset:
                    stream = _renumbered(stream, offset)
                stopped = replayer.run(stream, on_record)
                read = replayer.summary.packets - before
                result.files.append(
                    {
                        "file": capture.path,
                        "packets": read,
                        "first_frame": offset + 1 if read else 0,
                        "truncated": reader.truncated,
                        "truncation": reader.truncation_detail,
                    }
                )
                offset += read
            if stopped:  # --step was told to stop
                break
        if not started and on_start is not None:
            on_start(None)
        end_chain()
    finally:
        if watch is not None:
            watch(None)
    summary = total if total is not None else result.summary
    if captures:
        summary.file = captures[0].path
    cut = [f for f in result.files if f["truncated"]]
    summary.truncated = bool(cut)
    summary.truncation_detail = cut[0]["truncation"] if cut else ""
    summary.files = result.files
    result.summary = summary
    return result


# ---------------------------------------------------------------- summaries


def merge_summaries(
    into: ReplaySummary, other: ReplaySummary, only: Sequence[str] | None = None
) -> ReplaySummary:
    """Add ``other``'s counts to ``into`` (numbers add, counts by name add, lists join
    without repeats, the first and last times widen); ``only``: just these fields."""
    for f in fields(ReplaySummary):
        name = f.name
        if name in ("file", "truncated", "truncation_detail") or (only is not None and name not in only):
            continue
        mine, theirs = getattr(into, name), getattr(other, name)
        if theirs is None:
            continue
        if mine is None:
            setattr(into, name, theirs)
        elif name == "first_time":
            into.first_time = min(mine, theirs)
        elif name == "last_time":
            into.last_time = max(mine, theirs)
        elif isinstance(mine, bool):
            setattr(into, name, mine or theirs)
        elif isinstance(mine, int):
            setattr(into, name, mine + theirs)
        elif isinstance(mine, dict):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        elif isinstance(mine, list) and name != "files":
            mine.extend(v for v in theirs if v not in mine)
    return into


def summary_state(summary: ReplaySummary) -> dict[str, Any]:
    """The summary as plain values (sent between processes and machines)."""
    return {f.name: getattr(summary, f.name) for f in fields(ReplaySummary)}


def summary_from_state(state: dict[str, Any]) -> ReplaySummary:
    summary = ReplaySummary(file=state["file"])
    for name, value in state.items():
        setattr(summary, name, value)
    return summary


# ---------------------------------------------------------------- several processes


def replay_split(
    captures: Sequence[Capture],
    format_report: Callable[[ConnectionReport], str],
    write: Callable[[str], None],
    options: ReplayOptions,
    jobs: int,
    *,
    watch: Callable[[CaptureReader | None], None] | None = None,
    on_start: Callable[[float | None], None] | None = None,
    write_report: Callable[[ConnectionReport], None] | None = None,
) -> RunResult:
    """:func:`replay_captures` with the connections split between ``jobs`` processes
    (:mod:`l4kit.replay.parallel`): each report's text (``format_report``) goes to
    ``write`` in the order one process would write it. Every capture must be a
    regular file (each process reads it). ``write_report``: takes this process's own
    reports as they are, in their place in that order, where making their text only to
    read it back would be wasted (Parquet)."""
    from l4kit.replay import parallel

    own: list[RunResult] = []

    def work(shard: int, emit: parallel.EmitIndexed, pull: parallel.Pull | None) -> dict[str, Any]:
        def sink(index: int, report: ConnectionReport) -> None:
            emit(index, format_report(report))

        def keep(index: int, report: ConnectionReport) -> None:
            assert write_report is not None
            write_report(report)

        parent = shard == 0
        result = replay_captures(
            captures,
            keep if parent and write_report is not None else sink,
            options,
            shards=jobs,
            shard=shard,
            pull=pull,
            watch=watch if parent else None,
            on_start=on_start if parent else None,
        )
        own.append(result)
        return {name: getattr(result.summary, name) for name in SHARD_COUNTS}

    counts = parallel.run_sharded(jobs, work, write)
    result = own[0]
    for other in counts[1:]:
        merge_summaries(result.summary, summary_from_state({"file": "", **other}), only=SHARD_COUNTS)
    return result


# ---------------------------------------------------------------- formats

SPLITTABLE_FORMATS: Final = ("json", "zeek", "zeek-json", "parquet")
"""The formats whose output is one text per connection, made in any process."""


def formatter(fmt: str, *, with_packets: bool = False) -> Callable[[ConnectionReport], str]:
    """The function that makes one connection's text in format ``fmt`` (one of
    :data:`SPLITTABLE_FORMATS`); for Parquet, its rows as
    :func:`l4kit.replay.parquet.connection_text` writes them."""
    if fmt == "json":
        from l4kit.replay.jsontext import connection_json_text

        return connection_json_text
    if fmt == "zeek":
        from l4kit.replay.zeeklog import conn_tsv_line

        return conn_tsv_line
    if fmt == "zeek-json":
        from l4kit.replay.zeeklog import conn_json_line

        return conn_json_line
    if fmt == "parquet":
        from functools import partial

        from l4kit.replay.parquet import connection_text

        return partial(connection_text, with_packets=with_packets)
    raise ValueError(f"no per-connection text for format {fmt!r}")

"""``l4kit replay``: read a capture, hand each connection's report to the chosen view.

This module owns how the capture is read: one process, or (``--format json``)
the connections split between processes (:mod:`l4kit.replay.parallel`), with the
cyclic garbage collector off while frames are read. The views
(:mod:`l4kit.views.replay`) only turn reports into tables, JSON and Mermaid.
"""

from __future__ import annotations

import gc
import os
import stat
import sys
from collections.abc import Callable, Iterator
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Final

from l4kit.replay.jsontext import connection_json_text
from l4kit.views.replay import JsonWriter, MermaidWriter, Stepper, TableCollector, truncation_warning

if TYPE_CHECKING:
    from rich.console import Console

    from l4kit.replay.capture import Frame
    from l4kit.replay.model import ConnectionReport, PacketRecord, ReplaySummary


def run_replay(file: str, **options: Any) -> int:
    """``l4kit replay``: read ``file``, print the chosen format, return the exit code
    (0, or :data:`~l4kit.replay.capture.EXIT_TRUNCATED` after a cut capture).

    Bad input raises :class:`~l4kit.errors.CaptureError` (exit code 2) before
    anything is printed. A reader that goes away (``| head``) ends the run quietly;
    an output that cannot be written (a full disk) is one error line.
    """
    from l4kit.errors import L4kitError

    try:
        return _run_replay(file, **options)
    except BrokenPipeError:
        # The reader stopped reading: stop too, and keep Python from complaining
        # about the unflushed stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1  # as Rich does for the table output: not everything was delivered
    except OSError as exc:
        if exc.filename is None:  # a write to the output, not a file being opened
            raise L4kitError(f"cannot write the output: {exc.strerror or exc}") from None
        raise


JOBS_ENV: Final = "L4KIT_REPLAY_JOBS"
"""The environment variable that sets how many processes ``replay --format json`` uses
(1: one, the way to turn splitting off); unset or 0: chosen from the capture's size."""


def replay_jobs(file: str, jobs: int | None = None) -> int:
    """How many processes to read ``file`` with: ``jobs`` if given, else
    :data:`JOBS_ENV`, else two for a capture of at least
    :data:`~l4kit.replay.parallel.PARALLEL_MIN_BYTES` on a machine with two cores."""
    from l4kit.errors import ConfigError
    from l4kit.replay import parallel

    if jobs is None:
        text = os.environ.get(JOBS_ENV, "").strip()
        try:
            jobs = int(text) if text else 0
        except ValueError:
            raise ConfigError(f"{JOBS_ENV}={text!r}: not a number of processes") from None
    if jobs < 0:
        raise ConfigError(f"jobs: {jobs} is not a number of processes")
    try:
        info = os.stat(file)
    except OSError:
        return 1  # the reader reports it
    if not stat.S_ISREG(info.st_mode) or not hasattr(os, "fork"):
        return 1  # a pipe or a device cannot be read twice
    return parallel.auto_jobs(info.st_size) if jobs == 0 else jobs


def _run_replay(
    file: str,
    *,
    fmt: str = "table",
    port: int | None = None,
    bpf: str | None = None,
    stream: int | None = None,
    step: bool = False,
    max_rows: int = 1000,
    through_responder: bool = False,
    routes: str | None = None,
    out: IO[str] | None = None,
    err: Console | None = None,
    interactive: bool | None = None,
    jobs: int | None = None,
) -> int:
    from l4kit.errors import CaptureError
    from l4kit.replay.capture import EXIT_BAD_INPUT, EXIT_TRUNCATED, CaptureReader
    from l4kit.replay.engine import Replayer
    from l4kit.wire import link

    out = out if out is not None else sys.stdout
    console: Console | None = None
    if fmt == "table" or step:
        # Only these print with Rich: the JSON and Mermaid outputs never import it, which
        # is about 45 ms of every run's start-up (benchmarks/bench_replay.py times whole runs).
        from rich.console import Console

        # A pipe gets wide lines rather than columns squeezed to 80 characters.
        console = Console(file=out, highlight=False, width=None if out.isatty() else 200)
    sink: Callable[[ConnectionReport], None]
    table: TableCollector | None = None
    writer: JsonWriter | MermaidWriter | None = None
    stepper = None
    # Splitting by connection between processes: for the JSON output (written as it
    # is made), when every connection is analysed, and reading the file itself.
    splittable = fmt == "json" and not step and not through_responder and bpf is None and stream is None
    processes = replay_jobs(file, jobs) if splittable else 1
    # Every process reads the same bytes, even of a file that is still being written.
    size = os.stat(file).st_size if processes > 1 else None

    with CaptureReader(file, bpf=bpf, size=size) as capture:
        frames = iter(capture)
        first = next(frames, None)
        if first is not None and not link.is_supported(first[2]):
            raise CaptureError(
                f"{file}: unsupported link type {link.linktype_name(first[2])}", exit_code=EXIT_BAD_INPUT
            )
        frames_from_first = chain([first] if first else [], frames)
        # The loop allocates millions of short-lived tuples and no reference cycles:
        # the cyclic garbage collector would only rescan them.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if processes > 1:
                writer = JsonWriter(out, file)
                summary = _replay_split(
                    file,
                    processes,
                    frames_from_first,
                    writer,
                    port=port,
                    max_rows=max_rows,
                    size=size,
                    time_digits=capture.time_digits,
                )
            else:
                if fmt == "json":
                    writer = JsonWriter(out, file)
                    sink = writer
                elif fmt == "mermaid":
                    writer = MermaidWriter(out)
                    sink = writer
                else:
                    table = TableCollector()
                    sink = table
                routes_for_responder = None
                if through_responder:
                    from l4kit.replay.responder import load_routes

                    routes_for_responder = load_routes(routes)
                replayer = Replayer(
                    sink,
                    file=file,
                    port=port,
                    stream=stream,
                    max_rows=max_rows,
                    through_responder=routes_for_responder,
                    time_digits=capture.time_digits,
                )
                if step:
                    assert console is not None
                    tty = sys.stdin.isatty() if interactive is None else interactive
                    stepper = Stepper(console, interactive=tty)
                if stepper is None:
                    replayer.run(frames_from_first)
                else:
                    step_through = stepper

                    def show(
                        report: ConnectionReport, record: PacketRecord, linktype: int, data: bytes
                    ) -> bool:
                        step_through(report, record, linktype, data)
                        return step_through.stopped

                    replayer.run(frames_from_first, show)
                summary = replayer.finish()
        finally:
            if gc_was_enabled:
                gc.enable()
        summary.truncated = capture.truncated
        summary.truncation_detail = capture.truncation_detail

    if writer is not None:
        writer.close(summary)
    elif table is not None and not (stepper is not None and stepper.stopped):
        assert console is not None
        if stepper is not None:
            console.print()
        table.render(console, summary)
    if summary.truncated:
        from rich.console import Console

        err = err if err is not None else Console(stderr=True, highlight=False)
        err.print(truncation_warning(file, summary))
        return EXIT_TRUNCATED
    return 0


def _replay_split(
    file: str,
    jobs: int,
    frames: Iterator[Frame],
    writer: JsonWriter,
    *,
    port: int | None,
    max_rows: int,
    size: int | None,
    time_digits: int,
) -> ReplaySummary:
    """``--format json`` with the connections split between ``jobs`` processes
    (:mod:`l4kit.replay.parallel`); the output is the same as with one."""
    from l4kit.replay import parallel
    from l4kit.replay.capture import CaptureReader
    from l4kit.replay.engine import Replayer

    own_summary: list[ReplaySummary] = []

    def work(shard: int, emit: parallel.EmitIndexed, pull: parallel.Pull | None) -> dict[str, Any]:
        def format_report(report: ConnectionReport) -> None:
            emit(replayer.emitted - 1, connection_json_text(report))

        replayer = Replayer(
            format_report,
            file=file,
            port=port,
            max_rows=max_rows,
            shards=jobs,
            shard=shard,
            on_other_shard=pull,
            time_digits=time_digits,
        )
        if shard == 0:
            replayer.run(frames)  # this process: the reader already open
        else:
            with CaptureReader(file, size=size) as capture:
                replayer.run(capture)
        summary = replayer.finish()
        own_summary.append(summary)
        return {
            "shown": summary.shown,
            "checksum": summary.checksum,
            "ip_checksum_bad": summary.ip_checksum_bad,
        }

    counts = parallel.run_sharded(jobs, work, writer.write_text)
    summary = own_summary[0]
    for other in counts[1:]:
        summary.shown += other["shown"]
        summary.ip_checksum_bad += other["ip_checksum_bad"]
        for status, count in other["checksum"].items():
            summary.checksum[status] += count
    return summary

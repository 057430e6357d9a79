"""``l4kit replay``: read captures, hand each connection's report to the chosen output.

This module owns how the captures are read (:mod:`l4kit.replay.runner`): in one
process, or with the connections split between processes
(:mod:`l4kit.replay.parallel`), or on a Dask cluster (:mod:`l4kit.replay.cluster`),
with the cyclic garbage collector off while frames are read, and a progress bar on
a terminal. The views (:mod:`l4kit.views.replay`) turn reports into tables, JSON and
Mermaid; :mod:`l4kit.replay.zeeklog` and :mod:`l4kit.replay.parquet` write Zeek's
conn.log and Parquet.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from l4kit.errors import ConfigError
from l4kit.views.replay import (
    JsonWriter,
    MermaidWriter,
    PacketWalker,
    TableCollector,
    truncation_warning,
    unsupported_warning,
)

if TYPE_CHECKING:
    from rich.console import Console

    from l4kit.replay.capture import CaptureReader
    from l4kit.replay.model import ConnectionReport, PacketRecord, ReplaySummary
    from l4kit.replay.runner import Capture, RunResult
    from l4kit.views.replay import ReplayProgress


def run_replay(file: str | Sequence[str], **options: Any) -> int:
    """``l4kit replay``: read ``file`` (or several captures and directories), print
    the chosen format, return the exit code (0, or
    :data:`~l4kit.replay.capture.EXIT_TRUNCATED` after a cut capture).

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
    from l4kit.replay import parallel

    jobs = _requested_jobs(jobs)
    try:
        info = os.stat(file)
    except OSError:
        return 1  # the reader reports it
    if not stat.S_ISREG(info.st_mode) or not hasattr(os, "fork"):
        return 1  # a pipe or a device cannot be read twice
    return parallel.auto_jobs(info.st_size) if jobs == 0 else jobs


def _requested_jobs(jobs: int | None) -> int:
    """``jobs``, else :data:`JOBS_ENV`'s number, else 0 (choose)."""
    if jobs is None:
        text = os.environ.get(JOBS_ENV, "").strip()
        try:
            jobs = int(text) if text else 0
        except ValueError:
            raise ConfigError(f"{JOBS_ENV}={text!r}: not a number of processes") from None
    if jobs < 0:
        raise ConfigError(f"jobs: {jobs} is not a number of processes")
    return jobs


PROGRESS_MIN_BYTES: Final = 16 << 20
"""Captures of at least this many bytes in all (about a second of work) get a progress
bar on standard error, when it is a terminal."""


class Writer(Protocol):
    """What an output does with the reports: the JSON, Zeek and Parquet writers."""

    def start(self, first_time: float | None) -> None: ...
    def __call__(self, report: ConnectionReport) -> None: ...
    def write_text(self, text: str) -> None: ...
    def close(self, summary: ReplaySummary) -> None: ...


def jobs_for(captures: Sequence[Capture], jobs: int | None = None, *, choose: bool = True) -> int:
    """:func:`replay_jobs` for several captures: chosen from their total size (one when
    not ``choose``), one when any of them is not a regular file."""
    from l4kit.replay import parallel

    requested = _requested_jobs(jobs)
    if any(c.size is None for c in captures) or not hasattr(os, "fork"):
        return 1
    if requested == 0:
        return parallel.auto_jobs(sum(c.size or 0 for c in captures)) if choose else 1
    return requested


def _check_options(
    fmt: str,
    *,
    output: str | None,
    packets: str | None,
    dask: str | None,
    step: bool,
    through_responder: bool,
) -> None:
    from l4kit.replay.runner import SPLITTABLE_FORMATS

    if fmt == "parquet" and output is None:
        raise ConfigError("--format parquet writes a file: give it with --output PATH")
    if packets is not None and fmt != "parquet":
        raise ConfigError("--packets writes the packet table of --format parquet")
    if output is not None and fmt == "table":
        raise ConfigError("--output is for the machine formats (json, mermaid, zeek, zeek-json, parquet)")
    if dask is not None:
        if fmt not in SPLITTABLE_FORMATS:
            raise ConfigError(f"--dask writes {', '.join(SPLITTABLE_FORMATS)}, not {fmt}")
        if step or through_responder:
            raise ConfigError("--dask cannot --step or run --through-responder")


def _run_replay(
    file: str | Sequence[str],
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
    output: str | None = None,
    packets: str | None = None,
    stitch: bool = True,
    dask: str | None = None,
    progress: bool | None = None,
) -> int:
    from l4kit.errors import CaptureError
    from l4kit.replay.capture import EXIT_BAD_INPUT, EXIT_TRUNCATED, STDIN
    from l4kit.replay.runner import SPLITTABLE_FORMATS, ReplayOptions

    if step and fmt != "table":
        # --step prints Scapy's layers and Rich's lines between packets: inside a JSON
        # document or a Mermaid diagram they would break it.
        raise CaptureError(
            f"--step walks the packets as text: it cannot be combined with --format {fmt}",
            exit_code=EXIT_BAD_INPUT,
        )

    inputs = [file] if isinstance(file, str) else list(file)
    if not inputs:
        raise ConfigError("no capture given")
    _check_options(
        fmt, output=output, packets=packets, dask=dask, step=step, through_responder=through_responder
    )
    routes_for_responder = None
    if through_responder:
        from l4kit.core import Routes

        routes_for_responder = Routes.load(routes)
    # conn.log and the connection table need no packet rows: none are kept.
    rows_needed = fmt in ("json", "table", "mermaid") or packets is not None or step
    options = ReplayOptions(
        port=port,
        stream=stream,
        max_rows=max_rows if rows_needed else 0,
        bpf=bpf,
        routes=routes_for_responder,
        stitch=stitch,
        conn_only=fmt in ("zeek", "zeek-json") and not step,
    )
    captures: list[Capture] = []
    if dask is None:
        captures = _local_captures(inputs, bpf)
    first_path = inputs[0] if dask is not None or not captures else captures[0].path
    if dask is not None:
        first_path = os.path.abspath(first_path)

    console: Console | None = None
    if fmt == "table" or step:
        # Only these print with Rich: the machine formats never import it, which is
        # about 45 ms of every run's start-up (benchmarks/bench_replay.py times whole runs).
        from rich.console import Console

        from l4kit.views.layout import PIPE_WIDTH

        target = out if out is not None else sys.stdout
        # A pipe gets wide lines rather than columns squeezed to 80 characters.
        console = Console(file=target, highlight=False, width=None if target.isatty() else PIPE_WIDTH)

    with _output(out, output if fmt != "parquet" else None) as stream_out:
        table: TableCollector | None = None
        writer: Writer | MermaidWriter | None = None
        if fmt == "json":
            writer = JsonWriter(stream_out, first_path)
        elif fmt in ("zeek", "zeek-json"):
            from l4kit.replay.zeeklog import ZeekWriter

            writer = ZeekWriter(stream_out, json=fmt == "zeek-json")
        elif fmt == "parquet":
            from l4kit.replay.parquet import ParquetWriter

            assert output is not None
            writer = ParquetWriter(output, packets)
        elif fmt == "mermaid":
            writer = MermaidWriter(stream_out)
        else:
            table = TableCollector()
        walker: PacketWalker | None = None
        try:
            # The loop allocates millions of short-lived tuples and no reference cycles:
            # the cyclic garbage collector would only rescan them.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                if dask is not None:
                    result = _run_on_cluster(dask, inputs, options, fmt, packets, writer, jobs, progress)
                else:
                    splittable = (
                        fmt in SPLITTABLE_FORMATS and not through_responder and bpf is None and stream is None
                    )
                    # conn.log's analysis is light: a second process, which reads and follows
                    # every frame again, took 40-47 % more CPU in all and was not faster on
                    # a busy two-core machine (docs/design.md): split only when asked.
                    processes = jobs_for(captures, jobs, choose=not options.conn_only) if splittable else 1
                    if step:
                        assert console is not None
                        on_stdin = any(c.path == STDIN for c in captures)
                        walker = _packet_walker(console, interactive, capture_on_stdin=on_stdin)
                    result = _run_local(captures, options, writer, table, walker, processes, progress)
            finally:
                if gc_was_enabled:
                    gc.enable()
            summary = result.summary
            if stream is not None and stream >= summary.connections:
                # Nothing was written yet (the writers start their output with its first
                # connection or at the end): one line, as for any bad input.
                count = summary.connections
                ids = "none" if not count else f"ids 0 to {count - 1}" if count > 1 else "id 0"
                raise CaptureError(
                    f"--stream {stream}: the capture has {count} connection{'' if count == 1 else 's'} "
                    f"({ids})",
                    exit_code=EXIT_BAD_INPUT,
                )
        except BaseException:
            discard = getattr(writer, "discard", None)
            if discard is not None:
                discard()
            raise
        if writer is not None:
            writer.close(summary)
        elif table is not None and not (walker is not None and walker.stopped):
            assert console is not None
            if walker is not None:
                console.print()
            table.render(console, summary)
    cut = [f for f in summary.files if f["truncated"]]
    if summary.unsupported_linktypes or cut:
        from rich.console import Console

        from l4kit.replay.model import ReplaySummary

        err = err if err is not None else Console(stderr=True, highlight=False)
        for linktype, count in sorted(summary.unsupported_linktypes.items()):
            err.print(unsupported_warning(summary, linktype, count), soft_wrap=True)
        for f in cut:
            one = ReplaySummary(file=f["file"], truncated=True, truncation_detail=f["truncation"])
            err.print(truncation_warning(one), soft_wrap=True)
        if cut:
            return EXIT_TRUNCATED
    return 0


def _packet_walker(console: Console, interactive: bool | None, *, capture_on_stdin: bool) -> PacketWalker:
    """``--step``: waiting for Enter between packets when a person can press it. Standard
    input must be a terminal, unless it carries the capture (``replay -``): then the
    controlling terminal (``/dev/tty``) is asked, if there is one. Otherwise every step
    is printed without waiting."""
    if interactive is not None:
        return PacketWalker(console, interactive=interactive)
    if not capture_on_stdin:
        return PacketWalker(console, interactive=sys.stdin.isatty())
    try:
        tty = open("/dev/tty", encoding="utf-8")  # noqa: SIM115 - open for the whole run
    except OSError:
        return PacketWalker(console, interactive=False)
    return PacketWalker(console, interactive=True, read_line=tty.readline)


def _local_captures(inputs: Sequence[str], bpf: str | None) -> list[Capture]:
    """The captures ``inputs`` name, in the order they are read: probed (opened, the
    first frame read) when there are several, so that errors come before any output."""
    from l4kit.replay.capture import STDIN
    from l4kit.replay.runner import Capture, file_size, find_captures, order_captures, probe

    paths, _ignored = find_captures(inputs)
    if len(paths) == 1:
        return [Capture(paths[0], size=file_size(paths[0]))]
    for path in paths:
        if path == STDIN or (file_size(path) is None and Path(path).exists()):
            name = "standard input" if path == STDIN else path
            raise ConfigError(f"{name}: a pipe can be read only on its own, not with other captures")
    return order_captures(probe(path) for path in paths)


@contextlib.contextmanager
def _output(out: IO[str] | None, path: str | None) -> Any:
    """Standard output (or ``out``), or the file ``path``: written under a temporary
    name beside it and renamed once complete."""
    if path is None:
        yield out if out is not None else sys.stdout
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        handle = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with handle:
            yield handle
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _run_local(  # noqa: PLR0917
    captures: Sequence[Capture],
    options: Any,
    writer: Writer | MermaidWriter | None,
    table: TableCollector | None,
    walker: PacketWalker | None,
    processes: int,
    progress: bool | None,
) -> RunResult:
    from l4kit.replay.runner import replay_captures, replay_split

    sizes = [c.size for c in captures]
    total = sum(s or 0 for s in sizes)
    watch = _ProgressWatch(total, len(captures)) if _wants_progress(progress, total, len(captures)) else None
    on_start = writer.start if writer is not None else None
    if processes > 1:
        assert writer is not None and not isinstance(writer, MermaidWriter)
        return replay_split(
            captures,
            writer.format,  # type: ignore[attr-defined]
            writer.write_text,
            options,
            processes,
            watch=watch,
            on_start=on_start,
            # Parquet's rows are values: this process's own go in without a text between
            write_report=getattr(writer, "write_report", None),
        )
    sink_of: Callable[[ConnectionReport], None]
    if writer is not None:
        sink_of = writer
    else:
        assert table is not None
        sink_of = table

    def sink(index: int, report: ConnectionReport) -> None:
        sink_of(report)

    on_record = None
    if walker is not None:
        step_through = walker

        def show(report: ConnectionReport, record: PacketRecord, linktype: int, data: bytes) -> bool:
            step_through(report, record, linktype, data)
            return step_through.stopped

        on_record = show
    return replay_captures(captures, sink, options, on_record=on_record, watch=watch, on_start=on_start)


def _run_on_cluster(  # noqa: PLR0917
    address: str,
    inputs: Sequence[str],
    options: Any,
    fmt: str,
    packets: str | None,
    writer: Any,
    jobs: int | None,
    progress: bool | None,
) -> RunResult:
    from l4kit.replay.cluster import run_on_cluster

    view: ReplayProgress | None = None
    if _wants_progress(progress, PROGRESS_MIN_BYTES, 2):
        from l4kit.views.replay import ReplayProgress

        view = ReplayProgress(total=None, unit="chains")

    def on_chain(done: int, total: int) -> None:
        if view is not None:
            view.update(done, total=total, what=f"{done}/{total} chains")

    try:
        return run_on_cluster(
            address,
            [os.path.abspath(p) for p in inputs],
            options,
            fmt,
            packets is not None,
            writer.write_text,
            jobs=jobs,
            on_start=writer.start,
            on_chain=on_chain,
        )
    finally:
        if view is not None:
            view.stop()


def _wants_progress(progress: bool | None, total_bytes: int, files: int) -> bool:
    if progress is not None:
        return progress
    return total_bytes >= PROGRESS_MIN_BYTES and sys.stderr.isatty()


class _ProgressWatch:
    """Follows the reader being read (``watch`` of :func:`~l4kit.replay.runner.replay_captures`)
    and shows how far it got: a thread reads its position a few times a second, so the
    frame loop itself does nothing for it. Starts with the first reader (after any
    worker process was forked)."""

    INTERVAL: Final = 0.2

    def __init__(self, total: int, files: int) -> None:
        self.total = total
        self.files = files
        self.done = 0  # bytes of the files read before the current one
        self.index = 0
        self.reader: CaptureReader | None = None
        self.view: ReplayProgress | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, reader: CaptureReader | None) -> None:
        if self.reader is not None:
            self.done += self.reader.path.stat().st_size if self.reader.path.is_file() else 0
        self.reader = reader
        if reader is None:
            self.stop()
            return
        self.index += 1
        if self.view is None:
            from l4kit.views.replay import ReplayProgress

            self.view = ReplayProgress(total=self.total, unit="bytes")
            self.thread = threading.Thread(target=self._run, name="l4kit-progress", daemon=True)
            self.thread.start()
        self._show()

    def _show(self) -> None:
        reader, view = self.reader, self.view
        if reader is None or view is None:
            return
        position = reader.position or 0
        name = reader.path.name
        what = f"{name} ({self.index}/{self.files})" if self.files > 1 else name
        view.update(self.done + position, what=what)

    def _run(self) -> None:
        while not self.stopped.wait(self.INTERVAL):
            self._show()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        if self.view is not None:
            self.view.stop()
            self.view = None

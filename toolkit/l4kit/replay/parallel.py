"""Replay on several cores: one capture, split by connection between processes.

The per-packet analysis of one connection never looks at another connection, so
connections can be analysed in different processes. What cannot be split is
deciding which connection a packet belongs to: ids count connections in the order
of their first packet, port reuse starts a new connection, and when a connection
is finished (and its report printed) depends on the capture time of every later
packet. That bookkeeping is cheap, so every process does all of it, on every
frame (each reads the file itself), and does the expensive part — the observers
and the report — only for its share of the connections (``id % jobs``; see
:class:`~l4kit.replay.engine.Replayer`). Every process therefore knows the
position of each report in the order one process alone would print them
(:attr:`~l4kit.replay.engine.Replayer.emitted`), and the parent merges the
workers' reports back into exactly that order: the output is byte for byte the
output of one process (``tests/unit/test_replay_parallel.py``).

The parent analyses share 0 itself and forks one worker per other share. A
worker sends each report as one line of text, ``INDEX TEXT``, through a pipe,
then ``S`` and its counts as JSON, or ``E`` and an error, and exits. The parent,
which follows every connection too, reads a worker's next report when its own
bookkeeping finishes that worker's connection, and writes it then: reports go out
as they are made and nothing accumulates. Memory stays that of the processes
themselves (each bounded by the connections open at a time); a worker that runs
ahead blocks once its pipe (1 MiB) is full.

Ctrl-C reaches every process of the group: workers ignore it, the parent stops
(the command exits 130) and kills and reaps its workers on the way out.

Workers are forked (POSIX only), after the parent has imported everything, so a
worker costs no start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from typing import IO, Any, Final

from l4kit.errors import L4kitError

PARALLEL_MIN_BYTES: Final = 4 << 20
"""Captures smaller than this are read by one process when the number of jobs is
chosen automatically. Measured on 2 cores with the benchmark's captures (about 460
bytes a frame), pure Python: two processes take as long as one on a 1 MB capture, 7 %
less time on 2 MB, 13 % less on 4.5 MB, 21 % on 9 MB, 33 % on 46 MB; compiled by mypyc
(setup.py), where each packet costs less and the fork the same: 5 % more time on
2.3 MB, 8 % less on 4.6 MB, 12 % on 9 MB, 20 % on 19 MB, 18 % on 47 MB. Always for more
CPU time in all (both read every frame); below 4 MiB the gain is not worth a second
core."""

EmitIndexed = Callable[[int, str], None]
"""``(index, text)``: one report's text and its position in the output."""

Pull = Callable[[int, int], None]
"""``(index, shard)``: the report at ``index`` belongs to another shard: fetch and write it."""

Work = Callable[[int, EmitIndexed, "Pull | None"], dict[str, Any]]
"""``work(shard, emit, pull)``: analyse the capture for ``shard``, calling ``emit`` for
each of its reports and (in the parent) ``pull`` where another shard's report comes
in the output; returns the shard's counts (JSON-able) for the summary."""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_jobs(size: int) -> int:
    """How many processes to use for a capture file of ``size`` bytes: two for a large
    one (one on a single core), else one. Not more on a bigger machine: every process
    reads and follows every frame, so each one more gains less and adds its memory;
    ``L4KIT_REPLAY_JOBS`` asks for more."""
    if size < PARALLEL_MIN_BYTES or not hasattr(os, "fork"):
        return 1
    return min(2, available_cores())


class WorkerError(L4kitError):
    """A worker process failed (a bug in l4kit: input errors are found before forking)."""


class _Worker:
    def __init__(self, shard: int, pid: int, stream: IO[str]) -> None:
        self.shard = shard
        self.pid = pid
        self.stream = stream

    def _line(self) -> tuple[str, str]:
        line = self.stream.readline()
        if not line:
            raise WorkerError(f"replay worker {self.shard} ended without its results")
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "E":
            raise WorkerError(f"replay worker {self.shard} failed: {rest}")
        return kind, rest

    def report(self, index: int) -> str:
        """The worker's next report, which must be the one at ``index``."""
        kind, text = self._line()
        if kind != str(index):
            raise WorkerError(f"replay worker {self.shard} sent {kind!r} where report {index} was due")
        return text

    def counts(self) -> dict[str, Any]:
        kind, text = self._line()
        if kind != "S":
            raise WorkerError(f"replay worker {self.shard} sent report {kind} after the last one")
        result: dict[str, Any] = json.loads(text)
        return result


def run_sharded(jobs: int, work: Work, write: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run ``work`` for shards ``0 .. jobs - 1``: shard 0 in this process, the others in
    forked workers; ``write`` gets every report's text, in the output's order. Returns
    the counts of every shard (this process's first).

    This process keeps the bookkeeping of every connection too, so it knows when
    another shard's report is due (``pull``) and reads it from that worker then:
    the only wait is for the worker that owes the next report.
    """
    workers: list[_Worker] = []
    try:
        for shard in range(1, jobs):
            workers.append(_fork(shard, work, [w.stream for w in workers]))

        def emit(index: int, text: str) -> None:
            write(text)

        def pull(index: int, shard: int) -> None:
            write(workers[shard - 1].report(index))

        counts = [work(0, emit, pull)]
        for worker in workers:
            counts.append(worker.counts())
            _, status = os.waitpid(worker.pid, 0)
            worker.pid = 0
            if status:
                raise WorkerError(f"replay worker {worker.shard} exited with status {status}")
        return counts
    finally:
        for worker in workers:
            worker.stream.close()
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(worker.pid, 0)


_PIPE_BYTES: Final = 1 << 20  # Linux's default pipe-max-size: slack for a worker running ahead


def _fork(shard: int, work: Work, inherited: list[IO[str]]) -> _Worker:
    read_fd, write_fd = os.pipe()
    # A worker's reports wait in the pipe until the parent's bookkeeping reaches them;
    # the default 64 KiB holds about 16 of them, and a worker with a full pipe stops.
    with contextlib.suppress(ImportError, AttributeError, OSError):  # Linux only; less is fine
        import fcntl

        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return _Worker(shard, pid, os.fdopen(read_fd, "r", buffering=1 << 16, encoding="utf-8"))
    # The worker: whatever happens, it leaves through os._exit, so that nothing the
    # parent had buffered (stdout) is written twice and no parent clean-up runs here.
    code = 1
    try:
        os.close(read_fd)
        for stream in inherited:  # the pipes of the workers forked before this one
            stream.close()
        # Ctrl-C reaches the whole process group: the parent stops (exit 130) and ends
        # its workers itself; a worker dying first would look like a failure.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with os.fdopen(write_fd, "w", buffering=1 << 16, encoding="utf-8") as out:
            try:

                def emit(index: int, text: str) -> None:
                    out.write(f"{index} {text}\n")

                counts = work(shard, emit, None)
                out.write("S " + json.dumps(counts) + "\n")
                code = 0
            except Exception as exc:  # reported to the parent, which raises it
                out.write(f"E {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
    finally:
        os._exit(code)

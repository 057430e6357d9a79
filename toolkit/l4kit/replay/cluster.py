"""``l4kit replay --dask tcp://SCHEDULER:8786``: the work on a dask.distributed cluster.

The cluster is one that already runs (``dask scheduler`` and ``dask worker``, or
any deployment of dask.distributed); l4kit connects as a client, hands out tasks
and writes what they return into the one output, exactly what a local run writes
(``tests/unit/test_replay_cluster.py`` compares them on a scheduler and two workers).
Workers need l4kit installed (``pip install 'l4kit[cluster]'``, the same version)
and must see the captures under the same paths as the client gives them (shared
storage): workers read them, the client never does.

The tasks, in three rounds:

1. :func:`find_task`, one per path given: a directory's capture files
   (:func:`~l4kit.replay.runner.find_captures`);
2. :func:`probe_task`, one per capture: its first frame's time and size, and when
   several captures may be stitched, the times of the first and last frames replay
   reads (:func:`~l4kit.replay.runner.probe`), from which the client makes the
   chains (:func:`~l4kit.replay.runner.plan_chains`) as a local run does;
3. :func:`chain_task`, one per chain and share: a large chain is split by
   connection as ``--jobs`` splits a capture (every task reads the chain's files and
   analyses its share), returning each report's text with its place in the output.

The client writes the chains in order, each chain's shares merged by that place.
A task that cannot read a file (not shared, not there, not a capture) returns the
reason, and the run stops with one line that names the worker.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any, Final

from l4kit.errors import CaptureError, L4kitError
from l4kit.replay.model import ConnectionReport, ReplaySummary
from l4kit.replay.runner import (
    SHARD_COUNTS,
    Capture,
    ReplayOptions,
    RunResult,
    find_captures,
    merge_summaries,
    order_captures,
    plan_chains,
    probe,
    replay_captures,
    summary_from_state,
    summary_state,
)

INSTALL_HINT: Final = "pip install 'l4kit[cluster]'"
CONNECT_TIMEOUT: Final = 10.0
SHARE_BYTES: Final = 32 << 20
"""With ``--jobs`` unset, a chain gets one share per this many bytes of capture, at
most one per worker thread: every share reads the whole chain again, so each more
share gains less."""

Formatter = Callable[[ConnectionReport], str]


class ClusterError(L4kitError):
    """The cluster cannot be reached or a task failed."""


def _worker() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # run outside a worker (tests call the tasks directly)
        return "local"


def _failure(exc: L4kitError) -> dict[str, Any]:
    return {"error": f"dask worker {_worker()}: {exc}", "exit_code": exc.exit_code}


# ---------------------------------------------------------------- tasks (run on workers)


def find_task(path: str) -> dict[str, Any]:
    try:
        found, ignored = find_captures([path])
    except L4kitError as exc:
        return _failure(exc)
    return {"found": found, "ignored": ignored}


def probe_task(path: str, to_end: bool) -> dict[str, Any]:
    try:
        return {"capture": probe(path, to_end=to_end)}
    except L4kitError as exc:
        return _failure(exc)


def chain_task(  # noqa: PLR0917 - one task's whole description
    captures: Sequence[Capture],
    fmt: str,
    with_packets: bool,
    options: ReplayOptions,
    shards: int,
    shard: int,
) -> dict[str, Any]:
    """One share of one chain: ``(index, text)`` of each of its reports, its summary."""
    from l4kit.replay.runner import formatter

    format_report = formatter(fmt, with_packets=with_packets)
    texts: list[tuple[int, str]] = []

    def sink(index: int, report: ConnectionReport) -> None:
        texts.append((index, format_report(report)))

    try:
        # A shard's own reports are numbered among all the chain's: it only needs to
        # know where they go (pull stays unused).
        result = replay_captures(
            captures, sink, options, shards=shards, shard=shard, pull=(lambda index, owner: None)
        )
    except L4kitError as exc:
        return _failure(exc)
    return {"texts": texts, "summary": summary_state(result.summary), "files": result.files}


# ---------------------------------------------------------------- the client


def connect(address: str) -> Any:
    """A client of the scheduler at ``address``, or one clear error."""
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--dask needs dask.distributed: {INSTALL_HINT}") from None
    client_class: Any = distributed.Client
    try:
        return client_class(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"--dask {address}: cannot reach the Dask scheduler ({exc})") from None


def _results(futures: list[Any]) -> list[dict[str, Any]]:
    out = []
    for future in futures:
        try:
            value = future.result()
        except Exception as exc:  # a bug on the worker, or the worker died
            raise ClusterError(f"a dask task failed: {type(exc).__name__}: {exc}") from None
        if "error" in value:
            raise CaptureError(value["error"], exit_code=value["exit_code"])
        out.append(value)
    return out


def _threads(client: Any) -> int:
    try:
        return max(1, int(sum(client.nthreads().values())))
    except Exception:
        return 1


def shares_for(size: int, jobs: int | None, threads: int) -> int:
    """How many tasks share a chain of ``size`` bytes: ``jobs`` when given, else one per
    :data:`SHARE_BYTES`, at most ``threads``."""
    if jobs:
        return jobs
    return max(1, min(threads, size // SHARE_BYTES))


def run_on_cluster(  # noqa: PLR0917
    address: str,
    inputs: Sequence[str],
    options: ReplayOptions,
    fmt: str,
    with_packets: bool,
    write: Callable[[str], None],
    *,
    jobs: int | None = None,
    on_start: Callable[[float | None], None] | None = None,
    on_chain: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Replay ``inputs`` on the cluster at ``address``: ``write`` gets every report's
    text in the order of a local run; ``on_start`` the run's first frame time before
    the first; ``on_chain(done, total)`` is called as chains are written."""
    client = connect(address)
    try:
        found: list[str] = []
        for value in _results(client.map(find_task, list(inputs), pure=False)):
            found += value["found"]
        to_end = options.stitch and len(found) > 1
        probes = client.map(probe_task, found, to_end=to_end, pure=False)
        captures = order_captures(value["capture"] for value in _results(probes))
        chains = plan_chains(captures, stitch=to_end)
        times = [c.first_time for c in captures if c.first_time is not None]
        if on_start is not None:
            on_start(min(times) if times else None)
        threads = _threads(client)
        submitted = []
        for chain in chains:
            size = sum(c.size or 0 for c in chain)
            shares = shares_for(size, jobs, threads) if all(c.size is not None for c in chain) else 1
            submitted.append(
                [
                    client.submit(chain_task, chain, fmt, with_packets, options, shares, k, pure=False)
                    for k in range(shares)
                ]
            )
        total: ReplaySummary | None = None
        files: list[dict[str, Any]] = []
        for done, futures in enumerate(submitted):
            results = _results(futures)
            for future in futures:
                future.release()
            for _index, text in heapq.merge(*(r["texts"] for r in results), key=lambda it: it[0]):
                write(text)
            summary = summary_from_state(results[0]["summary"])
            for other in results[1:]:
                merge_summaries(summary, summary_from_state(other["summary"]), only=SHARD_COUNTS)
            total = summary if total is None else merge_summaries(total, summary)
            files += results[0]["files"]
            if on_chain is not None:
                on_chain(done + 1, len(submitted))
    finally:
        client.close()
    summary = total if total is not None else ReplaySummary(file="")
    if captures:
        summary.file = captures[0].path
    cut = [f for f in files if f["truncated"]]
    summary.truncated = bool(cut)
    summary.truncation_detail = cut[0]["truncation"] if cut else ""
    summary.files = files
    return RunResult(summary, chains=len(chains), files=files)

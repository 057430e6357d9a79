"""A load client of kernel sockets: connect, send one request, read the reply until
the server closes; many connections, one after the other or several at a time.

Run inside a test's or a benchmark's network namespace, as a script (standard
library only, so it starts fast and needs nothing installed)::

    python tests/loadclient.py --port 8888 --count 500 --parallel 50 --request 'toppage\\n'

It prints one JSON line (see :func:`report`). Every socket has a timeout, so no
server can hang it, and every outcome is counted: ``ok`` or the socket error's
name. The live and reliability tests run it through ``namespaces.client_argv``;
``benchmarks/_loadclient.py`` imports it.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Exchange:
    """One connection: ``ok`` or the error's name, the reply (empty unless ok), its seconds."""

    outcome: str
    reply: bytes
    seconds: float


def exchange(address: tuple[str, int], request: bytes, timeout: float) -> Exchange:
    """Connect, send ``request``, read until the server closes."""
    started = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as exc:
        return Exchange(type(exc).__name__, b"", time.perf_counter() - started)
    return Exchange("ok", b"".join(chunks), time.perf_counter() - started)


@dataclass(slots=True)
class LoadRun:
    """Every exchange of a run (in no particular order) and the run's seconds."""

    exchanges: list[Exchange]
    seconds: float


def run_clients(
    address: tuple[str, int],
    request: bytes,
    count: int,
    *,
    parallel: int = 1,
    timeout: float = 20.0,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 0,
) -> LoadRun:
    """``count`` exchanges, ``parallel`` threads at a time, each doing its share one
    after the other (one thread: this one, with no hand-off per connection)."""
    exchanges: list[Exchange] = []
    lock = threading.Lock()

    def work(share: int) -> None:
        for _ in range(share):
            done = exchange(address, request, timeout)
            with lock:
                exchanges.append(done)
                if progress is not None and progress_every and len(exchanges) % progress_every == 0:
                    progress(len(exchanges))

    started = time.perf_counter()
    parallel = max(1, min(parallel, count))
    if parallel == 1:
        work(count)
    else:
        per, extra = divmod(count, parallel)
        threads = [threading.Thread(target=work, args=(per + (i < extra),)) for i in range(parallel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return LoadRun(exchanges, time.perf_counter() - started)


def report(run: LoadRun) -> dict[str, object]:
    """The JSON the tests read (``namespaces.ClientRun``): the run's seconds, each
    outcome's count, each reply's count (base64, the ``ok`` ones), the slowest exchange."""
    replies = Counter(base64.b64encode(e.reply).decode() for e in run.exchanges if e.outcome == "ok")
    return {
        "elapsed": run.seconds,
        "outcomes": Counter(e.outcome for e in run.exchanges),
        "replies": replies,
        "slowest": max((e.seconds for e in run.exchanges), default=0.0),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--request-b64", required=True, help="the request, base64 (any bytes)")
    parser.add_argument("--progress-every", type=int, default=0, help='print "progress N" every N exchanges')
    args = parser.parse_args(argv)
    run = run_clients(
        (args.host, args.port),
        base64.b64decode(args.request_b64),
        args.count,
        parallel=args.parallel,
        timeout=args.timeout,
        progress=lambda n: print(f"progress {n}", flush=True),
        progress_every=args.progress_every,
    )
    print(json.dumps(report(run)), flush=True)


if __name__ == "__main__":
    main()

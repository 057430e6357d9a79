"""Load client run inside the benchmark namespace: connect, send one request
line, read the reply until the server closes, measure each connection.

    python _loadclient.py --port 8888 --sequential 500
    python _loadclient.py --port 8888 --concurrent 200 --parallel 50

Prints one JSON object: count, errors, wrong replies, seconds, latencies (ms).
The connections are made by the tests' load client (tests/loadclient.py), the
one the live tests run; this script adds the warm-up and the benchmark's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from loadclient import exchange, run_clients


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8888)
    ap.add_argument("--sequential", type=int, default=0)
    ap.add_argument("--concurrent", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=50)
    ap.add_argument("--request", default="toppage\n")
    ap.add_argument("--expect", default="hello world\n")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    addr = (a.host, a.port)
    req, exp = a.request.encode(), a.expect.encode()
    for _ in range(a.warmup):
        exchange(addr, req, a.timeout)
    if a.sequential:
        count, parallel = a.sequential, 1
    else:
        count, parallel = a.concurrent, a.parallel
    run = run_clients(addr, req, count, parallel=parallel, timeout=a.timeout)
    ok = [e for e in run.exchanges if e.outcome == "ok"]
    kinds = Counter(e.outcome for e in run.exchanges if e.outcome != "ok")
    print(
        json.dumps(
            {
                "count": count,
                "errors": sum(kinds.values()),
                "error_kinds": dict(kinds),
                "wrong": sum(e.reply != exp for e in ok),
                "seconds": run.seconds,
                "latencies_ms": [e.seconds * 1000.0 for e in ok],
            }
        )
    )


if __name__ == "__main__":
    main()

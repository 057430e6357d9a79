"""Load client run inside the benchmark namespace: connect, send one request
line, read the reply until the server closes, measure each connection.

    python _loadclient.py --port 8888 --sequential 500
    python _loadclient.py --port 8888 --concurrent 200 --parallel 50

Prints one JSON object: count, errors, wrong replies, seconds, latencies (ms).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time


def one(addr: tuple[str, int], request: bytes, expect: bytes, timeout: float) -> tuple[float, bool]:
    t0 = time.perf_counter()
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return (time.perf_counter() - t0) * 1000.0, b"".join(chunks) == expect


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
        with contextlib.suppress(OSError):
            one(addr, req, exp, a.timeout)
    lat: list[float] = []
    errors = wrong = 0
    kinds: dict[str, int] = {}
    lock = threading.Lock()

    def run(n: int) -> None:
        nonlocal errors, wrong
        for _ in range(n):
            try:
                ms, ok = one(addr, req, exp, a.timeout)
            except OSError as exc:
                with lock:
                    errors += 1
                    kind = type(exc).__name__
                    kinds[kind] = kinds.get(kind, 0) + 1
                continue
            with lock:
                lat.append(ms)
                wrong += not ok

    t0 = time.perf_counter()
    if a.sequential:
        run(a.sequential)
        count = a.sequential
    else:
        count = a.concurrent
        per, extra = divmod(a.concurrent, a.parallel)
        threads = [threading.Thread(target=run, args=(per + (i < extra),)) for i in range(a.parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    secs = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "count": count,
                "errors": errors,
                "error_kinds": kinds,
                "wrong": wrong,
                "seconds": secs,
                "latencies_ms": lat,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Responder benchmark: l4kit against the kernel and a naive Scapy responder.

Everything runs inside one throw-away network namespace, one server at a time,
measured by the same load client (``_loadclient.py``):

- sequential: N connections one after another (connect, "toppage\\n", read to EOF);
  connections per second and p50/p99 latency;
- concurrent: 200 connections, 50 at a time; connections per second.

References measured in the same run: a kernel-socket Python server and the
naive Scapy responder of the original exercise. Run as root:

    .venv/bin/python benchmarks/bench_responder.py [--sequential 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _netns import in_ns, namespace  # noqa: E402

PY = sys.executable
PORT = 8888


@dataclass
class Result:
    server: str
    seq_cps: float
    p50_ms: float
    p99_ms: float
    conc_cps: float
    failures: int


def _prepare_for_naive(ns: str) -> None:
    """What l4kit does for itself, done by hand for the naive reference (inside the namespace only)."""
    subprocess.run(
        in_ns(ns, "nft", "-f", "-"),
        input=(
            "table inet naive { chain out { type filter hook output priority 0; "
            f"tcp sport {PORT} tcp flags rst drop; }} }}\n"
        ).encode(),
        check=True,
    )
    for key in ("all", "lo"):
        for knob in ("route_localnet", "accept_local"):
            subprocess.run(in_ns(ns, "sysctl", "-qw", f"net.ipv4.conf.{key}.{knob}=1"), check=True)


def _start(ns: str, argv: list[str], ready: str, timeout: float = 20.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(in_ns(ns, *argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv} exited before it was ready")
        if ready in line:
            # Keep draining output so the server never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return proc
    proc.kill()
    raise RuntimeError(f"{argv} was not ready within {timeout}s")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _load(ns: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        in_ns(ns, PY, str(HERE / "_loadclient.py"), "--port", str(PORT), *args),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout)


def measure(ns: str, name: str, argv: list[str], ready: str, sequential: int) -> Result:
    proc = _start(ns, argv, ready)
    try:
        seq = _load(ns, "--sequential", str(sequential))
        conc = _load(ns, "--concurrent", "200", "--parallel", "50")
    finally:
        _stop(proc)
    lat = sorted(seq["latencies_ms"])  # type: ignore[arg-type]
    return Result(
        server=name,
        seq_cps=seq["count"] / seq["seconds"],  # type: ignore[operator]
        p50_ms=statistics.median(lat) if lat else float("nan"),
        p99_ms=lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        conc_cps=conc["count"] / conc["seconds"],  # type: ignore[operator]
        failures=int(seq["errors"]) + int(seq["wrong"]) + int(conc["errors"]) + int(conc["wrong"]),  # type: ignore[call-overload]
    )


def run(sequential: int = 1000) -> list[Result]:
    results: list[Result] = []
    l4kit = [PY, "-m", "l4kit", "respond", "--quiet", "--port", str(PORT)]
    with namespace() as ns:
        results.append(
            measure(
                ns,
                "kernel socket server",
                [PY, str(HERE / "_kernel_server.py"), str(PORT)],
                "ready",
                sequential,
            )
        )
        for codec in ("fast", "scapy"):
            results.append(
                measure(
                    ns,
                    f"l4kit respond --codec {codec}",
                    [*l4kit, "--codec", codec],
                    "listening on",
                    sequential,
                )
            )
    with namespace("l4kbench-naive") as ns:
        _prepare_for_naive(ns)
        results.append(
            measure(
                ns,
                "naive Scapy responder",
                [PY, str(HERE / "_naive_scapy.py"), str(PORT)],
                "ready",
                sequential,
            )
        )
    return results


def table(results: list[Result]) -> str:
    kernel = next(r for r in results if r.server.startswith("kernel"))
    naive = next(r for r in results if r.server.startswith("naive"))
    head = (
        f"{'server':<28} {'seq conn/s':>10} {'vs kernel':>9} {'vs naive':>8} {'p50 ms':>7} "
        f"{'p50/kernel':>10} {'p99 ms':>7} {'50-conc conn/s':>14} {'failures':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        vs_kernel, vs_naive = r.seq_cps / kernel.seq_cps, r.seq_cps / naive.seq_cps
        lines.append(
            f"{r.server:<28} {r.seq_cps:>10.0f} {vs_kernel:>9.2f} {vs_naive:>8.2f} {r.p50_ms:>7.2f} "
            f"{r.p50_ms / kernel.p50_ms:>10.2f} {r.p99_ms:>7.2f} {r.conc_cps:>14.0f} {r.failures:>8}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=1000)
    a = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("bench_responder needs root and iproute2 (it makes a network namespace)")
    print(table(run(a.sequential)))


if __name__ == "__main__":
    main()

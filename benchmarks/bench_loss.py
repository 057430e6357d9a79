"""Loss benchmark: bulk replies over a path that drops segments at random, l4kit against the kernel.

In one throw-away network namespace, nftables drops N % of the segments on port 8888 in
each direction, at random (``numgen random mod 100 < N drop``): the client's segments in
an output chain (``tcp dport 8888``), the server's in a prerouting chain (``tcp sport
8888``). Each segment meets exactly one of the two rules, whichever server answers: the
kernel's own segments pass both hooks, l4kit's responder sees the client's segments before
prerouting and injects its own below output.

The same client (``_loadclient.py``, kernel sockets) makes 40 connections one after the
other, each asking ``big`` and reading a 60,000-octet reply to the end; every reply is
checked octet for octet. Servers, each in turn, the order rotated every round:

- ``kernel`` (``_kernel_server.py`` with the same routes file): Linux's TCP, with SACK,
  RACK-TLP, a 200 ms minimum RTO;
- ``l4kit respond`` (``--quiet``), with the default codec and with ``--codec fast``, as
  ``pip install .`` builds it (the core compiled, ``bench_replay.compiled_build``), or
  the source with ``--pure``.

For each loss rate (1 %, 5 %, 10 % by default): the total time of the 40 transfers, p50,
p99 and max of one transfer, how many replies were exact, and l4kit's own count of how it
repaired the losses (its exit summary). Run as root:

    python benchmarks/bench_loss.py [--rates 1 5 10] [--transfers 40] [--rounds 1]

``benchmarks/run.py`` runs it as its ``loss`` part. With random loss the figures of one
round vary from run to run: several rounds give medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _netns import in_ns, namespace  # noqa: E402

PY = sys.executable
PORT = 8888
REPLY = 60_000
TABLE = "l4kbench_loss"

KERNEL = "kernel"
L4KIT_SCAPY = "l4kit (default codec)"
L4KIT_FAST = "l4kit --codec fast"
SERVERS = (KERNEL, L4KIT_SCAPY, L4KIT_FAST)


@dataclass
class Run:
    """One server, one loss rate, one round of transfers."""

    seconds: float
    latencies: list[float]  # of the transfers that completed, seconds
    exact: int
    count: int
    errors: dict[str, int]
    recovery: str = ""  # l4kit's exit summary: how it repaired the losses


@dataclass
class Result:
    server: str
    rate: int
    runs: list[Run] = field(default_factory=list)

    def _median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def total(self) -> float:
        return self._median([r.seconds for r in self.runs])

    def _quantile(self, q: float) -> float:
        lat = sorted(x for r in self.runs for x in r.latencies)
        return lat[round(q * (len(lat) - 1))] if lat else float("nan")

    @property
    def p50(self) -> float:
        return self._quantile(0.5)

    @property
    def p99(self) -> float:
        return self._quantile(0.99)

    @property
    def max(self) -> float:
        return max((x for r in self.runs for x in r.latencies), default=float("nan"))

    @property
    def exact(self) -> tuple[int, int]:
        return sum(r.exact for r in self.runs), sum(r.count for r in self.runs)


def nft_rules(rate: int) -> str:
    drop = f"numgen random mod 100 < {rate} drop"
    return (
        f"table inet {TABLE} {{\n"
        f" chain out {{ type filter hook output priority 0; tcp dport {PORT} {drop}; }}\n"
        f" chain pre {{ type filter hook prerouting priority 0; tcp sport {PORT} {drop}; }}\n"
        "}\n"
    )


def set_loss(ns: str, rate: int) -> None:
    subprocess.run(in_ns(ns, "nft", "delete", "table", "inet", TABLE), check=False, capture_output=True)
    if rate:
        subprocess.run(in_ns(ns, "nft", "-f", "-"), input=nft_rules(rate).encode(), check=True)


def server_argv(name: str, routes: Path, build: Path) -> tuple[list[str], str]:
    if name == KERNEL:
        return [PY, str(HERE / "_kernel_server.py"), str(PORT), str(routes)], "ready"
    respond = ["env", f"PYTHONPATH={build}", PY, "-m", "l4kit", "respond", "--port", str(PORT)]
    respond += ["--routes", str(routes), "--quiet"]
    if name == L4KIT_FAST:
        respond += ["--codec", "fast"]
    return respond, "listening on"


def start(ns: str, argv: list[str], ready: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(in_ns(ns, *argv), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited before it was ready: {log.read_text()[-500:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{argv} was not ready within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


RECOVERY = re.compile(r"^\s*retransmissions\s+(\d+)\s*(.*?)\s*$", re.M)


def transfers(ns: str, count: int, expect: bytes) -> Run:
    done = subprocess.run(
        in_ns(
            ns, PY, str(HERE / "_loadclient.py"), "--port", str(PORT), "--sequential", str(count),
            "--warmup", "0", "--timeout", "120", "--request", "big\n", "--expect", expect.decode(),
        ),
        capture_output=True, text=True, check=True, timeout=3600,
    )  # fmt: skip
    got = json.loads(done.stdout)
    latencies = [ms / 1000 for ms in got["latencies_ms"]]
    return Run(
        seconds=got["seconds"],
        latencies=latencies,
        exact=len(latencies) - got["wrong"],
        count=count,
        errors=got["error_kinds"],
    )


def run(
    *,
    rates: tuple[int, ...] = (1, 5, 10),
    count: int = 40,
    rounds: int = 1,
    pure: bool = False,
    progress: Callable[[str], None] = lambda _text: None,
) -> list[Result]:
    import bench_replay

    build = HERE.parent / "toolkit" if pure else bench_replay.compiled_build()
    if build is None:
        raise SystemExit("the compiled build of l4kit could not be made (gcc and python3-dev are needed)")
    results: list[Result] = []
    expect = b"x" * (REPLY - 1) + b"\n"
    with tempfile.TemporaryDirectory() as tmp, namespace("l4kloss") as ns:
        os.chmod(tmp, 0o755)
        routes = Path(tmp) / "routes.toml"
        routes.write_text(f'[routes]\nbig = "{"x" * (REPLY - 1)}"\n')
        for rate in rates:
            set_loss(ns, rate)
            by_server = {name: Result(name, rate) for name in SERVERS}
            for r in range(rounds):
                order = SERVERS[r % len(SERVERS) :] + SERVERS[: r % len(SERVERS)]
                for name in order:
                    progress(f"loss {rate} %, round {r + 1}/{rounds}: {name}")
                    argv, ready = server_argv(name, routes, build)
                    log = Path(tmp) / "server.log"
                    proc = start(ns, argv, ready, log)
                    try:
                        measured = transfers(ns, count, expect)
                    finally:
                        stop(proc)
                    found = RECOVERY.search(log.read_text(errors="replace"))
                    if found:
                        measured.recovery = f"{found.group(1)} retransmitted: {found.group(2)}".rstrip(": ")
                    by_server[name].runs.append(measured)
            results += by_server.values()
        set_loss(ns, 0)
    return results


def ratio(results: list[Result], result: Result) -> float:
    kernel = next(r for r in results if r.server == KERNEL and r.rate == result.rate)
    return result.total / kernel.total


def table(results: list[Result]) -> str:
    head = (
        f"{'loss':>5}  {'server':<22} {'total s':>8} {'/kernel':>7} {'p50 s':>7} {'p99 s':>7} "
        f"{'max s':>7} {'exact':>7}  how l4kit repaired the losses (its exit summary, last round)"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        exact, count = r.exact
        recovery = r.runs[-1].recovery if r.runs else ""
        errors = {k: v for run in r.runs for k, v in run.errors.items()}
        if errors:
            recovery = f"errors {errors} {recovery}"
        lines.append(
            f"{r.rate:>4}%  {r.server:<22} {r.total:>8.2f} {ratio(results, r):>7.2f} {r.p50:>7.3f} "
            f"{r.p99:>7.3f} {r.max:>7.3f} {exact:>3}/{count:<3}  {recovery}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rates", type=int, nargs="+", default=[1, 5, 10], help="loss per direction, %%")
    ap.add_argument("--transfers", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pure", action="store_true", help="the source as pure Python, not the compiled build")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes a network namespace")
    results = run(
        rates=tuple(a.rates),
        count=a.transfers,
        rounds=a.rounds,
        pure=a.pure,
        progress=lambda text: print(f"  ... {text}", file=sys.stderr, flush=True),
    )
    print(
        f"{a.transfers} transfers of {REPLY} octets per server, loss rate and round; "
        f"{a.rounds} round(s), medians of the totals"
    )
    print(table(results))


if __name__ == "__main__":
    main()

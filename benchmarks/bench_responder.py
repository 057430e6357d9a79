"""Responder benchmark: l4kit against two kernel-socket servers and a naive Scapy responder.

Everything runs inside one throw-away network namespace, one server at a time,
measured by the same load client (``_loadclient.py``, 20 warm-up connections
first):

- sequential: N connections one after another (connect, "toppage\\n", read to
  EOF); connections per second and p50/p99 latency of one connection;
- concurrent: C connections, 16 at a time (16 client threads); connections per second.

Servers, each answering ``toppage`` with ``hello world`` and closing:

- ``kernel, inline accept loop`` (``_kernel_server.py``): the fastest a Python
  server on the kernel's TCP can be for one request per connection;
- ``kernel, ThreadingTCPServer`` (``_kernel_threading_server.py``): the standard
  library's server, a thread per connection, the "plain" one;
- ``l4kit respond --codec fast`` and ``--codec scapy``, with ``--quiet`` (no
  tables: a server printing nothing, like the references), and
  ``l4kit respond`` as installed (scapy codec, a table per connection rendered
  to a pipe) to show what rendering costs; all three as ``pip install .`` builds
  l4kit, with the TCP core compiled by mypyc (``bench_replay.compiled_build``,
  ``PYTHONPATH``), and ``--codec fast`` once more as pure Python (an editable
  install, or no C compiler);
- ``naive Scapy responder`` (``_naive_scapy.py``): sniff, dissect, build every reply
  with Scapy layers, one reused L2 socket;
- ``floor: sniffer + struct, no TCP`` (``_sniffer_floor.py``): l4kit's receive and send
  path (AsyncSniffer, the BPF packet socket, one packet socket to send) with a
  stateless ``struct`` responder in between: the ceiling of the architecture, before
  any TCP is done.

Each server's process CPU time over the sequential load is printed per connection
(``/proc/PID/stat``): on a shared machine it moves far less than conn/s does. The
kernel's servers leave part of their TCP work to the client's context, so it compares
l4kit's builds and codecs with each other rather than with them.

Loopback numbers are noisy (other processes, CPU frequency, the scheduler), so the
servers are measured in rounds, the order rotated every round, and each figure is
the median over the rounds; the spread of sequential conn/s is printed too. Run as
root:

    python benchmarks/bench_responder.py [--rounds 3] [--sequential 1000] [--concurrent 200]

``benchmarks/run.py`` runs this together with the replay and checksum benchmarks.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _netns import in_ns, namespace  # noqa: E402

PY = sys.executable
PORT = 8888
#: Clients at a time in the concurrent test.
PARALLEL = 16
RESPOND = ["-m", "l4kit", "respond", "--port", str(PORT)]


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    ready: str
    host_setup: bool = False  # needs the RST rule and sysctls that l4kit sets up for itself


KERNEL_INLINE = "kernel, inline accept loop"
KERNEL_THREADING = "kernel, ThreadingTCPServer"
L4KIT_FAST = "l4kit --codec fast"
L4KIT_FAST_PURE = "l4kit --codec fast, pure Python"
L4KIT_SCAPY = "l4kit --codec scapy"
L4KIT_RENDERED = "l4kit (scapy, tables rendered)"
NAIVE = "naive Scapy responder"
FLOOR = "floor: sniffer + struct, no TCP"


def servers() -> tuple[Server, ...]:
    """Every server; l4kit's as ``pip install .`` builds it (the core compiled), and
    ``--codec fast`` also as the pure-Python source. ``PYTHONPATH`` picks the build."""
    import bench_replay

    compiled = bench_replay.compiled_build()
    if compiled is None:
        raise SystemExit("the compiled build of l4kit could not be made (gcc and python3-dev are needed)")
    l4kit = ["env", f"PYTHONPATH={compiled}", PY, *RESPOND]
    pure = ["env", f"PYTHONPATH={HERE.parent / 'toolkit'}", PY, *RESPOND]
    return (
        Server(KERNEL_INLINE, [PY, str(HERE / "_kernel_server.py"), str(PORT)], "ready"),
        Server(KERNEL_THREADING, [PY, str(HERE / "_kernel_threading_server.py"), str(PORT)], "ready"),
        Server(L4KIT_FAST, [*l4kit, "--quiet", "--codec", "fast"], "listening on"),
        Server(L4KIT_FAST_PURE, [*pure, "--quiet", "--codec", "fast"], "listening on"),
        Server(L4KIT_SCAPY, [*l4kit, "--quiet", "--codec", "scapy"], "listening on"),
        Server(L4KIT_RENDERED, [*l4kit, "--codec", "scapy"], "listening on"),
        Server(NAIVE, [PY, str(HERE / "_naive_scapy.py"), str(PORT)], "ready", host_setup=True),
        Server(FLOOR, [PY, str(HERE / "_sniffer_floor.py"), str(PORT)], "ready", host_setup=True),
    )


@dataclass
class Run:
    """One server, one round."""

    seq_cps: float
    p50_ms: float
    p99_ms: float
    conc_cps: float
    failures: int
    seq_cpu_us: float = float("nan")  # the server process's CPU per sequential connection


@dataclass
class Result:
    """One server, the median of its rounds."""

    server: str
    runs: list[Run] = field(default_factory=list)

    def _median(self, pick: Callable[[Run], float]) -> float:
        return statistics.median(pick(r) for r in self.runs) if self.runs else float("nan")

    @property
    def seq_cps(self) -> float:
        return self._median(lambda r: r.seq_cps)

    @property
    def seq_cps_range(self) -> tuple[float, float]:
        values = [r.seq_cps for r in self.runs]
        return (min(values), max(values)) if values else (float("nan"), float("nan"))

    @property
    def p50_ms(self) -> float:
        return self._median(lambda r: r.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self._median(lambda r: r.p99_ms)

    @property
    def conc_cps(self) -> float:
        return self._median(lambda r: r.conc_cps)

    @property
    def seq_cpu_us(self) -> float:
        return self._median(lambda r: r.seq_cpu_us)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.runs)


NAIVE_NFT = (
    "table inet l4kbench_naive {\n chain out {\n  type filter hook output priority 0;\n"
    f"  tcp sport {PORT} tcp flags rst drop\n }}\n}}\n"
)


def _prepare_host(ns: str) -> None:
    """What l4kit does for itself, done by hand for the references that need it (namespace only)."""
    subprocess.run(in_ns(ns, "nft", "-f", "-"), input=NAIVE_NFT.encode(), check=True)
    for key in ("all", "lo"):
        for knob in ("route_localnet", "accept_local"):
            subprocess.run(in_ns(ns, "sysctl", "-qw", f"net.ipv4.conf.{key}.{knob}=1"), check=True)


def _unprepare_host(ns: str) -> None:
    subprocess.run(in_ns(ns, "nft", "delete", "table", "inet", "l4kbench_naive"), check=False)


def _start(ns: str, argv: list[str], ready: str, timeout: float = 30.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(in_ns(ns, *argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv} exited before it was ready: {''.join(seen)[-500:]}")
        seen.append(line)
        if ready in line:
            # Keep draining output so the server never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return proc
    proc.kill()
    raise RuntimeError(f"{argv} was not ready within {timeout}s")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _load(ns: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        in_ns(ns, PY, str(HERE / "_loadclient.py"), "--port", str(PORT), *args),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and its threads (proc(5), utime and stime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_once(ns: str, server: Server, sequential: int, concurrent: int, parallel: int) -> Run:
    if server.host_setup:
        _prepare_host(ns)
    proc = _start(ns, server.argv, server.ready)
    try:
        # The server's own CPU over the sequential load (``ip netns exec`` and ``env`` exec
        # the server, so proc.pid is its process): steadier than conn/s on a shared machine,
        # though the kernel work each server leaves to its client's context is not in it
        # (and the load client's 20 warm-up connections are).
        cpu_before = process_cpu_seconds(proc.pid)
        seq = _load(ns, "--sequential", str(sequential))
        seq_cpu = process_cpu_seconds(proc.pid) - cpu_before
        conc = _load(ns, "--concurrent", str(concurrent), "--parallel", str(parallel))
    finally:
        _stop(proc)
        if server.host_setup:
            _unprepare_host(ns)
    lat = sorted(seq["latencies_ms"])  # type: ignore[call-overload]
    return Run(
        seq_cps=seq["count"] / seq["seconds"],  # type: ignore[operator]
        p50_ms=statistics.median(lat) if lat else float("nan"),
        p99_ms=lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        conc_cps=conc["count"] / conc["seconds"],  # type: ignore[operator]
        failures=int(seq["errors"]) + int(seq["wrong"]) + int(conc["errors"]) + int(conc["wrong"]),  # type: ignore[call-overload]
        seq_cpu_us=seq_cpu / int(seq["count"]) * 1e6,  # type: ignore[call-overload]
    )


def run(
    *,
    rounds: int = 3,
    sequential: int = 1000,
    concurrent: int = 200,
    parallel: int = PARALLEL,
    only: tuple[Server, ...] | None = None,
    progress: Callable[[str], None] = lambda _text: None,
) -> dict[str, Result]:
    """Every server (or ``only`` these), ``rounds`` times, the order rotated each round,
    in one namespace."""
    chosen = servers() if only is None else only
    results = {s.name: Result(s.name) for s in chosen}
    with namespace() as ns:
        for r in range(rounds):
            order = chosen[r % len(chosen) :] + chosen[: r % len(chosen)]
            for server in order:
                progress(f"responder round {r + 1}/{rounds}: {server.name}")
                results[server.name].runs.append(measure_once(ns, server, sequential, concurrent, parallel))
    return results


def table(results: dict[str, Result]) -> str:
    inline = results[KERNEL_INLINE]
    threading_ = results[KERNEL_THREADING]
    naive = results[NAIVE]
    head = (
        f"{'server':<30} {'seq conn/s':>10} {'(min-max)':>13} {'p50 ms':>7} {'p99 ms':>7} "
        f"{f'{PARALLEL}-conc conn/s':>14} {'/inline':>7} {'/thread':>7} {'/naive':>6} {'fail':>4} "
        f"{'CPU us':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results.values():
        low, high = r.seq_cps_range
        spread = f"{low:.0f}-{high:.0f}"
        lines.append(
            f"{r.server:<30} {r.seq_cps:>10.0f} {spread:>13} {r.p50_ms:>7.3f} {r.p99_ms:>7.2f} "
            f"{r.conc_cps:>14.0f} {r.seq_cps / inline.seq_cps:>7.2f} {r.seq_cps / threading_.seq_cps:>7.2f} "
            f"{r.seq_cps / naive.seq_cps:>6.2f} {r.failures:>4} {r.seq_cpu_us:>7.0f}"
        )
    lines.append(
        "(/inline, /thread, /naive: sequential conn/s as a ratio of that reference's; "
        "CPU us: the server process's CPU per sequential connection)"
    )
    return "\n".join(lines)


def require_root() -> None:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        sys.exit("the responder benchmark needs root, iproute2 and nft (it makes a network namespace)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sequential", type=int, default=1000)
    ap.add_argument("--concurrent", type=int, default=200)
    a = ap.parse_args()
    require_root()
    results = run(
        rounds=a.rounds,
        sequential=a.sequential,
        concurrent=a.concurrent,
        progress=lambda text: print(text, file=sys.stderr),
    )
    print(table(results))


if __name__ == "__main__":
    main()

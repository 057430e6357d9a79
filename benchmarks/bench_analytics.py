"""Replay's analytics outputs against their references, same run, same capture.

On ``bench_replay.py``'s synthetic captures (cached under ``benchmarks/out/``),
every tool as its own process, taking turns within each repeat:

* ``l4kit replay --format zeek`` (conn.log), as ``pip install .`` builds l4kit
  (replay compiled by mypyc), in one process as a user gets it, and split over two
  (``--jobs 2``); against ``tshark -q -z conv,tcp``, tshark's own table of TCP
  conversations (one line per connection, as conn.log): the target is at most 1.0
  times tshark's time;
* ``--format parquet --output`` (the connection table) and with ``--packets`` (the
  packet table too), against ``--format json`` of the same build: the target is
  Parquet no slower than JSON; and the peak memory of the Parquet runs at two sizes
  (it must stay flat as the capture grows: rows are written a batch at a time);
* ``--format zeek-json``, for information.

Each ratio is the median over the repeats of the two tools' times within a repeat
(they ran seconds apart: a slow spell of a shared machine weighs on both). Run:

    .venv/bin/python benchmarks/bench_analytics.py [--sizes 100000 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_replay  # noqa: E402

PY = sys.executable
TSHARK = "tshark -q -z conv,tcp"
ZEEK = "l4kit --format zeek"
ZEEK_TWO = "l4kit --format zeek --jobs 2"
ZEEK_JSON = "l4kit --format zeek-json"
JSON = "l4kit --format json"
PARQUET = "l4kit --format parquet"
PARQUET_PACKETS = "l4kit --format parquet --packets"


@dataclass
class Measured:
    tool: str
    packets: int
    walls: list[float]
    cpus: list[float]
    peaks: list[int]  # KiB, the whole process tree

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak(self) -> int:
        return max(self.peaks)


def paired(ours: Measured, ref: Measured) -> float:
    return statistics.median(a / b for a, b in zip(ours.walls, ref.walls, strict=True))


def run(sizes: list[int], repeat: int, progress: Callable[[str], None] = print) -> list[Measured]:
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is needed for the reference (apt-get install tshark)")
    compiled = bench_replay.l4kit_builds()["compiled"]
    results: list[Measured] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for size in sizes:
            path = str(bench_replay.make_capture(size))
            replay = [PY, "-m", "l4kit", "replay", path, "--no-progress"]
            parquet = [*replay, "--format", "parquet", "--output", str(out / "conn.parquet")]
            tools = {
                TSHARK: ([tshark, "-q", "-z", "conv,tcp", "-r", path], None),
                ZEEK: ([*replay, "--format", "zeek"], compiled),
                ZEEK_TWO: ([*replay, "--format", "zeek", "--jobs", "2"], compiled),
                ZEEK_JSON: ([*replay, "--format", "zeek-json"], compiled),
                JSON: ([*replay, "--format", "json"], compiled),
                PARQUET: (parquet, compiled),
                PARQUET_PACKETS: ([*parquet, "--packets", str(out / "packets.parquet")], compiled),
            }
            runs = {name: Measured(name, size, [], [], []) for name in tools}
            for i in range(repeat):
                for name, (argv, env) in tools.items():
                    progress(f"analytics {size}: {name} ({i + 1}/{repeat})")
                    wall, cpu, peak, _ = bench_replay.measure(argv, env)
                    runs[name].walls.append(wall)
                    runs[name].cpus.append(cpu)
                    runs[name].peaks.append(peak)
            results += runs.values()
    return results


def get(results: list[Measured], tool: str, size: int) -> Measured:
    return next(r for r in results if r.tool == tool and r.packets == size)


def table(results: list[Measured]) -> str:
    head = (
        f"{'packets':>8}  {'tool':<34} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9} {'/tshark':>8} {'/json':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        tshark, json_run = get(results, TSHARK, r.packets), get(results, JSON, r.packets)
        lines.append(
            f"{r.packets:>8}  {r.tool:<34} {r.wall:>7.2f} {statistics.median(r.cpus):>7.2f} "
            f"{r.peak / 1024:>9.1f} {paired(r, tshark):>8.2f} {paired(r, json_run):>7.2f}"
        )
    return "\n".join(lines)


def verdicts(results: list[Measured]) -> list[tuple[str, float, str, bool]]:
    """``(measurement, ratio, target, met)`` for the targets."""
    sizes = sorted({r.packets for r in results})
    out = []
    for size in sizes:
        tshark, json_run = get(results, TSHARK, size), get(results, JSON, size)
        ratio = paired(get(results, ZEEK, size), tshark)
        out.append((f"--format zeek / tshark conv,tcp, {size} packets", ratio, "<= 1.0", ratio <= 1.0))
        ratio = paired(get(results, PARQUET, size), json_run)
        out.append((f"--format parquet / --format json, {size} packets", ratio, "<= 1.0", ratio <= 1.0))
        ratio = paired(get(results, PARQUET_PACKETS, size), json_run)
        out.append((f"parquet --packets / --format json, {size} packets", ratio, "<= 1.0", ratio <= 1.0))
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for tool in (PARQUET, PARQUET_PACKETS):
            growth = get(results, tool, large).peak / get(results, tool, small).peak
            out.append((f"peak memory growth {small} -> {large}, {tool}", growth, "flat", growth <= 1.10))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    results = run(args.sizes, args.repeat, lambda text: print(f"  ... {text}", file=sys.stderr, flush=True))
    print(table(results))
    print()
    for measurement, ratio, target, met in verdicts(results):
        print(f"{measurement:<58} {ratio:>6.2f}  {target:<7} {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()

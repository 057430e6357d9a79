"""All of l4kit's benchmarks in one run: one table of ratios against references measured
in the same run on the same machine, then the detail of each part.

    sudo python benchmarks/run.py            # about 5 minutes on 2 cores
    sudo python benchmarks/run.py --quick    # about 1 minute: fewer rounds and connections, small captures
    python benchmarks/run.py --skip responder   # without root: replay and checksum only

Parts (each also runs on its own):

- responder (``bench_responder.py``, root: a network namespace): sequential conn/s,
  p50/p99 latency and 16-client concurrent conn/s of ``l4kit respond`` with each codec,
  against a kernel-socket server written two ways (an inline accept loop, the fastest;
  ``socketserver.ThreadingTCPServer``, the standard library's) and a naive Scapy
  responder, all in the same namespace, in rounds with the order rotated, medians;
- replay (``bench_replay.py``'s capture): ``l4kit replay --format json`` as ``pip install .``
  builds it (replay compiled by mypyc), and as pure Python: packets/s and
  peak memory (max RSS) on synthetic captures of two sizes (default 100,000 and
  200,000 packets), against ``tshark -q -z conv,tcp``, a Scapy ``PcapReader`` loop and a
  bare ``struct`` pass over ``RawPcapReader``; medians of the repeats (the Scapy loop, which
  takes longer than the rest together, runs in the first repeat only);
- analytics (``bench_analytics.py``, the same captures): ``--format zeek`` against
  tshark's ``conv,tcp``, ``--format parquet`` (with and without ``--packets``) against
  ``--format json``, and Parquet's peak memory at the two sizes;
- checksum (``bench_checksum.py``): l4kit's pure-Python Internet checksum against
  ``scapy.utils.checksum``;
- loss (``bench_loss.py``, root: a network namespace): 40 transfers of 60,000 octets with
  1 %, 5 % and 10 % of the segments dropped each way by nftables, ``l4kit respond`` with
  each codec against the kernel server (total time; the target is at 5 %).

A target (docs/performance.md) is marked ``met`` or ``MISSED``; nothing here is tuned to
pass: every reference is measured, and every figure is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_analytics  # noqa: E402
import bench_checksum  # noqa: E402
import bench_flood  # noqa: E402
import bench_loss  # noqa: E402
import bench_replay  # noqa: E402
import bench_responder  # noqa: E402

PY = sys.executable


@dataclass
class Row:
    area: str
    measurement: str
    ours: str
    reference: str
    ratio: float
    target: str = ""  # e.g. ">= 0.50"; empty: for information
    met: bool | None = None


def _fmt(row: Row) -> str:
    verdict = "" if row.met is None else ("met" if row.met else "MISSED")
    return (
        f"{row.area:<9} {row.measurement:<44} {row.ours:>12}  {row.reference:<36} "
        f"{row.ratio:>7.2f}  {row.target:<16} {verdict}"
    )


def summary_table(rows: list[Row]) -> str:
    head = (
        f"{'area':<9} {'measurement':<44} {'l4kit':>12}  {'reference (same run)':<36} "
        f"{'ratio':>7}  {'target':<16} verdict"
    )
    return "\n".join([head, "-" * len(head), *(_fmt(r) for r in rows)])


def machine() -> str:
    cpu = "?"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    tshark = shutil.which("tshark")
    tshark_version = ""
    if tshark:
        first = subprocess.run([tshark, "--version"], capture_output=True, text=True, check=False).stdout
        tshark_version = first.splitlines()[0] if first else ""
    import scapy

    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, {cpu}; Linux {platform.release()}; "
        f"Python {platform.python_version()}; Scapy {scapy.__version__}; {tshark_version}"
    )


# ---------------------------------------------------------------- responder


def responder_rows(results: dict[str, bench_responder.Result]) -> list[Row]:
    """The inline accept loop is the reference of every responder target: the fastest a
    Python server on the kernel's TCP can be, measured with the same client in the same
    run. ThreadingTCPServer (a thread per connection) is reported beside it."""
    r = bench_responder
    inline, threading_ = results[r.KERNEL_INLINE], results[r.KERNEL_THREADING]
    fast, scapy, naive = results[r.L4KIT_FAST], results[r.L4KIT_SCAPY], results[r.NAIVE]
    floor = results.get(r.FLOOR)
    rendered = results.get(r.L4KIT_RENDERED)
    pure = results.get(r.L4KIT_FAST_PURE)
    clients = f"{r.PARALLEL}-client"

    def row(  # noqa: PLR0917 - a table row's columns, in order
        what: str,
        ours: float,
        label: str,
        ref: float,
        target: str = "",
        limit: float | None = None,
        *,
        fmt: str = "{:.0f}",
        at_most: bool = False,
    ) -> Row:
        ratio = ours / ref
        met = None if limit is None else (ratio <= limit if at_most else ratio >= limit)
        return Row("respond", what, fmt.format(ours), f"{label} {fmt.format(ref)}", ratio, target, met)

    rows = []
    if floor is not None:
        rows.append(
            row("sequential conn/s, floor (sniffer, no TCP)", floor.seq_cps, "inline loop", inline.seq_cps)
        )
    rows += [
        row("sequential conn/s, --codec fast", fast.seq_cps, "inline loop", inline.seq_cps, ">= 0.50", 0.5),
        row(
            "p50 latency ms, --codec fast",
            fast.p50_ms,
            "inline loop",
            inline.p50_ms,
            "<= 3.0",
            3.0,
            fmt="{:.3f}",
            at_most=True,
        ),
        row(f"{clients} conn/s, --codec fast", fast.conc_cps, "inline loop", inline.conc_cps, ">= 0.50", 0.5),
        row(
            "sequential conn/s, --codec scapy (default)",
            scapy.seq_cps,
            "inline loop",
            inline.seq_cps,
            ">= 0.25",
            0.25,
        ),
        row(
            "sequential conn/s, --codec scapy (default)",
            scapy.seq_cps,
            "naive Scapy",
            naive.seq_cps,
            ">= 2.0",
            2.0,
        ),
        row("sequential conn/s, --codec fast", fast.seq_cps, "ThreadingTCPServer", threading_.seq_cps),
        row(
            "p50 latency ms, --codec fast", fast.p50_ms, "ThreadingTCPServer", threading_.p50_ms, fmt="{:.3f}"
        ),
        row("p50 latency ms, --codec scapy", scapy.p50_ms, "inline loop", inline.p50_ms, fmt="{:.3f}"),
        row(f"{clients} conn/s, --codec scapy", scapy.conc_cps, "inline loop", inline.conc_cps),
    ]
    if floor is not None:
        rows.append(row("sequential conn/s, --codec fast", fast.seq_cps, "floor", floor.seq_cps))
    if pure is not None:  # what the mypyc-compiled build adds (setup.py)
        rows.append(
            row("sequential conn/s, --codec fast, pure Python", pure.seq_cps, "compiled", fast.seq_cps)
        )
    if rendered is not None:
        rows.append(
            row("sequential conn/s, scapy + tables rendered", rendered.seq_cps, "naive Scapy", naive.seq_cps)
        )
    return rows


# ---------------------------------------------------------------- flood


FLOOD_LIMIT_MS = 1000.0


def flood_rows(results: dict[str, bench_flood.Result], syns: int) -> list[Row]:
    """The client's connect() right after the burst: met when no round needed a SYN
    retransmission and the slowest round's SYN-ACK came within a second."""
    kernel = results[bench_flood.KERNEL]
    rows = []
    for name, target in ((bench_flood.L4KIT_SCAPY, "<= 1000 ms"), (bench_flood.L4KIT_FAST, "")):
        ours = results[name]
        met = ours.worst_connect_ms <= FLOOD_LIMIT_MS and ours.retransmissions == 0 and not ours.wrong_replies
        rows.append(
            Row(
                "flood",
                f"SYN-ACK ms after {syns} spoofed SYNs, {name.removeprefix('l4kit ')}",
                f"{ours.connect_ms:.0f} (max {ours.worst_connect_ms:.0f})",
                f"kernel {kernel.connect_ms:.1f}",
                ours.connect_ms / kernel.connect_ms,
                target,
                met if target else None,
            )
        )
    return rows


# ---------------------------------------------------------------- replay


@dataclass
class ReplayResult:
    tool: str
    packets: int
    wall: float
    cpu: float
    peak_kib: int
    walls: list[float]  # every repeat's, in order: the tools take turns within a repeat


def paired_ratio(ours: ReplayResult, ref: ReplayResult) -> float:
    """The median over the repeats of ours / reference within the same repeat. The two
    ran seconds apart, so a slow spell of the machine (seen here: the same tool 50 %
    slower from one minute to the next) weighs on both sides of each ratio."""
    # The Scapy reference runs in the first repeat only: the repeats both tools ran in.
    return statistics.median(a / b for a, b in zip(ours.walls, ref.walls, strict=False))


L4KIT_REPLAY = bench_replay.L4KIT
L4KIT_REPLAY_ONE = bench_replay.L4KIT_ONE
L4KIT_REPLAY_PURE = bench_replay.L4KIT_PURE
TSHARK = "tshark -q -z conv,tcp"
TSHARK_ROWS = bench_replay.TSHARK_ROWS
SCAPY_READER = "Scapy PcapReader loop"
RAW_PASS = "struct pass over RawPcapReader"


def run_replay(
    sizes: list[int],
    repeat: int,
    progress: Callable[[str], None] = print,
) -> list[ReplayResult]:
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is needed for the replay reference (apt-get install tshark)")
    results = []
    builds = bench_replay.l4kit_builds()
    compiled, pure = builds["compiled"], builds["pure"]
    for size in sizes:
        progress(f"replay: making or reusing a capture of {size} packets")
        path = str(bench_replay.make_capture(size))
        replay = [PY, "-m", "l4kit", "replay", path, "--format", "json"]
        tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
            # as a user runs it: compiled (pip install .), two processes from 4 MiB on two cores
            L4KIT_REPLAY: (replay, compiled),
            L4KIT_REPLAY_ONE: (replay, {**compiled, "L4KIT_REPLAY_JOBS": "1"}),
            L4KIT_REPLAY_PURE: (replay, pure),  # an editable install, or no C compiler
            TSHARK: ([tshark, "-q", "-z", "conv,tcp", "-r", path], None),
            # tshark writing what l4kit's packet rows hold: the same job, for scale (no target)
            TSHARK_ROWS: (bench_replay.tshark_rows_argv(tshark, path), None),
            SCAPY_READER: ([PY, "-c", bench_replay.SCAPY_READER, path], None),
            RAW_PASS: ([PY, "-c", bench_replay.RAW_PASS, path], None),
        }
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in tools}
        for i in range(repeat):
            for name, (argv, env) in tools.items():  # alternate the tools within each repeat
                if name == SCAPY_READER and i:
                    # 20-30 times as long as the rest together, and its ratio (about 0.05) is
                    # near no target: once per size is enough.
                    continue
                progress(f"replay {size}: {name} ({i + 1}/{repeat})")
                # The whole process tree: CPU of the workers, the sum of every process's peak RSS.
                runs[name].append(bench_replay.measure(argv, env)[:3])
        for name, measured in runs.items():
            results.append(
                ReplayResult(
                    name,
                    size,
                    statistics.median(m[0] for m in measured),
                    statistics.median(m[1] for m in measured),
                    max(m[2] for m in measured),
                    [m[0] for m in measured],
                )
            )
    return results


def replay_table(results: list[ReplayResult]) -> str:
    head = (
        f"{'packets':>8}  {'tool':<38} {'wall s':>7} {'cpu s':>7} {'packets/s':>10} {'peak MiB':>9} "
        f"{'wall/tshark':>11} {'mem/tshark':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        ref = next(t for t in results if t.tool == TSHARK and t.packets == r.packets)
        lines.append(
            f"{r.packets:>8}  {r.tool:<38} {r.wall:>7.2f} {r.cpu:>7.2f} {r.packets / r.wall:>10.0f} "
            f"{r.peak_kib / 1024:>9.1f} {paired_ratio(r, ref):>11.2f} {r.peak_kib / ref.peak_kib:>10.2f}"
        )
    return "\n".join(lines)


def replay_rows(results: list[ReplayResult]) -> list[Row]:
    rows = []
    sizes = sorted({r.packets for r in results})

    def get(tool: str, size: int) -> ReplayResult:
        return next(r for r in results if r.tool == tool and r.packets == size)

    for size in sizes:
        ours, ref = get(L4KIT_REPLAY, size), get(TSHARK, size)
        one = get(L4KIT_REPLAY_ONE, size)
        ratio = paired_ratio(ours, ref)
        rows.append(
            Row(
                "replay",
                f"time, {size} packets (wall s; ratio paired)",
                f"{ours.wall:.2f}",
                f"tshark {ref.wall:.2f}",
                ratio,
                "<= 0.80",
                ratio <= 0.8,
            )
        )
        rows.append(
            Row(
                "replay",
                f"time, {size} packets, 1 process (wall s)",
                f"{one.wall:.2f}",
                f"tshark {ref.wall:.2f}",
                paired_ratio(one, ref),
            )
        )
        rows_ref = get(TSHARK_ROWS, size)
        rows.append(
            Row(
                "replay",
                f"time, {size} packets, vs tshark -T fields (wall s)",
                f"{ours.wall:.2f}",
                f"tshark -T fields {rows_ref.wall:.2f}",
                paired_ratio(ours, rows_ref),
            )
        )
        pure = get(L4KIT_REPLAY_PURE, size)
        rows.append(
            Row(
                "replay",
                f"time, {size} packets, pure Python (wall s)",
                f"{pure.wall:.2f}",
                f"tshark {ref.wall:.2f}",
                paired_ratio(pure, ref),
            )
        )
        rows.append(
            Row(
                "replay",
                f"CPU s, {size} packets (all processes; tshark: one)",
                f"{ours.cpu:.2f}",
                f"tshark {ref.cpu:.2f}",
                ours.cpu / ref.cpu,
            )
        )
        rows.append(
            Row(
                "replay",
                f"packets/s, {size} packets",
                f"{size / ours.wall:.0f}",
                f"tshark {size / ref.wall:.0f}",
                ref.wall / ours.wall,
            )
        )
        ratio = ours.peak_kib / ref.peak_kib
        rows.append(
            Row(
                "replay",
                f"peak memory MiB, {size} packets",
                f"{ours.peak_kib / 1024:.1f}",
                f"tshark {ref.peak_kib / 1024:.1f}",
                ratio,
                "< 1.0",
                ratio < 1.0,
            )
        )
        scapy = get(SCAPY_READER, size)
        rows.append(
            Row(
                "replay",
                f"time, {size} packets (wall s)",
                f"{ours.wall:.2f}",
                f"Scapy PcapReader {scapy.wall:.2f}",
                paired_ratio(ours, scapy),
            )
        )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        growth = get(L4KIT_REPLAY, large).peak_kib / get(L4KIT_REPLAY, small).peak_kib
        tshark_growth = get(TSHARK, large).peak_kib / get(TSHARK, small).peak_kib
        rows.append(
            Row(
                "replay",
                f"peak memory growth {small} -> {large} packets",
                f"x{growth:.2f}",
                f"tshark x{tshark_growth:.2f}",
                growth,
                "flat",
                growth <= 1.10,
            )
        )
    return rows


# ---------------------------------------------------------------- checksum


def run_checksum(repeat: int) -> list[tuple[str, float, float]]:
    from scapy.utils import checksum as scapy_checksum

    from l4kit.checksum import internet_checksum

    rng = random.Random(1071)
    rows = []
    for label, size in bench_checksum.SIZES:
        data = rng.randbytes(size)
        assert internet_checksum(data) == scapy_checksum(data), f"checksums differ at {label}"
        ours = bench_checksum.ns_per_call(internet_checksum, data, repeat)
        theirs = bench_checksum.ns_per_call(scapy_checksum, data, repeat)
        rows.append((label, ours, theirs))
    return rows


def checksum_rows(results: list[tuple[str, float, float]]) -> list[Row]:
    rows = []
    for label, ours, theirs in results:
        target = ">= 3.0" if label == "1460 B" else ""
        speedup = theirs / ours
        rows.append(
            Row(
                "checksum",
                f"ns per call, {label} (speed-up)",
                f"{ours:,.0f}",
                f"scapy.utils.checksum {theirs:,.0f}",
                speedup,
                target,
                speedup >= 3.0 if target else None,
            )
        )
    return rows


# ---------------------------------------------------------------- loss


def loss_rows(results: list[bench_loss.Result]) -> list[Row]:
    """Total time of the transfers against the kernel server's at each loss rate: a ratio
    of kernel time to l4kit's (above 1: faster), the target 0.5 (at most twice as long) at 5 %."""
    rows = []
    for r in results:
        if r.server == bench_loss.KERNEL:
            continue
        kernel = next(k for k in results if k.server == bench_loss.KERNEL and k.rate == r.rate)
        ratio = kernel.total / r.total
        rows.append(
            Row(
                "loss",
                f"{r.rate} % loss each way, total time, {r.server.removeprefix('l4kit ')}",
                f"{r.total:.2f} s",
                f"kernel server {kernel.total:.2f} s",
                ratio,
                ">= 0.50" if r.rate == 5 else "",
                ratio >= 0.5 if r.rate == 5 else None,
            )
        )
    return rows


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 round, 300 connections, 20k/40k-packet captures")
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["responder", "flood", "replay", "analytics", "checksum", "loss"],
    )
    ap.add_argument("--rounds", type=int, help="responder rounds (default 3, quick 1)")
    ap.add_argument("--sequential", type=int, help="sequential connections per round (default 1000)")
    ap.add_argument("--concurrent", type=int, help="connections of the 16-client test (default 400)")
    ap.add_argument("--syns", type=int, default=4000, help="spoofed SYNs of the flood's burst (default 4000)")
    ap.add_argument("--flood-rounds", type=int, help="bursts per server (default 5, quick 2)")
    ap.add_argument("--sizes", type=int, nargs="+", help="replay capture sizes (default 100000 200000)")
    ap.add_argument("--repeat", type=int, help="replay and checksum repeats (default 3, quick 1)")
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    sequential = a.sequential or (300 if a.quick else 1000)
    concurrent = a.concurrent or (100 if a.quick else 400)
    sizes = a.sizes or ([20_000, 40_000] if a.quick else [100_000, 200_000])
    repeat = a.repeat or (1 if a.quick else 3)

    def progress(text: str) -> None:
        print(f"  ... {text}", file=sys.stderr, flush=True)

    rows: list[Row] = []
    details: list[str] = []
    if "responder" not in a.skip:
        bench_responder.require_root()
        results = bench_responder.run(
            rounds=rounds, sequential=sequential, concurrent=concurrent, progress=progress
        )
        rows += responder_rows(results)
        details.append(
            f"responder: {rounds} round(s) of {sequential} sequential + {concurrent} concurrent "
            f"({bench_responder.PARALLEL} clients) connections per server, medians\n"
            + bench_responder.table(results)
        )
    if "flood" not in a.skip:
        bench_responder.require_root()
        flood_rounds = a.flood_rounds or (2 if a.quick else 5)
        flood = bench_flood.run(syns=a.syns, rounds=flood_rounds, progress=progress)
        rows += flood_rows(flood, a.syns)
        details.append(
            f"flood: {flood_rounds} burst(s) of {a.syns} spoofed SYNs per server\n"
            + bench_flood.table(flood, a.syns)
        )
    if "replay" not in a.skip:
        replay = run_replay(sizes, repeat, progress)
        rows += replay_rows(replay)
        details.append(
            f"replay: median of {repeat} run(s) per tool and size ({SCAPY_READER}: one)\n"
            + replay_table(replay)
        )
    if "analytics" not in a.skip:
        analytics = bench_analytics.run(sizes, repeat, progress)
        for measurement, ratio, target, met in bench_analytics.verdicts(analytics):
            rows.append(Row("analytics", measurement, "", "", ratio, target, met))
        details.append(
            f"analytics: median of {repeat} run(s) per tool and size; ratios paired within a repeat\n"
            + bench_analytics.table(analytics)
        )
    if "checksum" not in a.skip:
        progress("checksum")
        checksum = run_checksum(max(repeat, 3))
        rows += checksum_rows(checksum)
        details.append(
            "checksum: best of the repeats, ns per call\n"
            + "\n".join(
                f"  {label:>7}: l4kit {ours:>10,.0f}  scapy {theirs:>10,.0f}  x{theirs / ours:.2f}"
                for label, ours, theirs in checksum
            )
        )
    if "loss" not in a.skip:
        bench_responder.require_root()
        loss = bench_loss.run(rates=(5,) if a.quick else (1, 5, 10), progress=progress)
        rows += loss_rows(loss)
        details.append(
            "loss: 40 transfers of 60,000 octets per server and loss rate\n" + bench_loss.table(loss)
        )
    print(f"l4kit benchmarks{' (--quick)' if a.quick else ''}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(machine())
    print()
    print(summary_table(rows))
    for detail in details:
        print()
        print(detail)


if __name__ == "__main__":
    main()

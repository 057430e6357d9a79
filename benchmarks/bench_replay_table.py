"""The table output's speed: ``l4kit replay FILE`` beside ``--format json`` and tshark.

The target: the table of a capture of about 3,000 connections in at most twice the
time of its JSON. The capture is ``bench_replay``'s synthetic one (HTTP-like
connections, 50 open at a time), sized to hold about ``--connections`` of them. Each
tool runs as its own process, as a user runs it, with the compiled build
(``bench_replay.compiled_build``):

* ``table, pipe``: ``l4kit replay FILE`` with its output to a pipe (no terminal: the
  boxed layout, 200 columns), read and thrown away;
* ``table, 120 / 80 columns``: the same in a pseudo-terminal of that size (the
  layouts a terminal gets), its output read and thrown away;
* ``json``: ``--format json`` to a pipe, as a user runs it (split over two processes
  when the capture is large enough, see ``l4kit.replay.parallel``), and in one process;
* ``tshark -q -z conv,tcp``: tshark's own table of the connections, for scale.

The tools take turns within each round; each figure is the median over the rounds,
and each ratio the median of the ratios within a round. Run:

    .venv/bin/python benchmarks/bench_replay_table.py [--connections 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_replay

PY = sys.executable
FRAMES_PER_CONNECTION = 13  # bench_replay's connections: 9 to 15 frames, 13 on average


def run(argv: list[str], env: dict[str, str], columns: int | None) -> tuple[float, float]:
    """Wall and CPU seconds of one run; its output read and dropped (a pipe, or a
    pseudo-terminal ``columns`` wide)."""
    child_env = {k: v for k, v in {**os.environ, **env}.items() if k not in ("COLUMNS", "LINES")}
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    if columns is None:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env)
        assert proc.stdout is not None
        while proc.stdout.read(1 << 16):
            pass
        pid = proc.pid
    else:
        pid, fd = pty.fork()
        if pid == 0:
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
                child_env["TERM"] = "xterm-256color"
                os.execvpe(argv[0], argv, child_env)
            finally:
                os._exit(127)
        try:
            while select.select([fd], [], [], 600)[0]:
                try:
                    if not os.read(fd, 1 << 16):
                        break
                except OSError:  # EIO: the child closed its terminal
                    break
        finally:
            os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed with status {status}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tshark = shutil.which("tshark")
    builds = bench_replay.l4kit_builds()
    compiled = builds["compiled"]
    path = str(bench_replay.make_capture(args.connections * FRAMES_PER_CONNECTION))
    summary = json.loads(
        subprocess.run(
            [PY, "-m", "l4kit", "replay", path, "-f", "json", "--max-rows", "1"],
            env={**os.environ, **compiled}, capture_output=True, check=True, text=True,
        ).stdout
    )["summary"]  # fmt: skip
    replay = [PY, "-m", "l4kit", "replay", path]
    tools: dict[str, tuple[list[str], dict[str, str], int | None]] = {
        "table, pipe": (replay, compiled, None),
        "table, 120-column terminal": (replay, compiled, 120),
        "table, 80-column terminal": (replay, compiled, 80),
        "json": ([*replay, "-f", "json"], compiled, None),
        "json, 1 process": ([*replay, "-f", "json"], {**compiled, "L4KIT_REPLAY_JOBS": "1"}, None),
    }
    if tshark:
        tools["tshark -q -z conv,tcp"] = ([tshark, "-q", "-z", "conv,tcp", "-r", path], {}, None)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
    for _ in range(args.rounds):
        for name, (argv, env, columns) in tools.items():
            times[name].append(run(argv, env, columns))
    print(
        f"{summary['packets']} packets, {summary['connections']} connections "
        f"({Path(path).stat().st_size / 1e6:.1f} MB); median of {args.rounds} rounds, compiled build"
    )
    print(f"{'tool':<30} {'wall s':>7} {'cpu s':>7} {'wall / json':>12} {'wall / json 1 proc':>19}")
    for name, measured in times.items():
        wall = statistics.median(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        ratios = [
            statistics.median(m[0] / j[0] for m, j in zip(measured, times[ref], strict=True))
            for ref in ("json", "json, 1 process")
        ]
        print(f"{name:<30} {wall:>7.2f} {cpu:>7.2f} {ratios[0]:>12.2f} {ratios[1]:>19.2f}")
    print("target: the table within 2x the JSON's time")


if __name__ == "__main__":
    main()

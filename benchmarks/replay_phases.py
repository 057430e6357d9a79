"""Where ``l4kit replay --format json`` spends its time, phase by phase, in one process.

Each phase adds one stage to the one before, on the same capture (``bench_replay``'s,
default 200,000 packets), best of three:

* ``read``: the capture reader alone (``CaptureReader``, every frame);
* ``follow every connection``: plus the engine with no connection of its own
  (decode, the 4-tuple table, closes, port reuse): what each process of a split
  run pays for every frame (``l4kit.replay.parallel``);
* ``analyse every connection``: plus the three observers and the packet records;
* ``+ JSON text``: plus formatting each connection's JSON (written nowhere).

Both builds, each in its own process: compiled by mypyc (what ``pip install .``
gives) and pure Python. Run: ``python benchmarks/replay_phases.py [--packets N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

PHASES = ("read", "follow every connection", "analyse every connection", "+ JSON text")


def _best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def measure(path: str) -> None:
    """In the build PYTHONPATH chose: print one line per phase, ``NAME<TAB>SECONDS``."""
    from l4kit.replay.capture import CaptureReader
    from l4kit.replay.engine import Replayer
    from l4kit.replay.jsontext import connection_json_text

    def read() -> None:
        with CaptureReader(path) as capture:
            for _ in capture:
                pass

    def run(shards: int, shard: int, on_connection: object) -> None:
        replayer = Replayer(on_connection, shards=shards, shard=shard)  # type: ignore[arg-type]
        with CaptureReader(path) as capture:
            replayer.run(capture)
        replayer.finish()

    phases = {
        PHASES[0]: read,
        # no id is a multiple of this: the process follows everything and owns nothing
        PHASES[1]: lambda: run(1 << 40, (1 << 40) - 1, lambda report: None),
        PHASES[2]: lambda: run(1, 0, lambda report: None),
        PHASES[3]: lambda: run(1, 0, connection_json_text),
    }
    for name, fn in phases.items():
        print(f"{name}\t{_best(fn):.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # the child's side
    args = ap.parse_args()
    if args.measure:
        measure(args.measure)
        return

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_replay

    path = str(bench_replay.make_capture(args.packets))
    results = bench_replay.phases_in_each_build(__file__, path)
    print(f"{args.packets} packets, one process; each phase includes the ones above it")
    print(f"{'phase':<28} {'compiled s':>10} {'pure s':>8} {'µs/packet (compiled)':>21}")
    for name in PHASES:
        c, p = results["compiled"][name], results["pure"][name]
        print(f"{name:<28} {c:>10.3f} {p:>8.3f} {c / args.packets * 1e6:>21.2f}")


if __name__ == "__main__":
    main()

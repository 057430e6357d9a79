"""Internet checksum speed: l4kit's pure-Python one against ``scapy.utils.checksum``, same run.

    python benchmarks/bench_checksum.py [--repeat N]

Prints one table: for 20 B (an IP header), 64 B, 1460 B (a full Ethernet-MSS
segment) and 64 KiB, the best-of-N nanoseconds per call of each function on the
same random buffer, and the ratio (Scapy's time / l4kit's). Both results are
checked equal before timing. Ratios, not absolute times, are what compare
across machines; the target is at least 3x at 1460 B (docs/performance.md).
"""

from __future__ import annotations

import argparse
import random
import timeit
from collections.abc import Callable

from scapy.utils import checksum as scapy_checksum

from l4kit.checksum import internet_checksum

SIZES = (("20 B", 20), ("64 B", 64), ("1460 B", 1460), ("64 KiB", 65536))


def ns_per_call(function: Callable[[bytes], int], data: bytes, repeat: int) -> float:
    timer = timeit.Timer(lambda: function(data))
    number, _ = timer.autorange()  # enough calls for >= 0.2 s per measurement
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measurements per cell; the best is kept")
    args = parser.parse_args()
    rng = random.Random(1071)
    rows = []
    for label, size in SIZES:
        data = rng.randbytes(size)
        assert internet_checksum(data) == scapy_checksum(data), f"checksums differ at {label}"
        ours = ns_per_call(internet_checksum, data, args.repeat)
        theirs = ns_per_call(scapy_checksum, data, args.repeat)
        rows.append((label, ours, theirs, theirs / ours))
    print(f"{'size':>8} | {'l4kit ns/call':>14} | {'scapy ns/call':>14} | {'speed-up':>8}")
    print(f"{'-' * 8}-+-{'-' * 14}-+-{'-' * 14}-+-{'-' * 8}")
    for label, ours, theirs, ratio in rows:
        print(f"{label:>8} | {ours:>14,.0f} | {theirs:>14,.0f} | {ratio:>7.2f}x")


if __name__ == "__main__":
    main()

"""``l4kit drill``'s speed, against packetdrill in the same run.

    sudo python benchmarks/bench_drill.py [--packetdrill PATH] [--rounds N] [SCRIPT ...]

- **kernel target**: the wall time of ``l4kit drill --target kernel`` over the
  scripts (default: the project's ``tests/drill/*.pkt`` that must pass), and with
  ``--packetdrill PATH`` (a binary built from packetdrill's source; not part of this
  repository) the same scripts run by packetdrill one at a time as its ``run_all.py``
  runs them (``in_netns.sh`` beside the binary when it is there, else ``unshare
  --net``), the two alternating round by round. Printed: the median of each, and
  the ratio l4kit / packetdrill (the target is at most 1.5), with both tools'
  verdicts, which must agree.
- **l4kit target**: scripts per second (parsing included) over the same scripts,
  which are short ones (the target is at least 100/s).
- **parser**: scripts parsed per second, the language's share of that budget.

Both tools run with the options of packetdrill's ``run_all.py`` (its IPv4 addresses
and definitions), so the scripts of packetdrill's own corpus can be given too.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The project's scripts that must pass, all but tcp-info.pkt (an l4kit extension packetdrill refuses).
PASSING = sorted(
    path
    for path in (ROOT / "tests" / "drill").glob("*.pkt")
    if not path.name.startswith(("fails-", "unparseable", "tcp-info"))
)
RUN_ALL_OPTIONS = [
    "--ip_version=ipv4", "--local_ip=192.168.0.1", "--gateway_ip=192.168.0.1", "--netmask_ip=255.255.0.0",
    "--remote_ip=192.0.2.1", "-D", "TFO_COOKIE=3021b9d889017eeb", "-D", "CODE=host_unreachable",
    "-D", "CMSG_LEVEL_IP=SOL_IP", "-D", "CMSG_TYPE_RECVERR=IP_RECVERR",
]  # fmt: skip


def run_l4kit(scripts: list[Path]) -> tuple[float, dict[str, bool]]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "drill", "--format", "json", *RUN_ALL_OPTIONS, *map(str, scripts)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"l4kit drill failed: {done.stderr.strip()}")
    verdicts = {
        Path(entry["path"]).resolve().as_posix(): entry["verdict"] == "pass"
        for entry in json.loads(done.stdout)["scripts"]
    }
    return elapsed, verdicts


def packetdrill_command(binary: Path, script: Path) -> list[str]:
    wrapper = binary.parent / "in_netns.sh"
    command = [str(binary), "--send_omit_free", *RUN_ALL_OPTIONS, script.name]
    if wrapper.exists():
        return [str(wrapper), *command]
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]


def run_packetdrill(binary: Path, scripts: list[Path]) -> tuple[float, dict[str, bool]]:
    verdicts = {}
    start = time.perf_counter()
    for script in scripts:
        done = subprocess.run(
            packetdrill_command(binary, script),
            cwd=script.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        verdicts[script.resolve().as_posix()] = done.returncode == 0
    return time.perf_counter() - start, verdicts


def parser_rate(scripts: list[Path], seconds: float = 1.0) -> float:
    from l4kit.drill.script import parse

    texts = [(str(path), path.read_text()) for path in scripts]
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for name, text in texts:
            parse(text, name, {"TFO_COOKIE": "3021b9d889017eeb"})
            count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scripts", nargs="*", type=Path, help="scripts to run (default: tests/drill's passing ones)"
    )
    parser.add_argument("--packetdrill", type=Path, help="a packetdrill binary to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the two tools alternating")
    args = parser.parse_args()
    scripts = [path.resolve() for path in args.scripts] or PASSING
    if os.geteuid() != 0:
        sys.exit("the kernel target and packetdrill need root (network namespaces, a TUN device)")

    ours: list[float] = []
    theirs: list[float] = []
    disagree: set[str] = set()
    for _ in range(args.rounds):
        elapsed, l4kit_verdicts = run_l4kit(scripts)
        ours.append(elapsed)
        if args.packetdrill is not None:
            elapsed, pd_verdicts = run_packetdrill(args.packetdrill, scripts)
            theirs.append(elapsed)
            disagree |= {name for name, ok in pd_verdicts.items() if l4kit_verdicts.get(name) != ok}
    print(f"kernel target, {len(scripts)} scripts, {args.rounds} rounds (median wall time)")
    print(f"  l4kit drill --target kernel  {statistics.median(ours):8.2f} s")
    if theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"  packetdrill (one at a time)  {statistics.median(theirs):8.2f} s")
        verdict = "met" if ratio <= 1.5 else "MISSED"
        print(f"  ratio l4kit / packetdrill    {ratio:8.2f}   (target <= 1.5: {verdict})")
        names = " ".join(sorted(Path(name).name for name in disagree))
        print(f"  verdicts that differed       {len(disagree):8d}   {names}")
    from l4kit.drill.run.virtual import benchmark

    rate = benchmark(list(scripts))
    verdict = "met" if rate >= 100 else "MISSED"
    print(f"l4kit target                   {rate:8.0f} scripts/s   (target >= 100: {verdict})")
    print(f"parser                         {parser_rate(scripts):8.0f} scripts/s")
    if shutil.which("nproc"):
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

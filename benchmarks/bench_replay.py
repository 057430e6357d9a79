"""Replay benchmark: ``l4kit replay --format json`` against tshark and Scapy, same run.

A synthetic Ethernet capture is generated once per size and cached under
``benchmarks/out/`` (gitignored): many short HTTP-like connections, 50 open at
a time, one packet per millisecond of capture time, with some retransmissions
and duplicate ACKs, correct checksums. Every tool then reads the same file as
its own subprocess, one after the other:

* ``l4kit``: ``python -m l4kit replay FILE --format json`` (output to /dev/null) as a
  user runs it: built as ``pip install .`` builds it, with replay's per-packet modules
  compiled by mypyc (:func:`compiled_build`), and a capture this large split by
  connection over two processes when the machine has two cores
  (``l4kit.replay.parallel``); the same with one process (``L4KIT_REPLAY_JOBS=1``);
  both again as pure Python (the source tree, what an editable install runs); and
  compiled, one process, ``--max-rows 1`` (every packet analysed, one packet row per
  connection written: the cost of the per-packet JSON shows in the difference);
* ``tshark``: ``tshark -q -z conv,tcp -r FILE`` (its own TCP conversation table, on
  one core): the reference of replay's targets (docs/performance.md), and of every
  ratio printed;
* ``tshark per-packet fields``: tshark printing, for every packet, what a packet row
  of l4kit's JSON holds (:data:`TSHARK_FIELDS`: frame, stream, time in the
  connection, flags, relative seq/ack, length, window, checksum verdict, analysis
  flags; no payload preview). ``conv,tcp`` prints one line per connection; this is
  tshark doing the job l4kit's JSON does, for scale;
* ``scapy rdpcap``: ``rdpcap(FILE)`` then a loop reading each packet's TCP flags,
  the way a Scapy user would write it;
* ``scapy PcapReader``: the streaming reader, same loop;
* ``raw struct pass``: Scapy's ``RawPcapReader`` and one ``struct.unpack`` per frame,
  the floor any Python reader of the file has to pay.

The tools take turns within each repeat; the best time of the repeats is kept.
Time is wall-clock; CPU time is user + system time of the whole process tree (the
workers are waited for, so ``wait4`` counts them). Peak memory is that of the whole
process tree too (:class:`TreeMemory`: the sum of every process's own peak,
sampled from /proc; ``wait4``'s ``ru_maxrss`` alone would report only the largest
process). Two sizes (default 100,000 and 200,000 packets) show whether memory
stays flat as the capture grows. Run:

    .venv/bin/python benchmarks/bench_replay.py [--sizes 100000 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PY = sys.executable


# ---------------------------------------------------------------- the capture


def _frame(  # noqa: PLR0917 - a table of packets reads best positionally
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: str, payload: bytes
) -> bytes:
    from l4kit.wire.flags import TcpFlags
    from l4kit.wire.options import MaxSegmentSize, WindowScale
    from l4kit.wire.packet import encode_packet
    from l4kit.wire.segment import Segment
    from l4kit.wire.seqnum import SeqNum

    f = TcpFlags.parse(flags)
    options = (MaxSegmentSize(1460), WindowScale(7)) if f & TcpFlags.SYN else ()
    seg = Segment(
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=SeqNum(seq),
        ack=SeqNum(ack),
        flags=f,
        window=65535 if f & TcpFlags.SYN else 502,
        options=options,
        payload=payload,
    )
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + encode_packet(seg)


def _connection(rng: random.Random, n: int) -> list[bytes]:
    """One connection's frames: handshake, request, a response of 1-6 segments, close;
    every 7th connection retransmits a segment after three duplicate ACKs."""
    c = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255 or 1}"
    s = "192.0.2.80"
    cp = 20000 + n % 40000
    ci, si = rng.getrandbits(32), rng.getrandbits(32)
    req = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
    body = [bytes(rng.getrandbits(8) for _ in range(8)) * 181 for _ in range(rng.randint(1, 6))]
    frames = [
        _frame(c, s, cp, 80, ci, 0, "S", b""),
        _frame(s, c, 80, cp, si, ci + 1, "SA", b""),
        _frame(c, s, cp, 80, ci + 1, si + 1, "A", b""),
        _frame(c, s, cp, 80, ci + 1, si + 1, "PA", req),
        _frame(s, c, 80, cp, si + 1, ci + 1 + len(req), "A", b""),
    ]
    cack = ci + 1 + len(req)
    off = si + 1
    if n % 7 == 0 and len(body) > 1:
        # The first response segment is lost: the second arrives, three duplicate ACKs
        # ask for the first, and it is sent again (a fast retransmission).
        second = off + len(body[0])
        frames.append(_frame(s, c, 80, cp, second, cack, "A", body[1]))
        frames += [_frame(c, s, cp, 80, cack, off, "A", b"")] * 3
        frames.append(_frame(s, c, 80, cp, off, cack, "A", body[0]))
        off = second + len(body[1])
        body = body[2:]
    for i, chunk in enumerate(body):
        frames.append(_frame(s, c, 80, cp, off, cack, "PA" if i == len(body) - 1 else "A", chunk))
        off += len(chunk)
    frames += [
        _frame(c, s, cp, 80, cack, off, "A", b""),
        _frame(c, s, cp, 80, cack, off, "FA", b""),
        _frame(s, c, 80, cp, off, cack + 1, "FA", b""),
        _frame(c, s, cp, 80, cack + 1, off + 1, "A", b""),
    ]
    return frames


def make_capture(packets: int) -> Path:
    """A pcap of exactly ``packets`` frames, cached by size."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"replay-{packets}.pcap"
    if path.exists():
        return path
    rng = random.Random(packets)
    tmp = path.with_suffix(".tmp")
    open_conns: list[list[bytes]] = []
    n = 0
    written = 0
    t_us = 1_700_000_000 * 1_000_000
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < packets:
            while len(open_conns) < 50:
                n += 1
                open_conns.append(_connection(rng, n))
            conn = open_conns[rng.randrange(len(open_conns))]
            frame = conn.pop(0)
            if not conn:
                open_conns.remove(conn)
            t_us += 1000  # one packet per millisecond of capture time
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
            written += 1
    tmp.rename(path)
    return path


# ---------------------------------------------------------------- measuring

SCAPY_RDPCAP = """
import sys
from scapy.all import rdpcap, TCP
n = 0
for p in rdpcap(sys.argv[1]):
    if TCP in p:
        n += int(p[TCP].flags) & 1
print(n)
"""

SCAPY_READER = """
import sys
from scapy.all import PcapReader, TCP
n = 0
for p in PcapReader(sys.argv[1]):
    if TCP in p:
        n += int(p[TCP].flags) & 1
print(n)
"""

RAW_PASS = """
import struct, sys
from scapy.utils import RawPcapReader
u = struct.Struct("!HHIIHH").unpack_from
n = 0
for data, meta in RawPcapReader(sys.argv[1]):
    n += u(data, 34)[4] & 1
print(n)
"""


class TreeMemory:
    """Peak resident memory of a process *and its descendants*, sampled from /proc.

    ``wait4`` reports a process's CPU time including the children it waited for, but
    its ``ru_maxrss`` is the largest single process of the tree, not their sum: an
    l4kit run split over two processes would look half its size. So a thread reads
    every descendant's ``VmHWM`` (its own peak so far) every few milliseconds, and
    the tree's peak is taken as the sum of each process's peak: an upper bound, since
    the peaks need not coincide and pages a forked worker still shares with its parent
    are counted in both. A process's growth in its last few milliseconds can be
    missed; the result is never below ``wait4``'s figure.
    """

    INTERVAL = 0.01

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, int] = {}  # pid -> VmHWM seen, KiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, i = [self.pid], 0
        while i < len(pids):
            pid = pids[i]
            i += 1
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        pids += [int(p) for p in f.read().split()]
            except OSError:  # gone, or no CONFIG_PROC_CHILDREN
                continue
        return pids

    def _sample(self) -> None:
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            kib = int(line.split()[1])
                            self.peaks[pid] = max(self.peaks.get(pid, 0), kib)
                            break
            except (OSError, ValueError):
                continue

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.INTERVAL)

    def stop(self) -> tuple[int, int]:
        """(sum of the peaks, number of processes seen)."""
        self._stop.set()
        self._thread.join()
        return sum(self.peaks.values()), len(self.peaks)


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, int]:
    """Wall time (s), CPU time (user + system, s, with the children it waited for),
    peak RSS (KiB) of the process tree (see :class:`TreeMemory`) and the number of
    processes of one run."""
    child_env = {**os.environ, **(env or {})}
    # As on a user's machine, Python caches bytecode (some sandboxes set this variable,
    # which makes every run compile the pure-Python modules again, about 0.1 s).
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env)
    tree = TreeMemory(proc.pid)
    # Wait without reaping, so the sampler can still see the process until it exits.
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    elapsed = time.perf_counter() - start
    peak_sum, processes = tree.stop()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip()[:300]}")
    return elapsed, usage.ru_utime + usage.ru_stime, max(usage.ru_maxrss, peak_sum), max(processes, 1)


L4KIT = "l4kit replay --format json"
L4KIT_ONE = "l4kit replay --format json, 1 process"
L4KIT_PURE = "l4kit replay, pure Python"
L4KIT_PURE_ONE = "l4kit replay, pure Python, 1 process"
TSHARK = "tshark -q -z conv,tcp"
TSHARK_ROWS = "tshark per-packet fields"
TSHARK_FIELDS = (
    "frame.number", "tcp.stream", "tcp.time_relative", "tcp.flags.str", "tcp.seq", "tcp.ack",
    "tcp.len", "tcp.window_size_value", "tcp.checksum.status", "tcp.analysis.flags",
)  # fmt: skip
"""What a packet row of ``l4kit.replay/1`` holds, as tshark fields (verified checksums,
times since the connection's first packet)."""


def tshark_rows_argv(tshark: str, path: str) -> list[str]:
    """tshark printing :data:`TSHARK_FIELDS` for every packet of ``path``."""
    argv = [tshark, "-r", path, "-o", "tcp.check_checksum:TRUE", "-o", "tcp.calculate_timestamps:TRUE"]
    return [*argv, "-T", "fields", *(arg for field in TSHARK_FIELDS for arg in ("-e", field))]


ROOT = HERE.parent


def compiled_build() -> Path | None:
    """l4kit as ``pip install .`` builds it (replay compiled by mypyc, see setup.py), in
    ``benchmarks/out/compiled-HASH`` for this source, built once; None when it cannot
    be compiled here (no C compiler): the benchmark then says so."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([ROOT / "pyproject.toml", ROOT / "setup.py", *(ROOT / "toolkit").rglob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    target = OUT / f"compiled-{digest.hexdigest()[:12]}"
    if not target.exists():
        print(f"building the compiled l4kit into {target} (about half a minute)", file=sys.stderr, flush=True)
        tmp = target.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [PY, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp), str(ROOT)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for old in OUT.glob("compiled-*"):  # builds of earlier sources
            if old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    if not list((target / "l4kit" / "replay").glob("engine.*.so")):
        return None
    return target


def l4kit_builds() -> dict[str, dict[str, str]]:
    """The environment that runs each build of l4kit with ``python -m l4kit``: the
    compiled one (what a user's ``pip install`` gives) and the pure Python source.
    Either way of installing the venv itself, PYTHONPATH decides which one runs.
    Each is run once on a small capture first, so its bytecode is cached."""
    pure = {"PYTHONPATH": str(ROOT / "toolkit")}
    compiled = compiled_build()
    if compiled is None:
        print("no compiled build (no C compiler?): 'l4kit replay' rows are pure Python", file=sys.stderr)
        builds = {"compiled": pure, "pure": pure}
    else:
        builds = {"compiled": {"PYTHONPATH": str(compiled)}, "pure": pure}
    sample = str(ROOT / "tests" / "data" / "lo-kernel.pcap")
    for env in builds.values():
        measure([PY, "-m", "l4kit", "replay", sample, "--format", "json"], env)
    return builds


def phases_in_each_build(script: str, *args: str) -> dict[str, dict[str, float]]:
    """Run ``python SCRIPT --measure ARGS`` once in each build (:func:`l4kit_builds`, each
    in its own process) and read the ``NAME<TAB>SECONDS`` lines it prints:
    ``{build: {phase: seconds}}`` (``replay_phases.py``, ``responder_phases.py``)."""
    results = {}
    for build, env in l4kit_builds().items():
        out = subprocess.run(
            [PY, script, "--measure", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[build] = {name: float(sec) for name, sec in (line.split("\t") for line in out.splitlines())}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and size; the best time is kept")
    ap.add_argument(
        "--skip-rdpcap", action="store_true", help="leave out Scapy's rdpcap (slow, memory hungry)"
    )
    args = ap.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is needed for the reference (apt-get install tshark)")

    builds = l4kit_builds()
    rows = []
    for size in args.sizes:
        path = make_capture(size)
        l4kit = [PY, "-m", "l4kit", "replay", str(path), "--format", "json"]
        compiled, pure = builds["compiled"], builds["pure"]
        one = {"L4KIT_REPLAY_JOBS": "1"}
        tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
            # as a user runs it: compiled, split over two processes when the capture is large
            L4KIT: (l4kit, compiled),
            L4KIT_ONE: (l4kit, {**compiled, **one}),
            L4KIT_PURE: (l4kit, pure),
            L4KIT_PURE_ONE: (l4kit, {**pure, **one}),
            # the same analysis of every packet, but one packet row per connection in the output
            "l4kit json --max-rows 1, 1 process": ([*l4kit, "--max-rows", "1"], {**compiled, **one}),
            TSHARK: ([tshark, "-q", "-z", "conv,tcp", "-r", str(path)], None),
            TSHARK_ROWS: (tshark_rows_argv(tshark, str(path)), None),
            "scapy PcapReader loop": ([PY, "-c", SCAPY_READER, str(path)], None),
            "raw struct pass (RawPcapReader)": ([PY, "-c", RAW_PASS, str(path)], None),
        }
        if not args.skip_rdpcap:
            tools["scapy rdpcap loop"] = ([PY, "-c", SCAPY_RDPCAP, str(path)], None)
        runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in tools}
        for _ in range(args.repeat):  # the tools take turns, so a slow moment hits them alike
            for name, (argv, env) in tools.items():
                runs[name].append(measure(argv, env))
        results = {
            name: (
                min(r[0] for r in measured),
                min(r[1] for r in measured),
                max(r[2] for r in measured),
                max(r[3] for r in measured),
            )
            for name, measured in runs.items()
        }
        ref_wall, ref_cpu, ref_mem, _ = results[TSHARK]
        for name, (wall, cpu, mem, procs) in results.items():
            rows.append(
                (
                    size,
                    name,
                    wall,
                    cpu,
                    procs,
                    size / wall,
                    mem / 1024,
                    wall / ref_wall,
                    cpu / ref_cpu,
                    mem / ref_mem,
                )
            )

    header = (
        f"{'packets':>8}  {'tool':<36} {'wall s':>7} {'cpu s':>7} {'procs':>5} {'pkts/s':>8} {'peak MiB':>9} "
        f"{'wall/tshark':>11} {'cpu/tshark':>10} {'mem/tshark':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, name, wall, cpu, procs, pps, mib, rw, rc, rm in rows:
        print(
            f"{size:>8}  {name:<36} {wall:>7.2f} {cpu:>7.2f} {procs:>5} {pps:>8.0f} {mib:>9.1f} "
            f"{rw:>11.2f} {rc:>10.2f} {rm:>10.2f}"
        )
    print(
        "cpu: user + system time of the whole process tree; peak MiB: the sum of each process's peak "
        "(TreeMemory); tshark runs on one core."
    )
    by = {(r[0], r[1]): r for r in rows}
    if len(args.sizes) >= 2:
        small, large = args.sizes[0], args.sizes[-1]
        for name in (L4KIT, L4KIT_ONE, L4KIT_PURE, TSHARK):
            growth = by[(large, name)][6] / by[(small, name)][6]
            print(f"peak memory {name}: x{growth:.2f} from {small} to {large} packets")


if __name__ == "__main__":
    main()

"""Replay benchmark: ``l4kit replay --format json`` against tshark and Scapy, same run.

A synthetic Ethernet capture is generated once per size and cached under
``benchmarks/out/`` (gitignored): many short HTTP-like connections, 50 open at
a time, one packet per millisecond of capture time, with some retransmissions
and duplicate ACKs, correct checksums. Every tool then reads the same file as
its own subprocess, one after the other:

* ``l4kit``: ``python -m l4kit replay FILE --format json`` (output to /dev/null), and
  the same with ``--max-rows 1`` (every packet analysed, one packet row per
  connection written: the cost of the per-packet JSON shows in the difference);
* ``tshark``: ``tshark -q -z conv,tcp -r FILE`` (its own TCP conversation table);
* ``scapy rdpcap``: ``rdpcap(FILE)`` then a loop reading each packet's TCP flags,
  the way a Scapy user would write it;
* ``scapy PcapReader``: the streaming reader, same loop;
* ``raw struct pass``: Scapy's ``RawPcapReader`` and one ``struct.unpack`` per frame,
  the floor any Python reader of the file has to pay.

Time is wall-clock; peak memory is the child's maximum resident set size from
``os.wait4``. Two sizes (default 100,000 and 200,000 packets) show whether memory
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


def measure(argv: list[str]) -> tuple[float, float, int]:
    """Wall time (s), CPU time (user + system, s) and peak RSS (KiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if code != 0:
        raise SystemExit(f"{argv[0]} failed ({code}): {err.strip()[:300]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


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

    rows = []
    for size in args.sizes:
        path = make_capture(size)
        tools = {
            "l4kit replay --format json": [PY, "-m", "l4kit", "replay", str(path), "--format", "json"],
            # the same analysis of every packet, but one packet row per connection in the output
            "l4kit json --max-rows 1": [
                PY,
                "-m",
                "l4kit",
                "replay",
                str(path),
                "--format",
                "json",
                "--max-rows",
                "1",
            ],
            "tshark -q -z conv,tcp": [tshark, "-q", "-z", "conv,tcp", "-r", str(path)],
            "scapy PcapReader loop": [PY, "-c", SCAPY_READER, str(path)],
            "raw struct pass (RawPcapReader)": [PY, "-c", RAW_PASS, str(path)],
        }
        if not args.skip_rdpcap:
            tools["scapy rdpcap loop"] = [PY, "-c", SCAPY_RDPCAP, str(path)]
        results = {}
        for name, argv in tools.items():
            runs = [measure(argv) for _ in range(args.repeat)]
            results[name] = (min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs))
        ref_wall, ref_cpu, ref_mem = results["tshark -q -z conv,tcp"]
        for name, (wall, cpu, mem) in results.items():
            rows.append(
                (
                    size,
                    name,
                    wall,
                    cpu,
                    size / wall,
                    mem / 1024,
                    wall / ref_wall,
                    cpu / ref_cpu,
                    mem / ref_mem,
                )
            )

    header = (
        f"{'packets':>8}  {'tool':<32} {'wall s':>7} {'cpu s':>7} {'pkts/s':>8} {'peak MiB':>9} "
        f"{'wall/tshark':>11} {'cpu/tshark':>10} {'mem/tshark':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, name, wall, cpu, pps, mib, rw, rc, rm in rows:
        print(
            f"{size:>8}  {name:<32} {wall:>7.2f} {cpu:>7.2f} {pps:>8.0f} {mib:>9.1f} "
            f"{rw:>11.2f} {rc:>10.2f} {rm:>10.2f}"
        )
    by = {(r[0], r[1]): r for r in rows}
    if len(args.sizes) >= 2:
        small, large = args.sizes[0], args.sizes[-1]
        for name in ("l4kit replay --format json", "tshark -q -z conv,tcp"):
            growth = by[(large, name)][5] / by[(small, name)][5]
            print(f"peak memory {name}: x{growth:.2f} from {small} to {large} packets")


if __name__ == "__main__":
    main()

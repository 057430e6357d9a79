"""SYN flood benchmark: how long a real client's SYN waits behind a burst of spoofed SYNs.

In one throw-away network namespace, for each server in turn: a burst of ``--syns``
spoofed SYNs (random addresses of 127.2.0.0/16, random ports and ISNs, an MSS option),
written as fast as one ``AF_PACKET`` socket can write them, then at once a kernel
client's ``connect()`` to the server, then ``toppage`` and the reply read to EOF.
The namespace drops every packet to the spoofed network on its input hook, as a
spoofed flood's sources never answer (the servers' SYN-ACKs still reach the packet
sockets: taps come before netfilter).

Measured, per round: how long the burst took to write; how long the client's
``connect()`` took (its SYN to the SYN-ACK that completes it); whether the kernel had
to retransmit the client's SYN (``TcpExtTCPSynRetrans``: its first retransmission
is due after 1 s, so a SYN-ACK later than that shows up here); and whether the reply
was right. Servers:

- ``kernel, listening socket``: Linux's own TCP (SYN cookies once its SYN queue is
  full, ``net.ipv4.tcp_syncookies=1``), the inline accept loop of ``bench_responder``;
- ``l4kit respond``, the default (Scapy) codec and ``--codec fast``, ``--quiet``,
  compiled (``pip install .``), ``--max-half-open 256``: the flood's first 256 SYNs
  fill the half-open table, every later one is answered with a SYN cookie.

Each server runs for all its rounds (its half-open table stays full from the first
burst on, as under a long flood), with two seconds between rounds. Run as root:

    python benchmarks/bench_flood.py [--syns 4000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_responder  # noqa: E402
from _netns import in_ns, namespace  # noqa: E402

PY = sys.executable
PORT = bench_responder.PORT
SPOOFED = "127.2.0.0/16"

# The client side of one round, run inside the namespace: standard library only.
FLOOD_THEN_CONNECT = r"""
import json, random, socket, struct, sys, time

count, port, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def checksum(data, total=0):
    if len(data) % 2:
        data += b"\0"
    total += sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def syn_retransmissions():
    lines = open("/proc/net/netstat").read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["TCPSynRetrans"])
    return 0

rng = random.Random(seed)
frames = []
dst = socket.inet_aton("127.0.0.1")
for _ in range(count):
    src = bytes([127, 2, rng.randrange(256), rng.randrange(1, 255)])
    tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65536), port, rng.getrandbits(32), 0,
                      6 << 4, 0x02, 64240, 0, 0) + struct.pack("!BBH", 2, 4, 1460)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    frames.append(b"\0" * 12 + b"\x08\x00" + ip + tcp)
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind(("lo", 0))
retransmitted = syn_retransmissions()
started = time.perf_counter()
for frame in frames:
    out.send(frame)
burst = time.perf_counter() - started
started = time.perf_counter()
client = socket.create_connection(("127.0.0.1", port), timeout=30)
connected = time.perf_counter() - started
client.sendall(b"toppage\n")
reply = b""
while True:
    data = client.recv(4096)
    if not data:
        break
    reply += data
client.close()
print(json.dumps({"burst": burst, "connect": connected, "reply": reply.decode(errors="replace"),
                  "syn_retransmissions": syn_retransmissions() - retransmitted}))
"""

SILENCE_NFT = (
    "table inet l4kbench_flood {\n chain in {\n  type filter hook input priority -10;\n"
    f"  ip daddr {SPOOFED} drop\n }}\n}}\n"
)


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    ready: str


@dataclass
class Round:
    burst_s: float
    connect_s: float
    syn_retransmissions: int
    reply_ok: bool


@dataclass
class Result:
    server: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def connect_ms(self) -> float:
        return statistics.median(r.connect_s for r in self.rounds) * 1000

    @property
    def worst_connect_ms(self) -> float:
        return max(r.connect_s for r in self.rounds) * 1000

    @property
    def burst_ms(self) -> float:
        return statistics.median(r.burst_s for r in self.rounds) * 1000

    @property
    def retransmissions(self) -> int:
        return sum(r.syn_retransmissions for r in self.rounds)

    @property
    def wrong_replies(self) -> int:
        return sum(not r.reply_ok for r in self.rounds)


KERNEL = "kernel, listening socket"
L4KIT_SCAPY = "l4kit (default codec)"
L4KIT_FAST = "l4kit --codec fast"


def servers() -> tuple[Server, ...]:
    import bench_replay

    compiled = bench_replay.compiled_build()
    if compiled is None:
        raise SystemExit("the compiled build of l4kit could not be made (gcc and python3-dev are needed)")
    l4kit = ["env", f"PYTHONPATH={compiled}", PY, "-m", "l4kit", "respond", "--port", str(PORT), "--quiet"]
    half_open = ["--max-half-open", "256"]
    return (
        Server(KERNEL, [PY, str(HERE / "_kernel_server.py"), str(PORT)], "ready"),
        Server(L4KIT_SCAPY, [*l4kit, *half_open], "listening on"),
        Server(L4KIT_FAST, [*l4kit, "--codec", "fast", *half_open], "listening on"),
    )


def one_round(ns: str, syns: int, seed: int) -> Round:
    done = subprocess.run(
        in_ns(ns, PY, "-c", FLOOD_THEN_CONNECT, str(syns), str(PORT), str(seed)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    return Round(
        report["burst"], report["connect"], report["syn_retransmissions"], report["reply"] == "hello world\n"
    )


def run(*, syns: int = 4000, rounds: int = 5, progress: object = None) -> dict[str, Result]:
    say = progress if callable(progress) else (lambda _text: None)
    results: dict[str, Result] = {}
    with namespace("l4kflood") as ns:
        subprocess.run(in_ns(ns, "nft", "-f", "-"), input=SILENCE_NFT.encode(), check=True)
        for server in servers():
            result = results[server.name] = Result(server.name)
            proc = bench_responder._start(ns, server.argv, server.ready)
            try:
                for r in range(rounds):
                    say(f"flood round {r + 1}/{rounds}: {server.name}")
                    result.rounds.append(one_round(ns, syns, seed=r))
                    time.sleep(2.0)
            finally:
                bench_responder._stop(proc)
    return results


def table(results: dict[str, Result], syns: int) -> str:
    head = (
        f"{'server':<26} {'burst ms':>9} {'connect ms':>11} {'worst ms':>9} {'SYN retrans':>11} {'wrong':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results.values():
        lines.append(
            f"{r.server:<26} {r.burst_ms:>9.0f} {r.connect_ms:>11.1f} {r.worst_connect_ms:>9.1f} "
            f"{r.retransmissions:>11} {r.wrong_replies:>6}"
        )
    lines.append(
        f"(a kernel client's connect() right after {syns} spoofed SYNs; medians over the rounds, "
        "the worst round, SYN retransmissions summed over the rounds)"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--syns", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    bench_responder.require_root()
    results = run(syns=a.syns, rounds=a.rounds, progress=lambda text: print(text, file=sys.stderr))
    print(table(results, a.syns))


if __name__ == "__main__":
    main()

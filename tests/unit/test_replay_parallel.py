"""Replay split between processes prints exactly what one process prints.

``--format json`` on a large capture is split by connection between processes
(:mod:`l4kit.replay.parallel`). The contract is that this changes nothing in the
output: the same bytes, connections in the same order, the same summary. The
captures here are random but seeded mixtures of what makes the order and the
numbering delicate: connections that close and linger (their reports come out
when a later packet's time passes the linger), port reuse (a finished connection
and a new id on the same 4-tuple), refusals, aborts, bad checksums (a FIN or RST
with a bad checksum does not close), IPv6, midstream starts and non-TCP frames.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from test_replay_support import DATA

from l4kit.commands.replay import JOBS_ENV, replay_jobs, run_replay
from l4kit.replay import parallel
from l4kit.wire import Segment, SeqNum, TcpFlags
from l4kit.wire.options import MaxSegmentSize, WindowScale
from l4kit.wire.packet import encode_packet

ETHERNET_IPV4 = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
ETHERNET_IPV6 = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd"


def _segment(src, dst, sport, dport, seq, ack, flags, payload=b"", window=502):
    f = TcpFlags.parse(flags)
    options = (MaxSegmentSize(1460), WindowScale(7)) if f & TcpFlags.SYN else ()
    seg = Segment(
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=SeqNum(seq % 2**32),
        ack=SeqNum(ack % 2**32),
        flags=f,
        window=window,
        options=options,
        payload=payload,
    )
    return (ETHERNET_IPV6 if ":" in src else ETHERNET_IPV4) + encode_packet(seg)


def _connection(rng: random.Random, n: int) -> list[bytes]:
    """One connection's frames, of a randomly chosen kind; some share a 4-tuple with
    other connections (port reuse)."""
    v6 = n % 5 == 0
    client = f"2001:db8::{n % 7 + 1:x}" if v6 else f"10.0.{n % 3}.{n % 7 + 1}"
    server = "2001:db8::80" if v6 else "192.0.2.80"
    cport = 40000 + n % 23  # few enough ports that 4-tuples come back
    sport = rng.choice((80, 443))
    c_isn, s_isn = rng.getrandbits(32), rng.getrandbits(32)
    frames: list[bytes] = []

    def c(flags, seq, ack=0, payload=b"", window=502):
        frames.append(
            _segment(client, server, cport, sport, c_isn + seq, s_isn + ack, flags, payload, window)
        )

    def s(flags, seq, ack=0, payload=b"", window=502):
        frames.append(
            _segment(server, client, sport, cport, s_isn + seq, c_isn + ack, flags, payload, window)
        )

    kind = rng.random()
    if kind < 0.1:  # refused
        c("S", 0)
        s("RA", 0, 1)
        return frames
    if kind < 0.15:  # no answer
        c("S", 0)
        c("S", 0)
        return frames
    if kind < 0.25:  # seen from the middle
        c("PA", 10, 20, b"mid")
        s("A", 20, 13)
    else:
        c("S", 0)
        s("SA", 0, 1)
        c("A", 1, 1)
    cseq, sseq = 1, 1
    for _ in range(rng.randint(0, 8)):
        r = rng.random()
        if r < 0.35:
            data = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 7, 40, 300))))
            c("PA", cseq, sseq, data)
            cseq += len(data)
        elif r < 0.7:
            data = b'reply \\ "quoted"\n' * rng.randint(1, 20)
            s("A", sseq, cseq, data)
            if rng.random() < 0.2:
                s("A", sseq, cseq, data)  # a retransmission
            sseq += len(data)
        elif r < 0.85:
            c("A", cseq, sseq)
            if rng.random() < 0.3:
                c("A", cseq, sseq)  # a duplicate ACK
        else:
            s("A", sseq, cseq, window=0)
    end = rng.random()
    if end < 0.55:
        c("FA", cseq, sseq)
        s("FA", sseq, cseq + 1)
        c("A", cseq + 1, sseq + 1)
    elif end < 0.7:
        c("RA", cseq, sseq)
    elif end < 0.8:
        # a FIN with a bad TCP checksum: shown, but it does not close the connection
        c("FA", cseq, sseq)
        bad = bytearray(frames[-1])
        bad[-1 if len(bad) > 54 else 50] ^= 0xFF
        frames[-1] = bytes(bad)
        c("FA", cseq, sseq)
    return frames


def mixed_capture(path: Path, seed: int, connections: int) -> Path:
    """A pcap of interleaved connections (up to 12 open at once), with pauses longer
    than the engine's 10 s linger now and then, so reports come out mid-capture."""
    rng = random.Random(seed)
    pending = [_connection(rng, n) for n in range(connections)]
    open_now: list[list[bytes]] = []
    t = 1_700_000_000.0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while pending or open_now:
            while pending and len(open_now) < rng.randint(1, 12):
                open_now.append(pending.pop(0))
            conv = rng.choice(open_now)
            frame = conv.pop(0)
            if not conv:
                open_now.remove(conv)
            if rng.random() < 0.02:
                frame = ETHERNET_IPV4 + bytes(28)  # a broken IPv4 header: skipped
            t += rng.choice((0.0001, 0.002, 0.3, 0.3, 12.5 if rng.random() < 0.05 else 0.01))
            sec, usec = int(t), round((t - int(t)) * 1e6)
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return path


def replay_json(path: Path, jobs: int, **options: object) -> str:
    out = io.StringIO()
    code = run_replay(str(path), fmt="json", out=out, jobs=jobs, **options)
    assert code == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return mixed_capture(tmp_path_factory.mktemp("parallel") / "mixed.pcap", seed=7, connections=600)


def test_the_capture_has_what_makes_the_order_delicate(capture):
    doc = json.loads(replay_json(capture, jobs=1))
    ids = [c["id"] for c in doc["connections"]]
    assert ids != sorted(ids)  # reports come out as connections finish, not by id
    notes = {n for c in doc["connections"] for p in c["packets"] for n in p["notes"]}
    assert "port numbers reused" in notes
    assert {"SF", "REJ", "S0", "RSTO", "OTH"} <= {c["state"] for c in doc["connections"]}
    summary = doc["summary"]
    assert summary["checksum"]["bad"] > 0 and summary["skipped"]
    assert any(c["client"].startswith("[") for c in doc["connections"])  # IPv6


@pytest.mark.parametrize("jobs", [2, 3])
def test_split_output_is_byte_identical(capture, jobs):
    assert replay_json(capture, jobs=jobs) == replay_json(capture, jobs=1)


@pytest.mark.parametrize("options", [{"max_rows": 2}, {"port": 443}], ids=["max-rows", "port"])
def test_split_output_is_byte_identical_with_options(capture, options):
    assert replay_json(capture, jobs=2, **options) == replay_json(capture, jobs=1, **options)


def test_split_output_of_committed_captures_is_byte_identical():
    for path in sorted(DATA.glob("*.pcap")):
        assert replay_json(path, jobs=2) == replay_json(path, jobs=1), path.name


def test_more_jobs_than_connections(tmp_path):
    path = mixed_capture(tmp_path / "small.pcap", seed=3, connections=2)
    assert replay_json(path, jobs=4) == replay_json(path, jobs=1)


def test_the_command_splits_when_asked_and_prints_the_same(capture):
    def command(jobs: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, JOBS_ENV: jobs}
        return subprocess.run(
            [sys.executable, "-m", "l4kit", "replay", str(capture), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )

    one, two = command("1"), command("2")
    assert one.returncode == two.returncode == 0
    assert two.stdout == one.stdout
    assert two.stderr == one.stderr == ""


def test_the_jobs_option_gives_the_same_output(capture):
    def command(*extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != JOBS_ENV}
        return subprocess.run(
            [sys.executable, "-m", "l4kit", "replay", str(capture), "--format", "json", *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )

    one, two = command("--jobs", "1"), command("-j", "2")
    assert one.returncode == two.returncode == 0
    assert two.stdout == one.stdout
    assert json.loads(one.stdout)["summary"]["connections"] > 1


def test_the_jobs_option_reaches_the_replay(capture, monkeypatch):
    from typer.testing import CliRunner

    import l4kit.commands.replay as replay_command
    from l4kit.cli import app

    seen: list[object] = []
    monkeypatch.setattr(
        replay_command, "run_replay", lambda file, **options: seen.append(options["jobs"]) or 0
    )
    monkeypatch.delenv(JOBS_ENV, raising=False)
    runner = CliRunner()
    for args, expected in ((["-j", "3"], 3), (["--jobs", "1"], 1), ([], None)):
        result = runner.invoke(app, ["replay", str(capture), "-f", "json", *args])
        assert result.exit_code == 0, result.output
        assert seen.pop() == expected
    result = runner.invoke(app, ["replay", str(capture), "-f", "json"], env={JOBS_ENV: "2"})
    assert result.exit_code == 0, result.output
    assert seen.pop() == 2


def test_jobs_come_from_the_argument_the_environment_or_the_size(capture, monkeypatch):
    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert replay_jobs(str(capture), 3) == 3
    small = capture.stat().st_size < parallel.PARALLEL_MIN_BYTES
    assert replay_jobs(str(capture)) == (1 if small else min(2, parallel.available_cores()))
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 1)
    assert replay_jobs(str(capture)) == min(2, parallel.available_cores())
    monkeypatch.setenv(JOBS_ENV, "1")
    assert replay_jobs(str(capture)) == 1


def test_a_bad_jobs_setting_is_one_clear_error(capture, monkeypatch):
    from l4kit.errors import ConfigError

    monkeypatch.setenv(JOBS_ENV, "many")
    with pytest.raises(ConfigError, match=JOBS_ENV):
        replay_jobs(str(capture))


def test_a_failing_worker_is_reported_not_hidden():
    def work(shard, emit, pull):
        if shard == 1:
            raise RuntimeError("worker broke")
        return {}

    with pytest.raises(parallel.WorkerError, match="worker broke"):
        parallel.run_sharded(2, work, lambda text: None)


def test_a_worker_that_dies_is_reported():
    def work(shard, emit, pull):
        if shard == 1:
            os._exit(3)
        return {}

    with pytest.raises(parallel.WorkerError, match="ended without its results"):
        parallel.run_sharded(2, work, lambda text: None)


def test_reports_are_merged_in_index_order():
    """Shard 0 pulls each report of the other shards where it belongs."""

    def work(shard, emit, pull):
        for index in range(12):
            owner = index % 3
            if owner == shard:
                emit(index, f"report {index} from {shard}")
            elif pull is not None:
                pull(index, owner)
        return {"shard": shard}

    written: list[str] = []
    counts = parallel.run_sharded(3, work, written.append)
    assert written == [f"report {i} from {i % 3}" for i in range(12)]
    assert counts == [{"shard": 0}, {"shard": 1}, {"shard": 2}]


def test_a_capture_still_being_written_is_read_to_the_same_length_by_every_process(tmp_path, monkeypatch):
    """The worker opens the file after the parent: if a capture grows in between (tcpdump
    still writing), both still read the bytes that were there when the run began."""
    path = mixed_capture(tmp_path / "growing.pcap", seed=11, connections=300)
    before = replay_json(path, jobs=1)
    more = mixed_capture(tmp_path / "more.pcap", seed=12, connections=50).read_bytes()[24:]
    original = parallel.run_sharded

    def grow_then_run(jobs, work, write):
        with open(path, "ab") as f:
            f.write(more)  # the capture grows before the worker opens it
        return original(jobs, work, write)

    monkeypatch.setattr(parallel, "run_sharded", grow_then_run)
    assert replay_json(path, jobs=2) == before


def test_a_gzip_capture_splits_too(tmp_path, capture):
    import gzip

    path = tmp_path / "mixed.pcap.gz"
    path.write_bytes(gzip.compress(capture.read_bytes()))
    one = replay_json(path, jobs=1)
    assert replay_json(path, jobs=2) == one
    assert json.loads(one)["summary"]["packets"] > 1000


def test_a_pipe_is_read_by_one_process(tmp_path):
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    assert replay_jobs(str(fifo), 2) == 1
    assert replay_jobs(str(tmp_path / "missing.pcap"), 2) == 1  # the reader says what is wrong


def test_an_interrupted_parent_ends_its_workers():
    """Ctrl-C: the parent stops (the CLI exits 130) and no worker is left running."""

    def work(shard, emit, pull):
        if shard == 0:
            raise KeyboardInterrupt
        signal.pause()  # a worker still busy
        return {}

    with pytest.raises(KeyboardInterrupt):
        parallel.run_sharded(2, work, lambda text: None)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left, not even a zombie

"""``--dask``: the same output from a Dask cluster as from a local run.

The cluster is a real one on this machine: ``dask scheduler`` and two ``dask worker``
processes (one thread each), started for this module and stopped after it. Each test
runs ``l4kit replay`` as a user would, once locally and once with ``--dask``, and
compares the outputs byte for byte (Parquet: table for table).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_replay_parallel import mixed_capture

pytestmark = pytest.mark.dask

DASK = Path(sys.executable).with_name("dask")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two single-threaded workers."""
    work = tmp_path_factory.mktemp("dask")
    file = work / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(file)],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for n in range(2):
            procs.append(
                subprocess.Popen(
                    [str(DASK), "worker", address, "--nthreads", "1", "--no-dashboard",
                     "--name", f"w{n}", "--local-directory", str(work / f"w{n}")],
                    cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def l4kit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "l4kit", "replay", *args, "--no-progress"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> list[Path]:
    """A capture split by tcpdump -C (stitched: one chain), and another one."""
    work = tmp_path_factory.mktemp("captures")
    big = mixed_capture(work / "big.pcap", seed=31, connections=1500)
    out = work / "rotated"
    out.mkdir()
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    subprocess.run(
        ["tcpdump", "-r", str(big), "-w", str(out / "big.pcap"), "-C", "1", "-Z", "root"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    other = mixed_capture(work / "other.pcap", seed=32, connections=200)
    return [*sorted(out.iterdir()), other]


@pytest.mark.parametrize("fmt", ["json", "zeek", "zeek-json"])
def test_the_cluster_writes_what_a_local_run_writes(scheduler, captures, fmt):
    paths = [str(p) for p in captures]
    local = l4kit(*paths, "--format", fmt)
    # --jobs 2: each chain in two tasks, split by connection as --jobs splits it locally
    remote = l4kit(*paths, "--format", fmt, "--dask", scheduler, "--jobs", "2")
    assert remote.stdout == local.stdout
    assert remote.stderr == local.stderr == ""
    assert len(local.stdout.splitlines()) > 500


def test_the_cluster_writes_the_same_parquet_tables(scheduler, captures, tmp_path):
    import pyarrow.parquet as pq

    paths = [str(p) for p in captures]
    for where, extra in (("local", []), ("remote", ["--dask", scheduler])):
        l4kit(*paths, "-f", "parquet", "-o", str(tmp_path / f"{where}.parquet"),
              "--packets", str(tmp_path / f"{where}-packets.parquet"), *extra)  # fmt: skip
    assert pq.read_table(tmp_path / "remote.parquet").equals(pq.read_table(tmp_path / "local.parquet"))
    remote_packets = pq.read_table(tmp_path / "remote-packets.parquet")
    assert remote_packets.equals(pq.read_table(tmp_path / "local-packets.parquet"))
    assert remote_packets.num_rows > 1000


def test_a_file_a_worker_cannot_read_is_one_line(scheduler, tmp_path, captures):
    missing = tmp_path / "not-shared.pcap"
    result = l4kit(str(captures[-1]), str(missing), "-f", "json", "--dask", scheduler, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "dask worker tcp://127.0.0.1:" in lines[0] and "not-shared.pcap: no such file" in lines[0]
    assert result.stdout == ""


def test_an_unreachable_scheduler_is_one_line(captures):
    result = l4kit(str(captures[-1]), "-f", "json", "--dask", "tcp://127.0.0.1:9", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], result.stderr


def test_the_table_is_not_for_a_cluster(captures):
    result = l4kit(str(captures[-1]), "--dask", "tcp://127.0.0.1:9", check=False)
    assert result.returncode != 0
    assert "--dask writes json, zeek, zeek-json, parquet" in result.stderr

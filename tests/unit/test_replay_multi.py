"""Several captures in one run: the union, rotated files stitched, directories.

A capture split by ``tcpdump -C`` (rotated files) must give the connections of the
unsplit capture; two unrelated captures the connections of each; ``--no-stitch``
keeps files apart; splitting the work between processes changes nothing.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_replay_parallel import mixed_capture

from l4kit.commands.replay import run_replay
from l4kit.replay.runner import STITCH_GAP, Capture, continues, plan_chains

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")


def run_json(paths, **options) -> dict:
    out = io.StringIO()
    inputs = [str(p) for p in paths] if isinstance(paths, list) else str(paths)
    assert run_replay(inputs, fmt="json", out=out, **options) == 0
    return json.loads(out.getvalue())


def without_file(conn: dict) -> dict:
    return {k: v for k, v in conn.items() if k != "file"}


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """About 4 MB: tcpdump -C 1 makes four or five files of it."""
    return mixed_capture(tmp_path_factory.mktemp("multi") / "big.pcap", seed=21, connections=2500)


@pytest.fixture(scope="module")
def rotated(big, tmp_path_factory) -> list[Path]:
    """``big`` as tcpdump -C 1 writes it: big.pcap, big.pcap1, big.pcap2 ..."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    out = tmp_path_factory.mktemp("rotated")
    subprocess.run(
        ["tcpdump", "-r", str(big), "-w", str(out / "big.pcap"), "-C", "1", "-Z", "root"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    files = sorted(out.iterdir(), key=lambda p: (len(p.name), p.name))
    assert len(files) >= 3, files
    return files


@needs_tcpdump
def test_a_capture_split_by_tcpdump_gives_the_connections_of_the_whole(big, rotated):
    whole = run_json(big)
    parts = run_json(list(reversed(rotated)))  # in any order: read in the order of their frames
    assert [without_file(c) for c in parts["connections"]] == [without_file(c) for c in whole["connections"]]
    # connections that began in a later file name it
    assert {c["file"] for c in parts["connections"]} == {str(p) for p in rotated}
    for key in ("packets", "tcp_packets", "connections", "checksum", "skipped", "first_time", "last_time"):
        assert parts["summary"][key] == whole["summary"][key], key
    files = parts["summary"]["files"]
    assert [f["file"] for f in files] == [str(p) for p in rotated]
    assert sum(f["packets"] for f in files) == whole["summary"]["packets"]
    assert files[0]["first_frame"] == 1
    # some connection ran over a file boundary: one connection, not two halves
    boundaries = [f["first_frame"] for f in files[1:]]
    assert any(c["first_frame"] < b <= c["last_frame"] for c in whole["connections"] for b in boundaries)


@needs_tcpdump
def test_a_directory_of_rotated_files_is_read_like_the_files(rotated, big):
    directory = rotated[0].parent
    (directory / "README.txt").write_text("not a capture")
    try:
        by_dir = run_json(directory)
    finally:
        (directory / "README.txt").unlink()
    assert [without_file(c) for c in by_dir["connections"]] == [
        without_file(c) for c in run_json(big)["connections"]
    ]


@needs_tcpdump
def test_no_stitch_keeps_the_files_apart(rotated, big):
    whole = run_json(big)
    apart = run_json(rotated, stitch=False)
    # a connection over a boundary becomes two halves, and ids count from 0 in each file
    assert apart["summary"]["connections"] > whole["summary"]["connections"]
    first_ids = {}
    for conn in apart["connections"]:
        first_ids.setdefault(conn["file"], []).append(conn["id"])
    assert all(min(ids) == 0 for ids in first_ids.values())
    assert apart["summary"]["packets"] == whole["summary"]["packets"]


@needs_tcpdump
@pytest.mark.parametrize("fmt", ["json", "zeek", "zeek-json"])
def test_several_files_split_between_processes_print_the_same(rotated, fmt):
    def text(jobs: int) -> str:
        out = io.StringIO()
        assert run_replay([str(p) for p in rotated], fmt=fmt, out=out, jobs=jobs) == 0
        return out.getvalue()

    assert text(2) == text(1)


def test_two_captures_give_the_union(tmp_path):
    a = mixed_capture(tmp_path / "a.pcap", seed=1, connections=80)
    b = mixed_capture(tmp_path / "b.pcapng.gz", seed=2, connections=60)  # gzip'd pcap, any name
    b.write_bytes(__import__("gzip").compress(b.read_bytes()))
    alone_a, alone_b = run_json(a), run_json(b)
    both = run_json([a, b])
    assert (
        both["summary"]["connections"]
        == alone_a["summary"]["connections"] + alone_b["summary"]["connections"]
    )
    assert both["summary"]["packets"] == alone_a["summary"]["packets"] + alone_b["summary"]["packets"]
    # the two overlap in time: neither continues the other, each keeps its own ids
    first, second = (alone_a, alone_b) if both["file"] == str(a) else (alone_b, alone_a)
    assert both["connections"] == first["connections"] + second["connections"]
    assert {c["file"] for c in both["connections"]} == {str(a), str(b)}


def test_the_order_of_the_inputs_does_not_matter(tmp_path):
    early = mixed_capture(tmp_path / "z-early.pcap", seed=3, connections=20)
    late = tmp_path / "a-late.pcap"
    data = bytearray(mixed_capture(tmp_path / "tmp.pcap", seed=4, connections=20).read_bytes())
    # move every record of the second capture an hour later
    import struct

    pos = 24
    while pos < len(data):
        sec, _, caplen, _ = struct.unpack_from("<IIII", data, pos)
        struct.pack_into("<I", data, pos, sec + 3600)
        pos += 16 + caplen
    late.write_bytes(bytes(data))
    assert run_json([late, early]) == run_json([early, late])
    assert run_json([late, early])["file"] == str(early)


def test_a_bad_capture_among_several_is_one_error_before_any_output(tmp_path):
    from l4kit.errors import CaptureError

    good = mixed_capture(tmp_path / "good.pcap", seed=5, connections=5)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    out = io.StringIO()
    with pytest.raises(CaptureError, match=r"bad\.pcap: not a pcap"):
        run_replay([str(good), str(bad)], fmt="json", out=out)
    assert out.getvalue() == ""


def test_chains_follow_the_gap_rule():
    assert continues(10.0, 10.0) and continues(10.0, 10.0 + STITCH_GAP)
    assert not continues(10.0, 9.999) and not continues(10.0, 10.0 + STITCH_GAP + 0.001)
    assert not continues(None, 10.0)
    a = Capture("a", first_time=0.0, read_first=0.0, read_last=100.0)
    b = Capture("b", first_time=100.5, read_first=100.5, read_last=200.0)
    empty = Capture("e")
    c = Capture("c", first_time=150.0, read_first=150.0, read_last=160.0)  # overlaps b
    d = Capture("d", first_time=10_000.0, read_first=10_000.0, read_last=10_001.0)  # long after
    assert plan_chains([a, b, empty, c, d], stitch=True) == [[a, b, empty], [c], [d]]
    assert plan_chains([a, b, c], stitch=False) == [[a], [b], [c]]


def test_a_progress_bar_on_a_terminal_and_the_same_output(big, tmp_path):
    """On a terminal, standard error shows how far the run got (here forced with
    --progress: the capture is under the size that turns it on by itself); standard
    output is the same as without it."""
    import os
    import pty
    import sys

    master, slave = pty.openpty()
    argv = [sys.executable, "-m", "l4kit", "replay", str(big), "-f", "zeek", "-j", "1"]
    with_bar = subprocess.run(
        [*argv, "--progress"], stdout=subprocess.PIPE, stderr=slave, timeout=300, check=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end is closed and drained
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    shown = screen.decode("utf-8", "replace")
    assert "big.pcap" in shown and "MB" in shown, shown[:500]
    plain = subprocess.run(argv, capture_output=True, timeout=300, check=True)
    assert plain.stderr == b""  # not a terminal: no bar
    assert with_bar.stdout == plain.stdout

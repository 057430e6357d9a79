"""``--format parquet``: the connection and packet tables, and the same numbers in
every format.

The tables are read back with DuckDB and pandas, as docs/analytics.md does; the
queries of that page run here. Counts (connections, packets and bytes per
direction) must agree between json, zeek, zeek-json and parquet on captures that
hold what makes them delicate (port reuse, refusals, resets, bad checksums, IPv6,
midstream starts).
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_replay_parallel import mixed_capture
from test_replay_support import DATA, preview_heads

from l4kit.commands.replay import run_replay
from l4kit.errors import ConfigError, L4kitError
from l4kit.replay import parquet
from l4kit.replay.model import PREVIEW_BYTES, ReplaySummary, preview
from l4kit.replay.zeeklog import CONN_FIELDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return mixed_capture(tmp_path_factory.mktemp("parquet") / "mixed.pcap", seed=9, connections=400)


def write_parquet(capture: Path, tmp_path: Path, **options) -> tuple[Path, Path]:
    conns, packets = tmp_path / "conn.parquet", tmp_path / "packets.parquet"
    assert run_replay(str(capture), fmt="parquet", output=str(conns), packets=str(packets), **options) == 0
    return conns, packets


def text(capture: Path, fmt: str, **options) -> str:
    out = io.StringIO()
    assert run_replay(str(capture), fmt=fmt, out=out, **options) == 0
    return out.getvalue()


def test_every_format_counts_the_same(capture, tmp_path):
    doc = json.loads(text(capture, "json"))
    conns = doc["connections"]
    names = [n for n, _ in CONN_FIELDS]
    tsv = [
        dict(zip(names, ln.split("\t"), strict=True))
        for ln in text(capture, "zeek").splitlines()
        if ln[0] != "#"
    ]
    zjson = [json.loads(ln) for ln in text(capture, "zeek-json").splitlines()]
    table, _ = write_parquet(capture, tmp_path)
    rows = pq.read_table(table).to_pylist()
    assert len(conns) == len(tsv) == len(zjson) == len(rows) == doc["summary"]["connections"]
    assert len(conns) > 300
    for c, t, z, r in zip(conns, tsv, zjson, rows, strict=True):
        uid = c["uid"]
        assert t["uid"] == z["uid"] == r["uid"] == uid
        assert t["community_id"] == z["community_id"] == r["community_id"] == c["community_id"]
        assert int(t["orig_pkts"]) == z["orig_pkts"] == r["orig_pkts"] == c["c2s"]["packets"], uid
        assert int(t["resp_pkts"]) == z["resp_pkts"] == r["resp_pkts"] == c["s2c"]["packets"], uid
        assert int(t["orig_ip_bytes"]) == z["orig_ip_bytes"] == r["orig_ip_bytes"] == c["c2s"]["ip_bytes"]
        assert int(t["resp_ip_bytes"]) == z["resp_ip_bytes"] == r["resp_ip_bytes"] == c["s2c"]["ip_bytes"]
        assert (r["c2s_bytes"], r["s2c_bytes"]) == (c["c2s"]["bytes"], c["s2c"]["bytes"])
        assert (r["c2s_payload"], r["s2c_payload"]) == (c["c2s"]["payload"], c["s2c"]["payload"])
        assert t["conn_state"] == z["conn_state"] == r["conn_state"] == c["state"]
        assert t["history"] == z["history"] == r["history"] == c["history"]
        assert (r["id"], r["file"], r["client_state"], r["server_state"]) == (
            c["id"], c["file"], c["client_state"], c["server_state"],
        )  # fmt: skip
        assert dict(r["analysis"]) == c["analysis"] and r["notes"] == c["notes"]
        assert r["checksum_bad"] == c["checksum"]["bad"]
        assert r["ts"].timestamp() == pytest.approx(c["start"], abs=1e-6)
        host, port = c["client"].rsplit(":", 1)
        assert (r["id.orig_h"], r["id.orig_p"]) == (host.strip("[]"), int(port))


def test_the_packet_table_holds_the_json_packet_rows(capture, tmp_path):
    doc = json.loads(text(capture, "json"))
    _, packets = write_parquet(capture, tmp_path)
    rows = pq.read_table(packets).to_pylist()
    expected = [(c["uid"], p) for c in doc["connections"] for p in c["packets"]]
    assert len(rows) == len(expected)
    for row, (uid, p) in zip(rows, expected, strict=True):
        assert row["uid"] == uid
        for key in ("frame", "dir", "flags", "seq", "ack", "len", "win", "checksum", "notes", "data"):
            assert row[key] == p[key], key
        assert (row["win_scaled"], row["win_scale"]) == (p.get("win_scaled"), p.get("win_scale"))
        assert row["t"] == pytest.approx(p["t"], abs=1e-9)


def test_written_in_batches_with_the_same_rows(capture, tmp_path, monkeypatch):
    whole, whole_packets = write_parquet(capture, tmp_path)
    monkeypatch.setattr(parquet, "BATCH_ROWS", 50)
    (tmp_path / "small").mkdir()
    batched, batched_packets = write_parquet(capture, tmp_path / "small")
    assert pq.ParquetFile(batched).metadata.num_row_groups > 5
    assert pq.read_table(batched).equals(pq.read_table(whole))
    assert pq.read_table(batched_packets).equals(pq.read_table(whole_packets))


def test_split_between_processes_writes_the_same_tables(capture, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = write_parquet(capture, tmp_path / "one", jobs=1)
    two = write_parquet(capture, tmp_path / "two", jobs=2)
    assert pq.read_table(two[0]).equals(pq.read_table(one[0]))
    assert pq.read_table(two[1]).equals(pq.read_table(one[1]))


def test_pandas_reads_both_tables(capture, tmp_path):
    import pandas as pd

    conns, packets = write_parquet(capture, tmp_path)
    frame = pd.read_parquet(conns)
    assert list(frame.columns) == [name for name, _ in parquet.CONNECTION_COLUMNS]
    assert str(frame["ts"].dtype).startswith("datetime64[us")
    assert len(pd.read_parquet(packets)) == pq.ParquetFile(packets).metadata.num_rows


def test_types_every_reader_knows(capture, tmp_path):
    """Spark reads no unsigned integers and no nanosecond timestamps: none are written."""
    import pyarrow as pa

    conns, packets = write_parquet(capture, tmp_path)
    for path in (conns, packets):
        for column in pq.read_schema(path):
            t = column.type
            assert not pa.types.is_unsigned_integer(t), column.name
            if pa.types.is_timestamp(t):
                assert (t.unit, t.tz) == ("us", "UTC"), column.name


def _doc_queries() -> list[str]:
    """The DuckDB queries docs/analytics.md shows."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.S)
    return [b.strip() for b in blocks]


def test_the_duckdb_queries_of_the_docs_run(capture, tmp_path, monkeypatch):
    write_parquet(capture, tmp_path)
    monkeypatch.chdir(tmp_path)  # the docs read conn.parquet and packets.parquet
    queries = _doc_queries()
    assert len(queries) >= 4
    results = [duckdb.sql(q).fetchall() for q in queries]
    assert all(results), "every query finds rows in this capture"
    states = dict(duckdb.sql("select conn_state, count(*) from 'conn.parquet' group by 1").fetchall())
    doc = json.loads(text(capture, "json"))
    expected: dict[str, int] = {}
    for c in doc["connections"]:
        expected[c["state"]] = expected.get(c["state"], 0) + 1
    assert states == expected


def test_parquet_needs_an_output_and_packets_needs_parquet(capture):
    with pytest.raises(ConfigError, match="--output"):
        run_replay(str(capture), fmt="parquet")
    with pytest.raises(ConfigError, match="--packets"):
        run_replay(str(capture), fmt="json", out=io.StringIO(), packets="p.parquet")


def test_a_failed_run_leaves_no_file(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20) + b"\x01\x02")  # a pcap header, then a cut record
    good = mixed_capture(tmp_path / "good.pcap", seed=3, connections=5)
    from l4kit.errors import CaptureError

    with pytest.raises(CaptureError):
        run_replay(
            [str(good), str(tmp_path / "missing.pcap")], fmt="parquet", output=str(tmp_path / "c.parquet")
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pcap", "good.pcap"]


def test_without_pyarrow_the_error_says_how_to_install_it(tmp_path):
    script = (
        "import sys\n"
        "sys.modules['pyarrow'] = None\n"
        "from l4kit.cli import main\n"
        "sys.argv = ['l4kit', 'replay', sys.argv[1], '-f', 'parquet', '-o', sys.argv[2]]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(DATA / "lo-kernel.pcap"), str(tmp_path / "c.parquet")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'l4kit[parquet]'" in lines[0], result.stderr


def test_the_command_writes_the_same_tables_without_importing_numpy_or_pandas(capture, tmp_path):
    """The command imports pyarrow without numpy and pandas (import_pyarrow_alone): it
    writes the same tables as run_replay, neither is imported, both still import
    afterwards."""
    conns, packets = write_parquet(capture, tmp_path)
    out = tmp_path / "cli"
    out.mkdir()
    script = f"""
import sys
from l4kit.cli import app
try:
    app(["replay", {str(capture)!r}, "--format", "parquet", "--output", {str(out / "conn.parquet")!r},
         "--packets", {str(out / "packets.parquet")!r}], prog_name="l4kit")
except SystemExit as exc:
    assert not exc.code, exc.code
assert "pandas" not in sys.modules and "numpy" not in sys.modules
import pandas
print(pandas.__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("pandas")
    assert pq.read_table(out / "conn.parquet").equals(pq.read_table(conns))
    assert pq.read_table(out / "packets.parquet").equals(pq.read_table(packets))


# ---------------------------------------------------------------- the packed values


def _times() -> list[float]:
    """Relative times as replay makes them (differences of two epoch times, multiples of
    2**-22 there), exact halves of a microsecond and of a nanosecond (ties both ways),
    and the bounds of the fast paths."""
    rng = random.Random(21)
    epoch = 1_795_532_896.394930
    times = [0.0, -0.0, 5e-324, 1e-10, 4e-10, 5e-10, 6e-10, 2.5e-7, 0.5e-6, 1.5e-6, 2.5e-6]
    times += [(epoch + rng.uniform(0, 3600)) - epoch for _ in range(3000)]
    times += [k * 2.0**-22 for k in range(0, 1 << 16, 97)]
    times += [m * 2.0**-10 for m in range(1, 4000, 2)]  # x * 1e9 ends in exactly .5
    times += [(2 * m + 1) * 5e-7 for m in range(2000)]  # x * 1e6 near .5, not exactly
    times += [rng.uniform(0, 1e7) for _ in range(2000)]
    times += [4e6, 4.5e6, 4e9, 1e12, -1.5e-6, -3.0, 1e300]
    times += [math.nextafter(t, math.inf) for t in times] + [math.nextafter(t, -math.inf) for t in times]
    return times


def test_times_round_exactly_as_python_does():
    """rounded() takes a shortcut past round(): the same double, sign of zero included,
    for 6 and 9 digits; micros() is round(seconds * 1e6)."""
    for x in _times():
        for digits in (6, 9):
            got, expected = parquet.rounded(x, digits), round(x, digits)
            assert got == expected and math.copysign(1, got) == math.copysign(1, expected), (x, digits)
        if abs(x) < 1e290:
            epoch = 1_795_532_896.394930 + x
            assert parquet.micros(epoch) == round(epoch * 1e6), x
            assert parquet.micros(x) == round(x * 1e6), x


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_times_round_exactly_as_python_does_property(x):
    assert parquet.rounded(x, 9) == round(x, 9)
    assert parquet.rounded(x, 6) == round(x, 6)
    assert parquet.micros(x) == round(x * 1e6)


def test_payload_preview_bytes_are_the_preview_for_every_octet():
    """preview_bytes escapes in C: the same text as preview(), in UTF-8, for each octet
    alone, beside quotes and backslashes, and cut at PREVIEW_BYTES."""
    for head in preview_heads():
        for length in (len(head), len(head) + 1, PREVIEW_BYTES + 1):
            assert parquet.preview_bytes(head, length) == preview(head, length).encode(), (head, length)


def test_packets_survive_the_text_between_processes(capture, tmp_path):
    """A connection's packets as a worker sends them (connection_text) give the rows its
    report gives in this process: nulls, notes, previews, port reuse and all."""
    from l4kit.replay.runner import ReplayOptions, probe, replay_captures

    reports = []
    replay_captures([probe(str(capture))], lambda _i, r: reports.append(r), ReplayOptions())
    assert any(None in (rec[5] for rec in r.rows) for r in reports)  # ack nulls
    assert any(rec[9] for r in reports for rec in r.rows)  # notes
    assert any(rec[6] for r in reports for rec in r.rows)  # payload
    paths = {}
    for how in ("values", "text"):
        paths[how] = (tmp_path / f"{how}.parquet", tmp_path / f"{how}-packets.parquet")
        writer = parquet.ParquetWriter(str(paths[how][0]), str(paths[how][1]))
        for r in reports:
            if how == "values":
                writer(r)
            else:
                writer.write_text(writer.format(r))
        writer.close(ReplaySummary(file=str(capture)))
    for values, text in zip(paths["values"], paths["text"], strict=True):
        assert pq.read_table(text).equals(pq.read_table(values))
    packets = pq.read_table(paths["text"][1])
    packets.validate(full=True)
    assert packets.num_rows == sum(len(r.rows) for r in reports)
    assert packets["ack"].null_count == sum(rec[5] is None for r in reports for rec in r.rows)


def test_a_cut_packet_text_is_an_error_not_rows(tmp_path):
    writer = parquet.ParquetWriter(str(tmp_path / "c.parquet"), str(tmp_path / "p.parquet"))
    row = [0.0] * len(parquet.CONNECTION_COLUMNS)
    with pytest.raises(L4kitError, match="cut short"):
        writer.write_text(json.dumps([row, [3, [], [], []]]) + " AAAA")
    writer.discard()
    assert not list(tmp_path.iterdir())

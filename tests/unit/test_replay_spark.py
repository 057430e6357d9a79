"""Spark reads the Parquet tables, as docs/analytics.md shows (on demand: ``pytest -m spark``).

Spark needs a Java runtime and the ``pyspark`` package (about 300 MB), which the
project does not install: this test is excluded from the default run and
selected with ``-m spark`` on a machine that has both.
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_replay_parquet import text, write_parquet
from test_replay_support import DATA

pytestmark = pytest.mark.spark


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")
def test_spark_reads_both_tables_as_the_docs_show(tmp_path):
    pyspark = pytest.importorskip("pyspark.sql")
    capture = DATA / "lo-kernel.pcap"
    conns, packets = write_parquet(capture, tmp_path)
    spark = (
        pyspark.SparkSession.builder.master("local[1]")
        .appName("l4kit")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        df = spark.read.parquet(str(conns))
        states = {row["conn_state"]: row["count"] for row in df.groupBy("conn_state").count().collect()}
        doc = json.loads(text(capture, "json"))
        expected: dict[str, int] = {}
        for c in doc["connections"]:
            expected[c["state"]] = expected.get(c["state"], 0) + 1
        assert states == expected
        hosts = df.selectExpr("`id.orig_h` as host", "orig_ip_bytes").groupBy("host").sum().collect()
        assert sum(row[1] for row in hosts) == sum(c["c2s"]["ip_bytes"] for c in doc["connections"])
        joined = spark.read.parquet(str(packets)).join(df, "uid").select("flags", "client_after").collect()
        assert len(joined) == sum(len(c["packets"]) for c in doc["connections"])
    finally:
        spark.stop()

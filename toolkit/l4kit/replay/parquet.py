"""``l4kit replay --format parquet``: the connections (and packets) as Parquet tables.

One row per connection with conn.log's columns under Zeek's names
(:mod:`l4kit.replay.zeeklog`), then l4kit's own; with ``--packets PATH``, a second
file with one row per packet each connection keeps (``--max-rows``), the rows of
the JSON output. Both are written with pyarrow (the ``parquet`` extra), imported
only here, in batches of :data:`BATCH_ROWS` rows, each a row group: memory stays that
of one batch however large the capture. docs/analytics.md lists the columns and
shows queries with DuckDB, pandas and Spark.

Types are chosen for every reader: signed integers (Spark has no unsigned types),
timestamps in microseconds with time zone UTC (Spark reads no nanosecond
timestamps; Zeek's ``ts`` has six decimals), seconds as doubles, lists and maps of
strings. A file is written under a temporary name beside its path and renamed
when complete, so a reader never sees half of one.

Rows travel between processes (``--jobs``, ``--dask``) as the JSON text of their
values (:func:`connection_text`); the writer turns either form into the same rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from l4kit.core.states import State
from l4kit.errors import L4kitError
from l4kit.replay.flowid import connection_community_id, connection_uid
from l4kit.replay.model import (
    DIRECTIONS,
    FLAG_LETTERS,
    ConnectionReport,
    ReplaySummary,
    checksum_counts,
    preview,
)
from l4kit.replay.zeeklog import zeek_addr

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 16_384
"""Rows of a table written at a time (one row group each); read when a table is
opened (not ``Final``, which the compiled build would fold into the code)."""

INSTALL_HINT: Final = "pip install 'l4kit[parquet]'"

# (name, type) of each column; types by name, resolved when pyarrow is imported.
CONNECTION_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("ts", "timestamp"),
    ("uid", "string"),
    ("id.orig_h", "string"),
    ("id.orig_p", "int32"),
    ("id.resp_h", "string"),
    ("id.resp_p", "int32"),
    ("proto", "string"),
    ("service", "string"),
    ("duration", "float64"),
    ("orig_bytes", "int64"),
    ("resp_bytes", "int64"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "int64"),
    ("history", "string"),
    ("orig_pkts", "int64"),
    ("orig_ip_bytes", "int64"),
    ("resp_pkts", "int64"),
    ("resp_ip_bytes", "int64"),
    ("tunnel_parents", "list<string>"),
    ("community_id", "string"),
    # l4kit's own
    ("file", "string"),
    ("id", "int64"),
    ("client_state", "string"),
    ("server_state", "string"),
    ("last_ts", "timestamp"),
    ("first_frame", "int64"),
    ("last_frame", "int64"),
    ("c2s_bytes", "int64"),
    ("s2c_bytes", "int64"),
    ("c2s_payload", "int64"),
    ("s2c_payload", "int64"),
    ("checksum_ok", "int64"),
    ("checksum_bad", "int64"),
    ("checksum_offloaded", "int64"),
    ("checksum_unverified", "int64"),
    ("analysis", "map<string,int64>"),
    ("notes", "list<string>"),
    ("packets_omitted", "int64"),
)

PACKET_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("uid", "string"),
    ("file", "string"),
    ("id", "int64"),
    ("frame", "int64"),
    ("ts", "timestamp"),
    ("t", "float64"),
    ("dir", "dir"),
    ("flags", "flags"),
    ("seq", "int64"),
    ("ack", "int64"),
    ("len", "int64"),
    ("win", "int32"),
    ("win_scaled", "int64"),
    ("win_scale", "int32"),
    ("checksum", "checksum"),
    ("notes", "list<string>"),
    ("data", "string"),
    ("client_before", "state"),
    ("client_after", "state"),
    ("server_before", "state"),
    ("server_after", "state"),
)

# Columns of a few names are dictionary-encoded strings (what Parquet stores them as
# anyway): columns hold each value's number in its dictionary, cheaper to make per packet
# and to convert than the text. Readers see strings (pandas: a categorical).
_STATES: Final = tuple(State)
_CHECKSUMS: Final = tuple(checksum_counts())
DICTIONARIES: Final[dict[str, tuple[str, ...]]] = {
    "dir": DIRECTIONS,
    "flags": FLAG_LETTERS,
    "checksum": _CHECKSUMS,
    "state": tuple(s.value for s in _STATES),
}
# by the member's value: an Enum member's own __hash__ is a Python function
_STATE_INDEX: Final = {s.value: i for i, s in enumerate(_STATES)}
_CHECKSUM_INDEX: Final = {name: i for i, name in enumerate(_CHECKSUMS)}


def import_pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or one clear error saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise L4kitError(f"--format parquet needs pyarrow: {INSTALL_HINT}") from None
    return pyarrow, pyarrow.parquet


class _NoPandas:
    """An import finder that says pandas is not there."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas is not needed to write Parquet")


def skip_pandas_probe() -> None:
    """Spare the process pyarrow's probe for pandas. pyarrow's first conversion of
    Python values imports pandas, when it is installed, to ask whether they are a pandas
    object: 0.7-1.0 s of the 2-4 s a 200,000-packet capture takes, and numpy's BLAS
    threads. l4kit's columns are lists; so pyarrow makes its first conversion here
    while pandas cannot be imported, and takes it for absent from then on. For the
    ``l4kit`` command only: in this process ``Table.to_pandas()`` no longer works
    (pandas itself still imports)."""
    if "pandas" in sys.modules:
        return
    pa, _ = import_pyarrow()
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)


def schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    pa, _ = import_pyarrow()
    types = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "list<string>": pa.list_(pa.string()),
        "map<string,int64>": pa.map_(pa.string(), pa.int64()),
    }
    for kind in DICTIONARIES:
        types[kind] = pa.dictionary(pa.int16(), pa.string())
    return pa.schema([pa.field(name, types[kind]) for name, kind in columns])


# ---------------------------------------------------------------- rows


def connection_row(r: ConnectionReport, uid: str | None = None) -> list[Any]:
    """The values of one connection, in :data:`CONNECTION_COLUMNS` order (times as
    seconds since the epoch; the writer makes them timestamps)."""
    ck = r.checksum
    return [
        r.start,
        uid if uid is not None else connection_uid(r),
        zeek_addr(r.client_ip),
        r.client_port,
        zeek_addr(r.server_ip),
        r.server_port,
        "tcp",
        None,
        r.zeek_duration,
        r.orig_bytes,
        r.resp_bytes,
        r.state,
        None,
        None,
        r.missed_bytes,
        r.history,
        r.c2s.packets,
        r.c2s.ip_bytes,
        r.s2c.packets,
        r.s2c.ip_bytes,
        None,
        connection_community_id(r),
        r.file,
        r.id,
        r.client_state,
        r.server_state,
        r.end,
        r.first_frame,
        r.last_frame,
        r.c2s.bytes,
        r.s2c.bytes,
        r.c2s.payload,
        r.s2c.payload,
        ck["ok"],
        ck["bad"],
        ck["offloaded"],
        ck.get("unverified", 0),
        dict(sorted(r.analysis.items())),
        list(r.notes),
        r.rows_omitted,
    ]


def packet_columns(r: ConnectionReport, uid: str | None = None) -> list[list[Any]]:
    """The packets the connection keeps, one list per column in :data:`PACKET_COLUMNS`
    order (the dictionary-encoded columns as numbers). Column by column: one ``zip``
    turns the records around, and pyarrow takes each column as it is."""
    n = len(r.rows)
    if not n:
        return [[] for _ in PACKET_COLUMNS]
    uid = uid if uid is not None else connection_uid(r)
    start, digits = r.start, r.time_digits  # a difference of two frame times has digits the capture has not
    (frame, t, dirs, flags, seq, ack, length, win, checksum, notes, head,
     client_before, client_after, server_before, server_after, scale) = zip(*r.rows, strict=True)  # fmt: skip
    state, checksum_index = _STATE_INDEX, _CHECKSUM_INDEX
    return [
        [uid] * n,
        [r.file] * n,
        [r.id] * n,
        list(frame),
        [start + x for x in t],
        [round(x, digits) for x in t],
        list(dirs),
        list(flags),
        list(seq),
        list(ack),
        list(length),
        list(win),
        [w << s if s >= 0 else None for w, s in zip(win, scale, strict=True)],
        [s if s >= 0 else None for s in scale],
        [checksum_index[c] for c in checksum],
        list(notes),
        [preview(h, m) if m else "" for h, m in zip(head, length, strict=True)],
        [state[s._value_] for s in client_before],
        [state[s._value_] for s in client_after],
        [state[s._value_] for s in server_before],
        [state[s._value_] for s in server_after],
    ]


def connection_text(r: ConnectionReport, with_packets: bool) -> str:
    """One connection's rows as one line of JSON text: ``[row, [packet columns]]``."""
    uid = connection_uid(r)
    columns = packet_columns(r, uid) if with_packets else []
    return json.dumps([connection_row(r, uid), columns], separators=(",", ":"))


# ---------------------------------------------------------------- writing


class _Table:
    """One Parquet file written a batch at a time, under a temporary name until closed.
    Values are kept a list per column: pyarrow converts a column, not a row."""

    def __init__(self, path: str, columns: tuple[tuple[str, str], ...]) -> None:
        _, pq = import_pyarrow()
        self.path = Path(path)
        self.columns = columns
        self.schema = schema(columns)
        self.values: list[list[Any]] = [[] for _ in columns]
        self.pending = 0
        self.batch_rows = BATCH_ROWS
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.writer = pq.ParquetWriter(str(self.tmp), self.schema)
        except OSError as exc:
            raise L4kitError(f"cannot write {path}: {exc.strerror or exc}") from None

    def add(self, row: list[Any]) -> None:
        for column, value in zip(self.values, row, strict=True):
            column.append(value)
        self.pending += 1
        if self.pending >= self.batch_rows:
            self.flush()

    def extend(self, columns: list[list[Any]]) -> None:
        if not columns or not columns[0]:
            return
        for column, values in zip(self.values, columns, strict=True):
            column.extend(values)
        self.pending += len(columns[0])
        if self.pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pa, _ = import_pyarrow()
        import pyarrow.compute as pc

        arrays = []
        for (_name, kind), column, values in zip(self.columns, self.schema, self.values, strict=True):
            if kind == "timestamp":  # seconds since the epoch, to the microsecond
                micros = pc.round(pc.multiply(pa.array(values, type=pa.float64()), 1e6))
                arrays.append(micros.cast(pa.int64()).cast(column.type))
            elif kind in DICTIONARIES:
                indices = pa.array(values, type=pa.int16())
                arrays.append(pa.DictionaryArray.from_arrays(indices, DICTIONARIES[kind]))
            else:
                arrays.append(pa.array(values, type=column.type))
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.values = [[] for _ in self.columns]
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.tmp.replace(self.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class ParquetWriter:
    """The connection table at ``path`` and, when ``packets`` names a file, the
    packet table there; rows come from reports (``__call__``) or from their JSON
    text made elsewhere (:meth:`write_text`)."""

    def __init__(self, path: str, packets: str | None = None) -> None:
        self.connections = _Table(path, CONNECTION_COLUMNS)
        self.packets: _Table | None = None
        try:
            self.packets = _Table(packets, PACKET_COLUMNS) if packets is not None else None
        except BaseException:
            self.connections.discard()
            raise
        self.with_packets = packets is not None

    def start(self, first_time: float | None) -> None:
        """Nothing to write before the rows (the common writer interface)."""

    def format(self, report: ConnectionReport) -> str:
        return connection_text(report, self.with_packets)

    def __call__(self, report: ConnectionReport) -> None:
        uid = connection_uid(report)
        self.connections.add(connection_row(report, uid))
        if self.packets is not None:
            self.packets.extend(packet_columns(report, uid))

    def write_text(self, text: str) -> None:
        row, packets = json.loads(text)
        self.connections.add(row)
        if self.packets is not None:
            self.packets.extend(packets)

    def close(self, summary: ReplaySummary) -> None:
        self.connections.close()
        if self.packets is not None:
            self.packets.close()

    def discard(self) -> None:
        """The run failed: remove what was written."""
        self.connections.discard()
        if self.packets is not None:
            self.packets.discard()

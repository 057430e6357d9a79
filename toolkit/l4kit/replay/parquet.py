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

The packet table is most of the work (a row per packet, where JSON writes a line of
text). Its values are packed per connection into little-endian machine integers and
doubles (:func:`packet_parts`, one :mod:`struct` call), appended column by column to
buffers, and handed to pyarrow as they are (``Array.from_buffers``), without pyarrow
looking at each value; pyarrow then encodes each batch in a thread of its own while the
capture is read on. Rows travel between processes (``--jobs``, ``--dask``) as the JSON
text of the connection row and those packed values in base64 (:func:`connection_text`);
the writer takes either form and writes the same rows.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import queue
import struct
import sys
import threading
from array import array
from codecs import escape_encode
from itertools import accumulate, chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from l4kit.core.states import State
from l4kit.errors import L4kitError
from l4kit.replay.flowid import connection_community_id, connection_uid
from l4kit.replay.model import (
    DIRECTIONS,
    FLAG_LETTERS,
    PREVIEW_BYTES,
    R_WSCALE,
    ConnectionReport,
    ReplaySummary,
    checksum_counts,
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

# The packet columns packed per connection (:func:`packet_parts`), in this order, each
# as a run of little-endian struct codes: q int64, d double, i int32, h int16 (the
# dictionaries' indices). ``data`` is the length of each row's text here; the texts
# follow the packed values. uid, file and id are the connection's (one value each);
# notes travel apart (few rows have any).
PACKED: Final[tuple[tuple[str, str], ...]] = (
    ("frame", "q"),
    ("ts", "q"),
    ("t", "d"),
    ("dir", "h"),
    ("flags", "h"),
    ("seq", "q"),
    ("ack", "q"),
    ("len", "q"),
    ("win", "i"),
    ("win_scaled", "q"),
    ("win_scale", "i"),
    ("checksum", "h"),
    ("client_before", "h"),
    ("client_after", "h"),
    ("server_before", "h"),
    ("server_after", "h"),
    ("data", "i"),
)
_FIELDS: Final = R_WSCALE + 1  # of a PacketRecord
_PACKED_SIZES: Final = tuple(struct.calcsize(code) for _, code in PACKED)
_ROW_BYTES: Final = sum(_PACKED_SIZES)
_PACKERS: dict[int, struct.Struct] = {}
_PACKERS_LIMIT: Final = 4096  # connections keep up to --max-rows rows: any count is possible
_ELLIPSIS: Final = "…".encode()
_QUOTE: Final = 39  # '
_LITTLE_ENDIAN: Final = sys.byteorder == "little"

_REPEATING: Final = (
    "uid", "file", "id", "dir", "flags", "len", "win", "win_scaled", "win_scale", "checksum", "notes",
    "client_before", "client_after", "server_before", "server_after",
)  # fmt: skip

# Where the packet table's uid, file and id come from in a connection row.
_PACKET_KINDS: Final = dict(PACKET_COLUMNS)
_UID: Final = [name for name, _ in CONNECTION_COLUMNS].index("uid")
_FILE: Final = [name for name, _ in CONNECTION_COLUMNS].index("file")
_ID: Final = [name for name, _ in CONNECTION_COLUMNS].index("id")


def import_pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or one clear error saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise L4kitError(f"--format parquet needs pyarrow: {INSTALL_HINT}") from None
    return pyarrow, pyarrow.parquet


class _Unwanted:
    """An import finder that says numpy and pandas are not there."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in ("numpy", "pandas"):
            raise ImportError("numpy and pandas are not needed to write Parquet")


def import_pyarrow_alone() -> None:
    """Import pyarrow for the ``l4kit`` command without numpy and pandas, which writing
    Parquet needs neither of. pyarrow imports numpy when it is installed (0.1-0.3 s,
    more than pyarrow itself), and its first conversion of Python values imports pandas
    to ask whether they are a pandas object (0.7-1.0 s of the 2-4 s a 200,000-packet
    capture takes, and numpy's BLAS threads). Imported while neither can be, pyarrow
    takes both for absent from then on. For the ``l4kit`` command only: in this process
    pyarrow no longer converts to or from numpy or pandas (both still import)."""
    if "pyarrow" in sys.modules or "numpy" in sys.modules or "pandas" in sys.modules:
        return
    finder = _Unwanted()
    sys.meta_path.insert(0, finder)
    try:
        pa, _ = import_pyarrow()
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


# ---------------------------------------------------------------- values


def micros(seconds: float) -> int:
    """``seconds`` in whole microseconds, rounded half to even: ``round(seconds * 1e6)``
    (what pyarrow's ``round`` of the double gives too) without the call."""
    y = seconds * 1e6
    if 0.0 <= y < 4e15:  # below 2**52: every double has its integer and its half
        n = int(y)
        rest = y - n  # exact
        if rest > 0.5 or (rest == 0.5 and n & 1):
            n += 1
        return n
    return round(y)


def rounded(x: float, digits: int) -> float:
    """``round(x, digits)`` for 6 or 9 digits, at a tenth of its cost where that is
    certain to be the same double: Python rounds the exact decimal value of ``x``
    (half to even) and returns the double nearest to the result. Here ``x * 10**digits``
    is a double within a relative 2**-53 of the exact product; unless that is within
    that margin of a half, both round to the same integer ``n``, and ``n / 10**digits``
    (both exact, the quotient correctly rounded) is the double nearest to the result.
    Near a half, and for zero, negative or huge values, Python's ``round``."""
    unit = 1e9 if digits == 9 else 1e6 if digits == 6 else 0.0
    y = x * unit
    if 0.0 < y < 4e15:
        n = int(y)
        rest = y - n
        if abs(rest - 0.5) > y * 4.5e-16:
            return (n + 1 if rest > 0.5 else n) / unit
    return round(x, digits)


def preview_bytes(head: bytes, length: int) -> bytes:
    """:func:`~l4kit.replay.model.preview` as UTF-8, escaped in C: Python writes bytes
    with the same escapes (``codecs.escape_encode``) but for ``'``, which the preview
    leaves as it is."""
    head = head[:PREVIEW_BYTES]
    text: bytes = escape_encode(head)[0]
    if _QUOTE in head:
        text = text.replace(b"\\'", b"'")
    return text + _ELLIPSIS if length > PREVIEW_BYTES else text


def _state_indices(states: list[Any]) -> list[int]:
    """Each state's number in its dictionary; runs of the same state are the rule."""
    out: list[int] = []
    last: Any = None
    index = 0
    for state in states:
        if state is not last:
            index = _STATE_INDEX[state._value_]
            last = state
        out.append(index)
    return out


def _checksum_indices(verdicts: list[Any]) -> list[int]:
    out: list[int] = []
    last: Any = None
    index = 0
    for verdict in verdicts:
        if verdict is not last:
            index = _CHECKSUM_INDEX[verdict]
            last = verdict
        out.append(index)
    return out


def _packer(rows: int) -> struct.Struct:
    packer = _PACKERS.get(rows)
    if packer is None:
        packer = struct.Struct("<" + "".join(f"{rows}{code}" for _, code in PACKED))
        if len(_PACKERS) < _PACKERS_LIMIT:
            _PACKERS[rows] = packer
    return packer


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


PacketParts = tuple[int, bytes, list[int], list[int], list[tuple[int, tuple[str, ...]]]]
"""The packets a connection keeps, ready for the packet table: ``(rows, packed,
ack_nulls, scale_nulls, notes)``: the values of :data:`PACKED`, column after column,
then the rows' data texts one after the other; the rows whose ``ack`` is null (no ACK
flag), those whose ``win_scaled`` and ``win_scale`` are (the capture does not show the
scale); ``(row, notes)`` of the rows with notes."""


def packet_parts(r: ConnectionReport) -> PacketParts:
    """The packets the connection keeps as :data:`PacketParts`. Column by column: slices
    of the records laid end to end turn them around, one ``struct`` call packs them."""
    rows = r.rows
    n = len(rows)
    if not n:
        return 0, b"", [], [], []
    start, digits = r.start, r.time_digits  # a difference of two frame times has digits the capture has not
    # The records one after the other, a column every _FIELDS items: three times as fast
    # as zip(*rows), which makes a tuple per column through an iterator per record.
    flat: list[Any] = list(chain.from_iterable(rows))
    (frame, t, dirs, flags, seq, ack, length, win, checksum, notes, head,
     client_before, client_after, server_before, server_after, scale) = (
        flat[k::_FIELDS] for k in range(_FIELDS)
    )  # fmt: skip
    acks: list[Any] = ack
    ack_nulls: list[int] = []
    if None in ack:
        ack_nulls = [i for i, a in enumerate(ack) if a is None]
        acks = [0 if a is None else a for a in ack]
    scales: list[Any] = scale
    scale_nulls: list[int] = []
    if min(scale) < 0:
        scale_nulls = [i for i, s in enumerate(scale) if s < 0]
        scales = [s if s >= 0 else 0 for s in scale]
    scaled = [w << s for w, s in zip(win, scales, strict=True)]
    texts = [preview_bytes(h, m) if m else b"" for h, m in zip(head, length, strict=True)]
    packed = _packer(n).pack(
        *frame,
        *[micros(start + x) for x in t],
        *[rounded(x, digits) for x in t],
        *dirs,
        *flags,
        *seq,
        *acks,
        *length,
        *win,
        *scaled,
        *scales,
        *_checksum_indices(checksum),
        *_state_indices(client_before),
        *_state_indices(client_after),
        *_state_indices(server_before),
        *_state_indices(server_after),
        *[len(text) for text in texts],
    )
    with_notes = [(i, x) for i, x in enumerate(notes) if x] if any(notes) else []
    return n, packed + b"".join(texts), ack_nulls, scale_nulls, with_notes


def connection_text(r: ConnectionReport, with_packets: bool) -> str:
    """One connection's rows as one line of text, made in any process (``--jobs``, a
    Dask worker) for :meth:`ParquetWriter.write_text`: the JSON of ``[row, [rows,
    ack_nulls, scale_nulls, notes]]``, a space, and the packed values in base64."""
    uid = connection_uid(r)
    row = connection_row(r, uid)
    if not with_packets:
        return json.dumps([row, None], separators=(",", ":")) + " "
    n, packed, ack_nulls, scale_nulls, notes = packet_parts(r)
    head = json.dumps([row, [n, ack_nulls, scale_nulls, notes]], separators=(",", ":"))
    return head + " " + binascii.b2a_base64(packed, newline=False).decode("ascii")


# ---------------------------------------------------------------- writing


class _File:
    """One Parquet file under a temporary name until closed. Batches are encoded and
    written by a thread of their own (pyarrow lets go of the GIL meanwhile), started with
    the first batch, so after any worker process was forked; one batch waits for it at
    most."""

    def __init__(self, path: str, schema: pa.Schema, **options: Any) -> None:
        _, pq = import_pyarrow()
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.writer = pq.ParquetWriter(str(self.tmp), schema, **options)
        except OSError as exc:
            raise L4kitError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.batches: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _write(self, batch: Any) -> None:
        try:
            self.writer.write_batch(batch)
        except OSError as exc:
            raise L4kitError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def _run(self) -> None:
        while True:
            batch = self.batches.get()
            if batch is None:
                return
            if self.error is None:
                try:
                    self._write(batch)
                except BaseException as exc:  # raised in the main thread, at its next write
                    self.error = exc

    def write(self, batch: Any) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="l4kit-parquet", daemon=True)
            self.thread.start()
        self.batches.put(batch)

    def _join(self) -> None:
        if self.thread is not None:
            self.batches.put(None)
            self.thread.join()
            self.thread = None

    def close(self) -> None:
        self._join()
        if self.error is not None:
            raise self.error
        self.writer.close()
        self.tmp.replace(self.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._join()
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class _ConnectionTable:
    """The connection table, a list per column: pyarrow converts a column, not a row."""

    def __init__(self, path: str) -> None:
        self.schema = schema(CONNECTION_COLUMNS)
        self.file = _File(path, self.schema)
        self.values: list[list[Any]] = [[] for _ in CONNECTION_COLUMNS]
        self.pending = 0
        self.batch_rows = BATCH_ROWS

    def add(self, row: list[Any]) -> None:
        for column, value in zip(self.values, row, strict=True):
            column.append(value)
        self.pending += 1
        if self.pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pa, _ = import_pyarrow()
        arrays = []
        for (_name, kind), column, values in zip(CONNECTION_COLUMNS, self.schema, self.values, strict=True):
            if kind == "timestamp":  # seconds since the epoch, to the microsecond
                arrays.append(pa.array([micros(x) for x in values], type=column.type))
            else:
                arrays.append(pa.array(values, type=column.type))
        self.file.write(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.values = [[] for _ in CONNECTION_COLUMNS]
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.file.close()


def _string_array(pa: Any, data: bytes | bytearray, ends: array[int], size: int) -> Any:
    offsets = array("i", [0])
    offsets.extend(ends)
    return pa.Array.from_buffers(pa.string(), size, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _extend_ends(ends: array[int], length: int, count: int) -> None:
    """The end offsets of ``count`` strings of ``length`` octets each, after those in ``ends``."""
    end = ends[-1] if ends else 0
    if length:
        ends.extend(range(end + length, end + length * count + 1, length))
    else:
        ends.extend([end] * count)


def _native(code: str, values: bytes | bytearray) -> bytes:
    """Little-endian ``values`` in this machine's order."""
    swapped = array(code)
    swapped.frombytes(values)
    swapped.byteswap()
    return swapped.tobytes()


def _validity(pa: Any, size: int, nulls: list[int]) -> Any:
    """The validity bitmap of ``size`` values of which those at ``nulls`` are null."""
    if not nulls:
        return None
    bits = bytearray(b"\xff" * ((size + 7) >> 3))
    for i in nulls:
        bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF
    return pa.py_buffer(bits)


class _PacketTable:
    """The packet table: :data:`PacketParts` appended column by column to byte buffers,
    made into arrays without converting a value (``Array.from_buffers``)."""

    def __init__(self, path: str) -> None:
        pa, _ = import_pyarrow()
        self.schema = schema(PACKET_COLUMNS)
        self.types = {field.name: field.type for field in self.schema}
        self.dictionaries = {
            kind: pa.array(values, type=pa.string()) for kind, values in DICTIONARIES.items()
        }
        # Parquet's dictionary encoding where values repeat; the frame numbers, times,
        # sequence numbers and previews are mostly distinct: plain is smaller there and
        # 10 % faster to write in all.
        self.file = _File(path, self.schema, use_dictionary=list(_REPEATING))
        self.batch_rows = BATCH_ROWS
        self._start()

    def _start(self) -> None:
        self.columns = [bytearray() for _ in PACKED]
        self.texts = bytearray()
        self.ack_nulls: list[int] = []
        self.scale_nulls: list[int] = []
        self.notes: list[tuple[int, Any]] = []
        # uid, file, id and rows of each connection in the batch
        self.owners: list[tuple[str, str, int, int]] = []
        self.pending = 0

    def add(self, uid: str, file: str, conn_id: int, parts: PacketParts) -> None:
        n, packed, ack_nulls, scale_nulls, notes = parts
        if not n:
            return
        base = self.pending
        view = memoryview(packed)
        at = 0
        for buffer, size in zip(self.columns, _PACKED_SIZES, strict=True):
            end = at + n * size
            buffer += view[at:end]  # noqa: PLW2901 - the same bytearray, extended
            at = end
        self.texts += view[at:]
        if ack_nulls:
            self.ack_nulls.extend([base + i for i in ack_nulls])
        if scale_nulls:
            self.scale_nulls.extend([base + i for i in scale_nulls])
        if notes:
            self.notes.extend([(base + i, x) for i, x in notes])
        self.owners.append((uid, file, conn_id, n))
        self.pending = base + n
        if self.pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        size = self.pending
        if not size:
            return
        pa, _ = import_pyarrow()
        types = self.types
        arrays: dict[str, Any] = {}
        nulls = {"ack": self.ack_nulls, "win_scaled": self.scale_nulls, "win_scale": self.scale_nulls}
        for (name, code), buffer in zip(PACKED, self.columns, strict=True):
            values = buffer if _LITTLE_ENDIAN else _native(code, buffer)
            kind = _PACKET_KINDS[name]
            if name == "data":  # the texts' lengths
                lengths = array("i")
                lengths.frombytes(values)
                arrays[name] = _string_array(pa, self.texts, array("i", accumulate(lengths)), size)
            elif kind in DICTIONARIES:
                indices = pa.Array.from_buffers(pa.int16(), size, [None, pa.py_buffer(values)])
                arrays[name] = pa.DictionaryArray.from_arrays(indices, self.dictionaries[kind])
            else:
                validity = _validity(pa, size, nulls.get(name, []))
                arrays[name] = pa.Array.from_buffers(types[name], size, [validity, pa.py_buffer(values)])
        notes: list[Any] = [()] * size
        for i, x in self.notes:
            notes[i] = x
        arrays["notes"] = pa.array(notes, type=types["notes"])
        arrays.update(self._owner_columns(pa, size))
        self.file.write(pa.RecordBatch.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema))
        self._start()

    def _owner_columns(self, pa: Any, size: int) -> dict[str, Any]:
        """uid, file and id: each connection's value once per row."""
        uids, files, ids = [], [], []
        uid_ends: array[int] = array("i")
        file_ends: array[int] = array("i")
        for uid, file, conn_id, n in self.owners:
            u, f = uid.encode(), file.encode()
            uids.append(u * n)
            files.append(f * n)
            ids.append(struct.pack("<q", conn_id) * n)
            _extend_ends(uid_ends, len(u), n)
            _extend_ends(file_ends, len(f), n)
        id_buffer = b"".join(ids)
        if not _LITTLE_ENDIAN:
            id_buffer = _native("q", id_buffer)
        return {
            "uid": _string_array(pa, b"".join(uids), uid_ends, size),
            "file": _string_array(pa, b"".join(files), file_ends, size),
            "id": pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(id_buffer)]),
        }

    def close(self) -> None:
        self.flush()
        self.file.close()


class ParquetWriter:
    """The connection table at ``path`` and, when ``packets`` names a file, the
    packet table there; rows come from reports (``__call__``) or from their text
    made elsewhere (:meth:`write_text`)."""

    def __init__(self, path: str, packets: str | None = None) -> None:
        self.connections = _ConnectionTable(path)
        self.packets: _PacketTable | None = None
        try:
            self.packets = _PacketTable(packets) if packets is not None else None
        except BaseException:
            self.connections.file.discard()
            raise
        self.with_packets = packets is not None

    def start(self, first_time: float | None) -> None:
        """Nothing to write before the rows (the common writer interface)."""

    def format(self, report: ConnectionReport) -> str:
        return connection_text(report, self.with_packets)

    def write_report(self, report: ConnectionReport) -> None:
        """A report of this process in a split run (``replay_split``'s ``write_report``)."""
        self(report)

    def __call__(self, report: ConnectionReport) -> None:
        uid = connection_uid(report)
        self.connections.add(connection_row(report, uid))
        if self.packets is not None:
            self.packets.add(uid, report.file, report.id, packet_parts(report))

    def write_text(self, text: str) -> None:
        head, _, packed = text.rpartition(" ")
        row, parts = json.loads(head)
        self.connections.add(row)
        if self.packets is not None and parts:
            n, ack_nulls, scale_nulls, notes = parts
            values = binascii.a2b_base64(packed)
            if len(values) < n * _ROW_BYTES:
                raise L4kitError(f"a connection's packets came cut short ({len(values)} bytes for {n} rows)")
            with_notes = [(i, tuple(x)) for i, x in notes]
            self.packets.add(row[_UID], row[_FILE], row[_ID], (n, values, ack_nulls, scale_nulls, with_notes))

    def close(self, summary: ReplaySummary) -> None:
        self.connections.close()
        if self.packets is not None:
            self.packets.close()

    def discard(self) -> None:
        """The run failed: remove what was written."""
        self.connections.file.discard()
        if self.packets is not None:
            self.packets.file.discard()

"""Reading a capture file as a stream of raw frames.

The two capture formats are simple enough to read directly, and replay reads
every record of files with millions of them, so this module parses them itself
with :mod:`struct` from large buffered reads (Scapy's ``RawPcapReader`` costs a
few microseconds and a named tuple per record, and importing Scapy alone takes
longer than reading a small capture):

* pcap (the libpcap format, ``tcpdump -w``): a 24-byte file header whose magic
  number gives the byte order and the timestamp unit (microseconds, or
  nanoseconds for the ``0xa1b23c4d`` magic), then records of a 16-byte header
  (seconds, fraction, captured length, original length) and the frame;
* pcapng (Wireshark's default, draft-ietf-opsawg-pcapng): blocks. A Section Header
  Block gives the byte order of its section; Interface Description Blocks give each
  interface's link type, snap length and timestamp resolution (``if_tsresol``);
  frames come in Enhanced Packet Blocks, Simple Packet Blocks (no timestamp: the
  previous one is kept, no interface id: the section's first interface) and the
  obsolete Packet Blocks. Every other block is skipped;
* either compressed with gzip (``.pcap.gz``), recognised by its magic number.

Memory does not grow with the file: records are read in chunks of
:data:`CHUNK` bytes. ``tests/unit/test_replay_capture.py`` checks that the frames
are those Scapy's readers return, byte for byte, on files Scapy writes.

Around the formats, what ``l4kit replay`` needs:

* one clear :class:`~l4kit.errors.CaptureError` line (exit code 2) for a missing
  file, a directory, an empty file, a file that is not a capture, an unsupported
  link type or a BPF filter tcpdump rejects;
* detection of a capture that was cut short (a half-written record at the end, a
  gzip stream without its end, a pcapng block whose trailing length does not match):
  the frames before the cut are yielded and :attr:`CaptureReader.truncated` is set,
  so the caller can warn and exit with :data:`EXIT_TRUNCATED`;
* ``--filter``: the BPF expression is handed to ``tcpdump -r FILE -w - EXPR``, whose
  output (a pcap stream) is read from the pipe as it is produced. tcpdump is the
  reference implementation of the filter language and already a dependency of the
  live commands; compiling the filter in Python and running a BPF interpreter per
  packet would be slower and subtly different.

A frame is yielded as a plain tuple ``(number, time, linktype, data, wirelen)``
(``number`` counts from 1 like Wireshark's frame number; ``time`` is seconds since
the epoch): tuples keep the per-packet cost of the main loop down.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Final

from l4kit.errors import CaptureError, ParseError
from l4kit.wire import link

# gzip, shutil, subprocess and tempfile are imported where they are needed (a
# compressed file, --filter): a plain capture starts reading a few milliseconds sooner.

EXIT_BAD_INPUT: Final = 2
"""Exit code for a capture that cannot be read at all (missing, not a capture,
unsupported link type, rejected filter)."""

EXIT_TRUNCATED: Final = 3
"""Exit code after a capture that was cut short: everything before the cut was
analysed and printed."""

# Bigger than any frame a capture can hold (Linux loopback frames can exceed 64 KiB
# with TSO); a longer record keeps its first _MAX_FRAME octets and the rest is skipped.
_MAX_FRAME: Final = 1 << 18

CHUNK: Final = 1 << 20
"""Bytes read from the file at a time."""

Frame = tuple[int, float, int, bytes, int]
"""(number, time, linktype, data, wirelen)."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),  # little endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),  # little endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB: Final = 0x0A0D0D0A  # the same in both byte orders
_PCAPNG_BOM: Final = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}
_IDB: Final = 1
_PB: Final = 2  # the obsolete Packet Block
_SPB: Final = 3
_EPB: Final = 6
_OPT_TSRESOL: Final = 9
_DEFAULT_TSRESOL: Final = 1_000_000


def _bad_input(message: str, hint: str | None = None) -> CaptureError:
    return CaptureError(message, hint=hint, exit_code=EXIT_BAD_INPUT)


class _NotACaptureError(Exception):
    """The header is not a pcap or pcapng header (the detail says why)."""


class _Source:
    """A byte stream read in chunks: ``buf[pos:]`` holds what is not consumed yet.

    The frame loops keep ``buf`` and ``pos`` in locals and call :meth:`refill`
    only when a record runs past the end of the buffer (once per chunk).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
        self.buf = b""
        self.pos = 0
        self.error: str | None = None  # why the stream stopped early (gzip damage), if it did

    def refill(self, buf: bytes, pos: int, need: int) -> bytes:
        """``buf[pos:]`` extended to at least ``need`` bytes when the stream has them
        (fewer only at its end); the result starts at the old ``pos``."""
        parts = [buf[pos:]]
        have = len(parts[0])
        while have < need:
            try:
                more = self._read(max(CHUNK, need - have))
            except (EOFError, OSError, zlib.error) as exc:  # a gzip stream cut or damaged
                self.error = _describe_stream_error(exc)
                more = b""
            if not more:
                break
            parts.append(more)
            have += len(more)
        return b"".join(parts) if len(parts) > 1 else parts[0]

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end of the stream), for headers."""
        if len(self.buf) - self.pos < n:
            self.buf = self.refill(self.buf, self.pos, n)
            self.pos = 0
        data = self.buf[self.pos : self.pos + n]
        self.pos += len(data)
        return data

    def peek(self, n: int) -> bytes:
        if len(self.buf) - self.pos < n:
            self.buf = self.refill(self.buf, self.pos, n)
            self.pos = 0
        return self.buf[self.pos : self.pos + n]


class _Prefix:
    """The first ``size`` bytes of a file, as a read-only stream."""

    def __init__(self, inner: IO[bytes], size: int) -> None:
        self._inner = inner
        self._left = size
        self._size = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._inner.read(n) if n else b""
        self._left -= len(data)
        return data

    read1 = read

    def close(self) -> None:
        self._inner.close()


class _Chain:
    """Octets already read from a stream, then the rest of the stream: what the gzip
    reader is given, so that a pipe (which cannot seek back) is read once."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._rest.read(n)

    def seek(self, offset: int, /) -> int:
        """Never called by a gzip reader reading on: a pipe cannot seek."""
        raise OSError("a stream read once cannot seek")


def _describe_stream_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed stream ends before its end marker"
    return f"reading stopped: {exc}"


STDIN: Final = "-"
"""The file name that means standard input (as tcpdump's ``-r -``)."""


class CaptureReader:
    """An open capture: iterate it for frames; close it (or use ``with``) when done."""

    linktype: int | None  # pcap: the file's link type; pcapng: None (one per interface)

    def __init__(
        self,
        path: Path | str,
        *,
        bpf: str | None = None,
        size: int | None = None,
        stream: IO[bytes] | None = None,
    ) -> None:
        """``path`` ``-``: standard input. ``bpf``: a tcpdump filter; every frame is still
        read, and :attr:`frame_filter` says which ones it matches. ``size``: read only
        the file's first ``size`` bytes (its size when a run began), so that processes
        sharing the work see the same frames of a file still being written. ``stream``:
        read this open stream instead (``path`` names it in messages)."""
        self.path = Path(path)
        self.from_stdin = str(path) == STDIN and stream is None
        self.name = "standard input" if self.from_stdin else str(path)
        self.size = size
        self.truncated = False
        self.truncation_detail = ""
        self.is_pcapng = False
        self.frame_filter: Callable[[bytes], bool] | None = None
        self._matcher: _FilterMatcher | None = None
        self._spool: IO[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._compressed = False
        if stream is None:
            self._check_path()
        # _open sets self.linktype (pcap: the file's; pcapng: None, per interface). It is
        # not set to None before: mypy would take it for None here, and skip the check.
        self._source = self._open(stream, bpf)
        if self.linktype is not None and not link.is_supported(self.linktype):
            self.close()
            try:
                link.decoder_for(self.linktype)
            except ParseError as exc:
                raise _bad_input(f"{self.name}: unsupported link type: {exc.detail}") from None

    # ------------------------------------------------------------------ opening

    def _check_path(self) -> None:
        if self.from_stdin:
            if sys.stdin is None or sys.stdin.isatty():
                raise _bad_input(
                    "standard input is a terminal, not a capture",
                    hint="pipe one in: tcpdump -w - | l4kit replay -",
                )
            return
        p = self.path
        if not p.exists():
            raise _bad_input(f"{p}: no such file")
        if p.is_dir():
            raise _bad_input(f"{p}: is a directory, not a capture file")
        if not os.access(p, os.R_OK):
            raise _bad_input(f"{p}: permission denied")
        if p.is_file() and p.stat().st_size == 0:
            raise _bad_input(f"{p}: empty file, not a capture")

    def _open(self, stream: IO[bytes] | None, bpf: str | None) -> _Source:
        """Read the capture's own header first, so that a file that is not a capture
        gets the same message with or without ``--filter``; then start the filter."""
        if stream is not None:
            return self._start(stream)
        if self.from_stdin:
            raw: IO[bytes] = sys.stdin.buffer
            if bpf is not None:
                # tcpdump reads the capture too: standard input can be read only once.
                raw = self._spool_stdin(raw)
        else:
            try:
                raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise _bad_input(f"{self.name}: {exc.strerror}") from None
            self._files.append(raw)
        if self.size is not None:
            raw = _Prefix(raw, self.size)  # type: ignore[assignment]
        source = self._start(raw)
        if bpf is not None:
            path = Path(self._spool.name) if self._spool is not None else self.path
            try:
                self._matcher = _FilterMatcher(path, bpf, compressed=self._compressed)
            except CaptureError:
                self.close()
                raise
            self.frame_filter = self._matcher.match
        return source

    def _spool_stdin(self, stdin: IO[bytes]) -> IO[bytes]:
        import shutil
        import tempfile

        self._spool = tempfile.NamedTemporaryFile(prefix="l4kit-stdin-")  # noqa: SIM115 - closed in close()
        shutil.copyfileobj(stdin, self._spool, CHUNK)
        self._spool.flush()
        if self._spool.tell() == 0:
            raise _bad_input("standard input: empty, not a capture")
        self._spool.seek(0)
        return self._spool

    def _start(self, stream: IO[bytes]) -> _Source:
        source = _Source(stream)
        try:
            if source.peek(2) == _GZIP_MAGIC:
                import gzip

                # What was read to recognise it, then the rest: a pipe is read only once.
                head = source.buf[source.pos :]
                unzipped = gzip.GzipFile(fileobj=_Chain(head, stream), mode="rb")
                self._files.append(unzipped)  # type: ignore[arg-type]
                self._compressed = True
                source = _Source(unzipped)  # type: ignore[arg-type]
            self._read_header(source)
        except _NotACaptureError as exc:
            self.close()
            if not source.buf and source.error is None and self.from_stdin:
                raise _bad_input("standard input: empty, not a capture") from None
            raise _bad_input(f"{self.name}: not a pcap or pcapng capture", hint=str(exc) or None) from None
        except OSError as exc:
            self.close()
            raise _bad_input(f"{self.name}: {exc.strerror or exc}") from None
        return source

    def _read_header(self, source: _Source) -> None:
        magic = source.peek(4)
        if source.error is not None:
            raise _NotACaptureError(source.error)
        if magic in _PCAP_MAGICS:
            endian, self._scale = _PCAP_MAGICS[magic]
            header = source.take(24)
            if len(header) < 24:
                raise _NotACaptureError("the pcap file header is cut short")
            self._endian = endian
            self.linktype = struct.unpack_from(endian + "I", header, 20)[0]
            self.is_pcapng = False
        elif magic == _PCAPNG_SHB.to_bytes(4, "big"):
            self.is_pcapng = True
            self.linktype = None
            self._interfaces: list[tuple[int, int, int]] = []  # (linktype, snaplen, tsresol)
            if not self._read_shb(source):
                raise _NotACaptureError("")
        else:
            raise _NotACaptureError("")

    def _read_shb(self, source: _Source) -> bool:
        """A Section Header Block at the stream's position: sets the byte order and
        starts a new list of interfaces. False if it is malformed."""
        head = source.peek(16)
        if len(head) < 16 or head[8:12] not in _PCAPNG_BOM:
            return False
        endian = _PCAPNG_BOM[head[8:12]]
        blocklen, major = struct.unpack_from(endian + "I4xH", head, 4)
        if blocklen < 28 or major != 1:
            return False
        block = source.take(blocklen + (-blocklen % 4))
        if len(block) < blocklen or struct.unpack_from(endian + "I", block, len(block) - 4)[0] != blocklen:
            return False
        self._endian = endian
        self._interfaces = []
        return True

    # ---------------------------------------------------------------- reading

    def __iter__(self) -> Iterator[Frame]:
        # The format's generator itself (no generator around it: one less resumption per
        # frame); each calls _end_of_stream when it reaches the end.
        return self._pcapng_frames() if self.is_pcapng else self._pcap_frames()

    def _end_of_stream(self) -> None:
        if self._source.error is not None:
            # The stream's own failure (a gzip stream cut short) explains a cut record too.
            self.truncated = True
            self.truncation_detail = self._source.error
        if self._matcher is not None:
            failure = self._matcher.failure()
            if failure:
                self._mark_cut(failure)

    def _pcap_frames(self) -> Iterator[Frame]:
        """pcap records: one ``unpack_from`` per record header, one slice per frame."""
        source = self._source
        refill = source.refill
        header = struct.Struct(self._endian + "IIII").unpack_from
        scale = self._scale
        linktype = self.linktype
        assert linktype is not None
        buf, pos = source.buf, source.pos
        end_of_data = len(buf)
        number = 0
        try:
            while True:
                if end_of_data - pos < 16:
                    buf = refill(buf, pos, 16)
                    pos, end_of_data = 0, len(buf)
                    if end_of_data < 16:
                        if end_of_data:
                            self._mark_cut("the file ends in the middle of a record")
                        break
                sec, fraction, caplen, wirelen = header(buf, pos)
                if caplen > _MAX_FRAME:
                    data = self._long_record(buf, pos, caplen)
                    buf, pos = source.buf, source.pos
                    end_of_data = len(buf)
                    if data is None:
                        break
                    number += 1
                    yield (number, sec + fraction * scale, linktype, data, wirelen)
                    continue
                start = pos + 16
                end = start + caplen
                if end > end_of_data:
                    buf = refill(buf, pos, 16 + caplen)
                    pos, end_of_data = 0, len(buf)
                    start, end = 16, 16 + caplen
                    if end > end_of_data:
                        self._mark_cut(
                            f"the last record is cut after {end_of_data - start} of {caplen} bytes"
                        )
                        break
                pos = end
                number += 1
                yield (number, sec + fraction * scale, linktype, buf[start:end], wirelen)
        finally:
            source.buf, source.pos = buf, pos
        self._end_of_stream()

    def _long_record(self, buf: bytes, pos: int, caplen: int) -> bytes | None:
        """A record longer than :data:`_MAX_FRAME`: its first octets, the rest skipped
        without holding it in memory. None (and the cut marked) when the file ends
        inside it."""
        source = self._source
        buf = source.refill(buf, pos, 16 + _MAX_FRAME)
        if len(buf) < 16 + _MAX_FRAME:
            self._mark_cut(f"the last record is cut after {len(buf) - 16} of {caplen} bytes")
            source.buf, source.pos = buf, len(buf)
            return None
        data = buf[16 : 16 + _MAX_FRAME]
        left = caplen - _MAX_FRAME
        buf = buf[16 + _MAX_FRAME :]
        while len(buf) < left:
            left -= len(buf)
            buf = source.refill(b"", 0, min(left, CHUNK))
            if not buf:
                self._mark_cut(f"the last record is cut: {left} of its {caplen} bytes are missing")
                source.buf, source.pos = b"", 0
                return None
        source.buf, source.pos = buf, left
        return data

    def _pcapng_frames(self) -> Iterator[Frame]:
        """pcapng blocks: the frames of packet blocks, the rest read for what it
        says about the following ones (byte order, interfaces)."""
        source = self._source
        refill = source.refill
        endian = self._endian
        u32 = struct.Struct(endian + "I").unpack_from
        epb = struct.Struct(endian + "IIIII").unpack_from
        interfaces = self._interfaces
        buf, pos = source.buf, source.pos
        end_of_data = len(buf)
        number = 0
        last_time = 0.0
        try:
            while True:
                if end_of_data - pos < 12:
                    buf = refill(buf, pos, 12)
                    pos, end_of_data = 0, len(buf)
                    if end_of_data < 12:
                        if end_of_data:
                            self._mark_cut("the file ends in the middle of a block")
                        break
                blocktype = u32(buf, pos)[0]
                if blocktype == _PCAPNG_SHB:
                    source.buf, source.pos = buf, pos
                    if not self._read_shb(source):
                        self._mark_cut(f"a malformed section header after frame {number}")
                        break
                    buf, pos = source.buf, source.pos
                    end_of_data = len(buf)
                    endian = self._endian
                    u32 = struct.Struct(endian + "I").unpack_from
                    epb = struct.Struct(endian + "IIIII").unpack_from
                    interfaces = self._interfaces
                    continue
                blocklen = u32(buf, pos + 4)[0]
                size = blocklen + (-blocklen % 4)
                if blocklen < 12:
                    self._mark_cut(f"a malformed block (length {blocklen}) after frame {number}")
                    break
                if pos + size > end_of_data:
                    buf = refill(buf, pos, size)
                    pos, end_of_data = 0, len(buf)
                    if size > end_of_data:
                        self._mark_cut("the file ends in the middle of a block")
                        break
                end = pos + size
                if u32(buf, end - 4)[0] != blocklen:
                    self._mark_cut(f"a malformed block (its lengths differ) after frame {number}")
                    break
                body = pos + 8
                body_end = pos + blocklen - 4
                pos = end
                if blocktype == _EPB and body_end - body >= 20:
                    intid, tshigh, tslow, caplen, wirelen = epb(buf, body)
                    if intid >= len(interfaces):
                        continue  # a packet of an interface the section never described: skipped
                    linktype, _, tsresol = interfaces[intid]
                    last_time = ((tshigh << 32) | tslow) / tsresol
                    start = body + 20
                elif blocktype == _SPB and body_end - body >= 4 and interfaces:
                    # No interface id (the section's first) and no timestamp (the last one stays).
                    wirelen = u32(buf, body)[0]
                    linktype, snaplen, _ = interfaces[0]
                    caplen = min(wirelen, snaplen) if snaplen else wirelen
                    start = body + 4
                elif blocktype == _PB and body_end - body >= 20:
                    intid = struct.unpack_from(endian + "H", buf, body)[0]
                    tshigh, tslow, caplen, wirelen = struct.unpack_from(endian + "IIII", buf, body + 4)
                    if intid >= len(interfaces):
                        continue
                    linktype, _, tsresol = interfaces[intid]
                    last_time = ((tshigh << 32) | tslow) / tsresol
                    start = body + 20
                else:
                    if blocktype == _IDB and body_end - body >= 8:
                        interfaces.append(self._interface(buf, body, body_end))
                    continue
                number += 1
                yield (
                    number,
                    last_time,
                    linktype,
                    buf[start : min(start + caplen, body_end, start + _MAX_FRAME)],
                    wirelen,
                )
        finally:
            source.buf, source.pos = buf, pos
        self._end_of_stream()

    @property
    def position(self) -> int | None:
        """Bytes of the file read so far (for a progress display; a compressed file's
        compressed bytes); None when it cannot be told (a pipe)."""
        if not self._files:
            return None
        try:
            return self._files[0].tell()
        except (OSError, ValueError):  # closed meanwhile
            return None

    @property
    def time_digits(self) -> int:
        """The decimals of the capture's timestamps: 6 when they count microseconds (or
        coarser: pcap's usual magic, pcapng's default ``if_tsresol``), else 9. Frame
        times are floats of seconds since the epoch, whose spacing there is about 240 ns,
        so a difference of two of them shows digits the capture never had (1.4067e-05
        for 14 µs); :mod:`l4kit.replay.jsontext` writes times to this many decimals.
        For pcapng, the interfaces described so far (read after the first frame)."""
        if not self.is_pcapng:
            return 6 if self._scale >= 1e-6 else 9
        fine = [tsresol for _, _, tsresol in self._interfaces if 1_000_000 % tsresol]
        return 9 if fine else 6

    def _interface(self, buf: bytes, body: int, body_end: int) -> tuple[int, int, int]:
        """An Interface Description Block: (linktype, snaplen, timestamp units per second).

        ``if_tsresol`` (option 9) is a power of 10, or of 2 with the high bit set;
        without it timestamps are in microseconds.
        """
        endian = self._endian
        linktype, snaplen = struct.unpack_from(endian + "H2xI", buf, body)
        tsresol = _DEFAULT_TSRESOL
        offset = body + 8
        while body_end - offset >= 4:
            code, length = struct.unpack_from(endian + "HH", buf, offset)
            if code == 0:  # opt_endofopt
                break
            value = offset + 4
            if code == _OPT_TSRESOL and length == 1 and value < body_end:
                exponent = buf[value]
                tsresol = (2 if exponent & 0x80 else 10) ** (exponent & 0x7F)
            offset = value + length + (-length % 4)
        return (linktype, snaplen, tsresol)

    def _mark_cut(self, detail: str) -> None:
        if not self.truncated:
            self.truncated = True
            self.truncation_detail = detail

    def close(self) -> None:
        for f in reversed(self._files):
            with contextlib.suppress(Exception):  # closing is best effort
                f.close()
        self._files = []
        if self._matcher is not None:
            self._matcher.close()
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FilterMatcher:
    """``--filter``: which frames of the capture tcpdump's filter matches.

    tcpdump (``-r FILE -w - EXPR``, the reference implementation of the filter
    language) writes the matching frames, in order, as a pcap stream that is read
    alongside the capture. The filter's verdict depends only on a frame's octets (and
    link type), so a frame of the capture matches exactly when it equals the next
    frame tcpdump wrote: :meth:`match`, called with every frame in capture order,
    compares the two. The analysis therefore sees every frame, and a filtered run
    shows a subset of the unfiltered run's rows, numbered the same. A compressed
    capture is handed to tcpdump decompressed, through its standard input.
    """

    def __init__(self, path: Path, bpf: str, *, compressed: bool) -> None:
        import shutil
        import subprocess
        import tempfile

        self.bpf = bpf
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise _bad_input("--filter needs tcpdump, which is not installed", hint="apt-get install tcpdump")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # -n: no name lookups; -U: write each packet as it is read, so the pipe streams.
        self._proc: subprocess.Popen[bytes] = subprocess.Popen(
            [tcpdump, "-n", "-U", "-r", "-" if compressed else str(path), "-w", "-", bpf],
            stdin=subprocess.PIPE if compressed else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        if compressed:
            import threading

            threading.Thread(target=self._feed, args=(path,), name="l4kit-filter-feed", daemon=True).start()
        assert self._proc.stdout is not None
        try:
            self._reader = CaptureReader(f"--filter {bpf!r}", stream=self._proc.stdout)
        except CaptureError:
            detail = self._complaint() or "tcpdump produced no capture"
            self.close()
            raise _bad_input(f"--filter {bpf!r}: {detail}") from None
        self._frames = iter(self._reader)
        self._next = self._take()

    def _feed(self, path: Path) -> None:
        """Decompress the capture into tcpdump's standard input (a thread of its own:
        tcpdump's output is read only as the capture's frames need it)."""
        import gzip

        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError, EOFError, zlib.error), gzip.open(path, "rb") as unzipped:
            while chunk := unzipped.read(CHUNK):
                stdin.write(chunk)
        with contextlib.suppress(OSError):
            stdin.close()

    def _take(self) -> bytes | None:
        frame = next(self._frames, None)
        return None if frame is None else frame[3]

    def match(self, data: bytes) -> bool:
        """Whether the filter matches this frame: call it with every frame, in order."""
        if self._next is not None and data == self._next:
            self._next = self._take()
            return True
        return False

    def _complaint(self) -> str:
        """tcpdump's own last words, once it has exited."""
        self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("reading from")]
        return lines[-1].removeprefix("tcpdump: ") if lines else ""

    def failure(self) -> str:
        """Why tcpdump stopped before the capture's end ("" if it did not): its frames
        after that would be missing from the matches. A capture cut short is the
        reader's own finding and not repeated."""
        if self._proc.wait() == 0:
            return ""
        complaint = self._complaint()
        if "truncated" in complaint:
            return ""
        return f"--filter: tcpdump stopped early: {complaint or f'status {self._proc.returncode}'}"

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

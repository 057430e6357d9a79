"""Reading a capture file as a stream of raw frames.

Scapy's :class:`~scapy.utils.RawPcapReader` reads pcap and pcapng (and gzip'd
either) record by record without dissecting anything, so memory does not grow
with the file. This module adds what ``l4kit replay`` needs around it:

* one clear :class:`~l4kit.errors.CaptureError` line (exit code 2) for a missing
  file, a directory, an empty file, a file that is not a capture, an unsupported
  link type or a BPF filter tcpdump rejects;
* detection of a capture that was cut short (a half-written record at the end):
  the frames before the cut are yielded and :attr:`CaptureReader.truncated` is
  set, so the caller can warn and exit with :data:`EXIT_TRUNCATED`;
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
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

from l4kit.errors import CaptureError, ParseError
from l4kit.wire import link

EXIT_BAD_INPUT: Final = 2
"""Exit code for a capture that cannot be read at all (missing, not a capture,
unsupported link type, rejected filter)."""

EXIT_TRUNCATED: Final = 3
"""Exit code after a capture that was cut short: everything before the cut was
analysed and printed."""

# Bigger than any frame a capture can hold (Linux loopback frames can exceed 64 KiB
# with TSO); Scapy's default read size (its MTU constant, 65535) would cut them.
_MAX_FRAME: Final = 1 << 18

Frame = tuple[int, float, int, bytes, int]
"""(number, time, linktype, data, wirelen)."""


def _bad_input(message: str, hint: str | None = None) -> CaptureError:
    return CaptureError(message, hint=hint, exit_code=EXIT_BAD_INPUT)


class _CutWatcher:
    """A read-only file wrapper that notices a short read.

    The pcap readers ask for exact record sizes from a buffered stream, which only
    returns fewer bytes than asked at the end of the data. At a clean end the next
    read returns nothing, while a file cut in the middle of a record returns some
    but not all of the bytes. The readers treat both as the end, so the difference
    is recorded here.
    """

    def __init__(self, inner: IO[bytes], name: str) -> None:
        self._inner = inner
        self.name = name
        self.cut = False

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if 0 < len(data) < size:
            self.cut = True
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # Scapy's gzip detection rewinds
        return self._inner.seek(offset, whence)

    def close(self) -> None:
        self._inner.close()


class _QuietScapy:
    """Scapy's readers log a warning for every oddity they skip; replay reports
    problems itself (one line each), so Scapy's runtime logger is muted while reading."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("scapy.runtime")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


class CaptureReader:
    """An open capture: iterate it for frames; close it (or use ``with``) when done."""

    def __init__(self, path: Path | str, *, bpf: str | None = None) -> None:
        self.path = Path(path)
        self.bpf = bpf
        self.truncated = False
        self.truncation_detail = ""
        self.frames_read = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._watch: _CutWatcher | None = None
        self._file_size: int | None = None  # set for plain pcap files: see _open_source
        self._check_path()
        self._reader = self._open()
        self.linktype: int | None = getattr(self._reader, "linktype", None)
        self.is_pcapng = self._reader.__class__.__name__ == "RawPcapNgReader"
        if self.linktype is not None and not link.is_supported(self.linktype):
            self.close()
            try:
                link.decoder_for(self.linktype)
            except ParseError as exc:
                raise _bad_input(f"{self.path}: unsupported link type: {exc.detail}") from None

    # ------------------------------------------------------------------ opening

    def _check_path(self) -> None:
        p = self.path
        if not p.exists():
            raise _bad_input(f"{p}: no such file")
        if p.is_dir():
            raise _bad_input(f"{p}: is a directory, not a capture file")
        if not os.access(p, os.R_OK):
            raise _bad_input(f"{p}: permission denied")
        if p.is_file() and p.stat().st_size == 0:
            raise _bad_input(f"{p}: empty file, not a capture")

    def _open(self) -> Any:
        """Open the file itself first, so that a file that is not a capture gets the
        same message with or without ``--filter``; then, with a filter, read
        tcpdump's filtered copy instead."""
        reader = self._open_source(self._open_file())
        if self.bpf is None:
            return reader
        reader.close()
        self._file_size = None  # the filtered stream is not the file: tcpdump reports a cut
        return self._open_source(self._start_tcpdump(self.bpf))

    def _open_file(self) -> IO[bytes]:
        try:
            return open(self.path, "rb", buffering=1 << 16)
        except OSError as exc:
            raise _bad_input(f"{self.path}: {exc.strerror}") from None

    def _open_source(self, source: IO[bytes]) -> Any:
        from scapy.error import Scapy_Exception
        from scapy.utils import RawPcapReader

        self._watch = _CutWatcher(source, str(self.path))
        try:
            with _QuietScapy():
                reader: Any = RawPcapReader(cast(Any, self._watch))
            if reader.f is not self._watch:
                self._watch = None  # gzip'd: the decompressor's reads are short by nature
            elif self._proc is None and reader.__class__ is RawPcapReader:
                # A plain pcap file: read it directly and find a cut by counting
                # record sizes against the file size instead (cheaper per packet).
                reader.f = source
                self._watch = None
                self._file_size = self.path.stat().st_size
            return reader
        except (Scapy_Exception, EOFError, OSError, ValueError) as exc:
            tcpdump_error = self._tcpdump_failure()
            self.close()
            if tcpdump_error:
                raise _bad_input(tcpdump_error) from None
            if self._proc is not None:
                raise _bad_input(f"--filter {self.bpf!r}: tcpdump produced no capture") from None
            raise _bad_input(
                f"{self.path}: not a pcap or pcapng capture", hint=_describe_scapy_error(exc)
            ) from None

    def _start_tcpdump(self, bpf: str) -> IO[bytes]:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise _bad_input("--filter needs tcpdump, which is not installed", hint="apt-get install tcpdump")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # -n: no name lookups; -U: write each packet as it is read, so the pipe streams.
        self._proc = subprocess.Popen(
            [tcpdump, "-n", "-U", "-r", str(self.path), "-w", "-", bpf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self._proc.stdout is not None
        return self._proc.stdout

    def _tcpdump_failure(self) -> str | None:
        """tcpdump's own complaint (bad filter, bad file), if it failed."""
        if self._proc is None or self._stderr is None:
            return None
        code = self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("reading from")]
        if code == 0:
            return None
        detail = lines[-1] if lines else f"tcpdump exited with status {code}"
        detail = detail.removeprefix("tcpdump: ")
        if "truncated" in detail:
            return None  # packets before the cut were written; see _finish_tcpdump
        return f"--filter {self.bpf!r}: {detail}"

    # ---------------------------------------------------------------- reading

    def __iter__(self) -> Iterator[Frame]:
        reader = self._reader
        read = reader._read_packet
        pcapng = self.is_pcapng
        linktype = self.linktype
        scale = 1e-9 if getattr(reader, "nano", False) else 1e-6
        number = 0
        last_time = 0.0
        offset = 24  # the pcap file header; each record adds 16 + its captured length
        with _QuietScapy():
            while True:
                try:
                    data, meta = read(_MAX_FRAME)
                except EOFError:
                    break
                if pcapng:
                    # A Simple Packet Block has no timestamp: it keeps the previous one.
                    t = (
                        last_time
                        if meta.tshigh is None
                        else ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
                    )
                    lt = meta.linktype
                else:
                    if len(data) < meta.caplen and meta.caplen <= _MAX_FRAME:
                        self._mark_cut(f"the last record is cut after {len(data)} of {meta.caplen} bytes")
                        break
                    t = meta.sec + meta.usec * scale
                    lt = linktype
                    offset += 16 + meta.caplen
                number += 1
                last_time = t
                self.frames_read = number
                yield (number, t, lt, data, meta.wirelen)
        if (self._watch is not None and self._watch.cut) or (
            self._file_size is not None and offset < self._file_size and not self.truncated
        ):
            self._mark_cut("the file ends in the middle of a record")
        self._finish_tcpdump()

    def _mark_cut(self, detail: str) -> None:
        if not self.truncated:
            self.truncated = True
            self.truncation_detail = detail

    def _finish_tcpdump(self) -> None:
        if self._proc is None or self._stderr is None:
            return
        code = self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        if "truncated" in text:
            cut_line = next(ln for ln in text.splitlines() if "truncated" in ln).strip()
            self._mark_cut("tcpdump: " + cut_line.removeprefix("tcpdump: "))
        elif code != 0:
            line = [ln for ln in text.splitlines() if ln.strip()][-1:] or [f"status {code}"]
            self._mark_cut("tcpdump stopped early: " + line[0].strip())

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                reader.close()
        if self._watch is not None:
            self._watch.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_scapy_error(exc: BaseException) -> str | None:
    text = str(exc).strip()
    if not text or text in ("No data could be read!", "Not a supported capture file"):
        return None
    return text

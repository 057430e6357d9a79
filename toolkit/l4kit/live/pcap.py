"""``--pcap FILE``: every frame in and out, written by a thread of its own.

The packet thread only appends ``(timestamp, bytes)`` to a queue; a writer
thread turns them into a classic pcap file (libpcap's format: a 24-byte global
header, then a 16-byte record header per frame; microsecond timestamps,
``LINKTYPE_ETHERNET``). ``close()`` drains the queue and flushes, so the file is
complete and readable by tshark once the responder has stopped.
"""

from __future__ import annotations

import os
import queue
import stat
import struct
import threading
from pathlib import Path
from typing import BinaryIO

from l4kit.errors import ConfigError

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144

_GLOBAL_HEADER = struct.Struct("=IHHiIII")
_RECORD_HEADER = struct.Struct("=IIII")


def pcap_global_header(snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    return _GLOBAL_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(timestamp: float, frame: bytes) -> bytes:
    seconds = int(timestamp)
    micros = round((timestamp - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return _RECORD_HEADER.pack(seconds, micros, len(frame), len(frame)) + frame


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing as a file only its owner can read: 0600 whatever the
    umask (an existing file too), as Wireshark's dumpcap makes its captures. A capture
    holds every payload, and l4kit runs as root: under the usual umask a new file would be
    readable by every local user. Under ``sudo`` it is handed to the user who ran sudo,
    who can then read it without root (``l4kit replay`` needs none). A device or a pipe
    (``--pcap /dev/null``) is written to as it is, never chmod'ed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
            uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
            if os.geteuid() == 0 and uid.isdigit() and gid.isdigit():
                os.fchown(fd, int(uid), int(gid))
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class PcapWriterThread:
    """Writes frames handed to :meth:`write` from any thread, in order."""

    def __init__(self, path: Path) -> None:
        try:
            self._file = open_private(path)
        except OSError as exc:
            raise ConfigError(f"cannot write the capture file {path}: {exc.strerror}") from None
        self.path = path
        self.frames = 0
        self._file.write(pcap_global_header())
        self._queue: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="l4kit-pcap", daemon=True)
        self._thread.start()

    def write(self, timestamp: float, frame: bytes) -> None:
        self._queue.put((timestamp, frame))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            self._file.write(pcap_record(*item))
            self.frames += 1

    def close(self) -> None:
        """Write what is queued, flush and close (idempotent)."""
        if self._file.closed:
            return
        self._queue.put(None)
        self._thread.join()
        self._file.flush()
        self._file.close()

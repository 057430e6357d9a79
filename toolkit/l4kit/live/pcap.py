"""``--pcap FILE``: every frame in and out, written by a thread of its own.

The packet thread only appends ``(timestamp, bytes)`` to a queue; a writer
thread turns them into a classic pcap file (libpcap's format: a 24-byte global
header, then a 16-byte record header per frame; microsecond timestamps,
``LINKTYPE_ETHERNET``). ``close()`` drains the queue and flushes, so the file is
complete and readable by tshark once the responder has stopped.
"""

from __future__ import annotations

import queue
import struct
import threading
from pathlib import Path

from l4kit.safefile import open_new_file

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


class PcapWriterThread:
    """Writes frames handed to :meth:`write` from any thread, in order."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        """Open ``path`` as :func:`l4kit.safefile.open_new_file` does (never through a
        link, a new file 0600 and the sudo user's, an existing one only with ``overwrite``)."""
        self._file = open_new_file(path, overwrite=overwrite, option="--pcap")
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

"""State files: what each responder changed on the host, so that it can be undone.

Before anything is changed, a state file (``/run/l4kit/<netns>-<port>.json``,
mode 0600 in a 0700 directory) records the firewall object and the previous
sysctl values; it is removed once they are restored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4kit.errors import L4kitError
from l4kit.live.system import Netns, process_alive

STATE_FORMAT = 1
DEFAULT_STATE_DIR = Path("/run/l4kit")


def state_dir() -> Path:
    """Where state files live: ``$L4KIT_STATE_DIR`` or ``/run/l4kit`` (a tmpfs,
    so a reboot, which undoes every change anyway, also forgets them)."""
    return Path(os.environ.get("L4KIT_STATE_DIR") or DEFAULT_STATE_DIR)


@dataclass(slots=True)
class HostState:
    """What one responder (or one socket of a live client) changed on the host, as
    recorded in its state file."""

    netns: Netns
    port: int
    iface: str
    address: str
    pid: int
    pid_start: int | None
    firewall: dict[str, Any] | None
    sysctls_previous: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    tool: str = "l4kit respond"  # which command made the change (a client's socket, or respond)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "tool": self.tool,
                "netns": self.netns.name,
                "netns_inode": self.netns.inode,
                "port": self.port,
                "iface": self.iface,
                "address": self.address,
                "pid": self.pid,
                "pid_start": self.pid_start,
                "started": self.started,
                "firewall": self.firewall,
                "sysctls_previous": self.sysctls_previous,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> HostState:
        data = json.loads(text)
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown state file format {data.get('format')!r}")
        return cls(
            netns=Netns(int(data["netns_inode"]), str(data["netns"])),
            port=int(data["port"]),
            iface=str(data["iface"]),
            address=str(data["address"]),
            pid=int(data["pid"]),
            pid_start=None if data.get("pid_start") is None else int(data["pid_start"]),
            firewall=data.get("firewall"),
            sysctls_previous={str(k): str(v) for k, v in dict(data.get("sysctls_previous") or {}).items()},
            started=float(data.get("started") or 0.0),
            tool=str(data.get("tool") or "l4kit respond"),
        )

    @property
    def alive(self) -> bool:
        return process_alive(self.pid, self.pid_start)


class StateStore:
    """The state directory: one JSON file per (namespace, port), under a lock."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()

    def ensure(self) -> None:
        """Create the directory 0700; refuse one that others could write to."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise L4kitError(f"cannot create state directory {self.directory}: {exc.strerror}") from exc
        if not stat.S_ISDIR(info.st_mode):
            raise L4kitError(f"state directory {self.directory} is not a directory")
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise L4kitError(
                f"state directory {self.directory} is writable by others or not ours; refusing to use it",
                hint=f"remove it, or chmod 700 {self.directory}",
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock (flock) so that two responders never interleave
        reading and rewriting state files."""
        self.ensure()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def path_for(self, netns: Netns, port: int) -> Path:
        return self.directory / f"{netns.name}-{port}.json"

    def write(self, state: HostState) -> Path:
        """Write atomically (temporary file, fsync, rename), mode 0600."""
        self.ensure()
        path = self.path_for(state.netns, state.port)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, state.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def records(self) -> list[tuple[Path, HostState | None]]:
        """Every state file, parsed (None for one that cannot be read)."""
        if not self.directory.is_dir():
            return []
        out: list[tuple[Path, HostState | None]] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append((path, HostState.from_json(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                out.append((path, None))
        return out

    @staticmethod
    def remove(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

"""The host as the live commands see it: its tools, network namespaces, processes and sysctls."""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from l4kit.errors import ConfigError, L4kitError


def run_tool(
    argv: list[str], *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError as exc:
        raise ConfigError(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise L4kitError(f"{shlex.join(argv)} did not finish within 30 s") from exc
    if check and done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise L4kitError(f"{shlex.join(argv)} failed: {detail[0] if detail else f'exit {done.returncode}'}")
    return done


# ---------------------------------------------------------------- network namespace identity


@dataclass(frozen=True, slots=True)
class Netns:
    """The network namespace this process runs in: its inode (the identity the
    kernel uses, see ``ip netns identify``) and a name for state file names."""

    inode: int
    name: str


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def current_netns() -> Netns:
    """``host`` for the namespace of pid 1, the ``ip netns`` name if it has one,
    otherwise ``net<inode>`` (also where pid 1 cannot be inspected)."""
    inode = _netns_inode("/proc/self/ns/net")
    if inode is None:  # pragma: no cover - every Linux since 3.0 has it
        raise L4kitError("cannot read /proc/self/ns/net (is /proc mounted?)")
    if _netns_inode("/proc/1/ns/net") == inode:
        return Netns(inode, "host")
    for name in named_netns():
        if _netns_inode(f"/run/netns/{name}") == inode:
            return Netns(inode, name)
    return Netns(inode, f"net{inode}")


def named_netns() -> list[str]:
    """The names ``ip netns list`` shows (the bind mounts under /run/netns)."""
    try:
        return sorted(os.listdir("/run/netns"))
    except OSError:
        return []


def netns_exists(inode: int) -> bool:
    """Whether a namespace with this inode still exists: named, or held by a process."""
    if any(_netns_inode(f"/run/netns/{n}") == inode for n in named_netns()):
        return True
    return any(pid.isdigit() and _netns_inode(f"/proc/{pid}/ns/net") == inode for pid in os.listdir("/proc"))


def delete_netns(name: str) -> None:
    """``ip netns del NAME``, tolerating a namespace that is already gone."""
    done = run_tool(["ip", "netns", "del", name], check=False)
    if done.returncode != 0 and os.path.exists(f"/run/netns/{name}"):
        raise L4kitError(f"cannot delete network namespace {name}: {done.stderr.strip()}")


# ---------------------------------------------------------------- processes


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): with the pid it
    identifies a process even after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after
    # the last ')' are plain.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether the process that wrote a state file still runs."""
    now_ticks = process_start_ticks(pid)
    if now_ticks is None:
        return False
    return start_ticks is None or now_ticks == start_ticks


# ---------------------------------------------------------------- sysctls


def sysctl_name(key: str) -> str:
    """``net/ipv4/conf/lo/route_localnet`` -> ``net.ipv4.conf.lo.route_localnet``, as
    sysctl(8) spells it: a dot inside a component (the interface ``eth0.100``) is
    written ``/`` (``net.ipv4.conf.eth0/100.route_localnet``)."""
    return ".".join(part.replace(".", "/") for part in key.split("/"))


def read_sysctl(key: str) -> str:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError as exc:
        raise L4kitError(f"cannot read sysctl {sysctl_name(key)}: {exc.strerror}") from exc


def write_sysctl(key: str, value: str) -> None:
    try:
        Path("/proc/sys", key).write_text(value + "\n")
    except OSError as exc:
        hint = None
        if exc.errno == errno.EROFS:
            # Docker (and other container runtimes) mount /proc/sys read-only.
            hint = f"in a container, set it when starting it: docker run --sysctl {sysctl_name(key)}={value}"
        raise L4kitError(f"cannot set sysctl {sysctl_name(key)}={value}: {exc.strerror}", hint=hint) from exc

"""Which Linux capabilities the process has, and a clear error when one is missing.

``l4kit respond`` opens an ``AF_PACKET`` socket (CAP_NET_RAW, packet(7)) and
changes the firewall and ``net.ipv4.conf.*`` sysctls (CAP_NET_ADMIN);
``--sandbox`` and ``demo`` also create a network namespace (CAP_SYS_ADMIN,
network_namespaces(7)). Checking the effective set up front turns a
``PermissionError`` deep inside Scapy into one sentence that says what to do.
"""

from __future__ import annotations

import enum
from pathlib import Path

from l4kit.errors import PrivilegeError


class Capability(enum.IntEnum):
    """The capability bits l4kit needs (linux/capability.h)."""

    CAP_NET_ADMIN = 12
    CAP_NET_RAW = 13
    CAP_SYS_ADMIN = 21

    @property
    def purpose(self) -> str:
        return _PURPOSE[self]


_PURPOSE = {
    Capability.CAP_NET_RAW: "raw packet socket",
    Capability.CAP_NET_ADMIN: "firewall rule, sysctls",
    Capability.CAP_SYS_ADMIN: "network namespace",
}


def parse_effective_capabilities(status_text: str) -> int:
    """The ``CapEff`` mask from the text of ``/proc/<pid>/status`` (proc(5)).

    Returns 0 when the line is absent (no capabilities can be assumed).
    """
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    return 0


def effective_capabilities(status_file: Path = Path("/proc/self/status")) -> int:
    """The effective capability mask of this process."""
    try:
        return parse_effective_capabilities(status_file.read_text())
    except OSError:
        return 0


def missing_capabilities(mask: int, needed: list[Capability]) -> list[Capability]:
    """The capabilities of ``needed`` whose bit is not set in ``mask``, in order."""
    return [cap for cap in needed if not mask >> int(cap) & 1]


def missing_capabilities_message(command: str, missing: list[Capability]) -> str:
    """``l4kit respond needs CAP_NET_RAW (raw packet socket) and CAP_NET_ADMIN
    (firewall rule, sysctls); run it as root or with sudo``."""
    parts = [f"{cap.name} ({cap.purpose})" for cap in missing]
    needs = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{command} needs {needs}; run it as root or with sudo"


def require_capabilities(command: str, needed: list[Capability], *, mask: int | None = None) -> None:
    """Raise :class:`PrivilegeError` (exit code 1) naming every missing capability."""
    missing = missing_capabilities(effective_capabilities() if mask is None else mask, needed)
    if missing:
        raise PrivilegeError(missing_capabilities_message(command, missing))


def require_live_privileges(
    command: str = "l4kit respond", *, firewall: bool = True, namespace: bool = False
) -> None:
    """What ``l4kit respond`` needs: CAP_NET_RAW always, CAP_NET_ADMIN unless
    ``--no-firewall`` (nothing is changed then), CAP_SYS_ADMIN for ``--sandbox``."""
    needed = [Capability.CAP_NET_RAW]
    if firewall:
        needed.append(Capability.CAP_NET_ADMIN)
    if namespace:
        needed.append(Capability.CAP_SYS_ADMIN)
    require_capabilities(command, needed)

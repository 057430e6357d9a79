"""Where a live client's frames go: the kernel's route and neighbour tables.

A client on a packet socket builds whole Ethernet frames, so it must know what the
kernel's IP layer would have worked out: the interface and source address for a
destination (``ip route get``), and the link address of the next hop (the
destination itself on the same link, or the route's gateway) from the kernel's
neighbour table (``ip neigh``, ARP for IPv4, neighbour discovery for IPv6).

When the table has no usable entry yet, the kernel is asked to resolve it: a UDP
socket connected to the next hop sends one empty datagram to the discard port
(RFC 863), which makes the kernel's neighbour code send its ARP request or
neighbour solicitation exactly as it would for any program; the table is then read
again for up to :data:`RESOLVE_TIMEOUT` seconds. On ``lo`` there is nothing to
resolve: every frame carries ``00:00:00:00:00:00`` (docs/design.md, loopback trap 3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import time
from dataclasses import dataclass

from l4kit.errors import ConfigError

RESOLVE_TIMEOUT = 3.0
DISCARD_PORT = 9
LOOPBACK_MAC = b"\x00" * 6
# Neighbour states whose link address can be used now (ip-neighbour(8)).
USABLE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"})


@dataclass(frozen=True, slots=True)
class Route:
    """The kernel's answer for one destination."""

    destination: str
    iface: str
    source: str
    gateway: str | None
    local: bool  # the destination is this host (the route goes through lo)

    @property
    def next_hop(self) -> str:
        return self.gateway or self.destination


def _ip_json(argv: list[str]) -> list[dict[str, object]]:
    try:
        done = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, check=False, timeout=10)
    except FileNotFoundError:
        raise ConfigError("the ip command is missing", hint="apt-get install iproute2") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise ConfigError(f"ip {' '.join(argv)}: {detail[0] if detail else f'exit {done.returncode}'}")
    try:
        data = json.loads(done.stdout or "[]")
    except ValueError:
        return []
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def route_to(destination: str, *, iface: str | None = None, source: str | None = None) -> Route:
    """``ip route get DESTINATION [oif IFACE] [from SOURCE]``: the interface, the source
    address and the gateway the kernel would use. ConfigError (one line) when there is
    no route."""
    argv = ["route", "get", destination]
    if iface is not None:
        argv += ["oif", iface]
    if source is not None:
        argv += ["from", source]
    try:
        found = _ip_json(argv)
    except ConfigError as exc:
        raise ConfigError(
            f"no route to {destination}{f' on {iface}' if iface else ''} ({exc.message})"
        ) from None
    if not found:
        raise ConfigError(f"no route to {destination}")
    entry = found[0]
    kind = str(entry.get("type", "unicast"))
    dev = str(entry.get("dev", ""))
    src = entry.get("prefsrc") or source
    if not dev or src is None:
        raise ConfigError(f"no usable route to {destination} (the kernel says {entry})")
    if kind in ("unreachable", "prohibit", "blackhole"):
        raise ConfigError(f"no route to {destination} ({kind})")
    gateway = entry.get("gateway")
    return Route(
        destination=destination,
        iface=dev,
        source=str(ipaddress.ip_address(str(src))),
        gateway=None if gateway is None else str(gateway),
        local=kind == "local",
    )


def neighbour_mac(address: str, iface: str) -> bytes | None:
    """The link address the kernel's neighbour table holds for ``address`` on ``iface``,
    if its state makes it usable."""
    for entry in _ip_json(["neigh", "show", "to", address, "dev", iface]):
        mac = entry.get("lladdr")
        states = entry.get("state")
        names = set(states) if isinstance(states, list) else set()
        if isinstance(mac, str) and names & USABLE_STATES:
            return bytes.fromhex(mac.replace(":", ""))
    return None


def _nudge(address: str, iface: str) -> None:
    """One empty UDP datagram to the next hop's discard port: the kernel resolves the
    link address first (and queues the datagram until it has it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.sendto(b"", (address, DISCARD_PORT))


def resolve_mac(address: str, iface: str, *, timeout: float = RESOLVE_TIMEOUT) -> bytes:
    """The next hop's link address: from the neighbour table, resolved by the kernel
    when it is not there yet. ConfigError when it cannot be resolved in ``timeout``."""
    mac = neighbour_mac(address, iface)
    if mac is not None:
        return mac
    _nudge(address, iface)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        mac = neighbour_mac(address, iface)
        if mac is not None:
            return mac
        time.sleep(delay)  # the kernel's ARP/NDP answer is milliseconds away on a live link
        delay = min(delay * 2, 0.2)
    raise ConfigError(
        f"cannot resolve the link address of {address} on {iface}: no answer to the kernel's "
        f"{'neighbour solicitation' if ':' in address else 'ARP request'} within {timeout:g} s",
        hint=f"ip neigh show dev {iface}",
    )

"""Checks before the responder touches anything: foreseeable mistakes become one line.

Each check raises :class:`~l4kit.errors.ConfigError` with a message that says
what is wrong and how to fix it, or returns a warning text the caller shows.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from l4kit.errors import ConfigError

TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN = 10


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    address: str
    prefixlen: int


def interface_names() -> list[str]:
    return [name for _index, name in socket.if_nameindex()]


def require_interface(iface: str) -> int:
    """The interface index of ``iface``, or a ConfigError listing the ones that exist."""
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        names = ", ".join(interface_names()) or "none"
        raise ConfigError(
            f"no interface named {iface!r} in this network namespace (it has: {names})"
        ) from None


def _ip_json(argv: list[str]) -> list[dict[str, object]]:
    if shutil.which("ip") is None:
        raise ConfigError("the ip command is missing", hint="apt-get install iproute2")
    done = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, check=False, timeout=10)
    if done.returncode != 0:
        raise ConfigError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")
    data = json.loads(done.stdout or "[]")
    return data if isinstance(data, list) else []


@dataclass(frozen=True, slots=True)
class LinkInfo:
    up: bool
    loopback: bool


def link_info(iface: str) -> LinkInfo:
    """IFF_UP and IFF_LOOPBACK as ``ip link`` reports them (a fresh namespace has ``lo`` down)."""
    for link in _ip_json(["link", "show", "dev", iface]):
        flags = link.get("flags")
        names = flags if isinstance(flags, list) else []
        return LinkInfo(up="UP" in names, loopback="LOOPBACK" in names)
    return LinkInfo(up=False, loopback=False)


def interface_addresses(iface: str) -> list[InterfaceAddress]:
    out: list[InterfaceAddress] = []
    for link in _ip_json(["addr", "show", "dev", iface]):
        infos = link.get("addr_info")
        if not isinstance(infos, list):
            continue
        for info in infos:
            if isinstance(info, dict) and "local" in info:
                out.append(InterfaceAddress(str(info["local"]), int(info.get("prefixlen", 32))))
    return out


def require_address_on_interface(address: str, iface: str, *, loopback: bool) -> None:
    """The responder answers only for an address the host owns on ``iface``.

    On a loopback interface the whole prefix is local (RFC 1122 §3.2.1.3: any
    127.x.y.z is the host itself), so 127.0.0.2 is accepted on ``lo``.
    """
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"{address!r} is not an IP address") from None
    addresses = interface_addresses(iface)
    for item in addresses:
        have = ipaddress.ip_address(item.address)
        if have == wanted:
            return
        network = ipaddress.ip_network(f"{item.address}/{item.prefixlen}", strict=False)
        if loopback and have.version == wanted.version and wanted in network:
            return
    listed = ", ".join(f"{a.address}/{a.prefixlen}" for a in addresses) or "no address"
    raise ConfigError(f"address {address} is not on interface {iface} (it has {listed})")


def _decode_proc_address(hex_address: str) -> str:
    """/proc/net/tcp{,6} print addresses as the in-memory words in hex: IPv4 as
    one little-endian 32-bit word, IPv6 as four of them."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def kernel_listeners(port: int, proc_net: Path = Path("/proc/net")) -> list[str]:
    """``address:port`` of every kernel socket listening on ``port`` (any address)."""
    found: list[str] = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != TCP_LISTEN:
                continue
            hex_address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port:
                found.append(f"{_decode_proc_address(hex_address)}:{port}")
    return found


def kernel_listener_warning(address: str, port: int, proc_net: Path = Path("/proc/net")) -> str | None:
    """A warning when a kernel socket already listens where the responder will
    answer: the kernel then answers the SYN too (with its own SYN-ACK, which the
    RST rule does not stop), and the client talks to whichever reply wins."""
    wanted = ipaddress.ip_address(address)
    clashing = []
    for item in kernel_listeners(port, proc_net):
        host = ipaddress.ip_address(item.rsplit(":", 1)[0])
        if host == wanted or host.is_unspecified:
            clashing.append(item)
    if not clashing:
        return None
    return (
        f"a kernel socket already listens on {', '.join(clashing)}: the kernel's TCP will answer "
        f"clients on port {port} too; stop that server or pick another --port"
    )

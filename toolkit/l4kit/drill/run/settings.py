"""A run's settings: packetdrill's defaults, then the script's ``--option`` lines, then
the command line (which wins, as in packetdrill).

Options take packetdrill's names (``tolerance_usecs``, ``ip_version``,
``local_ip``...). Options packetdrill has that change nothing in l4kit's runs
(``send_omit_free``, ``speed``...) are accepted and ignored; an option neither
knows is an error, as it is in packetdrill.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from l4kit.drill.run.loop import RunConfig
from l4kit.drill.script.session import Addresses
from l4kit.errors import ConfigError

IP_VERSIONS: Final = ("ipv4", "ipv6", "ipv4-mapped-ipv6")


# packetdrill's addresses (its test runner's choices for the random ones): the stack is
# 192.168.0.1/16, the peer 192.0.2.1, routed through the test interface via the
# stack's own address. IPv6 gets a 1520-octet MTU so that its MSS is IPv4's 1460.
@dataclass(frozen=True)
class _Defaults:
    local: str
    gateway: str
    prefix: int
    remote: str
    mtu: int | None


_DEFAULTS: Final = {
    4: _Defaults("192.168.0.1", "192.168.0.1", 16, "192.0.2.1/24", None),
    6: _Defaults("fd3d:a0b:17d6::1", "fd3d:a0b:17d6:8888::1", 48, "fd3d:fa7b:d17d::1/48", 1520),
}

# Options l4kit reads.
KNOWN: Final = frozenset(
    {
        "tolerance_usecs",
        "tolerance_percent",
        "ip_version",
        "local_ip",
        "remote_ip",
        "gateway_ip",
        "netmask_ip",
        "bind_port",
        "connect_port",
        "mtu",
        "tcp_ts_tick_usecs",
        "tcp_ts_ecr_scaled",
        "strict_segments",
        "define",
        "verbose",
    }
)
# packetdrill options that make no difference to l4kit's runs (memory handling, link
# speed, debugging) or that select modes l4kit refuses elsewhere: accepted, ignored.
IGNORED: Final = frozenset(
    {
        "send_omit_free",
        "speed",
        "mss",
        "init_scripts",
        "non_fatal",
        "dry_run",
        "debug",
        "code_command",
        "code_format",
        "code_sockopt",
        "is_anyip",
        "psp_udp_port",
    }
)
UNSUPPORTED: Final = frozenset(
    {
        "wire_client",
        "wire_server",
        "wire_server_ip",
        "wire_server_at",
        "wire_server_port",
        "wire_client_dev",
        "wire_server_dev",
        "so_filename",
        "so_flags",
    }
)


def _int(name: str, text: str | None, low: int, high: int) -> int:
    try:
        number = int(text or "", 0)
    except ValueError:
        raise ConfigError(f"--{name}={text}: not a number") from None
    if not low <= number <= high:
        raise ConfigError(f"--{name}={number}: out of range ({low}..{high})")
    return number


def _address(name: str, text: str | None) -> str:
    try:
        return str(ipaddress.ip_interface(text or "").ip)
    except ValueError:
        raise ConfigError(f"--{name}={text}: not an IP address") from None


def build_config(
    script_options: list[tuple[str, str | None]],
    command_line: Mapping[str, str | None],
    *,
    verbose: bool = False,
    capture: bool = False,
) -> RunConfig:
    """The settings of one run. ``script_options`` are the script's ``--name=value``
    lines in order; ``command_line`` the options given to the command (they win)."""
    values: dict[str, str | None] = {}
    for given, value in [*script_options, *command_line.items()]:
        name = given.replace("-", "_")
        if name in UNSUPPORTED:
            raise ConfigError(f"--{name}: packetdrill's wire mode and shared-object stacks are not supported")
        if name not in KNOWN and name not in IGNORED:
            raise ConfigError(f"unknown option --{name}")
        values[name] = value
    version_text = values.get("ip_version") or "ipv4"
    if version_text not in IP_VERSIONS:
        raise ConfigError(f"--ip_version={version_text}: use one of {', '.join(IP_VERSIONS)}")
    family = 6 if version_text == "ipv6" else 4
    defaults = _DEFAULTS[family]
    local = _address("local_ip", values["local_ip"]) if values.get("local_ip") else defaults.local
    remote_text = values.get("remote_ip") or defaults.remote
    try:
        remote_net = ipaddress.ip_interface(remote_text)
    except ValueError:
        raise ConfigError(f"--remote_ip={remote_text}: not an IP address") from None
    gateway = _address("gateway_ip", values["gateway_ip"]) if values.get("gateway_ip") else defaults.gateway
    prefix = defaults.prefix
    if values.get("netmask_ip"):
        try:
            prefix = ipaddress.ip_network(f"0.0.0.0/{values['netmask_ip']}").prefixlen
        except ValueError:
            raise ConfigError(f"--netmask_ip={values['netmask_ip']}: not a netmask") from None
    for name, address in (("local_ip", local), ("remote_ip", str(remote_net.ip)), ("gateway_ip", gateway)):
        if ipaddress.ip_address(address).version != family:
            raise ConfigError(f"--{name}={address} is not an {'IPv6' if family == 6 else 'IPv4'} address")
    mtu_default = defaults.mtu
    config = RunConfig(
        addresses=Addresses(
            local_ip=local,
            remote_ip=str(remote_net.ip),
            bind_port=_int("bind_port", values["bind_port"], 1, 65535) if values.get("bind_port") else 8080,
            connect_port=(
                _int("connect_port", values["connect_port"], 1, 65535) if values.get("connect_port") else 8080
            ),
        ),
        ip_version=version_text,
        gateway_ip=gateway,
        prefix_len=prefix,
        remote_prefix=str(remote_net.network),
        mtu=_int("mtu", values["mtu"], 68, 65535)
        if values.get("mtu")
        else (int(mtu_default) if mtu_default else None),
        verbose=verbose or "verbose" in values,
        capture=capture,
    )
    if values.get("tolerance_usecs") is not None:
        config = replace(config, tolerance_usecs=_int("tolerance_usecs", values["tolerance_usecs"], 0, 10**9))
    if values.get("tolerance_percent") is not None:
        try:
            percent = float(values["tolerance_percent"] or "")
        except ValueError:
            raise ConfigError(f"--tolerance_percent={values['tolerance_percent']}: not a number") from None
        config = replace(config, tolerance_percent=percent)
    if values.get("tcp_ts_tick_usecs") is not None:
        config = replace(
            config, tcp_ts_tick_usecs=_int("tcp_ts_tick_usecs", values["tcp_ts_tick_usecs"], 0, 10**9)
        )
    if "tcp_ts_ecr_scaled" in values:
        config = replace(config, tcp_ts_ecr_scaled=True)
    if "strict_segments" in values:
        config = replace(config, strict_segments=True)
    return config

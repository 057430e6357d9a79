"""The options of ``l4kit respond``, written once.

:class:`RespondOptions` is the single description of the command's options: each
field carries its default and an :class:`OptionSpec` (flags, help text, bounds,
environment variable). From it, :mod:`l4kit.cli` builds the Typer command,
:meth:`RespondOptions.child_args` writes the command line of the responder that
``--sandbox`` starts inside its namespace, and :mod:`l4kit.live.responder` reads
the same object. A new option is one new field here.

Plain data only (no Typer, no Scapy), so that the CLI can build its help from it
without loading the live driver.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4kit.errors import ConfigError


class Codec(enum.StrEnum):
    """How replies are built."""

    scapy = "scapy"
    fast = "fast"


class FirewallBackend(enum.StrEnum):
    """How the kernel's RST is dropped."""

    auto = "auto"
    nft = "nft"
    iptables = "iptables"


#: ``--firewall``'s help, for every live command that takes it.
FIREWALL_HELP = "How the kernel's RST is dropped: nft (own table), iptables (own chain), auto."


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """How one field appears on the command line.

    ``flags`` are the option's names (the first one is what :meth:`RespondOptions.child_args`
    writes); a bool field is an on/off switch that defaults to off. ``child`` is False for
    an option the sandboxed child must not get again (``--sandbox`` itself)."""

    flags: tuple[str, ...]
    help: str
    envvar: str | None = None
    min: float | None = None
    max: float | None = None
    dir_okay: bool = True
    child: bool = True


def option(default: Any, *flags: str, help: str, **spec: Any) -> Any:
    """A dataclass field with its command-line description in the metadata."""
    return field(default=default, metadata={"option": OptionSpec(flags, help, **spec)})


def option_spec(item: dataclasses.Field[Any]) -> OptionSpec:
    spec = item.metadata["option"]
    assert isinstance(spec, OptionSpec)
    return spec


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondOptions:
    """Everything ``l4kit respond`` was asked to do. Values are checked (and text
    from a command line turned into the field's type) when the object is made."""

    iface: str = option("lo", "--iface", help="Interface to sniff and send on.", envvar="L4KIT_IFACE")
    port: int = option(8888, "--port", help="TCP port to answer on.", envvar="L4KIT_PORT", min=1, max=65535)
    address: str = option(
        "127.0.0.1",
        "--address",
        help="IP address to answer on (must be on the interface).",
        envvar="L4KIT_ADDRESS",
    )
    routes: Path | None = option(
        None,
        "--routes",
        help='TOML file of command = "reply" routes (default: toppage, ping, help).',
        dir_okay=False,
    )
    keep_open: bool = option(
        False, "--keep-open", help="Keep each connection open until the client closes it."
    )
    pcap: Path | None = option(
        None,
        "--pcap",
        help="Write every frame in and out to this pcap file: a new file, mode 0600, owned by the "
        "user who ran sudo. Never written through a symbolic link; a directory, device or FIFO is "
        "refused; an existing file only with --force.",
    )
    force: bool = option(
        False, "--force", help="Overwrite an existing --pcap file (in place: its mode and owner are kept)."
    )
    quiet: bool = option(False, "--quiet", "-q", help="Print only the exit summary.")
    verbose: bool = option(False, "--verbose", "-v", help="Also show drops and timers as they happen.")
    max_conns: int = option(1024, "--max-conns", help="Most connections held at once.", min=1)
    max_half_open: int = option(
        256,
        "--max-half-open",
        help="Most half-open (SYN-RECEIVED) connections before SYN cookies take over.",
        min=1,
    )
    no_firewall: bool = option(
        False, "--no-firewall", help="Change no firewall rule or sysctl; print what would be needed."
    )
    sandbox: bool = option(
        False,
        "--sandbox",
        help="Run in a throw-away network namespace (host left untouched).",
        child=False,
    )
    codec: Codec = option(
        Codec.scapy, "--codec", help="How replies are built: Scapy layers or the struct codec."
    )
    duration: float | None = option(None, "--duration", help="Stop by itself after this many seconds.", min=0)
    firewall: FirewallBackend = option(
        FirewallBackend.auto,
        "--firewall",
        help=FIREWALL_HELP,
    )
    rcvbuf: int = option(
        16 * 1024 * 1024,
        "--rcvbuf",
        help="Sniffer socket receive buffer in bytes (kernel drops beyond it are counted).",
        min=1,
    )
    synack_retries: int = option(
        5,
        "--synack-retries",
        help="SYN-ACK retransmissions (after 1, 2, 4 ... s) before a silent half-open connection "
        "is dropped (Linux tcp_synack_retries).",
        min=0,
        max=20,
    )
    retries: int = option(
        5,
        "--retries",
        help="Retransmissions of unacknowledged data or FIN (RFC 6298 backoff) before the "
        "connection is reset.",
        min=0,
        max=20,
    )
    idle_timeout: float = option(
        60.0,
        "--idle-timeout",
        help="Close (FIN) a connection on which nothing arrived for this many seconds; reset it "
        "if the peer has not finished as long again. 0: never.",
        min=0,
    )
    no_wscale: bool = option(False, "--no-wscale", help="Take up no window scaling (RFC 7323) from clients.")
    no_timestamps: bool = option(
        False, "--no-timestamps", help="Take up no timestamps (RFC 7323: RTTM, PAWS) from clients."
    )
    no_sack: bool = option(False, "--no-sack", help="Take up no selective acknowledgments (RFC 2018).")

    def __post_init__(self) -> None:
        hints = _field_types()
        for item in dataclasses.fields(self):
            value = _coerce(getattr(self, item.name), hints[item.name], option_spec(item))
            object.__setattr__(self, item.name, value)
        if self.quiet and self.verbose:
            raise ConfigError("--quiet and --verbose exclude each other")

    def child_args(self) -> list[str]:
        """The same options for the responder that ``--sandbox`` starts inside the
        namespace (paths made absolute: the child shares the working directory, but
        a user reading the command line should not have to know that)."""
        args: list[str] = []
        for item in dataclasses.fields(self):
            spec = option_spec(item)
            value = getattr(self, item.name)
            if not spec.child or value is None or value is False:
                continue
            flag = spec.flags[0]
            if value is True:
                args.append(flag)
            elif isinstance(value, Path):
                args += [flag, str(value.absolute())]
            elif isinstance(value, float):
                args += [flag, repr(value)]
            else:
                args += [flag, str(value)]
        return args


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(RespondOptions)


def field_type(name: str) -> Any:
    """The type of a :class:`RespondOptions` field (the annotations are text)."""
    return _field_types()[name]


def _coerce(value: Any, hint: Any, spec: OptionSpec) -> Any:
    """``value`` as the field's type (a command line gives text for a path or a
    choice), checked against the spec's bounds: one :class:`ConfigError` line if not."""
    name = spec.flags[0]
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} needs a value")
    kind = next((a for a in args if a is not type(None)), hint) if optional else hint
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            value = kind(value)
        elif kind is Path:
            value = Path(value)
        elif kind is int:
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            value = int(value)
        elif kind is float:
            value = float(value)
            if math.isnan(value):
                raise TypeError
        elif kind is str and not isinstance(value, str):
            raise TypeError
    except (TypeError, ValueError):
        choices = ""
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            choices = f" (one of {', '.join(str(member.value) for member in kind)})"
        raise ConfigError(f"{name} {value!r}: not a valid value{choices}") from None
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name} {value}: at least {_number(spec.min)}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name} {value}: at most {_number(spec.max)}")
    return value


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)

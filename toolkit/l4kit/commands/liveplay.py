"""``l4kit liveplay CAPTURE --server HOST:PORT``: the capture's clients, played again
against a live server with l4kit's own TCP (:mod:`l4kit.replay.liveplay`).

Exit status: 0 when every connection completed (differences are reported, not
errors; ``--strict`` makes them exit 1); 1 when a connection was refused, timed out
or was reset (one line when the server refused them all); 2 for a capture that cannot
be read or has no TCP, and for usage errors.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l4kit.errors import ConfigError, L4kitError

EXIT_USAGE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveplayRequest:
    capture: Path
    server: str
    streams: Sequence[int] = ()
    fmt: str = "table"
    timing: str = "fast"
    strict: bool = False
    parallel: int = 1
    timeout: float = 5.0
    iface: str | None = None
    pcap: Path | None = None
    force: bool = False
    firewall: str = "auto"


def parse_server(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` (an IPv6 address needs the brackets)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"--server {text!r}: use HOST:PORT ([ADDRESS]:PORT for IPv6)", exit_code=EXIT_USAGE)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(
                f"--server {text!r}: {host!r} is not an IPv6 address", exit_code=EXIT_USAGE
            ) from None
    elif ":" in host:
        raise ConfigError(f"--server {text!r}: write an IPv6 address in brackets, [{host}]:{port_text}",
                          exit_code=EXIT_USAGE)  # fmt: skip
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--server {text!r}: port {port} is not in 1-65535", exit_code=EXIT_USAGE)
    return host, port


class _OnInterface:
    """The live client as a liveplay connector, on the interface asked for."""

    def __init__(self, client: Any, iface: str | None) -> None:
        self.client = client
        self.iface = iface

    def connect(self, host: str, port: int, *, timeout: float | None) -> Any:
        return self.client.connect(host, port, iface=self.iface, timeout=timeout)


def liveplay(request: LiveplayRequest) -> int:
    host, port = parse_server(request.server)
    if request.timing not in ("fast", "asis"):
        raise ConfigError(f"--timing {request.timing}: use fast or asis", exit_code=EXIT_USAGE)
    from l4kit.replay.liveplay import LiveplayReport, play_all
    from l4kit.replay.liveplay_capture import read_capture

    connections = read_capture(str(request.capture), streams=request.streams)
    from l4kit.live.client import Client
    from l4kit.live.privileges import require_live_privileges

    require_live_privileges("l4kit liveplay", firewall=True)
    with Client(
        firewall=request.firewall,
        pcap=request.pcap,
        force=request.force,
        command="l4kit liveplay",
        notice=lambda text: print(text, file=sys.stderr),
    ) as client:
        results = play_all(
            connections,
            _OnInterface(client, request.iface),
            host,
            port,
            timing=request.timing,
            timeout=request.timeout,
            parallel=request.parallel,
        )
    report = LiveplayReport(str(request.capture), request.server, results)
    from l4kit.views.client import liveplay_footer, liveplay_json, liveplay_table

    if request.fmt == "json":
        sys.stdout.write(liveplay_json(report) + "\n")
        sys.stdout.flush()
    else:
        from l4kit.views.live import consoles

        console, _err = consoles()
        console.print(liveplay_table(report))
        console.print(liveplay_footer(report), markup=False)
    if results and all(r.state == "refused" for r in results):
        raise L4kitError(f"{request.server} refused every connection (RST to the SYN)")
    if any(r.state != "completed" for r in results):
        return 1
    if request.strict and any(not r.identical for r in results):
        return 1
    return 0

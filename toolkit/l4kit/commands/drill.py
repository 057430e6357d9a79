"""``l4kit drill``: run packetdrill scripts and report each one.

Every script is read and parsed first, so that a typo in the fifth script stops
the command before the first one runs (exit 2, ``file:line: what``). Then each
runs against the chosen target, from its own directory (so ``../common/defaults.sh``
works), and its report is printed as soon as it is done. Exit status: 0 when
every script passed, 1 when any failed (or the kernel target lacks privileges), 2
for a usage error or a script that does not parse.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from l4kit.errors import ConfigError, L4kitError, PrivilegeError

if TYPE_CHECKING:
    from l4kit.drill.run.loop import RunConfig, ScriptResult
    from l4kit.drill.script.model import Script

LINKTYPE_RAW = 101  # pcap's link type for bare IPv4/IPv6 packets, as the TUN device carries them


@dataclass(frozen=True)
class DrillRequest:
    """The command line of ``l4kit drill``: the scripts, the target, the output, and the
    run options in packetdrill's names (``tolerance_usecs``, ``ip_version``...), which
    override the scripts' own ``--options``."""

    scripts: list[Path]
    target: str = "kernel"
    fmt: str = "table"
    pcap: Path | None = None
    force: bool = False
    verbose: bool = False
    options: dict[str, str | None] = field(default_factory=dict)
    defines: dict[str, str] = field(default_factory=dict)


def parse_defines(values: list[str]) -> dict[str, str]:
    """``-D NAME=VALUE`` definitions (packetdrill's spelling) as a mapping."""
    defines = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise ConfigError(f"-D {value}: write definitions as NAME=VALUE", exit_code=2)
        defines[name] = text
    return defines


def _load(request: DrillRequest) -> list[tuple[Script, RunConfig]]:
    from l4kit.drill.run.settings import build_config
    from l4kit.drill.script import parse

    loaded = []
    for path in request.scripts:
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", exit_code=2) from None
        script = parse(text, str(path), request.defines)
        try:
            config = build_config(
                [(option.name, option.value) for option in script.options],
                request.options,
                verbose=request.verbose,
                capture=request.pcap is not None,
            )
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", exit_code=2) from None
        loaded.append((script, config))
    return loaded


def _require_tun() -> None:
    if not os.path.exists("/dev/net/tun"):
        raise L4kitError(
            "l4kit drill --target kernel needs the TUN device /dev/net/tun",
            hint="load the tun module (modprobe tun), or in a container pass --device /dev/net/tun",
        )


def _require_kernel_privileges() -> None:
    from l4kit.live.privileges import Capability, effective_capabilities, missing_capabilities

    needed = [Capability.CAP_SYS_ADMIN, Capability.CAP_NET_ADMIN, Capability.CAP_NET_RAW]
    missing = missing_capabilities(effective_capabilities(), needed)
    if missing:
        names = ", ".join(cap.name for cap in missing)
        raise PrivilegeError(
            f"l4kit drill --target kernel needs {names} (a network namespace, a TUN device, a packet "
            "socket); run it as root or with sudo"
        )


def _write_pcap(path: Path, results: list[ScriptResult], *, overwrite: bool) -> None:
    """Every packet of the runs, script after script. The file is opened as every file
    l4kit writes as root is (:mod:`l4kit.safefile`: no symbolic link, 0600, an existing
    file only with ``--force``)."""
    from l4kit.live.pcap import SNAPLEN, pcap_global_header, pcap_record
    from l4kit.safefile import open_new_file

    try:
        with open_new_file(path, overwrite=overwrite, option="--pcap") as out:
            out.write(pcap_global_header(SNAPLEN, LINKTYPE_RAW))
            for result in results:
                for frame in result.frames:
                    out.write(pcap_record(frame.time_us / 1e6, frame.data))
    except OSError as exc:
        raise L4kitError(f"cannot write {path}: {exc.strerror or exc}") from None


def run_drill(request: DrillRequest) -> int:
    """``l4kit drill``: the exit status (0 every script passed, 1 one failed)."""
    from rich.console import Console

    from l4kit.views.drill import print_result, print_summary, results_json

    if request.fmt not in ("table", "json"):
        raise ConfigError(f"--format {request.fmt}: use table or json", exit_code=2)
    if request.target not in ("kernel", "l4kit"):
        raise ConfigError(f"--target {request.target}: use kernel or l4kit", exit_code=2)
    loaded = _load(request)
    if request.pcap is not None:
        from l4kit.safefile import check_new_file

        try:
            check_new_file(request.pcap, overwrite=request.force, option="--pcap")
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=exc.hint, exit_code=2) from None
    if request.target == "kernel":
        _require_kernel_privileges()
        _require_tun()
        from l4kit.drill.run.kernel import run_script, warm_up

        warm_up()
    else:
        from l4kit.drill.run.virtual import run_script

    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    console = Console(highlight=False, width=width)
    start = time.monotonic()
    results: list[ScriptResult] = []
    show_tables = request.verbose or len(loaded) == 1
    for script, config in loaded:
        result = run_script(script, config)
        results.append(result)
        if request.fmt == "table":
            print_result(console, result, table=show_tables or not result.passed)
    elapsed = time.monotonic() - start
    if request.fmt == "json":
        sys.stdout.write(results_json(results, request.target, elapsed) + "\n")
    elif len(results) > 1:
        print_summary(console, results, elapsed)
    if request.pcap is not None:
        _write_pcap(request.pcap, results, overwrite=request.force)
    return 0 if all(result.passed for result in results) else 1

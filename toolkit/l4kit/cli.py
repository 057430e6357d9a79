"""The ``l4kit`` command line: the Typer app, whose commands hand their options
to :mod:`l4kit.commands`.

One error boundary (:func:`main`): an :class:`~l4kit.errors.L4kitError` becomes
one Rich error line on stderr and its exit code; Ctrl-C exits 130 quietly.
Heavy imports (Scapy) happen inside the commands, so ``l4kit --help`` is fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from l4kit import __version__
from l4kit.errors import L4kitError
from l4kit.live.options import FIREWALL_HELP, FirewallBackend, RespondOptions, field_type, option_spec

app = typer.Typer(
    name="l4kit",
    help=(
        "TCP at layer 4, in the open: a userspace TCP responder, a capture analyser "
        "and notebooks that step through a handshake one packet at a time."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


#: ``--format`` / ``-f`` of the commands whose formats are their type's values.
FORMAT_OPTION = typer.Option("--format", "-f", help="Output format.")


class ReplayFormat(enum.StrEnum):
    table = "table"
    json = "json"
    mermaid = "mermaid"
    zeek = "zeek"
    zeek_json = "zeek-json"
    parquet = "parquet"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"l4kit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """TCP at layer 4, in the open."""


def _respond(**values: Any) -> None:
    """Answer TCP on [bold]--address[/]:[bold]--port[/] from userspace: handshake, string replies, close.

    Needs root (CAP_NET_RAW for the packet socket, CAP_NET_ADMIN for the rule that
    stops the kernel's RST and for the loopback sysctls). Everything it changes is
    restored on exit; [bold]l4kit cleanup[/] removes leftovers of a killed run.
    """
    from l4kit.commands.respond import respond as run_respond

    raise typer.Exit(run_respond(RespondOptions(**values)))


def _option_parameters(options: type[Any]) -> inspect.Signature:
    """A Typer signature made from an options dataclass (:mod:`l4kit.live.options`):
    one keyword parameter per field, its type, default, flags, help and bounds."""
    parameters = []
    for item in dataclasses.fields(options):
        spec = option_spec(item)
        info = typer.Option(
            *spec.flags,
            help=spec.help,
            envvar=spec.envvar,
            min=spec.min,
            max=spec.max,
            dir_okay=spec.dir_okay,
            show_default=item.default is not None and item.default is not False,
        )
        parameters.append(
            inspect.Parameter(
                item.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=item.default,
                annotation=Annotated[field_type(item.name), info],
            )
        )
    return inspect.Signature(parameters, return_annotation=None)


_respond.__signature__ = _option_parameters(RespondOptions)  # type: ignore[attr-defined]
app.command("respond")(_respond)


@app.command()
def replay(  # noqa: PLR0917 - one parameter per command-line option
    files: Annotated[
        list[Path],
        typer.Argument(
            help="pcap or pcapng captures (gzip'd too) and directories of them; rotated files "
            "(tcpdump -C/-G) are read as one capture; - reads one from standard input.",
            show_default=False,
        ),
    ],
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Only connections on this port.")] = None,
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Show only the packets this BPF filter matches (tcpdump's); ids and frame numbers stay "
            "those of the whole capture.",
        ),
    ] = None,
    stream: Annotated[
        int | None,
        typer.Option(min=0, help="Only this connection (its id in the summary, as tshark's tcp.stream)."),
    ] = None,
    format: Annotated[ReplayFormat, FORMAT_OPTION] = ReplayFormat.table,
    step: Annotated[
        bool,
        typer.Option(
            "--step",
            help="Walk one packet at a time with its Scapy layers (Enter to advance, q to stop; without "
            "a terminal to answer, every step is printed without waiting). Table format only.",
        ),
    ] = False,
    through_responder: Annotated[
        bool,
        typer.Option(
            "--through-responder", help="Feed each client side to l4kit's responder and show differences."
        ),
    ] = False,
    routes: Annotated[
        Path | None, typer.Option(help="Routes for --through-responder (default: the embedded ones).")
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Most packets kept and shown per connection.")
    ] = 1000,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=0,
            envvar="L4KIT_REPLAY_JOBS",
            help="Processes for the json, zeek and parquet formats, each analysing a share of the "
            "connections (0: two for captures of 4 MiB or more on two cores; 1: one); with --dask, "
            "tasks per capture. The output is the same.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (--format parquet: required).", dir_okay=False
        ),
    ] = None,
    packets: Annotated[
        Path | None,
        typer.Option(
            help="With --format parquet: also write the per-packet table to this file.", dir_okay=False
        ),
    ] = None,
    no_stitch: Annotated[
        bool,
        typer.Option("--no-stitch", help="Read every capture on its own, even files of one rotated capture."),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            metavar="tcp://SCHEDULER:8786",
            help="Run on this Dask cluster (pip install 'l4kit\\[cluster]'; workers must see the captures).",
            envvar="L4KIT_DASK",
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="A progress bar on standard error (default: for long runs, on a terminal).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the TCP conversations in captures: flag transitions, states, checksums, anomalies;
    or write them for analytics (Zeek's conn.log, Parquet; docs/analytics.md).

    Exit status: 0 when the captures were read to their end; 2 when one cannot be read
    (missing, not a capture, a pcap of an unsupported link type, bad filter, --stream
    past the last connection); 3 when one was cut short (everything before the cut is
    shown). A pcapng interface of an unsupported link type is skipped with a warning.
    """
    from l4kit.commands.replay import run_replay

    if format.value == "parquet" and not dask:
        from l4kit.replay.parquet import skip_pandas_probe

        with contextlib.suppress(L4kitError):  # no pyarrow: run_replay says how to install it
            skip_pandas_probe()
    code = run_replay(
        [str(f) for f in files],
        fmt=format.value,
        port=port,
        bpf=filter,
        stream=stream,
        step=step,
        max_rows=max_rows,
        through_responder=through_responder,
        routes=str(routes) if routes is not None else None,
        jobs=jobs,
        output=str(output) if output is not None else None,
        packets=str(packets) if packets is not None else None,
        stitch=not no_stitch,
        dask=dask,
        progress=progress,
    )
    if code:
        raise typer.Exit(code)


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"


# The options every live client command takes alike.
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing --pcap file.")]
FirewallOption = Annotated[FirewallBackend, typer.Option(help=FIREWALL_HELP)]


@app.command()
def connect(  # noqa: PLR0917 - one parameter per command-line option
    host: Annotated[str, typer.Argument(help="The server: an IPv4 or IPv6 address, or a name.")],
    port: Annotated[int, typer.Argument(min=1, max=65535, help="The server's TCP port.")],
    send: Annotated[
        str | None, typer.Option("--send", help="Send this text (UTF-8) instead of standard input.")
    ] = None,
    send_file: Annotated[
        Path | None,
        typer.Option("--send-file", dir_okay=False, help="Send this file's bytes instead of standard input."),
    ] = None,
    iface: Annotated[
        str | None, typer.Option(help="The interface the route must use (default: the kernel's route).")
    ] = None,
    source_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Local port (0: a free ephemeral port the kernel picks).")
    ] = 0,
    timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds to wait for the handshake, and for the server between bytes."),
    ] = 10.0,
    format: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="The transitions on standard error: a table or JSON."),
    ] = OutputFormat.table,
    pcap: Annotated[
        Path | None,
        typer.Option(
            help="Write every frame in and out to this pcap file (a new file, mode 0600; never "
            "through a symbolic link; an existing file only with --force)."
        ),
    ] = None,
    force: ForceOption = False,
    firewall: FirewallOption = FirewallBackend.auto,
) -> None:
    """Connect to [bold]HOST[/] [bold]PORT[/] with l4kit's own TCP, like nc: send the input, half-close
    when it ends, print what the server sends.

    The server's bytes go to standard output exactly as received; the flag-transition
    table (or JSON) goes to standard error. Exit status: 0 when the connection closed
    cleanly, 1 when it was refused, timed out or reset, 2 for a usage error. Needs root
    (CAP_NET_RAW, CAP_NET_ADMIN); the host is restored on exit ([bold]l4kit cleanup[/]
    after a kill -9).
    """
    from l4kit.commands.connect import ConnectRequest
    from l4kit.commands.connect import connect as run_connect

    raise typer.Exit(
        run_connect(
            ConnectRequest(
                host=host, port=port, send=send, send_file=send_file, iface=iface, source_port=source_port,
                timeout=timeout, fmt=format.value, pcap=pcap, force=force, firewall=firewall.value,
            )
        )
    )  # fmt: skip


class Timing(enum.StrEnum):
    fast = "fast"
    asis = "asis"


@app.command()
def liveplay(  # noqa: PLR0917 - one parameter per command-line option
    capture: Annotated[Path, typer.Argument(help="A pcap or pcapng capture (gzip'd too).")],
    server: Annotated[
        str, typer.Option("--server", help="The live server: HOST:PORT, [IPv6]:PORT.", show_default=False)
    ],
    stream: Annotated[
        list[int] | None,
        typer.Option(min=0, help="Only this connection (its id in replay's summary); repeatable."),
    ] = None,
    format: Annotated[OutputFormat, FORMAT_OPTION] = OutputFormat.table,
    timing: Annotated[
        Timing,
        typer.Option(
            help="fast: send each client turn as soon as the server's turn is in; asis: keep "
            "the captured gaps."
        ),
    ] = Timing.fast,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 1 when the live server's bytes differ from the captured ones."),
    ] = False,
    parallel: Annotated[int, typer.Option(min=1, max=256, help="Connections played at once.")] = 1,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.001, help="Seconds to wait for the handshake, for each server turn and for the close."
        ),
    ] = 5.0,
    iface: Annotated[str | None, typer.Option(help="The interface the route must use.")] = None,
    pcap: Annotated[
        Path | None,
        typer.Option(help="Write every live frame in and out to this pcap file (a new file, mode 0600)."),
    ] = None,
    force: ForceOption = False,
    firewall: FirewallOption = FirewallBackend.auto,
) -> None:
    """Play the client side of each captured TCP connection against a live server, with real TCP,
    and compare what the server sends with what the captured server sent.

    Exit status: 0 when every connection completed (differences are reported, not errors;
    [bold]--strict[/] makes them exit 1); 1 when one was refused, timed out or reset; 2 when
    the capture cannot be read or holds no TCP. Needs root, like [bold]connect[/].
    """
    from l4kit.commands.liveplay import LiveplayRequest
    from l4kit.commands.liveplay import liveplay as run_liveplay

    raise typer.Exit(
        run_liveplay(
            LiveplayRequest(
                capture=capture, server=server, streams=tuple(stream or ()), fmt=format.value,
                timing=timing.value, strict=strict, parallel=parallel, timeout=timeout, iface=iface,
                pcap=pcap, force=force, firewall=firewall.value,
            )
        )
    )  # fmt: skip


@app.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be removed.")] = False,
) -> None:
    """Remove firewall rules and restore sysctls left behind by a killed responder."""
    from l4kit.commands.cleanup import cleanup as run_cleanup

    raise typer.Exit(run_cleanup(dry_run=dry_run))


@app.command()
def doctor() -> None:
    """Check what the live commands need (privileges, tcpdump, nft/iptables, ip netns) and how to fix it."""
    from l4kit.commands.doctor import doctor as run_doctor

    raise typer.Exit(run_doctor())


@app.command()
def demo(
    message: Annotated[str, typer.Option(help="The request the client sends.")] = "toppage",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8888,
) -> None:
    """Run the whole thing once: responder, client, table, clean stop.

    The responder runs in a throw-away network namespace, `echo toppage | nc` talks to it,
    and its flag-transition table and exit summary are printed; the exit status is 0 only
    if the client got the right reply.
    """
    from l4kit.commands.demo import demo as run_demo

    raise typer.Exit(run_demo(message=message, port=port))


class DrillTarget(enum.StrEnum):
    kernel = "kernel"
    l4kit = "l4kit"


class IpVersion(enum.StrEnum):
    ipv4 = "ipv4"
    ipv6 = "ipv6"
    ipv4_mapped_ipv6 = "ipv4-mapped-ipv6"


@app.command()
def drill(  # noqa: PLR0917 - one parameter per command-line option
    scripts: Annotated[list[Path], typer.Argument(help="packetdrill scripts (.pkt) to run, in order.")],
    target: Annotated[
        DrillTarget, typer.Option(help="The stack under test: the Linux kernel, or l4kit's core.")
    ] = DrillTarget.kernel,
    tolerance_usecs: Annotated[
        int | None,
        typer.Option(
            "--tolerance-usecs",
            "--tolerance_usecs",
            min=0,
            help="How far a packet or call may be from its time, in microseconds [default: 4000].",
        ),
    ] = None,
    tolerance_percent: Annotated[
        float | None,
        typer.Option(
            "--tolerance-percent",
            "--tolerance_percent",
            min=0,
            help="Or this share of the time since the previous event, when larger [default: 12.5].",
        ),
    ] = None,
    ip_version: Annotated[
        IpVersion | None,
        typer.Option("--ip-version", "--ip_version", help="Addresses and sockets [default: ipv4]."),
    ] = None,
    local_ip: Annotated[
        str | None, typer.Option("--local-ip", "--local_ip", help="The stack's address [192.168.0.1].")
    ] = None,
    remote_ip: Annotated[
        str | None, typer.Option("--remote-ip", "--remote_ip", help="The peer's address [192.0.2.1].")
    ] = None,
    gateway_ip: Annotated[
        str | None, typer.Option("--gateway-ip", "--gateway_ip", help="The route to the peer [192.168.0.1].")
    ] = None,
    netmask_ip: Annotated[
        str | None, typer.Option("--netmask-ip", "--netmask_ip", help="The stack's netmask [255.255.0.0].")
    ] = None,
    bind_port: Annotated[
        int | None,
        typer.Option("--bind-port", "--bind_port", min=1, max=65535, help="Port bind() uses [8080]."),
    ] = None,
    connect_port: Annotated[
        int | None,
        typer.Option(
            "--connect-port", "--connect_port", min=1, max=65535, help="Port connect() uses [8080]."
        ),
    ] = None,
    mtu: Annotated[int | None, typer.Option(min=68, help="MTU of the test interface.")] = None,
    define: Annotated[
        list[str] | None, typer.Option("--define", "-D", help="NAME=VALUE: replace NAME in the scripts.")
    ] = None,
    tcp_ts_tick_usecs: Annotated[
        int | None,
        typer.Option("--tcp-ts-tick-usecs", "--tcp_ts_tick_usecs", min=0, help="Check TS val at this tick."),
    ] = None,
    tcp_ts_ecr_scaled: Annotated[
        bool,
        typer.Option(
            "--tcp-ts-ecr-scaled", "--tcp_ts_ecr_scaled", help="Map unknown TS ecr values by offset."
        ),
    ] = False,
    send_omit_free: Annotated[
        bool, typer.Option("--send-omit-free", "--send_omit_free", hidden=True, help="Accepted, no effect.")
    ] = False,
    format: Annotated[OutputFormat, FORMAT_OPTION] = OutputFormat.table,
    pcap: Annotated[
        Path | None, typer.Option(help="Write every packet of the runs to this pcap file.")
    ] = None,
    force: ForceOption = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the table of every script, not only failing ones.")
    ] = False,
) -> None:
    """Run packetdrill scripts against the Linux kernel (in a throw-away network namespace) or l4kit's core.

    Each script runs from its own directory, with packetdrill's addresses and
    options, so existing scripts and invocations carry over. Exit status: 0 when
    every script passed; 1 when any failed; 2 for a usage error or a script that
    does not parse ([bold]file:line: what is wrong[/]). The kernel target needs root.
    """
    from l4kit.commands.drill import DrillRequest, parse_defines, run_drill

    options: dict[str, str | None] = {
        name: str(value)
        for name, value in (
            ("tolerance_usecs", tolerance_usecs), ("tolerance_percent", tolerance_percent),
            ("ip_version", ip_version.value if ip_version else None), ("local_ip", local_ip),
            ("remote_ip", remote_ip), ("gateway_ip", gateway_ip), ("netmask_ip", netmask_ip),
            ("bind_port", bind_port), ("connect_port", connect_port), ("mtu", mtu),
            ("tcp_ts_tick_usecs", tcp_ts_tick_usecs),
        )
        if value is not None
    }  # fmt: skip
    if tcp_ts_ecr_scaled:
        options["tcp_ts_ecr_scaled"] = None
    code = run_drill(
        DrillRequest(
            scripts=scripts, target=target.value, fmt=format.value, pcap=pcap, force=force, verbose=verbose,
            options=options, defines=parse_defines(define or []),
        )
    )  # fmt: skip
    raise typer.Exit(code)


def _fail(exc: L4kitError) -> NoReturn:
    # Rich only now: ``replay --format json`` never loads it (its start-up is part of
    # replay's time, benchmarks/bench_replay.py).
    from rich.console import Console
    from rich.markup import escape

    # The message is text, not markup: an IPv6 endpoint "[::1]:8888" or a file name
    # with brackets must come out as written.
    Console(stderr=True, highlight=False).print(
        f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True
    )
    sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point: the one error boundary."""
    try:
        app()
    except L4kitError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

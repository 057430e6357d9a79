"""The ``l4kit`` command line: the Typer app, whose commands hand their options
to :mod:`l4kit.commands`.

One error boundary (:func:`main`): an :class:`~l4kit.errors.L4kitError` becomes
one Rich error line on stderr and its exit code; Ctrl-C exits 130 quietly.
Heavy imports (Scapy) happen inside the commands, so ``l4kit --help`` is fast.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from l4kit import __version__
from l4kit.errors import L4kitError
from l4kit.live.options import RespondOptions, field_type, option_spec

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
    format: Annotated[
        ReplayFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ReplayFormat.table,
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
            help="Run on this Dask cluster (pip install 'l4kit[cluster]'; workers must see the captures).",
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


class Firewall(enum.StrEnum):
    auto = "auto"
    nft = "nft"
    iptables = "iptables"


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
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --pcap file.")] = False,
    firewall: Annotated[
        Firewall,
        typer.Option(help="How the kernel's RST is dropped: nft (own table), iptables (own chain), auto."),
    ] = Firewall.auto,
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
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
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
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --pcap file.")] = False,
    firewall: Annotated[
        Firewall,
        typer.Option(help="How the kernel's RST is dropped: nft (own table), iptables (own chain), auto."),
    ] = Firewall.auto,
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
    """Run the whole thing once: the responder in a throw-away namespace, `echo toppage | nc` against it,
    the flag-transition table, a clean stop."""
    from l4kit.commands.demo import demo as run_demo

    raise typer.Exit(run_demo(message=message, port=port))


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

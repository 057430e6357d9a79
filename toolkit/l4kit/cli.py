"""The ``l4kit`` command line: thin commands that hand work to plain functions.

One error boundary (:func:`main`): an :class:`~l4kit.errors.L4kitError` becomes
one Rich error line on stderr and its exit code; Ctrl-C exits 130 quietly.
Heavy imports (Scapy) happen inside the commands, so ``l4kit --help`` is fast.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from l4kit import __version__
from l4kit.errors import L4kitError

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


class Codec(enum.StrEnum):
    scapy = "scapy"
    fast = "fast"


class FirewallBackend(enum.StrEnum):
    auto = "auto"
    nft = "nft"
    iptables = "iptables"


class ReplayFormat(enum.StrEnum):
    table = "table"
    json = "json"
    mermaid = "mermaid"


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


@app.command()
def respond(  # noqa: PLR0917 - a Typer command: one parameter per option
    iface: Annotated[str, typer.Option(help="Interface to sniff and send on.", envvar="L4KIT_IFACE")] = "lo",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="TCP port to answer on.", envvar="L4KIT_PORT")
    ] = 8888,
    address: Annotated[
        str, typer.Option(help="IP address to answer on (must be on the interface).", envvar="L4KIT_ADDRESS")
    ] = "127.0.0.1",
    routes: Annotated[
        Path | None,
        typer.Option(
            help='TOML file of command = "reply" routes (default: toppage, ping, help).',
            exists=False,
            dir_okay=False,
        ),
    ] = None,
    keep_open: Annotated[
        bool, typer.Option("--keep-open", help="Keep each connection open until the client closes it.")
    ] = False,
    pcap: Annotated[Path | None, typer.Option(help="Write every frame in and out to this pcap file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the exit summary.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show drops and timers as they happen.")
    ] = False,
    max_conns: Annotated[int, typer.Option(min=1, help="Most connections held at once.")] = 1024,
    max_half_open: Annotated[
        int,
        typer.Option(min=1, help="Most half-open (SYN-RECEIVED) connections before SYN cookies take over."),
    ] = 256,
    no_firewall: Annotated[
        bool,
        typer.Option("--no-firewall", help="Change no firewall rule or sysctl; print what would be needed."),
    ] = False,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run in a throw-away network namespace (host left untouched).")
    ] = False,
    codec: Annotated[
        Codec, typer.Option(help="How replies are built: Scapy layers or the struct codec.")
    ] = Codec.scapy,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop by itself after this many seconds.")
    ] = None,
    firewall: Annotated[
        FirewallBackend,
        typer.Option(help="How the kernel's RST is dropped: nft (own table), iptables (own chain), auto."),
    ] = FirewallBackend.auto,
    rcvbuf: Annotated[
        int,
        typer.Option(
            min=1, help="Sniffer socket receive buffer in bytes (kernel drops beyond it are counted)."
        ),
    ] = 16 * 1024 * 1024,
    synack_retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=20,
            help="SYN-ACK retransmissions (after 1, 2, 4 ... s) before a silent half-open connection "
            "is dropped (Linux tcp_synack_retries).",
        ),
    ] = 5,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=20,
            help="Retransmissions of unacknowledged data or FIN (RFC 6298 backoff) before the "
            "connection is reset.",
        ),
    ] = 5,
    idle_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Close (FIN) a connection on which nothing arrived for this many seconds; reset it "
            "if the peer has not finished as long again. 0: never.",
        ),
    ] = 60.0,
    no_wscale: Annotated[
        bool, typer.Option("--no-wscale", help="Take up no window scaling (RFC 7323) from clients.")
    ] = False,
    no_timestamps: Annotated[
        bool, typer.Option("--no-timestamps", help="Take up no timestamps (RFC 7323: RTTM, PAWS).")
    ] = False,
    no_sack: Annotated[
        bool, typer.Option("--no-sack", help="Take up no selective acknowledgments (RFC 2018).")
    ] = False,
) -> None:
    """Answer TCP on [bold]--address[/]:[bold]--port[/] from userspace: handshake, string replies, close.

    Needs root (CAP_NET_RAW for the packet socket, CAP_NET_ADMIN for the rule that
    stops the kernel's RST and for the loopback sysctls). Everything it changes is
    restored on exit; [bold]l4kit cleanup[/] removes leftovers of a killed run.
    """
    from l4kit.views import live as live_view

    code = live_view.respond(
        live_view.RespondRequest(
            iface=iface, port=port, address=address, routes=routes, keep_open=keep_open, pcap=pcap,
            quiet=quiet, verbose=verbose, max_conns=max_conns, max_half_open=max_half_open,
            no_firewall=no_firewall, sandbox=sandbox, codec=codec.value, duration=duration,
            firewall=firewall.value, rcvbuf=rcvbuf, synack_retries=synack_retries, retries=retries,
            idle_timeout=idle_timeout, no_wscale=no_wscale, no_timestamps=no_timestamps, no_sack=no_sack,
        )
    )  # fmt: skip
    raise typer.Exit(code)


@app.command()
def replay(  # noqa: PLR0917 - one parameter per command-line option
    file: Annotated[Path, typer.Argument(help="A pcap or pcapng capture (gzip'd too).")],
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Only connections on this port.")] = None,
    filter: Annotated[
        str | None, typer.Option("--filter", help="A BPF filter applied while reading (run through tcpdump).")
    ] = None,
    stream: Annotated[
        int | None,
        typer.Option(min=0, help="Only this connection (its id in the summary, as tshark's tcp.stream)."),
    ] = None,
    format: Annotated[
        ReplayFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ReplayFormat.table,
    step: Annotated[
        bool, typer.Option("--step", help="Walk one packet at a time (Enter to advance).")
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
            help="Processes for --format json, each analysing a share of the connections "
            "(0: two for a capture of 4 MiB or more on two cores; 1: one). The output is the same.",
        ),
    ] = None,
) -> None:
    """Show the TCP conversations in a capture: flag transitions, states, checksums, anomalies.

    Exit status: 0 when the capture was read to its end; 2 when it cannot be read
    (missing, not a capture, unsupported link type, bad filter); 3 when it was cut
    short (everything before the cut is shown).
    """
    from l4kit.views.replay import run_replay

    code = run_replay(
        str(file),
        fmt=format.value,
        port=port,
        bpf=filter,
        stream=stream,
        step=step,
        max_rows=max_rows,
        through_responder=through_responder,
        routes=str(routes) if routes is not None else None,
        jobs=jobs,
    )
    if code:
        raise typer.Exit(code)


@app.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be removed.")] = False,
) -> None:
    """Remove firewall rules and restore sysctls left behind by a killed responder."""
    from l4kit.views import live as live_view

    raise typer.Exit(live_view.cleanup(dry_run=dry_run))


@app.command()
def doctor() -> None:
    """Check what the live commands need (privileges, tcpdump, nft/iptables, ip netns) and how to fix it."""
    from l4kit.views import live as live_view

    raise typer.Exit(live_view.doctor())


@app.command()
def demo(
    message: Annotated[str, typer.Option(help="The request the client sends.")] = "toppage",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8888,
) -> None:
    """Run the whole thing once: the responder in a throw-away namespace, `echo toppage | nc` against it,
    the flag-transition table, a clean stop."""
    from l4kit.views import live as live_view

    raise typer.Exit(live_view.demo(message=message, port=port))


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

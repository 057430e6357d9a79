"""``l4kit respond``: the live responder, its tables as connections close, the exit summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from l4kit.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondRequest:
    """The options of ``l4kit respond`` as the CLI parsed them."""

    iface: str = "lo"
    port: int = 8888
    address: str = "127.0.0.1"
    routes: Path | None = None
    keep_open: bool = False
    pcap: Path | None = None
    quiet: bool = False
    verbose: bool = False
    max_conns: int = 1024
    max_half_open: int = 256
    no_firewall: bool = False
    sandbox: bool = False
    codec: str = "scapy"
    duration: float | None = None
    firewall: str = "auto"
    rcvbuf: int = 16 * 1024 * 1024
    synack_retries: int = 5
    retries: int = 5

    def child_args(self) -> list[str]:
        """The same options for the responder that ``--sandbox`` starts inside the
        namespace (paths made absolute: the child shares the working directory, but
        a user reading the command line should not have to know that)."""
        args = ["--iface", self.iface, "--port", str(self.port), "--address", self.address]
        args += ["--max-conns", str(self.max_conns), "--max-half-open", str(self.max_half_open)]
        args += ["--codec", self.codec, "--firewall", self.firewall, "--rcvbuf", str(self.rcvbuf)]
        args += ["--synack-retries", str(self.synack_retries), "--retries", str(self.retries)]
        if self.routes is not None:
            args += ["--routes", str(self.routes.absolute())]
        if self.pcap is not None:
            args += ["--pcap", str(self.pcap.absolute())]
        if self.duration is not None:
            args += ["--duration", repr(self.duration)]
        for flag, on in (
            ("--keep-open", self.keep_open),
            ("--quiet", self.quiet),
            ("--verbose", self.verbose),
            ("--no-firewall", self.no_firewall),
        ):
            if on:
                args.append(flag)
        return args


def respond(request: RespondRequest) -> int:
    """Run until stopped, print tables as connections close, then the exit
    summary. Returns the exit code."""
    from l4kit.live.privileges import require_live_privileges
    from l4kit.views.live import consoles

    if request.quiet and request.verbose:
        raise ConfigError("--quiet and --verbose exclude each other")
    console, err = consoles()
    if request.sandbox:
        require_live_privileges("l4kit respond --sandbox", firewall=True, namespace=True)
        from l4kit.live.sandbox import run_sandboxed

        return run_sandboxed(request.child_args(), port=request.port, notice=console.print)
    require_live_privileges(firewall=not request.no_firewall)

    from l4kit.live.report import ReadyInfo
    from l4kit.live.responder import ResponderOptions, run_responder
    from l4kit.views.live import LiveRenderer, print_display_failure, print_notice, print_ready, summary_table

    options = ResponderOptions(
        iface=request.iface,
        address=request.address,
        port=request.port,
        routes_file=request.routes,
        keep_open=request.keep_open,
        pcap=request.pcap,
        max_conns=request.max_conns,
        max_half_open=request.max_half_open,
        firewall="none" if request.no_firewall else request.firewall,
        codec=request.codec,
        duration=request.duration,
        socket_buffer=request.rcvbuf,
        synack_retries=request.synack_retries,
        retries=request.retries,
    )
    renderer = None if request.quiet else LiveRenderer(console, verbose=request.verbose)

    def on_ready(info: ReadyInfo) -> None:
        print_ready(console, info, quiet=request.quiet, verbose=request.verbose)

    display = None
    try:
        summary = run_responder(
            options,
            sink=renderer.submit if renderer else None,
            on_ready=on_ready,
            notice=lambda text: print_notice(console, err, text),
        )
    finally:
        if renderer is not None:
            display = renderer.close()
            if renderer.failure is not None:
                print_display_failure(err, renderer.failure)
    summary.display = display
    console.print(summary_table(summary))
    return 0

"""``l4kit respond``: the live responder, its tables as connections close, the exit summary."""

from __future__ import annotations

from l4kit.live.options import RespondOptions


def respond(options: RespondOptions) -> int:
    """Run until stopped, print tables as connections close, then the exit
    summary. Returns the exit code."""
    from l4kit.live.privileges import require_live_privileges
    from l4kit.views.live import consoles

    console, err = consoles()
    if options.sandbox:
        require_live_privileges("l4kit respond --sandbox", firewall=True, namespace=True)
        from l4kit.live.sandbox import run_sandboxed

        return run_sandboxed(options.child_args(), port=options.port, notice=console.print)
    require_live_privileges(firewall=not options.no_firewall)

    from l4kit.live.report import ReadyInfo
    from l4kit.live.responder import run_responder
    from l4kit.views.live import LiveRenderer, print_display_failure, print_notice, print_ready, summary_table

    renderer = None if options.quiet else LiveRenderer(console, verbose=options.verbose)

    def on_ready(info: ReadyInfo) -> None:
        print_ready(console, info, quiet=options.quiet, verbose=options.verbose, keep_open=options.keep_open)

    display = None
    try:
        summary = run_responder(
            options,
            on_events=renderer.submit if renderer else None,
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

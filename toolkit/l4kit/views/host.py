"""What ``l4kit cleanup`` and ``l4kit doctor`` print."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from l4kit.live.report import Check, CleanupReport

_STATUS_STYLES = {"ok": "green", "missing": "bold red", "warn": "yellow", "info": "dim"}


def print_cleanup(console: Console, report: CleanupReport, *, dry_run: bool) -> None:
    """What was undone (or would be, with ``--dry-run``) and what was left alone, and why."""
    if dry_run and report.actions:
        console.print("[bold]dry run[/]: nothing changed")
    for action in report.actions:
        console.print(f"  {action}", markup=False)
    for skipped in report.skipped:
        console.print(f"  [dim]left alone:[/] {skipped}")
    if not report.actions:
        console.print("nothing to clean up")


def doctor_table(checks: Sequence[Check]) -> Table:
    """One row per check, with a fix for each missing piece. A missing optional piece reads as a warning."""
    table = Table(title="l4kit doctor", title_justify="left", header_style="bold")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found")
    table.add_column("fix")
    for check in checks:
        status = check.status if check.required or check.status != "missing" else "warn"
        # What was found is text, not markup: "[root]", a tool's own "[...]" must print as it is.
        table.add_row(
            escape(check.name),
            f"[{_STATUS_STYLES.get(status, '')}]{status}[/]",
            escape(check.found),
            escape(check.fix),
        )
    return table


def print_doctor(console: Console, checks: Sequence[Check], *, ready: bool) -> None:
    console.print(doctor_table(checks))
    if ready:
        console.print("[green]ready[/]: everything l4kit respond needs is here")
    else:
        console.print("[bold red]not ready[/]: fix the rows marked missing")

"""What ``l4kit demo`` prints: the client's output, the responder's tables, the verdict."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

from l4kit.live.report import DemoResult


def print_demo_header(console: Console, port: int) -> None:
    console.print(
        f"[bold]l4kit demo[/]: a userspace TCP responder in a throw-away network namespace, port {port}"
    )


def print_demo_result(
    console: Console, err: Console, result: DemoResult, *, message: str, program: str = "l4kit"
) -> bool:
    """The client's output, the responder's own output, then ok or why not; True when ok.
    ``program`` is how the user runs l4kit (the next step names it)."""
    expected = result.expected
    if result.client_exit is not None:
        for line in result.client_output.splitlines() or ["(nothing)"]:
            console.print(f"  [bold green]{line}[/]" if line else "")
        console.print(
            f"[dim]nc exited with status {result.client_exit} after {result.client_seconds:.3f} s "
            f"(the responder closed the connection)[/]"
        )
    for line in result.responder_output:
        if "try: echo" not in line:  # the responder's hint; the demo already ran the client
            sys.stdout.write(line)
    sys.stdout.flush()
    if result.ok:
        console.print(
            f"[green]ok[/]: nc printed {expected!r}, the reply of the string server for {message!r}; "
            f"namespace {result.namespace} deleted"
        )
        sudo = "" if os.geteuid() == 0 else "sudo "
        console.print(
            f"[dim]next: {escape(sudo + program)} respond --sandbox (then nc into it), "
            f"or {escape(program)} respond --help[/]"
        )
        return True
    why = result.failure or (
        f"nc printed {result.client_output!r}, expected {expected!r}"
        if result.client_output != expected
        else f"the responder exited with status {result.responder_exit}"
    )
    err.print(f"[bold red]demo failed:[/] {why}", soft_wrap=True)
    return False

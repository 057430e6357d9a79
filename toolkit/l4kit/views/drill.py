"""Rendering ``l4kit drill``: a table per script, the verdicts, and JSON for CI.

The table shows each script line as it ran: when (script time, seconds), the line
as written, what happened (the packet in packetdrill's notation, or a call's
result) and the packet's flags in Scapy's notation (``S``, ``SA``, ``PA``). A
failing line is marked and the failure message below the table names the line
and the field. The JSON document (``l4kit.drill/1``, ``docs/drill.md``) carries
the same per script.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from l4kit.drill.run.loop import LineRecord, ScriptResult

if TYPE_CHECKING:  # Rich is imported by l4kit.commands.drill, which makes the consoles
    from rich.console import Console

JSON_SCHEMA: Final = "l4kit.drill/1"


def _seconds(usecs: int | None) -> str:
    return "" if usecs is None else f"{usecs / 1e6:.6f}"


def verdict_line(result: ScriptResult) -> str:
    """``PASS path (0.31 s)`` or ``FAIL path:12: what (0.20 s)``, as markup."""
    from rich.markup import escape

    took = f"({result.duration_s:.2f} s)"
    if result.passed:
        return f"[bold green]PASS[/] {escape(result.path)} [dim]{took}[/]"
    failure = result.failure
    assert failure is not None
    first = failure.message.splitlines()[0] if failure.message else ""
    where = f"{result.path}:{failure.line}" if failure.line else result.path
    label = "UNSUPPORTED" if failure.unsupported else "FAIL"
    return f"[bold red]{label}[/] {escape(where)}: {escape(first)} [dim]{took}[/]"


def print_result(console: Console, result: ScriptResult, *, table: bool) -> None:
    """One script: its table (when ``table``), the verdict, and on failure the message."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if table and result.lines:
        grid = Table(title=result.path, title_justify="left", expand=False, pad_edge=False)
        grid.add_column("line", justify="right", style="dim", no_wrap=True)
        grid.add_column("time s", justify="right", no_wrap=True)
        grid.add_column("script", overflow="fold")
        grid.add_column("happened", overflow="fold")
        grid.add_column("flags", no_wrap=True)
        for record in result.lines:
            style = None if record.ok else "red"
            mark = "" if record.ok else " ✗"
            happened = record.actual
            if record.kind == "inbound" and happened == record.expected:
                happened = "sent"  # the packet as written: no need to print it twice
            grid.add_row(
                str(record.line),
                _seconds(record.time_us),
                Text(record.expected),
                Text(happened + mark, style=style or ""),
                record.scapy,
            )
        console.print(grid)
    console.print(verdict_line(result))
    failure = result.failure
    if failure is not None:
        rest = failure.message.splitlines()[1:]
        for line in rest:
            console.print(f"  {escape(line)}", highlight=False)
        if failure.field and failure.expected and failure.actual and not rest:
            field, expected, actual = escape(failure.field), escape(failure.expected), escape(failure.actual)
            console.print(f"  {field}: expected {expected}, got {actual}", highlight=False)
    if result.output and (not result.passed or table):
        for line in result.output.rstrip().splitlines()[-20:]:
            console.print(f"  [dim]| {escape(line)}[/]", highlight=False)


def print_summary(console: Console, results: list[ScriptResult], elapsed_s: float) -> None:
    passed = sum(1 for result in results if result.passed)
    failed = len(results) - passed
    colour = "green" if not failed else "red"
    console.print(
        f"[bold {colour}]{passed} passed, {failed} failed[/] of {len(results)} "
        f"script{'s' if len(results) != 1 else ''} [dim]({elapsed_s:.2f} s)[/]"
    )


def _line_json(record: LineRecord) -> dict[str, Any]:
    return {
        "line": record.line,
        "kind": record.kind,
        "time_s": None if record.time_us is None else round(record.time_us / 1e6, 6),
        "expected": record.expected,
        "actual": record.actual,
        "scapy_flags": record.scapy,
        "ok": record.ok,
    }


def result_json(result: ScriptResult) -> dict[str, Any]:
    failure = result.failure
    return {
        "path": result.path,
        "target": result.target,
        "verdict": "pass" if result.passed else "fail",
        "duration_s": round(result.duration_s, 6),
        "failure": None
        if failure is None
        else {
            "line": failure.line,
            "message": failure.message,
            "field": failure.field,
            "expected": failure.expected,
            "actual": failure.actual,
            "unsupported": failure.unsupported,
        },
        "lines": [_line_json(record) for record in result.lines],
        "output": result.output,
    }


def results_json(results: list[ScriptResult], target: str, elapsed_s: float) -> str:
    passed = sum(1 for result in results if result.passed)
    document = {
        "schema": JSON_SCHEMA,
        "target": target,
        "passed": passed,
        "failed": len(results) - passed,
        "duration_s": round(elapsed_s, 6),
        "scripts": [result_json(result) for result in results],
    }
    return json.dumps(document, indent=2)

"""Write docs/commands.md, the commands reference, from the command line itself.

    python scripts/commands_doc.py            # rewrite docs/commands.md
    python scripts/commands_doc.py --check    # exit 1 if docs/commands.md is out of date

Every command, argument and option of ``l4kit`` comes from the Typer app
(:mod:`l4kit.cli`) exactly as ``--help`` shows it: the help text, the names, the
default, the bounds, the environment variable. A new command or option needs no
hand edit here: run this script. ``tests/packaging/test_docs.py`` fails when the
file and the command line disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from l4kit.cli import app

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "commands.md"

HEADER = """\
# Commands reference

Every command of `l4kit` with all of its options, as `l4kit COMMAND --help` prints them.
This file is generated from the command line by `python scripts/commands_doc.py`;
`tests/packaging/test_docs.py` checks that it is current. The [README](../README.md)
shows the common uses of each command.
"""


def plain(text: str) -> str:
    """Help text without Rich markup, its lines joined as ``--help`` wraps them."""
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in text.strip().split("\n\n")]
    return "\n\n".join(Text.from_markup(p).plain for p in paragraphs)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def is_argument(param: Any) -> bool:
    return bool(param.param_type_name == "argument")


def names(param: Any) -> str:
    if is_argument(param):
        return f"`{param.name.upper()}`"
    opts = [*param.opts]
    if param.secondary_opts:
        opts = [f"{opts[0]}/{param.secondary_opts[0]}"]
    return " / ".join(f"`{o}`" for o in opts)


def value(param: Any) -> str:
    """What the option takes: a flag takes nothing; else its type, choices or bounds."""
    if getattr(param, "is_flag", False):
        return ""
    kind = param.type
    if getattr(kind, "choices", None):
        return " \\| ".join(f"`{choice}`" for choice in kind.choices)
    if getattr(param, "metavar", None):
        return cell(param.metavar)
    name = str(kind.name).removesuffix(" range")
    base = {"int": "INTEGER", "integer": "INTEGER", "float": "NUMBER", "str": "TEXT", "text": "TEXT"}.get(
        name, name.upper()
    )
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    if low is not None and high is not None:
        return f"{base} {low}..{high}"
    if low is not None:
        return f"{base} ≥ {low}"
    if high is not None:
        return f"{base} ≤ {high}"
    return base


def default(param: Any) -> str:
    if is_argument(param) or param.default is None or param.default is False or not param.show_default:
        return ""
    shown = getattr(param.default, "value", param.default)
    return f"`{shown}`"


def command_section(name: str, command: Any) -> list[str]:
    out = [f"## `l4kit {name}`", "", plain(command.help or ""), ""]
    usage = " ".join(
        (f"{p.name.upper()}..." if p.nargs == -1 else p.name.upper()) if is_argument(p) else ""
        for p in command.params
    ).strip()
    out += ["```text", f"l4kit {name} [OPTIONS] {usage}".rstrip(), "```", ""]
    rows = [p for p in command.params if not getattr(p, "hidden", False)]
    if rows:
        out += [
            "| option | takes | default | environment | what it does |",
            "| --- | --- | --- | --- | --- |",
        ]
        for param in rows:
            envvar = getattr(param, "envvar", None) or ""
            help_text = plain(getattr(param, "help", None) or "")
            out.append(
                f"| {names(param)} | {value(param)} | {default(param)} | "
                f"{f'`{envvar}`' if envvar else ''} | {cell(help_text)} |"
            )
        out.append("")
    return out


def render() -> str:
    group: Any = typer.main.get_command(app)
    commands = group.list_commands(None)
    out = [HEADER]
    out.append(" · ".join(f"[`{name}`](#l4kit-{name})" for name in commands))
    out.append("")
    about = plain(group.help or "")
    out += [f"`l4kit --help` lists them; `l4kit --version` prints the version ({about})", ""]
    for name in commands:
        command = group.get_command(None, name)
        assert command is not None
        out += command_section(name, command)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/commands.md is current")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text() != text:
            print("docs/commands.md is out of date: run python scripts/commands_doc.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

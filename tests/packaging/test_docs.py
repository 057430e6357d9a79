"""The documentation holds together: every relative link resolves, anchors included, and the
commands reference is the command line's own ``--help``.

Links are checked in the README and every Markdown file under ``docs/``, ``benchmarks/``,
``notebooks/`` and ``tests/``. An anchor (``file.md#section``) must name a heading of that file, spelled as
GitHub spells a heading's id.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_DIRS = ("docs", "benchmarks", "notebooks", "tests")
MARKDOWN = sorted([ROOT / "README.md", *(p for d in DOC_DIRS for p in (ROOT / d).rglob("*.md"))])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's id for a heading: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a Markdown file, the second of a repeated id suffixed ``-1``."""
    seen: Counter[str] = Counter()
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            out.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return out


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path.read_text()))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)  # http:, https:, mailto: ...
    ]


@pytest.mark.parametrize(
    ("heading", "github_id"),
    [
        ("`l4kit respond` — the userspace TCP responder", "l4kit-respond--the-userspace-tcp-responder"),
        ("The Linux loopback traps (all handled)", "the-linux-loopback-traps-all-handled"),
        ("RFC 9293 §3.10: **segment arrives**", "rfc-9293-310-segment-arrives"),
        ("[Zeek](https://zeek.org)'s conn.log", "zeeks-connlog"),
    ],
)
def test_slugs_are_githubs(heading: str, github_id: str) -> None:
    assert slug(heading) == github_id


def test_the_documentation_is_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/design.md", "docs/commands.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor).lower() not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert broken == [], f"{path.relative_to(ROOT)}: {broken}"


def test_the_commands_reference_is_the_command_lines_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "commands_doc.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


L4KIT = ROOT / "toolkit" / "l4kit"
PACKAGES = sorted(p.parent for p in L4KIT.rglob("*/__init__.py"))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.relative_to(L4KIT).as_posix())
def test_each_package_docstring_names_every_module_of_it(package: Path) -> None:
    """A reader starts at a package's docstring: a module it does not name is one they
    will not find, and a docstring that lists what is not there any more misleads."""
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert sorted(m for m in modules if not re.search(rf"\b{m}\b", docstring)) == []
    dotted = ".".join(package.relative_to(L4KIT.parent).parts)
    named = set(re.findall(rf"{re.escape(dotted)}\.(\w+)", docstring))
    assert sorted(named - modules) == []

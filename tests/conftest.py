"""Session-wide checks, and the fresh install that several test files share."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compiled_modules() -> list[str]:
    """The modules ``setup.py`` compiles with mypyc (its ``COMPILED`` list, read without
    running it), as import names."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            paths = ast.literal_eval(node.value)
            return [path.removeprefix("toolkit/").removesuffix(".py").replace("/", ".") for path in paths]
    raise AssertionError("setup.py has no COMPILED list")


def pytest_sessionstart(session: pytest.Session) -> None:
    """``L4KIT_EXPECT_COMPILED=1`` (scripts/check.sh's second run): the tests are meant
    for the mypyc-compiled build; stop at once if any module ``setup.py`` compiles was
    imported from elsewhere."""
    if os.environ.get("L4KIT_EXPECT_COMPILED") != "1":
        return
    for name in compiled_modules():
        module = importlib.import_module(name)
        if not (module.__file__ or "").endswith(".so"):
            raise pytest.UsageError(f"L4KIT_EXPECT_COMPILED: {module.__name__} is {module.__file__}")


@pytest.fixture(scope="session")
def installed() -> Iterator[Path]:
    """``pip install .`` into a brand-new virtual environment, from the files git knows
    about; yields its ``bin`` directory. It lies in a directory anyone may enter (not
    pytest's 0700 tmp dir, nor the checkout, which may be under a private /root): the
    tests that drop to an unprivileged user run l4kit from here."""
    top = Path(tempfile.mkdtemp(prefix="l4kit-install-"))
    top.chmod(0o755)
    try:
        # Install from the files git knows about (tracked or not ignored), like a clone.
        files = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        src = top / "src"
        for name in filter(None, files):
            path = ROOT / os.fsdecode(name)
            if path.is_file():
                (src / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / os.fsdecode(name))
        env_dir = top / "venv"
        venv.create(env_dir, with_pip=True)
        result = subprocess.run(
            [
                str(env_dir / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                str(src),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        yield env_dir / "bin"
    finally:
        shutil.rmtree(top, ignore_errors=True)

"""`pip install .` into a brand-new virtual environment gives a working command.

This is what a user does; it catches a module or data file left out of the wheel
and an import that only works from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    # Not under pytest's 0700 tmp dir: the non-root test below runs the command as nobody.
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


def run(bin_dir: Path, *args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "COLUMNS": "120"}
    return subprocess.run(
        [str(bin_dir / "l4kit"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
        user=user,
        cwd="/",
    )


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--help",), "respond"),
        (("--version",), "l4kit 0.1.0"),
        (("respond", "--help"), "--iface"),
        (("replay", "--help"), "--format"),
        (("doctor", "--help"), "doctor"),
    ],
)
def test_fresh_install_commands_work(installed: Path, args: tuple[str, ...], expect: str) -> None:
    result = run(installed, *args)
    assert result.returncode == 0, result.stderr
    assert expect in result.stdout
    assert "Traceback" not in result.stderr


def test_fresh_install_doctor_runs(installed: Path) -> None:
    result = run(installed, "doctor")
    # doctor exits non-zero when something required is missing; it must never crash.
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode in (0, 1), result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_fresh_install_respond_as_non_root_is_one_clear_line(installed: Path) -> None:
    result = run(installed, "respond", user=65534)
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "CAP_NET_RAW" in lines[0]
    assert "Traceback" not in result.stderr

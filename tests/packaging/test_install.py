"""`pip install .` into a brand-new virtual environment gives a working command.

This is what a user does; it catches a module or data file left out of the wheel
and an import that only works from the source tree. The install is the ``installed``
fixture of ``tests/conftest.py``, shared with the tests that run l4kit as nobody.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


# ---------------------------------------------------------------- compiled replay


def _can_compile() -> bool:
    import sysconfig

    return shutil.which("gcc") is not None and Path(sysconfig.get_paths()["include"], "Python.h").exists()


def _python(bin_dir: Path, code: str) -> str:
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return result.stdout.strip()


def test_fresh_install_compiles_the_per_packet_modules(installed: Path) -> None:
    """setup.py compiles replay's and the TCP core's per-packet modules with mypyc when
    a C compiler and Python's headers are there (scripts/bootstrap.sh installs both)."""
    if not _can_compile():
        pytest.skip("no gcc or no Python.h here: pip installs pure Python")
    compiled = ["l4kit.replay.engine", "l4kit.replay.jsontext"]
    compiled += ["l4kit.core.connection", "l4kit.core.listener", "l4kit.core.events"]
    compiled += ["l4kit.wire.seqnum", "l4kit.wire.segment", "l4kit.codecs.fast", "l4kit.core.states"]
    compiled += ["l4kit.live.ring", "l4kit.live.packet_thread", "l4kit.core.server", "l4kit.wire.tcp"]
    # the checksum is the reference; mypyc cannot compile the bug exceptions (setup.py)
    pure = ["l4kit.checksum", "l4kit.core.bugs"]
    code = f"import importlib; print(*(importlib.import_module(m).__file__ for m in {compiled + pure}))"
    files = _python(installed, code).split()
    assert all(f.endswith(".so") for f in files[: len(compiled)]), files
    assert all(f.endswith(".py") for f in files[len(compiled) :]), files
    assert "compiled with mypyc: replay, TCP core, packet thread" in run(installed, "doctor").stdout


@pytest.mark.parametrize("capture", ["lo-kernel.pcap", "lo-l4kit-responder.pcap"])
def test_compiled_replay_writes_what_pure_python_writes(installed: Path, capture: str) -> None:
    import l4kit.replay.engine

    assert (l4kit.replay.engine.__file__ or "").endswith(".py"), "the tests' own l4kit is the editable one"
    path = str(ROOT / "tests" / "data" / capture)
    for fmt in ("json", "mermaid"):
        pure = subprocess.run(
            [sys.executable, "-m", "l4kit", "replay", path, "--format", fmt],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        compiled = run(installed, "replay", path, "--format", fmt)
        assert compiled.returncode == 0, compiled.stderr
        assert compiled.stdout == pure


def test_without_a_c_compiler_the_wheel_is_pure_python(tmp_path: Path) -> None:
    """The extensions are optional: a failing compiler (CC=false) gives a wheel with
    every module as Python source and no extension, not a failed install."""
    env = {**os.environ, "CC": "false"}
    src = tmp_path / "src"
    shutil.copytree(ROOT / "toolkit", src / "toolkit", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"), str(src)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = (tmp_path / "wheel").glob("l4kit-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert not [n for n in names if n.endswith(".so")], names
    assert "l4kit/replay/engine.py" in names and "l4kit/replay/jsontext.py" in names


def test_bootstrap_sees_whether_the_install_is_the_compiled_one(installed: Path) -> None:
    """scripts/bootstrap.sh keeps the install's kind in its stamp: after `pip install -e`
    (pure Python from the same source) `bootstrap.sh demo` must not say the compiled
    install is there."""
    probe = ROOT / "scripts" / "l4kit-install-kind.py"
    fresh = subprocess.run(
        [str(installed / "python"), str(probe)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd="/",
    ).stdout.strip()
    assert fresh == ("regular compiled" if _can_compile() else "regular pure")
    # The editable install the tests run from (bootstrap.sh test, CI).
    mine = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, check=True, timeout=60, cwd="/"
    ).stdout.strip()
    assert mine == "editable pure"
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'echo "$source $(install_kind)" >.venv/.l4kit-installed' in bootstrap
    assert '= "$source $(install_kind)" ]' in bootstrap


def test_readme_installs_the_notebooks_without_dropping_the_compiled_build() -> None:
    readme = (ROOT / "README.md").read_text()
    installs = [line for line in readme.splitlines() if "[notebooks]" in line and "pip install" in line]
    assert installs, "the README says how to install the notebooks' packages"
    assert not any("install -e" in line for line in installs), installs

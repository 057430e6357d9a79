"""The live commands' CLI surface: options, the sandbox re-exec arguments, one-line errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from l4kit.cli import app
from l4kit.errors import ConfigError
from l4kit.live.options import Codec, RespondOptions

runner = CliRunner()


def l4kit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4kit", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_respond_help_lists_the_live_options() -> None:
    result = runner.invoke(app, ["respond", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--iface", "--sandbox", "--no-firewall", "--pcap", "--firewall", "--codec", "--duration"):
        assert option in result.output


def _respond_command() -> typer.core.TyperCommand:
    return typer.main.get_command(app).commands["respond"]  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    "options",
    [
        RespondOptions(),
        RespondOptions(
            iface="veth0", port=9000, address="10.0.0.1", routes=Path("routes.toml"), keep_open=True,
            pcap=Path("/tmp/x.pcap"), quiet=True, max_conns=10, max_half_open=5, no_firewall=True,
            codec="fast", duration=2.5, firewall="iptables", rcvbuf=4096, synack_retries=0, retries=20,
            force=True,
        ),
        RespondOptions(verbose=True, sandbox=True, duration=0.1, codec=Codec.fast),
    ],
)  # fmt: skip
def test_sandbox_child_gets_the_same_options(options: RespondOptions) -> None:
    # Parse the child's arguments with the real CLI definition and make the options
    # object again from what typer hands the command: every field survives the re-exec
    # (paths made absolute), and --sandbox is not repeated.
    ctx = _respond_command().make_context("respond", options.child_args())
    child = RespondOptions(**ctx.params)
    expected = dataclasses.replace(
        options,
        sandbox=False,
        routes=None if options.routes is None else options.routes.absolute(),
        pcap=None if options.pcap is None else options.pcap.absolute(),
    )
    assert child == expected


def test_the_command_has_one_option_per_field() -> None:
    # The typer command is built from RespondOptions: the same names, defaults and help.
    params = {p.name: p for p in _respond_command().params if p.name != "help"}
    fields = {f.name: f for f in dataclasses.fields(RespondOptions)}
    assert params.keys() == fields.keys()
    for name, item in fields.items():
        spec = item.metadata["option"]
        assert params[name].default == item.default, name
        assert tuple(params[name].opts) + tuple(params[name].secondary_opts) == spec.flags, name
        assert params[name].help == spec.help, name
    # Parsing no arguments gives the dataclass's defaults.
    assert RespondOptions(**_respond_command().make_context("respond", []).params) == RespondOptions()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"port": 0}, "--port 0: at least 1"),
        ({"port": 70000}, "--port 70000: at most 65535"),
        ({"retries": 21}, "--retries 21: at most 20"),
        ({"codec": "slow"}, "--codec 'slow': not a valid value (one of scapy, fast)"),
        ({"firewall": "pf"}, "--firewall 'pf': not a valid value (one of auto, nft, iptables)"),
        ({"duration": -1.0}, "--duration -1.0: at least 0"),
        ({"quiet": True, "verbose": True}, "--quiet and --verbose exclude each other"),
    ],
)
def test_options_made_in_code_are_checked_as_the_command_line_is(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RespondOptions(**values)
    assert str(caught.value) == message


def test_quiet_and_verbose_together_is_one_line() -> None:
    result = l4kit("respond", "--quiet", "--verbose")
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == ["error: --quiet and --verbose exclude each other"]


def test_doctor_prints_a_table_and_never_a_traceback() -> None:
    result = l4kit("doctor")
    assert result.returncode in (0, 1)
    assert "Traceback" not in result.stdout + result.stderr
    for row in ("CAP_NET_RAW", "nft", "iptables", "ip netns", "tshark", "route_localnet"):
        assert row in result.stdout


def test_doctor_says_whether_the_build_is_compiled() -> None:
    """The tests run on the editable install, which setup.py keeps pure Python
    (tests/packaging/test_install.py checks the compiled side)."""
    from l4kit.live.doctor import INFO, check_compiled_build

    check = check_compiled_build()
    assert check.name == "compiled build"
    assert check.status == INFO and check.found.startswith("pure Python") and not check.required


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_doctor_as_root_without_cap_net_admin_names_the_capability(tmp_path: Path) -> None:
    # Root in a container without NET_ADMIN (Docker's default): nft and iptables are
    # installed but refused. The fix is the capability, not installing them again.
    done = subprocess.run(
        ["setpriv", "--bounding-set=-net_admin", "--", sys.executable, "-m", "l4kit", "doctor"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "250", "L4KIT_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│ ")}
    for tool in ("nft", "iptables"):
        assert "cannot list the ruleset without CAP_NET_ADMIN" in rows[tool], rows[tool]
        assert "docker run --cap-add NET_ADMIN" in rows[tool]
        assert "apt-get install" not in rows[tool]
    assert "[root]" in rows["CAP_NET_RAW"]  # text, not swallowed as Rich markup


def test_hints_name_l4kit_as_it_can_be_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from l4kit.commands import invoked_as

    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    script = venv_bin / "l4kit"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as under sudo: the virtualenv is not on it
    assert invoked_as(str(script)) == str(script)
    monkeypatch.chdir(tmp_path)
    assert invoked_as("venv/bin/l4kit") == str(script)  # made absolute: it works from anywhere
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert invoked_as(str(script)) == "l4kit"
    assert invoked_as("/somewhere/l4kit/__main__.py") == f"{sys.executable} -m l4kit"

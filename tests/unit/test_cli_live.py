"""The live commands' CLI surface: options, the sandbox re-exec arguments, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from l4kit.cli import app
from l4kit.commands.respond import RespondRequest

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


@pytest.mark.parametrize(
    "request_",
    [
        RespondRequest(),
        RespondRequest(
            iface="veth0", port=9000, address="10.0.0.1", routes=Path("routes.toml"), keep_open=True,
            pcap=Path("/tmp/x.pcap"), quiet=True, max_conns=10, max_half_open=5, no_firewall=True,
            codec="fast", duration=2.5, firewall="iptables", rcvbuf=4096,
        ),
    ],
)  # fmt: skip
def test_sandbox_child_gets_the_same_options(request_: RespondRequest) -> None:
    # Parse the child's arguments with the real CLI definition: every option survives
    # the re-exec unchanged (paths made absolute), and --sandbox is not repeated.
    command = typer.main.get_command(app).commands["respond"]  # type: ignore[attr-defined]
    ctx = command.make_context("respond", request_.child_args())
    params = ctx.params
    assert params["sandbox"] is False
    for name in ("iface", "port", "address", "keep_open", "quiet", "verbose", "max_conns", "max_half_open",
                 "no_firewall", "duration", "rcvbuf"):  # fmt: skip
        assert params[name] == getattr(request_, name), name
    # The choices as typer hands them to the command: text (typer < 0.29) or the enum (a StrEnum).
    assert str(params["codec"]) == request_.codec
    assert str(params["firewall"]) == request_.firewall
    for name in ("routes", "pcap"):
        mine = getattr(request_, name)
        theirs = params[name]  # text before typer 0.29, a Path from 0.29 on
        assert (None if theirs is None else Path(theirs)) == (None if mine is None else mine.absolute())


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

"""The retry options the fault tests use to keep a give-up short (no root needed).

``--synack-retries`` and ``--retries`` set the core's ``syn_ack_retries`` and
``max_retransmissions`` (defaults 5 and 5: a give-up after 1+2+4+8+16+32 = 63 s).
hping3 and packetdrill users set Linux's ``tcp_synack_retries``/``tcp_retries2`` for
the same reason: to see a give-up without waiting a minute.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from l4kit.cli import app
from l4kit.core.listener import ListenerConfig
from l4kit.live.options import RespondOptions

pytestmark = pytest.mark.reliability


def test_retry_options_survive_the_sandbox_re_exec() -> None:
    request = RespondOptions(synack_retries=2, retries=0)
    command = typer.main.get_command(app).commands["respond"]  # type: ignore[attr-defined]
    params = command.make_context("respond", request.child_args()).params
    assert (params["synack_retries"], params["retries"]) == (2, 0)


def test_defaults_are_the_cores() -> None:
    command = typer.main.get_command(app).commands["respond"]  # type: ignore[attr-defined]
    params = command.make_context("respond", []).params
    config = ListenerConfig.__dataclass_fields__
    assert params["synack_retries"] == config["syn_ack_retries"].default == 5
    assert params["retries"] == config["max_retransmissions"].default == 5


def test_help_lists_them() -> None:
    result = CliRunner().invoke(app, ["respond", "--help"], env={"COLUMNS": "200"})
    assert "--synack-retries" in result.output and "--retries" in result.output


def test_an_out_of_range_count_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "l4kit", "respond", "--retries", "-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--retries" in done.stderr

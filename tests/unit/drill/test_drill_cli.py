"""``l4kit drill``'s command line: packetdrill's spellings, and one-line errors with
exit status 2 (usage, scripts that do not parse) or 1 (no privileges), no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from l4kit.cli import app
from l4kit.commands.drill import DrillRequest, parse_defines, run_drill
from l4kit.drill.run.settings import build_config
from l4kit.errors import ConfigError, PrivilegeError

runner = CliRunner()


def l4kit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l4kit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_help_lists_both_spellings_of_packetdrill_options() -> None:
    result = runner.invoke(app, ["drill", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--tolerance-usecs",
        "--tolerance_usecs",
        "--ip-version",
        "--ip_version",
        "--target",
        "--pcap",
        "-D",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pkt"], "error: cannot read missing.pkt: No such file or directory"),
        (["bad.pkt"], "error: bad.pkt:2: expected ECN (noecn, ect0, ect1, ce, ect01)"),
        (["--target", "bsd", "good.pkt"], "Invalid value for '--target'"),
        (["-D", "NOVALUE", "good.pkt"], "error: -D NOVALUE: write definitions as NAME=VALUE"),
        (
            ["--ip_version=ipv6", "--local_ip=10.0.0.1", "good.pkt"],
            "error: good.pkt: --local_ip=10.0.0.1 is not an IPv6",
        ),
        (["odd-option.pkt"], "error: odd-option.pkt: unknown option --frobnicate"),
        (["--tolerance_usecs=-1", "good.pkt"], "Invalid value for '--tolerance-usecs'"),
    ],
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "good.pkt").write_text("0 `true`\n")
    (tmp_path / "bad.pkt").write_text("0 `true`\n+0 < (1:1(0) win 1\n")
    (tmp_path / "odd-option.pkt").write_text("--frobnicate=1\n0 `true`\n")
    done = l4kit("drill", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if message.startswith("error:"):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_without_capabilities_one_line_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.pkt").write_text("0 `true`\n")
    monkeypatch.setattr("l4kit.live.privileges.effective_capabilities", lambda: 0)
    with pytest.raises(PrivilegeError) as caught:
        run_drill(DrillRequest(scripts=[tmp_path / "good.pkt"]))
    assert caught.value.exit_code == 1
    assert str(caught.value).startswith(
        "l4kit drill --target kernel needs CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW"
    )


def test_defines() -> None:
    assert parse_defines(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ConfigError):
        parse_defines(["=1"])


def test_settings_layer_script_options_under_the_command_line() -> None:
    config = build_config([("tolerance_usecs", "10000"), ("ip_version", "ipv4")], {"tolerance_usecs": "2000"})
    assert config.tolerance_usecs == 2000
    assert (config.addresses.local_ip, config.addresses.remote_ip, config.gateway_ip) == (
        "192.168.0.1",
        "192.0.2.1",
        "192.168.0.1",
    )
    assert (config.prefix_len, config.remote_prefix, config.socket_family) == (16, "192.0.2.0/24", 2)
    six = build_config([], {"ip_version": "ipv6"})
    assert six.addresses.local_ip == "fd3d:a0b:17d6::1" and six.mtu == 1520 and six.socket_family == 10
    mapped = build_config([], {"ip-version": "ipv4-mapped-ipv6", "netmask_ip": "255.255.255.0"})
    assert (
        mapped.socket_family == 10 and mapped.addresses.remote_ip == "192.0.2.1" and mapped.prefix_len == 24
    )
    assert build_config([("tcp_ts_ecr_scaled", None), ("send_omit_free", None)], {}).tcp_ts_ecr_scaled
    with pytest.raises(ConfigError, match="wire mode"):
        build_config([("wire_client", None)], {})
    with pytest.raises(ConfigError, match="not a number"):
        build_config([("tolerance_usecs", "soon")], {})

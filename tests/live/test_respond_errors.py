"""Foreseeable mistakes: one clear line on stderr, a non-zero exit, no traceback, nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.live


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (("respond",), "needs CAP_NET_RAW (raw packet socket) and CAP_NET_ADMIN (firewall rule, sysctls)"),
        (("respond", "--no-firewall"), "needs CAP_NET_RAW (raw packet socket);"),
        (("respond", "--sandbox"), "CAP_SYS_ADMIN (network namespace)"),
        (("demo",), "CAP_SYS_ADMIN (network namespace)"),
        (("cleanup",), "needs CAP_NET_ADMIN"),
        (("connect", "127.0.0.1", "80"), "needs CAP_NET_RAW (raw packet socket) and CAP_NET_ADMIN"),
    ],
)
def test_non_root_gets_one_line_naming_the_missing_capability(
    installed: Path, args: tuple[str, ...], missing: str
) -> None:
    # l4kit as nobody: from the shared fresh install, which nobody can reach wherever
    # the checkout is (tests/conftest.py).
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*nobody, installed / "python", "-m", "l4kit", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip
    line = one_error_line(result)
    assert missing in line
    assert line.endswith("run it as root or with sudo")


def test_missing_interface(netns: Namespace) -> None:
    line = one_error_line(netns.l4kit("respond", "--iface", "nosuch0"))
    assert line == "error: no interface named 'nosuch0' in this network namespace (it has: lo)"


def test_address_not_on_the_interface(netns: Namespace) -> None:
    line = one_error_line(netns.l4kit("respond", "--address", "192.0.2.7"))
    assert "address 192.0.2.7 is not on interface lo" in line


def test_interface_down(netns: Namespace) -> None:
    netns.run(["ip", "link", "set", "lo", "down"])
    line = one_error_line(netns.l4kit("respond"))
    assert line == "error: interface lo is down (ip link set lo up)"


def test_bad_routes_file(netns: Namespace, tmp_path: object) -> None:
    from pathlib import Path

    routes = Path(str(tmp_path)) / "bad.toml"
    routes.write_text("[routes\n")
    line = one_error_line(netns.l4kit("respond", "--routes", str(routes)))
    assert str(routes) in line and "TOML" in line
    missing = one_error_line(netns.l4kit("respond", "--routes", str(routes) + ".absent"))
    assert "cannot read routes file" in missing


def test_errors_change_nothing(netns: Namespace) -> None:
    before = netns.host_snapshot()
    one_error_line(netns.l4kit("respond", "--address", "192.0.2.7"))
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_kernel_listener_on_the_port_is_a_warning_not_an_error(netns: Namespace) -> None:
    listener = netns.popen(
        [sys.executable, "-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',8888)); "
         "s.listen(); print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
    responder = netns.respond("--quiet")
    assert "warning: a kernel socket already listens on 127.0.0.1:8888" in responder.output
    code, _ = responder.stop()
    assert code == 0
    listener.kill()

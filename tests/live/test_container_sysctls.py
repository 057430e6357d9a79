"""Inside a container /proc/sys is mounted read-only (Docker does this), so the
docs/docker.md tells Docker users to pass the loopback sysctls with ``docker run --sysctl``.
These tests make the same situation in a namespace: a private mount namespace
with /proc/sys remounted read-only, and check both halves of that advice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from namespaces import Namespace

pytestmark = pytest.mark.live

READ_ONLY_PROC_SYS = "mount --bind /proc/sys /proc/sys && mount -o remount,ro,bind /proc/sys && "


def run_read_only(netns: Namespace, script: str, timeout: float = 60) -> tuple[int, str, str]:
    done = netns.run(["unshare", "-m", "sh", "-c", READ_ONLY_PROC_SYS + script], timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr


def test_read_only_sysctls_not_set_is_one_line_with_the_docker_hint(netns: Namespace) -> None:
    code, out, err = run_read_only(netns, f"{sys.executable} -m l4kit respond --duration 1")
    assert code == 1, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Read-only file system" in lines[0]
    assert (
        "docker run --sysctl net.ipv4.conf.lo.route_localnet=1 --sysctl net.ipv4.conf.lo.accept_local=1"
        in lines[0]
    )
    # Nothing was left behind: the firewall rule was not installed (or was removed).
    assert "l4kit" not in netns.firewall_snapshot()["nft"]


def test_read_only_sysctls_already_set_serves_the_client(netns: Namespace, tmp_path: Path) -> None:
    # What the docker run line of docs/docker.md sets: lo's own two, nothing on all or default.
    needed = ("net/ipv4/conf/lo/route_localnet", "net/ipv4/conf/lo/accept_local")
    for key in needed:
        netns.set_sysctl(key, "1")
    before = netns.loopback_sysctls()
    client = (
        "import socket;"
        "s=socket.create_connection(('127.0.0.1',8888),timeout=5);"
        "s.sendall(b'toppage\\n');"
        "print(s.recv(100).decode(), end='')"
    )
    script = (
        f"{sys.executable} -m l4kit respond --quiet --duration 20 > responder.out 2>&1 & "
        "for i in $(seq 200); do grep -q 'listening on' responder.out && break; sleep 0.05; done; "
        f'{sys.executable} -c "{client}"; kill -INT $!; wait $!; echo rc=$?'
    )
    code, out, err = run_read_only(netns, f"cd {tmp_path} && {script}")
    assert code == 0, out + err
    log = (tmp_path / "responder.out").read_text()
    assert out.startswith("hello world\n"), out + err + log
    assert "rc=0" in out, out + err + log
    # The sysctls were already what l4kit needs: they are left exactly as they were.
    assert netns.loopback_sysctls() == before
    assert {key for key, value in before.items() if value == "1"} == set(needed)

"""Host preparation inside a namespace: changed while running, exactly restored after.

Before each start the namespace gets state of its own that l4kit must not
disturb (an unrelated nft table, an iptables rule, a non-default sysctl), so that
"exactly as before" means something more than "empty".
"""

from __future__ import annotations

import json
import os
import signal
import stat
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from namespaces import Namespace

pytestmark = pytest.mark.live

# While respond runs: lo's own two sysctls on, all and default as a new namespace has them.
ON = {
    "net/ipv4/conf/all/route_localnet": "0",
    "net/ipv4/conf/default/route_localnet": "0",
    "net/ipv4/conf/lo/route_localnet": "1",
    "net/ipv4/conf/all/accept_local": "0",
    "net/ipv4/conf/default/accept_local": "0",
    "net/ipv4/conf/lo/accept_local": "1",
}


def prepare_unrelated_state(ns: Namespace) -> None:
    ns.run(["nft", "add", "table", "inet", "keepme"])
    ns.run(["nft", "add", "chain", "inet", "keepme", "out", "{ type filter hook output priority 10; }"])
    ns.run(["nft", "add", "rule", "inet", "keepme", "out", "tcp", "dport", "9", "counter", "accept"])
    ns.run(["iptables", "-w", "-A", "OUTPUT", "-p", "tcp", "--dport", "7", "-j", "ACCEPT"])
    ns.set_sysctl("net/ipv4/conf/lo/accept_local", "1")  # already on: must stay on


def assert_serves(ns: Namespace) -> None:
    assert ns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10).stdout == "hello world\n"


@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rules_and_sysctls_exactly_as_before_after_a_signal(netns: Namespace, backend: str, sig: int) -> None:
    prepare_unrelated_state(netns)
    before = netns.host_snapshot()
    responder = netns.respond("--firewall", backend, "--quiet")
    # While it runs: the rule of its own, the sysctls on, a private state file.
    during = netns.firewall_snapshot()
    if backend == "nft":
        assert "table inet l4kit_8888" in during["nft"]
    else:
        assert "-N L4KIT-8888" in during["iptables"]
        assert '-A OUTPUT -m comment --comment "l4kit:8888" -j L4KIT-8888' in during["iptables"]
    assert netns.loopback_sysctls() == ON
    (state_file,) = netns.state_files()
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_file.parent).st_mode) == 0o700
    recorded = json.loads(state_file.read_text())
    sysctls_before: dict[str, str] = before["sysctls"]  # type: ignore[assignment]
    assert recorded["sysctls_previous"] == {k: v for k, v in sysctls_before.items() if "/lo/" in k}
    assert recorded["pid"] == responder.process.pid
    assert_serves(netns)
    code, output = responder.stop(sig)
    assert code == 0, output
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_after_sigkill_the_next_start_removes_the_leftovers(netns: Namespace) -> None:
    prepare_unrelated_state(netns)
    before = netns.host_snapshot()
    killed = netns.respond("--quiet")
    killed.stop(signal.SIGKILL)
    # SIGKILL leaves everything behind: rule, sysctls, state file.
    assert "l4kit_8888" in netns.firewall_snapshot()["nft"]
    assert netns.loopback_sysctls() == ON
    assert len(netns.state_files()) == 1

    again = netns.respond()
    assert "cleaned up after a killed run" in again.output
    assert_serves(netns)
    code, output = again.stop()
    assert code == 0, output
    assert netns.host_snapshot() == before
    assert netns.state_files() == []


def test_after_sigkill_l4kit_cleanup_removes_the_leftovers(netns: Namespace) -> None:
    prepare_unrelated_state(netns)
    before = netns.host_snapshot()
    killed = netns.respond("--quiet", "--firewall", "iptables")
    killed.stop(signal.SIGKILL)
    assert netns.host_snapshot() != before

    dry = netns.l4kit("cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove iptables chain L4KIT-8888" in dry.stdout
    assert "would run sysctl -w net.ipv4.conf.lo.route_localnet=0" in dry.stdout
    assert netns.host_snapshot() != before  # a dry run changes nothing

    done = netns.l4kit("cleanup")
    assert done.returncode == 0, done.stderr
    assert "sysctl -w net.ipv4.conf.lo.route_localnet=0" in done.stdout
    assert netns.host_snapshot() == before
    assert netns.state_files() == []
    assert "nothing to clean up" in netns.l4kit("cleanup").stdout


def test_cleanup_finds_an_untracked_table(netns: Namespace) -> None:
    # A table of ours without a state file (the file was deleted by hand, say).
    netns.run(["nft", "add", "table", "inet", "l4kit_9999"])
    done = netns.l4kit("cleanup")
    assert "removed nft table inet l4kit_9999" in done.stdout
    assert "l4kit_9999" not in netns.firewall_snapshot()["nft"]


def test_no_firewall_changes_nothing_and_prints_the_commands(netns: Namespace) -> None:
    before = netns.host_snapshot()
    responder = netns.respond("--no-firewall", "--quiet")
    assert netns.host_snapshot() == before
    assert netns.state_files() == []
    code, output = responder.stop()
    assert code == 0
    assert "nft 'add table inet l4kit_8888'" in output
    assert "sysctl -w net.ipv4.conf.lo.route_localnet=1 net.ipv4.conf.lo.accept_local=1" in output
    assert "conf.all." not in output and "conf.default." not in output
    # Without the rule the kernel refuses the client: the printed warning is real.
    refused = netns.python(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 8888), timeout=5)\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert refused.stdout.strip() == "ConnectionRefusedError"


def test_the_printed_no_firewall_commands_are_the_ones_that_work(netns: Namespace) -> None:
    # Run what --no-firewall prints, by hand, then the responder with --no-firewall: it serves.
    responder = netns.respond("--no-firewall", "--quiet")
    _code, output = responder.stop()
    commands = [line.strip() for line in output.splitlines() if line.strip().startswith(("nft ", "sysctl "))]
    assert commands
    for command in commands:
        netns.run(["sh", "-c", command])
    responder = netns.respond("--no-firewall", "--quiet")
    assert_serves(netns)
    responder.stop()


def test_a_second_responder_on_the_same_port_is_refused(netns: Namespace) -> None:
    first = netns.respond("--quiet")
    second = netns.l4kit("respond", "--quiet", "--duration", "1")
    assert second.returncode == 1
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"pid {first.process.pid}" in lines[0], second.stderr
    assert_serves(netns)  # the first one was not disturbed
    code, _ = first.stop()
    assert code == 0


def test_two_responders_on_two_ports_restore_the_sysctls_whichever_stops_first(netns: Namespace) -> None:
    before = netns.host_snapshot()
    first = netns.respond("--quiet")
    second = netns.respond("--quiet", "--port", "8889")
    first.stop()
    # The second still needs the sysctls: they stay on, and it still serves.
    assert netns.loopback_sysctls() == ON
    done = netns.run(["nc", "127.0.0.1", "8889"], input="toppage\n", timeout=10)
    assert done.stdout == "hello world\n"
    second.stop()
    assert netns.host_snapshot() == before

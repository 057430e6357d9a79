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


# What the namespace holds before respond starts, from nothing to a table of every kind:
# "exactly as before" must hold whatever respond finds (iptables-nft creates its table and
# the OUTPUT chain only where they are missing, and l4kit must delete only what it made).
UNRELATED = ["nothing", "an-input-chain", "everything"]


def prepare_unrelated_state(ns: Namespace, what: str = "everything") -> None:
    if what == "nothing":
        return
    for binary in ("iptables", "ip6tables"):  # a filter table without an OUTPUT chain
        ns.run([binary, "-w", "-A", "INPUT", "-p", "tcp", "--dport", "7", "-j", "ACCEPT"])
    if what == "an-input-chain":
        return
    ns.run(["nft", "add", "table", "inet", "keepme"])
    ns.run(["nft", "add", "chain", "inet", "keepme", "out", "{ type filter hook output priority 10; }"])
    ns.run(["nft", "add", "rule", "inet", "keepme", "out", "tcp", "dport", "9", "counter", "accept"])
    for binary in ("iptables", "ip6tables"):
        ns.run([binary, "-w", "-A", "OUTPUT", "-p", "tcp", "--dport", "7", "-j", "ACCEPT"])
    ns.set_sysctl("net/ipv4/conf/lo/accept_local", "1")  # already on: must stay on


def assert_serves(ns: Namespace, address: str = "127.0.0.1", port: int = 8888) -> None:
    done = ns.run(["nc", address, str(port)], input="toppage\n", timeout=10)
    assert done.stdout == "hello world\n"


def assert_same_text(after: dict[str, object], before: dict[str, object]) -> None:
    """The whole texts equal, shown as a diff when they are not."""
    for key in ("firewall", "sysctls"):
        assert after[key] == before[key], (key, after[key], before[key])


def needs_ipv6(ns: Namespace, address: str) -> None:
    if ":" in address and "::1" not in ns.run(["ip", "-6", "addr", "show", "dev", "lo"]).stdout:
        pytest.skip("no IPv6 on lo here")


@pytest.mark.parametrize("unrelated", UNRELATED)
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rules_and_sysctls_exactly_as_before_after_a_signal(
    netns: Namespace, backend: str, sig: int, address: str, unrelated: str
) -> None:
    needs_ipv6(netns, address)
    prepare_unrelated_state(netns, unrelated)
    before = netns.host_snapshot()
    responder = netns.respond("--firewall", backend, "--quiet", "--address", address)
    # While it runs: the rule of its own, the sysctls on (IPv4 only), a private state file.
    during = netns.firewall_snapshot()
    if backend == "nft":
        assert "table inet l4kit_8888" in during["nft"]
    else:
        save = during["ip6tables-save" if ":" in address else "iptables-save"]
        assert ":L4KIT-8888 - [0:0]" in save
        assert '-A OUTPUT -m comment --comment "l4kit:8888" -j L4KIT-8888' in save
    sysctls_before: dict[str, str] = before["sysctls"]  # type: ignore[assignment]
    assert netns.loopback_sysctls() == (sysctls_before if ":" in address else ON)
    (state_file,) = netns.state_files()
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_file.parent).st_mode) == 0o700
    recorded = json.loads(state_file.read_text())
    expected_previous = {} if ":" in address else {k: v for k, v in sysctls_before.items() if "/lo/" in k}
    assert recorded["sysctls_previous"] == expected_previous
    assert recorded["pid"] == responder.process.pid
    assert_serves(netns, address)
    code, output = responder.stop(sig)
    assert code == 0, output
    assert_same_text(netns.host_snapshot(), before)
    assert netns.state_files() == []


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_after_sigkill_the_next_start_removes_the_leftovers(
    netns: Namespace, backend: str, address: str
) -> None:
    needs_ipv6(netns, address)
    before = netns.host_snapshot()
    killed = netns.respond("--quiet", "--firewall", backend, "--address", address)
    killed.stop(signal.SIGKILL)
    # SIGKILL leaves everything behind: rule, sysctls, state file.
    assert netns.firewall_snapshot() != before["firewall"]
    if ":" not in address:
        assert netns.loopback_sysctls() == ON
    assert len(netns.state_files()) == 1

    again = netns.respond("--firewall", backend, "--address", address)
    assert "cleaned up after a killed run" in again.output
    assert_serves(netns, address)
    code, output = again.stop()
    assert code == 0, output
    assert_same_text(netns.host_snapshot(), before)
    assert netns.state_files() == []


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_after_sigkill_l4kit_cleanup_removes_the_leftovers(
    netns: Namespace, backend: str, address: str
) -> None:
    needs_ipv6(netns, address)
    before = netns.host_snapshot()
    killed = netns.respond("--quiet", "--firewall", backend, "--address", address)
    killed.stop(signal.SIGKILL)
    assert netns.host_snapshot() != before

    dry = netns.l4kit("cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    actions = [line.strip() for line in dry.stdout.splitlines()[1:] if line.strip()]
    assert len(actions) == len(set(actions)), dry.stdout  # each change listed once
    if backend == "iptables":
        binary, family = ("ip6tables", "ip6") if ":" in address else ("iptables", "ip")
        assert f"would remove {binary} chain L4KIT-8888" in actions
        assert f"would remove nft table {family} filter (created for the rule)" in actions
    else:
        assert "would remove nft table inet l4kit_8888" in actions
    if ":" not in address:
        assert "would run sysctl -w net.ipv4.conf.lo.route_localnet=0" in actions
    assert netns.host_snapshot() != before  # a dry run changes nothing

    done = netns.l4kit("cleanup")
    assert done.returncode == 0, done.stderr
    if ":" not in address:
        assert "sysctl -w net.ipv4.conf.lo.route_localnet=0" in done.stdout
    assert_same_text(netns.host_snapshot(), before)
    assert netns.state_files() == []
    assert "nothing to clean up" in netns.l4kit("cleanup").stdout


@pytest.mark.parametrize("first", ["8888", "8889"])
def test_two_iptables_responders_leave_the_ruleset_as_before_whichever_stops_first(
    netns: Namespace, first: str
) -> None:
    # The first creates iptables-nft's table; the one that stops last deletes it.
    before = netns.host_snapshot()
    responders = {
        port: netns.respond("--quiet", "--firewall", "iptables", "--port", port) for port in ("8888", "8889")
    }
    last = "8889" if first == "8888" else "8888"
    code, output = responders[first].stop()
    assert code == 0, output
    assert "table ip filter" in netns.firewall_snapshot()["nft"]  # the other's rule is still in it
    assert_serves(netns, port=int(last))
    code, output = responders[last].stop()
    assert code == 0, output
    assert_same_text(netns.host_snapshot(), before)
    assert netns.state_files() == []


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

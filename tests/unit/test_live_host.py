"""Host preparation: the plan, the state file, exact restoration, leftovers.

The firewall and the sysctls are replaced by in-memory fakes here (unit tests
never touch the host); tests/live/test_host_restore.py does the real thing
inside a network namespace.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import l4kit.live.host as host
from l4kit.errors import ConfigError, L4kitError
from l4kit.live.firewall import IptablesFirewall, NftFirewall
from l4kit.live.host import HostPlan, HostPreparation, loopback_sysctls
from l4kit.live.state import HostState, StateStore
from l4kit.live.system import Netns, current_netns, process_alive, process_start_ticks, sysctl_name

KEYS = {
    "net/ipv4/conf/lo/route_localnet": "1",
    "net/ipv4/conf/lo/accept_local": "1",
}


def test_loopback_sysctls_only_for_127_addresses_and_only_the_interfaces_own() -> None:
    # Never net.ipv4.conf.all.* or default.*: all.route_localnet=1 would let neighbours on
    # every other interface reach services bound to 127.0.0.1.
    assert loopback_sysctls("lo", "127.0.0.1") == KEYS
    assert loopback_sysctls("lo", "127.3.2.1") == KEYS
    assert loopback_sysctls("veth0", "127.0.0.1") == {
        "net/ipv4/conf/veth0/route_localnet": "1",
        "net/ipv4/conf/veth0/accept_local": "1",
    }
    assert loopback_sysctls("eth0", "10.0.0.1") == {}
    assert loopback_sysctls("lo", "::1") == {}


def test_sysctl_names_are_spelled_as_sysctl_spells_them() -> None:
    assert sysctl_name("net/ipv4/conf/lo/route_localnet") == "net.ipv4.conf.lo.route_localnet"
    # A dot in an interface name (a VLAN) is a slash in sysctl(8)'s notation.
    assert sysctl_name("net/ipv4/conf/eth0.100/accept_local") == "net.ipv4.conf.eth0/100.accept_local"


def test_a_read_only_proc_sys_hint_names_every_sysctl_needed(
    tmp_path: Path, fakes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sysctls, firewall = fakes

    def read_only(key: str, value: str) -> None:
        raise L4kitError(f"cannot set sysctl {key}") from OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(host, "write_sysctl", read_only)
    store = StateStore(tmp_path)
    with pytest.raises(L4kitError) as caught, HostPreparation(_plan(firewall), store=store):
        pass  # pragma: no cover - not reached
    assert caught.value.hint == (
        "in a container, set them when starting it: docker run "
        "--sysctl net.ipv4.conf.lo.route_localnet=1 --sysctl net.ipv4.conf.lo.accept_local=1"
    )
    assert store.records() == [] and not firewall.installed


def test_nft_rule_matches_only_rst_from_the_responders_address_and_port() -> None:
    fw = NftFirewall("127.0.0.1", 8888)
    rule = fw.script()[-1]
    assert "ip saddr 127.0.0.1 tcp sport 8888 tcp flags & rst == rst counter drop" in rule
    assert fw.table == "l4kit_8888"
    assert "ip6 saddr ::1" in NftFirewall("::1", 9000).script()[-1]
    # The printed commands are the script, shell-quoted.
    assert [shlex.split(c) for c in fw.commands()] == [["nft", line] for line in fw.script()]


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_nft_accepts_the_script_in_check_mode() -> None:
    # Cross-check with nft itself: --check parses and validates without applying.
    script = "\n".join(NftFirewall("127.0.0.1", 8888).script()) + "\n"
    done = subprocess.run(
        ["nft", "--check", "-f", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_iptables_commands_use_a_chain_of_their_own_and_a_tagged_jump() -> None:
    fw = IptablesFirewall("127.0.0.1", 8888)
    commands = fw.commands()
    assert commands[0] == "iptables -w -N L4KIT-8888"
    assert "-s 127.0.0.1/32 -p tcp --sport 8888 --tcp-flags RST RST" in commands[1]
    assert commands[2] == "iptables -w -I OUTPUT 1 -m comment --comment l4kit:8888 -j L4KIT-8888"
    assert IptablesFirewall("::1", 8888).binary == "ip6tables"


def test_state_round_trips_through_json() -> None:
    state = HostState(
        netns=Netns(4026531840, "host"),
        port=8888,
        iface="lo",
        address="127.0.0.1",
        pid=1234,
        pid_start=99,
        firewall=NftFirewall("127.0.0.1", 8888).to_state(),
        sysctls_previous={"net/ipv4/conf/all/route_localnet": "0"},
    )
    again = HostState.from_json(state.to_json())
    assert again == state
    with pytest.raises(ValueError, match="format"):
        HostState.from_json(json.dumps({"format": 99}))


def test_state_files_are_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "l4kit")
    state = _state(store, pid=os.getpid())
    path = store.write(state)
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p for p, _ in store.records()] == [path]


def test_a_state_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "l4kit"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(L4kitError, match="writable by others"):
        StateStore(directory).ensure()


# ---------------------------------------------------------------- fakes


@dataclass
class FakeFirewall:
    address: str = "127.0.0.1"
    port: int = 8888
    backend: str = "fake"
    installed: bool = False
    fail_install: bool = False
    log: list[str] = field(default_factory=list)

    def observe(self) -> None:
        self.log.append("observe")

    def made_for_the_rule(self) -> list[str]:
        return []

    def take_over(self, other: dict[str, Any]) -> None:
        pass

    def commands(self) -> list[str]:
        return ["fake-firewall install"]

    def install(self) -> None:
        if self.fail_install:
            raise L4kitError("fake install failed")
        self.installed = True
        self.log.append("install")

    def remove(self) -> bool:
        was = self.installed
        self.installed = False
        self.log.append("remove")
        return was

    def present(self) -> bool:
        return self.installed

    def dropped_rsts(self) -> int | None:
        return 3

    def describe(self) -> str:
        return "fake firewall"

    def to_state(self) -> dict[str, Any]:
        return {"backend": "fake", "address": self.address, "port": self.port}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], FakeFirewall]:
    sysctls = dict.fromkeys(KEYS, "0")
    sysctls["net/ipv4/conf/lo/accept_local"] = "1"  # a non-default value that must survive
    firewall = FakeFirewall()
    monkeypatch.setattr(host, "read_sysctl", lambda key: sysctls[key])
    monkeypatch.setattr(host, "write_sysctl", sysctls.__setitem__)
    monkeypatch.setattr(host, "firewall_from_state", lambda data: firewall)
    monkeypatch.setattr(host, "nft_leftover_tables", lambda: [])
    monkeypatch.setattr(host, "iptables_leftover_chains", lambda binary: [])
    monkeypatch.setattr(host, "named_netns", lambda: [])
    return sysctls, firewall


def _plan(firewall: FakeFirewall) -> HostPlan:
    return HostPlan(iface="lo", address="127.0.0.1", port=8888, firewall=firewall, sysctls=dict(KEYS))


def _state(
    store: StateStore, *, pid: int, port: int = 8888, previous: dict[str, str] | None = None
) -> HostState:
    return HostState(
        netns=current_netns(),
        port=port,
        iface="lo",
        address="127.0.0.1",
        pid=pid,
        pid_start=process_start_ticks(pid),
        firewall={"backend": "fake", "address": "127.0.0.1", "port": port},
        sysctls_previous=dict(previous or {}),
    )


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_prepare_records_then_changes_then_restores_exactly(tmp_path: Path, fakes: Any) -> None:
    sysctls, firewall = fakes
    before = dict(sysctls)
    store = StateStore(tmp_path)
    with HostPreparation(_plan(firewall), store=store) as prep:
        assert firewall.installed
        assert all(sysctls[k] == "1" for k in KEYS)
        ((_path, recorded),) = store.records()
        assert recorded is not None and recorded.sysctls_previous == before and recorded.pid == os.getpid()
    assert sysctls == before
    assert not firewall.installed
    assert store.records() == []
    assert prep.kernel_rsts_dropped == 3


def test_an_exception_inside_the_block_still_restores(tmp_path: Path, fakes: Any) -> None:
    sysctls, firewall = fakes
    before = dict(sysctls)
    with pytest.raises(RuntimeError), HostPreparation(_plan(firewall), store=StateStore(tmp_path)):
        raise RuntimeError("boom")
    assert sysctls == before and not firewall.installed


def test_a_failed_install_undoes_the_sysctls_already_set(tmp_path: Path, fakes: Any) -> None:
    sysctls, firewall = fakes
    before = dict(sysctls)
    firewall.fail_install = True
    store = StateStore(tmp_path)
    with (
        pytest.raises(L4kitError, match="fake install failed"),
        HostPreparation(_plan(firewall), store=store),
    ):
        pass  # pragma: no cover - not reached
    assert sysctls == before and store.records() == []


def test_the_next_start_undoes_a_killed_run(tmp_path: Path, fakes: Any) -> None:
    sysctls, firewall = fakes
    store = StateStore(tmp_path)
    original = dict(sysctls)
    # A run that was SIGKILLed: its state file says what it changed; the changes are still there.
    store.write(_state(store, pid=_dead_pid(), previous=original))
    for key in KEYS:
        sysctls[key] = "1"
    firewall.installed = True
    notices: list[str] = []
    with HostPreparation(_plan(firewall), store=store, notice=notices.append):
        assert firewall.log == ["remove", "observe", "install"]
        ((_path, mine),) = store.records()
        assert mine is not None and mine.pid == os.getpid()
        assert mine.sysctls_previous == original  # not the killed run's "1"s
    assert sysctls == original
    assert any("killed run" in n for n in notices)


def test_a_running_responder_on_the_same_port_is_refused(tmp_path: Path, fakes: Any) -> None:
    _sysctls, firewall = fakes
    store = StateStore(tmp_path)
    parent = os.getppid()  # alive, and not us
    store.write(_state(store, pid=parent))
    with (
        pytest.raises(ConfigError, match=f"pid {parent}.*already answers on port 8888"),
        HostPreparation(_plan(firewall), store=store),
    ):
        pass  # pragma: no cover
    assert not firewall.installed


def test_the_first_of_two_responders_hands_the_original_sysctls_to_the_second(
    tmp_path: Path, fakes: Any
) -> None:
    sysctls, firewall = fakes
    store = StateStore(tmp_path)
    original = dict(sysctls)
    with HostPreparation(_plan(firewall), store=store):
        # A second responder (another live process, port 9999) starts now and records "1" as previous.
        other = _state(store, pid=os.getppid(), port=9999, previous=dict(sysctls))
        store.write(other)
    # We stopped first: the sysctls stay set for the other, which now knows the original values.
    assert all(sysctls[k] == "1" for k in KEYS)
    ((_path, heir),) = store.records()
    assert heir is not None and heir.port == 9999 and heir.sysctls_previous == original


@pytest.mark.parametrize("later_ends_first", [False, True], ids=["earlier-first", "later-first"])
def test_two_preparations_in_one_namespace_restore_whichever_ends_first(
    tmp_path: Path, fakes: Any, later_ends_first: bool
) -> None:
    # When the later one ends first, it recorded the earlier one's "1" as its previous
    # value: handing that over would leave the sysctls on for good.
    sysctls, firewall = fakes
    store = StateStore(tmp_path)
    original = dict(sysctls)
    other_plan = HostPlan(
        iface="lo", address="127.0.0.1", port=9999, firewall=FakeFirewall(port=9999), sysctls=dict(KEYS)
    )
    first = HostPreparation(_plan(firewall), store=store)
    second = HostPreparation(other_plan, store=store)
    first.__enter__()
    second.__enter__()
    ending, remaining = (second, first) if later_ends_first else (first, second)
    ending.__exit__(None, None, None)
    assert all(sysctls[k] == "1" for k in KEYS)  # the other one still needs them
    remaining.__exit__(None, None, None)
    assert sysctls == original
    assert store.records() == []


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (1, 2, 0), (2, 1, 0), (0, 2, 1), (2, 0, 1)])
def test_three_preparations_restore_the_original_whatever_order_they_end_in(
    tmp_path: Path, fakes: Any, order: tuple[int, int, int]
) -> None:
    # Three sockets of one client (one pid, three ports): the second and third recorded
    # the first one's "1"; whichever ends last must put back the value from before.
    sysctls, _firewall = fakes
    store = StateStore(tmp_path)
    original = dict(sysctls)
    preparations = []
    for port in (8888, 9999, 7777):
        plan = HostPlan(
            iface="lo", address="127.0.0.1", port=port, firewall=FakeFirewall(port=port), sysctls=dict(KEYS)
        )
        preparation = HostPreparation(plan, store=store)
        preparation.__enter__()
        preparations.append(preparation)
    for done, index in enumerate(order, 1):
        preparations[index].__exit__(None, None, None)
        if done < 3:
            assert all(sysctls[k] == "1" for k in KEYS)  # the others still need them
    assert sysctls == original
    assert store.records() == []


def test_cleanup_undoes_dead_runs_and_leaves_live_ones(tmp_path: Path, fakes: Any) -> None:
    sysctls, firewall = fakes
    store = StateStore(tmp_path)
    original = dict(sysctls)
    store.write(_state(store, pid=_dead_pid(), previous=original))
    store.write(_state(store, pid=os.getppid(), port=9999, previous=original))
    for key in KEYS:
        sysctls[key] = "1"
    firewall.installed = True

    dry = host.cleanup(dry_run=True, store=store)
    assert any(a.startswith("would remove fake firewall") for a in dry.actions), dry.actions
    assert not any(a.startswith("removed") for a in dry.actions)  # a plan, in the conditional
    assert firewall.installed and len(store.records()) == 2  # a dry run changes nothing

    report = host.cleanup(store=store)
    assert not firewall.installed
    assert any("still answers on port 9999" in s for s in report.skipped)
    # The live responder on 9999 needs the sysctls: they are handed over, not reset.
    assert all(sysctls[k] == "1" for k in KEYS)
    ((_path, remaining),) = store.records()
    assert remaining is not None and remaining.port == 9999


def test_cleanup_forgets_state_of_a_namespace_that_is_gone(tmp_path: Path, fakes: Any) -> None:
    store = StateStore(tmp_path)
    state = _state(store, pid=_dead_pid())
    state.netns = Netns(1, "l4t-gone")  # inode 1 is never a network namespace
    path = store.write(state)
    report = host.cleanup(store=store)
    assert not path.exists()
    assert any("l4t-gone is gone" in a for a in report.actions)


def test_unreadable_state_file_is_removed(tmp_path: Path, fakes: Any) -> None:
    store = StateStore(tmp_path)
    store.ensure()
    bad = tmp_path / "host-1.json"
    bad.write_text("{not json")
    report = host.cleanup(store=store)
    assert not bad.exists() and any("unreadable" in a for a in report.actions)


def test_process_start_ticks_tell_a_reused_pid_apart() -> None:
    me = process_start_ticks(os.getpid())
    assert me is not None
    assert process_alive(os.getpid(), me)
    assert not process_alive(os.getpid(), me + 1)
    assert not process_alive(_dead_pid(), None)

"""Host preparation: keep the kernel's TCP out of the way, and put everything back.

A userspace responder on a packet socket shares the host with the kernel's TCP.
docs/design.md ("The Linux loopback traps") lists what that takes on Linux; this module
handles the two that change the host:

- Trap 1: no kernel socket listens on the port, so the kernel answers every
  client segment with RST (RFC 9293 §3.10.7.1, "If the state is CLOSED ... a
  reset is sent"). A firewall rule drops the kernel's *outgoing* RSTs from the
  responder's address and port, and nothing else. Frames l4kit sends on its
  packet socket do not traverse the netfilter OUTPUT hook, so the core's own
  RSTs still leave.
- Trap 4: frames injected on ``lo`` between 127.0.0.0/8 addresses are dropped as
  martians unless ``route_localnet`` and ``accept_local`` are on for the interface
  (ip-sysctl.rst). The kernel reads each as ``all`` OR the receiving interface's own
  value (``IN_DEV_ORCONF``), so the interface's own ``net.ipv4.conf.<iface>.*`` is
  enough, and only those are set: ``all.route_localnet=1`` would also route
  127.0.0.0/8 packets arriving from every other interface's neighbours to local
  services bound to 127.0.0.1 (the class of CVE-2020-8558). ``all`` and ``default``
  are never written. They are set only for a 127.0.0.0/8 address, and their
  previous values restored.

The rule's backends are in :mod:`l4kit.live.firewall`, the state files in
:mod:`l4kit.live.state`, the host's tools, namespaces and sysctls in
:mod:`l4kit.live.system`.

Exact restoration: before anything is changed, a state file
(``/run/l4kit/<netns>-<port>.json``, mode 0600 in a 0700 directory) records the
firewall object and the previous sysctl values. Every exit path (normal stop,
SIGINT, SIGTERM, an exception) undoes the changes and removes the file; after a
SIGKILL, the next start on the port or ``l4kit cleanup`` finds the file and
undoes them. When two responders in one namespace both need a sysctl, the one
that stops first hands the original value over to the other instead of
restoring it under its feet.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from l4kit.errors import ConfigError, L4kitError
from l4kit.live.firewall import (
    IPTABLES_CHAIN_PREFIX,
    NFT_TABLE_PREFIX,
    Firewall,
    IptablesFirewall,
    NftFirewall,
    choose_firewall,
    firewall_from_state,
    iptables_leftover_chains,
    nft_leftover_tables,
)
from l4kit.live.report import CleanupReport
from l4kit.live.state import HostState, StateStore
from l4kit.live.system import (
    Netns,
    current_netns,
    delete_netns,
    named_netns,
    netns_exists,
    process_start_ticks,
    read_sysctl,
    sysctl_name,
    write_sysctl,
)

SANDBOX_NETNS_PREFIX = "l4kit-"
LOOPBACK_SYSCTLS = ("route_localnet", "accept_local")
LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.0/8")

Notice = Callable[[str], None]


def loopback_sysctls(iface: str, address: str) -> dict[str, str]:
    """The sysctls trap 4 needs, with the value needed: the interface's own
    ``route_localnet`` and ``accept_local``, and none unless ``address`` is in
    127.0.0.0/8. Never ``all`` or ``default`` (see the module docstring)."""
    if ipaddress.ip_address(address) not in LOOPBACK_NETWORK:
        return {}
    return {f"net/ipv4/conf/{iface}/{name}": "1" for name in LOOPBACK_SYSCTLS}


# ---------------------------------------------------------------- undo


def _restore_sysctls(store: StateStore, state: HostState, *, dry_run: bool = False) -> list[str]:
    """Put back the recorded sysctl values, or hand them over to another live
    responder in the same namespace that still needs the setting."""
    done: list[str] = []
    others = [
        (path, other)
        for path, other in store.records()
        if other is not None
        and other.netns.inode == state.netns.inode
        and (other.pid, other.port) != (state.pid, state.port)
        and other.alive
    ]
    for key, previous in state.sysctls_previous.items():
        holders = [(p, o) for p, o in others if key in o.sysctls_previous]
        if holders:
            # The one that started first (this one included) recorded the value from
            # before l4kit, or was handed it; every later one recorded an l4kit change.
            # All the holders learn it, so that whichever stops last restores it.
            first = min([state, *(o for _p, o in holders)], key=lambda o: o.started)
            original = first.sysctls_previous[key]
            heir = min((o for _p, o in holders), key=lambda o: o.started)
            done.append(f"left {sysctl_name(key)} set for l4kit pid {heir.pid} (it restores {original})")
            if not dry_run:
                for _path, other in holders:
                    if other.sysctls_previous[key] != original:
                        other.sysctls_previous[key] = original
                        store.write(other)
            continue
        current = read_sysctl(key)
        if current != previous:
            done.append(f"sysctl -w {sysctl_name(key)}={previous}")
            if not dry_run:
                write_sysctl(key, previous)
    return done


def _undo_firewall(store: StateStore, state: HostState, firewall: Firewall, *, dry_run: bool) -> list[str]:
    """Remove the rule and what was created for it. What another live responder's rule
    still sits in (iptables-nft's table, shared by every iptables rule) is handed over
    to that responder, which deletes it when it stops, as with the sysctls."""
    done: list[str] = []
    if firewall.present():
        done.append(f"removed {firewall.describe()}")
    made = firewall.made_for_the_rule()
    if dry_run:
        return done + [f"removed {what} (created for the rule)" for what in made]
    firewall.remove()
    left = firewall.made_for_the_rule()
    done += [f"removed {what} (created for the rule)" for what in made if what not in left]
    if left:
        heir = next(
            (
                other
                for _path, other in store.records()
                if other is not None
                and other.firewall is not None
                and other.netns.inode == state.netns.inode
                and (other.pid, other.port) != (state.pid, state.port)
                and other.alive
                and other.firewall.get("backend") == firewall.backend
                and (":" in str(other.firewall.get("address"))) == (":" in state.address)
            ),
            None,
        )
        if heir is not None and heir.firewall is not None:
            successor = firewall_from_state(heir.firewall)
            successor.take_over(firewall.to_state())
            heir.firewall = successor.to_state()
            store.write(heir)
            done += [f"left {what} for l4kit pid {heir.pid} (it deletes it)" for what in left]
        else:
            done += [f"left {what}: it holds rules l4kit did not add" for what in left]
    return done


def undo_state(store: StateStore, path: Path, state: HostState, *, dry_run: bool = False) -> list[str]:
    """Undo what ``state`` records (in this namespace) and remove its file."""
    done: list[str] = []
    if state.firewall is not None:
        done += _undo_firewall(store, state, firewall_from_state(state.firewall), dry_run=dry_run)
    done += _restore_sysctls(store, state, dry_run=dry_run)
    if not dry_run:
        store.remove(path)
    done.append(f"removed state file {path}")
    return done


# ---------------------------------------------------------------- the context manager


@dataclass(frozen=True, slots=True)
class HostPlan:
    """What a responder on (iface, address, port) needs changed."""

    iface: str
    address: str
    port: int
    firewall: Firewall | None
    sysctls: dict[str, str]

    def commands(self) -> list[str]:
        """The commands that make the change by hand (``--no-firewall`` prints them)."""
        out = list(self.firewall.commands()) if self.firewall is not None else []
        pending = {k: v for k, v in self.sysctls.items() if _read_or_none(k) != v}
        if pending:
            out.append("sysctl -w " + " ".join(f"{sysctl_name(k)}={v}" for k, v in pending.items()))
        return out


def _read_or_none(key: str) -> str | None:
    try:
        return read_sysctl(key)
    except L4kitError:
        return None


def plan_host(iface: str, address: str, port: int, *, firewall: str = "auto", probe: bool = True) -> HostPlan:
    return HostPlan(
        iface=iface,
        address=address,
        port=port,
        firewall=choose_firewall(address, port, firewall, probe=probe),
        sysctls=loopback_sysctls(iface, address),
    )


def _write_sysctl_of(plan: HostPlan, key: str, value: str) -> None:
    """Set one of the plan's sysctls. Where /proc/sys is read-only (a container), the
    hint names every sysctl the plan needs, so one ``docker run`` line sets them all."""
    try:
        write_sysctl(key, value)
    except L4kitError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EROFS:
            flags = " ".join(f"--sysctl {sysctl_name(k)}={v}" for k, v in plan.sysctls.items())
            raise L4kitError(
                exc.message, hint=f"in a container, set them when starting it: docker run {flags}"
            ) from cause
        raise


class HostPreparation:
    """``with HostPreparation(plan): ...`` — the host is prepared inside the block
    and exactly restored when it is left, however it is left.

    Signals are the caller's business: the responder turns SIGINT/SIGTERM into a
    normal return from the block, so ``__exit__`` runs.
    """

    def __init__(
        self,
        plan: HostPlan,
        *,
        store: StateStore | None = None,
        notice: Notice | None = None,
        tool: str = "l4kit respond",
    ) -> None:
        self.plan = plan
        self.tool = tool
        self.store = store or StateStore()
        self.notice: Notice = notice or (lambda _msg: None)
        self.state: HostState | None = None
        self.path: Path | None = None
        self.kernel_rsts_dropped: int | None = None

    def __enter__(self) -> HostPreparation:
        plan = self.plan
        netns = current_netns()
        with self.store.locked():
            self._recover_leftovers(netns)
            if plan.firewall is not None:
                plan.firewall.observe()
            state = HostState(
                netns=netns,
                port=plan.port,
                iface=plan.iface,
                address=plan.address,
                pid=os.getpid(),
                pid_start=process_start_ticks(os.getpid()),
                firewall=plan.firewall.to_state() if plan.firewall is not None else None,
                sysctls_previous={key: read_sysctl(key) for key in plan.sysctls},
                tool=self.tool,
            )
            # Intent first: if we die between here and the end of the block,
            # the file already says what to undo (undoing a change never made
            # is harmless: the table is absent, the sysctl already has its value).
            self.path = self.store.write(state)
            self.state = state
            try:
                for key, value in plan.sysctls.items():
                    if state.sysctls_previous[key] != value:
                        _write_sysctl_of(plan, key, value)
                if plan.firewall is not None:
                    plan.firewall.install()
            except BaseException:
                undo_state(self.store, self.path, state)
                self.state = None
                raise
        return self

    def _recover_leftovers(self, netns: Netns) -> None:
        plan = self.plan
        path = self.store.path_for(netns, plan.port)
        for other_path, other in self.store.records():
            if other_path != path:
                continue
            if other is None:
                self.notice(f"removed unreadable state file {other_path}")
                self.store.remove(other_path)
                continue
            if other.netns.inode != netns.inode:
                # Same name, different namespace: the one it described is gone, and
                # its rules and sysctls went with it.
                self.store.remove(other_path)
                continue
            if other.alive:
                raise ConfigError(
                    f"another {other.tool} (pid {other.pid}) already "
                    f"{'answers on' if other.tool == 'l4kit respond' else 'uses'} port {plan.port} "
                    f"in network namespace {netns.name}"
                )
            done = undo_state(self.store, other_path, other)
            self.notice(f"cleaned up after a killed run (pid {other.pid}): " + "; ".join(done))
        if plan.firewall is not None and plan.firewall.present():
            plan.firewall.remove()
            self.notice(f"removed a leftover {plan.firewall.describe()} that no state file recorded")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()

    def restore(self) -> None:
        """Undo everything (idempotent)."""
        if self.state is None or self.path is None:
            return
        if self.plan.firewall is not None:
            with contextlib.suppress(L4kitError):
                self.kernel_rsts_dropped = self.plan.firewall.dropped_rsts()
        with self.store.locked():
            # Re-read: another responder that stopped first may have handed us the
            # original sysctl values (see _restore_sysctls).
            state = self.state
            try:
                recorded = HostState.from_json(self.path.read_text())
                if (recorded.pid, recorded.port) == (state.pid, state.port):
                    state = recorded
            except (OSError, ValueError, KeyError, TypeError):
                pass
            undo_state(self.store, self.path, state)
        self.state = None


# ---------------------------------------------------------------- cleanup


def _port_of(name: str, prefix: str) -> int | None:
    tail = name[len(prefix) :]
    return int(tail) if tail.isdigit() else None


def cleanup(
    *, dry_run: bool = False, store: StateStore | None = None, sandboxes: bool = True
) -> CleanupReport:
    """Find and undo what killed responders left behind in this namespace:
    state files, ``l4kit_*`` nft tables, ``L4KIT-*`` iptables chains, recorded
    sysctls; and delete sandbox namespaces whose owner is gone."""
    store = store or StateStore()
    report = CleanupReport()
    netns = current_netns()
    owned_ports: set[int] = set()
    undone: set[str] = set()  # the rules a state file accounted for (listed once, dry run too)
    if store.directory.is_dir():
        with store.locked():
            for path, state in store.records():
                if state is None:
                    report.actions.append(f"removed unreadable state file {path}")
                    if not dry_run:
                        store.remove(path)
                elif state.alive:
                    report.skipped.append(
                        f"l4kit pid {state.pid} still answers on port {state.port} ({path})"
                    )
                    if state.netns.inode == netns.inode:
                        owned_ports.add(state.port)
                elif state.netns.inode == netns.inode:
                    report.actions += undo_state(store, path, state, dry_run=dry_run)
                    if state.firewall is not None:
                        undone.add(firewall_from_state(state.firewall).describe())
                elif not netns_exists(state.netns.inode):
                    report.actions.append(
                        f"removed state file {path} (its namespace {state.netns.name} is gone)"
                    )
                    if not dry_run:
                        store.remove(path)
                else:
                    report.skipped.append(
                        f"{path} belongs to network namespace {state.netns.name}: "
                        f"run `ip netns exec {state.netns.name} l4kit cleanup`"
                    )
    for table in nft_leftover_tables():
        port = _port_of(table, NFT_TABLE_PREFIX)
        if port is None or port in owned_ports or f"nft table inet {table}" in undone:
            continue
        report.actions.append(f"removed nft table inet {table}")
        if not dry_run:
            NftFirewall("0.0.0.0", port).remove()
    for binary in ("iptables", "ip6tables"):
        for chain in iptables_leftover_chains(binary):
            port = _port_of(chain, IPTABLES_CHAIN_PREFIX)
            if port is None or port in owned_ports or f"{binary} chain {chain}" in undone:
                continue
            report.actions.append(f"removed {binary} chain {chain}")
            if not dry_run:
                IptablesFirewall("::" if binary == "ip6tables" else "0.0.0.0", port).remove()
    if sandboxes:
        for name in named_netns():
            owner = _port_of(name, SANDBOX_NETNS_PREFIX)
            if owner is None or process_start_ticks(owner) is not None:
                continue
            report.actions.append(
                f"deleted network namespace {name} (its l4kit sandbox, pid {owner}, is gone)"
            )
            if not dry_run:
                delete_netns(name)
    if dry_run:
        report.actions = [planned(action) for action in report.actions]
    return report


_PLANNED = {"removed ": "would remove ", "deleted ": "would delete ", "left ": "would leave "}


def planned(action: str) -> str:
    """An action as a dry run reports it: "removed X" -> "would remove X"."""
    for done, todo in _PLANNED.items():
        if action.startswith(done):
            return todo + action[len(done) :]
    return f"would run {action}"  # the sysctl -w commands

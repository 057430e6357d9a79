"""Host preparation: keep the kernel's TCP out of the way, and put everything back.

A userspace responder on a packet socket shares the host with the kernel's TCP.
DESIGN.md ("Linux loopback traps") lists what that takes on Linux; this module
handles the two that change the host:

- Trap 1: no kernel socket listens on the port, so the kernel answers every
  client segment with RST (RFC 9293 §3.10.7.1, "If the state is CLOSED ... a
  reset is sent"). A firewall rule drops the kernel's *outgoing* RSTs from the
  responder's address and port, and nothing else. Frames l4kit sends on its
  packet socket do not traverse the netfilter OUTPUT hook, so the core's own
  RSTs still leave.
- Trap 4: frames injected on ``lo`` between 127.0.0.0/8 addresses are dropped as
  martians unless ``net.ipv4.conf.{all,<iface>}.route_localnet`` and
  ``accept_local`` are 1 (ip-sysctl.rst). They are set only for such addresses,
  and their previous values restored.

Layout decision (nft): one table per responder, ``inet l4kit_<port>``, holding
one ``output`` chain with one rule. A table of its own is created by one nft
transaction and removed, with everything in it, by one ``delete table``; two
responders on different ports never touch each other's rules; and leftovers are
found by the name prefix alone, without parsing rule handles. The rule counts
what it drops, so the exit summary can say how many RSTs the kernel tried.
Where only iptables exists: a chain ``L4KIT-<port>`` holding the rule, jumped to
from ``OUTPUT`` by a rule tagged with the comment ``l4kit:<port>``.

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
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from l4kit.errors import ConfigError, L4kitError
from l4kit.live.report import CleanupReport

STATE_FORMAT = 1
DEFAULT_STATE_DIR = Path("/run/l4kit")
NFT_TABLE_PREFIX = "l4kit_"
IPTABLES_CHAIN_PREFIX = "L4KIT-"
SANDBOX_NETNS_PREFIX = "l4kit-"
LOOPBACK_SYSCTLS = ("route_localnet", "accept_local")
LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.0/8")

Notice = Callable[[str], None]


def state_dir() -> Path:
    """Where state files live: ``$L4KIT_STATE_DIR`` or ``/run/l4kit`` (a tmpfs,
    so a reboot, which undoes every change anyway, also forgets them)."""
    return Path(os.environ.get("L4KIT_STATE_DIR") or DEFAULT_STATE_DIR)


def _run(
    argv: list[str], *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError as exc:
        raise ConfigError(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise L4kitError(f"{shlex.join(argv)} did not finish within 30 s") from exc
    if check and done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise L4kitError(f"{shlex.join(argv)} failed: {detail[0] if detail else f'exit {done.returncode}'}")
    return done


# ---------------------------------------------------------------- network namespace identity


@dataclass(frozen=True, slots=True)
class Netns:
    """The network namespace this process runs in: its inode (the identity the
    kernel uses, see ``ip netns identify``) and a name for state file names."""

    inode: int
    name: str


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def current_netns() -> Netns:
    """``host`` for the namespace of pid 1, the ``ip netns`` name if it has one,
    otherwise ``net<inode>`` (also where pid 1 cannot be inspected)."""
    inode = _netns_inode("/proc/self/ns/net")
    if inode is None:  # pragma: no cover - every Linux since 3.0 has it
        raise L4kitError("cannot read /proc/self/ns/net (is /proc mounted?)")
    if _netns_inode("/proc/1/ns/net") == inode:
        return Netns(inode, "host")
    for name in named_netns():
        if _netns_inode(f"/run/netns/{name}") == inode:
            return Netns(inode, name)
    return Netns(inode, f"net{inode}")


def named_netns() -> list[str]:
    """The names ``ip netns list`` shows (the bind mounts under /run/netns)."""
    try:
        return sorted(os.listdir("/run/netns"))
    except OSError:
        return []


def netns_exists(inode: int) -> bool:
    """Whether a namespace with this inode still exists: named, or held by a process."""
    if any(_netns_inode(f"/run/netns/{n}") == inode for n in named_netns()):
        return True
    return any(pid.isdigit() and _netns_inode(f"/proc/{pid}/ns/net") == inode for pid in os.listdir("/proc"))


# ---------------------------------------------------------------- processes


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): with the pid it
    identifies a process even after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after
    # the last ')' are plain.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether the process that wrote a state file still runs."""
    now_ticks = process_start_ticks(pid)
    if now_ticks is None:
        return False
    return start_ticks is None or now_ticks == start_ticks


# ---------------------------------------------------------------- sysctls


def sysctl_name(key: str) -> str:
    """``net/ipv4/conf/all/route_localnet`` -> ``net.ipv4.conf.all.route_localnet``."""
    return key.replace("/", ".")


def read_sysctl(key: str) -> str:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError as exc:
        raise L4kitError(f"cannot read sysctl {sysctl_name(key)}: {exc.strerror}") from exc


def write_sysctl(key: str, value: str) -> None:
    try:
        Path("/proc/sys", key).write_text(value + "\n")
    except OSError as exc:
        hint = None
        if exc.errno == errno.EROFS:
            # Docker (and other container runtimes) mount /proc/sys read-only.
            hint = f"in a container, set it when starting it: docker run --sysctl {sysctl_name(key)}={value}"
        raise L4kitError(f"cannot set sysctl {sysctl_name(key)}={value}: {exc.strerror}", hint=hint) from exc


def loopback_sysctls(iface: str, address: str) -> dict[str, str]:
    """The sysctls trap 4 needs, with the value needed: none unless ``address``
    is in 127.0.0.0/8."""
    if ipaddress.ip_address(address) not in LOOPBACK_NETWORK:
        return {}
    return {f"net/ipv4/conf/{conf}/{name}": "1" for name in LOOPBACK_SYSCTLS for conf in ("all", iface)}


# ---------------------------------------------------------------- firewall backends


class Firewall(Protocol):
    """A rule that drops the kernel's outgoing RST from one address and port."""

    backend: str

    def commands(self) -> list[str]:
        """The shell commands that install the rule (printed by ``--no-firewall``)."""
        ...

    def install(self) -> None: ...

    def remove(self) -> bool:
        """Remove the rule if present (idempotent); True if something was removed."""
        ...

    def present(self) -> bool: ...

    def dropped_rsts(self) -> int | None:
        """How many kernel RSTs the rule dropped so far, if the backend counts."""
        ...

    def describe(self) -> str: ...

    def to_state(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class NftFirewall:
    """``table inet l4kit_<port>`` with one rule in a chain on the output hook."""

    address: str
    port: int
    backend: str = "nft"

    @property
    def table(self) -> str:
        return f"{NFT_TABLE_PREFIX}{self.port}"

    def script(self) -> list[str]:
        ip = "ip6" if ":" in self.address else "ip"
        return [
            f"add table inet {self.table}",
            f"add chain inet {self.table} output {{ type filter hook output priority filter; policy accept; }}",  # noqa: E501
            f"add rule inet {self.table} output {ip} saddr {self.address} tcp sport {self.port} "
            f'tcp flags & rst == rst counter drop comment "l4kit: the kernel RST from port {self.port}"',
        ]

    def commands(self) -> list[str]:
        # One quoted argument per line: nft joins its arguments and parses them as
        # one line, so the rule's own quotes survive a copy-paste into a shell.
        return [shlex.join(["nft", line]) for line in self.script()]

    def install(self) -> None:
        # One transaction: the table appears with its rule, or not at all.
        _run(["nft", "-f", "-"], stdin="\n".join(self.script()) + "\n")

    def present(self) -> bool:
        return _run(["nft", "list", "table", "inet", self.table], check=False).returncode == 0

    def remove(self) -> bool:
        if not self.present():
            return False
        _run(["nft", "delete", "table", "inet", self.table])
        return True

    def dropped_rsts(self) -> int | None:
        done = _run(["nft", "-j", "list", "table", "inet", self.table], check=False)
        if done.returncode != 0:
            return None
        try:
            for item in json.loads(done.stdout)["nftables"]:
                for expr in item.get("rule", {}).get("expr", []):
                    if "counter" in expr:
                        return int(expr["counter"]["packets"])
        except (ValueError, KeyError, TypeError):
            return None
        return None

    def describe(self) -> str:
        return f"nft table inet {self.table}"

    def to_state(self) -> dict[str, Any]:
        return {"backend": self.backend, "address": self.address, "port": self.port, "table": self.table}


@dataclass(slots=True)
class IptablesFirewall:
    """Chain ``L4KIT-<port>`` with the rule, jumped to from ``OUTPUT`` by a tagged rule."""

    address: str
    port: int
    backend: str = "iptables"

    @property
    def binary(self) -> str:
        return "ip6tables" if ":" in self.address else "iptables"

    @property
    def chain(self) -> str:
        return f"{IPTABLES_CHAIN_PREFIX}{self.port}"

    @property
    def tag(self) -> str:
        return f"l4kit:{self.port}"

    def _jump(self, op: str) -> list[str]:
        position = ["1"] if op == "-I" else []
        return [
            self.binary,
            "-w",
            op,
            "OUTPUT",
            *position,
            "-m",
            "comment",
            "--comment",
            self.tag,
            "-j",
            self.chain,
        ]

    def _argvs(self) -> list[list[str]]:
        prefix = "128" if ":" in self.address else "32"
        return [
            [self.binary, "-w", "-N", self.chain],
            [self.binary, "-w", "-A", self.chain, "-s", f"{self.address}/{prefix}", "-p", "tcp",
             "--sport", str(self.port), "--tcp-flags", "RST", "RST",
             "-m", "comment", "--comment", "l4kit", "-j", "DROP"],
            self._jump("-I"),
        ]  # fmt: skip

    def commands(self) -> list[str]:
        return [shlex.join(argv) for argv in self._argvs()]

    def install(self) -> None:
        done: list[list[str]] = []
        try:
            for argv in self._argvs():
                _run(argv)
                done.append(argv)
        except L4kitError:
            self.remove()
            raise

    def present(self) -> bool:
        return _run([self.binary, "-w", "-S", self.chain], check=False).returncode == 0

    def remove(self) -> bool:
        removed = False
        # The jump may have been inserted more than once by hand; remove every copy.
        for _ in range(64):
            if _run(self._jump("-D"), check=False).returncode != 0:
                break
            removed = True
        if self.present():
            _run([self.binary, "-w", "-F", self.chain])
            _run([self.binary, "-w", "-X", self.chain])
            removed = True
        return removed

    def dropped_rsts(self) -> int | None:
        done = _run([self.binary, "-w", "-L", self.chain, "-n", "-v", "-x"], check=False)
        if done.returncode != 0:
            return None
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "DROP" and parts[0].isdigit():
                return int(parts[0])
        return None

    def describe(self) -> str:
        return f"{self.binary} chain {self.chain}"

    def to_state(self) -> dict[str, Any]:
        return {"backend": self.backend, "address": self.address, "port": self.port, "chain": self.chain}


def firewall_from_state(data: dict[str, Any]) -> Firewall:
    backend = str(data.get("backend"))
    address, port = str(data["address"]), int(data["port"])
    if backend == "nft":
        return NftFirewall(address, port)
    if backend == "iptables":
        return IptablesFirewall(address, port)
    raise L4kitError(f"unknown firewall backend in state file: {backend!r}")


def nft_usable() -> bool:
    return shutil.which("nft") is not None and _run(["nft", "list", "tables"], check=False).returncode == 0


def iptables_usable() -> bool:
    return (
        shutil.which("iptables") is not None
        and _run(["iptables", "-w", "-S", "OUTPUT"], check=False).returncode == 0
    )


def choose_firewall(address: str, port: int, preference: str = "auto", *, probe: bool = True) -> Firewall:
    """nft when present (a table of l4kit's own), else iptables (a chain of its own).

    ``probe=False`` only looks at which binaries exist (for ``--no-firewall``,
    which may run without the privileges that listing the ruleset needs).
    """
    if preference not in ("auto", "nft", "iptables"):
        raise ConfigError(f"unknown firewall backend {preference!r} (use auto, nft or iptables)")
    have_nft = nft_usable() if probe else shutil.which("nft") is not None
    if preference == "nft" or (preference == "auto" and have_nft):
        if not have_nft:
            raise ConfigError("nft is not installed or not usable", hint="apt-get install nftables")
        return NftFirewall(address, port)
    have_iptables = iptables_usable() if probe else shutil.which("iptables") is not None
    if not have_iptables:
        raise ConfigError(
            "neither nft nor iptables is usable, so the kernel's RST cannot be stopped",
            hint="apt-get install nftables, or run with --no-firewall and add the rule yourself",
        )
    return IptablesFirewall(address, port)


# ---------------------------------------------------------------- state files


@dataclass(slots=True)
class HostState:
    """What one responder changed on the host, as recorded in its state file."""

    netns: Netns
    port: int
    iface: str
    address: str
    pid: int
    pid_start: int | None
    firewall: dict[str, Any] | None
    sysctls_previous: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "tool": "l4kit respond",
                "netns": self.netns.name,
                "netns_inode": self.netns.inode,
                "port": self.port,
                "iface": self.iface,
                "address": self.address,
                "pid": self.pid,
                "pid_start": self.pid_start,
                "started": self.started,
                "firewall": self.firewall,
                "sysctls_previous": self.sysctls_previous,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> HostState:
        data = json.loads(text)
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown state file format {data.get('format')!r}")
        return cls(
            netns=Netns(int(data["netns_inode"]), str(data["netns"])),
            port=int(data["port"]),
            iface=str(data["iface"]),
            address=str(data["address"]),
            pid=int(data["pid"]),
            pid_start=None if data.get("pid_start") is None else int(data["pid_start"]),
            firewall=data.get("firewall"),
            sysctls_previous={str(k): str(v) for k, v in dict(data.get("sysctls_previous") or {}).items()},
            started=float(data.get("started") or 0.0),
        )

    @property
    def alive(self) -> bool:
        return process_alive(self.pid, self.pid_start)


class StateStore:
    """The state directory: one JSON file per (namespace, port), under a lock."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()

    def ensure(self) -> None:
        """Create the directory 0700; refuse one that others could write to."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise L4kitError(f"cannot create state directory {self.directory}: {exc.strerror}") from exc
        if not stat.S_ISDIR(info.st_mode):
            raise L4kitError(f"state directory {self.directory} is not a directory")
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise L4kitError(
                f"state directory {self.directory} is writable by others or not ours; refusing to use it",
                hint=f"remove it, or chmod 700 {self.directory}",
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock (flock) so that two responders never interleave
        reading and rewriting state files."""
        self.ensure()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def path_for(self, netns: Netns, port: int) -> Path:
        return self.directory / f"{netns.name}-{port}.json"

    def write(self, state: HostState) -> Path:
        """Write atomically (temporary file, fsync, rename), mode 0600."""
        self.ensure()
        path = self.path_for(state.netns, state.port)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, state.to_json().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def records(self) -> list[tuple[Path, HostState | None]]:
        """Every state file, parsed (None for one that cannot be read)."""
        if not self.directory.is_dir():
            return []
        out: list[tuple[Path, HostState | None]] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append((path, HostState.from_json(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                out.append((path, None))
        return out

    @staticmethod
    def remove(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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
        heir = next(((p, o) for p, o in others if key in o.sysctls_previous), None)
        if heir is not None:
            _path, other = heir
            done.append(f"left {sysctl_name(key)} set for l4kit pid {other.pid} (it restores {previous})")
            if not dry_run:
                other.sysctls_previous[key] = previous
                store.write(other)
            continue
        current = read_sysctl(key)
        if current != previous:
            done.append(f"sysctl -w {sysctl_name(key)}={previous}")
            if not dry_run:
                write_sysctl(key, previous)
    return done


def undo_state(store: StateStore, path: Path, state: HostState, *, dry_run: bool = False) -> list[str]:
    """Undo what ``state`` records (in this namespace) and remove its file."""
    done: list[str] = []
    if state.firewall is not None:
        firewall = firewall_from_state(state.firewall)
        if firewall.present():
            done.append(f"removed {firewall.describe()}")
            if not dry_run:
                firewall.remove()
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


class HostPreparation:
    """``with HostPreparation(plan): ...`` — the host is prepared inside the block
    and exactly restored when it is left, however it is left.

    Signals are the caller's business: the responder turns SIGINT/SIGTERM into a
    normal return from the block, so ``__exit__`` runs.
    """

    def __init__(
        self, plan: HostPlan, *, store: StateStore | None = None, notice: Notice | None = None
    ) -> None:
        self.plan = plan
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
            state = HostState(
                netns=netns,
                port=plan.port,
                iface=plan.iface,
                address=plan.address,
                pid=os.getpid(),
                pid_start=process_start_ticks(os.getpid()),
                firewall=plan.firewall.to_state() if plan.firewall is not None else None,
                sysctls_previous={key: read_sysctl(key) for key in plan.sysctls},
            )
            # Intent first: if we die between here and the end of the block,
            # the file already says what to undo (undoing a change never made
            # is harmless: the table is absent, the sysctl already has its value).
            self.path = self.store.write(state)
            self.state = state
            try:
                for key, value in plan.sysctls.items():
                    if state.sysctls_previous[key] != value:
                        write_sysctl(key, value)
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
                    f"another l4kit respond (pid {other.pid}) already answers on port {plan.port} "
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


def _nft_leftover_tables() -> list[str]:
    if shutil.which("nft") is None:
        return []
    done = _run(["nft", "list", "tables", "inet"], check=False)
    tables = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[2].startswith(NFT_TABLE_PREFIX):
            tables.append(parts[2])
    return tables


def _iptables_leftover_chains(binary: str) -> list[str]:
    if shutil.which(binary) is None:
        return []
    done = _run([binary, "-w", "-S"], check=False)
    return [
        line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith("-N ") and line.split()[1].startswith(IPTABLES_CHAIN_PREFIX)
    ]


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
    for table in _nft_leftover_tables():
        port = _port_of(table, NFT_TABLE_PREFIX)
        if port is None or port in owned_ports:
            continue
        report.actions.append(f"removed nft table inet {table}")
        if not dry_run:
            NftFirewall("0.0.0.0", port).remove()
    for binary in ("iptables", "ip6tables"):
        for chain in _iptables_leftover_chains(binary):
            port = _port_of(chain, IPTABLES_CHAIN_PREFIX)
            if port is None or port in owned_ports:
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


def delete_netns(name: str) -> None:
    """``ip netns del NAME``, tolerating a namespace that is already gone."""
    done = _run(["ip", "netns", "del", name], check=False)
    if done.returncode != 0 and os.path.exists(f"/run/netns/{name}"):
        raise L4kitError(f"cannot delete network namespace {name}: {done.stderr.strip()}")

"""The firewall rule that drops the kernel's outgoing RST from the responder's port.

Layout decision (nft): one table per responder, ``inet l4kit_<port>``, holding
one ``output`` chain with one rule. A table of its own is created by one nft
transaction and removed, with everything in it, by one ``delete table``; two
responders on different ports never touch each other's rules; and leftovers are
found by the name prefix alone, without parsing rule handles. The rule counts
what it drops, so the exit summary can say how many RSTs the kernel tried.
Where only iptables exists: a chain ``L4KIT-<port>`` holding the rule, jumped to
from ``OUTPUT`` by a rule tagged with the comment ``l4kit:<port>``.

Exact restoration with iptables-nft (the iptables of Debian and most distributions
today): its first rule in a namespace creates the nft table ``ip filter`` (``ip6
filter``) and the base chain ``OUTPUT``, and deleting the rule leaves both behind, so
``nft list ruleset`` would differ from before. The backend notes before installing
(:meth:`IptablesFirewall.observe`, recorded in the state file) whether they existed,
and deletes what iptables-nft created for it once nothing else is in them.
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
from dataclasses import dataclass
from typing import Any, Protocol

from l4kit.errors import ConfigError, L4kitError
from l4kit.live.system import run_tool

NFT_TABLE_PREFIX = "l4kit_"
IPTABLES_CHAIN_PREFIX = "L4KIT-"


class Firewall(Protocol):
    """A rule that drops the kernel's outgoing RST from one address and port."""

    backend: str

    def observe(self) -> None:
        """Note what exists before :meth:`install` (called before the state file is
        written), so that :meth:`remove` puts back exactly that."""
        ...

    def commands(self) -> list[str]:
        """The shell commands that install the rule (printed by ``--no-firewall``)."""
        ...

    def install(self) -> None: ...

    def remove(self) -> bool:
        """Remove the rule if present, and what was created for it (idempotent); True
        if something was removed."""
        ...

    def present(self) -> bool: ...

    def made_for_the_rule(self) -> list[str]:
        """What was created for the rule besides it and is still there (``nft table ip
        filter``): :meth:`remove` deletes each once nothing else is in it."""
        ...

    def take_over(self, other: dict[str, Any]) -> None:
        """Take on the duty to delete what ``other`` (the state of a responder that
        stopped first and could not, as this one's rule was still in it) created."""
        ...

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

    def observe(self) -> None:
        """Nothing to note: the table is l4kit's own, and deleting it deletes everything in it."""

    def made_for_the_rule(self) -> list[str]:
        return []

    def take_over(self, other: dict[str, Any]) -> None:
        """Nothing to take over (see :meth:`observe`)."""

    def commands(self) -> list[str]:
        # One quoted argument per line: nft joins its arguments and parses them as
        # one line, so the rule's own quotes survive a copy-paste into a shell.
        return [shlex.join(["nft", line]) for line in self.script()]

    def install(self) -> None:
        # One transaction: the table appears with its rule, or not at all.
        run_tool(["nft", "-f", "-"], stdin="\n".join(self.script()) + "\n")

    def present(self) -> bool:
        return run_tool(["nft", "list", "table", "inet", self.table], check=False).returncode == 0

    def remove(self) -> bool:
        if not self.present():
            return False
        run_tool(["nft", "delete", "table", "inet", self.table])
        return True

    def dropped_rsts(self) -> int | None:
        done = run_tool(["nft", "-j", "list", "table", "inet", self.table], check=False)
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
    # iptables-nft creates these for the first rule and leaves them when it is deleted;
    # True when they did not exist before (observe) and so are l4kit's to delete.
    creates_table: bool = False
    creates_chain: bool = False

    @property
    def binary(self) -> str:
        return "ip6tables" if ":" in self.address else "iptables"

    @property
    def family(self) -> str:
        """The nft family iptables-nft keeps this binary's rules in."""
        return "ip6" if ":" in self.address else "ip"

    def observe(self) -> None:
        if not _over_nftables(self.binary):
            return  # legacy iptables: its tables are the kernel's, created when loaded
        items = _nft_table_items(self.family, "filter")
        self.creates_table = items is None
        self.creates_chain = items is None or not any(
            item.get("chain", {}).get("name") == "OUTPUT" for item in items
        )

    def made_for_the_rule(self) -> list[str]:
        if not (self.creates_table or self.creates_chain):
            return []
        items = _nft_table_items(self.family, "filter")
        if items is None:
            return []
        if self.creates_table:
            return [f"nft table {self.family} filter"]
        if any(item.get("chain", {}).get("name") == "OUTPUT" for item in items):
            return [f"nft chain {self.family} filter OUTPUT"]
        return []

    def _delete_what_was_made(self) -> bool:
        """Delete the table (or the OUTPUT chain) iptables-nft created for the rule,
        unless something that is not this rule's is in it."""
        if not (self.creates_table or self.creates_chain):
            return False
        items = _nft_table_items(self.family, "filter")
        if items is None:
            return False
        chains = {item["chain"]["name"] for item in items if "chain" in item} - {self.chain}
        rules = [item["rule"] for item in items if "rule" in item and item["rule"].get("chain") != self.chain]
        others = [item for item in items if not {"metainfo", "table", "chain", "rule"} & item.keys()]
        if any(rule.get("chain") == "OUTPUT" for rule in rules):
            return False  # someone else's rules: theirs to keep
        if self.creates_table and chains <= {"OUTPUT"} and not rules and not others:
            run_tool(["nft", "delete", "table", self.family, "filter"])
            return True
        if "OUTPUT" in chains:
            run_tool(["nft", "delete", "chain", self.family, "filter", "OUTPUT"])
            return True
        return False

    def take_over(self, other: dict[str, Any]) -> None:
        self.creates_table |= bool(other.get("creates_table"))
        self.creates_chain |= bool(other.get("creates_chain"))

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
                run_tool(argv)
                done.append(argv)
        except L4kitError:
            self.remove()
            raise

    def present(self) -> bool:
        return run_tool([self.binary, "-w", "-S", self.chain], check=False).returncode == 0

    def remove(self) -> bool:
        removed = False
        # The jump may have been inserted more than once by hand; remove every copy.
        for _ in range(64):
            if run_tool(self._jump("-D"), check=False).returncode != 0:
                break
            removed = True
        if self.present():
            run_tool([self.binary, "-w", "-F", self.chain])
            run_tool([self.binary, "-w", "-X", self.chain])
            removed = True
        if self._delete_what_was_made():
            removed = True
        return removed

    def dropped_rsts(self) -> int | None:
        done = run_tool([self.binary, "-w", "-L", self.chain, "-n", "-v", "-x"], check=False)
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
        return {
            "backend": self.backend,
            "address": self.address,
            "port": self.port,
            "chain": self.chain,
            "creates_table": self.creates_table,
            "creates_chain": self.creates_chain,
        }


def firewall_from_state(data: dict[str, Any]) -> Firewall:
    backend = str(data.get("backend"))
    address, port = str(data["address"]), int(data["port"])
    if backend == "nft":
        return NftFirewall(address, port)
    if backend == "iptables":
        return IptablesFirewall(
            address,
            port,
            creates_table=bool(data.get("creates_table")),
            creates_chain=bool(data.get("creates_chain")),
        )
    raise L4kitError(f"unknown firewall backend in state file: {backend!r}")


@functools.cache
def _over_nftables(binary: str) -> bool:
    """Whether ``binary`` is iptables-nft (``iptables -V`` says ``(nf_tables)``) and nft
    is there to see and delete the tables it makes."""
    if shutil.which("nft") is None:
        return False
    return "nf_tables" in run_tool([binary, "-V"], check=False).stdout


def _nft_table_items(family: str, table: str) -> list[dict[str, Any]] | None:
    """The objects of one nft table (``nft -j list table``), or None if it does not exist."""
    done = run_tool(["nft", "-j", "list", "table", family, table], check=False)
    if done.returncode != 0:
        return None
    try:
        items = json.loads(done.stdout)["nftables"]
    except (ValueError, KeyError, TypeError):
        return None
    return [item for item in items if isinstance(item, dict)]


def nft_usable() -> bool:
    return (
        shutil.which("nft") is not None and run_tool(["nft", "list", "tables"], check=False).returncode == 0
    )


def iptables_usable() -> bool:
    return (
        shutil.which("iptables") is not None
        and run_tool(["iptables", "-w", "-S", "OUTPUT"], check=False).returncode == 0
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


# ---------------------------------------------------------------- leftovers of killed runs


def nft_leftover_tables() -> list[str]:
    if shutil.which("nft") is None:
        return []
    done = run_tool(["nft", "list", "tables", "inet"], check=False)
    tables = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[2].startswith(NFT_TABLE_PREFIX):
            tables.append(parts[2])
    return tables


def iptables_leftover_chains(binary: str) -> list[str]:
    if shutil.which(binary) is None:
        return []
    done = run_tool([binary, "-w", "-S"], check=False)
    return [
        line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith("-N ") and line.split()[1].startswith(IPTABLES_CHAIN_PREFIX)
    ]

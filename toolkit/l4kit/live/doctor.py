"""``l4kit doctor``: is this machine ready for the live commands, and if not, how to fix it.

Each check is a :class:`Check` with a status (``ok``, ``missing`` for a required
piece, ``warn`` for an optional one, ``info``), what was found, and the fix.
The checks only read: the one exception is the ``ip netns`` probe, which
creates and at once deletes a namespace, because only doing it proves it works.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from l4kit.live.firewall import iptables_usable, nft_usable
from l4kit.live.host import LOOPBACK_SYSCTLS, cleanup
from l4kit.live.privileges import Capability, effective_capabilities
from l4kit.live.report import Check
from l4kit.live.system import read_sysctl, sysctl_name

OK = "ok"
MISSING = "missing"
WARN = "warn"
INFO = "info"


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else ""


def check_privileges() -> list[Check]:
    mask = effective_capabilities()
    checks = []
    for cap, why in (
        (Capability.CAP_NET_RAW, "respond: the packet socket"),
        (Capability.CAP_NET_ADMIN, "respond: the RST rule and loopback sysctls"),
        (Capability.CAP_SYS_ADMIN, "--sandbox, demo, live tests: network namespaces"),
    ):
        have = bool(mask >> int(cap) & 1)
        checks.append(
            Check(
                cap.name,
                OK if have else MISSING,
                ("present" if have else "absent") + f" ({why})" + (" [root]" if os.geteuid() == 0 else ""),
                "" if have else _capability_fix(cap),
            )
        )
    return checks


def _capability_fix(cap: Capability) -> str:
    """How to get ``cap``: root is enough on a host; root in a container without it
    (Docker's default keeps only CAP_NET_RAW of the three) needs it granted."""
    if os.geteuid() != 0:
        return "run as root (sudo l4kit ...)"
    flag = "--privileged" if cap is Capability.CAP_SYS_ADMIN else f"--cap-add {cap.name.removeprefix('CAP_')}"
    return f"root here lacks {cap.name}: grant it (a container: docker run {flag})"


def check_bpf_compiler() -> list[Check]:
    """Scapy 2.6+ compiles BPF with libpcap through ctypes; tcpdump (which
    links libpcap) is the fallback and the packet capture the tests use."""
    checks = []
    try:
        from scapy.arch.common import compile_filter, free_filter

        program = compile_filter("inbound and tcp and dst port 8888", linktype=1)
        free_filter(program)
        checks.append(Check("BPF compiler (libpcap)", OK, "Scapy compiles filters with libpcap"))
        libpcap = True
    except Exception as exc:
        libpcap = False
        checks.append(
            Check(
                "BPF compiler (libpcap)",
                WARN,
                f"unavailable: {exc}",
                "apt-get install libpcap0.8",
                required=False,
            )
        )
    tcpdump = shutil.which("tcpdump")
    if tcpdump:
        checks.append(
            Check("tcpdump", OK, _version(["tcpdump", "--version"]) or tcpdump, required=not libpcap)
        )
    else:
        checks.append(
            Check(
                "tcpdump",
                WARN if libpcap else MISSING,
                "not installed" + ("" if libpcap else ": no way to compile the sniffer's BPF filter"),
                "apt-get install tcpdump",
                required=not libpcap,
            )
        )
    return checks


def check_firewall() -> list[Check]:
    """nft and iptables: installed, and (as root) able to list the ruleset. A tool that is
    installed but refused is not reported as missing: what is missing then is CAP_NET_ADMIN
    (root in a container without it) or whatever the tool said."""
    nft = shutil.which("nft")
    ipt = shutil.which("iptables")
    root = os.geteuid() == 0
    admin = bool(effective_capabilities() >> int(Capability.CAP_NET_ADMIN) & 1)
    nft_ok = bool(nft) and (not root or nft_usable())
    ipt_ok = bool(ipt) and (not root or iptables_usable())
    chosen = "nft" if nft_ok else "iptables" if ipt_ok else ""

    def row(name: str, path: str | None, ok: bool, *, package: str, status: str, note: str) -> Check:
        if path is None:
            found, fix = "not installed", package and f"apt-get install {package}"
        elif ok:
            found, fix = _version([name, "--version"]) + note, ""
        elif not admin:
            found = f"{_version([name, '--version'])}, but it cannot list the ruleset without CAP_NET_ADMIN"
            fix = _capability_fix(Capability.CAP_NET_ADMIN)
        else:
            found, fix = f"{_version([name, '--version'])}, but it fails: {_refusal(name)}", ""
        return Check(name, status, found, fix, required=not (ipt_ok if name == "nft" else nft_ok))

    return [
        row(
            "nft",
            nft,
            nft_ok,
            package="nftables",
            status=OK if nft_ok else (WARN if ipt_ok else MISSING),
            note=" (used)" if chosen == "nft" else "",
        ),
        row(
            "iptables",
            ipt,
            ipt_ok,
            package="" if nft_ok else "iptables",
            status=OK if ipt_ok else (INFO if nft_ok else MISSING),
            note=" (used)" if chosen == "iptables" else " (fallback)" if ipt_ok else "",
        ),
    ]


def _refusal(name: str) -> str:
    """The first line the tool printed when asked to list the ruleset."""
    argv = ["nft", "list", "tables"] if name == "nft" else ["iptables", "-w", "-S", "OUTPUT"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else f"exit {done.returncode}"


def check_netns() -> Check:
    if shutil.which("ip") is None:
        return Check("ip netns", MISSING, "the ip command is not installed", "apt-get install iproute2")
    if os.geteuid() != 0:
        return Check("ip netns", WARN, "not probed (needs root)", "run l4kit doctor as root", required=False)
    name = f"l4kit-doctor-{os.getpid()}"
    add = subprocess.run(
        ["ip", "netns", "add", name], capture_output=True, text=True, check=False, timeout=10
    )
    if add.returncode != 0:
        return Check(
            "ip netns",
            MISSING,
            f"cannot create a namespace: {add.stderr.strip()}",
            "run on a host (or container with --privileged) that allows network namespaces",
        )
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=10)
    return Check("ip netns", OK, "created and deleted a test namespace")


def check_optional_tools() -> list[Check]:
    out = []
    tshark = shutil.which("tshark")
    out.append(
        Check(
            "tshark",
            OK if tshark else WARN,
            (_version(["tshark", "--version"]) if tshark else "not installed")
            + " (reference dissector for tests)",
            "" if tshark else "DEBIAN_FRONTEND=noninteractive apt-get install tshark",
            required=False,
        )
    )
    nc = shutil.which("nc")
    out.append(
        Check(
            "nc",
            OK if nc else WARN,
            (_version(["nc", "-h"]) if nc else "not installed") + " (the demo's client)",
            "" if nc else "apt-get install netcat-openbsd",
            required=False,
        )
    )
    return out


def check_compiled_build() -> Check:
    """Whether the per-packet modules (replay's, the TCP core's, the responder's packet
    thread) were compiled by mypyc at install (setup.py). Looked up, not imported: the
    doctor loads none of them."""
    from importlib.util import find_spec

    parts = {
        "replay": "l4kit.replay.engine",
        "TCP core": "l4kit.core.connection",
        "packet thread": "l4kit.live.packet_thread",
    }
    compiled = []
    for part, module in parts.items():
        spec = find_spec(module)
        if spec is not None and (spec.origin or "").endswith(".so"):
            compiled.append(part)
    if len(compiled) == len(parts):
        return Check("compiled build", OK, "compiled with mypyc: " + ", ".join(compiled), required=False)
    return Check(
        "compiled build",
        INFO,
        "pure Python (an editable install, L4KIT_PURE=1, or no C compiler at install): replay is "
        "about 1.5x slower, the responder about 1.3x"
        + (f" (compiled: {', '.join(compiled)} only)" if compiled else ""),
        "with gcc and python3-dev installed: pip install --force-reinstall --no-deps <l4kit source>",
        required=False,
    )


def _sysctl_value(key: str) -> str:
    try:
        return read_sysctl(key)
    except Exception as exc:
        return f"unreadable ({exc})"


def check_sysctls(iface: str = "lo") -> list[Check]:
    """The loopback sysctls ``respond --iface lo`` sets (trap 4), and ``all.route_localnet``,
    which l4kit never sets: on, it lets neighbours on every interface reach services bound
    to 127.0.0.1."""
    out = [
        Check(
            sysctl_name(key),
            INFO,
            f"{_sysctl_value(key)} (respond sets 1 for 127.0.0.0/8 while it runs, then restores)",
            required=False,
        )
        for key in (f"net/ipv4/conf/{iface}/{name}" for name in LOOPBACK_SYSCTLS)
    ]
    key = "net/ipv4/conf/all/route_localnet"
    value = _sysctl_value(key)
    if value == "1":
        out.append(
            Check(
                sysctl_name(key),
                WARN,
                "1: packets to 127.0.0.0/8 arriving on any interface are routed to local services "
                "(l4kit needs only lo's own, and never sets this one)",
                f"sysctl -w {sysctl_name(key)}=0, unless something here needs it (kube-proxy does)",
                required=False,
            )
        )
    else:
        out.append(Check(sysctl_name(key), INFO, f"{value} (l4kit never changes it)", required=False))
    return out


def check_leftovers() -> Check:
    """What ``l4kit cleanup`` would remove (a dry run of it)."""
    if os.geteuid() != 0:
        return Check("leftovers", INFO, "not checked (needs root)", required=False)
    report = cleanup(dry_run=True)
    if report.actions:
        return Check("leftovers", WARN, "; ".join(report.actions), "l4kit cleanup", required=False)
    running = f" ({len(report.skipped)} responder(s) running)" if report.skipped else ""
    return Check("leftovers", OK, f"none{running}", required=False)


def run_checks() -> list[Check]:
    checks = check_privileges()
    checks += check_bpf_compiler()
    checks += check_firewall()
    checks.append(check_netns())
    checks += check_optional_tools()
    checks.append(check_compiled_build())
    checks += check_sysctls()
    checks.append(check_leftovers())
    return checks


def all_required_present(checks: list[Check]) -> bool:
    return all(c.status != MISSING for c in checks if c.required)

"""While ``respond`` runs, a neighbour still cannot reach services bound to 127.0.0.1.

The loopback sysctls respond needs (trap 4) are set on ``lo`` only. Set on ``all``,
``route_localnet=1`` would make the kernel route a packet addressed to 127.0.0.1 that
arrives on any interface, so a host on a veth pair could reach a service that trusts
being bound to the loopback address (the class of CVE-2020-8558).

The victim namespace runs a UDP service on 127.0.0.1:9998 and the responder; the
neighbour, on the other end of a veth pair, sends it frames addressed to 127.0.0.1
(crafted with Scapy: its own kernel would route 127.0.0.1 to itself), each followed by
a sentinel datagram to the victim's veth address over the same path. The sentinel
arriving without the probe is the proof. A control run with ``all.route_localnet=1``
set by hand shows the probe does arrive when the hole is open.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from namespaces import Namespace, namespace

pytestmark = pytest.mark.live

VICTIM, NEIGHBOUR = "10.77.0.1", "10.77.0.2"
SERVICE_PORT = 9998

SERVICE = """
import select, socket, sys
out = open(sys.argv[1], "a", buffering=1)
sockets = []
for address in ("127.0.0.1", sys.argv[2]):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, int(sys.argv[3])))
    sockets.append(s)
out.write("ready\\n")
while True:
    for s in select.select(sockets, [], [])[0]:
        data, peer = s.recvfrom(100)
        out.write(f"{s.getsockname()[0]} {data.decode()}\\n")
"""

# Sent from the neighbour: the probe to 127.0.0.1, then the sentinel to the victim's own
# address, in one sendp on one socket (so in this order on the veth).
PROBE = """
import sys
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp
mac, victim, neighbour, port, tag = sys.argv[1:6]
frames = [
    Ether(dst=mac) / IP(src=neighbour, dst=address) / UDP(sport=40000, dport=int(port)) / f"{tag}".encode()
    for address in ("127.0.0.1", victim)
]
sendp(frames, iface="vb", verbose=False)
"""


@pytest.fixture
def neighbour(netns: Namespace, tmp_path: Path) -> Iterator[Namespace]:
    """A second namespace joined to ``netns`` by a veth pair (va in the victim, vb here)."""
    with namespace("l4tn", tmp_path / "neighbour-state") as other:
        netns.run(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", other.name])
        netns.run(["ip", "addr", "add", f"{VICTIM}/24", "dev", "va"])
        netns.run(["ip", "link", "set", "va", "up"])
        other.run(["ip", "addr", "add", f"{NEIGHBOUR}/24", "dev", "vb"])
        other.run(["ip", "link", "set", "vb", "up"])
        yield other


def _wait_for(path: Path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never arrived; the service saw:\n{path.read_text()}")


def _probe(victim: Namespace, neighbour: Namespace, log: Path, tag: str) -> bool:
    """Send one probe and its sentinel; True if the probe reached the 127.0.0.1 service."""
    mac = victim.run(["cat", "/sys/class/net/va/address"]).stdout.strip()
    neighbour.run([sys.executable, "-c", PROBE, mac, VICTIM, NEIGHBOUR, str(SERVICE_PORT), tag])
    _wait_for(log, f"{VICTIM} {tag}")
    time.sleep(0.3)  # the probe went first on the same veth: it would be here by now
    return f"127.0.0.1 {tag}" in log.read_text()


def test_a_neighbour_cannot_reach_a_127_service_while_respond_runs(
    netns: Namespace, neighbour: Namespace, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    netns.popen([sys.executable, "-c", SERVICE, str(log), VICTIM, str(SERVICE_PORT)])
    _wait_for(log, "ready")
    before = {key: netns.sysctl(key) for key in _conf_keys()}

    # The control: with all.route_localnet on (what respond must never do), the probe arrives.
    netns.set_sysctl("net/ipv4/conf/all/route_localnet", "1")
    assert _probe(netns, neighbour, log, "control"), log.read_text()
    netns.set_sysctl("net/ipv4/conf/all/route_localnet", before["net/ipv4/conf/all/route_localnet"])
    assert not _probe(netns, neighbour, log, "idle"), log.read_text()

    responder = netns.respond("--quiet")
    during = {key: netns.sysctl(key) for key in _conf_keys()}
    # Only lo's own two sysctls change; all and default (and va's) stay as they were.
    changed = {key for key in before if during[key] != before[key]}
    assert changed == {"net/ipv4/conf/lo/route_localnet", "net/ipv4/conf/lo/accept_local"}, during
    assert not _probe(netns, neighbour, log, "during"), log.read_text()
    # And the responder does what it is there for.
    served = netns.run(["nc", "127.0.0.1", "8888"], input="toppage\n", timeout=10)
    assert served.stdout == "hello world\n"
    code, output = responder.stop()
    assert code == 0, output
    assert {key: netns.sysctl(key) for key in _conf_keys()} == before


def _conf_keys() -> list[str]:
    return [
        f"net/ipv4/conf/{conf}/{name}"
        for conf in ("all", "default", "lo", "va")
        for name in ("route_localnet", "accept_local")
    ]

"""The live driver: ``l4kit respond``, ``l4kit connect`` and userspace TCP sockets on a real interface.

The sans-IO core (:mod:`l4kit.core`) decides what to send; this package moves
frames between it and the kernel, and prepares the host so that the kernel's
own TCP stays out of the way (docs/design.md, "The Linux loopback traps"):

- :mod:`~l4kit.live.options`: ``respond``'s options, written once (the CLI, the
  sandboxed child's command line and the responder all read them from there).
- :mod:`~l4kit.live.privileges`: which capabilities the process has.
- :mod:`~l4kit.live.preflight`: interface, address, BPF compiler and port checks
  that turn foreseeable mistakes into one-line errors.
- :mod:`~l4kit.live.host`: the RST-dropping firewall rule and the loopback
  sysctls, recorded in a state file and restored on every exit path; the rule's
  backends are in :mod:`~l4kit.live.firewall`, the state files in
  :mod:`~l4kit.live.state`, the host's tools, namespaces and sysctls in
  :mod:`~l4kit.live.system`.
- :mod:`~l4kit.live.capture`: the packet socket with the BPF filter that the
  Scapy ``AsyncSniffer`` reads, without dissecting frames, through the PACKET_MMAP
  receive ring of :mod:`~l4kit.live.ring`.
- :mod:`~l4kit.live.sender`: one persistent Scapy L2 socket for every reply.
- :mod:`~l4kit.live.pcap`: a pcap writer thread (``--pcap``), its file opened by
  :mod:`l4kit.safefile` (never through a link; a new file the sudo user's).
- :mod:`~l4kit.live.responder`: the driver that owns the core's listener; what runs
  on the sniffer thread (decode, the core, encode, send) is in
  :mod:`~l4kit.live.packet_thread`.
- :mod:`~l4kit.live.client`: userspace TCP client sockets (:class:`Client`,
  :class:`Socket`, :func:`connect`; ``docs/client.md``), the next hop found by
  :mod:`~l4kit.live.route`.
- :mod:`~l4kit.live.sandbox`: run all of it inside a throw-away network namespace.
- :mod:`~l4kit.live.doctor`: what the live commands need, checked.
- :mod:`~l4kit.live.apps`: the string server the responder runs, on the embedded
  routes or a routes file (Scapy-free, so that ``demo`` can ask it for the right reply).
- :mod:`~l4kit.live.report`: what the live commands report, as plain values the
  views can import without Scapy or the process machinery.

Nothing here prints with Rich: events and the exit summary go to the caller
(``l4kit.views.live`` renders them), so that the layers stay as docs/design.md draws them.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from l4kit.live.client import Client, Socket, connect

__all__ = ["Client", "Socket", "connect"]


def __getattr__(name: str) -> Any:
    # The client loads Scapy: only when asked for (``l4kit --help`` reads live.options).
    if name in __all__:
        from l4kit.live import client

        return getattr(client, name)
    raise AttributeError(f"module 'l4kit.live' has no attribute {name!r}")

"""l4kit: TCP at layer 4, in the open.

A userspace TCP responder (``l4kit respond``), a capture analyser
(``l4kit replay``), TCP clients (``l4kit connect``, ``liveplay``), a packetdrill
runner (``l4kit drill``) and notebooks, all driving one sans-IO TCP core.

Layers, from the bottom; a module imports only from layers below its own
(pyproject.toml's import-linter contracts enforce it; docs/design.md explains it)::

    errors, mermaid  <-  checksum  <-  wire  <-  core, drill.script  <-  codecs, safefile
        <-  drivers  <-  live, replay, notebook, drill.run  <-  views  <-  commands  <-  cli

``core``, ``wire``, ``checksum``, ``errors``, ``mermaid`` and ``drill.script`` import
neither Scapy nor anything that does I/O (sockets, threads, clocks, subprocesses, Rich,
Typer); the views render and never run the drivers' process machinery.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

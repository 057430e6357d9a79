"""l4kit: TCP at layer 4, in the open.

A userspace TCP responder (``l4kit respond``), a capture analyser
(``l4kit replay``) and notebooks, all driving one sans-IO TCP core.

Layers, from the bottom (see DESIGN.md; enforced by import-linter):

    errors, checksum  <-  wire  <-  core  <-  codecs, safefile  <-  live, replay, notebook
        <-  views  <-  commands  <-  cli
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

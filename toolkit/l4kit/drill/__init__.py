"""``l4kit drill``: packetdrill scripts, run against the Linux kernel or l4kit's core.

- :mod:`l4kit.drill.script`: the language (parser, model, printer) and the pure
  rules of a run (symbols, sequence-number mapping, packet and time checks); no
  I/O, so it sits low in the import contract, beside the core.
- :mod:`l4kit.drill.run`: the drivers: the event loop every target shares (timing,
  tolerance, the socket under test, results), the settings, and the targets.
"""

"""The bodies of the ``l4kit`` commands, one module each.

:mod:`l4kit.cli` parses the command line (Typer) and calls in here; each command
checks what it needs, runs the drivers (:mod:`l4kit.live`, :mod:`l4kit.replay`)
and hands what they return to a view (:mod:`l4kit.views`) to print. The views
only render: process fan-out, subprocesses, the garbage collector and the host's
state are handled here or in the drivers, never in a view (import-linter checks it).
"""

"""The bodies of the ``l4kit`` commands, one module each (``respond``, ``replay``,
``connect``, ``liveplay``, ``drill``, ``demo``, ``doctor``, ``cleanup``).

:mod:`l4kit.cli` parses the command line (Typer) and calls in here; each command
checks what it needs, runs the drivers (:mod:`l4kit.live`, :mod:`l4kit.replay`)
and hands what they return to a view (:mod:`l4kit.views`) to print. The views
only render: process fan-out, subprocesses, the garbage collector and the host's
state are handled here or in the drivers, never in a view (import-linter checks it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def invoked_as(argv0: str | None = None) -> str:
    """How to run this same l4kit again, for hints a user copies: ``l4kit`` when that is
    what the PATH finds, else the script's absolute path (a virtualenv's
    ``.venv/bin/l4kit``, which neither the PATH nor sudo's secure_path holds), or
    ``python -m l4kit`` with this interpreter when run that way."""
    script = argv0 if argv0 is not None else sys.argv[0]
    if os.path.basename(script) in ("__main__.py", "-m", "-c") or not script:
        return f"{shlex.quote(sys.executable)} -m l4kit"
    path = os.path.realpath(shutil.which(script) or script)
    found = shutil.which("l4kit")
    if found is not None and os.path.realpath(found) == path:
        return "l4kit"
    return shlex.quote(os.path.abspath(shutil.which(script) or script))

"""Build l4kit: pure Python, with replay's per-packet modules compiled by mypyc.

Everything about the package is in ``pyproject.toml``; this file only adds the
compiled modules. ``l4kit replay`` spends its time in a handful of modules that run
once per packet (the decoder, the three observers, the engine's loop, the JSON
text). mypyc (part of mypy) compiles those same typed Python files to C
extensions, which replay about 1.5 times as fast (``benchmarks/bench_replay.py``
measures both builds in one run). The Python files stay the source and the
reference: every module works, and is tested, without compiling.

Pure Python is built instead when:

* ``L4KIT_PURE=1`` is set;
* the install is editable (``pip install -e .``): a compiled module in the source
  tree would shadow edits to its ``.py`` file until the next build;
* mypyc is not importable, or refuses the code (a newer mypy finding a type
  error, say), or the C compiler fails (no ``gcc``, no Python headers): the
  extensions are optional, pip warns and installs the rest.

Whether an installed l4kit is compiled: ``l4kit doctor`` says, and
``l4kit.replay.engine.__file__`` ends in ``.so``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup

# setuptools builds in ./build and keeps what it finds there: a module deleted or
# renamed since an earlier build would still go into the wheel. Every build starts
# clean (mypyc writes its C files there too).
shutil.rmtree(Path(__file__).resolve().parent / "build", ignore_errors=True)

COMPILED = [
    "toolkit/l4kit/replay/model.py",
    "toolkit/l4kit/replay/fastpath.py",
    "toolkit/l4kit/replay/zeek.py",
    "toolkit/l4kit/replay/analysis.py",
    "toolkit/l4kit/replay/states.py",
    "toolkit/l4kit/replay/engine.py",
    "toolkit/l4kit/replay/jsontext.py",
]


def ext_modules() -> list[Extension]:
    if os.environ.get("L4KIT_PURE") == "1" or {"editable_wheel", "develop"} & set(sys.argv):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("l4kit: mypyc not available, building pure Python", file=sys.stderr)
        return []
    try:
        extensions = mypycify(COMPILED, opt_level="3", debug_level="0", group_name="l4kit")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error (a newer mypy, say)
        print(f"l4kit: mypyc could not compile replay ({exc!r}), building pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # no compiler: warn and install pure Python
    return extensions


setup(ext_modules=ext_modules())

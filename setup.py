"""Build l4kit: pure Python, with its per-packet modules compiled by mypyc.

Everything about the package is in ``pyproject.toml``; this file only adds the
compiled modules. mypyc (part of mypy) compiles these typed Python files to C
extensions:

* replay's per-packet modules (the decoder, the three observers, the engine's loop,
  the JSON text): replay about 1.5 times as fast (``benchmarks/bench_replay.py``
  measures both builds in one run); and its per-connection writers (conn.log lines,
  uids and Community IDs, Parquet's columns), which the zeek and Parquet formats
  spend most of their own time in (``benchmarks/bench_analytics.py``);
* the TCP core's state machine (the connection, the listener, reassembly, ISNs, SYN
  cookies): the responder spends most of its CPU there, and serves about 1.3 times
  as many connections a second (``benchmarks/bench_responder.py``);
* the values the core speaks (``wire/seqnum.py``, ``wire/segment.py``,
  ``core/events.py``, and ``wire/value.py``, the base of the last two) and the fast
  codec (``codecs/fast.py``): compiled, ``SeqNum``,
  ``Segment`` and the events are native classes, and a segment or an event the decoder
  or the core builds costs well under a microsecond instead of 1.5-3.5 µs; with all
  three, the responder's packet thread took about a third less time with no I/O
  (``benchmarks/responder_phases.py``; figures in ``docs/design.md``);
* ``core/states.py``: compiled, the members of ``State`` are constants the compiled
  core loads directly; otherwise each ``State.X`` in it is a lookup through Python
  3.11's ``EnumType.__getattr__`` hook, about 140 a connection, a fifth of the
  responder's packet thread;
* the responder's packet thread (``live/packet_thread.py``) and its receive ring
  (``live/ring.py``): native calls into the core and the codec, native counters.

Not compiled: what validates untrusted input through annotations that state the
valid result (the routes file, ``core/server.py``), and what is not on a per-packet
path. A compiled module checks its annotations at run time, which pure Python never
does (an annotation must admit every value the module is given: the fast codec's
decoder says ``bytes | bytearray | memoryview``, as tests feed it edited packets); the
test suite runs the replay, core, wire, codec and live responder tests on this build
too (``scripts/check.sh``). The Python files stay the source and the reference: every
module works, and is tested, without compiling.

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
    "toolkit/l4kit/replay/parquet.py",
    "toolkit/l4kit/replay/flowid.py",
    "toolkit/l4kit/replay/zeeklog.py",
    "toolkit/l4kit/core/config.py",
    "toolkit/l4kit/core/connection.py",
    "toolkit/l4kit/core/stack.py",
    "toolkit/l4kit/core/listener.py",
    "toolkit/l4kit/core/reassembly.py",
    "toolkit/l4kit/core/isn.py",
    "toolkit/l4kit/core/syncookies.py",
    "toolkit/l4kit/core/events.py",
    "toolkit/l4kit/core/states.py",
    "toolkit/l4kit/core/server.py",
    "toolkit/l4kit/wire/seqnum.py",
    "toolkit/l4kit/wire/value.py",
    "toolkit/l4kit/wire/segment.py",
    "toolkit/l4kit/wire/tcp.py",
    "toolkit/l4kit/codecs/fast.py",
    "toolkit/l4kit/live/ring.py",
    "toolkit/l4kit/live/packet_thread.py",
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
        print(f"l4kit: mypyc could not compile ({exc!r}), building pure Python", file=sys.stderr)
        return []
    for extension in extensions:
        extension.optional = True  # no compiler: warn and install pure Python
    return extensions


setup(ext_modules=ext_modules())

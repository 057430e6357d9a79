"""Print how l4kit is installed in the interpreter running this: ``regular compiled``,
``regular pure`` or ``editable pure`` (or ``absent``).

scripts/bootstrap.sh keeps this beside the source's hash in its stamp: an install
replaced since (``pip install -e '.[notebooks]'`` swaps the compiled build for pure
Python from the same source) no longer matches, and is installed again.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

try:
    dist = importlib.metadata.distribution("l4kit")
except importlib.metadata.PackageNotFoundError:
    print("absent")
else:
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    editable = bool(url.get("dir_info", {}).get("editable"))
    # One module setup.py compiles: its file is a C extension in a compiled build.
    spec = importlib.util.find_spec("l4kit.core.connection")
    origin = (spec.origin or "") if spec is not None else ""
    compiled = origin.endswith((".so", ".pyd"))
    print(f"{'editable' if editable else 'regular'} {'compiled' if compiled else 'pure'}")

"""Fixtures of the reliability tests.

``netns`` is the live tests' namespace fixture (tests/live/conftest.py) with a
prefix of its own (``l4r-``), so a reliability namespace is recognisable and never
collides with a live test's. Everything else is in ``reliability_helpers``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import Namespace, live

_counter = itertools.count()


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[Namespace]:
    """A fresh network namespace with ``lo`` up; always deleted (as tests/live's)."""
    reason = live.live_capable()
    if reason:
        pytest.skip(reason)
    name = f"l4r-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ns = Namespace(name, tmp_path / "state")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield ns
    finally:
        ns.kill_all()
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)

"""Fixtures of the reliability tests.

``netns`` is the live tests' namespace (tests/namespaces.py) with a prefix of its
own (``l4r-``), so a reliability namespace is recognisable and never collides with
a live test's. Everything else is in ``reliability_helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from namespaces import Namespace, live_capable, namespace


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[Namespace]:
    """A fresh network namespace with ``lo`` up; always deleted (as tests/live's)."""
    reason = live_capable()
    if reason:
        pytest.skip(reason)
    with namespace("l4r", tmp_path / "state") as ns:
        yield ns

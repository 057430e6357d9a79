"""Session-wide checks."""

from __future__ import annotations

import os

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    """``L4KIT_EXPECT_COMPILED=1`` (scripts/check.sh's second run): the tests are meant
    for the mypyc-compiled build; stop at once if l4kit was imported from elsewhere."""
    if os.environ.get("L4KIT_EXPECT_COMPILED") != "1":
        return
    import l4kit.replay.engine
    import l4kit.replay.jsontext

    for module in (l4kit.replay.engine, l4kit.replay.jsontext):
        if not (module.__file__ or "").endswith(".so"):
            raise pytest.UsageError(f"L4KIT_EXPECT_COMPILED: {module.__name__} is {module.__file__}")

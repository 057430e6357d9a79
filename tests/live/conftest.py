"""Live-test fixtures: a network namespace per test, and the real responder in it.

``netns`` (function scope) yields a :class:`~namespaces.Namespace` made for the test,
with ``lo`` up, and always deletes it; ``spawn_l4kit`` starts ``l4kit`` outside any
test namespace (``respond --sandbox`` makes its own). The machinery is in
``tests/namespaces.py``, shared with the reliability tests.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from namespaces import Namespace, RunningResponder, live_capable, namespace


@pytest.fixture
def spawn_l4kit() -> Iterator[Callable[..., RunningResponder]]:
    """``spawn_l4kit(*args, env=...)``: ``python -m l4kit *args`` outside any test
    namespace (``respond --sandbox`` makes its own), started and waited for like
    ``ns.respond``; killed at the end of the test if still running."""
    reason = live_capable()
    if reason:
        pytest.skip(reason)
    started: list[subprocess.Popen[str]] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> RunningResponder:
        process = subprocess.Popen(
            [sys.executable, "-m", "l4kit", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
        )  # fmt: skip
        started.append(process)
        return RunningResponder(process)

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[Namespace]:
    """A fresh network namespace with ``lo`` up; always deleted."""
    reason = live_capable()
    if reason:
        pytest.skip(reason)
    with namespace("l4t", tmp_path / "state") as ns:
        yield ns

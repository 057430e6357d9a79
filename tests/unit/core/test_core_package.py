"""``l4kit.core``'s public names load on first use; every one of them resolves."""

from __future__ import annotations

import subprocess
import sys

import l4kit.core as core


def test_every_public_name_resolves_to_its_module_object() -> None:
    from l4kit.core import listener, server, states

    for name in core.__all__:
        assert getattr(core, name) is not None, name
    assert core.Listener is listener.Listener
    assert core.State is states.State
    assert core.make_app_factory is server.make_app_factory
    assert sorted(dir(core)) == sorted(core.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = core.NoSuchThing  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_the_states_alone_do_not_load_the_state_machine() -> None:
    # What `l4kit replay` needs from the core; the listener and connection stay unloaded.
    code = (
        "import sys, l4kit.core.states; print(sorted(m for m in sys.modules if m.startswith('l4kit.core')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['l4kit.core', 'l4kit.core.states']"

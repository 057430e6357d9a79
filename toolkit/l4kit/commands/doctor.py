"""``l4kit doctor``: what the live commands need, checked, with a fix for each missing piece."""

from __future__ import annotations


def doctor() -> int:
    """Print the checks; 0 when everything required is present, else 1."""
    from l4kit.live import doctor as checks_module
    from l4kit.views.host import print_doctor
    from l4kit.views.live import consoles

    console, _err = consoles()
    checks = checks_module.run_checks()
    ready = checks_module.all_required_present(checks)
    print_doctor(console, checks, ready=ready)
    return 0 if ready else 1

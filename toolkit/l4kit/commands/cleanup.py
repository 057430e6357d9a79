"""``l4kit cleanup``: undo what killed responders left in this network namespace."""

from __future__ import annotations


def cleanup(*, dry_run: bool) -> int:
    """Remove leftover firewall rules, restore recorded sysctls, delete orphaned
    sandboxes (or only list them with ``dry_run``). Returns the exit code."""
    from l4kit.live.host import cleanup as host_cleanup
    from l4kit.live.privileges import Capability, require_capabilities
    from l4kit.views.host import print_cleanup
    from l4kit.views.live import consoles

    require_capabilities("l4kit cleanup", [Capability.CAP_NET_ADMIN])
    console, _err = consoles()
    print_cleanup(console, host_cleanup(dry_run=dry_run), dry_run=dry_run)
    return 0

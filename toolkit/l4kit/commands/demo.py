"""``l4kit demo``: the responder in a throw-away namespace, a real ``nc`` against it."""

from __future__ import annotations


def demo(*, message: str, port: int) -> int:
    """Run the demo once; 0 when ``nc`` printed the expected reply and the responder stopped cleanly."""
    from l4kit.commands import invoked_as
    from l4kit.live.apps import expected_reply
    from l4kit.live.privileges import require_live_privileges
    from l4kit.live.sandbox import run_demo
    from l4kit.views.demo import print_demo_header, print_demo_result
    from l4kit.views.live import consoles

    require_live_privileges("l4kit demo", firewall=True, namespace=True)
    console, err = consoles()
    expected = expected_reply(message)
    print_demo_header(console, port)
    result = run_demo(message, port, expected, progress=lambda line: console.print(line, markup=False))
    ok = print_demo_result(console, err, result, message=message, program=invoked_as())
    return 0 if ok else 1

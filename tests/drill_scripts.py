"""The project's own packetdrill scripts (``tests/drill/``) and what each must do on
either target: the kernel's (tests/live/test_drill_kernel.py) and l4kit's core
(tests/unit/drill/test_drill_l4kit_target.py) are held to the same verdicts."""

from __future__ import annotations

from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "drill"
PASSING = {
    "passive-open.pkt",
    "active-open.pkt",
    "close-local-first.pkt",
    "close-remote-first.pkt",
    "reset.pkt",
    "challenge-ack.pkt",
    "retransmit.pkt",
    "options.pkt",
    "tcp-info.pkt",
}
FAILING = {"fails-on-ack.pkt", "fails-on-result.pkt"}

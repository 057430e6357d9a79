"""Replay never fails on damaged input: mutated frames through the engine and every writer.

Real captures (kernel traffic and l4kit's responder on loopback) with bytes overwritten,
frames cut short, padded, dropped, duplicated and reordered, and timestamps that jump
back: every frame is decoded, counted or skipped with a reason, the reports are made and
written as JSON (which must parse), Mermaid and Rich tables, and nothing raises.
scripts/check.sh runs this file on the mypyc-compiled build too, where a value that does
not match its annotation would raise a TypeError that pure Python lets through.
"""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from test_replay_support import DATA

from l4kit.replay.capture import CaptureReader
from l4kit.replay.engine import Replayer
from l4kit.replay.fragments import COMPLETED
from l4kit.replay.jsontext import connection_json_text
from l4kit.replay.model import ConnectionReport
from l4kit.views.replay import JsonWriter, MermaidWriter, TableCollector

Frame = tuple[int, float, int, bytes, int]


def _frames(name: str) -> list[Frame]:
    with CaptureReader(DATA / name) as capture:
        return list(capture)


SOURCES = {name: _frames(name) for name in ("lo-kernel.pcap", "lo-l4kit-responder.pcap")}

mutation = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(0, 200), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.integers(0, 120)),
    st.tuples(st.just("pad"), st.integers(0, 10_000), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("drop"), st.integers(0, 10_000)),
    st.tuples(st.just("repeat"), st.integers(0, 10_000)),
    st.tuples(st.just("swap"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("time"), st.integers(0, 10_000), st.floats(-5.0, 100.0, allow_nan=False)),
)


def _mutate(frames: list[Frame], mutations: list[tuple]) -> list[Frame]:  # type: ignore[type-arg]
    out = list(frames)
    for m in mutations:
        if not out:
            break
        i = m[1] % len(out)
        number, t, linktype, data, wirelen = out[i]
        if m[0] == "byte":
            pos = m[2] % len(data) if data else 0
            data = data[:pos] + bytes([m[3]]) + data[pos + 1 :]
        elif m[0] == "cut":
            data = data[: m[2]]
        elif m[0] == "pad":
            data += m[2]
        elif m[0] == "drop":
            del out[i]
            continue
        elif m[0] == "repeat":
            out.insert(i, out[i])
            continue
        elif m[0] == "swap":
            j = m[2] % len(out)
            out[i], out[j] = out[j], out[i]
            continue
        elif m[0] == "time":
            t = max(0.0, t + m[2])
        out[i] = (number, t, linktype, data, wirelen)
    # renumbered in order, as a reader would number them
    return [(n, t, lt, d, w) for n, (_, t, lt, d, w) in enumerate(out, 1)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SOURCES)), st.lists(mutation, max_size=25), st.integers(1, 5))
def test_mutated_captures_replay_and_write_without_an_error(
    source: str,
    mutations: list[tuple],  # type: ignore[type-arg]
    max_rows: int,
) -> None:
    frames = _mutate(SOURCES[source], mutations)
    reports: list[ConnectionReport] = []
    replayer = Replayer(reports.append, file=source, max_rows=max_rows, linger=0.5)
    replayer.run(frames)
    summary = replayer.finish()

    assert summary.packets == len(frames)
    # Every frame is counted once: TCP, skipped with a reason, or an IP fragment that
    # completed no datagram itself (the one that completes it carries the datagram).
    fragments = summary.fragments
    held = fragments.get("frames", 0) - sum(fragments.get(k, 0) for k in COMPLETED)
    assert summary.tcp_packets + sum(summary.skipped.values()) + held == len(frames)
    for report in reports:
        parsed = json.loads(connection_json_text(report))
        assert parsed["id"] == report.id
        assert len(parsed["packets"]) == min(report.c2s.packets + report.s2c.packets, max_rows)

    out = io.StringIO()
    writer = JsonWriter(out, source)
    for report in reports:
        writer(report)
    writer.close(summary)
    assert json.loads(out.getvalue())["summary"]["packets"] == len(frames)

    mermaid = MermaidWriter(io.StringIO())
    table = TableCollector()
    for report in reports:
        mermaid(report)
        table(report)
    mermaid.close(summary)
    table.render(Console(file=io.StringIO(), width=160), summary)

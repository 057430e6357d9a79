"""Fuzz the decoders: any input raises only ParseError, and every call returns.

The default example counts keep CI fast. To push a large number of frames
through the decoders (the soak run pushes more than 100,000), scale them with an
environment variable; each example feeds one frame to every decoder::

    L4KIT_FUZZ_EXAMPLES=25000 pytest -p no:cacheprovider tests/unit/test_wire_fuzz.py -s

``-s`` shows the count of frames decoded, by outcome, at the end of the module.
``benchmarks/fuzz_decoders.py`` is the coverage-guided (atheris) counterpart.
"""

from __future__ import annotations

import collections
import os
import signal
import struct
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import segments

from l4kit.errors import ParseError
from l4kit.wire import decode_ip, decode_options, decode_packet, decode_tcp, encode_packet

EXAMPLES = int(os.environ.get("L4KIT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None if EXAMPLES > 1000 else settings.default.database,
)
DECODERS: tuple[Callable[[bytes], Any], ...] = (decode_ip, decode_tcp, decode_packet, decode_options)
OUTCOMES: collections.Counter[str] = collections.Counter()
PER_CALL_LIMIT_SECONDS = 5  # generous: a call takes microseconds; this only catches a loop


@pytest.fixture(scope="module", autouse=True)
def report_frames() -> Iterator[None]:
    yield
    total = sum(OUTCOMES.values())
    print(f"\nfuzz: {total} decoder calls; outcomes: {dict(OUTCOMES.most_common(12))}")


def _timeout(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("a decoder did not return (loop?)")


def feed(frame: bytes) -> None:
    """Give ``frame`` to every decoder; anything but a ParseError or a result fails the test."""
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(PER_CALL_LIMIT_SECONDS)
    try:
        for decode in DECODERS:
            try:
                decode(frame)
            except ParseError as exc:
                assert exc.reason and "\n" not in str(exc)
                OUTCOMES[f"{exc.layer}:{exc.reason}"] += 1
            else:
                OUTCOMES["decoded"] += 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(frame: bytes) -> None:
    feed(frame)


def _ipv4_prefix(proto: int, total: int, ihl: int, flags_frag: int) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0, flags_frag, 64, proto, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
    )
    # Correct the header checksum so the fuzzing gets past it into TCP.
    total_sum = int.from_bytes(header, "big") % 0xFFFF
    return header[:10] + (0xFFFF - total_sum if total_sum else 0).to_bytes(2, "big") + header[12:]


@FUZZ
@given(
    st.sampled_from([6, 6, 6, 17]),
    st.integers(0, 120),
    st.integers(0, 15),
    st.sampled_from([0, 0x4000, 0x2000, 0x0001]),
    st.binary(max_size=100),
)
def test_ip_headers_that_look_right(proto: int, total: int, ihl: int, flags_frag: int, rest: bytes) -> None:
    """Reach the TCP decoder often: a checksummed IPv4 header with fuzzed lengths."""
    feed(_ipv4_prefix(proto, total, ihl, flags_frag) + rest)


@FUZZ
@given(st.integers(0, 15), st.binary(max_size=44), st.binary(max_size=40))
def test_tcp_headers_with_fuzzed_options(data_offset: int, options: bytes, payload: bytes) -> None:
    """A plausible fixed TCP header, then arbitrary option octets: exercises every option rule."""
    fixed = struct.pack("!HHIIHHHH", 1234, 80, 1, 0, (data_offset << 12) | 0x02, 512, 0, 0)
    feed(fixed + options + payload)
    ipv6 = struct.pack(
        "!IHBB16s16s", 6 << 28, 20 + len(options) + len(payload), 6, 64, b"\0" * 16, b"\0" * 16
    )
    feed(ipv6 + fixed + options + payload)


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    """A valid packet from the struct codec, then flipped octets, a cut or an insertion."""
    data = bytearray(encode_packet(draw(segments(max_payload=64))))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif action == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x05, 0x08, 0x0F, 0x45, 0x60, 0xFF]))
        elif action == "cut":
            del data[position:]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(mutated_packets())
def test_mutated_valid_packets(frame: bytes) -> None:
    feed(frame)
    # and the TCP part alone, at both header lengths
    feed(frame[20:])
    feed(frame[40:])

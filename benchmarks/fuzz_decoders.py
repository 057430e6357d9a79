"""Coverage-guided fuzzing of the wire decoders with atheris (libFuzzer for Python).

Not part of CI: run on demand, e.g. to push 100,000 frames or more through the decoders::

    pip install atheris
    python benchmarks/fuzz_decoders.py -atheris_runs=200000          # bounded run
    python benchmarks/fuzz_decoders.py -max_total_time=300 corpus/   # five minutes, keeping a corpus

Every input goes to ``decode_ip``, ``decode_tcp``, ``decode_packet`` and
``decode_options``; anything but ``l4kit.errors.ParseError`` (or a result) is a
crash that libFuzzer reports with the input that caused it. The first input
octet picks a prefix (none, a checksummed IPv4 header, an IPv6 header) so the
fuzzer reaches the TCP decoder without having to guess a header checksum.
At exit the script prints how many inputs it decoded and the outcomes by reason.
"""

from __future__ import annotations

import atexit
import collections
import struct
import sys

import atheris

with atheris.instrument_imports():
    from l4kit.errors import ParseError
    from l4kit.wire import decode_ip, decode_options, decode_packet, decode_tcp

DECODERS = (decode_ip, decode_tcp, decode_packet, decode_options)
OUTCOMES: collections.Counter[str] = collections.Counter()


def ipv4_prefix(length: int) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
    )
    total = int.from_bytes(header, "big") % 0xFFFF
    return header[:10] + (0xFFFF - total if total else 0).to_bytes(2, "big") + header[12:]


def ipv6_prefix(length: int) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, length, 6, 64, b"\0" * 15 + b"\1", b"\0" * 15 + b"\1")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0] % 3, data[1:]
    if selector == 1:
        body = ipv4_prefix(len(body)) + body
    elif selector == 2:
        body = ipv6_prefix(len(body)) + body
    OUTCOMES["inputs"] += 1
    for decode in DECODERS:
        try:
            decode(body)
        except ParseError as exc:
            OUTCOMES[f"{exc.layer}:{exc.reason}"] += 1
        else:
            OUTCOMES[f"decoded-by-{decode.__name__}"] += 1


def report() -> None:
    print(
        f"\nfuzz_decoders: {OUTCOMES['inputs']} inputs, each through {len(DECODERS)} decoders",
        file=sys.stderr,
    )
    for outcome, count in OUTCOMES.most_common():
        if outcome != "inputs":
            print(f"  {outcome:40} {count}", file=sys.stderr)


if __name__ == "__main__":
    atexit.register(report)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

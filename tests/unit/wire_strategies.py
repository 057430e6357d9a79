"""Hypothesis strategies for segments and options, shared by the wire and codec tests.

Addresses are written with ``socket.inet_ntop`` (not l4kit's formatter) so that a
round trip through l4kit's decoder is compared with an independent text form.
"""

from __future__ import annotations

import socket

from hypothesis import strategies as st

from l4kit.checksum import ChecksumStatus
from l4kit.wire import (
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    Segment,
    SeqNum,
    TcpFlags,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
    encode_options,
)

u16 = st.integers(0, 0xFFFF)


def sized_binary(max_size: int) -> st.SearchStrategy[bytes]:
    """Bytes of any length up to ``max_size``: short ones drawn octet by octet (so Hypothesis
    can shrink them), long ones from a seeded random generator (cheap at 64 KiB)."""
    return st.one_of(
        st.binary(max_size=min(64, max_size)),
        st.builds(
            lambda n, rnd: rnd.randbytes(n), st.integers(0, max_size), st.randoms(use_true_random=False)
        ),
    )


u32 = st.integers(0, 0xFFFFFFFF)

ipv4_text = st.ip_addresses(v=4).map(lambda a: socket.inet_ntop(socket.AF_INET, a.packed))
ipv6_text = st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed))
address_pairs = st.one_of(st.tuples(ipv4_text, ipv4_text), st.tuples(ipv6_text, ipv6_text))

_UNKNOWN_KINDS = st.integers(2, 255).filter(lambda k: k not in (2, 3, 4, 5, 8))

single_option: st.SearchStrategy[TcpOption] = st.one_of(
    st.just(NoOperation()),
    u16.map(MaxSegmentSize),
    st.integers(0, 255).map(WindowScale),
    st.just(SackPermitted()),
    st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(lambda blocks: Sack(tuple(blocks))),
    st.tuples(u32, u32).map(lambda t: Timestamps(*t)),
    st.builds(UnknownOption, kind=_UNKNOWN_KINDS, data=st.binary(max_size=12)),
)

eol_option: st.SearchStrategy[TcpOption] = st.one_of(
    st.integers(0, 7).map(lambda n: EndOfOptions(b"\x00" * n)),
    st.binary(max_size=7).map(EndOfOptions),  # non-zero padding: captured oddities
)


@st.composite
def option_lists(draw: st.DrawFn, *, zero_padding_only: bool = False) -> tuple[TcpOption, ...]:
    """Option tuples that fit in a 60-octet header (at most 40 octets encoded)."""
    options = draw(st.lists(single_option, max_size=8))
    if draw(st.booleans()):
        eol = draw(eol_option)
        if zero_padding_only:
            eol = EndOfOptions(b"\x00" * len(eol.padding))  # type: ignore[union-attr]
        options.append(eol)
        if draw(st.booleans()):
            options.extend(draw(st.lists(single_option, max_size=2)))  # options after EOL
    while len(encode_options(tuple(options))) > 40:
        options.pop()
    return tuple(options)


def flag_values(*, decodable: bool = True) -> st.SearchStrategy[TcpFlags]:
    """All nine-bit flag combinations; ``decodable`` leaves out SYN+FIN (a sanity error)."""
    values = st.integers(0, 0x1FF)
    if decodable:
        values = values.filter(lambda v: v & 0x03 != 0x03)
    return values.map(TcpFlags)


@st.composite
def segments(draw: st.DrawFn, *, decodable: bool = True, max_payload: int = 1500) -> Segment:
    src, dst = draw(address_pairs)
    port = st.integers(1 if decodable else 0, 0xFFFF)
    return Segment(
        src=src,
        dst=dst,
        sport=draw(port),
        dport=draw(port),
        seq=SeqNum(draw(u32)),
        ack=SeqNum(draw(u32)),
        flags=draw(flag_values(decodable=decodable)),
        window=draw(u16),
        urgent=draw(u16),
        options=draw(option_lists()),
        payload=draw(sized_binary(max_payload)),
        checksum=draw(st.sampled_from(list(ChecksumStatus))),
    )

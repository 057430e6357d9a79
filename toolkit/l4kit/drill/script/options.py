"""TCP options in the packetdrill language, both ways: how a script writes each one
(:func:`read_options`, for the parser), how it is printed back (:func:`format_option`),
how many octets it takes as written and which kind number packetdrill compares it by.

One place for the language's option syntax, so that ``parse(format_script(s)) == s``
holds by construction for every option; the values are :mod:`l4kit.wire.options`'.
"""

from __future__ import annotations

from typing import Final

from l4kit.drill.script.lexer import U16, U32, TokenCursor, describe
from l4kit.drill.script.model import Unsupported
from l4kit.wire.options import (
    KIND_EOL,
    KIND_MSS,
    KIND_NOP,
    KIND_SACK,
    KIND_SACK_PERMITTED,
    KIND_TIMESTAMPS,
    KIND_WSCALE,
    EndOfOptions,
    MaxSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)

# Option kinds the language writes by name; any other kind may be written as a number.
KIND_MD5: Final = 19
KIND_FASTOPEN: Final = 34
KIND_EXPERIMENTAL: Final = 254
FASTOPEN_MAGIC: Final = b"\xf9\x89"  # RFC 6994 ExID of the experimental Fast Open option
NAMED_KINDS: Final = frozenset(
    {
        KIND_EOL,
        KIND_NOP,
        KIND_MSS,
        KIND_WSCALE,
        KIND_SACK_PERMITTED,
        KIND_SACK,
        KIND_TIMESTAMPS,
        KIND_MD5,
        KIND_FASTOPEN,
    }
)

_KINDS: Final[dict[type, int]] = {
    EndOfOptions: KIND_EOL,
    NoOperation: KIND_NOP,
    MaxSegmentSize: KIND_MSS,
    WindowScale: KIND_WSCALE,
    SackPermitted: KIND_SACK_PERMITTED,
    Sack: KIND_SACK,
    Timestamps: KIND_TIMESTAMPS,
}


def read_options(cursor: TokenCursor) -> tuple[TcpOption, ...] | Unsupported:
    """The options between ``<`` and ``>``, separated by commas (the cursor is past
    the ``<``), or :class:`Unsupported` for an option l4kit does not run."""
    options: list[TcpOption] = []
    while True:
        token = cursor.peek()
        option: TcpOption
        if token.is_kw("nop"):
            cursor.next()
            option = NoOperation()
        elif token.is_kw("eol"):
            cursor.next()
            option = EndOfOptions()
        elif token.is_kw("mss"):
            cursor.next()
            option = MaxSegmentSize(cursor.integer("mss value", 0, U16))
        elif token.is_kw("wscale"):
            cursor.next()
            option = WindowScale(cursor.integer("window scale shift count", 0, 0xFF))
        elif token.is_kw("sackOK"):
            cursor.next()
            option = SackPermitted()
        elif token.is_kw("sack"):
            cursor.next()
            blocks = []
            while cursor.peek().kind == "INT":
                left = cursor.integer("SACK left edge", 0, U32)
                cursor.expect(":", "':' in a SACK block (left:right)")
                right = cursor.integer("SACK right edge", 0, U32)
                blocks.append((left, right))
            if not blocks:
                cursor.fail(f"expected SACK blocks (left:right) but found {describe(cursor.peek())}")
            if len(blocks) > 4:
                cursor.fail("a SACK option holds at most 4 blocks", token)
            option = Sack(tuple(blocks))
        elif token.is_kw("TS"):
            cursor.next()
            cursor.expect_kw("val")
            val = cursor.integer("TS val", 0, U32)
            cursor.expect_kw("ecr")
            ecr = cursor.integer("TS ecr", 0, U32)
            option = Timestamps(val, ecr)
        elif token.is_kw("FO") or token.is_kw("FOEXP"):
            cursor.next()
            cookie = cursor.hex_blob("a Fast Open cookie") or b""
            room = 38 if token.text == "FO" else 36  # 40 octets of options less kind, length (magic)
            if len(cookie) > room:
                cursor.fail(
                    f"a {token.text} cookie of {len(cookie)} bytes does not fit in the options", token
                )
            if token.text == "FO":
                option = UnknownOption(KIND_FASTOPEN, cookie)
            else:
                option = UnknownOption(KIND_EXPERIMENTAL, FASTOPEN_MAGIC + cookie)
        elif token.is_kw("md5"):
            cursor.next()
            digest = cursor.hex_blob("an MD5 digest")
            if digest is None:
                cursor.fail(f"expected an MD5 digest in hex but found {describe(cursor.peek())}")
            if len(digest) > 16:
                cursor.fail("an MD5 digest is 16 bytes", token)
            option = UnknownOption(KIND_MD5, digest)
        elif token.is_kw("ECN"):
            return Unsupported("the AccECN option", "")
        elif token.kind == "INT":
            kind = cursor.integer("TCP option kind", 0, 255)
            if kind in NAMED_KINDS:
                cursor.fail(
                    f"option kind {kind} has a name in the language (mss, wscale, sack, TS, FO...)", token
                )
            data = cursor.hex_blob("option data") or b""
            if len(data) > 38:
                cursor.fail(f"option kind {kind} with {len(data)} bytes of data is too long", token)
            option = UnknownOption(kind, data)
        else:
            cursor.fail(
                f"expected a TCP option (nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, "
                f"or a kind number) but found {describe(token)}",
                token,
            )
        options.append(option)
        if cursor.peek().kind != ",":
            return tuple(options)
        cursor.next()


def format_option(option: TcpOption) -> str:
    """One TCP option as a script writes it (``mss 1460``, ``TS val 100 ecr 0``, ``FO 0a0b``)."""
    if isinstance(option, NoOperation):
        return "nop"
    if isinstance(option, EndOfOptions):
        return "eol"
    if isinstance(option, MaxSegmentSize):
        return f"mss {option.value}"
    if isinstance(option, WindowScale):
        return f"wscale {option.shift}"
    if isinstance(option, SackPermitted):
        return "sackOK"
    if isinstance(option, Sack):
        return "sack " + " ".join(f"{left}:{right}" for left, right in option.blocks)
    if isinstance(option, Timestamps):
        return f"TS val {option.tsval} ecr {option.tsecr}"
    data = option.data
    if option.kind == KIND_FASTOPEN:
        return "FO" + (f" {data.hex()}" if data else "")
    if option.kind == KIND_EXPERIMENTAL and data[:2] == FASTOPEN_MAGIC:
        return "FOEXP" + (f" {data[2:].hex()}" if len(data) > 2 else "")
    if option.kind == KIND_MD5 and data:
        return f"md5 {data.hex()}"
    return f"{option.kind}" + (f" {data.hex()}" if data else "")


def format_options(options: tuple[TcpOption, ...] | None) -> str:
    """``<mss 1460,nop,wscale 7>``, ``<...>`` for any options, ``""`` for none."""
    if options is None:
        return "<...>"
    if not options:
        return ""
    return "<" + ",".join(format_option(option) for option in options) + ">"


def written_length(options: tuple[TcpOption, ...]) -> int:
    """Octets the options take as written (no padding added: packetdrill wants scripts
    to pad with nop themselves)."""
    size = 0
    for option in options:
        if isinstance(option, (NoOperation, EndOfOptions)):
            size += 1
        elif isinstance(option, MaxSegmentSize):
            size += 4
        elif isinstance(option, WindowScale):
            size += 3
        elif isinstance(option, SackPermitted):
            size += 2
        elif isinstance(option, Sack):
            size += 2 + 8 * len(option.blocks)
        elif isinstance(option, Timestamps):
            size += 10
        else:
            size += 2 + len(option.data)
    return size


def option_kind(option: TcpOption) -> int:
    """The kind number packetdrill compares an option by."""
    if isinstance(option, UnknownOption):
        return option.kind
    return _KINDS[type(option)]

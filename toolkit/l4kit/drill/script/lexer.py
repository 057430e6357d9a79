"""Tokens of the packetdrill language.

The rules are packetdrill's, as its documentation and scripts show them: at each
position the longest match wins, and of two matches of the same length the one
listed first (keywords before numbers before words before addresses). So
``0x10`` is a hex number, ``1000`` an integer, ``3021b9d8`` a word (a Fast Open
cookie), ``192.0.2.1`` an IPv4 address and ``1:1001`` an integer, a colon and an
integer, never an IPv6 address. ``//`` and ``/* */`` comments and whitespace
separate tokens; ``%{ ... }%`` is one token of Python code.

A word defined on the command line (``-D NAME=VALUE``) or by ``--define`` is
replaced by its value while lexing: a number becomes a number token, a
``"quoted"`` value a string, a backquoted value a command, anything else a word.

:class:`TokenCursor` walks the tokens with the checks every rule of the grammar uses
(a number in range, an expected keyword...), for the parser and the option syntax of
:mod:`~l4kit.drill.script.options` alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NoReturn

from l4kit.drill.script.errors import ScriptSyntaxError

# Words that are tokens of their own in packetdrill (never symbols to look up).
KEYWORDS: Final = frozenset(
    [
        "sa_family",
        "sin_port",
        "sin_addr",
        "msg_name",
        "msg_iov",
        "msg_flags",
        "msg_control",
        "cmsg_data",
        "cmsg_level",
        "cmsg_type",
        "ee_errno",
        "ee_origin",
        "ee_type",
        "ee_code",
        "ee_info",
        "ee_data",
        "scm_sec",
        "scm_nsec",
        "fd",
        "u32",
        "u64",
        "ptr",
        "events",
        "revents",
        "onoff",
        "linger",
        "htons",
        "ipv4",
        "ipv6",
        "icmp",
        "udp",
        "GREv0",
        "gre",
        "raw",
        "sum",
        "off",
        "key",
        "seq",
        "none",
        "checksum",
        "present",
        "encap",
        "psp",
        "spi",
        "mpls",
        "label",
        "tc",
        "ttl",
        "inet_addr",
        "inet6_addr",
        "ack",
        "eol",
        "ecr",
        "mss",
        "mtu",
        "nop",
        "sack",
        "sackOK",
        "md5",
        "TS",
        "FO",
        "FOEXP",
        "ECN",
        "e0b",
        "e1b",
        "ceb",
        "tos",
        "flowlabel",
        "flags",
        "Flags",
        "val",
        "win",
        "urg",
        "wscale",
        "ect01",
        "ect0",
        "ect1",
        "noecn",
        "ce",
        "id",
    ]
)

_OPTION: Final = re.compile(r"--[a-zA-Z0-9_]+")
_SPACE: Final = re.compile(r"[ \t\r\n]+")
_STRING: Final = re.compile(r'"(?:\\.|[^"\\])*"', re.DOTALL)
_BACKQ: Final = re.compile(r"`(?:\\.|[^`\\])*`", re.DOTALL)
_CODE: Final = re.compile(r"%\{.*?\}%", re.DOTALL)
_C_COMMENT: Final = re.compile(r"/\*.*?\*/", re.DOTALL)
_CPP_COMMENT: Final = re.compile(r"//[^\n]*")
_IPV4_TEXT: Final = r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"
_IPV4: Final = re.compile(_IPV4_TEXT)
_SEG: Final = r"[0-9a-fA-F]{1,4}"
_IPV6: Final = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            rf"::ffff:(?:0){{1,4}}:{_IPV4_TEXT}",
            rf"::ffff:{_IPV4_TEXT}",
            rf"(?:{_SEG}:){{1,4}}:{_IPV4_TEXT}",
            rf"(?:{_SEG}:){{7}}{_SEG}",
            rf"(?:{_SEG}:){{1,6}}:{_SEG}",
            rf"(?:{_SEG}:){{1,5}}(?::{_SEG}){{1,2}}",
            rf"(?:{_SEG}:){{1,4}}(?::{_SEG}){{1,3}}",
            rf"(?:{_SEG}:){{1,3}}(?::{_SEG}){{1,4}}",
            rf"(?:{_SEG}:){{1,2}}(?::{_SEG}){{1,5}}",
            rf"{_SEG}:(?::{_SEG}){{1,6}}",
            rf"(?:{_SEG}:){{1,7}}:",
            rf":(?::{_SEG}){{1,7}}",
            r"::",
        )
    )
)


class Token:
    """One token: ``kind`` is ``OPTION FLOAT INT HEX WORD KW STRING BACKQ CODE IPV4 IPV6
    ELLIPSIS EOF`` or, for any other character, the character itself.
    ``value`` is the number (INT, HEX, FLOAT as text) or the text without its quotes."""

    __slots__ = ("kind", "line", "text", "value")

    def __init__(self, kind: str, text: str, line: int, value: str | int | None = None) -> None:
        self.kind = kind
        self.text = text
        self.line = line
        self.value = value

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r}, line {self.line})"

    def is_kw(self, word: str) -> bool:
        return self.kind == "KW" and self.text == word


# re's alternation takes the first branch that matches, not the longest: each is tried.
_IPV6_BRANCHES: Final = tuple(re.compile(branch) for branch in _IPV6.pattern.split("|"))


def _longest_ipv6(text: str, pos: int) -> int:
    """The end of the longest IPv6 address at ``pos`` (``pos`` when none)."""
    best = pos
    for branch in _IPV6_BRANCHES:
        m = branch.match(text, pos)
        if m and m.end() > best:
            best = m.end()
    return best


def _define_token(value: str, name: str, line: int) -> Token:
    """The token a ``-D NAME=VALUE`` definition stands for (packetdrill's rules:
    ``"..."`` a string, ``` `...` ``` a command, a C integer a number, else a word)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return Token("STRING", name, line, value[1:-1])
    if len(value) >= 2 and value[0] == "`" and value[-1] == "`":
        return Token("BACKQ", name, line, value[1:-1])
    number = _c_integer(value)
    if number is not None:
        return Token("INT", value, line, number)
    return Token("WORD", value, line, value)


def _c_integer(text: str) -> int | None:
    """``strtol(text, NULL, 0)`` when it reads the whole text: decimal, ``0x`` hex,
    ``0`` octal, an optional sign."""
    m = re.fullmatch(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if m is None:
        return None
    sign, digits = m.groups()
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8) if len(digits) > 1 else 0
    else:
        value = int(digits)
    return -value if sign == "-" else value


def tokenize(text: str, path: str = "<script>", defines: Mapping[str, str] | None = None) -> list[Token]:
    """The tokens of ``text``, ending with an ``EOF`` token.

    Raises :class:`ScriptSyntaxError` only for a comment, string or code block
    that never ends."""
    tokens: list[Token] = []
    append = tokens.append
    defines = defines or {}
    pos = 0
    line = 1
    option_line = 0  # definitions are not applied on an --option line (--define=NAME=VALUE names them)
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in " \t\r\n":
            m = _SPACE.match(text, pos)
            assert m is not None
            line += m.group().count("\n")
            pos = m.end()
            continue
        start_line = line
        if ch == "/" and text.startswith("//", pos):
            m = _CPP_COMMENT.match(text, pos)
            assert m is not None
            pos = m.end()
            continue
        if ch == "/" and text.startswith("/*", pos):
            m = _C_COMMENT.match(text, pos)
            if m is None:
                raise ScriptSyntaxError(path, line, "comment '/*' is never closed with '*/'")
            line += m.group().count("\n")
            pos = m.end()
            continue
        if ch == "%" and text.startswith("%{", pos):
            m = _CODE.match(text, pos)
            if m is None:
                raise ScriptSyntaxError(path, line, "code block '%{' is never closed with '}%'")
            body = m.group()
            line += body.count("\n")
            append(Token("CODE", body, start_line, body[2:-2].strip(" \t")))
            pos = m.end()
            continue
        if ch in {'"', "`"}:
            m = (_STRING if ch == '"' else _BACKQ).match(text, pos)
            if m is None:
                what = "string" if ch == '"' else "command"
                raise ScriptSyntaxError(path, line, f"{what} starting with {ch} is never closed")
            body = m.group()
            line += body.count("\n")
            append(Token("STRING" if ch == '"' else "BACKQ", body, start_line, body[1:-1]))
            pos = m.end()
            continue
        if ch == "." and text.startswith("...", pos):
            append(Token("ELLIPSIS", "...", line))
            pos += 3
            continue
        if ch == "-" and text.startswith("--", pos):
            m = _OPTION.match(text, pos)
            if m is not None:
                append(Token("OPTION", m.group(), line, m.group()[2:]))
                option_line = line
                pos = m.end()
                continue
        if ch.isalnum() or ch in "_-.:":
            token, end = _word_or_number(text, pos, line, defines if line != option_line else {})
            if token is not None:
                append(token)
                pos = end
                continue
        append(Token(ch, ch, line))
        pos += 1
    append(Token("EOF", "", line))
    return tokens


# The number and word rules in packetdrill's order, as one pattern: a number that runs
# into letters (``3021b9d8``, ``0x10g``) is left to the word rule, which is longer.
_NUMBER_OR_WORD: Final = re.compile(
    r"(?P<IPV4>[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)"
    r"|(?P<FLOAT>-?[0-9]*\.[0-9]+)"
    r"|(?P<HEX>0x[0-9a-fA-F]+(?![A-Za-z0-9_]))"
    r"|(?P<INT>-?[0-9]+(?![A-Za-z0-9_]))"
    r"|(?P<KW>sequence\#)"
    r"|(?P<WORD>[a-zA-Z0-9_]+)"
)
_ADDRESS_RUN: Final = re.compile(r"[0-9a-fA-F:.]+")


def _word_or_number(text: str, pos: int, line: int, defines: Mapping[str, str]) -> tuple[Token | None, int]:
    """The longest of the number, word, keyword and address rules at ``pos``."""
    m = _NUMBER_OR_WORD.match(text, pos)
    best_kind = m.lastgroup or "" if m is not None else ""
    best_end = m.end() if m is not None else pos
    run = _ADDRESS_RUN.match(text, pos)
    if run is not None and ("::" in run.group() or run.group().count(":") >= 7):
        # Only then can an IPv6 address be the longest match (1:1001 is two numbers).
        end = _longest_ipv6(text, pos)
        if end > best_end:
            best_kind, best_end = "IPV6", end
    if not best_kind:
        return None, pos
    word = text[pos:best_end]
    if best_kind == "WORD":
        if word in KEYWORDS:
            return Token("KW", word, line), best_end
        if word in defines:
            return _define_token(defines[word], word, line), best_end
        return Token("WORD", word, line, word), best_end
    if best_kind == "INT":
        return Token("INT", word, line, int(word)), best_end
    if best_kind == "HEX":
        return Token("HEX", word, line, int(word[2:], 16)), best_end
    return Token(best_kind, word, line, word), best_end


# ---------------------------------------------------------------- reading tokens

U32: Final = 0xFFFFFFFF
U16: Final = 0xFFFF


def describe(token: Token) -> str:
    """A token as an error message quotes it."""
    if token.kind == "EOF":
        return "the end of the script"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdefABCDEF" for ch in text)


class TokenCursor:
    """A position in a script's tokens, and the checks every rule of the grammar reads
    them with: each failure is a :class:`ScriptSyntaxError` naming the line."""

    def __init__(self, tokens: list[Token], path: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.path = path

    def peek(self, ahead: int = 0) -> Token:
        if not ahead:
            return self.tokens[self.pos]  # never past EOF: next() stops there
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "EOF":
            self.pos += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        token = token or self.peek()
        line = token.line
        if token.kind == "EOF" and self.pos > 0:
            line = self.tokens[self.pos - 1].line  # what is missing belongs to the last line written
        raise ScriptSyntaxError(self.path, line, message)

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(f"expected {what} but found {describe(token)}", token)
        return self.next()

    def expect_kw(self, word: str) -> Token:
        token = self.peek()
        if not token.is_kw(word):
            self.fail(f"expected '{word}' but found {describe(token)}", token)
        return self.next()

    def integer(self, what: str, low: int, high: int) -> int:
        token = self.peek()
        if token.kind not in ("INT", "HEX"):
            self.fail(f"expected {what} (a number) but found {describe(token)}", token)
        self.next()
        assert isinstance(token.value, int)
        if not low <= token.value <= high:
            self.fail(f"{what} {token.value} out of range ({low}..{high})", token)
        return token.value

    def hex_blob(self, what: str) -> bytes | None:
        """A hex string (a cookie, a digest) written as one word or number, or ``None``."""
        token = self.peek()
        if token.kind not in ("WORD", "INT", "KW") or (token.kind == "KW" and not _is_hex(token.text)):
            return None
        if not _is_hex(token.text) or len(token.text) % 2:
            self.fail(f"{what} must be an even number of hex digits, not {describe(token)}", token)
        self.next()
        return bytes.fromhex(token.text)

"""Zeek's conn.log, written by l4kit: the ASCII (TSV) and the JSON forms.

Zeek (https://zeek.org) logs one line per connection to ``conn.log``; most
tools that read network logs read this file. ``l4kit replay --format zeek`` writes
the TCP connections of a capture the way Zeek's ASCII writer does, and
``--format zeek-json`` the way its JSON writer does (``LogAscii::use_json=T``),
with the ``community_id`` column that Zeek's community-id package adds:

* the header (``logging/writers/ascii/Ascii.cc``, ``WriteHeader``):
  ``#separator \\x09`` (a space, then the escaped separator), then
  ``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``, ``#open``,
  ``#fields`` and ``#types``, each a tab from its value; ``#close`` last. Zeek
  writes the wall-clock time of its run in ``#open`` and ``#close`` (local time,
  ``%Y-%m-%d-%H-%M-%S``); l4kit writes the times of the capture's first and last
  packets in the same form, so that a capture always gives the same file;
* values as ``threading/formatters/Ascii.cc`` renders them: times and intervals
  with six decimals, trailing zeros kept (``modp_dtoa``, :func:`zeek_time`);
  counts and ports as integers; ``-`` for an unset field; ``(empty)`` for an empty
  string or set; a string equal to ``-`` or ``(empty)`` gets its first character
  escaped; the separator and unprintable octets inside a string are written ``\\xNN``;
* the JSON writer (``threading/formatters/JSON.cc``): one object per line, no
  spaces, fields in the same order, unset fields left out, times and intervals as
  RapidJSON writes a double (:func:`json_double`).

What l4kit fills in (docs/analytics.md lists every field): ``service``,
``local_orig``, ``local_resp`` and ``tunnel_parents`` are unset, as Zeek leaves
them without a confirmed application protocol, ``Site::local_nets`` or a tunnel;
``duration`` follows Zeek's rule (the connection's time stops when both sides'
FIN or RST have been seen, :class:`~l4kit.replay.zeek.ZeekConnection`);
``orig_bytes``/``resp_bytes`` come from sequence numbers (Zeek's ``Size()``),
``orig_ip_bytes``/``resp_ip_bytes`` from IP total lengths, ``missed_bytes`` from
content gaps; ``orig_pkts``/``resp_pkts`` count every packet of the connection,
a packet with a bad checksum too.
"""

from __future__ import annotations

import json
import math
import time
from typing import IO, Final

from l4kit.replay.flowid import connection_community_id, connection_uid
from l4kit.replay.model import ConnectionReport, ReplaySummary
from l4kit.wire.ip import address_text

CONN_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("community_id", "string"),
)
"""conn.log's columns in Zeek's order (``Conn::Info``), then the community-id
package's, with their Zeek types."""

SEPARATOR: Final = "\t"
SET_SEPARATOR: Final = ","
EMPTY_FIELD: Final = "(empty)"
UNSET_FIELD: Final = "-"
_HEADER_TIME: Final = "%Y-%m-%d-%H-%M-%S"


def header_time(t: float | None) -> str:
    """``#open``/``#close``: ``t`` (seconds since the epoch, local time) as Zeek's ASCII
    writer formats a time there; the wall clock when there is none, as Zeek does."""
    return time.strftime(_HEADER_TIME, time.localtime(time.time() if t is None else t))


def header_lines(open_time: float | None, path: str = "conn") -> str:
    """The lines Zeek's ASCII writer starts a log with."""
    names = SEPARATOR.join(name for name, _ in CONN_FIELDS)
    types = SEPARATOR.join(kind for _, kind in CONN_FIELDS)
    return (
        f"#separator {_escape_all(SEPARATOR)}\n"
        f"#set_separator{SEPARATOR}{SET_SEPARATOR}\n"
        f"#empty_field{SEPARATOR}{EMPTY_FIELD}\n"
        f"#unset_field{SEPARATOR}{UNSET_FIELD}\n"
        f"#path{SEPARATOR}{path}\n"
        f"#open{SEPARATOR}{header_time(open_time)}\n"
        f"#fields{SEPARATOR}{names}\n"
        f"#types{SEPARATOR}{types}\n"
    )


def close_line(close_time: float | None) -> str:
    return f"#close{SEPARATOR}{header_time(close_time)}\n"


def _escape_all(text: str) -> str:
    return "".join(f"\\x{b:02x}" for b in text.encode())


# ---------------------------------------------------------------- values


def zeek_time(value: float) -> str:
    """A time or interval as Zeek's ASCII writer renders it: ``modp_dtoa`` with six
    decimals, which keeps trailing zeros and rounds a fraction exactly halfway between
    two microseconds up when the last kept digit is odd or zero."""
    if math.isnan(value):
        return "nan"
    sign = ""
    if value < 0:
        sign, value = "-", -value
    if value > 0x7FFFFFFF:  # modp_dtoa's limit: beyond it, C's %e
        return f"{sign}{value:e}"
    whole = int(value)
    scaled = (value - whole) * 1e6
    frac = int(scaled)
    diff = scaled - frac
    if diff > 0.5 or (diff == 0.5 and (frac == 0 or frac & 1)):
        frac += 1
        if frac >= 1_000_000:
            frac = 0
            whole += 1
    return f"{sign}{whole}.{frac:06d}"


def json_double(value: float) -> str:
    """A double as Zeek's JSON writer (RapidJSON's ``Writer::Double``) writes it: the
    shortest digits that read back as the same double, laid out as RapidJSON's
    ``Prettify`` does (``1591367999.430166``, ``0.0``, ``3600.0``, ``0.000123``,
    ``1e-7``, ``1.5e-7``); NaN and infinities as ``null``."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = (whole + fraction).lstrip("0")
    # value = digits * 10**k; kk: the position of the decimal point after the first digit
    k = (int(exponent) if exponent else 0) - len(fraction)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    kk = len(digits) + k
    if k >= 0 and kk <= 21:
        return f"{sign}{digits}{'0' * k}.0"
    if 0 < kk <= 21:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if -6 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{digits}"
    if len(digits) == 1:
        return f"{sign}{digits}e{kk - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{kk - 1}"


def ascii_string(value: str) -> str:
    """A string field as the ASCII writer writes it."""
    if not value:
        return EMPTY_FIELD
    if value in (UNSET_FIELD, EMPTY_FIELD):
        return f"\\x{ord(value[0]):02x}{value[1:]}"
    if value.isascii() and value.isprintable():
        return value
    return "".join(
        chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in value.encode("utf-8", "surrogateescape")
    )


def zeek_addr(packed: bytes) -> str:
    """An address as Zeek writes it: IPv4-mapped IPv6 addresses are IPv4 to Zeek."""
    if len(packed) == 16 and packed[:12] == b"\x00" * 10 + b"\xff\xff":
        packed = packed[12:]
    return address_text(packed)


def conn_tsv_line(r: ConnectionReport) -> str:
    """One connection as a line of conn.log in Zeek's ASCII form (without its newline)."""
    history = r.history if r.history.isalpha() or not r.history else ascii_string(r.history)
    return (
        f"{zeek_time(r.start)}\t{connection_uid(r)}\t{zeek_addr(r.client_ip)}\t{r.client_port}\t"
        f"{zeek_addr(r.server_ip)}\t{r.server_port}\ttcp\t-\t{zeek_time(r.zeek_duration)}\t"
        f"{r.orig_bytes}\t{r.resp_bytes}\t{r.state}\t-\t-\t{r.missed_bytes}\t"
        f"{history or EMPTY_FIELD}\t{r.c2s.packets}\t{r.c2s.ip_bytes}\t{r.s2c.packets}\t"
        f"{r.s2c.ip_bytes}\t-\t{connection_community_id(r)}"
    )


def conn_json_line(r: ConnectionReport) -> str:
    """One connection as a line of Zeek's JSON writer (without its newline)."""
    history = f'"{r.history}"' if r.history.isalpha() else json.dumps(r.history, ensure_ascii=False)
    return (
        f'{{"ts":{json_double(r.start)},"uid":"{connection_uid(r)}","id.orig_h":"{zeek_addr(r.client_ip)}",'
        f'"id.orig_p":{r.client_port},"id.resp_h":"{zeek_addr(r.server_ip)}","id.resp_p":{r.server_port},'
        f'"proto":"tcp","duration":{json_double(r.zeek_duration)},"orig_bytes":{r.orig_bytes},'
        f'"resp_bytes":{r.resp_bytes},"conn_state":"{r.state}","missed_bytes":{r.missed_bytes},'
        f'"history":{history},"orig_pkts":{r.c2s.packets},"orig_ip_bytes":{r.c2s.ip_bytes},'
        f'"resp_pkts":{r.s2c.packets},"resp_ip_bytes":{r.s2c.ip_bytes},'
        f'"community_id":"{connection_community_id(r)}"}}'
    )


# ---------------------------------------------------------------- writers


class ZeekWriter:
    """conn.log on ``out`` as connections finish: the header when the run's first
    packet has been read (:meth:`start`), one line per connection, ``#close`` at the
    end. ``json``: Zeek's JSON writer instead, which writes neither."""

    def __init__(self, out: IO[str], *, json: bool = False) -> None:
        self.out = out
        self.json = json
        self.format = conn_json_line if json else conn_tsv_line
        self.first_time: float | None = None
        self.written = False
        self.count = 0

    def start(self, first_time: float | None) -> None:
        """The run's first packet was read at ``first_time`` (None: the run has none).
        The header goes out with the first line, or at the end: a run that fails
        before (``--stream`` past the last connection) leaves no half log behind."""
        if self.first_time is None:
            self.first_time = first_time

    def _header(self) -> None:
        if not self.written:
            self.written = True
            if not self.json:
                self.out.write(header_lines(self.first_time))

    def __call__(self, report: ConnectionReport) -> None:
        self.write_text(self.format(report))

    def write_text(self, text: str) -> None:
        """One line already formatted by :attr:`format` (a shard's, a worker's)."""
        self._header()
        self.out.write(text + "\n")
        self.count += 1

    def close(self, summary: ReplaySummary) -> None:
        self.start(summary.first_time)
        self._header()
        if not self.json:
            self.out.write(close_line(summary.last_time))
        self.out.flush()

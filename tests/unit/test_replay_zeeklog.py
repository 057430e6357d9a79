"""``--format zeek`` and ``--format zeek-json``: Zeek's conn.log, as Zeek writes it.

The references come from Zeek's documentation ("Zeek Log Formats and Inspection",
docs.zeek.org): the conn.log header of its TSV example, written out below, and the
HTTP connection of its sample trace, rebuilt here packet by packet from the
tcpdump listing in the same page, whose conn.log line (TSV and JSON) the page shows.
"""

from __future__ import annotations

import io
import json

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap
from test_replay_support import DATA, Conv, imported_by_replay, needs_tshark, replay, tshark_fields, write

from l4kit.commands.replay import run_replay
from l4kit.replay.zeeklog import CONN_FIELDS, conn_json_line, conn_tsv_line, json_double, zeek_time

# The header of the conn.log in Zeek's documentation (log-formats.rst, "Zeek TSV
# Format Logs"), tabs written out, with the community-id package's column added at
# the end as that package adds it (``community_id: string &optional &log``).
ZEEK_DOC_HEADER = (
    "#separator \\x09\n"
    "#set_separator\t,\n"
    "#empty_field\t(empty)\n"
    "#unset_field\t-\n"
    "#path\tconn\n"
    "#open\t2020-06-05-14-48-32\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
    "orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\t"
    "orig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tcommunity_id\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\t"
    "bool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tstring\n"
)

C, S = ("192.168.4.76", 46378), ("31.3.245.133", 80)
C_ISN, S_ISN = 3723031366, 2993782376


def _doc_packet(
    t: str, from_client: bool, flags: str, seq: int, ack: int, win: int, length: int, syn_opts=None
):
    (src, sport), (dst, dport) = (C, S) if from_client else (S, C)
    isn, peer = (C_ISN, S_ISN) if from_client else (S_ISN, C_ISN)
    options = syn_opts or [("NOP", None), ("NOP", None), ("Timestamp", (1, 1))]
    pkt = (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src=src, dst=dst)
        / TCP(
            sport=sport,
            dport=dport,
            flags=flags,
            seq=(isn + seq) % 2**32,
            ack=(peer + ack) % 2**32 if "A" in flags else 0,
            window=win,
            options=options,
        )
    )
    if length:
        pkt = pkt / Raw(b"x" * length)
    seconds, micros = t.split(".")
    pkt.time = 1591367999 + int(seconds) - 59 + int(micros) / 1e6  # 14:39:SS.micros on 2020-06-05
    return pkt


def zeek_doc_trace(path):
    """The HTTP connection of Zeek's sample trace tm1t.pcap, from its tcpdump listing."""
    syn = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (3137978796, 0)), ("NOP", None), ("WScale", 11)]
    synack = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (346747623, 3137978796)), ("NOP", None)]
    synack.append(("WScale", 7))
    packets = [
        _doc_packet("59.430166", True, "S", 0, 0, 65535, 0, syn),
        _doc_packet("59.512232", False, "SA", 0, 1, 28960, 0, synack),
        _doc_packet("59.512284", True, "A", 1, 1, 32, 0),
        _doc_packet("59.512593", True, "PA", 1, 1, 32, 77),
        _doc_packet("59.600488", False, "A", 1, 78, 227, 0),
        _doc_packet("59.604000", False, "PA", 1, 78, 227, 295),
        _doc_packet("59.604020", True, "A", 78, 296, 33, 0),
        _doc_packet("59.604493", True, "FA", 78, 296, 33, 0),
        _doc_packet("59.684281", False, "FA", 296, 79, 227, 0),
        _doc_packet("59.684346", True, "A", 79, 297, 33, 0),
    ]
    wrpcap(str(path), packets)
    return path


def zeek_output(path, fmt: str = "zeek", **options) -> str:
    out = io.StringIO()
    assert run_replay(str(path), fmt=fmt, out=out, **options) == 0
    return out.getvalue()


def test_the_header_is_zeeks_header_with_the_community_id_column(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        text = zeek_output(zeek_doc_trace(tmp_path / "tm1t.pcap"))
    finally:
        monkeypatch.undo()
        time.tzset()
    lines = text.splitlines(keepends=True)
    expected = ZEEK_DOC_HEADER.replace("2020-06-05-14-48-32", "2020-06-05-14-39-59")
    assert "".join(lines[:8]) == expected
    assert lines[-1] == "#close\t2020-06-05-14-39-59\n"
    assert [name for name, _ in CONN_FIELDS] == lines[6].rstrip("\n").split("\t")[1:]


def test_the_connection_of_zeeks_sample_trace_is_logged_as_zeek_logs_it(tmp_path):
    """Zeek's documented line: ``1591367999.430166 CLqEx41jYPOdfHF586 192.168.4.76 46378
    31.3.245.133 80 tcp http 0.254115 77 295 SF - - 0 ShADadFf 6 397 4 511 -``. The uid is
    Zeek's random one; ``service`` needs Zeek's protocol detection (l4kit leaves it unset)."""
    fields = [ln for ln in zeek_output(zeek_doc_trace(tmp_path / "tm1t.pcap")).splitlines() if ln[0] != "#"]
    assert len(fields) == 1
    row = dict(zip([n for n, _ in CONN_FIELDS], fields[0].split("\t"), strict=True))
    line = "1591367999.430166 - 192.168.4.76 46378 31.3.245.133 80 tcp http 0.254115 77 295 SF - - 0 "
    documented = (line + "ShADadFf 6 397 4 511 -").split(" ")
    for (name, _), value in zip(CONN_FIELDS, documented, strict=False):
        if name in ("uid", "service"):
            continue
        assert row[name] == value, name
    assert row["service"] == "-"
    assert row["uid"].startswith("C") and len(row["uid"]) >= 12


def test_the_json_line_is_zeeks_json_line(tmp_path):
    """The JSON writer's line for the same connection in Zeek's documentation (uid and
    service aside): full-precision doubles, unset fields left out, no spaces."""
    documented = json.loads(
        '{"ts":1591367999.430166,"uid":"C5bLoe2Mvxqhawzqqd","id.orig_h":"192.168.4.76","id.orig_p":46378,'
        '"id.resp_h":"31.3.245.133","id.resp_p":80,"proto":"tcp","service":"http",'
        '"duration":0.25411510467529297,"orig_bytes":77,"resp_bytes":295,"conn_state":"SF",'
        '"missed_bytes":0,"history":"ShADadFf","orig_pkts":6,"orig_ip_bytes":397,"resp_pkts":4,'
        '"resp_ip_bytes":511}'
    )
    line = zeek_output(zeek_doc_trace(tmp_path / "tm1t.pcap"), "zeek-json").rstrip("\n")
    assert "\n" not in line and " " not in line
    ours = json.loads(line)
    del documented["uid"], documented["service"]
    uid, community_id = ours.pop("uid"), ours.pop("community_id")
    assert list(ours) == list(documented)
    assert ours == documented
    assert '"duration":0.25411510467529297,' in line  # the digits themselves, not a rounding
    assert uid.startswith("C") and community_id.startswith("1:")


def test_zeek_time_keeps_six_decimals_as_modp_dtoa_writes_them():
    assert zeek_time(0.0) == "0.000000"
    assert zeek_time(1591367999.430166) == "1591367999.430166"
    assert zeek_time(0.25411510467529297) == "0.254115"
    assert zeek_time(2.9999996) == "3.000000"  # rounding carries into the whole part
    assert zeek_time(3600.0) == "3600.000000"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (3600.0, "3600.0"),  # Zeek's dns.log TTLs
        (1591367999.604, "1591367999.604"),  # Zeek's files.log ts
        (0.25411510467529297, "0.25411510467529297"),
        (0.000123, "0.000123"),
        (1e-06, "0.000001"),
        (1e-07, "1e-7"),
        (1.5e-07, "1.5e-7"),
        (1e21, "1e21"),
        (1e20, "100000000000000000000.0"),
        (float("nan"), "null"),
    ],
)
def test_doubles_as_rapidjson_writes_them(value, text):
    assert json_double(value) == text


def test_tsv_and_json_lines_carry_the_same_values(tmp_path):
    reports, _ = replay(DATA / "lo-kernel.pcap")
    names = [n for n, _ in CONN_FIELDS]
    for r in reports:
        tsv = dict(zip(names, conn_tsv_line(r).split("\t"), strict=True))
        doc = json.loads(conn_json_line(r))
        for name in names:
            if tsv[name] == "-":
                assert name not in doc, name  # unset: left out of the JSON
            elif name in ("ts", "duration"):
                assert float(tsv[name]) == pytest.approx(doc[name], abs=1e-6)
            else:
                assert str(doc[name]) == tsv[name], name


def test_content_gaps_are_missed_bytes(tmp_path):
    """The server acknowledges 100 octets the capture never showed: a content gap (G)
    of 100 octets, Zeek's missed_bytes."""
    conv = Conv().handshake()
    conv.c("PA", 1, 1, b"a" * 50)
    conv.c("PA", 151, 1, b"b" * 50)  # 51..150 were not captured
    conv.s("A", 1, 201)
    conv.normal_close_by_client(201, 1)
    [report], _ = replay(write(tmp_path, conv.packets))
    assert "G" in report.history
    assert report.missed_bytes == 100
    assert report.orig_bytes == 200  # Zeek's Size(): from sequence numbers


def test_duration_stops_when_both_sides_have_closed(tmp_path):
    conv = Conv().handshake()
    conv.c("FA", 1, 1, dt=1.0)
    conv.s("FA", 1, 2, dt=1.0)
    conv.c("A", 2, 2, dt=5.0)  # the last ACK: after both FINs, not in Zeek's duration
    [report], _ = replay(write(tmp_path, conv.packets))
    assert report.zeek_duration == pytest.approx(report.duration - 5.0)


@needs_tshark
def test_ip_bytes_and_packets_are_tsharks_per_direction_sums():
    """orig_ip_bytes/resp_ip_bytes: the IP total lengths (tshark's ip.len) of each
    direction; orig_pkts/resp_pkts its packets."""
    path = DATA / "lo-kernel.pcap"
    rows = tshark_fields(path, "tcp.stream", "tcp.srcport", "ip.len")
    lines = [ln.split("\t") for ln in zeek_output(path).splitlines() if not ln.startswith("#")]
    assert len(lines) == len({r[0] for r in rows})
    names = [n for n, _ in CONN_FIELDS]
    for stream, line in enumerate(lines):
        row = dict(zip(names, line, strict=True))
        mine = [r for r in rows if int(r[0]) == stream]
        orig = [r for r in mine if r[1] == row["id.orig_p"]]
        resp = [r for r in mine if r[1] != row["id.orig_p"]]
        assert (int(row["orig_pkts"]), int(row["resp_pkts"])) == (len(orig), len(resp))
        assert int(row["orig_ip_bytes"]) == sum(int(r[2]) for r in orig)
        assert int(row["resp_ip_bytes"]) == sum(int(r[2]) for r in resp)


def test_machine_formats_never_import_rich_scapy_pyarrow_or_dask():
    heavy = {"pydantic", "rich", "scapy", "pyarrow", "dask", "distributed"}
    for fmt in ("zeek", "zeek-json", "json"):
        loaded = imported_by_replay(DATA / "lo-kernel.pcap", fmt, heavy)
        assert loaded == [], fmt

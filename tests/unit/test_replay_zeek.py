"""Zeek's conn_state and history, for traces whose expected values follow from
Zeek's documented rules (conn/main.zeek, TCPSessionAdapter.cc), derived by hand.

Each case is a packet trace (client ``c``, server ``s``, relative sequence
numbers) and the two values Zeek would log for it.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP
from test_replay_support import DATA, Conv, replay, replay_packets

from l4kit.replay.zeek import ZeekConnection, _looks_like_rstos0


def trace_sf_client_closes(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"toppage\n")
    c.s("A", 1, 9)
    c.s("PA", 1, 9, b"hello world\n")
    c.normal_close_by_client(9, 13)


def trace_sf_server_closes(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"toppage\n")
    c.s("PA", 1, 9, b"hello world\n")
    c.s("FA", 13, 9)
    c.c("FA", 9, 14)
    c.s("A", 14, 10)


def trace_rej(c: Conv) -> None:
    c.c("S", 0)
    c.s("RA", 0, 1)


def trace_s0(c: Conv) -> None:
    c.c("S", 0)
    c.c("S", 0, dt=1.0)  # the same SYN again: not a new letter


def trace_s1(c: Conv) -> None:
    c.handshake()


def trace_s2(c: Conv) -> None:
    c.handshake()
    c.c("FA", 1, 1)


def trace_s3(c: Conv) -> None:
    c.handshake()
    c.s("FA", 1, 1)


def trace_rsto(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"x")
    c.s("A", 1, 2)
    c.c("RA", 2, 1)


def trace_rstr(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"x")
    c.s("RA", 1, 2)


def trace_rstos0(c: Conv) -> None:
    c.c("S", 0)
    c.c("R", 1)


def trace_rstrh(c: Conv) -> None:
    c.s("SA", 0, 1)  # the SYN was not captured
    c.s("R", 1)


def trace_sh(c: Conv) -> None:
    c.c("S", 0)
    c.c("F", 1)


def trace_shr(c: Conv) -> None:
    c.s("SA", 0, 1)
    c.s("FA", 1, 1)


def trace_oth_midstream(c: Conv) -> None:
    c.c("PA", 100, 50, b"more")
    c.s("A", 50, 104)


def trace_flipped_midstream(c: Conv) -> None:
    c.s("PA", 50, 100, b"reply")  # the server (port 80) speaks first
    c.c("A", 100, 55)


def trace_retransmissions(c: Conv) -> None:
    c.handshake()
    for _ in range(11):  # 1 original + 10 retransmissions: T at the 1st and the 10th
        c.c("PA", 1, 1, b"again")


def trace_zero_window(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"x" * 10)
    c.s("A", 1, 11, win=0)


def trace_gap(c: Conv) -> None:
    c.handshake()
    c.c("PA", 1, 1, b"a" * 10)
    # bytes 11-20 are not in the capture
    c.c("PA", 21, 1, b"c" * 10)
    c.s("A", 1, 31)  # acknowledges what the capture never showed


def trace_multi_flag(c: Conv) -> None:
    c.handshake()
    c.c("SR", 1, 1)  # SYN+RST: Q


def trace_fin_rst(c: Conv) -> None:
    c.handshake()
    c.s("FRA", 1, 1)  # FIN+RST: i


def trace_second_fin_after_more_data(c: Conv) -> None:
    c.handshake()
    c.c("FA", 1, 1)
    c.c("FA", 1, 1, dt=0.5)  # retransmitted: same place, no second F
    c.c("FPA", 1, 1, b"late", dt=0.5)  # a FIN at another place: a second F


CASES = [
    (trace_sf_client_closes, "ShADadFf", "SF"),
    (trace_sf_server_closes, "ShADdfFa", "SF"),  # the server's first pure ACK comes last
    (trace_rej, "Sr", "REJ"),
    (trace_s0, "S", "S0"),
    (trace_s1, "ShA", "S1"),
    (trace_s2, "ShAF", "S2"),
    (trace_s3, "ShAf", "S3"),
    (trace_rsto, "ShADaR", "RSTO"),
    (trace_rstr, "ShADr", "RSTR"),
    (trace_rstos0, "SR", "RSTOS0"),
    (trace_rstrh, "^hr", "RSTRH"),
    (trace_sh, "SF", "SH"),
    (trace_shr, "^hf", "SHR"),
    (trace_oth_midstream, "Da", "OTH"),
    (trace_flipped_midstream, "^dA", "OTH"),
    (trace_retransmissions, "ShADTT", "S1"),
    (trace_zero_window, "ShADaw", "S1"),
    (trace_gap, "ShADaG", "S1"),
    (trace_multi_flag, "ShAQ", "RSTO"),  # the RST bit still resets the originator
    (trace_fin_rst, "ShAi", "RSTR"),  # FIN+RST: the RST wins in Zeek's state machine
    (trace_second_fin_after_more_data, "ShAFF", "S2"),  # a FIN packet's data makes no D
]


@pytest.mark.parametrize(("build", "history", "state"), CASES, ids=[c[0].__name__[6:] for c in CASES])
def test_history_and_conn_state(tmp_path, build, history, state):
    conv = Conv()
    build(conv)
    [report] = replay_packets(tmp_path, conv.packets)
    assert (report.history, report.state) == (history, state)


def test_bad_checksum_is_recorded_scaled_and_otherwise_ignored(tmp_path):
    conv = Conv()
    conv.handshake()
    for _ in range(10):
        conv.c("PA", 1, 1, b"data", chksum=0x1234)  # a wrong checksum, ten times
    conv.c("FA", 1, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    # C at the 1st and 10th bad checksum; the data never counted (no D, no T).
    assert report.history == "ShACCF"
    assert report.checksum["bad"] == 10
    assert report.state == "S2"


def test_hundred_zero_windows_make_three_letters(tmp_path):
    conv = Conv()
    conv.handshake()
    conv.c("PA", 1, 1, b"x")
    for i in range(100):
        conv.s("A", 1, 2, win=0, dt=0.001 * (i + 1))
    [report] = replay_packets(tmp_path, conv.packets)
    assert report.history == "ShADawww"


def test_rstos0_pattern_follows_zeeks_regular_expression():
    # ^?S[^HAFGIQ]*R.*
    assert _looks_like_rstos0("SR")
    assert _looks_like_rstos0("^ScR")
    assert _looks_like_rstos0("StRr")
    assert _looks_like_rstos0("ShR")  # the class is case-sensitive: only the originator's letters stop it
    assert not _looks_like_rstos0("SAR")
    assert not _looks_like_rstos0("SHR")
    assert not _looks_like_rstos0("SFR")
    assert not _looks_like_rstos0("R")
    assert not _looks_like_rstos0("S")


def test_kernel_capture_states():
    """The committed capture of kernel traffic on lo: a normal exchange closed by the
    server, a refused port and an abort (SO_LINGER 0)."""
    reports, _ = replay(DATA / "lo-kernel.pcap")
    assert [(r.state, r.history) for r in reports] == [("SF", "ShADadfF"), ("REJ", "Sr"), ("RSTO", "ShADaR")]


def test_a_syn_with_a_new_isn_rebases_the_side_before_the_history_sees_it():
    # Zeek's init_endpoint runs before update_history: a SYN at a new place while in
    # SYN_SENT resets the start sequence number, so its relative seq is 0 again and
    # (like a plain retransmission) it adds no second S.
    z = ZeekConnection()
    z.packet(True, 0x02, 100, 0, 0, 1000)
    z.packet(True, 0x02, 100, 0, 0, 1000)
    z.packet(True, 0x02, 7000, 0, 0, 1000)
    assert z.history_string == "S"
    assert z.conn_state() == "S0"
    # An established side, though, records a RST at each new place.
    z.packet(False, 0x12, 500, 7001, 0, 1000)
    z.packet(True, 0x04, 7001, 0, 0, 0)
    z.packet(True, 0x04, 9999, 0, 0, 0)
    assert z.history_string == "ShRR"


def test_scapy_can_build_the_options_used():
    # guards the helper: TCP options given to Conv reach the wire
    assert TCP(options=[("WScale", 7)]).options == [("WScale", 7)]

"""Both sides' RFC 9293 states as replay infers them from the wire.

Expected states follow the state diagram of RFC 9293 §3.3.2 and the segment
processing of §3.10.7; each test is a packet trace and the (client, server)
state after every packet.
"""

from __future__ import annotations

from test_replay_support import DATA, Conv, replay, replay_packets

from l4kit.core.states import State
from l4kit.replay.states import NOTE_RST_CHALLENGE, NOTE_RST_IGNORED, NOTE_SYN_CHALLENGE, PassiveStates


def states_after_each_packet(report) -> list[tuple[str, str]]:
    return [(rec[12].value, rec[14].value) for rec in report.rows]


def test_handshake_data_and_a_close_started_by_the_client(tmp_path):
    conv = Conv().handshake()
    conv.c("PA", 1, 1, b"hi")
    conv.s("A", 1, 3)
    conv.normal_close_by_client(3, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report) == [
        ("SYN-SENT", "SYN-RECEIVED"),
        ("ESTABLISHED", "SYN-RECEIVED"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("FIN-WAIT-1", "CLOSE-WAIT"),
        ("TIME-WAIT", "LAST-ACK"),  # the server's FIN+ACK acknowledges the client's FIN
        ("TIME-WAIT", "CLOSED"),
    ]
    assert (report.client_state, report.server_state) == ("TIME-WAIT", "CLOSED")


def test_half_close_goes_through_fin_wait_2(tmp_path):
    conv = Conv().handshake()
    conv.c("FA", 1, 1)
    conv.s("A", 1, 2)  # acknowledges the FIN only
    conv.s("PA", 1, 2, b"still talking")  # a half-closed connection still carries data
    conv.c("A", 2, 14)
    conv.s("FA", 14, 2)
    conv.c("A", 2, 15)
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report)[3:] == [
        ("FIN-WAIT-1", "CLOSE-WAIT"),
        ("FIN-WAIT-2", "CLOSE-WAIT"),
        ("FIN-WAIT-2", "CLOSE-WAIT"),
        ("FIN-WAIT-2", "CLOSE-WAIT"),
        ("TIME-WAIT", "LAST-ACK"),
        ("TIME-WAIT", "CLOSED"),
    ]


def test_simultaneous_close_goes_through_closing(tmp_path):
    # RFC 9293 §3.6 figure 13: both FINs cross, each side is in FIN-WAIT-1 when the
    # other's FIN arrives (its ACK does not cover the receiver's FIN yet).
    conv = Conv().handshake()
    conv.c("FA", 1, 1)
    conv.s("FA", 1, 1)  # sent before the client's FIN arrived: ack=1, not 2
    conv.c("A", 2, 2)
    conv.s("A", 2, 2)
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report)[3:] == [
        ("FIN-WAIT-1", "ESTABLISHED"),  # corrected: the server had not processed the FIN yet
        ("CLOSING", "FIN-WAIT-1"),
        ("CLOSING", "FIN-WAIT-2"),
        ("TIME-WAIT", "TIME-WAIT"),
    ]
    sides = [(tr.side, tr.before.value, tr.after.value) for tr in report.transitions if tr.frame >= 4]
    assert ("server", "ESTABLISHED", "CLOSE-WAIT") not in sides


def test_simultaneous_open_goes_through_syn_received(tmp_path):
    conv = Conv(client=("10.0.0.1", 5000), server=("10.0.0.2", 5001))
    conv.c("S", 0)
    conv.s("S", 0)  # both sent a SYN (RFC 9293 §3.5 figure 7)
    conv.c("SA", 0, 1)
    conv.s("SA", 0, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    # The server's own SYN shows it had not got the client's (else it would send a
    # SYN-ACK): it was CLOSED, opening actively, when the client's SYN was captured.
    assert states_after_each_packet(report) == [
        ("SYN-SENT", "CLOSED"),
        ("SYN-RECEIVED", "SYN-SENT"),
        ("SYN-RECEIVED", "ESTABLISHED"),
        ("ESTABLISHED", "ESTABLISHED"),
    ]
    assert any("simultaneous open" in n for n in report.notes)


def test_refused_port_leaves_the_server_closed_all_along(tmp_path):
    conv = Conv()
    conv.c("S", 0)
    conv.s("RA", 0, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    assert [(rec[11].value, rec[12].value, rec[13].value, rec[14].value) for rec in report.rows] == [
        ("CLOSED", "SYN-SENT", "CLOSED", "CLOSED"),
        ("SYN-SENT", "CLOSED", "CLOSED", "CLOSED"),
    ]
    assert any("no listener" in n for n in report.notes)
    assert all(tr.side == "client" for tr in report.transitions)


def test_client_abort_closes_both_sides(tmp_path):
    conv = Conv().handshake()
    conv.c("RA", 1, 1)
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report)[-1] == ("CLOSED", "CLOSED")


def test_rst_to_a_half_open_server_returns_it_to_listen(tmp_path):
    conv = Conv()
    conv.c("S", 0)
    conv.s("SA", 0, 1)
    conv.c("R", 1)  # RFC 9293 §3.10.7.4: SYN-RECEIVED from a passive OPEN goes back to LISTEN
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report)[-1] == ("CLOSED", "LISTEN")


def test_blind_rsts_are_judged_by_rfc_5961():
    s = PassiveStates()
    s.segment(0, 0x02, 1000, 0, 1, 65535)  # SYN
    s.segment(1, 0x12, 5000, 1001, 1, 65535)  # SYN-ACK
    s.segment(0, 0x10, 1001, 5001, 0, 65535)  # ACK
    assert (s.client, s.server) == (State.ESTABLISHED, State.ESTABLISHED)
    # in the window but not at RCV.NXT: the receiver must send a challenge ACK
    assert s.segment(0, 0x04, 1001 + 500, 0, 0, 0) == NOTE_RST_CHALLENGE
    # outside the window: ignored
    assert s.segment(0, 0x04, 1001 + 100_000, 0, 0, 0) == NOTE_RST_IGNORED
    assert s.server is State.ESTABLISHED
    # a SYN with a new ISN on the established connection: challenge ACK (RFC 5961 §4.2)
    assert s.segment(0, 0x02, 77, 0, 1, 65535) == NOTE_SYN_CHALLENGE


def test_midstream_capture_starts_established(tmp_path):
    conv = Conv()
    conv.c("PA", 10, 10, b"x")
    conv.s("A", 10, 11)
    [report] = replay_packets(tmp_path, conv.packets)
    assert states_after_each_packet(report) == [("ESTABLISHED", "ESTABLISHED")] * 2
    assert any("mid-connection" in n for n in report.notes)


def test_l4kit_responder_capture_shows_its_late_fin_processing():
    """The committed capture of l4kit's own responder: the client's FIN arrives while
    the responder is still answering, so the responder's FIN does not acknowledge it
    and the two closes cross (FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT on the server)."""
    reports, _ = replay(DATA / "lo-l4kit-responder.pcap")
    server_states = [rec[14].value for rec in reports[0].rows]
    assert server_states[-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert reports[0].client_state == "TIME-WAIT"


def test_a_fin_processed_late_shows_close_wait_before_last_ack(tmp_path):
    """The client's FIN crosses the server's data (the data does not acknowledge it); the
    server's FIN+ACK then acknowledges it: the server went ESTABLISHED -> CLOSE-WAIT ->
    LAST-ACK, two changes RFC 9293 allows, never ESTABLISHED -> LAST-ACK."""
    conv = Conv().handshake()
    conv.c("PA", 1, 1, b"GET /\n")
    conv.c("FA", 7, 1)  # curl / nc -N: the request, then the client's FIN at once
    conv.s("PA", 1, 7, b"HTTP/1.0 200 OK")  # in flight as the FIN arrived: acknowledges the request only
    conv.s("FA", 16, 8)  # now the FIN is acknowledged, and the server closes too
    conv.c("A", 8, 17)
    [report] = replay_packets(tmp_path, conv.packets)
    server = [(tr.before.value, tr.after.value) for tr in report.transitions if tr.side == "server"]
    assert server == [
        ("LISTEN", "SYN-RECEIVED"),
        ("SYN-RECEIVED", "ESTABLISHED"),
        ("ESTABLISHED", "CLOSE-WAIT"),
        ("CLOSE-WAIT", "LAST-ACK"),
        ("LAST-ACK", "CLOSED"),
    ]
    fin_row = report.rows[-2]
    assert (fin_row[13].value, fin_row[14].value) == ("CLOSE-WAIT", "LAST-ACK")

"""The notebooks' stepping helper: a scripted Scapy client against the core, one segment per step.

Expected states and numbers below are worked out by hand from RFC 9293 (client
ISN 1000, server ISN 5000, "toppage\\n" is 8 octets, "hello world\\n" 12), not
taken from the code under test. Checksums are cross-checked against Scapy's own
``checksum`` over a pseudo-header built here.
"""

from __future__ import annotations

import struct

import pytest
from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from l4kit.checksum import ChecksumStatus
from l4kit.core import Rfc6528Isn, State
from l4kit.errors import ConfigError
from l4kit.notebook import (
    CLIENT,
    NOTEBOOK_SECRET,
    SERVER,
    ChecksumWorking,
    Stepper,
    SteppingError,
    time_sequence_graph,
)
from l4kit.wire import Endpoint, FourTuple

S = State

# (label, direction, client before, client after, server before, server after, flags, seq, ack)
DEFAULT_FLOW = [
    ("SYN", "c2s", S.CLOSED, S.SYN_SENT, S.LISTEN, S.SYN_RECEIVED, "S", 1000, 0),
    ("SYN-ACK", "s2c", S.SYN_SENT, S.ESTABLISHED, S.SYN_RECEIVED, S.SYN_RECEIVED, "SA", 5000, 1001),
    ("ACK", "c2s", S.ESTABLISHED, S.ESTABLISHED, S.SYN_RECEIVED, S.ESTABLISHED, "A", 1001, 5001),
    ("data", "c2s", S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED, "PA", 1001, 5001),
    ("reply", "s2c", S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED, "PA", 5001, 1009),
    ("FIN-ACK", "s2c", S.ESTABLISHED, S.CLOSE_WAIT, S.ESTABLISHED, S.FIN_WAIT_1, "FA", 5013, 1009),
    ("FIN-ACK", "c2s", S.CLOSE_WAIT, S.LAST_ACK, S.FIN_WAIT_1, S.TIME_WAIT, "FA", 1009, 5014),
    ("ACK", "s2c", S.LAST_ACK, S.CLOSED, S.TIME_WAIT, S.TIME_WAIT, "A", 5014, 1010),
    ("closed", "timer", S.CLOSED, S.CLOSED, S.TIME_WAIT, S.CLOSED, "", None, None),
]


def _flow(stepper: Stepper) -> list[tuple[object, ...]]:
    rows = []
    for step in stepper.run():
        seg = step.segment
        rows.append(
            (
                step.label,
                step.direction,
                step.client.before,
                step.client.after,
                step.server.before,
                step.server.after,
                step.flags,
                None if seg is None else seg.seq.value,
                None if seg is None else seg.ack.value,
            )
        )
    return rows


def test_default_conversation_step_by_step():
    stepper = Stepper()
    assert _flow(stepper) == DEFAULT_FLOW
    assert stepper.done
    assert stepper.client_state is S.CLOSED and stepper.server_state is S.CLOSED
    assert bytes(stepper.client.received) == b"hello world\n"


def test_payloads_and_in_flight_after_the_request():
    stepper = Stepper()
    steps = [stepper.step() for _ in range(4)]
    assert steps[3].segment is not None and steps[3].segment.payload == b"toppage\n"
    # The core answered at once: reply and FIN-ACK are both on the wire, in that order.
    assert steps[3].in_flight == (
        "server ← PA seq=5001 ack=1009 'hello world\\n'",
        "server ← FA seq=5013 ack=1009",
    )
    assert stepper.server_state is S.FIN_WAIT_1  # the core moved on already
    reply = stepper.step()
    assert reply.segment is not None and reply.segment.payload == b"hello world\n"
    # The sender's state when it sent the reply, and where it is now.
    assert reply.state_text("server") == "ESTABLISHED (unchanged) when it sent this (now FIN-WAIT-1)"
    assert reply.state_text("client") == "ESTABLISHED (unchanged)"


def test_isns_are_fixed_and_runs_repeat_exactly():
    first, second = Stepper(), Stepper()
    a, b = first.run(), second.run()
    assert [raw(s.packet) for s in a if s.packet] == [raw(s.packet) for s in b if s.packet]
    assert a[0].segment is not None and a[0].segment.seq.value == 1000
    assert a[1].segment is not None and a[1].segment.seq.value == 5000


def test_other_isns():
    steps = Stepper(client_isn=7, server_isn=123456).run()
    syn, syn_ack = steps[0].segment, steps[1].segment
    assert syn is not None and syn_ack is not None
    assert (syn.seq.value, syn_ack.seq.value, syn_ack.ack.value) == (7, 123456, 8)


def test_rfc6528_isn_when_no_fixed_server_isn():
    stepper = Stepper(server_isn=None)
    stepper.step()
    syn_ack = stepper.step()
    key = FourTuple(SERVER, CLIENT)
    # The SYN arrived at t = 1 ms of the stepper's clock.
    expected = Rfc6528Isn(NOTEBOOK_SECRET)(key, 0.001)
    assert syn_ack.segment is not None and syn_ack.segment.seq == expected
    assert Stepper(server_isn=None).run()[1].segment.seq == expected  # type: ignore[union-attr]


def test_sequence_numbers_wrap_at_2_32():
    steps = Stepper(server_isn=2**32 - 3).run()
    fin = steps[5]
    assert fin.label == "FIN-ACK" and fin.segment is not None
    # 2**32 - 3 + 1 (SYN) + 12 (reply) = 10 modulo 2**32
    assert fin.segment.seq.value == 10
    assert steps[6].segment is not None and steps[6].segment.ack.value == 11
    assert any("(mod 2**32)" in sentence for sentence in fin.arithmetic)


def test_client_closing_first_is_a_simultaneous_close():
    flow = _flow(Stepper(client_closes_first=True))
    states = [(label, cb, ca, sb, sa) for label, _, cb, ca, sb, sa, *_ in flow]
    assert states == [
        ("SYN", S.CLOSED, S.SYN_SENT, S.LISTEN, S.SYN_RECEIVED),
        ("SYN-ACK", S.SYN_SENT, S.ESTABLISHED, S.SYN_RECEIVED, S.SYN_RECEIVED),
        ("ACK", S.ESTABLISHED, S.ESTABLISHED, S.SYN_RECEIVED, S.ESTABLISHED),
        ("data", S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED, S.ESTABLISHED),
        # The client's FIN (sent right after the data) finds the server already in FIN-WAIT-1.
        ("FIN-ACK", S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_1, S.CLOSING),
        ("reply", S.FIN_WAIT_1, S.FIN_WAIT_1, S.ESTABLISHED, S.ESTABLISHED),
        ("FIN-ACK", S.FIN_WAIT_1, S.CLOSING, S.ESTABLISHED, S.FIN_WAIT_1),
        ("ACK", S.CLOSING, S.TIME_WAIT, S.CLOSING, S.CLOSING),
        # The client sent this ACK (of the server's FIN) in step 7, while still in CLOSING.
        ("ACK", S.CLOSING, S.CLOSING, S.CLOSING, S.TIME_WAIT),
        ("closed", S.TIME_WAIT, S.CLOSED, S.TIME_WAIT, S.CLOSED),
    ]


def test_ack_every_segment_adds_an_ack_of_the_reply():
    flow = _flow(Stepper(delayed_ack=False))
    labels = [(label, direction, seq, ack) for label, direction, *_, _flags, seq, ack in flow]
    assert ("ACK", "c2s", 1009, 5013) in labels  # acknowledges the 12 reply octets, not yet the FIN
    assert len(flow) == len(DEFAULT_FLOW) + 1
    assert flow[-1][0] == "closed"


def test_ipv6_conversation():
    stepper = Stepper(client=Endpoint("2001:db8::1", 40000), server=Endpoint("2001:db8::2", 8888))
    steps = stepper.run()
    assert [s.label for s in steps] == [row[0] for row in DEFAULT_FLOW]
    for step in steps:
        if step.packet is not None:
            assert isinstance(step.packet, IPv6)
            assert step.checksum is not None and step.checksum.agrees
            assert len(step.checksum.pseudo_words) == 20  # 16 + 16 address octets, 4 length, 4 zero/nh


def _pseudo_header(pkt) -> bytes:
    tcp_len = len(raw(pkt[TCP]))
    if isinstance(pkt, IPv6):
        return raw(pkt)[8:40] + struct.pack("!IxxxB", tcp_len, 6)  # addresses, length, zeros, next header
    return raw(pkt)[12:20] + struct.pack("!xBH", 6, tcp_len)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"client_closes_first": True}, {"request": "ping\nhelp\n"}, {"request": "toppag\n"}],
    ids=["default", "closes-first", "two-requests", "odd-length"],
)
def test_every_checksum_matches_scapy(kwargs):
    for step in Stepper(**kwargs).run():
        if step.packet is None:
            continue
        working = step.checksum
        assert working is not None
        pkt = step.packet
        zeroed = bytearray(raw(pkt[TCP]))
        zeroed[16:18] = b"\x00\x00"
        independent = scapy_checksum(_pseudo_header(pkt) + bytes(zeroed))
        assert working.computed == working.l4kit == working.scapy == independent == pkt[TCP].chksum
        assert working.status is ChecksumStatus.OK
        assert step.segment is not None and step.segment.checksum is ChecksumStatus.OK


def test_checksum_working_by_hand_on_an_odd_length_segment():
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="PA", seq=1, ack=1) / Raw(b"abc")
    working = ChecksumWorking.of_packet(pkt)
    # 20 header octets + 3 data octets: 12 words, the last one "c" padded with a zero octet.
    assert working.tcp_length == 23
    assert len(working.tcp_words) == 12 and working.tcp_words[-1] == 0x6300
    assert working.pseudo_words == (0x0A00, 0x0001, 0x0A00, 0x0002, 0x0006, 23)
    assert working.wide_sum == sum(working.pseudo_words) + sum(working.tcp_words)
    assert working.ones_sum <= 0xFFFF and working.computed == working.ones_sum ^ 0xFFFF
    assert working.agrees
    text = "\n".join(working.lines())
    assert f"0x{working.computed:04x}" in text and "all three agree" in text


def test_checksum_working_classifies_a_corrupt_field():
    pkt = IP(raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S")))
    pkt[TCP].chksum ^= 0x0101
    working = ChecksumWorking.of_packet(pkt)
    assert working.status is ChecksumStatus.BAD
    assert working.scapy != working.l4kit and not working.agrees


def test_arithmetic_in_words():
    steps = Stepper().run()
    syn_ack, data_ack_fin = steps[1], steps[6]
    assert any(s.startswith("ack 1001 = client ISN 1000 + 1 (1 for the SYN)") for s in syn_ack.arithmetic)
    ack_sentence = next(s for s in data_ack_fin.arithmetic if s.startswith("ack 5014"))
    assert "1 for the SYN + 12 for 'hello world\\n' + 1 for the FIN" in ack_sentence
    length = next(s for s in steps[3].arithmetic if s.startswith("length"))
    assert "1001..1008" in length and "1001 + 8 = 1009" in length


def test_text_and_html_rendering_escape_payloads():
    stepper = Stepper(request="<b>&\n")
    stepper.step()
    stepper.step()
    stepper.step()
    data = stepper.step()
    html_text = data._repr_html_()
    assert "&lt;b&gt;&amp;" in html_text and "<b>&" not in html_text
    text = str(data)
    assert text.startswith("Step 4: data (client → server")
    assert "ESTABLISHED" in text and "checksum l4kit" in text


def test_header_fields_name_the_flags_in_bit_order():
    stepper = Stepper()
    syn, syn_ack = stepper.step(), stepper.step()
    assert dict(syn.header_fields())["flags"] == "S (SYN)"
    assert dict(syn_ack.header_fields())["flags"] == "SA (SYN+ACK)"
    data = [stepper.step() for _ in range(2)][-1]
    assert dict(data.header_fields())["flags"] == "PA (PSH+ACK)"


def test_sequence_diagram_mermaid_and_drawing():
    stepper = Stepper()
    stepper.run()
    diagram = stepper.diagram()
    mermaid = diagram.mermaid
    assert mermaid.startswith("sequenceDiagram\n")
    assert mermaid.count("C->>S:") == 4 and mermaid.count("S->>C:") == 4
    assert "Note over S: TIME-WAIT" in mermaid
    assert "SYN-RECEIVED" in str(diagram)
    png = diagram._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_sequence_diagram_mermaid_escapes_payload_text_like_replay():
    """A request with Mermaid's special characters: each one written as the entity code
    replay's --format mermaid uses (l4kit.mermaid), so the line stays one message."""
    stepper = Stepper(request=b'a;b#c<d>"e\n')
    stepper.run()
    mermaid = stepper.diagram().mermaid
    data_lines = [line for line in mermaid.splitlines() if "len=11" in line]
    assert data_lines, mermaid
    assert "a#59;b#35;c#lt;d#gt;#quot;e\\n" in data_lines[0]


def test_time_sequence_graph_from_stepper_rows():
    stepper = Stepper()
    stepper.run()
    rows = stepper.rows()
    # Relative numbers as Wireshark shows them: ISN = 0.
    assert [(r.direction, r.seq, r.ack, r.length) for r in rows] == [
        ("c2s", 0, None, 0),
        ("s2c", 0, 1, 0),
        ("c2s", 1, 1, 0),
        ("c2s", 1, 1, 8),
        ("s2c", 1, 9, 12),
        ("s2c", 13, 9, 0),
        ("c2s", 9, 14, 0),
        ("s2c", 14, 10, 0),
    ]
    drawing = time_sequence_graph(rows, title="test")
    assert len(drawing.figure.axes) == 2
    assert drawing._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")


def test_sending_a_packet_by_hand():
    stepper = Stepper()
    for _ in range(3):
        stepper.step()
    assert stepper.server_state is S.ESTABLISHED
    rst = IP(src=CLIENT.addr, dst=SERVER.addr) / TCP(
        sport=CLIENT.port, dport=SERVER.port, flags="R", seq=1001
    )
    step = stepper.send(rst)
    # RFC 5961 §3.2: a RST exactly at RCV.NXT resets the connection.
    assert step.server.before is S.ESTABLISHED and step.server.after is S.CLOSED
    assert stepper.server_state is S.CLOSED


def test_sending_a_packet_out_of_the_window_gets_an_ack():
    stepper = Stepper()
    for _ in range(3):
        stepper.step()
    stray = (
        IP(src=CLIENT.addr, dst=SERVER.addr)
        / TCP(sport=CLIENT.port, dport=SERVER.port, flags="PA", seq=900_000, ack=5001)
        / Raw(b"x")
    )
    step = stepper.send(stray)
    assert step.server.before is step.server.after is S.ESTABLISHED
    assert any("dropped" in note for note in step.notes)
    assert stepper.in_flight[-1].startswith("server ← A seq=5001 ack=1001")


def test_stepping_past_the_end_is_a_clear_error():
    stepper = Stepper()
    stepper.run()
    with pytest.raises(SteppingError, match="conversation is over"):
        stepper.step()


def test_keep_open_waits_for_the_client_to_close():
    stepper = Stepper(keep_open=True)
    stepper.run()
    assert stepper.client_state is S.ESTABLISHED and stepper.server_state is S.ESTABLISHED
    with pytest.raises(SteppingError, match="close"):
        stepper.step()
    stepper.close()
    stepper.run()
    assert stepper.client_state is S.CLOSED and stepper.server_state is S.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_isn": -1}, "client_isn"),
        ({"server_isn": 2**32}, "server_isn"),
        ({"client": Endpoint("2001:db8::1", 1)}, "different IP versions"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Stepper(**kwargs)


def test_send_rejects_a_packet_without_tcp():
    with pytest.raises(SteppingError, match="not a TCP segment"):
        Stepper().send(IP(dst="192.0.2.2") / Raw(b"x"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client": Endpoint("client.example", 40000)}, "not an IP address"),
        ({"server": Endpoint("192.0.2.2", 0)}, "port 0"),
    ],
)
def test_endpoints_must_be_addresses_and_ports(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Stepper(**kwargs)


def test_ipv6_addresses_are_canonicalised():
    stepper = Stepper(client=Endpoint("2001:DB8:0::1", 40000), server=Endpoint("2001:db8::0:2", 8888))
    assert [s.label for s in stepper.run()][-1] == "closed"
    assert stepper.client_state is S.CLOSED


def test_a_segment_of_another_connection_stays_apart():
    stepper = Stepper()
    for _ in range(3):
        stepper.step()
    other = IP(src=CLIENT.addr, dst=SERVER.addr) / TCP(
        sport=CLIENT.port + 1, dport=SERVER.port, flags="S", seq=7
    )
    step = stepper.send(other)
    # The core opens a second connection; the stepped one is untouched.
    assert step.server.after is S.SYN_RECEIVED and stepper.server_state is S.ESTABLISHED
    assert "another connection" in step.arithmetic[0]
    # Its SYN-ACK reaches the scripted client, which ignores it.
    while "SA seq=5000" not in stepper.in_flight[0]:
        stepper.step()
    ignored = stepper.step()
    assert ignored.client.before is ignored.client.after is S.ESTABLISHED
    assert any("not for this client" in note for note in ignored.notes)
    assert all(row.step != ignored.number for row in stepper.rows())
    stepper.run()
    assert stepper.client_state is S.CLOSED and bytes(stepper.client.received) == b"hello world\n"


def test_a_syn_in_established_gets_a_challenge_ack():
    stepper = Stepper()
    for _ in range(3):
        stepper.step()
    syn = IP(src=CLIENT.addr, dst=SERVER.addr) / TCP(sport=CLIENT.port, dport=SERVER.port, flags="S", seq=1)
    step = stepper.send(syn)
    # RFC 5961 §4.2: a SYN in a synchronized state is answered with an ACK, the state is kept.
    assert step.server.before is step.server.after is S.ESTABLISHED
    assert stepper.in_flight[-1].startswith("server ← A seq=5001 ack=1001")


def test_shared_transition_table_rows():
    from l4kit.views.notebook import stepper_table, transition_rows

    stepper = Stepper()
    stepper.run()
    rows = transition_rows(stepper)
    assert [(r.frame, r.direction, r.flags) for r in rows][:3] == [
        (1, "c2s", "S"),
        (2, "s2c", "SA"),
        (3, "c2s", "A"),
    ]
    assert (rows[0].client_before, rows[0].client_after, rows[0].before, rows[0].after) == (
        "CLOSED",
        "SYN-SENT",
        "LISTEN",
        "SYN-RECEIVED",
    )
    assert rows[3].payload_preview == "'toppage\\n'"
    assert stepper_table(stepper).row_count == len(rows) == 8


def test_each_step_knows_when_its_segment_left():
    steps = Stepper().run()
    # SYN before step 1; SYN-ACK when the SYN arrived (1); ACK and request when the SYN-ACK arrived (2);
    # reply and FIN-ACK when the request arrived (4); the client's FIN when the server's arrived (6);
    # the last ACK when the client's FIN arrived (7); the timer step sends nothing.
    assert [s.sent_at for s in steps] == [0, 1, 2, 2, 4, 4, 6, 7, None]


def test_a_long_request_goes_in_segments_of_the_server_mss():
    stepper = Stepper(request=b"x" * 3000 + b"\n")
    steps = stepper.run()
    data = [s.segment for s in steps if s.direction == "c2s" and s.segment is not None and s.segment.payload]
    # The core advertises MSS 1460 in its SYN-ACK: 1460 + 1460 + 81 octets, PSH on the last.
    assert [(len(seg.payload), seg.flags.letters) for seg in data] == [(1460, "A"), (1460, "A"), (81, "PA")]
    assert [seg.seq.value for seg in data] == [1001, 2461, 3921]
    assert stepper.done and stepper.client_state is S.CLOSED

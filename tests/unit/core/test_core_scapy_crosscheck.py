"""The core seen from Scapy: client packets built with Scapy, replies dissected by Scapy.

Scapy is the reference people already trust. Here its own TCP arithmetic, not the
core's, checks that each reply answers the segment it answers (seq/ack as Scapy
computes them from the packets it built), and that the bytes of every reply carry
checksums that Scapy recomputes to the same value.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from l4kit.core import DropReason, Listener, ListenerConfig, State, make_app_factory
from l4kit.wire import Endpoint
from l4kit.wire.packet import decode_packet, encode_packet

SERVER_IP, CLIENT_IP, PORT = "192.0.2.1", "192.0.2.2", 8888


def exchange(listener: Listener, pkt: IP, now: float) -> list[IP]:
    out = listener.receive(decode_packet(bytes(pkt)), now)
    replies = [IP(encode_packet(seg)) for seg in out.segments]
    for reply in replies:
        # Scapy recomputes both checksums from scratch: they must match what was sent.
        rebuilt = IP(bytes(reply))
        del rebuilt[IP].chksum
        del rebuilt[TCP].chksum
        rebuilt = IP(bytes(rebuilt))
        assert (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (reply[IP].chksum, reply[TCP].chksum)
    return replies


def test_echo_toppage_as_scapy_sees_it() -> None:
    listener = Listener(ListenerConfig(local=Endpoint(SERVER_IP, PORT), secret=b"x"), make_app_factory())
    base = IP(src=CLIENT_IP, dst=SERVER_IP)
    syn = base / TCP(sport=43210, dport=PORT, flags="S", seq=123456, options=[("MSS", 1460)])
    [syn_ack] = exchange(listener, syn, 0.0)
    assert syn_ack[TCP].flags == "SA"
    assert syn_ack[TCP].ack == syn[TCP].seq + 1
    assert syn_ack[TCP].options == [("MSS", 1460)]
    assert (syn_ack[IP].src, syn_ack[IP].dst, syn_ack[TCP].sport, syn_ack[TCP].dport) == (
        SERVER_IP,
        CLIENT_IP,
        PORT,
        43210,
    )

    ack = base / TCP(sport=43210, dport=PORT, flags="A", seq=syn[TCP].seq + 1, ack=syn_ack[TCP].seq + 1)
    assert exchange(listener, ack, 0.01) == []
    request = (
        base
        / TCP(sport=43210, dport=PORT, flags="PA", seq=ack[TCP].seq, ack=ack[TCP].ack)
        / Raw(b"toppage\n")
    )
    data, fin = exchange(listener, request, 0.02)
    assert data[TCP].flags == "PA"
    assert bytes(data[Raw]) == b"hello world\n"
    assert data[TCP].seq == ack[TCP].ack
    assert data[TCP].ack == request[TCP].seq + len(request[Raw])
    assert fin[TCP].flags == "FA"
    assert fin[TCP].seq == data[TCP].seq + len(data[Raw])

    last = base / TCP(sport=43210, dport=PORT, flags="FA", seq=data[TCP].ack, ack=fin[TCP].seq + 1)
    [final_ack] = exchange(listener, last, 0.03)
    assert final_ack[TCP].flags == "A"
    assert final_ack[TCP].ack == last[TCP].seq + 1
    assert listener.state_of(decode_packet(bytes(last)).key) is State.TIME_WAIT


def test_corrupted_bytes_are_dropped_by_checksum() -> None:
    listener = Listener(ListenerConfig(local=Endpoint(SERVER_IP, PORT), secret=b"x"), make_app_factory())
    syn = bytearray(
        bytes(IP(src=CLIENT_IP, dst=SERVER_IP) / TCP(sport=1, dport=PORT, flags="S", seq=7) / Raw(b"ab"))
    )
    syn[-1] ^= 0x01  # one bit of payload: the TCP checksum no longer matches
    segment = decode_packet(bytes(syn))
    out = listener.receive(segment, 0.0)
    assert out.segments == []
    assert dict(listener.stats.drops) == {DropReason.BAD_CHECKSUM: 1}

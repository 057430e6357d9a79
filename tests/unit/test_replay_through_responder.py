"""``--through-responder`` names the loss recovery steps of the responder's replies."""

from __future__ import annotations

from l4kit.core import Routes
from l4kit.replay.responder import ThroughResponder
from l4kit.wire import MaxSegmentSize, Segment, SeqNum, TcpFlags
from l4kit.wire.packet import encode_packet

CLIENT = ("10.0.0.2", 40000)
SERVER = ("10.0.0.1", 8888)
CLIENT_ISN = 1000
SERVER_ISN = 5000
MSS = 1000


def packet(
    flags: str,
    seq: int,
    ack: int,
    payload: bytes = b"",
    *,
    to_server: bool = True,
    options: tuple[MaxSegmentSize, ...] = (),
) -> bytes:
    src, dst = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
    return encode_packet(
        Segment(
            src=src[0],
            dst=dst[0],
            sport=src[1],
            dport=dst[1],
            seq=SeqNum(seq),
            ack=SeqNum(ack),
            flags=TcpFlags.parse(flags),
            window=65535,
            options=options,
            payload=payload,
        )
    )


def test_a_fast_retransmit_the_captured_server_did_not_make_is_named() -> None:
    """The client acknowledges the first of six segments four times (three duplicates);
    the captured server never retransmitted, l4kit's responder does at once, and the
    difference says it was a fast retransmit."""
    through = ThroughResponder(Routes.from_mapping({"big": "x" * (6 * MSS - 1)}), CLIENT, SERVER)
    through.client_packet(0.0, 1, packet("S", CLIENT_ISN, 0, options=(MaxSegmentSize(MSS),)))
    through.server_packet(0.0, 2, packet("SA", SERVER_ISN, CLIENT_ISN + 1, to_server=False))
    through.client_packet(0.1, 3, packet("A", CLIENT_ISN + 1, SERVER_ISN + 1))
    through.client_packet(0.1, 4, packet("PA", CLIENT_ISN + 1, SERVER_ISN + 1, b"big\n"))
    request_end = CLIENT_ISN + 5
    for k in range(6):
        data = b"x" * MSS if k < 5 else b"x" * (MSS - 1) + b"\n"
        flags = "PA" if k == 5 else "A"
        through.server_packet(
            0.1, 5 + k, packet(flags, SERVER_ISN + 1 + k * MSS, request_end, data, to_server=False)
        )
    through.server_packet(0.1, 11, packet("FA", SERVER_ISN + 1 + 6 * MSS, request_end, to_server=False))
    for frame in range(12, 16):  # segment 1 arrived, 2 did not: one ACK and three duplicates
        through.client_packet(0.2, frame, packet("A", request_end, SERVER_ISN + 1 + MSS))
    [difference] = through.differences()
    assert difference.startswith("after frame 15: the responder sends A seq=1001 ack=5 len=1000 ")
    assert difference.endswith("(FIN-WAIT-1; fast retransmit (3 duplicate ACKs)); the server did not")

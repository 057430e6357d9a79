"""The sniffer's BPF filter and the objects its socket hands to Scapy's sniff loop."""

from __future__ import annotations

import shutil

import pytest

from l4kit.live.capture import (
    TIMER_DUE,
    bpf_filter_text,
    compile_bpf,
    compile_with_tcpdump,
)
from l4kit.live.ring import CapturedFrame

SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # linux/filter.h: SKF_AD_OFF + SKF_AD_PKTTYPE
PACKET_OUTGOING = 4


def test_filter_text_is_inbound_tcp_to_the_responder_only() -> None:
    assert bpf_filter_text("127.0.0.1", 8888) == "inbound and tcp and dst host 127.0.0.1 and dst port 8888"


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_scapy_and_tcpdump_compile_the_same_program() -> None:
    # Two compilers (Scapy through ctypes, tcpdump -ddd), one answer: our conversion
    # of Scapy's ctypes structure to (code, jt, jf, k) loses nothing.
    text = bpf_filter_text("127.0.0.1", 8888)
    program = compile_bpf(text, "lo")
    assert program[:-2] == compile_with_tcpdump(text)[:-2]
    # The accept value is the snapshot length, which the two choose differently.
    assert program[-1] == compile_with_tcpdump(text)[-1] == (6, 0, 0, 0)


def test_inbound_is_a_packet_type_check_against_outgoing() -> None:
    # Loopback trap 2 (docs/design.md): the first instructions load the packet type and reject
    # PACKET_OUTGOING, so a frame leaving on lo is never answered.
    program = compile_bpf(bpf_filter_text("127.0.0.1", 8888), "lo")
    (code0, _jt0, _jf0, k0), (code1, jt1, _jf1, k1) = program[0], program[1]
    assert k0 == SKF_AD_PKTTYPE and code0 & 0x07 == 0x00  # BPF_LD
    assert code1 & 0x07 == 0x05 and k1 == PACKET_OUTGOING  # BPF_JMP ... jeq #4
    assert program[1 + 1 + jt1] == (6, 0, 0, 0)  # the "true" branch returns 0: dropped


def test_a_bad_filter_is_a_config_error() -> None:
    from l4kit.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot compile the BPF filter"):
        compile_bpf("tcp and and", "lo")


def test_sniffed_objects_are_truthy_and_labelable() -> None:
    # Scapy's DefaultSession drops falsy results and sniff() sets .sniffed_on on each.
    frame = CapturedFrame(b"\x00" * 54, 1.0, True, False)
    for item in (frame, TIMER_DUE):
        assert item
        item.sniffed_on = "socket0"


def test_without_libpcap_and_tcpdump_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import l4kit.live.capture as capture
    from l4kit.errors import ConfigError

    def no_libpcap(_text: str, _iface: str) -> list[tuple[int, int, int, int]]:
        raise ImportError("libpcap is not available")

    monkeypatch.setattr(capture, "_compile_with_scapy", no_libpcap)
    if shutil.which("tcpdump"):
        # libpcap missing for Scapy: tcpdump -ddd does the job.
        assert capture.compile_bpf("tcp", "lo") == compile_with_tcpdump("tcp")
    monkeypatch.setattr(capture.shutil, "which", lambda _name: None)
    with pytest.raises(
        ConfigError, match=r"neither libpcap \(for Scapy\) nor tcpdump.*apt-get install tcpdump"
    ):
        capture.compile_bpf("tcp", "lo")

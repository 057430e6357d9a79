"""``struct tcp_info`` (and TCP_CC_INFO, SO_MEMINFO) as the variables a script's
``%{ python }%`` blocks read: ``tcpi_snd_cwnd``, ``tcpi_rto``, ``TCP_ESTABLISHED``...

The layout is Linux's (``include/uapi/linux/tcp.h``); a kernel that returns a
shorter structure leaves the newer fields at 0.
"""

from __future__ import annotations

import struct
from typing import Final

from l4kit.drill.script.symbols import TCP_STATES

# The constants packetdrill defines beside the values, for comparisons in code blocks.
CONSTANTS: Final[dict[str, int]] = {
    **TCP_STATES,
    "TCP_CA_Open": 0,
    "TCP_CA_Disorder": 1,
    "TCP_CA_CWR": 2,
    "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
    "TCPI_OPT_TIMESTAMPS": 1,
    "TCPI_OPT_SACK": 2,
    "TCPI_OPT_WSCALE": 4,
    "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16,
    "TCPI_OPT_SYN_DATA": 32,
    "TCPI_OPT_USEC_TS": 64,
    "TCPI_OPT_TFO_CHILD": 128,
}

_LAYOUT: Final = (
    ("B", "tcpi_state"),
    ("B", "tcpi_ca_state"),
    ("B", "tcpi_retransmits"),
    ("B", "tcpi_probes"),
    ("B", "tcpi_backoff"),
    ("B", "tcpi_options"),
    ("B", "_wscale"),
    ("B", "_app_limited"),
    ("I", "tcpi_rto"),
    ("I", "tcpi_ato"),
    ("I", "tcpi_snd_mss"),
    ("I", "tcpi_rcv_mss"),
    ("I", "tcpi_unacked"),
    ("I", "tcpi_sacked"),
    ("I", "tcpi_lost"),
    ("I", "tcpi_retrans"),
    ("I", "tcpi_fackets"),
    ("I", "tcpi_last_data_sent"),
    ("I", "tcpi_last_ack_sent"),
    ("I", "tcpi_last_data_recv"),
    ("I", "tcpi_last_ack_recv"),
    ("I", "tcpi_pmtu"),
    ("I", "tcpi_rcv_ssthresh"),
    ("I", "tcpi_rtt"),
    ("I", "tcpi_rttvar"),
    ("I", "tcpi_snd_ssthresh"),
    ("I", "tcpi_snd_cwnd"),
    ("I", "tcpi_advmss"),
    ("I", "tcpi_reordering"),
    ("I", "tcpi_rcv_rtt"),
    ("I", "tcpi_rcv_space"),
    ("I", "tcpi_total_retrans"),
    ("Q", "tcpi_pacing_rate"),
    ("Q", "tcpi_max_pacing_rate"),
    ("Q", "tcpi_bytes_acked"),
    ("Q", "tcpi_bytes_received"),
    ("I", "tcpi_segs_out"),
    ("I", "tcpi_segs_in"),
    ("I", "tcpi_notsent_bytes"),
    ("I", "tcpi_min_rtt"),
    ("I", "tcpi_data_segs_in"),
    ("I", "tcpi_data_segs_out"),
    ("Q", "tcpi_delivery_rate"),
    ("Q", "tcpi_busy_time"),
    ("Q", "tcpi_rwnd_limited"),
    ("Q", "tcpi_sndbuf_limited"),
    ("I", "tcpi_delivered"),
    ("I", "tcpi_delivered_ce"),
    ("Q", "tcpi_bytes_sent"),
    ("Q", "tcpi_bytes_retrans"),
    ("I", "tcpi_dsack_dups"),
    ("I", "tcpi_reord_seen"),
    ("I", "tcpi_rcv_ooopack"),
    ("I", "tcpi_snd_wnd"),
    ("I", "tcpi_rcv_wnd"),
    ("I", "tcpi_rehash"),
    ("H", "tcpi_total_rto"),
    ("H", "tcpi_total_rto_recoveries"),
    ("I", "tcpi_total_rto_time"),
    ("I", "tcpi_received_ce"),
    ("I", "tcpi_delivered_e1_bytes"),
    ("I", "tcpi_delivered_e0_bytes"),
    ("I", "tcpi_delivered_ce_bytes"),
    ("I", "tcpi_received_e1_bytes"),
    ("I", "tcpi_received_e0_bytes"),
    ("I", "tcpi_received_ce_bytes"),
    ("I", "_ecn"),
)
_STRUCT: Final = struct.Struct("=" + "".join(code for code, _ in _LAYOUT))


def decode_tcp_info(data: bytes) -> dict[str, int]:
    """The ``tcpi_*`` values in ``data`` (what getsockopt TCP_INFO returned), with the
    constants scripts compare them with."""
    padded = data[: _STRUCT.size].ljust(_STRUCT.size, b"\0")
    raw = dict(zip((name for _, name in _LAYOUT), _STRUCT.unpack(padded), strict=True))
    values = {name: number for name, number in raw.items() if not name.startswith("_")}
    values["tcpi_snd_wscale"] = raw["_wscale"] & 0x0F
    values["tcpi_rcv_wscale"] = raw["_wscale"] >> 4
    values["tcpi_delivery_rate_app_limited"] = raw["_app_limited"] & 0x1
    values["tcpi_fastopen_client_fail"] = (raw["_app_limited"] >> 1) & 0x3
    values["tcpi_ecn_mode"] = raw["_ecn"] & 0x3
    values["tcpi_accecn_opt_seen"] = (raw["_ecn"] >> 2) & 0x3
    values["tcpi_accecn_fail_mode"] = (raw["_ecn"] >> 4) & 0xF
    values["tcpi_options2"] = raw["_ecn"] >> 8
    return {**CONSTANTS, **values}


def decode_cc_info(data: bytes) -> dict[str, int]:
    """TCP_CC_INFO read as each algorithm's structure, as packetdrill offers them."""
    values: dict[str, int] = {}
    if len(data) >= 20:
        bw_lo, bw_hi, min_rtt, pacing_gain, cwnd_gain = struct.unpack_from("=5I", data)
        values.update(
            bbr_bw_lo=bw_lo,
            bbr_bw_hi=bw_hi,
            bbr_bw=(bw_hi << 32) + bw_lo,
            bbr_min_rtt=min_rtt,
            bbr_pacing_gain=pacing_gain,
            bbr_cwnd_gain=cwnd_gain,
        )
    if len(data) >= 16:
        enabled, ce_state, alpha, ab_ecn, ab_tot = struct.unpack_from("=HHIII", data)
        values.update(
            dctcp_enabled=enabled,
            dctcp_ce_state=ce_state,
            dctcp_alpha=alpha,
            dctcp_ab_ecn=ab_ecn,
            dctcp_ab_tot=ab_tot,
        )
        v_enabled, rttcnt, rtt, minrtt = struct.unpack_from("=4I", data)
        values.update(tcpv_enabled=v_enabled, tcpv_rttcnt=rttcnt, tcp_rtt=rtt, tcp_minrtt=minrtt)
    return values


_MEMINFO: Final = (
    "SK_MEMINFO_RMEM_ALLOC",
    "SK_MEMINFO_RCVBUF",
    "SK_MEMINFO_WMEM_ALLOC",
    "SK_MEMINFO_SNDBUF",
    "SK_MEMINFO_FWD_ALLOC",
    "SK_MEMINFO_WMEM_QUEUED",
    "SK_MEMINFO_OPTMEM",
    "SK_MEMINFO_BACKLOG",
    "SK_MEMINFO_DROPS",
)


def decode_meminfo(data: bytes) -> dict[str, int]:
    count = min(len(data) // 4, len(_MEMINFO))
    return dict(zip(_MEMINFO[:count], struct.unpack_from(f"={count}I", data), strict=True))

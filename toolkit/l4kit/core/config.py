"""The configuration of one listening endpoint: every bound and timer of the core.

No field is read from the environment; the drivers build a :class:`StackConfig`
(or a :class:`ListenerConfig`, which adds the one address a listener answers) from
their options. It lives apart from the listener and the connection, which both
read it, so that neither imports the other for it.

Default timer values (all in :class:`ListenerConfig`, all overridable):

============================  =========  ===================================================
initial RTO                   1 s        RFC 6298 §2.1
minimum / maximum RTO         1 s / 60 s RFC 6298 §2.4 ("SHOULD be rounded up to 1 second"),
                                         §2.5 (a maximum "of at least 60 seconds")
SYN retransmissions           6          Linux ``tcp_syn_retries``: connect() gives up with
                                         ETIMEDOUT after 1+2+4+8+16+32+64 = 127 s
SYN-ACK retransmissions       5          Linux ``tcp_synack_retries``: gives up after
                                         1+2+4+8+16+32 = 63 s
data / FIN retransmissions    5          the same 63 s (Linux's 15 tries take ~15 minutes,
                                         too long for a responder people experiment on)
TIME-WAIT                     60 s       Linux ``TCP_TIMEWAIT_LEN``; RFC 9293's 2*MSL is 4
                                         minutes, but TIME-WAIT only has to outlive the
                                         stragglers of one connection, and a new SYN may
                                         reopen the 4-tuple early anyway (RFC 9293 §3.6.1)
FIN-WAIT-2                    60 s       Linux ``tcp_fin_timeout``
idle (nothing received)       60 s       a silent client is closed with FIN, and reset if it
                                         has not finished 60 s later; a peer that holds a
                                         zero window likewise gives the slot back
zero-window probes            1 s, x2    first after one RTO, doubling to the maximum RTO
                                         (RFC 9293 §3.8.6.1); bounded by the idle timeout
SYN cookie period             64 s       Linux's counter; a cookie is good for 64-128 s
challenge ACKs                10 / s     per connection (RFC 5961 §7); shared with the ACKs
                                         that answer out-of-window segments
============================  =========  ===================================================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from l4kit.errors import ConfigError
from l4kit.wire.segment import Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class StackConfig:
    """Every bound and timer of one TCP endpoint (:class:`~l4kit.core.stack.Stack`);
    no field is read from the environment."""

    max_connections: int = 1024  # synchronized + half-open connections held at once
    max_half_open: int = 256  # SYN-RECEIVED entries before SYN cookies take over
    rst_unknown: bool = True  # answer a non-SYN for an unknown 4-tuple with RST (RFC 9293)
    mss: int = 1460  # MSS advertised in our SYN and SYN-ACK (a socket may choose its own)
    window: int = 65535  # receive buffer, the most advertised (above 65535: window scaling)
    window_scale: bool = True  # offer and accept RFC 7323 window scaling
    timestamps: bool = True  # offer and accept RFC 7323 timestamps (RTTM, PAWS)
    sack: bool = True  # offer and accept RFC 2018 selective acknowledgments
    secret: bytes = b""  # key for RFC 6528 ISNs and SYN cookies; empty = drivers must supply one
    # the module docstring says why each default below was chosen
    syn_cookies: bool = True  # answer SYNs statelessly when the half-open table is full (RFC 4987)
    syn_cookie_period: float = 64.0  # seconds per cookie counter step; a cookie lives 1-2 periods
    max_time_wait: int = 4096  # TIME-WAIT records kept (outside max_connections)
    time_wait_timeout: float = 60.0  # seconds in TIME-WAIT
    initial_rto: float = 1.0  # RFC 6298 §2.1
    min_rto: float = 1.0  # RFC 6298 §2.4
    max_rto: float = 60.0  # RFC 6298 §2.5
    syn_retries: int = 6  # SYN retransmissions of a connect before ETIMEDOUT (Linux tcp_syn_retries)
    syn_ack_retries: int = 5  # SYN-ACK retransmissions before the half-open connection is dropped
    max_retransmissions: int = 5  # data / FIN retransmissions before the connection is reset
    idle_timeout: float | None = 60.0  # FIN after this long without progress, RST as long again; None: never
    fin_wait_2_timeout: float = 60.0  # reset a FIN-WAIT-2 whose peer never sends its FIN
    max_out_of_order_bytes: int = 65535  # per connection
    max_out_of_order_segments: int = 64  # disjoint ranges held per connection
    challenge_acks_per_second: int = 10  # per connection (RFC 5961 §7)
    max_send_buffer: int = 1 << 20  # octets the application may queue; send() takes no more
    ephemeral_ports: tuple[int, int] = (32768, 60999)  # connect()'s local ports (Linux ip_local_port_range)

    def __post_init__(self) -> None:
        _check(self.max_connections >= 1, "max_connections must be at least 1")
        _check(self.max_half_open >= 1, "max_half_open must be at least 1")
        _check(88 <= self.mss <= 65535, f"mss {self.mss} is outside 88-65535")
        most = (65535 << 14) if self.window_scale else 65535
        _check(1 <= self.window <= most, f"window {self.window} is outside 1-{most}")
        _check(self.syn_cookie_period > 0, "syn_cookie_period must be positive")
        _check(self.max_time_wait >= 0, "max_time_wait must not be negative")
        _check(self.time_wait_timeout >= 0, "time_wait_timeout must not be negative")
        _check(0 < self.min_rto <= self.max_rto, "need 0 < min_rto <= max_rto")
        _check(self.initial_rto > 0, "initial_rto must be positive")
        _check(
            self.syn_ack_retries >= 0 and self.max_retransmissions >= 0 and self.syn_retries >= 0,
            "retry counts must not be negative",
        )
        _check(self.idle_timeout is None or self.idle_timeout > 0, "idle_timeout must be positive (or None)")
        _check(self.fin_wait_2_timeout > 0, "fin_wait_2_timeout must be positive")
        _check(self.max_out_of_order_bytes >= 0, "max_out_of_order_bytes must not be negative")
        _check(self.max_out_of_order_segments >= 0, "max_out_of_order_segments must not be negative")
        _check(self.challenge_acks_per_second >= 0, "challenge_acks_per_second must not be negative")
        _check(self.max_send_buffer >= 1, "max_send_buffer must be positive")
        low, high = self.ephemeral_ports
        _check(1 <= low <= high <= 65535, f"ephemeral_ports {low}-{high} is not a range within 1-65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig(StackConfig):
    """A :class:`StackConfig` and the one address and port a
    :class:`~l4kit.core.listener.Listener` answers."""

    local: Endpoint  # the address and port answered; anything else is dropped NOT_FOR_US

    def __post_init__(self) -> None:
        try:
            address = ipaddress.ip_address(self.local.addr)
        except ValueError:
            raise ConfigError(f"not an IP address: {self.local.addr!r}") from None
        if not 1 <= self.local.port <= 65535:
            raise ConfigError(f"port {self.local.port} is outside 1-65535")
        object.__setattr__(self, "local", Endpoint(str(address), self.local.port))  # canonical text
        StackConfig.__post_init__(self)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"listener: {message}")

#!/bin/sh
# Sysctls the project's drill scripts rely on, set in the run's own network
# namespace (the host is never touched): every option on, a receive buffer that
# gives a window scale of 8, no metrics carried over, and no rate limit on the
# ACKs sent for invalid segments (the challenge ACKs of RFC 5961).
ip tcp_metrics flush all > /dev/null 2>&1
sysctl -q -w net.ipv4.tcp_timestamps=1 net.ipv4.tcp_sack=1 net.ipv4.tcp_window_scaling=1
sysctl -q -w net.ipv4.tcp_rmem="4096 540000 15728640" net.ipv4.tcp_wmem="4096 16384 4194304"
sysctl -q -w net.ipv4.tcp_syn_retries=6 net.ipv4.tcp_synack_retries=5 net.ipv4.tcp_ecn=0
sysctl -q -w net.ipv4.tcp_no_metrics_save=1 net.ipv4.tcp_slow_start_after_idle=0 net.ipv4.tcp_invalid_ratelimit=0
exit 0

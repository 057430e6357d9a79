"""Pre-flight checks: kernel listeners from /proc/net/tcp{,6}, interfaces, addresses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from l4kit.errors import ConfigError
from l4kit.live import preflight

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def proc_net(tmp_path: Path, tcp: list[str], tcp6: list[str] = ()) -> Path:  # type: ignore[assignment]
    (tmp_path / "tcp").write_text(HEADER + "".join(line + "\n" for line in tcp))
    (tmp_path / "tcp6").write_text(HEADER + "".join(line + "\n" for line in tcp6))
    return tmp_path


def test_decodes_proc_net_tcp_lines(tmp_path: Path) -> None:
    # 0100007F:22B8 is 127.0.0.1:8888 (address in little-endian word order); 0A = LISTEN, 01 = ESTABLISHED.
    path = proc_net(
        tmp_path,
        [
            "   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
            "   1: 0100007F:22B8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
            "   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1",
        ],
        [
            "   0: 00000000000000000000000001000000:22B8 00000000000000000000000000000000:0000 0A"
            " 0 0 0 0 0 0 4 1"
        ],
    )
    assert preflight.kernel_listeners(8888, path) == ["127.0.0.1:8888", "::1:8888"]
    assert preflight.kernel_listeners(80, path) == ["0.0.0.0:80"]
    assert preflight.kernel_listeners(443, path) == []


def test_warning_only_for_the_same_address_or_a_wildcard(tmp_path: Path) -> None:
    path = proc_net(
        tmp_path,
        [
            "   0: 0200007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
            "   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1",
        ],
    )
    assert preflight.kernel_listener_warning("127.0.0.1", 8888, path) is None  # 127.0.0.2 listens, not .1
    warning = preflight.kernel_listener_warning("127.0.0.2", 8888, path)
    assert warning is not None and "127.0.0.2:8888" in warning
    warning = preflight.kernel_listener_warning("127.0.0.1", 80, path)
    assert warning is not None and "0.0.0.0:80" in warning


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_finds_a_real_kernel_listener(family: int, host: str) -> None:
    # Cross-check with the kernel: a socket this test opens must show up.
    try:
        server = socket.socket(family, socket.SOCK_STREAM)
        server.bind((host, 0))
    except OSError as exc:  # pragma: no cover - a host without IPv6
        pytest.skip(f"cannot bind {host}: {exc}")
    with server:
        port = server.getsockname()[1]
        assert not any(item.endswith(f":{port}") for item in preflight.kernel_listeners(port))
        server.listen()
        assert f"{host}:{port}" in preflight.kernel_listeners(port)
        assert preflight.kernel_listener_warning(host, port) is not None


def test_unknown_interface_lists_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match=r"no interface named 'nosuch0'.*\blo\b"):
        preflight.require_interface("nosuch0")
    assert preflight.require_interface("lo") == socket.if_nametoindex("lo")


def test_loopback_link_info_and_addresses() -> None:
    info = preflight.link_info("lo")
    assert info.loopback
    addresses = {a.address for a in preflight.interface_addresses("lo")}
    assert "127.0.0.1" in addresses


def test_address_must_be_on_the_interface() -> None:
    preflight.require_address_on_interface("127.0.0.1", "lo", loopback=True)
    # The whole of 127.0.0.0/8 is this host (RFC 1122 §3.2.1.3) when it is on lo.
    preflight.require_address_on_interface("127.0.0.2", "lo", loopback=True)
    with pytest.raises(
        ConfigError, match=r"address 127\.0\.0\.2 is not on interface lo \(it has 127\.0\.0\.1/8"
    ):
        preflight.require_address_on_interface("127.0.0.2", "lo", loopback=False)
    with pytest.raises(ConfigError, match=r"192\.0\.2\.1 is not on interface lo"):
        preflight.require_address_on_interface("192.0.2.1", "lo", loopback=True)
    with pytest.raises(ConfigError, match="not an IP address"):
        preflight.require_address_on_interface("localhost", "lo", loopback=True)

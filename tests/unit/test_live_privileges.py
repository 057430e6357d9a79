"""Capabilities from /proc/<pid>/status, and the one-line error that names what is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from l4kit.errors import PrivilegeError
from l4kit.live.privileges import (
    Capability,
    effective_capabilities,
    missing_capabilities,
    parse_effective_capabilities,
    require_capabilities,
    require_live_privileges,
)

ROOT_STATUS = (
    "Name:\tpython\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n"
)
NOBODY_STATUS = "Name:\tpython\nCapEff:\t0000000000000000\n"
# CAP_NET_RAW (bit 13) only: 0x2000.
RAW_ONLY_STATUS = "CapEff:\t0000000000002000\n"


def test_capability_numbers_match_linux_capability_h() -> None:
    assert (Capability.CAP_NET_ADMIN, Capability.CAP_NET_RAW, Capability.CAP_SYS_ADMIN) == (12, 13, 21)


@pytest.mark.parametrize(
    ("status", "mask"),
    [(ROOT_STATUS, 0x1FFFFFFFFFF), (NOBODY_STATUS, 0), (RAW_ONLY_STATUS, 0x2000), ("Name:\tx\n", 0)],
)
def test_parse_effective_capabilities(status: str, mask: int) -> None:
    assert parse_effective_capabilities(status) == mask


def test_missing_capabilities_keeps_the_order_asked() -> None:
    needed = [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN]
    assert missing_capabilities(0, needed) == needed
    assert missing_capabilities(0x2000, needed) == [Capability.CAP_NET_ADMIN]
    assert missing_capabilities(0x3000, needed) == []


def test_message_for_nothing_names_both_capabilities_and_what_they_are_for() -> None:
    with pytest.raises(PrivilegeError) as info:
        require_capabilities("l4kit respond", [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN], mask=0)
    assert str(info.value) == (
        "l4kit respond needs CAP_NET_RAW (raw packet socket) and CAP_NET_ADMIN (firewall rule, sysctls); "
        "run it as root or with sudo"
    )
    assert info.value.exit_code == 1


def test_message_names_only_what_is_missing() -> None:
    with pytest.raises(PrivilegeError) as info:
        require_capabilities("l4kit respond", [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN], mask=0x2000)
    assert "CAP_NET_ADMIN" in str(info.value)
    assert "CAP_NET_RAW" not in str(info.value)


def test_three_missing_are_listed_with_commas() -> None:
    with pytest.raises(
        PrivilegeError, match=r"needs CAP_NET_RAW \(.*\), CAP_NET_ADMIN \(.*\) and CAP_SYS_ADMIN"
    ):
        require_capabilities(
            "l4kit demo", [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN, Capability.CAP_SYS_ADMIN], mask=0
        )


def test_effective_capabilities_reads_a_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(RAW_ONLY_STATUS)
    assert effective_capabilities(status) == 0x2000
    assert effective_capabilities(tmp_path / "absent") == 0


def test_this_process_agrees_with_the_kernel_about_root() -> None:
    # Cross-check with the kernel's own answer: root normally has the full set.
    mask = effective_capabilities()
    if os.geteuid() == 0:
        assert mask >> 13 & 1 and mask >> 12 & 1
    if mask == 0:
        with pytest.raises(PrivilegeError):
            require_live_privileges()


def test_no_firewall_needs_only_the_packet_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    import l4kit.live.privileges as privileges

    monkeypatch.setattr(privileges, "effective_capabilities", lambda: 0x2000)
    require_live_privileges(firewall=False)  # CAP_NET_RAW is enough
    with pytest.raises(PrivilegeError, match="CAP_NET_ADMIN"):
        require_live_privileges(firewall=True)
    with pytest.raises(PrivilegeError, match="CAP_SYS_ADMIN"):
        require_live_privileges(firewall=False, namespace=True)

"""l4kit.safefile: how files named by a user are opened while l4kit runs as root.

Every test works in its own temporary directory. Those that change owners need root
(the test suite runs as root on the development machines and in CI).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

import l4kit.safefile as safefile
from l4kit.errors import ConfigError
from l4kit.safefile import check_new_file, open_new_file

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes file owners: needs root")


def snapshot(path: Path) -> tuple[bytes, int, int, int]:
    info = os.stat(path)
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def refused(path: Path, **kw: object) -> str:
    """The one-line refusal, from the check and from the open alike."""
    with pytest.raises(ConfigError) as checked:
        check_new_file(path, **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as opened:
        open_new_file(path, **kw)  # type: ignore[arg-type]
    assert str(checked.value) == str(opened.value)
    assert "\n" not in str(opened.value)
    return str(opened.value)


def test_a_new_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with open_new_file(tmp_path / "new.pcap") as out:
            out.write(b"data")
    finally:
        os.umask(old)
    assert snapshot(tmp_path / "new.pcap")[:2] == (b"data", 0o600)


def test_a_symbolic_link_is_refused_and_its_target_left_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_bytes(b"important = true\n")
    target.chmod(0o644)
    before = snapshot(target)
    link = tmp_path / "evil.pcap"
    link.symlink_to(target)
    message = refused(link)
    assert message == f"--pcap {link} is a symbolic link (l4kit runs as root and does not follow links: " \
        "give the file's own path); refusing to write to it"  # fmt: skip
    assert refused(link, overwrite=True) == message  # --force does not follow links either
    assert snapshot(target) == before


def test_a_dangling_link_is_refused_and_nothing_is_created_where_it_points(tmp_path: Path) -> None:
    link = tmp_path / "evil.pcap"
    link.symlink_to(tmp_path / "would-be-created")
    assert "symbolic link" in refused(link, overwrite=True)
    assert not (tmp_path / "would-be-created").exists()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (os.mkfifo, "is a FIFO (named pipe)"),
    ],
    ids=["directory", "fifo"],
)
def test_a_directory_or_a_fifo_is_refused(tmp_path: Path, make: object, words: str) -> None:
    path = tmp_path / "capture"
    make(path)  # type: ignore[operator]
    assert words in refused(path, overwrite=True)


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    # Opening a FIFO for writing blocks until a reader comes; the refusal must not.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(refused(fifo, overwrite=True)), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert outcome and "FIFO" in outcome[0]


def test_a_device_is_refused() -> None:
    assert "is a device" in refused(Path("/dev/null"), overwrite=True)


def test_an_existing_file_is_refused_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    path.write_bytes(b"old")
    before = snapshot(path)
    assert refused(path) == (
        f"--pcap {path} exists; refusing to overwrite it (--force overwrites it, keeping its mode and owner)"
    )
    assert snapshot(path) == before


@needs_root
def test_with_overwrite_an_existing_file_is_rewritten_in_place_mode_and_owner_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    path.write_bytes(b"old contents, longer than the new")
    path.chmod(0o640)
    os.chown(path, 65534, 65533)
    inode = os.stat(path).st_ino
    with open_new_file(path, overwrite=True) as out:
        out.write(b"new")
    assert snapshot(path) == (b"new", 0o640, 65534, 65533)
    assert os.stat(path).st_ino == inode


def test_a_file_with_another_hard_link_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.write_bytes(b"keep me")
    path = tmp_path / "capture.pcap"
    os.link(other, path)
    assert "has 2 hard links" in refused(path, overwrite=True)
    assert other.read_bytes() == b"keep me"


@needs_root
def test_under_sudo_a_new_file_belongs_to_the_user_who_ran_sudo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_UID", "65534")
    monkeypatch.setenv("SUDO_GID", "65533")
    with open_new_file(tmp_path / "mine.pcap") as out:
        out.write(b"x")
    assert snapshot(tmp_path / "mine.pcap")[1:] == (0o600, 65534, 65533)


@needs_root
def test_without_sudo_a_new_file_is_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.delenv("SUDO_GID", raising=False)
    with open_new_file(tmp_path / "root.pcap"):
        pass
    assert snapshot(tmp_path / "root.pcap")[1:] == (0o600, 0, 0)


def test_standard_output_is_refused(tmp_path: Path) -> None:
    assert "standard output is not supported" in refused(Path("-"))


def test_a_link_swapped_in_after_the_check_is_caught_by_the_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race a local user would try: the path is a harmless file when l4kit looks at it,
    # and a link by the time it opens it. O_NOFOLLOW refuses the link; the next look sees it.
    target = tmp_path / "config"
    target.write_bytes(b"important")
    path = tmp_path / "capture.pcap"
    path.write_bytes(b"harmless")
    real_lstat = os.lstat
    looks: list[int] = []

    def lstat_then_swap(name: object) -> os.stat_result:
        info = real_lstat(name)  # type: ignore[arg-type]
        if not looks:
            path.unlink()
            path.symlink_to(target)
        looks.append(1)
        return info

    monkeypatch.setattr(safefile.os, "lstat", lstat_then_swap)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        open_new_file(path, overwrite=True)
    assert target.read_bytes() == b"important"
    assert len(looks) == 2

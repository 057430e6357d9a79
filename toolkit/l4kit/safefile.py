"""Files that l4kit writes while it runs as root: opened so that no one can redirect them.

``respond`` runs as root for its whole life, so a path a user gives it (``--pcap
FILE``) is written with root's rights. Opened naively, a symbolic link planted at that
path (in /tmp, say, where ``fs.protected_symlinks`` may be 0) would make root overwrite
the link's target, and a FIFO would block the open for ever. :func:`open_new_file` is the
one way l4kit opens such a file; every command that writes a file a user names uses it.

The rules, checked on the path itself (``lstat``) and again on what was opened
(``fstat``, so that a path swapped in between is caught):

- Never through a symbolic link in the last component (``O_NOFOLLOW``); a link, a
  directory, a device, a FIFO or a socket is refused with one line. Links in the
  directories above are the user's own choice and are followed.
- A new file is created exclusively (``O_CREAT | O_EXCL``), mode 0600 whatever the
  umask (a capture holds every payload), and, when l4kit runs through ``sudo``, owned by
  the user who ran sudo (``SUDO_UID``/``SUDO_GID``), who can then read it without root.
- An existing file is refused unless ``overwrite`` (``--force``) is given; then it is
  truncated in place, its mode and owner kept as they were, and only if it has no other
  hard link (writing through a second name would be writing to a file the user did not
  name).
- Files under l4kit's own state directory are not written through here: they stay root's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from l4kit.errors import ConfigError

NEW_FILE_MODE = 0o600
_OPEN_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link (l4kit runs as root and does not follow links: give the file's own path)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_new_file(path: Path, *, overwrite: bool = False, option: str = "--pcap") -> None:
    """What :func:`open_new_file` would refuse, without opening anything: one
    :class:`~l4kit.errors.ConfigError` line, raised before any other work starts."""
    _refuse_standard_output(path, option)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror}") from None
    _refuse_existing(path, info, overwrite=overwrite, option=option)


def _refuse_standard_output(path: Path, option: str) -> None:
    if str(path) == "-":
        raise ConfigError(f"{option} -: writing to standard output is not supported; give a file name")


def _refuse_existing(path: Path, info: os.stat_result, *, overwrite: bool, option: str) -> None:
    kind = _kind(info.st_mode)
    if kind is not None:
        raise ConfigError(f"{option} {path} is {kind}; refusing to write to it")
    if not overwrite:
        raise ConfigError(
            f"{option} {path} exists; refusing to overwrite it "
            "(--force overwrites it, keeping its mode and owner)"
        )
    if info.st_nlink > 1:
        raise ConfigError(
            f"{option} {path} has {info.st_nlink} hard links; refusing to write through another name of it"
        )


def open_new_file(path: Path, *, overwrite: bool = False, option: str = "--pcap") -> BinaryIO:
    """Open ``path`` for writing under the rules of this module; a refusal or a failure
    is one :class:`~l4kit.errors.ConfigError` line naming ``option``."""
    _refuse_standard_output(path, option)
    for _attempt in range(3):  # the path may change under us; each try starts afresh
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise ConfigError(f"{option} {path}: {exc.strerror}") from None
        if info is None:
            fd = _create(path, option)
            if fd is None:
                continue  # something appeared at the path: look again
        else:
            _refuse_existing(path, info, overwrite=overwrite, option=option)
            fd = _open_existing(path, info, option)
            if fd is None:
                continue
        return os.fdopen(fd, "wb")
    raise ConfigError(f"{option} {path} keeps changing while l4kit opens it; refusing to write to it")


def _create(path: Path, option: str) -> int | None:
    try:
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    except FileExistsError:
        return None
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create it: {exc.strerror}") from None
    try:
        _blocking(fd)
        os.fchmod(fd, NEW_FILE_MODE)  # whatever the umask
        owner = sudo_owner()
        if owner is not None:
            os.fchown(fd, *owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_existing(path: Path, seen: os.stat_result, option: str) -> int | None:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # it became a link since lstat
            return None
        raise ConfigError(f"{option} {path}: cannot open it: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        same = (info.st_dev, info.st_ino) == (seen.st_dev, seen.st_ino)
        if same:
            _refuse_existing(path, info, overwrite=True, option=option)
            _blocking(fd)
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    if not same:  # replaced since lstat: look again
        os.close(fd)
        return None
    return fd


def _blocking(fd: int) -> None:
    """Clear O_NONBLOCK (set only so that the open itself never waits)."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)


def sudo_owner() -> tuple[int, int] | None:
    """The user and group who ran ``sudo`` (``SUDO_UID``/``SUDO_GID``), when l4kit runs
    as root through it; None otherwise (the file stays the running user's)."""
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() != 0 or not uid.isdigit() or not gid.isdigit():
        return None
    return int(uid), int(gid)

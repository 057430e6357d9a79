"""The C library's system calls, as the kernel target makes them: the arguments a
script gives (a NULL buffer, any flags, an optlen that is not 4) go to the kernel
as they are, and every call answers ``(result, errno)``.

Python's ``socket`` module would refuse some of those arguments before the
kernel saw them, and raises instead of returning -1. ctypes releases the GIL
around each call, so a blocking call in its own thread does not stop the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import platform
import struct
from typing import Final

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AF_INET: Final = 2
AF_INET6: Final = 10


class IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class PollFd(ctypes.Structure):
    _fields_ = (("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short))


if platform.machine() in ("x86_64", "AMD64"):

    class EpollEvent(ctypes.Structure):
        # Packed on x86-64 (the kernel's __EPOLL_PACKED).
        _pack_ = 1
        _fields_ = (("events", ctypes.c_uint32), ("data", ctypes.c_uint64))

else:

    class EpollEvent(ctypes.Structure):  # type: ignore[no-redef]
        _fields_ = (("events", ctypes.c_uint32), ("data", ctypes.c_uint64))


def _proto(name: str, restype: type, *argtypes: type) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    func = getattr(_libc, name)
    func.restype = restype
    func.argtypes = argtypes
    return func


_c_int = ctypes.c_int
_c_void_p = ctypes.c_void_p
_c_size_t = ctypes.c_size_t
_c_ssize_t = ctypes.c_ssize_t
_socklen_p = ctypes.POINTER(ctypes.c_uint32)

_socket = _proto("socket", _c_int, _c_int, _c_int, _c_int)
_bind = _proto("bind", _c_int, _c_int, _c_void_p, ctypes.c_uint32)
_listen = _proto("listen", _c_int, _c_int, _c_int)
_accept = _proto("accept", _c_int, _c_int, _c_void_p, _socklen_p)
_connect = _proto("connect", _c_int, _c_int, _c_void_p, ctypes.c_uint32)
_read = _proto("read", _c_ssize_t, _c_int, _c_void_p, _c_size_t)
_write = _proto("write", _c_ssize_t, _c_int, _c_void_p, _c_size_t)
_readv = _proto("readv", _c_ssize_t, _c_int, ctypes.POINTER(IoVec), _c_int)
_writev = _proto("writev", _c_ssize_t, _c_int, ctypes.POINTER(IoVec), _c_int)
_recv = _proto("recv", _c_ssize_t, _c_int, _c_void_p, _c_size_t, _c_int)
_send = _proto("send", _c_ssize_t, _c_int, _c_void_p, _c_size_t, _c_int)
_recvfrom = _proto("recvfrom", _c_ssize_t, _c_int, _c_void_p, _c_size_t, _c_int, _c_void_p, _socklen_p)
_sendto = _proto("sendto", _c_ssize_t, _c_int, _c_void_p, _c_size_t, _c_int, _c_void_p, ctypes.c_uint32)
_recvmsg = _proto("recvmsg", _c_ssize_t, _c_int, ctypes.POINTER(MsgHdr), _c_int)
_sendmsg = _proto("sendmsg", _c_ssize_t, _c_int, ctypes.POINTER(MsgHdr), _c_int)
_close = _proto("close", _c_int, _c_int)
_shutdown = _proto("shutdown", _c_int, _c_int, _c_int)
_getsockopt = _proto("getsockopt", _c_int, _c_int, _c_int, _c_int, _c_void_p, _socklen_p)
_setsockopt = _proto("setsockopt", _c_int, _c_int, _c_int, _c_int, _c_void_p, ctypes.c_uint32)
_fcntl = _proto("fcntl", _c_int, _c_int, _c_int, ctypes.c_long)
_ioctl = _proto("ioctl", _c_int, _c_int, ctypes.c_ulong, _c_void_p)
_poll = _proto("poll", _c_int, ctypes.POINTER(PollFd), ctypes.c_ulong, _c_int)
_epoll_create = _proto("epoll_create", _c_int, _c_int)
_epoll_ctl = _proto("epoll_ctl", _c_int, _c_int, _c_int, _c_int, ctypes.POINTER(EpollEvent))
_epoll_wait = _proto("epoll_wait", _c_int, _c_int, ctypes.POINTER(EpollEvent), _c_int, _c_int)
_pipe = _proto("pipe", _c_int, ctypes.POINTER(ctypes.c_int * 2))
_splice = _proto("splice", _c_ssize_t, _c_int, _c_void_p, _c_int, _c_void_p, _c_size_t, ctypes.c_uint)
_sendfile = _proto("sendfile", _c_ssize_t, _c_int, _c_int, _c_void_p, _c_size_t)
_open = _proto("open", _c_int, ctypes.c_char_p, _c_int, _c_int)
_unshare = _proto("unshare", _c_int, _c_int)
_mount = _proto("mount", _c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, _c_void_p)
_umount2 = _proto("umount2", _c_int, ctypes.c_char_p, _c_int)
_prctl = _proto("prctl", _c_int, _c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


Result = tuple[int, int]


def _done(result: int) -> Result:
    return (result, ctypes.get_errno() if result < 0 else 0)


def buffer(size: int, *, null: bool = False) -> ctypes.Array[ctypes.c_char] | None:
    """A zeroed buffer of ``size`` octets, or ``None`` for a script's NULL (``0``)."""
    return None if null else ctypes.create_string_buffer(max(size, 1))


def sockaddr(ip: str, port: int, family: int | None = None) -> bytes:
    """``struct sockaddr_in`` / ``sockaddr_in6`` for ``ip`` (an IPv4 address in an
    AF_INET6 socket is given as ``::ffff:a.b.c.d``)."""
    address = ipaddress.ip_address(ip)
    if family == AF_INET6 and address.version == 4:
        address = ipaddress.IPv6Address(f"::ffff:{ip}")
    if address.version == 4:
        return struct.pack("=H", AF_INET) + struct.pack("!H", port) + address.packed + bytes(8)
    return struct.pack("=H", AF_INET6) + struct.pack("!HI", port, 0) + address.packed + struct.pack("=I", 0)


def parse_sockaddr(data: bytes) -> tuple[str, int] | None:
    if len(data) < 4:
        return None
    (family,) = struct.unpack_from("=H", data)
    (port,) = struct.unpack_from("!H", data, 2)
    if family == AF_INET and len(data) >= 8:
        return str(ipaddress.IPv4Address(data[4:8])), port
    if family == AF_INET6 and len(data) >= 24:
        address = ipaddress.IPv6Address(data[8:24])
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped), port
        return str(address), port
    return None


def socket(domain: int, type_: int, protocol: int) -> Result:
    return _done(_socket(domain, type_, protocol))


def bind(fd: int, address: bytes) -> Result:
    return _done(_bind(fd, address, len(address)))


def listen(fd: int, backlog: int) -> Result:
    return _done(_listen(fd, backlog))


def accept(fd: int) -> tuple[int, int, tuple[str, int] | None]:
    storage = ctypes.create_string_buffer(128)
    length = ctypes.c_uint32(128)
    result, err = _done(_accept(fd, storage, ctypes.byref(length)))
    peer = parse_sockaddr(storage.raw[: length.value]) if result >= 0 else None
    return result, err, peer


def connect(fd: int, address: bytes) -> Result:
    return _done(_connect(fd, address, len(address)))


def read(fd: int, buf: object, count: int) -> Result:
    return _done(_read(fd, buf, count))


def write(fd: int, buf: object, count: int) -> Result:
    return _done(_write(fd, buf, count))


def _iovecs(lengths: list[int]) -> tuple[ctypes.Array[IoVec], list[ctypes.Array[ctypes.c_char]]]:
    buffers = [ctypes.create_string_buffer(max(n, 1)) for n in lengths]
    array = (IoVec * max(len(lengths), 1))()
    for i, (n, buf) in enumerate(zip(lengths, buffers, strict=True)):
        array[i].iov_base = ctypes.cast(buf, ctypes.c_void_p)
        array[i].iov_len = n
    return array, buffers


def readv(fd: int, lengths: list[int], count: int) -> Result:
    array, keep = _iovecs(lengths)
    result = _done(_readv(fd, array, count))
    del keep
    return result


def writev(fd: int, lengths: list[int], count: int) -> Result:
    array, keep = _iovecs(lengths)
    result = _done(_writev(fd, array, count))
    del keep
    return result


def recv(fd: int, buf: object, count: int, flags: int) -> Result:
    return _done(_recv(fd, buf, count, flags))


def send(fd: int, buf: object, count: int, flags: int) -> Result:
    return _done(_send(fd, buf, count, flags))


def recvfrom(fd: int, buf: object, count: int, flags: int) -> Result:
    storage = ctypes.create_string_buffer(128)
    length = ctypes.c_uint32(128)
    return _done(_recvfrom(fd, buf, count, flags, storage, ctypes.byref(length)))


def sendto(fd: int, buf: object, count: int, flags: int, address: bytes | None) -> Result:
    if address is None:
        return _done(_sendto(fd, buf, count, flags, None, 0))
    return _done(_sendto(fd, buf, count, flags, address, len(address)))


def sendmsg(fd: int, lengths: list[int], address: bytes | None, flags: int, control: bytes = b"") -> Result:
    array, keep = _iovecs(lengths)
    msg = MsgHdr()
    name = ctypes.create_string_buffer(address) if address else None
    if name is not None and address is not None:
        msg.msg_name = ctypes.cast(name, ctypes.c_void_p)
        msg.msg_namelen = len(address)
    msg.msg_iov = array
    msg.msg_iovlen = len(lengths)
    ctl = ctypes.create_string_buffer(control) if control else None
    if ctl is not None:
        msg.msg_control = ctypes.cast(ctl, ctypes.c_void_p)
        msg.msg_controllen = len(control)
    result = _done(_sendmsg(fd, ctypes.byref(msg), flags))
    del keep
    return result


def recvmsg(
    fd: int, lengths: list[int], flags: int, msg_flags: int = 0, control_size: int = 512
) -> tuple[int, int, int, bytes]:
    """``(result, errno, msg_flags, control octets)``; ``msg_flags`` is what the msghdr
    holds before the call (the kernel leaves it when the call fails)."""
    array, keep = _iovecs(lengths)
    msg = MsgHdr()
    name = ctypes.create_string_buffer(128)
    msg.msg_name = ctypes.cast(name, ctypes.c_void_p)
    msg.msg_namelen = 128
    msg.msg_iov = array
    msg.msg_iovlen = len(lengths)
    ctl = ctypes.create_string_buffer(control_size)
    msg.msg_control = ctypes.cast(ctl, ctypes.c_void_p)
    msg.msg_controllen = control_size
    msg.msg_flags = msg_flags
    result, err = _done(_recvmsg(fd, ctypes.byref(msg), flags))
    del keep
    return result, err, msg.msg_flags, ctl.raw[: msg.msg_controllen] if result >= 0 else b""


def close(fd: int) -> Result:
    return _done(_close(fd))


def shutdown(fd: int, how: int) -> Result:
    return _done(_shutdown(fd, how))


def getsockopt(fd: int, level: int, name: int, optlen: int) -> tuple[int, int, bytes, int]:
    """``(result, errno, value octets, optlen the kernel returned)``."""
    buf = ctypes.create_string_buffer(max(optlen, 0) + 1)
    length = ctypes.c_uint32(optlen)
    result, err = _done(_getsockopt(fd, level, name, buf, ctypes.byref(length)))
    return result, err, buf.raw[: length.value], length.value


def setsockopt(fd: int, level: int, name: int, value: bytes, optlen: int) -> Result:
    buf = ctypes.create_string_buffer(value, max(len(value), optlen, 1))
    return _done(_setsockopt(fd, level, name, buf, optlen))


def fcntl(fd: int, command: int, arg: int = 0) -> Result:
    return _done(_fcntl(fd, command, arg))


def ioctl_int(fd: int, request: int, with_arg: bool) -> tuple[int, int, int]:
    value = ctypes.c_int(0)
    if with_arg:
        result, err = _done(_ioctl(fd, request, ctypes.byref(value)))
    else:
        result, err = _done(_ioctl(fd, request, None))
    return result, err, value.value


def ioctl_bytes(fd: int, request: int, data: bytes) -> tuple[int, int, bytes]:
    buf = ctypes.create_string_buffer(data, len(data))
    result, err = _done(_ioctl(fd, request, buf))
    return result, err, buf.raw


def poll(fds: list[tuple[int, int]], timeout_ms: int) -> tuple[int, int, list[int]]:
    array = (PollFd * max(len(fds), 1))()
    for i, (fd, events) in enumerate(fds):
        array[i].fd = fd
        array[i].events = events
    result, err = _done(_poll(array, len(fds), timeout_ms))
    return result, err, [array[i].revents & 0xFFFF for i in range(len(fds))]


def epoll_create(size: int) -> Result:
    return _done(_epoll_create(size))


def epoll_ctl(epfd: int, op: int, fd: int, events: int, data: int) -> Result:
    event = EpollEvent(events, data)
    return _done(_epoll_ctl(epfd, op, fd, ctypes.byref(event)))


def epoll_wait(epfd: int, maxevents: int, timeout_ms: int) -> tuple[int, int, list[tuple[int, int]]]:
    events = (EpollEvent * max(maxevents, 1))()
    result, err = _done(_epoll_wait(epfd, events, maxevents, timeout_ms))
    return result, err, [(events[i].events, events[i].data) for i in range(max(result, 0))]


def pipe() -> tuple[int, int, tuple[int, int]]:
    fds = (ctypes.c_int * 2)()
    result, err = _done(_pipe(ctypes.byref(fds)))
    return result, err, (fds[0], fds[1])


def splice(fd_in: int, fd_out: int, length: int, flags: int) -> Result:
    return _done(_splice(fd_in, None, fd_out, None, length, flags))


def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> Result:
    position = ctypes.c_int64(offset)
    return _done(_sendfile(out_fd, in_fd, ctypes.byref(position), count))


def open_file(path: str, flags: int, mode: int = 0o600) -> Result:
    return _done(_open(path.encode(), flags, mode))


def unshare(flags: int) -> Result:
    return _done(_unshare(flags))


def mount(source: str, target: str, fstype: str | None, flags: int) -> Result:
    return _done(_mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None))


def umount2(target: str, flags: int) -> Result:
    return _done(_umount2(target.encode(), flags))


def prctl(option: int, arg: int) -> Result:
    return _done(_prctl(option, arg, 0, 0, 0))

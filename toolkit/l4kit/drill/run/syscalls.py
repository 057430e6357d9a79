"""The system calls of a script, made on real sockets (the kernel target).

Each call's arguments are evaluated as packetdrill does (``...`` for an address
means the run's own: the local address for bind, the peer's for connect and
sendto; a buffer is ``...`` or ``0`` for NULL; ``[1]`` is a pointer to an int),
the call goes to the kernel through :mod:`l4kit.drill.run.libc`, and its result,
errno and outputs are compared with the script's. A script's file descriptors
are its own numbers, mapped to the live ones.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from l4kit.drill.run import libc
from l4kit.drill.run.loop import CallOutcome, RunConfig
from l4kit.drill.run.tcpinfo import decode_tcp_info
from l4kit.drill.script.model import (
    AnyValue,
    BitOr,
    Expression,
    Field,
    IntValue,
    ListValue,
    StringValue,
    Struct,
    Syscall,
    Word,
)
from l4kit.drill.script.printer import format_expression
from l4kit.drill.script.session import Mismatch, Sockets
from l4kit.drill.script.symbols import ERRNO_NAMES, SYMBOLS

AF_UNSPEC = 0
SOL_IP = 0
SOL_IPV6 = 41
SOL_SOCKET = 1
IP_RECVERR = 11
IPV6_RECVERR = 25
SCM_TIMESTAMPING = 37
SCM_TIMESTAMPING_OPT_STATS = 54
IPPROTO_TCP = 6
TCP_INFO = 11
_CMSG_HEADER = struct.Struct("=QiI")  # cmsg_len (size_t), cmsg_level, cmsg_type


class CallError(Exception):
    """A call the script wrote wrongly (an unknown symbol, a missing fd): the line fails."""


class UnsupportedCall(Exception):  # noqa: N818 - what the target does not do, not a failure
    """A call or argument the kernel target does not make."""


def value(expr: Expression) -> int:
    """The integer an argument stands for (a number, a Linux symbol, ``A|B``)."""
    if isinstance(expr, IntValue):
        return expr.value
    if isinstance(expr, Word):
        number = SYMBOLS.get(expr.name)
        if number is None:
            raise CallError(f"unknown symbol: '{expr.name}'")
        return number
    if isinstance(expr, BitOr):
        return value(expr.lhs) | value(expr.rhs)
    raise CallError(f"expected an integer but found {format_expression(expr)}")


def bracketed(expr: Expression) -> int:
    """``[N]``: a pointer to one integer."""
    if not isinstance(expr, ListValue) or len(expr.items) != 1:
        raise CallError(f"expected [<integer>] but found {format_expression(expr)}")
    return value(expr.items[0])


def _s32(number: int) -> int:
    """As C stores a script's integer in an int: 4294967295 is -1."""
    return (number + 2**31) % 2**32 - 2**31


def errno_text(err: int) -> str:
    return f"{ERRNO_NAMES.get(err, str(err))} ({os.strerror(err)})"


def shown(result: int, err: int) -> str:
    return f"= {result}" + (f" {errno_text(err)}" if result < 0 else "")


def _mismatch(field: str, expected: str, actual: str, message: str) -> Mismatch:
    return Mismatch(field, expected, actual, message)


def check_result(call: Syscall, result: int, err: int, *, fd_result: bool = False) -> Mismatch | None:
    """packetdrill's end-of-call check: the result (any non-negative one for a call that
    returns a new fd the script names), then the errno when the script gives one."""
    expected = value(call.result)
    if fd_result and expected >= 0:
        if result < 0:
            return _mismatch(
                "result",
                str(expected),
                f"{result} {errno_text(err)}",
                f"Expected non-negative result but got {result} with errno {err} ({os.strerror(err)})",
            )
    elif result != expected:
        return _mismatch(
            "result",
            str(expected),
            str(result) + (f" {errno_text(err)}" if result < 0 else ""),
            f"Expected result {expected} but got {result} with errno {err} ({os.strerror(err)})",
        )
    if call.errno is not None:
        want = SYMBOLS.get(call.errno)
        if want is None:
            raise CallError(f"unknown symbol: '{call.errno}'")
        if want != err:
            return _mismatch(
                "errno",
                call.errno,
                ERRNO_NAMES.get(err, str(err)),
                f"Expected errno {want} ({os.strerror(want)}) but got {err} ({os.strerror(err)})",
            )
    return None


_Fd = TypeVar("_Fd")


def call_args(call: Syscall, count: int | tuple[int, ...]) -> tuple[Expression, ...]:
    """The call's arguments, when there are ``count`` of them (or one of the counts)."""
    counts = (count,) if isinstance(count, int) else count
    if len(call.args) not in counts:
        raise CallError(f"Expected {counts[0]} args but got {len(call.args)}")
    return call.args


def accepted(outcome: CallOutcome, sockets: Sockets, script_fd: int, live: object) -> CallOutcome:
    """An accept() that returned ``script_fd`` as the script expects: its ``outcome``, or a
    mismatch when no connection whose handshake the script played is there to take it."""
    if sockets.accepted(script_fd, live) is not None:
        return outcome
    return CallOutcome(
        outcome.shown,
        _mismatch(
            "accept",
            "a connection the script opened",
            "none",
            "unable to find socket matching accept() call",
        ),
    )


def check_revents(
    outcome: CallOutcome, wanted: list[int], revents: list[int], show: Callable[[int], str]
) -> CallOutcome | None:
    """poll()'s ``outcome`` failed at the first pollfd whose revents are not the script's
    (each written by ``show``), or ``None`` when all are."""
    for index, (want, got) in enumerate(zip(wanted, revents, strict=True)):
        if want != got:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "revents",
                    show(want),
                    show(got),
                    f"Expected revents of {show(want)} but got {show(got)} for pollfd {index}",
                ),
            )
    return None


def pollfds(
    fds: Expression, nfds: Expression, resolve: Callable[[Expression], _Fd]
) -> list[tuple[_Fd, int, int]]:
    """poll()'s ``[{fd=..., events=..., revents=...}, ...]`` argument: each entry's
    ``resolve(fd)``, events and the revents the script expects (0 when not written),
    checked against ``nfds``."""
    if not isinstance(fds, ListValue):
        raise CallError(f"expected an array of pollfd but found {format_expression(fds)}")
    entries = []
    for item in fds.items:
        fd = item.get("fd") if isinstance(item, Struct) else None
        events = item.get("events") if isinstance(item, Struct) else None
        if fd is None or events is None:
            raise CallError(f"expected a pollfd {{fd=..., events=...}} but found {format_expression(item)}")
        wanted = item.get("revents") if isinstance(item, Struct) else None
        entries.append((resolve(fd.value), value(events.value), value(wanted.value) if wanted else 0))
    if value(nfds) != len(entries):
        raise CallError(f"nfds {value(nfds)} does not match {len(entries)}-element pollfd array")
    return entries


class FdTable:
    """The script's file descriptors and the live ones they stand for."""

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.family: dict[int, int] = {}

    def get(self, script_fd: int) -> int:
        live = self.live.get(script_fd)
        if live is None:
            raise CallError(f"unable to find fd with script fd {script_fd}")
        return live

    def add(self, script_fd: int, live_fd: int, family: int = 0, *, shadow: bool = False) -> None:
        if script_fd < 0:
            raise CallError(f"invalid fd {script_fd} in script")
        if script_fd in self.live and not shadow:
            raise CallError(f"duplicate fd {script_fd} in script")
        self.live[script_fd] = live_fd
        self.family[script_fd] = family

    def remove(self, script_fd: int) -> None:
        self.live.pop(script_fd, None)
        self.family.pop(script_fd, None)

    def script_fd(self, live_fd: int) -> int | None:
        for script, live in self.live.items():
            if live == live_fd:
                return script
        return None


_SYSTEM_CALLS = frozenset(
    [
        "socket",
        "bind",
        "listen",
        "accept",
        "connect",
        "read",
        "write",
        "readv",
        "writev",
        "recv",
        "send",
        "recvfrom",
        "sendto",
        "sendmsg",
        "recvmsg",
        "close",
        "shutdown",
        "getsockopt",
        "setsockopt",
        "fcntl",
        "ioctl_int",
        "poll",
        "epoll_create",
        "epoll_ctl",
        "epoll_wait",
        "pipe",
        "splice",
        "sendfile",
        "open_file",
    ]
)


class _Announced:
    """:mod:`l4kit.drill.run.libc` with a hook run just before each system call: a blocking
    call announces that its bookkeeping is done and the kernel is about to be entered."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self._hook = hook

    def __getattr__(self, name: str) -> Any:
        function = getattr(libc, name)
        if name not in _SYSTEM_CALLS:
            return function
        hook = self._hook

        def announced(*args: object) -> object:
            hook()
            return function(*args)

        return announced


class KernelCalls:
    """Makes a script's system calls on the kernel of the current network namespace.

    ``before_call`` runs just before each system call enters the kernel (after the
    arguments are evaluated and the run's bookkeeping is done)."""

    def __init__(self, config: RunConfig, before_call: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.live_start_us = 0  # the run's start on the clock of kernel timestamps
        self.fds = FdTable()
        self.c = _Announced(before_call)
        self.table: dict[str, Callable[[Syscall, Sockets], CallOutcome]] = {
            name[5:]: getattr(self, name) for name in dir(self) if name.startswith("call_")
        }

    def execute(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        handler = self.table.get(call.name)
        if handler is None:
            if call.name in ("cap_set", "psp_rx_assoc", "psp_tx_assoc"):
                return CallOutcome("", unsupported=f"the {call.name} system call")
            return CallOutcome(
                "", _mismatch("call", call.name, "unknown", f"Unknown system call: '{call.name}'")
            )
        try:
            return handler(call, sockets)
        except CallError as exc:
            return CallOutcome("", _mismatch("argument", "", "", str(exc)))
        except UnsupportedCall as exc:
            return CallOutcome("", unsupported=str(exc))

    # ------------------------------------------------------------ helpers

    def _fd(self, expr: Expression) -> tuple[int, int]:
        script_fd = value(expr)
        return script_fd, self.fds.get(script_fd)

    @staticmethod
    def _buffer(expr: Expression, count: int) -> object:
        """``...`` is a buffer of ``count`` octets; ``0`` (``NULL``) a null pointer."""
        if isinstance(expr, AnyValue):
            return libc.buffer(count)
        if not isinstance(expr, (IntValue, Word, BitOr)) or value(expr) != 0:
            raise CallError("Expected ... or NULL for buffer")
        return None

    @staticmethod
    def _ellipsis(expr: Expression) -> None:
        if not isinstance(expr, AnyValue):
            raise CallError(f"Bad type; expected ... but found {format_expression(expr)}")

    def _peer_fd(self, call: Syscall) -> tuple[int, int]:
        """The fds of ``bind``/``accept(fd, ..., ...)``: the run knows the addresses, so the
        script writes none."""
        fd_expr, addr, length = call_args(call, 3)
        found = self._fd(fd_expr)
        self._ellipsis(addr)
        self._ellipsis(length)
        return found

    def _simple(self, call: Syscall, result: int, err: int, *, fd_result: bool = False) -> CallOutcome:
        text = shown(result, err)
        if fd_result and result >= 0 and isinstance(call.result, IntValue):
            text = f"= {call.result.value} (live fd {result})"  # the script's number for the new fd
        return CallOutcome(text, check_result(call, result, err, fd_result=fd_result))

    def _bind_address(self, script_fd: int) -> bytes:
        family = self.fds.family.get(script_fd, self.config.socket_family)
        return libc.sockaddr(self.config.addresses.local_ip, self.config.addresses.bind_port, family)

    def _connect_address(self, script_fd: int) -> bytes:
        family = self.fds.family.get(script_fd, self.config.socket_family)
        return libc.sockaddr(self.config.addresses.remote_ip, self.config.addresses.connect_port, family)

    def _destination(self, script_fd: int, addr: Expression, sockets: Sockets) -> bytes:
        """The address connect() and sendto() pass: the script's peer for ``...``, else a
        bare address family (AF_UNSPEC: disconnect)."""
        if isinstance(addr, AnyValue):
            address = self._connect_address(script_fd)
            sockets.connecting(script_fd, self.config.addresses)
            return address
        family = value(addr)
        sockets.connecting(script_fd, self.config.addresses, disconnect=family == AF_UNSPEC)
        return struct.pack("=H", family) + bytes(14)

    @staticmethod
    def _iovec_lengths(expr: Expression) -> list[int]:
        if not isinstance(expr, ListValue):
            raise CallError(f"expected an array of iovecs but found {format_expression(expr)}")
        lengths = []
        for item in expr.items:
            if (
                not isinstance(item, Struct)
                or len(item.items) != 2
                or not isinstance(item.items[0], AnyValue)
            ):
                raise CallError(f"expected an iovec {{..., N}} but found {format_expression(item)}")
            second = item.items[1]
            if isinstance(second, Field):
                raise CallError(f"expected an iovec {{..., N}} but found {format_expression(item)}")
            lengths.append(value(second))
        return lengths

    def _iovecs(self, iov: Expression, count: Expression) -> tuple[list[int], int]:
        """readv()/writev()'s iovec lengths and their count, which must agree."""
        lengths = self._iovec_lengths(iov)
        n = value(count)
        if n != len(lengths):
            raise CallError(f"iov_count {n} does not match {len(lengths)}-element iovec array")
        return lengths, n

    # ------------------------------------------------------------ sockets

    def call_socket(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        domain_expr, type_expr, proto_expr = call_args(call, 3)
        domain = self.config.socket_family if isinstance(domain_expr, AnyValue) else value(domain_expr)
        result, err = self.c.socket(domain, value(type_expr), value(proto_expr))
        outcome = self._simple(call, result, err, fd_result=True)
        if result >= 0:
            script_fd = value(call.result)
            self.fds.add(script_fd, result, domain)
            sockets.opened(script_fd, result)
        return outcome

    def call_bind(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        script_fd, live_fd = self._peer_fd(call)
        return self._simple(call, *self.c.bind(live_fd, self._bind_address(script_fd)))

    def call_listen(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, backlog = call_args(call, 2)
        script_fd, live_fd = self._fd(fd_expr)
        outcome = self._simple(call, *self.c.listen(live_fd, value(backlog)))
        if outcome.mismatch is None:
            sockets.listening(script_fd)
        return outcome

    def call_accept(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        script_fd, live_fd = self._peer_fd(call)
        result, err, _peer = self.c.accept(live_fd)
        outcome = self._simple(call, result, err, fd_result=True)
        if result >= 0 and outcome.mismatch is None:
            new_fd = value(call.result)
            # packetdrill lets an accepted fd shadow a script fd still open (the newest wins).
            self.fds.add(new_fd, result, self.fds.family.get(script_fd, 0), shadow=True)
            return accepted(outcome, sockets, new_fd, result)
        return outcome

    def call_connect(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, addr, length = call_args(call, 3)
        script_fd, live_fd = self._fd(fd_expr)
        self._ellipsis(length)
        return self._simple(call, *self.c.connect(live_fd, self._destination(script_fd, addr, sockets)))

    def call_close(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        (fd_expr,) = call_args(call, 1)
        script_fd, live_fd = self._fd(fd_expr)
        outcome = self._simple(call, *self.c.close(live_fd))
        if outcome.mismatch is None:
            self.fds.remove(script_fd)
            sockets.closed(script_fd)
        return outcome

    def call_shutdown(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, how = call_args(call, 2)
        _, live_fd = self._fd(fd_expr)
        return self._simple(call, *self.c.shutdown(live_fd, value(how)))

    # ------------------------------------------------------------ data

    def call_read(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count = call_args(call, 3)
        _, live_fd = self._fd(fd_expr)
        n = value(count)
        return self._simple(call, *self.c.read(live_fd, self._buffer(buf, n), n))

    def call_write(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count = call_args(call, 3)
        _, live_fd = self._fd(fd_expr)
        n = value(count)
        return self._simple(call, *self.c.write(live_fd, self._buffer(buf, n), n))

    def call_recv(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count, flags = call_args(call, 4)
        _, live_fd = self._fd(fd_expr)
        n = value(count)
        return self._simple(call, *self.c.recv(live_fd, self._buffer(buf, n), n, value(flags)))

    def call_send(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count, flags = call_args(call, 4)
        _, live_fd = self._fd(fd_expr)
        n = value(count)
        return self._simple(call, *self.c.send(live_fd, self._buffer(buf, n), n, value(flags)))

    def call_recvfrom(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count, flags, addr, length = call_args(call, 6)
        _, live_fd = self._fd(fd_expr)
        self._ellipsis(addr)
        self._ellipsis(length)
        n = value(count)
        return self._simple(call, *self.c.recvfrom(live_fd, self._buffer(buf, n), n, value(flags)))

    def call_sendto(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, buf, count, flags, addr, length = call_args(call, 6)
        script_fd, live_fd = self._fd(fd_expr)
        self._ellipsis(length)
        address = self._destination(script_fd, addr, sockets)
        n = value(count)
        return self._simple(call, *self.c.sendto(live_fd, self._buffer(buf, n), n, value(flags), address))

    def call_readv(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, iov, count = call_args(call, 3)
        _, live_fd = self._fd(fd_expr)
        return self._simple(call, *self.c.readv(live_fd, *self._iovecs(iov, count)))

    def call_writev(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, iov, count = call_args(call, 3)
        _, live_fd = self._fd(fd_expr)
        return self._simple(call, *self.c.writev(live_fd, *self._iovecs(iov, count)))

    def _msghdr(self, expr: Expression) -> tuple[list[int], bool, int, Expression | None]:
        """(iovec lengths, has a name, msg_flags, msg_control) of a ``{msg_name(...)=..., ...}``."""
        if not isinstance(expr, Struct):
            raise CallError(
                f"expected a msghdr {{msg_name(...)=..., ...}} but found {format_expression(expr)}"
            )
        iov = expr.get("msg_iov")
        if iov is None:
            raise CallError("msghdr without msg_iov")
        lengths = self._iovec_lengths(iov.value)
        if iov.arg is not None and value(iov.arg) != len(lengths):
            raise CallError(f"msg_iov({value(iov.arg)}) does not match {len(lengths)}-element iovec array")
        flags_field = expr.get("msg_flags")
        flags = value(flags_field.value) if flags_field is not None else 0
        control = expr.get("msg_control")
        return (
            lengths,
            expr.get("msg_name") is not None,
            flags,
            control.value if control is not None else None,
        )

    def call_sendmsg(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, msg, flags = call_args(call, 3)
        script_fd, live_fd = self._fd(fd_expr)
        lengths, named, msg_flags, control = self._msghdr(msg)
        address = None
        if named:
            address = self._connect_address(script_fd)
            sockets.connecting(script_fd, self.config.addresses)
        if msg_flags != 0:
            raise CallError("sendmsg ignores msg_flags field in msghdr")
        control_bytes = self._control(control) if control is not None else b""
        return self._simple(call, *self.c.sendmsg(live_fd, lengths, address, value(flags), control_bytes))

    def call_recvmsg(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, msg, flags = call_args(call, 3)
        _, live_fd = self._fd(fd_expr)
        lengths, _named, want_flags, control = self._msghdr(msg)
        result, err, got_flags, got_control = self.c.recvmsg(live_fd, lengths, value(flags), want_flags)
        outcome = self._simple(call, result, err)
        if outcome.mismatch is not None:
            return outcome
        if got_flags != want_flags:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "msg_flags",
                    f"{want_flags:#010x}",
                    f"{got_flags:#010x}",
                    f"Expected msg_flags 0x{want_flags:08X} but got 0x{got_flags:08X}",
                ),
            )
        if control is not None:
            mismatch = self._compare_control(control, got_control)
            if mismatch is not None:
                return CallOutcome(outcome.shown, mismatch)
        return outcome

    def _control(self, control: Expression) -> bytes:
        """msg_control for sendmsg: cmsgs whose data is one integer."""
        if not isinstance(control, ListValue):
            raise CallError(f"expected msg_control=[...] but found {format_expression(control)}")
        out = b""
        for item in control.items:
            level, kind, data = self._cmsg_fields(item)
            if not isinstance(data, (IntValue, Word, BitOr)):
                raise UnsupportedCall(f"sendmsg control data {format_expression(data)}")
            payload = struct.pack("=i", value(data))
            length = _CMSG_HEADER.size + len(payload)
            out += _CMSG_HEADER.pack(length, level, kind) + payload + bytes(-length % 8)
        return out

    def _cmsg_fields(self, item: Expression) -> tuple[int, int, Expression]:
        if not isinstance(item, Struct):
            raise CallError(f"expected a cmsg {{cmsg_level=..., ...}} but found {format_expression(item)}")
        level, kind, data = item.get("cmsg_level"), item.get("cmsg_type"), item.get("cmsg_data")
        if level is None or kind is None or data is None:
            raise CallError(
                "expected a cmsg {cmsg_level=..., cmsg_type=..., cmsg_data=...} in " + format_expression(item)
            )
        return value(level.value), value(kind.value), data.value

    def _compare_control(self, control: Expression, got: bytes) -> Mismatch | None:
        if not isinstance(control, ListValue):
            raise CallError(f"expected msg_control=[...] but found {format_expression(control)}")
        actual: list[tuple[int, int, bytes]] = []
        offset = 0
        while offset + _CMSG_HEADER.size <= len(got):
            length, level, kind = _CMSG_HEADER.unpack_from(got, offset)
            if length < _CMSG_HEADER.size:
                break
            actual.append((level, kind, got[offset + _CMSG_HEADER.size : offset + length]))
            offset += length + (-length % 8)
        for index, item in enumerate(control.items):
            level, kind, data = self._cmsg_fields(item)
            if index >= len(actual):
                return _mismatch(
                    "cmsg", str(len(control.items)), str(len(actual)), f"received only {index} cmsgs"
                )
            got_level, got_kind, got_data = actual[index]
            if got_level != level:
                return _mismatch(
                    "cmsg_level",
                    str(level),
                    str(got_level),
                    f"Bad level in cmsg {index}: expected={level} actual={got_level}",
                )
            if got_kind != kind:
                return _mismatch(
                    "cmsg_type",
                    str(kind),
                    str(got_kind),
                    f"Bad type in cmsg {index}: expected={kind} actual={got_kind}",
                )
            if (level, kind) == (SOL_SOCKET, SCM_TIMESTAMPING_OPT_STATS):
                raise UnsupportedCall("SCM_TIMESTAMPING_OPT_STATS control messages")
            if (level, kind) == (SOL_SOCKET, SCM_TIMESTAMPING):
                mismatch = self._compare_timestamping(index, data, got_data)
            elif isinstance(data, Struct) and data.get("ee_errno") is not None:
                mismatch = _compare_extended_err(index, data, got_data)
            elif isinstance(data, (IntValue, Word, BitOr)):
                want = value(data)
                have = struct.unpack_from("=i", got_data)[0] if len(got_data) >= 4 else None
                mismatch = (
                    None
                    if have == want
                    else _mismatch(
                        "cmsg_data",
                        str(want),
                        str(have),
                        f"Bad data in cmsg {index}: expected={want} actual={have}",
                    )
                )
            else:
                raise UnsupportedCall(f"control data {format_expression(data)}")
            if mismatch is not None:
                return mismatch
        if len(actual) > len(control.items):
            return _mismatch(
                "cmsg",
                str(len(control.items)),
                str(len(actual)),
                f"received more than {len(control.items)} cmsgs",
            )
        return None

    def _compare_timestamping(self, index: int, data: Expression, got: bytes) -> Mismatch | None:
        """``{scm_sec=S, scm_nsec=N}``: the first timestamp of a ``struct scm_timestamping``,
        in script time, within the tolerance of the actual one (0 means: not checked)."""
        if not isinstance(data, Struct) or data.get("scm_sec") is None or data.get("scm_nsec") is None:
            raise CallError(f"expected {{scm_sec=..., scm_nsec=...}} but found {format_expression(data)}")
        sec_field, nsec_field = data.get("scm_sec"), data.get("scm_nsec")
        assert sec_field is not None and nsec_field is not None
        want_us = value(sec_field.value) * 1_000_000 + value(nsec_field.value) // 1000
        if want_us == 0:
            return None
        if len(got) < 16:
            return _mismatch(
                "cmsg_data",
                "scm_timestamping",
                f"{len(got)} bytes",
                f"Bad data in cmsg {index}: too short for scm_timestamping",
            )
        seconds, nanoseconds = struct.unpack_from("=qq", got)
        actual_us = seconds * 1_000_000 + nanoseconds // 1000 - self.live_start_us
        if abs(actual_us - want_us) > self.config.tolerance_usecs:
            return _mismatch(
                "scm_timestamping",
                str(want_us),
                str(actual_us),
                f"Bad timestamp 0 in scm_timestamping {index}: expected={want_us} actual={actual_us} "
                "(microseconds since the start)",
            )
        return None

    # ------------------------------------------------------------ options and control

    def call_getsockopt(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, level, name, val, length = call_args(call, 5)
        _, live_fd = self._fd(fd_expr)
        if isinstance(val, Struct) and value(name) == TCP_INFO and value(level) == IPPROTO_TCP:
            return self._tcp_info_struct(call, live_fd, val, length)
        optlen = bracketed(length)
        result, err, data, got_len = self.c.getsockopt(live_fd, value(level), value(name), optlen)
        outcome = self._simple(call, result, err)
        if outcome.mismatch is not None:
            return outcome
        if got_len != optlen:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "optlen",
                    str(optlen),
                    str(got_len),
                    f"Bad getsockopt optlen: expected: {optlen} actual: {got_len}",
                ),
            )
        if isinstance(val, StringValue):
            want = val.text.encode()
            if len(want) != optlen:
                raise CallError(
                    f"Bad getsockopt optval: expected optlen ({optlen} bytes) does not match length of "
                    f"expected optval string '{val.text}' ({len(want)} bytes)"
                )
            if data[:optlen] != want:
                return CallOutcome(
                    outcome.shown,
                    _mismatch(
                        "optval",
                        repr(val.text),
                        repr(data[:optlen]),
                        f"Bad getsockopt optval: expected: '{val.text}' "
                        f"actual: '{data[:optlen].decode(errors='replace')}'",
                    ),
                )
            return outcome
        if isinstance(val, ListValue):
            if optlen != 4:
                raise CallError(f"Unsupported getsockopt optlen: {optlen}")
            want_int = _s32(bracketed(val))
            have = struct.unpack("=i", data[:4])[0]
            if have != want_int:
                return CallOutcome(
                    outcome.shown,
                    _mismatch(
                        "optval",
                        str(want_int),
                        str(have),
                        f"Bad getsockopt optval: expected: {want_int} actual: {have}",
                    ),
                )
            return CallOutcome(f"{outcome.shown} [{have}]")
        raise UnsupportedCall(f"getsockopt value {format_expression(val)}")

    def _tcp_info_struct(self, call: Syscall, live_fd: int, val: Struct, length: Expression) -> CallOutcome:
        """``getsockopt(fd, SOL_TCP, TCP_INFO, {tcpi_state=TCP_ESTABLISHED, tcpi_rto=...}, ...)``:
        each field written is compared (``...`` for any value); the length may be ``...``."""
        optlen = 512 if isinstance(length, AnyValue) else bracketed(length)
        result, err, data, _got_len = self.c.getsockopt(live_fd, IPPROTO_TCP, TCP_INFO, optlen)
        outcome = self._simple(call, result, err)
        if outcome.mismatch is not None:
            return outcome
        info = decode_tcp_info(data)
        for item in val.items:
            if not isinstance(item, Field):
                raise CallError(
                    f"expected tcpi_name=value in the TCP_INFO structure, not {format_expression(item)}"
                )
            if item.name not in info or item.name.isupper():
                raise CallError(f"struct tcp_info has no field {item.name}")
            if isinstance(item.value, AnyValue):
                continue
            want, have = value(item.value), info[item.name]
            if want != have:
                return CallOutcome(
                    outcome.shown,
                    _mismatch(
                        item.name,
                        str(want),
                        str(have),
                        f"Bad getsockopt TCP_INFO {item.name}: expected: {want} actual: {have}",
                    ),
                )
        return outcome

    def call_setsockopt(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_expr, level, name, val, length = call_args(call, 5)
        _, live_fd = self._fd(fd_expr)
        optlen = value(length)
        if isinstance(val, ListValue):
            data = struct.pack("=I", bracketed(val) & 0xFFFFFFFF)  # an int, as C passes it
        elif isinstance(val, StringValue):
            data = val.text.encode()
        elif isinstance(val, Struct) and val.get("onoff") is not None and val.get("linger") is not None:
            onoff, linger = val.get("onoff"), val.get("linger")
            assert onoff is not None and linger is not None
            data = struct.pack("=ii", value(onoff.value), value(linger.value))
        else:
            raise UnsupportedCall(f"setsockopt value {format_expression(val)}")
        return self._simple(call, *self.c.setsockopt(live_fd, value(level), value(name), data, optlen))

    def call_fcntl(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        args = call_args(call, (2, 3))
        _, live_fd = self._fd(args[0])
        command = value(args[1])
        arg = value(args[2]) if len(args) == 3 else 0
        return self._simple(call, *self.c.fcntl(live_fd, command, arg))

    def call_ioctl(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        args = call_args(call, (2, 3))
        _, live_fd = self._fd(args[0])
        request = value(args[1])
        if len(args) == 2:
            result, err, _ = self.c.ioctl_int(live_fd, request, False)
            return self._simple(call, result, err)
        want = _s32(bracketed(args[2]))
        result, err, got = self.c.ioctl_int(live_fd, request, True)
        outcome = self._simple(call, result, err)
        if outcome.mismatch is None and got != want:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "ioctl value", str(want), str(got), f"Bad ioctl optval: expected: {want} actual: {got}"
                ),
            )
        return CallOutcome(f"{outcome.shown} [{got}]", outcome.mismatch)

    def call_poll(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fds, nfds, timeout = call_args(call, 3)
        entries = pollfds(fds, nfds, lambda fd: self.fds.get(value(fd)))
        result, err, revents = self.c.poll([(fd, events) for fd, events, _ in entries], value(timeout))
        outcome = self._simple(call, result, err)
        if outcome.mismatch is not None:
            return outcome
        wanted = [want for _, _, want in entries]
        mismatch = check_revents(outcome, wanted, revents, _poll_flags)
        return mismatch or CallOutcome(outcome.shown + " " + ", ".join(_poll_flags(r) for r in revents))

    def call_epoll_create(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        (size,) = call_args(call, 1)
        result, err = self.c.epoll_create(value(size))
        outcome = self._simple(call, result, err, fd_result=True)
        if result >= 0:
            self.fds.add(value(call.result), result)
        return outcome

    def _epoll_event(self, expr: Expression) -> tuple[int, str, int]:
        if not isinstance(expr, Struct) or expr.get("events") is None:
            raise CallError(
                f"expected an epoll_event {{events=..., fd=...}} but found {format_expression(expr)}"
            )
        events_field = expr.get("events")
        assert events_field is not None
        events = value(events_field.value)
        for key in ("fd", "ptr", "u32", "u64"):
            item = expr.get(key)
            if item is not None:
                data = value(item.value)
                if key == "fd":
                    data = self.fds.get(data)
                return events, key, data
        raise CallError("epoll_event specified incorrectly")

    def call_epoll_ctl(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        epfd_expr, op, fd_expr, event = call_args(call, 4)
        _, epfd = self._fd(epfd_expr)
        _, live_fd = self._fd(fd_expr)
        events, key, data = self._epoll_event(event)
        if key == "fd" and data != live_fd:
            raise CallError("wrong fd specified in epoll_event")
        return self._simple(call, *self.c.epoll_ctl(epfd, value(op), live_fd, events, data))

    def call_epoll_wait(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        epfd_expr, event, maxevents, timeout = call_args(call, 4)
        _, epfd = self._fd(epfd_expr)
        want_events, key, want_data = self._epoll_event(event)
        result, err, got = self.c.epoll_wait(epfd, value(maxevents), value(timeout))
        outcome = self._simple(call, result, err)
        if outcome.mismatch is not None:
            return outcome
        got_events, got_data = got[0] if got else (0, 0)
        if got_events != want_events:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "events",
                    f"{want_events:#x}",
                    f"{got_events:#x}",
                    "epoll_event->events does not match script: "
                    f"expected: {want_events:#x} actual: {got_events:#x}",
                ),
            )
        if key == "fd":
            got_data &= 0xFFFFFFFF
        if got_data != want_data:
            return CallOutcome(
                outcome.shown,
                _mismatch(
                    "data",
                    str(want_data),
                    str(got_data),
                    f"epoll_event->data does not match script: expected: {want_data} actual: {got_data}",
                ),
            )
        return CallOutcome(f"{outcome.shown} events {got_events:#x}")

    def call_pipe(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        (fds_expr,) = call_args(call, 1)
        if not isinstance(fds_expr, ListValue) or len(fds_expr.items) != 2:
            raise CallError(f"expected [read fd, write fd] but found {format_expression(fds_expr)}")
        result, err, (read_fd, write_fd) = self.c.pipe()
        outcome = self._simple(call, result, err)
        if result == 0:
            self.fds.add(value(fds_expr.items[0]), read_fd)
            self.fds.add(value(fds_expr.items[1]), write_fd)
        return outcome

    def call_splice(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        fd_in, off_in, fd_out, off_out, length, flags = call_args(call, 6)
        if value(off_in) != 0 or value(off_out) != 0:
            raise UnsupportedCall("splice with offsets")
        _, live_in = self._fd(fd_in)
        _, live_out = self._fd(fd_out)
        return self._simple(call, *self.c.splice(live_in, live_out, value(length), value(flags)))

    def call_sendfile(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        out_expr, in_expr, offset, count = call_args(call, 4)
        _, live_out = self._fd(out_expr)
        _, live_in = self._fd(in_expr)
        return self._simple(call, *self.c.sendfile(live_out, live_in, bracketed(offset), value(count)))

    def call_open(self, call: Syscall, sockets: Sockets) -> CallOutcome:
        name, flags = call_args(call, 2)
        if not isinstance(name, StringValue):
            raise CallError(f"expected a file name in quotes but found {format_expression(name)}")
        result, err = self.c.open_file(name.text, value(flags))
        outcome = self._simple(call, result, err, fd_result=True)
        if result >= 0:
            self.fds.add(value(call.result), result)
        return outcome


def _compare_extended_err(index: int, data: Struct, got: bytes) -> Mismatch | None:
    """A ``sock_extended_err`` (IP_RECVERR, zerocopy notifications) field by field."""
    if len(got) < 16:
        return _mismatch(
            "cmsg_data",
            "sock_extended_err",
            f"{len(got)} bytes",
            f"Bad data in cmsg {index}: too short for sock_extended_err",
        )
    ee_errno, origin, ee_type, code, _pad, info, ee_data = struct.unpack_from("=IBBBBII", got)
    actual = {
        "ee_errno": ee_errno,
        "ee_origin": origin,
        "ee_type": ee_type,
        "ee_code": code,
        "ee_info": info,
        "ee_data": ee_data,
    }
    names = {
        "ee_errno": "errno",
        "ee_origin": "origin",
        "ee_type": "type",
        "ee_code": "code",
        "ee_info": "info",
        "ee_data": "data",
    }
    for key, label in names.items():
        item = data.get(key)
        if item is None:
            continue
        want = value(item.value) & 0xFFFFFFFF
        if actual[key] != want:
            return _mismatch(
                key,
                str(want),
                str(actual[key]),
                f"Bad {label} in extended err {index}: expected={want} actual={actual[key]}",
            )
    return None


_POLL_NAMES = (
    (0x001, "POLLIN"),
    (0x002, "POLLPRI"),
    (0x004, "POLLOUT"),
    (0x008, "POLLERR"),
    (0x010, "POLLHUP"),
    (0x020, "POLLNVAL"),
    (0x040, "POLLRDNORM"),
    (0x080, "POLLRDBAND"),
    (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"),
    (0x400, "POLLMSG"),
    (0x2000, "POLLRDHUP"),
)


def _poll_flags(bits: int) -> str:
    names = [name for bit, name in _POLL_NAMES if bits & bit]
    rest = bits & ~sum(bit for bit, _ in _POLL_NAMES)
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or "0"

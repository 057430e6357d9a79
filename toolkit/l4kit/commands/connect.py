"""``l4kit connect HOST PORT``: one userspace TCP connection, like ``nc``.

The input (``--send``, ``--send-file`` or standard input) is sent as it comes; when it
ends, the connection is half-closed (our FIN). What the server sends goes to standard
output exactly as received, while it arrives; the flag-transition table (or JSON) goes
to standard error once the connection is over. Exit status: 0 when it closed cleanly
(both FINs), 1 with one line when it was refused, timed out or reset, 2 for a usage
error.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from l4kit.errors import ConfigError, L4kitError

CHUNK = 65536
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest:
    """The options of ``l4kit connect`` as the CLI parsed them."""

    host: str
    port: int
    send: str | None = None
    send_file: Path | None = None
    iface: str | None = None
    source_port: int = 0
    timeout: float = 10.0
    fmt: str = "table"
    pcap: Path | None = None
    force: bool = False
    firewall: str = "auto"
    codec: str = "scapy"


class _Interrupted(BaseException):
    """SIGTERM or SIGHUP: leave the ``with`` blocks (restoring the host), exit 130."""


def _input_chunks(request: ConnectRequest, stop: threading.Event) -> Iterator[bytes]:
    """What to send, chunk by chunk: the text, the file, or standard input as it comes
    (until its end, or until the server is done and ``stop`` is set)."""
    if request.send is not None:
        yield request.send.encode()
        return
    if request.send_file is not None:
        with open(request.send_file, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    fd = sys.stdin.fileno()
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return
        yield chunk


def _check_input(request: ConnectRequest) -> None:
    if request.send is not None and request.send_file is not None:
        raise ConfigError("give --send or --send-file, not both", exit_code=EXIT_USAGE)
    if request.send_file is not None:
        try:
            with open(request.send_file, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"--send-file {request.send_file}: {exc.strerror}", exit_code=EXIT_USAGE
            ) from None
    if request.fmt not in ("table", "json"):
        raise ConfigError(f"--format {request.fmt}: use table or json", exit_code=EXIT_USAGE)


def connect(request: ConnectRequest, *, stdout: BinaryIO | None = None) -> int:
    """Run the connection; returns the exit code (an error line is raised as L4kitError)."""
    _check_input(request)
    from l4kit.live.privileges import require_live_privileges

    require_live_privileges("l4kit connect", firewall=True)
    from l4kit.live.client import Client
    from l4kit.views.client import client_table, connect_json
    from l4kit.views.live import consoles

    out = stdout if stdout is not None else sys.stdout.buffer
    _console, err = consoles()
    failure: str | None = None
    result = "closed"
    sent = received = 0
    state = "CLOSED"
    broken: BaseException | None = None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, interrupted)
    try:
        with Client(
            firewall=request.firewall,
            codec=request.codec,
            pcap=request.pcap,
            force=request.force,
            command="l4kit connect",
            notice=lambda text: err.print(text, markup=False, soft_wrap=True),
        ) as client:
            try:
                sock = client.connect(
                    request.host,
                    request.port,
                    source_port=request.source_port,
                    iface=request.iface,
                    timeout=request.timeout,
                )
            except ConnectionRefusedError:
                result, failure = "refused", f"connection refused by {request.host} port {request.port}"
            except TimeoutError:
                result = "timeout"
                failure = f"no answer from {request.host} port {request.port} within {request.timeout:g} s"
            else:
                result, failure = _exchange(sock, request, out)
                sent, received, state = sock.sent, sock.received, str(sock.state)
            key, rows = client.history[-1] if client.history else (None, [])
            broken = client.failure()
    except _Interrupted:
        raise KeyboardInterrupt from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if request.fmt == "json":
        sys.stderr.write(
            connect_json(key, rows, result=result, error=failure, sent=sent, received=received, state=state)
            + "\n"
        )
    elif key is not None:
        err.print(client_table(key, rows))
    if failure is not None:
        if broken is not None:
            failure += f" (the sniffer failed: {type(broken).__name__}: {broken})"
        raise L4kitError(failure)
    return 0


def _exchange(sock: object, request: ConnectRequest, out: BinaryIO) -> tuple[str, str | None]:
    """Send the input and copy what arrives to ``out`` until both sides have closed.
    Returns (result, failure line or None)."""
    from l4kit.core.states import State
    from l4kit.live.client import Socket
    from l4kit.wire.flags import TcpFlags

    assert isinstance(sock, Socket)
    server_done = threading.Event()
    reader_error: list[BaseException] = []

    def read() -> None:
        try:
            while chunk := sock.recv():
                out.write(chunk)
                out.flush()
        except BaseException as exc:
            reader_error.append(exc)
        finally:
            server_done.set()

    reader = threading.Thread(target=read, name="l4kit-connect-reader", daemon=True)
    reader.start()
    try:
        for chunk in _input_chunks(request, server_done):
            sock.sendall(chunk)
        sock.shutdown()
    except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
        if not reader_error:
            reader_error.append(exc)
    while reader.is_alive():
        reader.join(0.2)  # short waits: Ctrl-C and SIGTERM are seen between them
    error = reader_error[0] if reader_error else None
    if isinstance(error, ConnectionResetError):
        sock.abort()
        return "reset", f"connection reset by {request.host} port {request.port}"
    if isinstance(error, TimeoutError):
        sock.abort()
        return "timeout", f"{request.host} port {request.port} sent nothing for {request.timeout:g} s"
    if isinstance(error, BrokenPipeError):
        sock.abort()
        return "reset", f"the connection to {request.host} port {request.port} is gone: {error}"
    if error is not None:
        sock.abort()
        raise error
    sock.close(linger=request.timeout)
    state = sock.state
    if state not in (State.TIME_WAIT, State.CLOSED) or any(
        row.segment.flags & TcpFlags.RST for row in sock.rows
    ):
        return (
            "reset",
            f"the connection to {request.host} port {request.port} did not close cleanly ({state})",
        )
    return "closed", None

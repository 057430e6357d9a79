"""Reference: the same string server as the standard library writes it, socketserver.ThreadingTCPServer.

One thread per connection, the request line read with ``rfile.readline()``: the
"plain kernel-socket Python server" most people would write (about 4,500
connections/s, 0.2 ms), reported beside ``_kernel_server.py``: an inline accept loop,
the fastest a Python server on the kernel's TCP can be for one request per connection,
and the reference of the responder's targets (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import socketserver
import sys

ROUTES = {b"toppage": b"hello world\n", b"ping": b"pong\n"}


class StringHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().rstrip(b"\r\n")
        self.wfile.write(ROUTES.get(line, b"error: unknown command\n"))


class StringServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    with StringServer(("127.0.0.1", port), StringHandler) as server:
        print("ready", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()

"""Reference: the same string server on the kernel's TCP stack (plain sockets).

Reads one request line, answers it, closes: what `l4kit respond` does by default.

    python _kernel_server.py [PORT] [ROUTES.toml]

With a routes file (``[routes]`` table, as ``l4kit respond --routes`` reads it) it
answers those commands the way l4kit does: the value, and a newline if it has none.
"""

from __future__ import annotations

import socket
import sys
import tomllib

ROUTES = {b"toppage": b"hello world\n", b"ping": b"pong\n"}


def serve(conn: socket.socket) -> None:
    with conn:
        buf = b""
        while b"\n" not in buf:
            b = conn.recv(4096)
            if not b:
                break
            buf += b
        line = buf.split(b"\n", 1)[0].rstrip(b"\r")
        conn.sendall(ROUTES.get(line, b"error: unknown command\n"))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as f:
            for command, reply in tomllib.load(f)["routes"].items():
                ROUTES[command.encode()] = (reply if reply.endswith("\n") else reply + "\n").encode()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        serve(conn)  # inline: the request is already in flight, a thread would only add cost


if __name__ == "__main__":
    main()

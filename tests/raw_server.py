"""A bare TCP server on loopback for the end-to-end tests of targets that misbehave below
HTTP: it takes each connection, lets the client's first bytes arrive, hands the connection to
`answer` (which may write something, or set it up to reset) and closes it."""
from __future__ import annotations

import socket
import struct
import threading
from typing import Callable


class RawServer:
    def __init__(self, answer: Callable[[socket.socket], None]):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(0.5)
                conn.recv(65536)
                self.answer(conn)
            except OSError:
                pass
            conn.close()

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


def reset(conn: socket.socket) -> None:
    """Close with an RST instead of an answer (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

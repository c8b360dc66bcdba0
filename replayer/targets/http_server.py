"""A small asyncio HTTP server speaking HTTP/1.1 (keep-alive) and cleartext HTTP/2 (h2c, prior
knowledge) on one port.

Paths choose behaviour so one target can be healthy and faulty at once:
  /status/N      answer with status N
  /delay/MS      answer after MS milliseconds
  /reset         close the connection with a TCP reset, no answer
  /hang          accept and never answer
  /bytes/N       answer with an N-byte body
anything else gets the server's default status after its default delay.
"""
from __future__ import annotations

import asyncio
import re
import socket
import struct
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events

_PATH = re.compile(rb"^/(status|delay|reset|hang|bytes)(?:/(\d+))?")
_REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 400: b"Bad Request",
            404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Behaviour:
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b"ok\n"


@dataclass
class Action:
    kind: str            # "answer", "reset", "hang"
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b""


def choose(path: bytes, default: Behaviour) -> Action:
    m = _PATH.match(path)
    if not m:
        return Action("answer", default.status, default.delay_s, default.body)
    what, arg = m.group(1), m.group(2)
    value = int(arg) if arg else 0
    if what == b"status":
        return Action("answer", value or 200, default.delay_s, default.body)
    if what == b"delay":
        return Action("answer", default.status, value / 1000.0, default.body)
    if what == b"bytes":
        return Action("answer", default.status, default.delay_s, b"x" * value)
    return Action(what.decode())


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, behaviour: Behaviour, stats: dict):
        self.behaviour = behaviour
        self.stats = stats
        self.buf = b""
        self.transport = None
        self.h2 = None
        self.closed = False
        self.busy = False          # HTTP/1.1: one request at a time, in order

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.closed = True

    def data_received(self, data):
        if self.h2 is not None:
            self._h2_data(data)
            return
        self.buf += data
        if len(self.buf) >= len(_H2_PREFACE) and self.buf.startswith(_H2_PREFACE[:3]) \
                and self.buf.startswith(_H2_PREFACE):
            self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            self.h2.initiate_connection()
            data, self.buf = self.buf, b""
            self._h2_data(data)
            return
        self._h1_next()

    # HTTP/1.1
    def _h1_next(self):
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].split(b"\r\n")
            try:
                method, path, version = head[0].split(b" ", 2)
            except ValueError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                self.transport.close()
                return
            length, keep = 0, version == b"HTTP/1.1"
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection":
                    v = value.strip().lower()
                    keep = v == b"keep-alive" or (keep and v != b"close")
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.stats["requests"] = self.stats.get("requests", 0) + 1
            action = choose(path, self.behaviour)
            if action.kind == "reset":
                _reset(self.transport)
                self.closed = True
                return
            if action.kind == "hang":
                self.busy = True
                return
            if action.delay_s > 0:
                self.busy = True
                asyncio.get_running_loop().call_later(action.delay_s, self._h1_answer, action, keep)
                return
            self._h1_answer(action, keep)

    def _h1_answer(self, action: Action, keep: bool):
        self.busy = False
        if self.closed:
            return
        reason = _REASONS.get(action.status, b"Status")
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n%s" % (
            action.status, reason, len(action.body), b"" if keep else b"connection: close\r\n", action.body))
        if not keep:
            self.transport.close()
            self.closed = True
            return
        if self.buf:
            self._h1_next()

    # HTTP/2 (h2c prior knowledge)
    def _h2_data(self, data):
        try:
            events = self.h2.receive_data(data)
        except Exception:  # a protocol error from the peer: drop the connection as a server would
            self.transport.abort()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = dict(event.headers)
                path = headers.get(b":path", headers.get(":path", b"/"))
                if isinstance(path, str):
                    path = path.encode()
                self.stats["requests"] = self.stats.get("requests", 0) + 1
                action = choose(path, self.behaviour)
                if action.kind == "reset":
                    _reset(self.transport)
                    self.closed = True
                    return
                if action.kind == "hang":
                    continue
                if action.delay_s > 0:
                    asyncio.get_running_loop().call_later(action.delay_s, self._h2_answer,
                                                          event.stream_id, action)
                else:
                    self._h2_answer(event.stream_id, action)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self._h2_flush()

    def _h2_answer(self, stream_id: int, action: Action):
        if self.closed:
            return
        try:
            self.h2.send_headers(stream_id, [(":status", str(action.status)),
                                             ("content-length", str(len(action.body))),
                                             ("content-type", "text/plain")],
                                 end_stream=not action.body)
            if action.body:
                self.h2.send_data(stream_id, action.body, end_stream=True)
        except Exception:  # the stream was reset by the client meanwhile
            return
        self._h2_flush()

    def _h2_flush(self):
        out = self.h2.data_to_send()
        if out and not self.closed:
            self.transport.write(out)


async def start_http(host: str, port: int, behaviour: Behaviour, stats: dict, reuse_port=False):
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(behaviour, stats), host, port,
                                    reuse_port=reuse_port or None, backlog=4096)

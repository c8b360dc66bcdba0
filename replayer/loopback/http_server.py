"""A small asyncio HTTP server speaking HTTP/1.1 (keep-alive), cleartext HTTP/2 (h2c, prior
knowledge) and, with a certificate, HTTPS (HTTP/1.1 or HTTP/2 by ALPN) on one port.

Paths choose behaviour so one target can be healthy and faulty at once. The first path
segment names it; numbers follow after '/' or '-' (so `/status-503` works as well as
`/status/503`, and an endpoint name can double as the path):
  /ok                  answer 200 at once, whatever --fault says
  /status/N            answer with status N
  /delay/MS            answer after MS milliseconds
  /reset               close the connection with a TCP reset, no answer
  /hang                accept and never answer
  /bytes/N             answer with an N-byte body, streamed in 64 KiB chunks (any size)
  /slow/BPS[/N]        answer an N-byte body (default 100) at BPS bytes per second, byte by byte
  /truncate[/N]        announce an N-byte body (default 1024), send half, close the connection
  /goaway              HTTP/2: send GOAWAY refusing this stream and close the connection;
                       HTTP/1.1: close the connection without an answer
Other paths get the share faults of --fault (if one is drawn) or the default status after the
default delay. With a RequestLog (`replayer serve --record-requests FILE`) every request received
is also written down, one JSON line each.
"""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from replayer.loopback.faults import FaultRule, ShareChooser

_KINDS = {b"ok", b"status", b"delay", b"reset", b"hang", b"bytes", b"slow", b"truncate", b"goaway"}
_REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 400: b"Bad Request",
            404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CHUNK = 1 << 16
_FILL = memoryview(b"x" * _CHUNK)
_MAX_HEAD = 1 << 16


class RequestLog:
    """One JSON line per HTTP request received, flushed at once, for tests and demos that must
    see what a target got: t_ns (Unix time in ns when its head had arrived), method, path,
    headers ([name, value] pairs as sent; HTTP/2's pseudo-headers left out) and the body (as
    text, or body_b64 when it is not UTF-8); "incomplete": true for an HTTP/2 request whose
    stream was reset before its body ended (what arrived of it is kept)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")

    def write(self, t_ns: int, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
              body: bytes, complete: bool = True) -> None:
        line = {"t_ns": t_ns, "method": method.decode("latin-1"), "path": path.decode("latin-1"),
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers]}
        try:
            line["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            line["body_b64"] = base64.b64encode(body).decode()
        if not complete:
            line["incomplete"] = True
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class Behaviour:
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b"ok\n"
    faults: list[FaultRule] = field(default_factory=list)
    seed: int = 1
    log: RequestLog | None = None

    def __post_init__(self):
        self.chooser = ShareChooser([r for r in self.faults if r.http], self.seed)


@dataclass
class Action:
    kind: str            # "answer", "reset", "hang", "slow", "truncate", "goaway"
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b""
    length: int = -1     # body length to stream (answer, slow, truncate); -1: len(body)
    rate: int = 0        # slow: bytes per second

    @property
    def size(self) -> int:
        return len(self.body) if self.length < 0 else self.length


def _split(path: bytes) -> tuple[bytes, list[int]]:
    path = path.split(b"?", 1)[0]
    parts = path.lstrip(b"/").replace(b"-", b"/").split(b"/")
    nums = []
    for p in parts[1:3]:
        if not p.isdigit() or len(p) > 12:
            break
        nums.append(int(p))
    return parts[0], nums


def _from_rule(rule: FaultRule, default: Behaviour) -> Action:
    k, arg = rule.kind, rule.arg
    if k == "delay":
        return Action("answer", default.status, arg / 1000.0, default.body)
    if k == "status":
        return Action("answer", arg, default.delay_s, default.body)
    if k == "bytes":
        return Action("answer", default.status, default.delay_s, length=arg)
    if k == "slow":
        return Action("slow", default.status, length=100, rate=arg)
    if k == "truncate":
        return Action("truncate", default.status, length=arg)
    return Action(k)     # reset, hang, goaway


def choose(path: bytes, default: Behaviour) -> Action:
    what, nums = _split(path)
    if what not in _KINDS:
        if default.chooser:
            rule = default.chooser.pick(path.decode("latin-1"))
            if rule is not None:
                return _from_rule(rule, default)
        return Action("answer", default.status, default.delay_s, default.body)
    value = nums[0] if nums else None
    if what == b"ok":
        return Action("answer", 200, 0.0, default.body)
    if what == b"status":
        return Action("answer", value if value and 100 <= value <= 599 else 200, default.delay_s,
                      default.body)
    if what == b"delay":
        return Action("answer", default.status, (value or 0) / 1000.0, default.body)
    if what == b"bytes":
        return Action("answer", default.status, default.delay_s, length=value or 0)
    if what == b"slow":
        return Action("slow", default.status, length=nums[1] if len(nums) > 1 else 100,
                      rate=max(1, value or 10))
    if what == b"truncate":
        return Action("truncate", default.status, length=max(2, value or 1024))
    return Action(what.decode())


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _slow_tick(rate: int) -> tuple[float, int]:
    """Seconds between writes and bytes per write for a slow answer: one byte at a time up to
    100 B/s, then a write every 10 ms."""
    interval = max(1.0 / rate, 0.01)
    return interval, max(1, int(round(rate * interval)))


class HttpProtocol(asyncio.Protocol):
    def __init__(self, behaviour: Behaviour, stats: dict):
        self.behaviour = behaviour
        self.stats = stats
        self.buf = b""
        self.transport = None
        self.h2 = None
        self.closed = False
        self.busy = False          # HTTP/1.1: one request at a time, in order
        self.paused = False        # the transport's write buffer is full
        self.h1_body = None        # (remaining bytes, keep-alive) of a streamed HTTP/1.1 body
        self.h2_bodies: dict[int, int] = {}   # stream id -> bytes still to send
        self.h2_logged: dict[int, list] = {}  # --record-requests: stream id -> its request so far
        self.timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._start_h2()

    def connection_lost(self, exc):
        self.closed = True
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self.h1_body is not None:
            self._h1_pump()
        elif self.h2 is not None and self.h2_bodies:
            self._h2_pump()

    def _later(self, delay: float, fn, *args):
        self.timers = [t for t in self.timers if not t.cancelled()]
        self.timers.append(asyncio.get_running_loop().call_later(delay, fn, *args))

    def _action(self, path: bytes) -> Action:
        """Count the request and choose what it gets; a reset is done here, for either
        protocol (the connection is then closed)."""
        self.stats["requests"] = self.stats.get("requests", 0) + 1
        action = choose(path, self.behaviour)
        if action.kind == "reset":
            _reset(self.transport)
            self.closed = True
        return action

    def data_received(self, data):
        if self.h2 is not None:
            self._h2_data(data)
            return
        self.buf += data
        if self.buf.startswith(_H2_PREFACE[:len(self.buf)]):
            if len(self.buf) < len(_H2_PREFACE):
                return
            self._start_h2()
            data, self.buf = self.buf, b""
            self._h2_data(data)
            return
        if len(self.buf) > _MAX_HEAD and self.buf.find(b"\r\n\r\n") < 0:
            self._h1_bad()
            return
        self._h1_next()

    # HTTP/1.1 ------------------------------------------------------------------------------
    def _h1_bad(self):
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
        self.transport.close()
        self.closed = True

    def _h1_next(self):
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].split(b"\r\n")
            try:
                method, path, version = head[0].split(b" ", 2)
                length, keep = 0, version == b"HTTP/1.1"
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip() or 0)
                        if length < 0:
                            raise ValueError
                    elif name == b"connection":
                        v = value.strip().lower()
                        keep = v == b"keep-alive" or (keep and v != b"close")
            except ValueError:
                self._h1_bad()
                return
            if len(self.buf) < end + 4 + length:
                return
            if self.behaviour.log is not None:
                fields = [tuple(p.strip() for p in line.split(b":", 1)) for line in head[1:]
                          if b":" in line]
                self.behaviour.log.write(time.time_ns(), method, path, fields,
                                         self.buf[end + 4:end + 4 + length])
            self.buf = self.buf[end + 4 + length:]
            action = self._action(path)
            kind = action.kind
            if kind == "reset":
                return
            if kind == "goaway":
                self.transport.close()    # FIN without an answer
                self.closed = True
                return
            self.busy = True
            if kind == "hang":
                return
            if action.delay_s > 0:
                self._later(action.delay_s, self._h1_answer, action, keep)
                return
            self._h1_answer(action, keep)

    def _h1_head(self, action: Action, keep: bool) -> bytes:
        reason = _REASONS.get(action.status, b"Status")
        return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n" % (
            action.status, reason, action.size, b"" if keep else b"connection: close\r\n")

    def _h1_answer(self, action: Action, keep: bool):
        if self.closed:
            return
        if action.kind == "slow":
            self.transport.write(self._h1_head(action, keep))
            interval, step = _slow_tick(action.rate)
            self._later(interval, self._h1_slow, action.size, interval, step, keep)
            return
        if action.kind == "truncate":
            self.transport.write(self._h1_head(action, keep))
            self.h1_body = (action.size // 2, None)   # None: close when sent
            self._h1_pump()
            return
        if action.length < 0:
            self.transport.write(self._h1_head(action, keep) + action.body)
            self._h1_done(keep)
            return
        self.transport.write(self._h1_head(action, keep))
        self.h1_body = (action.length, keep)
        self._h1_pump()

    def _h1_slow(self, remaining: int, interval: float, step: int, keep: bool):
        if self.closed:
            return
        n = min(step, remaining)
        self.transport.write(_FILL[:n])
        remaining -= n
        if remaining > 0:
            self._later(interval, self._h1_slow, remaining, interval, step, keep)
        else:
            self._h1_done(keep)

    def _h1_pump(self):
        remaining, keep = self.h1_body
        while remaining > 0 and not self.paused and not self.closed:
            n = min(_CHUNK, remaining)
            self.transport.write(_FILL[:n])
            remaining -= n
        if self.closed:
            self.h1_body = None
            return
        if remaining > 0:
            self.h1_body = (remaining, keep)
            return
        self.h1_body = None
        if keep is None:      # truncate: the body stops half-way, the connection closes
            self.transport.close()
            self.closed = True
            return
        self._h1_done(keep)

    def _h1_done(self, keep: bool):
        self.busy = False
        if not keep:
            self.transport.close()
            self.closed = True
            return
        if self.buf:
            self._h1_next()

    # HTTP/2 -------------------------------------------------------------------------------
    def _start_h2(self):
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.h2.initiate_connection()
        self._h2_flush()

    def _close(self):
        if not self.closed:
            self.transport.close()
            self.closed = True

    def _h2_data(self, data):
        try:
            events = self.h2.receive_data(data)
        except Exception:  # a protocol error from the peer: drop the connection as a server would
            self.transport.abort()
            self.closed = True
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                path = b"/"
                for name, value in event.headers:
                    if name in (b":path", ":path"):
                        path = value if isinstance(value, bytes) else value.encode()
                if self.behaviour.log is not None:
                    self._h2_log_start(event)
                action = self._action(path)
                kind = action.kind
                if kind == "reset":
                    return
                if kind == "goaway":
                    # Refuse this stream and every later one, then close.
                    self.h2.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                             last_stream_id=max(0, event.stream_id - 2))
                    self._h2_flush()
                    self._later(0.05, self._close)
                    return
                if kind == "hang":
                    continue
                if action.delay_s > 0:
                    self._later(action.delay_s, self._h2_answer, event.stream_id, action)
                else:
                    self._h2_answer(event.stream_id, action)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id in self.h2_logged:
                    self.h2_logged[event.stream_id][4] += event.data
            elif isinstance(event, h2.events.StreamEnded):
                if event.stream_id in self.h2_logged:
                    self.behaviour.log.write(*self.h2_logged.pop(event.stream_id))
            elif isinstance(event, h2.events.WindowUpdated):
                if self.h2_bodies:
                    self._h2_pump()
            elif isinstance(event, h2.events.StreamReset):
                self.h2_bodies.pop(event.stream_id, None)
                if event.stream_id in self.h2_logged:
                    self.behaviour.log.write(*self.h2_logged.pop(event.stream_id), complete=False)
        self._h2_flush()

    def _h2_log_start(self, event) -> None:
        """A request's head, written with its body when its stream ends."""
        own = [tuple(x if isinstance(x, bytes) else x.encode() for x in item)
               for item in event.headers]
        pseudo = dict(item for item in own if item[0].startswith(b":"))
        self.h2_logged[event.stream_id] = [
            time.time_ns(), pseudo.get(b":method", b""), pseudo.get(b":path", b"/"),
            [item for item in own if not item[0].startswith(b":")], b""]

    def _h2_answer(self, stream_id: int, action: Action):
        if self.closed:
            return
        try:
            self.h2.send_headers(stream_id, [(":status", str(action.status)),
                                             ("content-length", str(action.size)),
                                             ("content-type", "text/plain")],
                                 end_stream=action.size == 0)
            if action.kind == "slow":
                interval, step = _slow_tick(action.rate)
                self._later(interval, self._h2_slow, stream_id, action.size, interval, step)
            elif action.kind == "truncate":
                self.h2_bodies[stream_id] = -(action.size // 2)   # negative: then close
                self._h2_pump()
            elif action.length < 0:
                if action.body:
                    self.h2.send_data(stream_id, action.body, end_stream=True)
            elif action.length > 0:
                self.h2_bodies[stream_id] = action.length
                self._h2_pump()
        except h2.exceptions.H2Error:  # the stream was reset by the client meanwhile
            self.h2_bodies.pop(stream_id, None)
            return
        self._h2_flush()

    def _h2_slow(self, stream_id: int, remaining: int, interval: float, step: int):
        if self.closed:
            return
        try:
            window = self.h2.local_flow_control_window(stream_id)
            n = min(step, remaining, window)
            if n > 0:
                remaining -= n
                self.h2.send_data(stream_id, bytes(_FILL[:n]), end_stream=remaining == 0)
        except h2.exceptions.H2Error:
            return
        self._h2_flush()
        if remaining > 0:
            self._later(interval, self._h2_slow, stream_id, remaining, interval, step)

    def _h2_pump(self):
        """Send streamed bodies as far as flow control and the write buffer allow."""
        for stream_id in list(self.h2_bodies):
            remaining = self.h2_bodies[stream_id]
            truncate = remaining < 0
            left = -remaining if truncate else remaining
            try:
                while left > 0 and not self.paused and not self.closed:
                    window = min(self.h2.local_flow_control_window(stream_id),
                                 self.h2.max_outbound_frame_size)
                    if window <= 0:
                        break
                    n = min(window, left, _CHUNK)
                    left -= n
                    self.h2.send_data(stream_id, bytes(_FILL[:n]),
                                      end_stream=left == 0 and not truncate)
                    self._h2_flush()
            except h2.exceptions.H2Error:
                self.h2_bodies.pop(stream_id, None)
                continue
            if left > 0:
                self.h2_bodies[stream_id] = -left if truncate else left
                continue
            del self.h2_bodies[stream_id]
            if truncate:
                # Close mid-body: the stream ends without its announced length.
                self._h2_flush()
                self.transport.close()
                self.closed = True
                return
        self._h2_flush()

    def _h2_flush(self):
        out = self.h2.data_to_send()
        if out and not self.closed:
            self.transport.write(out)


async def start_http(host: str, port: int, behaviour: Behaviour, stats: dict, reuse_port=False,
                     ssl=None):
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(behaviour, stats), host, port,
                                    reuse_port=reuse_port or None, backlog=4096, ssl=ssl)

"""The native HTTP/1.1 client (replayer._h1), driven by the real pacer against real servers on
loopback: answer framings and malformed answers, timeouts, connections the server closes or
resets, dialling (refused, several addresses, unresolvable, IPv6), the request bytes on the
wire (and libcurl's for the same run), large bodies both ways, abort, and how a run picks its
HTTP client.

Most servers here are scripted raw TCP servers (`Scripted`): they read each request up to its
blank line and Content-Length body, record it, and write canned bytes or run a small script."""
from __future__ import annotations

import re
import socket
import struct
import threading
import time
from typing import NamedTuple

import numpy as np
import pytest

from conftest import EXAMPLE_LOAD, free_port, replayer
from replayer import _h1, _pacer
from replayer.analysis.records import ROW_DTYPE, ErrorKind
from replayer.transports import TransportConfig, traceparent
from replayer.transports.libcurl import http_transport
from replayer.transports.native import build_request, native_transport, socket_addresses

MS = 1_000_000
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BIG = 5 << 20


# ---- a scripted server ----

class Request(NamedTuple):
    conn: int          # which of the server's connections it came on (from 0)
    head: bytes        # request line and headers, without the blank line
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()

    @property
    def headers(self) -> list[tuple[str, str]]:
        fields = [h.decode().partition(":") for h in self.head.split(b"\r\n")[1:]]
        return [(name, value.strip()) for name, _, value in fields]


class Scripted:
    """A raw HTTP server on loopback. Request n (over all connections, from 0) is answered
    with answers[n] (the last one for the rest): bytes are written as they are (then the
    connection is closed if `close`), a function(conn, n) writes its own answer and returns
    whether the connection goes on. `rcvbuf` and `read_pause` make a slow reader of bodies;
    `early` answers on the head alone, before reading the body (recorded empty)."""

    def __init__(self, *answers, close=False, early=False, host="127.0.0.1", rcvbuf=0,
                 read_pause=0.0):
        self.answers, self.close, self.early, self.read_pause = answers, close, early, read_pause
        self.requests: list[Request] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                number = self.connections
                self.connections += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, number):
        buf = bytearray()
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    if not _recv_into(conn, buf):
                        return
                end = buf.index(b"\r\n\r\n")
                head = bytes(buf[:end])
                del buf[:end + 4]
                length = next((int(v) for k, v in Request(0, head, b"").headers
                               if k.lower() == "content-length"), 0)
                if self.early and not self._answer(conn, self._record(number, head, b"")):
                    conn.shutdown(socket.SHUT_WR)      # then take what the client still sends
                    conn.settimeout(2)
                    while _recv_into(conn, buf):
                        buf.clear()
                    return
                if length and self.read_pause:
                    time.sleep(self.read_pause)
                while len(buf) < length:
                    if not _recv_into(conn, buf):
                        return
                body = bytes(buf[:length])
                del buf[:length]
                if not self.early and not self._answer(conn, self._record(number, head, body)):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _record(self, number, head, body) -> int:
        with self.lock:
            self.requests.append(Request(number, head, body))
            return len(self.requests) - 1

    def _answer(self, conn, n) -> bool:
        answer = self.answers[min(n, len(self.answers) - 1)]
        if callable(answer):
            return answer(conn, n)
        conn.sendall(answer)
        return not self.close

    def stop(self):
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _recv_into(conn, buf) -> bool:
    data = conn.recv(1 << 16)
    buf += data
    return bool(data)


@pytest.fixture
def serve():
    """serve(*answers, **options): a started Scripted server, stopped after the test."""
    servers = []

    def start(*answers, **options):
        servers.append(Scripted(*answers, **options))
        return servers[-1]
    yield start
    for s in servers:
        s.stop()


# Scripted answers that are functions

def hang(conn, n):
    """Never answer; wait until the client hangs up."""
    conn.settimeout(5)
    conn.recv(1)
    return False


def trickle(data):
    """The answer one byte per write, a millisecond apart."""
    def answer(conn, n):
        for k in range(len(data)):
            conn.sendall(data[k:k + 1])
            time.sleep(0.001)
        return True
    return answer


def close_later(data, pause):
    """The answer, then the connection closed `pause` s later; the function's `unread` says,
    per connection, whether the client had sent another request on it by then."""
    def answer(conn, n):
        conn.sendall(data)
        time.sleep(pause)
        conn.setblocking(False)
        try:
            answer.unread.append(bool(conn.recv(1, socket.MSG_PEEK)))
        except BlockingIOError:
            answer.unread.append(False)
        return False
    answer.unread = []
    return answer


def reset_after(data, pause=0.05):
    """Part of an answer, then the connection reset (SO_LINGER 0)."""
    def answer(conn, n):
        conn.sendall(data)
        time.sleep(pause)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    return answer


def slow(data, pause):
    def answer(conn, n):
        time.sleep(pause)
        conn.sendall(data)
        return True
    return answer


# ---- replaying a schedule ----

def _config(port, **config) -> TransportConfig:
    config.setdefault("endpoints", ["svc.test"])
    config.setdefault("timeout_s", 2.0)
    config.setdefault("resolve", {"*": "127.0.0.1"})
    return TransportConfig(protocol="http", port=port, **config)


def _ring(n):
    buf = bytearray(_pacer.RecordRing.nbytes(n + 1))
    return buf, _pacer.RecordRing(buf, True, n + 1)


def _rows(buf, n):
    rows = np.frombuffer(buf, ROW_DTYPE, count=n, offset=_pacer.RING_HEADER_SIZE)
    return np.sort(rows, order="event")


def _replay(port, n=3, every_ms=20, target=None, client=native_transport, **config):
    """Run the pacer over n requests every_ms apart (to target[event], default all to the first
    endpoint) with `client`; return the ring's rows by event."""
    buf, ring = _ring(n)
    control = np.zeros(_pacer.CONTROL_SIZE, np.int64)
    control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    control[_pacer.CONTROL_START_NS] = _pacer.now_ns() + 20 * MS
    transport = client(ring, _config(port, **config), np.asarray(target or [0] * n, np.int32))
    pacer = _pacer.Pacer(np.arange(n, dtype=np.int64) * every_ms * MS, 0, 1, control, 50_000)
    pacer.run(transport, 5000 * MS)
    transport.close()
    assert ring.write_idx == n            # one record per request, never two
    return _rows(buf, n)


def _errors(rows) -> list[int]:
    return rows["error"].tolist()


# ---- 1. answer framings ----

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = (CHUNKED_HEAD + b"5;x=y\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n"   # 21 bytes
           b"0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n")
BIG_BODY = bytes(range(256)) * (BIG // 256)
BIG_CHUNKS = [BIG_BODY[k:k + 70000] for k in range(0, BIG, 70000)]
FRAMINGS = [
    # id, answer, server closes after it, config, status, bytes_in, one connection for all
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
     False, {}, 200, 11, True),
    ("chunked-extensions-trailers", CHUNKED, False, {}, 200, 21, True),
    ("chunked-no-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", False, {}, 200, 3, True),
    ("until-close-1.1", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 1000,
     True, {}, 200, 1000, False),
    ("until-close-1.0", b"HTTP/1.0 200 OK\r\n\r\n" + b"y" * 777, True, {}, 200, 777, False),
    # The server keeps these connections open: the client must close them itself.
    ("http-1.0-length", b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
     False, {}, 200, 3, False),
    ("connection-close", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
     False, {}, 200, 3, False),
    ("http-1.0-keep-alive",
     b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc",
     False, {}, 200, 3, True),
    ("content-length-0", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     False, {}, 200, 0, True),
    ("bytes-past-the-answer", OK + b"JUNK", False, {}, 200, 2, False),
    ("204", b"HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n", False, {}, 204, 0, True),
    ("304-with-length",
     b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n",
     False, {}, 304, 0, True),
    ("head", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
     False, {"method": "HEAD"}, 200, 0, True),
    ("head-chunked", CHUNKED_HEAD, False, {"method": "HEAD"}, 200, 0, True),
    ("100-continue",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
     False, {}, 201, 2, True),
    ("103-early-hints", b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + OK,
     False, {}, 200, 2, True),
    ("404", b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
     False, {}, 404, 9, True),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False, {}, 200, 2, True),
    ("head-of-200KB", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (k, b"p" * 1000)
                                                        for k in range(200))
     + b"Content-Length: 2\r\n\r\nok", False, {}, 200, 2, True),
    ("5MB-length", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + BIG_BODY,
     False, {}, 200, BIG, True),
    ("5MB-chunked", CHUNKED_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in BIG_CHUNKS)
     + b"0\r\n\r\n", False, {}, 200, BIG, True),
]


@pytest.mark.parametrize("answer, close, config, status, bytes_in, reused",
                         [f[1:] for f in FRAMINGS], ids=[f[0] for f in FRAMINGS])
def test_answer_framings(serve, answer, close, config, status, bytes_in, reused):
    """Every way an answer is framed (Content-Length, chunked with extensions and trailers,
    until close, HTTP/1.0, 1xx before the answer, no body after HEAD, 204 and 304, bare LF,
    large heads and bodies): the status and body bytes sent, over one connection that keep-alive
    answers leave reusable and the others end."""
    srv = serve(answer, close=close)
    rows = _replay(srv.port, connections=1, **config)
    assert rows["status"].tolist() == [status] * 3
    assert rows["bytes_in"].tolist() == [bytes_in] * 3
    assert _errors(rows) == [ErrorKind.OK if status < 400 else ErrorKind.STATUS] * 3
    assert (rows["sent_ns"] >= rows["scheduled_ns"]).all()
    assert (rows["done_ns"] > rows["sent_ns"]).all()
    assert len(srv.requests) == 3
    assert srv.connections == (1 if reused else 3)


@pytest.mark.parametrize("answer, bytes_in", [
    (b"HTTP/1.1 100 Continue\r\n\r\n" + CHUNKED, 21),
    (b"HTTP/1.1 200 OK\r\nServer: trickle\r\nContent-Length: 10\r\n\r\n0123456789", 10),
], ids=["interim-chunked", "content-length"])
def test_an_answer_one_byte_at_a_time(serve, answer, bytes_in):
    """An answer that arrives one byte per read: the parser resumes anywhere (status line, blank
    line, chunk sizes, trailers)."""
    srv = serve(trickle(answer))
    rows = _replay(srv.port, n=2, connections=1)
    assert _errors(rows) == [ErrorKind.OK] * 2
    assert rows["bytes_in"].tolist() == [bytes_in] * 2
    assert srv.connections == 1


# ---- 2. malformed answers ----

MALFORMED = {
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "http-2-status-line": b"HTTP/2 200\r\ncontent-length: 2\r\n\r\nok",
    "status-letters": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-two-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "length-letters": b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nok",
    "length-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "length-empty": b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok",
    "chunk-size-not-hex": CHUNKED_HEAD + b"zz\r\nok\r\n0\r\n\r\n",
    "chunk-longer-than-said": CHUNKED_HEAD + b"2\r\nokXX\r\n0\r\n\r\n",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "head-over-256KiB": b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 300_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_answers_are_protocol_errors(serve, answer):
    """A malformed first answer is a `protocol` failure; its connection is dropped and the run
    goes on on a new one."""
    srv = serve(answer, OK)
    rows = _replay(srv.port, connections=1)
    assert _errors(rows) == [ErrorKind.PROTOCOL, ErrorKind.OK, ErrorKind.OK]
    assert rows["status"].tolist()[1:] == [200, 200]
    assert [r.conn for r in srv.requests] == [0, 1, 1]


# ---- 3. timeouts ----

def test_a_request_unanswered_times_out_and_the_queue_goes_on(serve):
    """Three due at once on one connection, the first never answered: it times out, and the two
    waiting behind it go out then, each with its own clock (from its dial, not from its
    wait)."""
    srv = serve(hang, OK)
    rows = _replay(srv.port, every_ms=0, connections=1, timeout_s=0.3)
    assert _errors(rows) == [ErrorKind.TIMEOUT, ErrorKind.OK, ErrorKind.OK]
    waited = (rows["done_ns"][0] - rows["sent_ns"][0]) / 1e9
    assert 0.25 <= waited <= 0.8, waited
    assert rows["sent_ns"][1] >= rows["done_ns"][0]
    assert (rows["done_ns"][1:] - rows["scheduled_ns"][1:] > 0.25e9).all()
    assert [r.conn for r in srv.requests] == [0, 1, 1]


# ---- 4. connections the server closes or resets ----

@pytest.mark.parametrize("pause, every_ms, stale", [(0.03, 150, 0), (0.1, 30, 3)],
                         ids=["closed-while-idle", "closed-under-a-request"])
def test_keep_alive_connections_the_server_closes(serve, pause, every_ms, stale):
    """The server closes each connection after one answer: while the client holds it idle (it
    sees the close and dials anew), or after the client sent the next request on it (that
    request goes again, once, on a fresh connection). All succeed."""
    answer = close_later(OK, pause)
    srv = serve(answer)
    rows = _replay(srv.port, n=4, every_ms=every_ms, connections=1)
    assert _errors(rows) == [ErrorKind.OK] * 4
    assert len(srv.requests) == 4 and srv.connections == 4
    assert sum(answer.unread) == stale


def test_a_reset_mid_answer_is_recorded_once(serve):
    """A reused connection reset halfway through an answer: `reset`, not sent again (the server
    saw it once), and the run goes on."""
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
    srv = serve(OK, reset_after(half), OK)
    rows = _replay(srv.port, connections=1)
    assert _errors(rows) == [ErrorKind.OK, ErrorKind.RESET, ErrorKind.OK]
    assert [r.conn for r in srv.requests] == [0, 0, 1]


# ---- 5. dialling ----

def test_nothing_listening_is_a_connect_error_at_once():
    """A port nobody listens on: every request a `connect` failure, recorded within 200 ms of
    its time."""
    rows = _replay(free_port(), n=5, every_ms=5)
    assert _errors(rows) == [ErrorKind.CONNECT] * 5
    assert (rows["done_ns"] - rows["scheduled_ns"] < 200 * MS).all()


def test_an_unresolvable_name_is_a_connect_error():
    """A host name that does not resolve: a `connect` failure for each request."""
    rows = _replay(free_port(), n=2, endpoints=["no-such-host.invalid"], resolve={})
    assert _errors(rows) == [ErrorKind.CONNECT] * 2


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6(),
                                reason="this host has no IPv6 loopback (binding ::1 fails)")


@needs_ipv6
def test_a_name_with_two_addresses_falls_through_to_the_one_listening(serve, monkeypatch):
    """A name whose first address (IPv6) refuses the dial and whose second (IPv4) listens: the
    client falls through to the second."""
    # dual.test is ::1 first, then 127.0.0.1; the server is on 127.0.0.1 only (its port on ::1
    # is held by a socket that does not listen, so that dial is refused).
    srv = serve(OK)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (
        real("::1", *a, **k) + real("127.0.0.1", *a, **k) if host == "dual.test"
        else real(host, *a, **k)))
    families = [struct.unpack("=H", a[:2])[0] for a in socket_addresses("dual.test", srv.port)]
    assert families == [socket.AF_INET6, socket.AF_INET]
    with socket.socket(socket.AF_INET6) as refuse:
        refuse.bind(("::1", srv.port))
        rows = _replay(srv.port, endpoints=["dual.test"], resolve={})
    assert _errors(rows) == [ErrorKind.OK] * 3


def test_an_address_family_the_kernel_lacks_falls_through(serve):
    """An address of a family socket() refuses is skipped for the next one."""
    srv = serve(OK)
    unsupported = struct.pack("=H", 5) + bytes(14)       # AF_APPLETALK: socket() refuses it
    request, _ = build_request("http://svc.test/", "GET", [], None, False)
    rows = _replay(srv.port, client=lambda ring, conf, target: _h1.NativeHttpTransport(
        ring, _pacer.ContentTable(target, None, None, 1, 0, {(0, -1): 0}, [([request], [], 0, 0)]),
        [0], [[unsupported] + socket_addresses("127.0.0.1", srv.port)],
        int(conf.timeout_s * 1e9), 1))
    assert _errors(rows) == [ErrorKind.OK] * 3


# ---- 6. the request on the wire ----

def _wire(srv, client, n=3, **config) -> list[Request]:
    """The requests `srv` got from `client` for this run, in arrival order."""
    start = len(srv.requests)
    rows = _replay(srv.port, n=n, client=client, **config)
    assert _errors(rows) == [ErrorKind.OK] * n
    return srv.requests[start:]


def _seen(requests: list[Request]) -> list[tuple]:
    """What the server saw, in an order of its own (arrivals from two clients may cross):
    request lines, header fields (names in lower case) and bodies."""
    return sorted((r.line, sorted((n.lower(), v) for n, v in r.headers), r.body) for r in requests)


WIRE = {
    "put-body-trace": dict(method="PUT", payload=b'{"n": 1}', trace_id_high=0x1234,
                           headers=["Accept: application/json", "X-Empty;", "X-Run: abc"]),
    "get-removed-defaults": dict(headers=["Accept:", "Host: other.test"]),
    "post-default-type": dict(payload=b"a=1&b=2", headers=["content-type: text/plain"]),
}


@pytest.mark.parametrize("config", WIRE.values(), ids=WIRE.keys())
def test_the_same_request_as_libcurl(serve, config):
    """The same run through both clients: the same request line, header fields and body (libcurl
    orders some fields differently and keeps a user's spelling of a default's name), each with
    the expected values."""
    common = dict(endpoints=["a.test", "b.test"], target=[0, 1, 0],
                  url_template="http://{endpoint}:{port}/p/{endpoint}?q=1&r=two")
    srv = serve(OK)
    native = _wire(srv, native_transport, **common, **config)
    curl = _wire(srv, http_transport, **common, **config)
    assert _seen(native) == _seen(curl)
    method = config.get("method") or ("POST" if "payload" in config else "GET")
    assert sorted(r.line for r in native) == [f"{method} /p/{e}.test?q=1&r=two HTTP/1.1"
                                              for e in "aab"]
    fields = dict(next(r.headers for r in native if "b.test" in r.line))
    assert all(r.body == config.get("payload", b"") for r in native)
    if config is WIRE["put-body-trace"]:
        assert re.fullmatch(r"b\.test:\d+", fields["Host"])
        assert (fields["Accept"], fields["X-Empty"], fields["X-Run"]) == \
            ("application/json", "", "abc")
        assert fields["Content-Length"] == "8" and "Expect" not in fields
        ids = sorted(dict(r.headers)["traceparent"] for r in native)
        assert ids == [traceparent(0x1234, e) for e in range(3)]
        assert fields["traceparent"] == traceparent(0x1234, 1)       # event 1 went to b.test
    elif config is WIRE["get-removed-defaults"]:
        assert fields["Host"] == "other.test" and "Accept" not in fields
        assert "Content-Length" not in fields and "traceparent" not in fields
    else:
        low = {n.lower(): v for n, v in fields.items()}     # the user's spelling, as libcurl
        assert (low["content-type"], low["content-length"]) == ("text/plain", "7")
    for r in native:                       # each field once
        assert len({n.lower() for n, _ in r.headers}) == len(r.headers)


def test_trace_ids_follow_each_event_across_connections(serve):
    """Every answer closes its connection, so each request takes a fresh one (often the slot the
    other target's request just left, with a request of another length): each event's
    traceparent and path still go with it."""
    srv = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    rows = _replay(srv.port, n=6, every_ms=10, endpoints=["a.test", "a-longer-name.test"],
                   target=[0, 1] * 3, url_template="http://{endpoint}:{port}/{endpoint}",
                   trace_id_high=0xABC, connections=1)
    assert _errors(rows) == [ErrorKind.OK] * 6
    seen = sorted((dict(r.headers)["traceparent"], r.line.split()[1]) for r in srv.requests)
    assert seen == [(traceparent(0xABC, e), ["/a.test", "/a-longer-name.test"][e % 2])
                    for e in range(6)]


def test_a_header_given_twice_is_sent_twice(serve):
    """A header given twice is sent twice, in order, by both clients."""
    srv, config = serve(OK), dict(n=1, headers=["X-Dup: 1", "X-Dup: 2"])
    curl = [v for n, v in _wire(srv, http_transport, **config)[0].headers if n == "X-Dup"]
    native = [v for n, v in _wire(srv, native_transport, **config)[0].headers if n == "X-Dup"]
    assert curl == ["1", "2"]
    assert native == curl


# ---- 7. a large request body ----

def test_a_large_body_sent_in_parts_arrives_whole(serve):
    """A 6 MB body to a server with a 64 KiB receive buffer that waits before reading (more than
    the socket buffers hold): the client waits for room and goes on, twice on the same
    connection, and the body arrives whole."""
    payload = np.random.default_rng(1).bytes(6 << 20)
    srv = serve(OK, rcvbuf=1 << 16, read_pause=0.2)
    rows = _replay(srv.port, n=2, every_ms=0, connections=1, payload=payload,
                   timeout_s=5)
    assert _errors(rows) == [ErrorKind.OK] * 2
    assert rows["bytes_out"].tolist() == [len(payload)] * 2
    assert [r.body == payload for r in srv.requests] == [True, True]
    assert srv.connections == 1


@pytest.mark.parametrize("answer, close, status", [
    (b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     True, 413),
    (OK, False, 200),
], ids=["413-close", "200-keep-alive"])
def test_an_answer_before_the_whole_body_is_sent(serve, answer, close, status):
    """The server answers on the head alone, with more of a 6 MB body to come than socket
    buffers hold: the answer is recorded as it is (not a reset), its connection (mid-body) is
    not used again, and the run goes on."""
    srv = serve(answer, close=close, early=True, rcvbuf=1 << 16)
    rows = _replay(srv.port, n=2, connections=1, payload=bytes(6 << 20), timeout_s=5)
    assert rows["status"].tolist() == [status] * 2
    assert _errors(rows) == [ErrorKind.OK if status < 400 else ErrorKind.STATUS] * 2
    assert srv.connections == 2


# ---- 8. IPv6 ----

@needs_ipv6
@pytest.mark.parametrize("template, resolve, host", [
    ("http://{endpoint}:{port}/", {"*": "::1"}, "svc.test"),
    ("http://[::1]:{port}/", {}, "[::1]"),
], ids=["resolve", "literal"])
def test_ipv6(serve, template, resolve, host):
    """Over IPv6 loopback, through --resolve or a literal [::1] in the URL: answered, with the
    URL's Host header."""
    srv = serve(OK, host="::1")
    rows = _replay(srv.port, url_template=template, resolve=resolve)
    assert _errors(rows) == [ErrorKind.OK] * 3
    assert {dict(r.headers)["Host"] for r in srv.requests} == {f"{host}:{srv.port}"}


# ---- 9. abort ----

def test_abort_cancels_in_flight_and_queued_once(serve):
    """abort() with one request sent and three waiting for the one connection: each recorded
    once, as `cancelled`, and nothing more comes of them."""
    srv = serve(hang)
    n = 4
    buf, ring = _ring(n)
    transport = native_transport(ring, _config(srv.port, connections=1),
                                 np.zeros(n, np.int32))
    now = _pacer.now_ns()
    for e in range(n):
        transport.submit(e, now, now, _pacer.CAUSE_NONE)
    transport.flush()
    deadline = time.monotonic() + 2
    while not srv.requests and time.monotonic() < deadline:
        transport.poll(10 * MS)
    assert len(srv.requests) == 1 and transport.inflight == n   # one sent, three waiting
    transport.abort()
    assert transport.inflight == 0 and ring.write_idx == n
    transport.poll(50 * MS)                                      # nothing more comes of them
    assert ring.write_idx == n
    transport.close()
    rows = _rows(buf, n)
    assert rows["event"].tolist() == list(range(n))
    assert _errors(rows) == [ErrorKind.CANCELLED] * n
    assert len(srv.requests) == 1


# ---- the connection cap ----

@pytest.mark.parametrize("client", [
    pytest.param(native_transport, id="native"),
    pytest.param(http_transport, id="curl"),
])
def test_the_connection_cap_is_per_host(serve, client):
    """--connections 1 with two endpoints on the same host and port: one connection carries all
    four requests, with either client."""
    srv = serve(slow(OK, 0.05))
    rows = _replay(srv.port, n=4, every_ms=0, client=client, endpoints=["a", "b"],
                   target=[0, 1, 0, 1], url_template="http://svc.test:{port}/{endpoint}",
                   connections=1)
    assert _errors(rows) == [ErrorKind.OK] * 4
    assert srv.connections == 1


# ---- 10. choosing the client ----

@pytest.mark.parametrize("args", [
    ["--url-template", "https://{endpoint}:{port}/"],
    ["--http-version", "2"],
], ids=["https", "http2"])
def test_native_refuses_what_it_cannot_speak(args):
    """--http-client native with https:// or HTTP/2: exit 2, one line naming --http-client
    native."""
    proc = replayer("run", "-traceFile", EXAMPLE_LOAD, "--protocol", "http",
                    "--http-client", "native", *args, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--http-client native" in proc.stderr and "Traceback" not in proc.stderr

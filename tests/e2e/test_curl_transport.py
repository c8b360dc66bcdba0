"""The libcurl transport (replayer._curl), driven by the real pacer against real servers on
loopback: a missing libcurl named, one record per request, honest stamps, the admission queue
that holds requests beyond the connection cap, bodies, methods and headers on the wire, abort,
and connections the server closes."""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from replayer import _pacer
from replayer.transports import TransportConfig, traceparent
from replayer.transports.libcurl import http_transport

MS = 1_000_000


def test_a_missing_libcurl_is_named():
    """A libcurl that cannot be loaded is named in the error (in a fresh interpreter:
    load_libcurl keeps the first library it loads)."""
    p = subprocess.run([sys.executable, "-c", "from replayer import _curl; "
                        "_curl.load_libcurl('/nonexistent/libcurl.so')"], capture_output=True, text=True)
    assert p.returncode != 0
    assert "RuntimeError: cannot use libcurl at /nonexistent/libcurl.so" in p.stderr


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    delay_s = 0.0
    lock = threading.Lock()

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with self.lock:
            type(self).seen.append((self.command, self.path, dict(self.headers), body, time.time_ns()))
        if self.delay_s:
            time.sleep(self.delay_s)
        reply = b"x" * 123
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Recorder.seen = []
    _Recorder.delay_s = 0.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _replay(port, t_ns, target, endpoints, **config):
    """Run the pacer over t_ns with the libcurl transport; return the ring's rows as arrays."""
    n = len(t_ns)
    ring_buf = bytearray(_pacer.RecordRing.nbytes(n + 1))
    ring = _pacer.RecordRing(ring_buf, True, n + 1)
    control = np.zeros(_pacer.CONTROL_SIZE, np.int64)
    control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    control[_pacer.CONTROL_START_NS] = _pacer.now_ns() + 20 * MS
    conf = TransportConfig(protocol="http", endpoints=endpoints, port=port, timeout_s=5,
                           resolve={"*": "127.0.0.1"}, **config)
    target = np.asarray(target, np.int32)
    transport = http_transport(ring, conf, target)
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), 0, 1, control, 50_000)
    pacer.run(transport, 5000 * MS)
    transport.close()
    assert ring.write_idx == n
    dtype = np.dtype([("event", "i8"), ("scheduled_ns", "i8"), ("sent_ns", "i8"), ("done_ns", "i8"),
                      ("bytes_in", "i8"), ("bytes_out", "i4"), ("status", "i4"), ("error", "i1"),
                      ("pad", "V7")])
    rows = np.frombuffer(ring_buf, dtype, count=n, offset=_pacer.RING_HEADER_SIZE)
    return np.sort(rows, order="event"), int(control[_pacer.CONTROL_START_NS])


def test_one_record_per_request_with_honest_stamps(server):
    """40 requests to two endpoints: one record each with the status and bytes answered, the
    intended time from the schedule, a sent stamp taken before the server saw the request (not
    after its answer), and each URL following its event's target."""
    port = server.server_address[1]
    t_ns = np.arange(40) * 2 * MS
    rows, start = _replay(port, t_ns, [0, 1] * 20, ["a.test", "b.test"],
                          url_template="http://{endpoint}:{port}/{endpoint}")
    assert list(rows["event"]) == list(range(40))
    assert (rows["error"] == 0).all() and (rows["status"] == 200).all()
    assert (rows["bytes_in"] == 123).all()
    assert (rows["scheduled_ns"] == start + t_ns).all()
    assert (rows["sent_ns"] >= rows["scheduled_ns"]).all()
    assert (rows["done_ns"] > rows["sent_ns"]).all()
    # The sent stamp is taken before the request reaches the server, not after its answer.
    arrived = np.array(sorted(s[4] for s in _Recorder.seen))
    assert (np.sort(rows["sent_ns"]) <= arrived + 1 * MS).all()
    paths = sorted(s[1] for s in _Recorder.seen)
    assert paths == ["/a.test"] * 20 + ["/b.test"] * 20   # the URL follows each event's target


def test_requests_past_the_connection_cap_wait_their_turn(server):
    """12 requests due at once, one connection, a server that takes 50 ms: libcurl gets one at a
    time, the rest wait in replayer's queue, and each is stamped when it really goes out (the
    next when one finishes)."""
    _Recorder.delay_s = 0.05
    port = server.server_address[1]
    rows, start = _replay(port, np.zeros(12, np.int64), [0] * 12, ["svc.test"], connections=1)
    assert (rows["error"] == 0).all()
    sent = np.sort(rows["sent_ns"])
    assert (np.diff(sent) >= 40 * MS).all()               # one after another, not all at once
    assert sent[-1] - start >= 11 * 40 * MS
    done = np.sort(rows["done_ns"])
    assert (sent[1:] >= done[:-1] - 1 * MS).all()          # the next goes when one finishes


def test_status_method_body_and_headers_on_the_wire(server):
    """The method, body, user headers and each event's traceparent reach the server as given (no
    Expect: 100-continue); a 404 is recorded as a `status` failure."""
    port = server.server_address[1]
    rows, _ = _replay(port, np.arange(3) * MS, [0, 1, 0], ["ok.test", "missing"],
                      url_template="http://{endpoint}:{port}/{endpoint}", method="PUT",
                      payload=b'{"n": 1}', headers=["X-Run: abc"], trace_id_high=0x1234)
    statuses = dict(zip(rows["event"].tolist(), rows["status"].tolist()))
    assert statuses == {0: 200, 1: 404, 2: 200}
    assert rows["error"].tolist() == [0, 9, 0]               # 404: error kind "status"
    assert (rows["bytes_out"] == 8).all()
    seen = sorted(_Recorder.seen, key=lambda s: s[4])
    assert [s[0] for s in seen] == ["PUT"] * 3
    assert all(s[3] == b'{"n": 1}' and s[2]["X-Run"] == "abc" for s in seen)
    assert "Expect" not in seen[0][2]
    assert sorted(s[2]["traceparent"] for s in seen) == sorted(traceparent(0x1234, e) for e in range(3))


def test_abort_cancels_queued_and_in_flight(server):
    """A stop while requests are in libcurl and in the queue: abort() leaves none in flight and
    every one has its record."""
    _Recorder.delay_s = 1.0
    port = server.server_address[1]
    n = 6
    ring_buf = bytearray(_pacer.RecordRing.nbytes(n))
    ring = _pacer.RecordRing(ring_buf, True, n)
    conf = TransportConfig(protocol="http", endpoints=["svc.test"], port=port, timeout_s=5,
                           resolve={"*": "127.0.0.1"}, connections=2)
    transport = http_transport(ring, conf, np.zeros(n, np.int32))
    now = _pacer.now_ns()
    for e in range(n):
        transport.submit(e, now, now, _pacer.CAUSE_NONE)
    transport.flush()
    transport.poll(50 * MS)
    assert transport.inflight == n
    transport.abort()
    assert transport.inflight == 0 and ring.write_idx == n
    transport.close()


@pytest.mark.parametrize("client", ["curl", "grpcio"])
def test_grpc_clients_record_the_same_answers(tmp_path, target, client):
    """Both gRPC clients against the built-in grpcio server: the same statuses and message
    sizes, one record per request."""
    from conftest import replayer, write_load
    from replayer.transports.helloworld import hello_reply, hello_request
    from replayer.analysis.records import read_records
    load = write_load(tmp_path / "load.json", [(list(range(0, 1_000_000, 50_000)), ["svc"] * 20)])
    out = tmp_path / client
    replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
             "-workers", "1", "--protocol", "grpc", "--grpc-client", client,
             "-port", str(target.grpc_port), "--resolve", "*=127.0.0.1", "--out", str(out),
             check_exit=0)
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == 20
    assert set(table.column("error").cast("string").to_pylist()) == {"ok"}
    assert set(table.column("status").to_pylist()) == {0}
    assert set(table.column("bytes_out").to_pylist()) == {len(hello_request("Invoke relay"))}
    assert set(table.column("bytes_in").to_pylist()) == {len(hello_reply("Hello Invoke relay"))}


class _Closing(_Recorder):
    """Answers with Connection: close (close_each) or drops idle keep-alive connections after
    50 ms (a short server keep-alive timeout)."""
    close_each = False
    timeout = 0.05

    def _answer(self):
        if self.close_each:
            self.close_connection = True
        super()._answer()

    def send_header(self, name, value):
        super().send_header(name, value)
        if name == "Content-Length" and self.close_each:
            super().send_header("Connection", "close")

    do_GET = _answer


@pytest.mark.parametrize("close_each", [True, False], ids=["connection-close", "idle-timeout"])
def test_connections_the_server_closes_are_replaced(close_each):
    """Every answer closes its connection, or every connection is closed while idle between
    requests: libcurl closes and opens sockets all the time (their numbers reused), and every
    request still goes out and is answered. (A refused dial, whose next socket wants the same
    events under the same number: tests/e2e/test_unhealthy_targets.py::test_target_down.)"""
    _Closing.close_each = close_each
    _Recorder.seen = []
    _Recorder.delay_s = 0.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Closing)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t_ns = np.arange(12) * (5 if close_each else 100) * MS
        rows, _ = _replay(srv.server_address[1], t_ns, [0] * 12, ["svc.test"])
    finally:
        srv.shutdown()
        srv.server_close()
    assert (rows["error"] == 0).all(), rows["error"]
    assert (rows["status"] == 200).all()
    assert len(_Recorder.seen) == 12

"""Per-request content through the libcurl transport, HTTP/1.1 and HTTP/2 (h2c), driven by the
real pacer against servers on loopback that keep every request they receive: each request
carries its own event id, a deadline computed from its own send stamp and its class's SLO
(in the body and in a header), a payload's method, path and headers instead of the run's, a
fresh 602 KB tensor received whole; slots switching between payloads (a GET after a PUT, a
HEAD) send each as it should be; and a class's timeout ends its requests as `timeout`
records while another class's requests, as slow, succeed."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import numpy as np
import pytest

from replayer import _pacer
from replayer.analysis.records import ErrorKind
from replayer.schedules.content import Body, Field, Payload, RequestClass
from replayer.transports import TransportConfig, make_transport

MS = 1_000_000
TENSOR = 150_528                 # float32 values of a [1, 3, 224, 224] tensor: 602,112 bytes
ROW = np.dtype([("event", "i8"), ("scheduled_ns", "i8"), ("sent_ns", "i8"), ("done_ns", "i8"),
                ("bytes_in", "i8"), ("bytes_out", "i4"), ("status", "i4"), ("error", "i1"),
                ("pad", "V7")])
CLASSES = [RequestClass("tight", slo_ns=50 * MS), RequestClass("loose", slo_ns=2_000 * MS)]


def replay(config: TransportConfig, t_ns, target, payload=None, cls=None) -> dict[int, np.void]:
    """Run the pacer over t_ns with the transport the config asks for; its ring rows by event."""
    n = len(t_ns)
    ring_buf = bytearray(_pacer.RecordRing.nbytes(n + 1))
    ring = _pacer.RecordRing(ring_buf, True, n + 1)
    control = np.zeros(_pacer.CONTROL_SIZE, np.int64)
    control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    control[_pacer.CONTROL_START_NS] = _pacer.now_ns() + 50 * MS
    column = (lambda values, dtype: None if values is None else np.asarray(values, dtype))
    transport = make_transport(config, ring, column(target, np.int32), column(payload, np.int32),
                               column(cls, np.int16))
    if hasattr(transport, "connect"):
        transport.connect(2.0)
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), 0, 1, control, 50_000)
    pacer.run(transport, 5000 * MS)
    transport.close()
    assert ring.write_idx == n
    rows = np.frombuffer(ring_buf, ROW, count=n, offset=_pacer.RING_HEADER_SIZE).copy()
    return {int(r["event"]): r for r in rows}


def json_payload(path: str) -> Payload:
    """A JSON body with the event id (a string of digits), the deadline and the send stamp
    (numbers), and the deadline and the event id in headers too."""
    body = (Body().raw(b'{"event_id": "').digits("event", 12).raw(b'", "deadline_ns": ')
            .decimal("deadline_ns").raw(b', "sent_ns": ').decimal("sent_ns").raw(b"}"))
    payload = Payload(body=body.data, fields=body.fields, path=path,
                      headers=["Content-Type: application/json", "X-Kind: json",
                               "X-Deadline: " + "0" * 19, "X-Event: ev-" + "0" * 12])
    payload.fields += [Field("deadline_ns", 0, "digits", 19, header="X-Deadline"),
                       Field("event", 3, "digits", 12, header="X-Event")]
    payload.check("test payload")
    return payload


def tensor_payload(path: str, method: str | None = None) -> Payload:
    """The event id (12 digits), then a fresh tensor of random float32 values."""
    body = Body().digits("event", 12).random_f32(TENSOR)
    return Payload(body=body.data, fields=body.fields, path=path, method=method,
                   headers=["Content-Type: application/octet-stream"])


def check_json_request(headers: dict, body: bytes, rows: dict, cls_of) -> int:
    """The event a JSON request names, once its deadline (body and header) is checked against
    its record's send stamp and its class's SLO."""
    doc = json.loads(body)
    event = int(doc["event_id"])
    row = rows[event]
    slo = CLASSES[cls_of[event]].slo_ns
    assert row["error"] == ErrorKind.OK and row["sent_ns"] > 0
    # Filled with the send stamp's own clock read: within [sent, sent + 1 ms] + SLO.
    assert row["sent_ns"] + slo <= doc["deadline_ns"] <= row["sent_ns"] + slo + MS
    assert row["sent_ns"] <= doc["sent_ns"] <= row["sent_ns"] + MS
    assert int(headers["x-deadline"]) == doc["deadline_ns"]
    assert headers["x-event"] == f"ev-{event:012d}"
    assert headers["x-kind"] == "json" and headers["x-run"] == "abc"   # the payload's, the run's
    assert headers["content-type"] == "application/json"
    assert row["bytes_out"] == len(body)
    return event


def check_tensors(tensors: dict[int, np.ndarray]) -> None:
    """Whole, in [0, 1), and no two requests' alike."""
    for values in tensors.values():
        assert values.shape == (TENSOR,)
        assert (values >= 0).all() and (values < 1).all() and values.std() > 0.2
    events = sorted(tensors)
    for k, a in enumerate(events):
        for b in events[k + 1:]:
            assert not np.array_equal(tensors[a], tensors[b]), (a, b)


class _Keeper(http.server.BaseHTTPRequestHandler):
    """Answers every request with a short body, keeping its method, path, headers and body."""
    protocol_version = "HTTP/1.1"
    seen: list = []

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        type(self).seen.append((self.command, self.path,
                                {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def h1_server():
    _Keeper.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Keeper)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


class H2Keeper:
    """An HTTP/2 server (h2c, prior knowledge) on loopback that keeps every request: its
    headers and whole body, answered once the body has arrived."""

    def __init__(self):
        self.seen: list[tuple[dict, bytes]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                   header_encoding="utf-8"))
        h2c.initiate_connection()
        # Large windows: a 602 KB body arrives without waiting for many window updates.
        h2c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        h2c.increment_flow_control_window(1 << 24)
        conn.sendall(h2c.data_to_send())
        streams: dict[int, tuple[dict, bytearray]] = {}
        with conn:
            while True:
                try:
                    data = conn.recv(1 << 20)
                except OSError:
                    return
                if not data:
                    return
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (dict(event.headers), bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        h2c.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        self.seen.append((headers, bytes(body)))
                        h2c.send_headers(event.stream_id, [(":status", "200"),
                                                           ("content-length", "2")])
                        h2c.send_data(event.stream_id, b"ok", end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                out = h2c.data_to_send()
                if out:
                    conn.sendall(out)

    def close(self):
        self.sock.close()


def _config(port: int, http_version: str, payloads: list[Payload],
            connections: int = 2) -> TransportConfig:
    return TransportConfig(protocol="http", endpoints=["svc.test"], port=port, timeout_s=5,
                           resolve={"*": "127.0.0.1"}, http_client="curl",
                           http_version=http_version, headers=["X-Run: abc", "X-Kind: run"],
                           payloads=payloads, classes=CLASSES, content_seed=11,
                           connections=connections)


def test_http1_requests_carry_their_own_content(h1_server):
    """HTTP/1.1 through libcurl, two connections, four pairs in turn (JSON POST with fields in
    its body and headers, a PUT of a fresh tensor, the target's default GET, a HEAD): every
    request as its payload says, its event id and deadline its own, the tensor whole and
    different each time, a GET after a PUT without a body, a HEAD answered without one."""
    payloads = [json_payload("/json"), tensor_payload("/tensor", "PUT"),
                Payload(method="HEAD", path="/head")]
    n = 16
    order = np.array([0, 1, -1, 2] * (n // 4))
    cls = np.arange(n) % 2
    rows = replay(_config(h1_server.server_address[1], "1.1", payloads), np.arange(n) * 10 * MS,
                  np.zeros(n), order, cls)
    assert all(r["error"] == ErrorKind.OK and r["status"] == 200 for r in rows.values())
    seen = _Keeper.seen
    assert sorted(s[1] for s in seen) == sorted(["/json", "/tensor", "/", "/head"] * (n // 4))
    by_method = {m: [s for s in seen if s[0] == m] for m in ("POST", "PUT", "GET", "HEAD")}
    assert [len(v) for v in by_method.values()] == [n // 4] * 4
    events = [check_json_request(h, body, rows, cls) for _, path, h, body in by_method["POST"]]
    assert sorted(events) == list(np.flatnonzero(order == 0))
    tensors = {}
    for _, path, headers, body in by_method["PUT"]:
        assert path == "/tensor" and len(body) == 12 + 4 * TENSOR
        assert headers["content-type"] == "application/octet-stream"
        event = int(body[:12])
        assert order[event] == 1 and rows[event]["bytes_out"] == len(body)
        tensors[event] = np.frombuffer(body[12:], "<f4")
    check_tensors(tensors)
    for _, path, headers, body in by_method["GET"] + by_method["HEAD"]:
        assert body == b"" and "content-length" not in headers and headers["x-kind"] == "run"
    assert {int(rows[e]["bytes_in"]) for e in np.flatnonzero(order == 2)} == {0}
    assert {int(rows[e]["bytes_in"]) for e in np.flatnonzero(order == -1)} == {2}


def test_h2c_requests_carry_their_own_content():
    """HTTP/2 (h2c) through libcurl, requests multiplexed on one connection: each JSON body
    and its headers carry the request's own event id and deadline, and each 602 KB tensor
    arrives whole (flow control), different from every other."""
    server = H2Keeper()
    payloads = [json_payload("/json"), tensor_payload("/tensor")]
    n = 12
    order = np.arange(n) % 2
    cls = (np.arange(n) // 2) % 2
    try:
        rows = replay(_config(server.port, "h2c", payloads, connections=1),
                      np.arange(n) * 5 * MS, np.zeros(n), order, cls)
    finally:
        server.close()
    assert all(r["error"] == ErrorKind.OK and r["status"] == 200 for r in rows.values())
    assert len(server.seen) == n
    events, tensors = [], {}
    for headers, body in server.seen:
        assert headers[":method"] == "POST"
        if headers[":path"] == "/json":
            events.append(check_json_request(headers, body, rows, cls))
        else:
            assert headers[":path"] == "/tensor" and len(body) == 12 + 4 * TENSOR
            tensors[int(body[:12])] = np.frombuffer(body[12:], "<f4")
    assert sorted(events) == list(range(0, n, 2))
    assert sorted(tensors) == list(range(1, n, 2))
    check_tensors(tensors)


@pytest.mark.parametrize("http_version", ["1.1", "h2c"])
def test_a_class_timeout_ends_its_requests(target, http_version):
    """Every request asks the built-in target for a 400 ms answer: those of a class with a
    150 ms timeout end as `timeout` records after about that long, those of a class without
    one (the run's 5 s) are answered."""
    classes = [RequestClass("short", timeout_ns=150 * MS), RequestClass("patient")]
    config = TransportConfig(protocol="http", endpoints=["svc.test"], port=target.http_port,
                             timeout_s=5, resolve={"*": "127.0.0.1"}, http_client="curl",
                             http_version=http_version, classes=classes,
                             url_template="http://{endpoint}:{port}/delay/400")
    n = 6
    cls = np.arange(n) % 2
    start = time.monotonic()
    rows = replay(config, np.arange(n) * 20 * MS, np.zeros(n), cls=cls)
    assert time.monotonic() - start < 4          # nobody waited for the run's timeout
    for event, row in rows.items():
        latency_ms = (row["done_ns"] - row["sent_ns"]) / MS
        if cls[event] == 0:
            assert row["error"] == ErrorKind.TIMEOUT, row
            assert 140 <= latency_ms < 390, latency_ms
        else:
            assert row["error"] == ErrorKind.OK and row["status"] == 200, row
            assert latency_ms >= 390

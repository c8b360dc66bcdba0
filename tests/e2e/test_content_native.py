"""Per-request content through the native HTTP/1.1 client, driven by the real pacer against a
real server on loopback that decodes every request: event ids and deadlines filled at send
time (in the body and in headers), fresh random tensors (602 KB, received whole, different
for every request, the same for the same seed), a payload's method, path and headers, and a
class's own timeout."""
from __future__ import annotations

import json

import numpy as np

from replayer import _pacer
from replayer.analysis.records import ErrorKind
from replayer.schedules.content import Body, Field, Payload, RequestClass
from replayer.transports import TransportConfig, make_transport
from test_native_http import OK, Scripted, _ring, _rows, slow

MS = 1_000_000
SLO_NS = 250 * MS
TENSOR = 150_528                 # floats of a [1, 3, 224, 224] tensor: 602,112 bytes


def _run(port, payloads, classes, payload, cls, every_ms=10, seed=7, timeout_s=2.0):
    """Replay len(payload) requests every_ms apart through the native client; the ring's rows
    by event."""
    n = len(payload)
    buf, ring = _ring(n)
    control = np.zeros(_pacer.CONTROL_SIZE, np.int64)
    control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    control[_pacer.CONTROL_START_NS] = _pacer.now_ns() + 20 * MS
    config = TransportConfig(protocol="http", endpoints=["svc.test"], port=port,
                             timeout_s=timeout_s, resolve={"*": "127.0.0.1"},
                             http_client="native", payloads=payloads, classes=classes,
                             content_seed=seed)
    transport = make_transport(config, ring, np.zeros(n, np.int32),
                               np.asarray(payload, np.int32), np.asarray(cls, np.int16))
    pacer = _pacer.Pacer(np.arange(n, dtype=np.int64) * every_ms * MS, 0, 1, control, 50_000)
    pacer.run(transport, 5000 * MS)
    transport.close()
    assert ring.write_idx == n
    return _rows(buf, n)


def _json_payload() -> Payload:
    body = (Body().raw('{"event_id": "').digits("event", 12).raw('", "deadline_ns": ')
            .decimal("deadline_ns").raw(', "scheduled_ns": ').decimal("scheduled_ns").raw("}"))
    return Payload(body=body.data, fields=body.fields, method="PUT", path="/invoke?x=1",
                   headers=["Content-Type: application/json", "X-Sent: " + "0" * 19])


def test_each_request_carries_its_event_id_and_a_deadline_from_its_send():
    """Every body holds its own event id and a deadline of its send stamp + its class's SLO
    (within [sent, sent + 1 ms] + SLO of the record's sent_ns); a header value carries the
    send stamp itself; the payload's method, path and header go out instead of the run's."""
    payload = _json_payload()
    payload.fields.append(Field("sent_ns", 0, "digits", 19, header="X-Sent"))
    srv = Scripted(OK)
    try:
        n = 12
        rows = _run(srv.port, [payload], [RequestClass("c", slo_ns=SLO_NS)], [0] * n, [0] * n)
    finally:
        srv.listener.close()
    assert [int(r) for r in rows["error"]] == [ErrorKind.OK] * n
    seen = {}
    for req in srv.requests:
        assert req.line == "PUT /invoke?x=1 HTTP/1.1"
        headers = dict(req.headers)
        assert headers["Content-Type"] == "application/json"
        doc = json.loads(req.body)
        event = int(doc["event_id"])
        seen[event] = (doc, int(headers["X-Sent"]))
    assert sorted(seen) == list(range(n))
    for row in rows:
        doc, header_sent = seen[int(row["event"])]
        sent = int(row["sent_ns"])
        assert sent + SLO_NS <= doc["deadline_ns"] <= sent + SLO_NS + MS
        assert header_sent == sent
        assert doc["scheduled_ns"] == int(row["scheduled_ns"])


def _tensors(seed, n=4):
    body = Body().raw(b"T").random_f32(TENSOR)
    payload = Payload(body=body.data, fields=body.fields, method="POST",
                      headers=["Content-Type: application/octet-stream"])
    srv = Scripted(OK)
    try:
        rows = _run(srv.port, [payload], [], [0] * n, [-1] * n, every_ms=20, seed=seed)
    finally:
        srv.listener.close()
    assert [int(r) for r in rows["error"]] == [ErrorKind.OK] * n
    assert (rows["bytes_out"] == len(body.data)).all()
    by_event = {}
    order = np.argsort(rows["sent_ns"])          # one connection: arrival order is send order
    for req, k in zip(srv.requests, order):
        assert len(req.body) == 1 + 4 * TENSOR
        by_event[int(rows["event"][k])] = np.frombuffer(req.body[1:], np.float32)
    return by_event


def test_a_fresh_tensor_per_request_received_whole_and_reproducible_by_seed():
    """A 602 KB float32 tensor per request arrives whole, values in [0, 1), different for any
    two requests; the same seed gives every event the same tensor again, another seed not."""
    first = _tensors(seed=11)
    again = _tensors(seed=11)
    other = _tensors(seed=12)
    events = sorted(first)
    for e in events:
        t = first[e]
        assert t.min() >= 0.0 and t.max() < 1.0 and 0.45 < t.mean() < 0.55
        assert np.array_equal(t, again[e])
        assert not np.array_equal(t, other[e])
    for a in events:
        for b in events:
            if a < b:
                assert not np.array_equal(first[a], first[b])


def test_a_class_timeout_ends_its_requests_as_timeouts_while_the_other_class_answers():
    """Requests of a class with a 100 ms timeout to a target that answers in 400 ms are
    `timeout` records; the other class (the run's 2 s timeout) is answered."""
    srv = Scripted(slow(OK, 0.4))
    try:
        n = 6
        cls = [0, 1] * (n // 2)
        rows = _run(srv.port, [], [RequestClass("fast", timeout_ns=100 * MS), RequestClass("slow")],
                    [-1] * n, cls, every_ms=50)
    finally:
        srv.listener.close()
    errors = {int(r["event"]): int(r["error"]) for r in rows}
    for event in range(n):
        assert errors[event] == (ErrorKind.TIMEOUT if cls[event] == 0 else ErrorKind.OK)
    fast = rows[rows["error"] == ErrorKind.TIMEOUT]
    waited = fast["done_ns"] - fast["sent_ns"]
    assert (waited >= 95 * MS).all() and (waited < 350 * MS).all()


def test_requests_of_the_default_payload_and_of_a_payload_share_a_run():
    """payload -1 sends the target's own request (the run's body), others the payload's."""
    srv = Scripted(OK)
    try:
        payload = Payload(body=b"mine", path="/p")
        n = 4
        rows = _run(srv.port, [payload], [], [-1, 0, -1, 0], [-1] * n, every_ms=15)
    finally:
        srv.listener.close()
    assert [int(r) for r in rows["error"]] == [ErrorKind.OK] * n
    lines = sorted((req.line, req.body) for req in srv.requests)
    assert lines == [("GET / HTTP/1.1", b""), ("GET / HTTP/1.1", b""),
                     ("POST /p HTTP/1.1", b"mine"), ("POST /p HTTP/1.1", b"mine")]
    assert sorted(rows["bytes_out"].tolist()) == [0, 0, 4, 4]

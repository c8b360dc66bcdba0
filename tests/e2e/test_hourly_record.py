"""`replayer serve --record-requests FILE`, which the hourly job's end-to-end tests read: one
JSON line per request received, over HTTP/1.1 and h2c alike, with its arrival time, method,
path and query, headers as sent and the whole body (text, or base64 when it is not UTF-8); an
HTTP/2 request reset before its body ended is written with what arrived, marked incomplete."""
from __future__ import annotations

import base64
import json
import socket
import time

import h2.config
import h2.connection
import h2.errors
import pycurl
import pytest

from replayer.loopback.launch import start_serve


def _post(port: int, path: str, body: bytes, headers: list[str], h2c: bool) -> int:
    c = pycurl.Curl()
    c.setopt(pycurl.URL, f"http://127.0.0.1:{port}{path}")
    c.setopt(pycurl.POSTFIELDS, body)
    c.setopt(pycurl.HTTPHEADER, headers)
    c.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
    c.setopt(pycurl.TIMEOUT_MS, 3000)
    if h2c:
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
    c.perform()
    status = c.getinfo(pycurl.RESPONSE_CODE)
    c.close()
    return status


@pytest.mark.parametrize("h2c", [False, True], ids=["http1.1", "h2c"])
def test_record_requests_writes_each_request_down(tmp_path, h2c):
    """Each request is one line: t_ns between before and after it was sent, the method, the
    path with its query, every header as sent (no HTTP/2 pseudo-headers), the body as text,
    or as body_b64 when it is not UTF-8 (a 200 KB one whole, answered late so that it is sent
    whole); a fault path is recorded too."""
    log = tmp_path / "requests.jsonl"
    target = start_serve("--record-requests", str(log), grpc_port=-1)
    big = bytes(range(256)) * 800
    try:
        before = time.time_ns()
        assert _post(target.http_port, "/fn?x=1", b'{"a": 1}',
                     ["Content-Type: application/json", "Authorization: Bearer t-1"], h2c) == 200
        assert _post(target.http_port, "/delay/100", big, ["X-Big: yes"], h2c) == 200
        after = time.time_ns()
    finally:
        target.stop()
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert before <= first["t_ns"] <= second["t_ns"] <= after
    assert (first["method"], first["path"], first["body"]) == ("POST", "/fn?x=1", '{"a": 1}')
    headers = {name.lower(): value for name, value in first["headers"]}
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer t-1"
    assert not any(name.startswith(":") for name, _ in first["headers"])
    assert second["path"] == "/delay/100" and "body" not in second
    assert base64.b64decode(second["body_b64"]) == big
    assert "incomplete" not in first and "incomplete" not in second


def test_a_reset_http2_request_is_written_incomplete(tmp_path):
    """An HTTP/2 request whose client resets its stream half-way through the body is written
    with the part that arrived and "incomplete": true."""
    log = tmp_path / "requests.jsonl"
    target = start_serve("--record-requests", str(log), grpc_port=-1)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        with socket.create_connection(("127.0.0.1", target.http_port), timeout=3) as sock:
            conn.send_headers(1, [(":method", "POST"), (":path", "/hang"), (":scheme", "http"),
                                  (":authority", "t"), ("x-part", "1")])
            conn.send_data(1, b"first half")
            conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
            sock.sendall(conn.data_to_send())
            deadline = time.monotonic() + 5
            while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        target.stop()
    (line,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert (line["path"], line["body"], line["incomplete"]) == ("/hang", "first half", True)
    assert ["x-part", "1"] in line["headers"]

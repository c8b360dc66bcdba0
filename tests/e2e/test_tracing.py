"""-trace: each request carries a traceparent and leaves one Zipkin span with the same ids."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from conftest import replayer, write_load
from replayer.analysis.records import read_records


class _Collector(BaseHTTPRequestHandler):
    spans: list = []
    headers_seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).spans.extend(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):   # as an HTTP target: keep the traceparent it got
        type(self).headers_seen.append(self.headers.get("traceparent"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_trace_posts_one_span_per_request(tmp_path):
    """-trace: the target receives a traceparent with each request and the Zipkin collector one
    CLIENT span per request with the same ids, stamped with the request's send time."""
    _Collector.spans, _Collector.headers_seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        ts = [int(x) for x in np.linspace(0, 900_000, 30)]
        load = write_load(tmp_path / "load.json", [(ts, ["fn.example.com"] * 30)])
        out = tmp_path / "run"
        replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
                 "-workers", "2", "--protocol", "http", "-port", str(port), "--resolve",
                 "*=127.0.0.1", "-trace", "-zipkin", f"http://127.0.0.1:{port}/api/v2/spans",
                 "--out", str(out), check_exit=0)
    finally:
        server.shutdown()
    table, _ = read_records(out)
    assert len(_Collector.spans) == table.num_rows == 30
    summary = json.loads((out / "summary.json").read_text())
    high = summary["trace"]["trace_id_high"]
    sent = dict(zip(table.column("event").to_pylist(), table.column("sent_ns").to_pylist()))
    for span in _Collector.spans:
        event = int(span["traceId"][16:], 16)
        assert span["traceId"][:16] == high and span["id"] == f"{event + 1:016x}"
        assert span["timestamp"] == sent[event] // 1000 and span["kind"] == "CLIENT"
    # the target received the same trace context the spans describe
    expected = {f"00-{s['traceId']}-{s['id']}-01" for s in _Collector.spans}
    assert set(_Collector.headers_seen) == expected

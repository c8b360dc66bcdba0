"""Send stamps are honest when requests wait for a connection: a request has a sent_ns only if
its first byte was written, the wait shows as send lag, and a request cancelled while it still
waited (never sent) has none. Checked against what the server really received."""
from __future__ import annotations

import http.server
import json
import threading
import time

import numpy as np
import pytest

from conftest import replayer, write_load
from replayer.analysis.failures import read_failures
from replayer.analysis.records import read_records

ANSWER_S = 0.2
CONNECTIONS = 2
REQUESTS = 50
EVERY_US = 10_000          # 50 requests over 0.5 s: far more than 2 connections x 5/s serve
TIMEOUT_S = 0.5            # the drain waits timeout + 1 s, then cancels what still waits


class _Counting(http.server.BaseHTTPRequestHandler):
    """Answers every request after ANSWER_S, keeping the time each one arrived."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with self.server.lock:
            self.server.arrivals.append(time.time_ns())
        time.sleep(ANSWER_S)
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass                 # the client gave up on it (cancelled at the end of the run)

    def log_message(self, *args):
        pass


@pytest.fixture
def counting_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    srv.daemon_threads = True
    srv.arrivals = []
    srv.lock = threading.Lock()
    srv.handle_error = lambda request, address: None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("client", ["native", "curl"])
def test_requests_waiting_for_a_connection_are_stamped_when_they_leave(tmp_path, counting_server,
                                                                        client):
    """With 2 connections to a target answering in 200 ms, the requests behind them wait: each
    one sent is stamped when it really left (lag = the wait, matching the server's arrival
    times); those still waiting at the end are cancelled with no sent stamp; the number of sent
    stamps is the number of requests the server received."""
    load = write_load(tmp_path / "load.json",
                      [([k * EVERY_US for k in range(REQUESTS)], ["svc"] * REQUESTS)])
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
                    "-workers", "1", "--protocol", "http", "--http-client", client,
                    "-port", str(counting_server.server_address[1]), "--resolve", "*=127.0.0.1",
                    "--connections", str(CONNECTIONS), "-grpcTimeout", str(TIMEOUT_S),
                    "--out", str(out), check_exit=0)
    assert "Traceback" not in proc.stderr
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == REQUESTS
    sched = table.column("scheduled_ns").to_numpy()
    sent_col = table.column("sent_ns")
    sent_mask = ~np.asarray(sent_col.is_null())
    sent = sent_col.fill_null(0).to_numpy()
    errors = np.array(table.column("error").cast("string").to_pylist())

    with counting_server.lock:
        arrivals = np.sort(np.array(counting_server.arrivals, np.int64))
    # Each request the server got has its sent stamp, and no other has one.
    assert sent_mask.sum() == len(arrivals)
    # Only what 2 connections can carry went out, and far from all of it.
    assert 5 <= sent_mask.sum() <= 30, sent_mask.sum()
    assert (sent[sent_mask] >= sched[sent_mask]).all()
    # The stamps are the real send times: in order, each within 50 ms of its arrival (loopback;
    # wide for a busy machine), so the wait for a connection is in the lag.
    assert (np.abs(np.sort(sent[sent_mask]) - arrivals) < 50_000_000).all()
    lag = sent[sent_mask] - sched[sent_mask]
    assert lag.max() >= 500_000_000, lag.max()      # the later ones waited several answers
    assert set(errors[sent_mask]) <= {"ok", "cancelled"}
    # Never sent: cancelled while waiting for a connection, with no sent stamp.
    assert set(errors[~sent_mask]) == {"cancelled"}
    assert table.column("done_ns").null_count == 0
    # At most one request per connection was cancelled after it had left.
    assert ((errors == "cancelled") & sent_mask).sum() <= CONNECTIONS
    waiting = read_failures(out)["cancelled"]["messages"]
    assert {"message": "cancelled at the end of the run, waiting for a connection",
            "count": int((~sent_mask).sum())} in waiting

    summary = json.loads((out / "summary.json").read_text())
    assert summary["sent"] == int(sent_mask.sum())

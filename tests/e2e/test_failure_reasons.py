"""Why requests failed: every transport notes each failure with what failed and why (the
errno text, libcurl's error text, "HTTP 503", the gRPC status and its message); each worker
writes its log to failures-wNNN.json and read_failures merges them, with counts equal to the
records' per error kind. Real runs against real servers on loopback."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from conftest import free_port, replayer, write_load
from replayer import _pacer
from replayer.analysis.failures import FAILURES_GLOB, read_failures, write_failures
from replayer.transports.helloworld import hello_request
from replayer.analysis.records import ErrorKind, read_records

N = 20


def _run(tmp_path, *args, name="run"):
    load = write_load(tmp_path / f"{name}.json",
                      [([k * 20_000 for k in range(N)], ["svc"] * N)])
    out = tmp_path / name
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
                    "-workers", "2", "--resolve", "*=127.0.0.1", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == N
    errors = table.column("error").cast("string").to_pylist()
    counts = {kind: errors.count(kind) for kind in set(errors) if kind != "ok"}
    failures = read_failures(out)
    # One log per worker; merged, the same counts as the records.
    assert len(list(out.glob(FAILURES_GLOB))) == 2
    assert {kind: f["count"] for kind, f in failures.items()} == counts
    for f in failures.values():
        assert sum(m["count"] for m in f["messages"]) == f["count"]
        assert f["first"]["message"] in {m["message"] for m in f["messages"]}
        assert 0 <= f["first"]["event"] < N
    return table, failures


def _messages(failure: dict) -> str:
    return " | ".join(m["message"] for m in failure["messages"])


@pytest.mark.parametrize("client", ["native", "curl"])
def test_refused_connections_name_the_address_and_the_errno(tmp_path, client):
    """A port nobody listens on: every request is a connect failure whose message says the
    connection was refused (native: the address dialled; libcurl: its text plus the errno's),
    and none of them has a sent stamp."""
    table, failures = _run(tmp_path, "--protocol", "http", "--http-client", client,
                           "-port", str(free_port()))
    assert set(failures) == {"connect"}
    assert "Connection refused" in _messages(failures["connect"])
    if client == "native":
        assert failures["connect"]["messages"][0]["message"].startswith("connect to 127.0.0.1:")
    assert table.column("sent_ns").null_count == N


@pytest.mark.parametrize("client", ["native", "curl"])
def test_http_status_failures_say_the_status(tmp_path, target, client):
    """Answers of 503 are `status` failures noted as "HTTP 503"."""
    _, failures = _run(tmp_path, "--protocol", "http", "--http-client", client,
                       "-port", str(target.http_port),
                       "--url-template", "http://{endpoint}:{port}/status/503")
    assert failures["status"]["messages"] == [{"message": "HTTP 503", "count": N}]
    assert failures["status"]["first"]["message"] == "HTTP 503"


@pytest.mark.parametrize("client", ["native", "curl"])
def test_timeouts_say_how_long_and_where(tmp_path, target, client):
    """Requests the server never answers time out, noted with the time waited."""
    _, failures = _run(tmp_path, "--protocol", "http", "--http-client", client,
                       "-port", str(target.http_port), "-grpcTimeout", "0.3",
                       "--url-template", "http://{endpoint}:{port}/hang")
    text = _messages(failures["timeout"])
    if client == "native":
        assert failures["timeout"]["messages"] == [
            {"message": "timeout after 0.3 s waiting for the answer", "count": N}]
    else:
        assert "timed out after" in text


class _NotTls:
    """Answers a TLS client hello with plain HTTP: the handshake fails at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            conn.close()


def test_tls_failures_carry_libcurls_words(tmp_path):
    """An https:// run against a server that does not speak TLS: `tls` failures, noted with
    libcurl's error text for the handshake, and never sent."""
    server = _NotTls()
    try:
        table, failures = _run(tmp_path, "--protocol", "http", "-port", str(server.port),
                               "--url-template", "https://{endpoint}:{port}/", "--insecure")
    finally:
        server.sock.close()
    assert set(failures) == {"tls"}
    text = _messages(failures["tls"])
    assert "SSL" in text or "TLS" in text, text
    assert table.column("sent_ns").null_count == N


@pytest.mark.parametrize("client", ["curl", "grpcio"])
def test_grpc_failures_carry_the_status_name_and_message(tmp_path, target, client):
    """gRPC calls the server fails with UNAVAILABLE are noted as "UNAVAILABLE: <its
    grpc-message>" by both gRPC clients."""
    body = tmp_path / "req.bin"
    body.write_bytes(hello_request("fault:unavailable"))
    _, failures = _run(tmp_path, "--protocol", "grpc", "--grpc-client", client,
                       "-port", str(target.grpc_port), "--body-file", str(body))
    assert set(failures) == {"status"}
    [message] = failures["status"]["messages"]
    assert message["count"] == N
    assert message["message"].startswith("UNAVAILABLE: ") and len(message["message"]) > 13


def test_grpc_refused_is_a_connect_failure_never_sent(tmp_path):
    """gRPC over libcurl to a port nobody listens on: connect failures with the errno's text,
    no sent stamps."""
    table, failures = _run(tmp_path, "--protocol", "grpc", "-port", str(free_port()))
    assert set(failures) == {"connect"}
    assert "Connection refused" in _messages(failures["connect"])
    assert table.column("sent_ns").null_count == N


def test_the_log_keeps_eight_messages_per_kind_and_counts_the_rest():
    """The C table keeps the first 8 distinct messages of a kind (each at most 199 bytes) with
    their counts, the first failure's event and time, and only counts the others."""
    buf = bytearray(_pacer.RecordRing.nbytes(4))
    transport = _pacer.Transport(_pacer.RecordRing(buf, True, 4))
    status = int(ErrorKind.STATUS)
    for k in range(12):
        transport.note(status, 100 + k, 1000 + k, f"HTTP {500 + k}")
    transport.note(status, 200, 2000, "HTTP 500")
    transport.note(int(ErrorKind.RESET), 7, 3000, "x" * 500)
    log = transport.failure_log()
    assert set(log) == {"status", "reset"}
    s = log["status"]
    assert s["count"] == 13 and s["other_messages"] == 4
    assert s["first"] == {"message": "HTTP 500", "event": 100, "time_ns": 1000}
    assert [m["message"] for m in s["messages"]] == [f"HTTP {500 + k}" for k in range(8)]
    assert s["messages"][0]["count"] == 2
    assert log["reset"]["messages"] == [{"message": "x" * 199, "count": 1}]


def test_read_failures_merges_workers_and_skips_damaged_files(tmp_path):
    """Merged over workers: counts add up, the earliest failure is `first`, messages are
    ranked by count (at most 5, the rest counted as "(N other messages)"), and a damaged file
    is skipped with a problem named."""
    def kind(count, first, messages, other=0):
        return {"count": count, "first": first, "other_messages": other,
                "messages": [{"message": m, "count": n} for m, n in messages]}

    write_failures(tmp_path, 0, {"connect": kind(
        7, {"message": "a", "event": 4, "time_ns": 50},
        [("a", 1), ("b", 2), ("c", 1), ("d", 1), ("e", 1), ("f", 1)])})
    write_failures(tmp_path, 1, {"connect": kind(
        10, {"message": "b", "event": 1, "time_ns": 20}, [("b", 5), ("g", 2)], other=3),
        "status": kind(2, {"message": "HTTP 503", "event": 9, "time_ns": 99},
                       [("HTTP 503", 2)])})
    (tmp_path / "failures-w002.json").write_text("{not json")
    problems: list[str] = []
    merged = read_failures(tmp_path, problems)
    assert len(problems) == 1 and "failures-w002.json" in problems[0]
    assert merged["status"] == {"count": 2, "first": {"message": "HTTP 503", "event": 9,
                                                      "time_ns": 99},
                                "messages": [{"message": "HTTP 503", "count": 2}]}
    connect = merged["connect"]
    assert connect["count"] == 17
    assert connect["first"] == {"message": "b", "event": 1, "time_ns": 20}
    assert connect["messages"][:2] == [{"message": "b", "count": 7}, {"message": "g", "count": 2}]
    assert len(connect["messages"]) == 5
    assert connect["messages"][-1]["message"] == f"({connect['messages'][-1]['count']} other messages)"
    assert sum(m["count"] for m in connect["messages"]) == 17
    assert read_failures(tmp_path / "nowhere") == {}
    assert json.loads((tmp_path / "failures-w000.json").read_text())["worker"] == 0

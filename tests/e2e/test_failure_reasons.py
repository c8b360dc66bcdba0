"""Why requests failed: every transport notes each failure with what failed and why (the
errno text, libcurl's error text, "HTTP 503", the gRPC status and its message); each worker
writes its log to failures-wNNN.json and read_failures merges them, with counts equal to the
records' per error kind. Real runs against real servers on loopback."""
from __future__ import annotations

import pytest

from conftest import free_port, replayer, write_load
from raw_server import RawServer
from replayer.analysis.failures import FAILURES_GLOB, read_failures
from replayer.transports.helloworld import hello_request
from replayer.analysis.records import read_records

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


def _plain_http_answer(conn):
    """Answers a TLS client hello with plain HTTP: the handshake fails at once."""
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_tls_failures_carry_libcurls_words(tmp_path):
    """An https:// run against a server that does not speak TLS: `tls` failures, noted with
    libcurl's error text for the handshake, and never sent."""
    server = RawServer(_plain_http_answer)
    try:
        table, failures = _run(tmp_path, "--protocol", "http", "-port", str(server.port),
                               "--url-template", "https://{endpoint}:{port}/", "--insecure")
    finally:
        server.close()
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

"""Endpoints with their own port and IPv6 addresses (NAME:PORT, IPv4:PORT, [IPv6], [IPv6]:PORT,
bare IPv6): parsed by one function, filled into URLs and gRPC targets, replayed against real
servers on IPv4 and IPv6 loopback by both HTTP clients and both gRPC clients; a malformed one
stops the run before it starts, with one line and exit code 2."""
from __future__ import annotations

import http.server
import socket
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

from conftest import replayer, write_load
from replayer.transports.helloworld import decode_string_field1, hello_reply
from replayer.analysis.records import read_records


class _HostRecorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with self.server.lock:
            self.server.hosts.append(self.headers["Host"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _http_server(family: int, host: str):
    server_class = type("Server", (http.server.ThreadingHTTPServer,), {"address_family": family})
    srv = server_class((host, 0), _HostRecorder)
    srv.daemon_threads = True
    srv.hosts, srv.lock = [], threading.Lock()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def http_servers():
    v4, v6 = _http_server(socket.AF_INET, "127.0.0.1"), _http_server(socket.AF_INET6, "::1")
    yield v4, v6
    for srv in (v4, v6):
        srv.shutdown()
        srv.server_close()


def _replay(tmp_path, endpoints, *args):
    per = 10
    names = [endpoints[k % len(endpoints)] for k in range(per * len(endpoints))]
    load = write_load(tmp_path / "load.json", [([k * 10_000 for k in range(len(names))], names)])
    out = tmp_path / "run"
    # -port 1: nobody listens there, so only the endpoints' own ports can be answered.
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
                    "-workers", "2", "-port", "1", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == len(names)
    return table


@pytest.mark.parametrize("client", ["native", "curl"])
def test_http_endpoints_with_ports_and_ipv6(tmp_path, http_servers, client):
    """IPv4:PORT, [IPv6]:PORT and NAME:PORT (sent elsewhere by --resolve) endpoints are all
    answered, each server getting its share with the right Host header."""
    v4, v6 = http_servers
    p4, p6 = v4.server_address[1], v6.server_address[1]
    endpoints = [f"127.0.0.1:{p4}", f"[::1]:{p6}", f"svc.test:{p4}"]
    table = _replay(tmp_path, endpoints, "--protocol", "http", "--http-client", client,
                    "--resolve", "svc.test=127.0.0.1")
    assert set(table.column("error").cast("string").to_pylist()) == {"ok"}
    assert sorted(v4.hosts) == sorted([f"127.0.0.1:{p4}"] * 10 + [f"svc.test:{p4}"] * 10)
    assert v6.hosts == [f"[::1]:{p6}"] * 10
    targets = table.column("target").cast("string").to_pylist()
    assert sorted(set(targets)) == sorted(endpoints)


class _Greeter(grpc.GenericRpcHandler):
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def service(self, details):
        if details.method != "/helloworld.Greeter/SayHello":
            return None

        def say_hello(request, context):
            with self.lock:
                self.calls += 1
            return hello_reply("Hello " + decode_string_field1(request))
        return grpc.unary_unary_rpc_method_handler(say_hello)


@pytest.fixture
def grpc_servers():
    out = []
    for host in ("127.0.0.1", "[::1]"):
        greeter = _Greeter()
        server = grpc.server(futures.ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers((greeter,))
        port = server.add_insecure_port(f"{host}:0")
        server.start()
        out.append((server, greeter, port))
    yield out
    for server, _, _ in out:
        server.stop(0)


@pytest.mark.parametrize("client", ["curl", "grpcio"])
def test_grpc_endpoints_with_ports_and_ipv6(tmp_path, grpc_servers, client):
    """gRPC dials each endpoint's own host and port, IPv6 in brackets included."""
    (_, g4, p4), (_, g6, p6) = grpc_servers
    table = _replay(tmp_path, [f"127.0.0.1:{p4}", f"[::1]:{p6}"], "--protocol", "grpc",
                    "--grpc-client", client)
    assert set(table.column("error").cast("string").to_pylist()) == {"ok"}
    assert (table.column("status").to_numpy() == 0).all()
    assert (g4.calls, g6.calls) == (10, 10)
    assert np.all(table.column("sent_ns").to_numpy() >= table.column("scheduled_ns").to_numpy())


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_local_target_takes_endpoints_with_ports_and_ipv6(tmp_path, protocol):
    """--local-target sends every endpoint to the built-in target, whatever port or IPv6
    address the endpoint names; the records keep the endpoints as written."""
    endpoints = ["svc:8080", "[::1]:9", "::1"]
    table = _replay(tmp_path, endpoints, "--protocol", protocol, "--local-target")
    assert set(table.column("error").cast("string").to_pylist()) == {"ok"}
    assert sorted(set(table.column("target").cast("string").to_pylist())) == sorted(endpoints)


@pytest.mark.parametrize("endpoint", ["a:b:c", "name:99999", "name:", "[::1"])
def test_a_malformed_endpoint_stops_the_run_before_it_starts(tmp_path, endpoint):
    """`replayer run` with a malformed endpoint in its load.json: exit 2, one line naming the
    file and the endpoint, no traceback, no run directory left behind."""
    load = write_load(tmp_path / "load.json", [([0, 1000], ["good:80", endpoint])])
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
                    "--protocol", "http", "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(load) in lines[0] and repr(endpoint) in lines[0]
    assert not out.exists()


def test_serve_listens_on_ipv6_loopback():
    """`replayer serve --host ::1` listens for HTTP and gRPC there and prints bracketed
    addresses (the gRPC listener took an unbracketed ::1 and failed)."""
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "replayer", "serve", "--host", "::1",
                             "--http-port", "0", "--grpc-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().split() for _ in range(3)]
        assert lines[2] == ["ready"], (lines, proc.stderr.read() if proc.poll() is not None else "")
        addrs = dict(lines[:2])
        assert addrs["http"].startswith("[::1]:") and addrs["grpc"].startswith("[::1]:")
        with urllib.request.urlopen(f"http://{addrs['http']}/ok", timeout=5) as answer:
            assert answer.status == 200
        with grpc.insecure_channel(addrs["grpc"]) as channel:
            grpc.channel_ready_future(channel).result(timeout=5)
    finally:
        proc.terminate()
        proc.wait(10)

"""Targets that are down, too slow, or reset connections: every request still gets its record,
with the right error kind, and the run finishes."""
from __future__ import annotations

import time

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import free_port, replayer, write_load
from raw_server import RawServer, reset
from replayer.analysis.records import read_records


def _load(tmp_path, n=20, seconds=1):
    units = [(sorted(int(x) for x in np.linspace(0, 900_000, n)), ["svc.example.com"] * n)
             for _ in range(seconds)]
    return write_load(tmp_path / "load.json", units)


def _run(tmp_path, protocol, port, *extra):
    out = tmp_path / f"run-{protocol}"
    t0 = time.monotonic()
    proc = replayer("run", "-traceFile", str(_load(tmp_path)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "2", "--protocol", protocol, "-port", str(port),
                    "--resolve", "*=127.0.0.1", "--out", str(out), *extra)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    table, problems = read_records(out)
    assert problems == []
    assert table.num_rows == 20
    assert sorted(table.column("event").to_pylist()) == list(range(20))
    return table, elapsed


def _errors(table):
    return pc.unique(table.column("error").cast("string")).to_pylist()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_target_down(tmp_path, protocol):
    """HTTP or gRPC to a port nobody listens on: every request a `connect` failure, with a done
    time and no sent stamp."""
    table, _ = _run(tmp_path, protocol, free_port(), "-grpcTimeout", "2")
    assert _errors(table) == ["connect"]
    # Each one was tried, none left: a refused dial writes nothing, so no sent stamp.
    assert table.column("sent_ns").null_count == 20
    assert table.column("done_ns").null_count == 0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_slow_target_past_the_timeout(tmp_path, slow_target, protocol):
    """A target answering after 3 s with a 0.5 s timeout: every request a `timeout` after about
    0.5 s, and the run ends soon after its schedule."""
    port = slow_target.http_port if protocol == "http" else slow_target.grpc_port
    table, elapsed = _run(tmp_path, protocol, port, "-grpcTimeout", "0.5")
    assert _errors(table) == ["timeout"]
    lat = (table.column("done_ns").to_numpy() - table.column("sent_ns").to_numpy()) / 1e9
    assert (lat >= 0.45).all() and (lat < 2.5).all()    # the timeout really applies
    assert elapsed < 20


@pytest.fixture
def resetting_server():
    """Accepts every connection, lets the request arrive, and resets it (RST, no answer)."""
    s = RawServer(reset)
    yield s
    s.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_connection_resets(tmp_path, resetting_server, protocol):
    """A server that resets every connection: no request ok; HTTP records `reset`, gRPC `reset`
    or `connect` (UNAVAILABLE)."""
    table, _ = _run(tmp_path, protocol, resetting_server.port, "-grpcTimeout", "2")
    errors = _errors(table)
    assert "ok" not in errors
    # HTTP sees the reset; gRPC reports the dead transport as UNAVAILABLE (reset or connect)
    assert set(errors) <= ({"reset"} if protocol == "http" else {"reset", "connect"})


def test_reset_path_on_healthy_server(tmp_path, target):
    """The built-in target's /reset path: every request `reset`."""
    table, _ = _run(tmp_path, "http", target.http_port, "--url-template",
                    "http://{endpoint}:{port}/reset")
    assert _errors(table) == ["reset"]

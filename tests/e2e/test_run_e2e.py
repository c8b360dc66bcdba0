"""`replayer run` end to end against the built-in target over HTTP and gRPC, 2 workers."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import EXAMPLE_LOAD, replayer, write_load
from replayer.analysis.records import read_records
from replayer.schedules.vswarm import read_load_json

EPS = ["alpha.default.example.com", "beta.default.example.com"]


def _trace(tmp_path, seconds=4, per_second=60, seed=1):
    rng = np.random.default_rng(seed)
    units = []
    for _ in range(seconds):
        ts = np.sort(rng.integers(0, 1_000_000, per_second)).tolist()
        ts[1] = ts[0]   # two requests at the same microsecond stay two requests
        units.append((ts, [EPS[i % 2] for i in range(per_second)]))
    return write_load(tmp_path / "load.json", units)


@pytest.mark.parametrize("protocol,client", [("http", "auto"), ("http", "curl"), ("grpc", "auto")],
                         ids=["http-native", "http-curl", "grpc"])
def test_replay_records_every_request(tmp_path, target, protocol, client):
    """A 4-second trace over 2 workers against the built-in target (HTTP through each client,
    gRPC): one record per event, its intended time the trace's, never sent early, both workers
    used, all answered; run.json names the HTTP client and the spin window; rps_lat.csv holds
    the post-warm-up latencies."""
    load = _trace(tmp_path)
    out = tmp_path / "run"
    port = target.http_port if protocol == "http" else target.grpc_port
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "4", "-warmup", "1",
                    "-workers", "2", "--protocol", protocol, "-port", str(port),
                    "--resolve", "*=127.0.0.1", "--out", str(out), "-latf", "lat.csv",
                    "--http-client", client, check_exit=0)
    run = json.loads((out / "run.json").read_text())
    used = run["transport"]["http_client"]
    assert used == {"auto": "native", "curl": "curl"}[client] if protocol == "http" else used is None
    # The spin widens only where each worker has a CPU to itself and one is left over.
    cpus = len(os.sched_getaffinity(0))
    assert run["spin_max_us"] == (2000 if cpus > 2 else 50)
    assert "requests  scheduled 240" in proc.stdout
    schedule = read_load_json(load, minute=False)
    table, problems = read_records(out)
    assert problems == []
    assert table.num_rows == len(schedule) == 240
    events = np.sort(table.column("event").to_numpy())
    assert (events == np.arange(len(schedule))).all()              # each event exactly once
    order = np.argsort(table.column("event").to_numpy())
    sched = table.column("scheduled_ns").to_numpy()[order]
    sent = table.column("sent_ns").to_numpy()[order]
    start = json.loads((out / "run.json").read_text())["start_ns"]
    assert (sched - start == schedule.t_ns).all()                   # intended times = the trace
    assert (sent >= sched).all()                                    # never early
    assert set(table.column("worker").to_numpy().tolist()) == {0, 1}
    assert set(pc.unique(table.column("error").cast("string")).to_pylist()) == {"ok"}
    expected_status = 200 if protocol == "http" else 0
    assert (table.column("status").to_numpy() == expected_status).all()
    targets = table.column("target").cast("string").to_numpy(zero_copy_only=False)[order]
    assert (targets == np.array(schedule.targets)[schedule.target]).all()
    # the invoker's latency file: integers, no header, only post-warm-up requests
    lines = (out / "rps_lat.csv").read_text().splitlines()
    measured = int((schedule.t_ns >= 1_000_000_000).sum())
    assert len(lines) == measured == 180
    assert all(line.isdigit() for line in lines)
    phases = table.column("phase").cast("string").to_numpy(zero_copy_only=False)
    assert (phases == "warmup").sum() == 60
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recorded"] == 240 and summary["lost"] == 0 and summary["ok"] == 240


def test_http2_h2c_and_post_body(tmp_path, target):
    """h2c with a POST body and a header: every request answered 200, with the body's bytes out
    and the answer's in."""
    load = _trace(tmp_path, seconds=2, per_second=40)
    out = tmp_path / "run"
    replayer("run", "-traceFile", str(load), "-min=false", "-duration", "2", "-warmup", "0",
             "-workers", "1", "--protocol", "http", "--http-version", "h2c", "-port",
             str(target.http_port), "--resolve", "*=127.0.0.1", "--body", '{"check":"ping"}',
             "--header", "Content-Type: application/json", "--out", str(out), check_exit=0)
    table, _ = read_records(out)
    assert table.num_rows == 80
    # One worker, a CPU left over: its spin may widen up to --spin-max-us's default.
    spin_max = json.loads((out / "run.json").read_text())["spin_max_us"]
    assert spin_max == (2000 if len(os.sched_getaffinity(0)) > 1 else 50)
    assert (table.column("status").to_numpy() == 200).all()
    assert (table.column("bytes_out").to_numpy() == len('{"check":"ping"}')).all()
    assert (table.column("bytes_in").to_numpy() == 3).all()     # "ok\n"


def test_url_template_paths_choose_status(tmp_path, target):
    """--url-template with /status/503: every record has status 503 and error `status`."""
    load = _trace(tmp_path, seconds=1, per_second=20)
    out = tmp_path / "run"
    replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
             "-workers", "2", "--protocol", "http", "-port", str(target.http_port),
             "--resolve", "*=127.0.0.1", "--url-template", "http://{endpoint}:{port}/status/503",
             "--out", str(out), check_exit=0)
    table, _ = read_records(out)
    assert (table.column("status").to_numpy() == 503).all()
    assert set(table.column("error").cast("string").to_pylist()) == {"status"}


def test_local_target_quick_start(tmp_path):
    """The README's quick start (--local-target, the bundled example): every request scheduled
    is sent, none lost, the summary printed."""
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", EXAMPLE_LOAD, "-min=false", "-duration", "2",
                    "-warmup", "1", "--local-target", "--out", str(out), "-workers", "2",
                    check_exit=0)
    n = len(read_load_json(EXAMPLE_LOAD, minute=False, max_units=3))   # warm-up + duration
    assert f"scheduled {n}" in proc.stdout and "lost 0" in proc.stdout
    assert "send lag" in proc.stdout and "from intended send" in proc.stdout

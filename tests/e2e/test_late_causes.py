"""Why late sends were late, end to end: a run whose requests wait for the only connection to a
slow target says `connection` for each late one (both HTTP clients); a run whose worker loses
its CPU for 50 ms (SIGSTOP, SIGCONT) says `stall` for the requests due meanwhile and reports
the stall in its summary."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import replayer, write_load
from replayer.analysis.records import read_records
from replayer.loopback.procinfo import spawned_children

MS = 1_000_000


def _columns(run_dir):
    """The records' columns in event order."""
    table, problems = read_records(run_dir)
    assert problems == []
    table = table.sort_by("event")
    return {name: np.array(table.column(name).to_pylist(), dtype=object)
            for name in ("scheduled_ns", "sent_ns", "late_cause", "error")}


@pytest.mark.parametrize("client", ["native", "curl"])
def test_sends_held_back_for_the_only_connection_are_late_for_connection(tmp_path, target,
                                                                         client):
    """30 requests 2 ms apart to a target answering after 20 ms, over one connection: they go
    one after another, later and later, and every one of them later than 1 ms that waited for
    the connection (all but the first, which opens it) says `connection`."""
    load = write_load(tmp_path / "load.json", [([k * 2000 for k in range(30)], ["svc.test"] * 30)])
    out = tmp_path / "run"
    replayer("run", "-traceFile", str(load), "-min=false", "-duration", "1", "-warmup", "0",
             "-workers", "1", "--protocol", "http", "--http-client", client,
             "--url-template", "http://{endpoint}:{port}/delay/20", "-port",
             str(target.http_port), "--resolve", "*=127.0.0.1", "--connections", "1",
             "-latf", "", "--out", str(out), timeout=60, check_exit=0)
    c = _columns(out)
    assert set(c["error"]) == {"ok"}
    lag = c["sent_ns"].astype(np.int64) - c["scheduled_ns"].astype(np.int64)
    late = lag > 1 * MS
    late[0] = False      # its lag is the dial (libcurl's: up to a millisecond), not a wait
    assert late.sum() >= 25                      # the 30th waits for 29 answers of 20 ms
    assert set(c["late_cause"][late]) == {"connection"}


def test_requests_due_while_the_worker_was_stopped_are_late_for_a_stall(tmp_path):
    """A worker spinning at 1k req/s is stopped for 50 ms one second into the run: the requests
    due meanwhile leave late and say `stall`; its summary counts a stall of about 50 ms."""
    per_s = 1000
    ts = [k * 1000 for k in range(per_s)]
    load = write_load(tmp_path / "load.json", [(ts, ["svc.test"] * per_s)] * 3)
    out = tmp_path / "run"
    # --spin-us above the gap between requests: the worker spins all the time, so the stop
    # falls between two of its clock reads (not in a sleep).
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-duration", "3", "-warmup", "0", "-workers", "1", "--protocol", "null",
         "--spin-us", "2000", "-latf", "", "--out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (out / "run.json").exists() or "start_ns" not in (out / "run.json").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        start_ns = json.loads((out / "run.json").read_text())["start_ns"]
        workers = spawned_children(proc.pid)
        assert len(workers) == 1
        time.sleep(max(0.0, (start_ns + 1000 * MS - time.time_ns()) / 1e9))
        os.kill(workers[0], signal.SIGSTOP)
        stopped_ns = time.time_ns()              # the worker is stopped by now
        time.sleep(0.05)
        resumed_ns = time.time_ns()              # and still stopped here
        os.kill(workers[0], signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    stalls = json.loads((out / "summary.json").read_text())["workers"][0]["stalls"]
    assert stalls["count"] >= 1 and stalls["over_1ms"] >= 1
    assert stalls["longest_ns"] >= 40 * MS
    assert stalls["lost_ns"] >= stalls["longest_ns"]
    assert "stalls    worker 0: " in stdout
    c = _columns(out)
    scheduled = c["scheduled_ns"].astype(np.int64)
    lag = c["sent_ns"].astype(np.int64) - scheduled
    during = (scheduled > stopped_ns + 2 * MS) & (scheduled < resumed_ns - 2 * MS)
    assert during.sum() >= 30
    assert (lag[during] > 1 * MS).all()
    assert set(c["late_cause"][during]) == {"stall"}

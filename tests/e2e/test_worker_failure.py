"""A worker killed mid-run, and a disk that fills up: detected at once, what was written is
kept, and the exit code says the run is incomplete."""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import write_load
from replayer.analysis.records import read_records
from replayer.loopback.procinfo import spawned_children


def _load(tmp_path, seconds=8, per_second=200):
    ts = [int(x) for x in np.linspace(0, 999_000, per_second)]
    return write_load(tmp_path / "load.json", [(ts, ["svc.example.com"] * per_second)] * seconds)


def _start(tmp_path, port, *extra, preexec=None):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(_load(tmp_path)), "-min=false",
         "-duration", "8", "-warmup", "0", "-workers", "2", "--protocol", "http", "-port", str(port),
         "--resolve", "*=127.0.0.1", "--out", str(out), "--flush-ms", "50", *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    deadline = time.monotonic() + 30
    while not (out / "run.json").exists() or "start_ns" not in (out / "run.json").read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, out


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_killed_worker(tmp_path, target, policy):
    """A worker killed mid-run: noticed at once (exit 3, named on stderr and in summary.json),
    what it flushed kept and the rest counted lost; with --on-worker-failure continue the other
    worker runs to the end, with stop the run stops cleanly."""
    proc, out = _start(tmp_path, target.http_port, "--on-worker-failure", policy)
    time.sleep(1.5)
    workers = spawned_children(proc.pid)
    assert len(workers) == 2
    victim = workers[0]
    killed_at = time.monotonic()
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    stdout, stderr = proc.communicate(timeout=60)
    ended_after = time.monotonic() - killed_at
    assert proc.returncode == 3, stderr
    assert "died: killed by signal 9" in stderr
    summary = json.loads((out / "summary.json").read_text())
    dead = [w for w in summary["workers"] if w["failed"]]
    assert len(dead) == 1 and "signal 9" in dead[0]["failed"]
    k = dead[0]["worker"]
    assert f"worker {k} (killed by signal 9)" in stderr
    table, problems = read_records(out)
    assert problems == []
    from_dead = pc.sum(pc.equal(table.column("worker"), k)).as_py()
    assert from_dead > 0                                   # what it flushed is kept
    assert summary["lost"] == 1600 - table.num_rows > 0    # the rest is counted as lost
    if policy == "continue":
        alive = 1 - k
        assert pc.sum(pc.equal(table.column("worker"), alive)).as_py() == 800
        assert ended_after > 4                              # the other worker went on to the end
    else:
        assert ended_after < 4                              # a clean stop, not the whole trace
        errors = table.column("error").cast("string")
        assert pc.sum(pc.equal(errors, "not_sent")).as_py() > 0


def _small_file_limit():
    # Files may not grow past 100 kB (shared-memory segments need 60 kB): writes beyond fail with EFBIG, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_output_fills_up_during_the_run(tmp_path, target):
    """The file size limit reached mid-run (as on a full disk): exit 4, 'cannot write records',
    no traceback, the records readable up to the last whole batch."""
    proc, out = _start(tmp_path, target.http_port, preexec=_small_file_limit)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    assert "cannot write records" in stderr and "Traceback" not in stderr
    table, _ = read_records(out)                # readable up to the last whole batch
    assert 0 < table.num_rows < 1600

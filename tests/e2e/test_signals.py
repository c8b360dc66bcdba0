"""Ctrl-C and SIGTERM: stop scheduling, drain, keep one record per scheduled request; a second
Ctrl-C exits at once and keeps what was flushed."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import write_load
from replayer.analysis.records import read_records


def _long_load(tmp_path, seconds=20, per_second=50):
    ts = [int(x) for x in np.linspace(0, 999_000, per_second)]
    return write_load(tmp_path / "load.json", [(ts, ["svc.example.com"] * per_second)] * seconds)


def _start(tmp_path, port, *extra):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(_long_load(tmp_path)),
         "-min=false", "-duration", "20", "-warmup", "0", "-workers", "2", "--protocol", "http",
         "-port", str(port), "--resolve", "*=127.0.0.1", "--out", str(out), *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (out / "run.json").exists() or "start_ns" not in (out / "run.json").read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_keeps_a_record_for_every_request(tmp_path, target, sig):
    """SIGINT or SIGTERM 1.5 s into a 20-second run: exit 130, a record for each of the 1000
    requests (the unsent as `not_sent`), the summary says interrupted, nothing lost."""
    proc, out = _start(tmp_path, target.http_port)
    time.sleep(1.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 130, stderr
    assert "stopped before its end" in stderr and "Traceback" not in stderr
    table, problems = read_records(out)
    assert problems == []
    assert table.num_rows == 1000                     # 20 s x 50 req/s, all recorded
    assert sorted(table.column("event").to_pylist()) == list(range(1000))
    errors = table.column("error").cast("string")
    not_sent = pc.sum(pc.equal(errors, "not_sent")).as_py()
    ok = pc.sum(pc.equal(errors, "ok")).as_py()
    assert not_sent > 500 and ok > 20 and ok + not_sent == 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "interrupted" and summary["lost"] == 0
    assert "scheduled 1000" in stdout


def test_second_ctrl_c_exits_at_once(tmp_path, slow_target):
    """A second Ctrl-C while the drain waits for a slow target exits within seconds; what was
    flushed is readable."""
    proc, out = _start(tmp_path, slow_target.http_port, "-grpcTimeout", "30", "--flush-ms", "50")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)     # drain would wait up to 30 s for the slow target
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 8
    assert proc.returncode != 0
    table, problems = read_records(out)         # every file readable
    assert problems == []
    assert table.num_rows > 0

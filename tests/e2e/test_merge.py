"""`replayer merge` over shards run by hand (`replayer run --shard I/N --start-at T`, real
processes): one run with a node column, every event once, percentiles of the merged rows and
rates over one window; refusals of foreign, overlapping and missing shards as one line and exit
2; a shard whose run did not finish named, its events lost, exit 3."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import replayer, run_cwd, write_load
from replayer.analysis import stats
from replayer.analysis.model import Columns
from replayer.analysis.records import read_records

PER_SECOND, SECONDS = 60, 2
EVENTS = PER_SECOND * SECONDS


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Shards 0/3, 1/3, 2/3 of one schedule from one start time; shard 0/2 of it; and shard
    2/3 of another schedule (one second shorter): null transport, one worker each."""
    tmp = tmp_path_factory.mktemp("shards")
    ts = [int(x) for x in np.linspace(0, 990_000, PER_SECOND)]
    load = write_load(tmp / "load.json", [(ts, ["svc.example.com"] * PER_SECOND)] * SECONDS)
    start_at = f"{time.time() + 6:.3f}"
    runs = {f"s{i}": (f"{i}/3", SECONDS) for i in range(3)}
    runs.update(half=("0/2", SECONDS), foreign=("2/3", SECONDS - 1))
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-warmup", "0", "-duration", str(duration), "--protocol", "null", "-workers", "1",
         "--no-pin", "--shard", shard, "--start-at", start_at, "--out", str(tmp / name),
         "-latf", ""], cwd=run_cwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (shard, duration) in runs.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, err)
    return tmp


def _merge(*dirs, out, extra=()):
    return replayer("merge", *map(str, dirs), "--out", str(out), *extra, timeout=120)


def test_merged_shards_are_one_run(shards, tmp_path):
    """Three shards merged: every event exactly once, a node column (event i from node i mod
    3) with run-wide worker numbers, one summary whose percentiles are those of the merged rows
    (not an average of the nodes'), whose rate is over the one window all records span, with
    each node's lag; the invoker's latency file holds every node's answers; `replayer report`
    reads the merged run."""
    out = tmp_path / "merged"
    proc = _merge(shards / "s0", shards / "s1", shards / "s2", out=out,
                  extra=("--latf", str(tmp_path / "lat.csv")))
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "rps_lat.csv").read_text().split()) == EVENTS
    assert (out / "rps_lat.csv").read_text() == (tmp_path / "rps_lat.csv").read_text()
    table, problems = read_records(out)
    assert problems == []
    event = table.column("event").to_numpy()
    assert np.array_equal(np.sort(event), np.arange(EVENTS))
    assert np.array_equal(table.column("node").to_numpy(), event % 3)
    assert np.array_equal(table.column("worker").to_numpy(), event % 3)

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["scheduled"], summary["lost"]) == (EVENTS, 0)
    c = Columns.decode(table)
    lag = c.duration("lag_ns", c.measured)
    assert summary["overall"]["lag_ns"]["p99"] == int(stats.percentiles(lag, [99.0])[0])
    assert summary["overall"]["lag_ns"]["max"] == int(lag.max())
    window = int(c.scheduled_ns.max() - c.scheduled_ns.min())
    assert summary["rates"]["intended"] == pytest.approx(EVENTS / (window * EVENTS / (EVENTS - 1) / 1e9))
    assert summary["rates"]["intended"] == pytest.approx(PER_SECOND, rel=0.05)
    for n in summary["nodes"]:
        mine = c.duration("lag_ns", c.measured & (table.column("node").to_numpy() == n["node"]))
        assert n["scheduled"] == n["recorded"] == EVENTS // 3 and n["lost"] == 0
        assert n["lag_ns"]["p99"] == int(stats.percentiles(mine, [99.0])[0])
    run = json.loads((out / "run.json").read_text())
    assert run["workers"] == 3 and run["schedule"]["shards"] == 3
    assert run["merged"]["start_spread_ns"] == 0
    assert proc.stdout.count("\nnode ") == 3

    report = replayer("report", str(out), "--no-plots", timeout=120)
    assert report.returncode == 0, report.stderr
    assert f"{EVENTS} requests measured" in report.stdout


def _refused(proc, out, *words):
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    assert not list(out.glob("records-w*.arrow"))


def test_merge_refuses_foreign_overlapping_and_missing_shards(shards, tmp_path):
    """A shard of another schedule, of another split, one given twice, and one missing: each
    refused in one line naming the directory or shard, exit 2, no merged records left."""
    out = tmp_path / "merged"
    _refused(_merge(shards / "s0", shards / "s1", shards / "foreign", out=out), out,
             "foreign", "another schedule")
    _refused(_merge(shards / "s0", shards / "s1", shards / "half", out=out), out,
             "half", "shard 0/2", "one --shard N")
    _refused(_merge(shards / "s0", shards / "s1", shards / "s1", shards / "s2", out=out), out,
             "shard 1/3 again", "overlapping")
    _refused(_merge(shards / "s0", shards / "s2", out=out), out, "shard 1/3 missing")
    _refused(_merge(shards / "s0", tmp_path / "nowhere", out=out), out, "nowhere",
             "no such run directory")


def test_merge_refuses_records_that_overlap(shards, tmp_path):
    """Records checked event by event: another shard's records in a shard's directory, and
    the same records twice, are refused in one line naming the file; what was merged before
    is removed."""
    out = tmp_path / "merged"
    wrong = tmp_path / "wrong"
    shutil.copytree(shards / "s1", wrong)
    shutil.copyfile(shards / "s0" / "records-w000.arrow", wrong / "records-w000.arrow")
    _refused(_merge(shards / "s0", wrong, shards / "s2", out=out), out,
             "wrong/records-w000.arrow", "is not of shard 1/3")
    twice = tmp_path / "twice"
    shutil.copytree(shards / "s2", twice)
    shutil.copyfile(twice / "records-w000.arrow", twice / "records-w001.arrow")
    _refused(_merge(shards / "s0", shards / "s1", twice, out=out), out,
             "twice/records-w001.arrow", "recorded twice")


def test_unfinished_shard_is_named_and_its_events_lost(shards, tmp_path):
    """A shard whose run never finished (no result in its run.json: the node died) with part
    of its records: merged, its missing events counted lost under its name, exit 3."""
    dead = tmp_path / "dead"
    shutil.copytree(shards / "s2", dead)
    meta = json.loads((dead / "run.json").read_text())
    del meta["result"]
    (dead / "run.json").write_text(json.dumps(meta))
    table, _ = read_records(dead)
    kept = table.filter(pc.less(table.column("event"), EVENTS // 2))
    (dead / "records-w000.arrow").unlink()
    with pa.OSFile(str(dead / "records-w000.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, kept.schema) as writer:
            writer.write_table(kept)
    out = tmp_path / "merged"
    proc = _merge(shards / "s0", shards / "s1", dead, out=out)
    assert proc.returncode == 3, proc.stderr
    lost = EVENTS // 3 - kept.num_rows
    assert "node 2 (" in proc.stderr and "did not finish" in proc.stderr
    assert f"{lost} of its {EVENTS // 3} requests have no record" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == summary["nodes"][2]["lost"] == lost > 0
    assert "FAILED" in proc.stdout

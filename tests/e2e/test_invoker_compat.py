"""`replayer run` as a drop-in for the vSwarm invoker: -warmup + -duration units replayed (the
first -warmup of them warm-up), a warning when the load is shorter, rps_NAME where the
invoker writes it (and a copy in the run directory)."""
from __future__ import annotations

import json

import pyarrow.compute as pc

from conftest import replayer, write_load
from replayer.analysis.records import read_records
from replayer.schedules.schedule import NS_PER_S

PER_UNIT = 300


def _three_seconds(path):
    """A 3-unit load (seconds): 300 requests in each unit."""
    ts = [i * (1_000_000 // PER_UNIT) for i in range(PER_UNIT)]
    return write_load(path, [(ts, ["svc.example"] * PER_UNIT)] * 3)


def _run(tmp_path, load, name, *args):
    out = tmp_path / name
    proc = replayer("run", "-traceFile", str(load), "-min=false", "--protocol", "null",
                    "-workers", "1", "--time-scale", "0.25", "--out", str(out), *args,
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table, problems = read_records(out)
    assert problems == []
    phase = table.column("phase").cast("string").to_numpy(zero_copy_only=False)
    sched = table.column("scheduled_ns").to_numpy()
    start = json.loads((out / "run.json").read_text())["start_ns"]
    offset_s = (sched - start) / 0.25 / NS_PER_S     # back to trace time
    return proc, out, table, phase, offset_s


def test_warmup_and_duration_count_like_the_invoker(tmp_path):
    """-warmup 1 -duration 2 on a 3-unit load replays all 3 units, the first as warm-up, and
    writes the 2 measured units' latencies to rps_lat.csv (the default -latf, as the
    invoker's) in the working directory, with the same bytes in the run directory."""
    load = _three_seconds(tmp_path / "load.json")
    proc, out, table, phase, offset_s = _run(tmp_path, load, "run", "-warmup", "1",
                                             "-duration", "2")
    assert table.num_rows == 3 * PER_UNIT
    assert (phase == "warmup").sum() == PER_UNIT and (phase == "measure").sum() == 2 * PER_UNIT
    assert (offset_s[phase == "warmup"] < 1.0).all() and (offset_s[phase == "measure"] >= 1.0).all()
    assert "warning" not in proc.stderr
    in_cwd = (tmp_path / "rps_lat.csv").read_bytes()
    assert in_cwd == (out / "rps_lat.csv").read_bytes()
    assert len(in_cwd.splitlines()) == 2 * PER_UNIT
    assert json.loads((out / "summary.json").read_text())["latf"] == "rps_lat.csv"


def test_a_shorter_load_is_replayed_whole_with_a_warning(tmp_path):
    """-warmup 2 -duration 2 on a 3-unit load: one warning line naming the load's 3 units,
    every request replayed, the third unit measured; -latf sub/x.csv writes sub/rps_x.csv
    and the run directory's rps_x.csv."""
    load = _three_seconds(tmp_path / "load.json")
    proc, out, table, phase, offset_s = _run(tmp_path, load, "run", "-warmup", "2",
                                             "-duration", "2", "-latf", "sub/x.csv")
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "holds 3 seconds" in warnings[0], proc.stderr
    assert "-warmup 2 + -duration 2" in warnings[0] and "measuring the last 1" in warnings[0]
    assert table.num_rows == 3 * PER_UNIT
    assert (phase == "measure").sum() == PER_UNIT and (offset_s[phase == "measure"] >= 2.0).all()
    assert not (tmp_path / "rps_lat.csv").exists()
    written = (tmp_path / "sub" / "rps_x.csv").read_bytes()
    assert written == (out / "rps_x.csv").read_bytes() and len(written.splitlines()) == PER_UNIT


def test_only_the_asked_units_are_replayed_and_empty_latf_writes_none(tmp_path):
    """-warmup 1 -duration 1 replays the first 2 of 3 units; -latf '' writes no latency file."""
    load = _three_seconds(tmp_path / "load.json")
    proc, out, table, phase, offset_s = _run(tmp_path, load, "run", "-warmup", "1",
                                             "-duration", "1", "-latf", "")
    assert table.num_rows == 2 * PER_UNIT and (offset_s < 2.0).all()
    assert (phase == "measure").sum() == PER_UNIT
    assert not list(tmp_path.glob("rps_*")) and not list(out.glob("rps_*"))
    errors = pc.unique(table.column("error").cast("string")).to_pylist()
    assert errors == ["ok"] and "warning" not in proc.stderr

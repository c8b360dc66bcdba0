"""`replayer run` as a drop-in for the vSwarm invoker: -warmup + -duration units replayed (the
first -warmup of them warm-up), a warning when the load is shorter, rps_NAME where the
invoker writes it (and a copy in the run directory), environment variables scoped to their
command."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import replayer, write_load
from replayer.cli import main
from replayer.run.options import RunOptions
from replayer.run.supervisor import Orchestrator
from replayer.analysis.records import read_records
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.schedules import columnar, load_schedule_units

from report_fixtures import make_run

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


def test_units_of_a_load_json_include_its_quiet_last_units(tmp_path):
    """The units a load.json holds are its objects, empty ones included (as the invoker
    counts them), capped by what the run asks for."""
    load = write_load(tmp_path / "load.json", [([5], ["a"]), ([], []), ([], [])])
    assert load_schedule_units(load, minute=False)[1] == 3
    schedule, units = load_schedule_units(load, minute=False, max_units=2)
    assert units == 2 and len(schedule) == 1


def test_units_of_a_columnar_schedule(tmp_path):
    """A columnar schedule's units: replayer.units when written (gen azure writes it), else
    up to its last request's unit; the warm-up phase uses the file's own unit length."""
    sched = Schedule(t_ns=np.array([0, NS_PER_S // 2, NS_PER_S + 1], np.int64),
                     target=np.zeros(3, np.int32), targets=["a"], unit_ns=NS_PER_S)
    columnar.write_schedule(sched, tmp_path / "quiet.parquet", units=4)
    columnar.write_schedule(sched, tmp_path / "plain.arrow")
    assert load_schedule_units(tmp_path / "quiet.parquet")[1] == 4
    assert load_schedule_units(tmp_path / "quiet.parquet", max_units=3)[1] == 3
    schedule, units = load_schedule_units(tmp_path / "plain.arrow", max_units=1)
    assert units == 1 and len(schedule) == 2
    assert load_schedule_units(tmp_path / "plain.arrow")[1] == 2


def test_a_columnar_schedule_shorter_than_asked_warns(tmp_path, capsys):
    """Orchestrator.load applies the same rule to a columnar schedule: 2 units in the file,
    -warmup 1 -duration 2 asked: one warning, everything loaded."""
    sched = Schedule(t_ns=np.array([0, NS_PER_S + 1], np.int64), target=np.zeros(2, np.int32),
                     targets=["a"], unit_ns=NS_PER_S)
    columnar.write_schedule(sched, tmp_path / "s.parquet")
    opts = RunOptions(trace_file=str(tmp_path / "s.parquet"), warmup=1, duration=2, latf="")
    assert len(Orchestrator(opts).load()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds 2 seconds" in err[0] and "measuring the last 1" in err[0]
    opts = RunOptions(trace_file=str(tmp_path / "s.parquet"), warmup=1, duration=1, latf="")
    assert len(Orchestrator(opts).load()) == 2 and capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", n=2000, workers=1)


def test_run_environment_leaves_report_and_export_alone(synthetic_run, tmp_path, monkeypatch,
                                                        capsys):
    """REPLAYER_OUT is `replayer run`'s: a report and an export write to their own defaults
    under the run directory; REPLAYER_REPORT_OUT is the report's."""
    run_dir = synthetic_run.run_dir
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("REPLAYER_OUT", str(elsewhere))
    monkeypatch.setenv("REPLAYER_FORMAT", "parquet")
    before = (run_dir / "run.json").read_bytes()
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    assert (run_dir / "report" / "summary.json").exists()
    assert main(["export", str(run_dir)]) == 0
    assert (run_dir / "records.csv").exists()              # csv: REPLAYER_FORMAT is not export's
    assert not elsewhere.exists() and (run_dir / "run.json").read_bytes() == before
    monkeypatch.setenv("REPLAYER_REPORT_OUT", str(tmp_path / "report"))
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    assert (tmp_path / "report" / "summary.json").exists()
    capsys.readouterr()

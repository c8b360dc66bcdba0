"""replayer export: row counts, derived columns, the invoker's rps_lat.csv, Locust's CSVs
(checked against CSVs written by the real locust package), damaged streams."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from replayer.cli import main
from replayer.analysis.export import LOCUST_PERCENTILES, locust_bucket
from replayer.analysis.records import ERROR_NAMES, records_path

from report_fixtures import TARGETS, make_run, truncate

N = 60_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", n=N, workers=3)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_table_formats_hold_every_record(run, tmp_path, fmt, capsys):
    out = tmp_path / f"records.{fmt}"
    assert main(["export", str(run.run_dir), "--format", fmt, "--out", str(out)]) == 0
    assert f"exported {N} records" in capsys.readouterr().out
    if fmt == "csv":
        table = pacsv.read_csv(out)
    elif fmt == "parquet":
        table = pq.read_table(out)
    else:
        lines = out.read_text().splitlines()
        assert len(lines) == N
        rows = [json.loads(line) for line in lines]
        table = None
    if table is not None:
        assert table.num_rows == N
        rows = table.to_pylist()
    truth = run.rows
    by_event = {r["event"]: r for r in rows}
    assert sorted(by_event) == list(range(N))
    for e in (0, 1, 2, 777, N - 1) + tuple(np.flatnonzero(truth["sent_ns"] == 0)[:3]):
        r, t = by_event[int(e)], truth[int(e)]
        assert r["target"] == TARGETS[run.target[e]]
        assert r["class"] == ["urgent", "relaxed"][run.cls[e]]
        assert r["phase"] == ("measure" if run.t_ns[e] >= run.warmup_ns else "warmup")
        assert r["error"] == ERROR_NAMES[t["error"]]
        assert r["scheduled_ns"] == t["scheduled_ns"]
        if t["sent_ns"]:
            assert r["lag_ns"] == t["sent_ns"] - t["scheduled_ns"]
        else:
            assert r["sent_ns"] is None and r["lag_ns"] is None
        if t["done_ns"]:
            assert r["latency_ns"] == t["done_ns"] - t["sent_ns"]
            assert r["latency_intended_ns"] == t["done_ns"] - t["scheduled_ns"]
        else:
            assert r["done_ns"] is None and r["latency_ns"] is None


def _measure_ok(run):
    t = run.rows
    ok = (t["error"] == 0) & (t["done_ns"] > 0) & run.measure
    return t[ok]


def test_latf_is_the_invokers_rps_lat_csv(run, tmp_path):
    out = tmp_path / "rps_lat.csv"
    assert main(["export", str(run.run_dir), "-f", "latf", "-o", str(out)]) == 0
    text = out.read_text()
    assert not text.startswith("latency") and text.endswith("\n")
    got = np.array([int(x) for x in text.split()])
    ok = _measure_ok(run)
    want = (ok["done_ns"] - ok["sent_ns"]) // 1000
    assert np.array_equal(np.sort(got), np.sort(want))


def test_locust_bucket_matches_locust_rounding():
    from_locust = subprocess.run(
        [sys.executable, "-c", "import json,sys; from locust.stats import bucket_response_time as b;"
         "print(json.dumps([b(x) for x in json.load(sys.stdin)]))"],
        input=json.dumps(VALUES := [0.4, 0.6, 12.5, 99.4, 99.6, 147.0, 155.0, 999.0, 3432.0, 58760.0,
                                    9949.0, 12345.6, 1.5, 2.5]),
        capture_output=True, text=True, check=True)
    assert locust_bucket(np.array(VALUES)).tolist() == json.loads(from_locust.stdout)


LOCUST_SCRIPT = textwrap.dedent("""
    import csv, json, sys
    import numpy as np
    from locust.env import Environment
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter
    data = np.load(sys.argv[1], allow_pickle=True)
    prefix = sys.argv[2]
    env = Environment()
    for name, rt, failed, error, content in zip(data["name"], data["rt"], data["failed"],
                                                data["error"], data["content"]):
        env.stats.log_request("GET", str(name), None if np.isnan(rt) else float(rt), int(content))
        if failed:
            env.stats.log_error("GET", str(name), str(error))
    writer = StatsCSV(env, PERCENTILES_TO_REPORT)
    with open(prefix + "_stats.csv", "w", newline="") as f:
        writer.requests_csv(csv.writer(f))
    with open(prefix + "_failures.csv", "w", newline="") as f:
        writer.failures_csv(csv.writer(f))
    files = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, prefix + "_file")
    files.stats_history_csv_writer.writerow(files.stats_history_csv_columns)
    files._stats_history_data_rows(files.stats_history_csv_writer, 1700000000)
    files.close_files()
    print(json.dumps(PERCENTILES_TO_REPORT))
""")


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_locust_csvs_match_the_real_locust(run, tmp_path):
    # Look for locust without importing it here: importing it monkey-patches this process with
    # gevent (sockets and threads), which breaks every later test that runs a server thread.
    assert importlib.util.find_spec("locust") is not None, \
        "locust is a test extra: pip install -e '.[test]'"
    prefix = tmp_path / "ours"
    assert main(["export", str(run.run_dir), "-f", "locust", "-o", str(prefix)]) == 0

    # The same requests, logged into Locust's own RequestStats in a subprocess (importing
    # locust monkey-patches the interpreter with gevent).
    t = run.rows[run.measure]
    sent = t["sent_ns"] > 0
    done = t["done_ns"] > 0
    rt = np.where(sent & done, (t["done_ns"] - t["sent_ns"]) / 1e6, np.nan)
    failed = t["error"] != 0
    names = np.array(TARGETS)[run.target[run.measure]]
    err_text = np.array([("status 503" if ERROR_NAMES[e] == "status" else ERROR_NAMES[e])
                         for e in t["error"]], dtype=object)
    npz = tmp_path / "requests.npz"
    np.savez(npz, name=names, rt=rt, failed=failed, error=err_text, content=t["bytes_in"])
    theirs = tmp_path / "locust"
    proc = subprocess.run([sys.executable, "-c", LOCUST_SCRIPT, str(npz), str(theirs)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == LOCUST_PERCENTILES

    ours_stats = _read_csv(f"{prefix}_stats.csv")
    their_stats = _read_csv(f"{theirs}_stats.csv")
    assert ours_stats[0] == their_stats[0]
    assert _read_csv(f"{prefix}_stats_history.csv")[0] == _read_csv(f"{theirs}_file_stats_history.csv")[0]
    ours_fail = _read_csv(f"{prefix}_failures.csv")
    their_fail = _read_csv(f"{theirs}_failures.csv")
    assert ours_fail[0] == their_fail[0]

    # Same rows (endpoints then Aggregated), same numbers, except the per-second rates that
    # Locust takes from its own wall clock.
    assert [r[:2] for r in ours_stats[1:]] == [r[:2] for r in their_stats[1:]]
    header = ours_stats[0]
    for ours, theirs_row in zip(ours_stats[1:], their_stats[1:]):
        for col, a, b in zip(header, ours, theirs_row):
            if col in ("Requests/s", "Failures/s"):
                continue
            if col in ("Type", "Name") or b == "N/A":
                assert a == b, col
            else:
                assert float(a) == pytest.approx(float(b), rel=1e-9), (ours[1], col)
    assert sorted((r[1], r[2], r[3]) for r in ours_fail[1:]) == \
        sorted((r[1], r[2], r[3]) for r in their_fail[1:])

    history = _read_csv(f"{prefix}_stats_history.csv")
    assert all(r[3] == "Aggregated" for r in history[1:])
    # The last history row's totals are the whole run's.
    assert history[-1][history[0].index("Total Request Count")] == ours_stats[-1][2]


def test_damaged_stream_exports_what_is_readable(tmp_path, capsys):
    run = make_run(tmp_path / "run", n=40_000, workers=2, batch=2000)
    truncate(records_path(run.run_dir, 1), 0.5)
    out = tmp_path / "r.csv"
    assert main(["export", str(run.run_dir), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "records-w001.arrow: damaged after" in captured.err
    rows = pacsv.read_csv(out).num_rows
    assert 20_000 < rows < 40_000
    assert f"exported {rows} records" in captured.out


def test_missing_run_dir_is_a_clear_input_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "records-w*.arrow" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, names", [
    ("parquet", ["records.parquet"]), ("csv", ["records.csv"]), ("jsonl", ["records.jsonl"]),
    ("latf", ["rps_lat.csv"]),
    ("locust", ["locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv"]),
])
def test_out_directory_gets_the_default_names(run, tmp_path, capsys, fmt, names):
    """-o an existing directory (or a new one written with a trailing /) writes the format's
    default file name(s) inside it."""
    existing = tmp_path / "existing"
    existing.mkdir()
    assert main(["export", str(run.run_dir), "-f", fmt, "-o", str(existing)]) == 0
    assert sorted(p.name for p in existing.iterdir()) == sorted(names)
    assert main(["export", str(run.run_dir), "-f", fmt, "-o", f"{tmp_path / 'new'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(names)
    if fmt == "parquet":
        assert pq.read_table(existing / "records.parquet").num_rows == N
    capsys.readouterr()


def test_unwritable_out_is_one_line(run, tmp_path, capsys):
    """-o under a file, on a full device, or onto the run's own records: exit 2, one line
    naming -o, never a traceback; the records stay intact."""
    (tmp_path / "file").write_text("x")
    record = records_path(run.run_dir, 0)
    before = record.read_bytes()
    cases = [([str(tmp_path / "file" / "x.parquet")], "file is a file, not a directory"),
             ([str(tmp_path / "file" / "a" / "b.parquet")], "file is a file, not a directory"),
             (["/dev/full"], "cannot write /dev/full"),
             ([str(record)], "would overwrite"),
             ([str(run.run_dir / "run.json")], "would overwrite")]
    for out, words in cases:
        assert main(["export", str(run.run_dir), "-f", "parquet", "-o", *out]) == 2, out
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"replayer: error: -o {out[0]}:"), err
        assert words in err[0], err
    assert record.read_bytes() == before

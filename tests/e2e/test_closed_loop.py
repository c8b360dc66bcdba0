"""`replayer run --users N` against replayer's built-in target on loopback, as a real command:
N users never have more than N requests in flight, each waits its think time after its
answer, users start at the spawn rate, the trace-driven users' bodies arrive as written, the
seed's light load runs as written, Locust's CSVs are written while the run goes (checked
against the files the real locust writes for the same requests), and Ctrl-C stops the users
and awaits their requests."""
from __future__ import annotations

import collections
import csv
import importlib.util
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import replayer, run_cwd
from replayer.loopback.launch import start_serve
from replayer.analysis.records import read_records

MS = 1_000_000
TRACES = ['{"s0__47072": [{"s24__71648": [{}], "s28__64944": [{"s6__5728": [{}]}]}]}',
          '{"s0__1": [{}]}',
          '{"s0__2": [{"s3__4": [{}]}, {"s5__6": [{}]}]}',
          '{"s0__47072": [{"s24__71648": [{}], "s28__64944": [{"s6__5728": [{}]}]}]}']


def records_of(run_dir: Path) -> tuple[dict, dict]:
    """The run's records as numpy columns in event order (dictionary columns as strings, a
    null time as 0), and its run.json."""
    table, problems = read_records(run_dir)
    assert not problems
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            cols[name] = np.array(col.to_pylist(), dtype=object)
        else:
            cols[name] = pc.fill_null(col, 0).to_numpy()
    order = np.argsort(cols["event"], kind="stable")
    run = json.loads((run_dir / "run.json").read_text())
    return {name: c[order] for name, c in cols.items()}, run


def in_flight_max(sent: np.ndarray, done: np.ndarray) -> int:
    """The most requests in flight at once (an answer at the instant of a send counts first)."""
    times = np.concatenate([done, sent])
    steps = np.concatenate([-np.ones(len(done)), np.ones(len(sent))])
    order = np.lexsort((steps, times))
    return int(np.cumsum(steps[order]).max())


def test_users_in_flight_think_time_spawn_and_bodies(tmp_path):
    """6 users on 2 workers, half stochastic (GET /s0, no think time), half trace-driven
    (POST of call traces sampled with a seed, between(10 ms, 30 ms)): never more than 6
    requests in flight, a user's next request decided exactly its think time after its
    answer and never sent before it, user u started u / 30 s after the start, and every
    trace body received exactly as the records say it was sent."""
    bodies = tmp_path / "traces.jsonl"
    bodies.write_text("\n".join(TRACES) + "\n")
    log = tmp_path / "requests.jsonl"
    target = start_serve("--delay-ms", "20", "--record-requests", str(log), grpc_port=-1)
    out = tmp_path / "run"
    try:
        replayer("run", "-u", "6", "-r", "30", "-t", "2s", "--host",
                 f"http://127.0.0.1:{target.http_port}", "-c", "stochastic,trace",
                 "--trace-bodies", str(bodies), "--trace-order", "sample", "--seed", "5",
                 "--wait-time", "stochastic=constant(0)", "--wait-time",
                 "trace=between(0.01, 0.03)", "-workers", "2", "--out", str(out),
                 check_exit=0, timeout=60)
    finally:
        target.stop()
    rec, run = records_of(out)
    start = run["start_ns"]
    users = run["schedule_meta"]["users"]
    assert users["users"] == 6 and [c["name"] for c in users["classes"]] == ["stochastic", "trace"]
    assert (rec["error"] == "ok").all() and len(rec["event"]) > 100
    assert in_flight_max(rec["sent_ns"], rec["done_ns"]) <= 6
    user = rec["event"] % 6
    for u in range(6):
        mine = user == u
        sched, sent, done = (rec[c][mine] for c in ("scheduled_ns", "sent_ns", "done_ns"))
        assert sched[0] - start == u * (10**9 // 30)
        assert np.all(sent[1:] >= done[:-1])
        think = (sched[1:] - done[:-1]) / MS
        if rec["cls"][mine][0] == 0:
            assert np.all(think == 0)
        else:
            assert think.min() >= 10 and think.max() <= 30
    assert sorted(set(rec["cls"].tolist())) == [0, 1]
    # The target saw what the records say was sent: /s0 GETs, and the sampled bodies.
    got = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(g["method"], g["path"]) for g in got} == {("GET", "/s0"), ("POST", "/s0")}
    distinct = list(dict.fromkeys(TRACES))
    sent_bodies = collections.Counter(distinct[p - 1] for p in rec["payload"][rec["cls"] == 1])
    assert collections.Counter(g["body"] for g in got if g["method"] == "POST") == sent_bodies
    assert len(sent_bodies) == 3
    posted = [g for g in got if g["method"] == "POST"]
    assert all(dict((k.lower(), v) for k, v in g["headers"])["content-type"] == "application/json"
               for g in posted)


def test_the_seeds_light_load_as_written(tmp_path):
    """The seed's light load (-u 10 -r 2) for 3 s with a 1 s warm-up: users start every
    0.5 s, so users 0-5 send and 6-9 never start; requests decided in the first second are
    warm-up; the trace-driven users cycle through the file's bodies (user u's k-th request:
    body u + k)."""
    bodies = tmp_path / "traces.jsonl"
    bodies.write_text("\n".join(TRACES) + "\n")
    target = start_serve(grpc_port=-1)
    out = tmp_path / "run"
    try:
        replayer("run", "--headless", "-u", "10", "-r", "2", "-t", "3s", "--warmup", "1s",
                 "--host", f"http://127.0.0.1:{target.http_port}",
                 "-c", "TraceDrivenBenchmarkUser", "--trace-bodies", str(bodies),
                 "--wait-time", "constant(0.1)", "--out", str(out), check_exit=0, timeout=60)
    finally:
        target.stop()
    rec, run = records_of(out)
    start = run["start_ns"]
    user, k = rec["event"] % 10, rec["event"] // 10
    assert sorted(set(user.tolist())) == [0, 1, 2, 3, 4, 5]
    first = [rec["scheduled_ns"][user == u].min() - start for u in range(6)]
    assert first == [u * 500 * MS for u in range(6)]
    warm = rec["scheduled_ns"] - start < 10**9
    assert (rec["phase"][warm] == "warmup").all() and (rec["phase"][~warm] == "measure").all()
    order = [0, 1, 2, 0]            # the file's bodies, the repeat sharing the first's payload
    assert rec["payload"].tolist() == [order[(u + kk) % 4] for u, kk in zip(user, k)]


LOCUST_SCRIPT = textwrap.dedent("""
    import csv, json, sys
    from locust.env import Environment
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter
    requests = json.load(open(sys.argv[1]))
    prefix = sys.argv[2]
    env = Environment()
    for method, name, rt, content, error in requests:
        env.stats.log_request(method, name, rt, content)
        if error:
            env.stats.log_error(method, name, error)
    writer = StatsCSV(env, PERCENTILES_TO_REPORT)
    with open(prefix + "_stats.csv", "w", newline="") as f:
        writer.requests_csv(csv.writer(f))
    with open(prefix + "_failures.csv", "w", newline="") as f:
        writer.failures_csv(csv.writer(f))
    with open(prefix + "_exceptions.csv", "w", newline="") as f:
        writer.exceptions_csv(csv.writer(f))
    files = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, prefix + "_file", full_history=True)
    files.stats_history_csv_writer.writerow(files.stats_history_csv_columns)
    files.close_files()
""")


def _rows(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_locust_csvs_written_live_match_the_real_locust(tmp_path):
    """--csv while the run goes: the history grows a row a second during the run (an
    Aggregated row after a row per name, with --csv-full-history); at the end the four files
    have locust 2.x's headers, and _stats.csv and _failures.csv hold what the real locust
    writes when it logs the same measured requests (rates aside: Locust takes them from its
    own clock). Warm-up requests are left out."""
    assert importlib.util.find_spec("locust") is not None
    bodies = tmp_path / "traces.jsonl"
    bodies.write_text("\n".join(TRACES) + "\n")
    target = start_serve("--fault", "status=503:0.2", grpc_port=-1)
    out, prefix = tmp_path / "run", tmp_path / "csv" / "results"
    cmd = [sys.executable, "-m", "replayer", "run", "-u", "4", "-r", "100", "-t", "3s",
           "--warmup", "500ms", "--host", f"http://127.0.0.1:{target.http_port}",
           "-c", "stochastic", "-c", "trace", "--trace-bodies", str(bodies),
           "--wait-time", "constant(0.01)", "--out", str(out), "--csv", str(prefix),
           "--csv-full-history"]
    try:
        proc = subprocess.Popen(cmd, cwd=run_cwd(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # Rows seen while the process still runs (however long a busy machine takes to
        # start it): written during the run, not at its end.
        history_rows_live = 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and history_rows_live < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            history = Path(f"{prefix}_stats_history.csv")
            rows = len(_rows(history)) - 1 if history.exists() else 0
            if proc.poll() is None:
                history_rows_live = max(history_rows_live, rows)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        target.stop()
    assert proc.returncode == 0, stderr
    assert history_rows_live >= 3       # written while the run went: a second's rows at least

    rec, _ = records_of(out)
    measured = np.flatnonzero(rec["phase"] == "measure")
    requests = []
    for i in measured:
        method = "GET" if rec["payload"][i] == 0 else "POST"
        rt = (int(rec["done_ns"][i]) - int(rec["sent_ns"][i])) / 1e6
        error = "" if rec["error"][i] == "ok" else f"status {rec['status'][i]}"
        requests.append([method, "/s0", rt, int(rec["bytes_in"][i]), error])
    assert any(q[4] for q in requests) and len({q[0] for q in requests}) == 2
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    theirs = tmp_path / "locust"
    p = subprocess.run([sys.executable, "-c", LOCUST_SCRIPT, str(tmp_path / "requests.json"),
                        str(theirs)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr

    ours_stats, their_stats = _rows(f"{prefix}_stats.csv"), _rows(f"{theirs}_stats.csv")
    assert ours_stats[0] == their_stats[0]
    assert [r[:2] for r in ours_stats[1:]] == [r[:2] for r in their_stats[1:]]
    for ours, theirs_row in zip(ours_stats[1:], their_stats[1:]):
        for col, a, b in zip(ours_stats[0], ours, theirs_row):
            if col in ("Requests/s", "Failures/s"):
                continue
            if col in ("Type", "Name") or b == "N/A":
                assert a == b, col
            else:
                assert float(a) == pytest.approx(float(b), rel=1e-9), (ours[1], col)
    ours_fail, their_fail = _rows(f"{prefix}_failures.csv"), _rows(f"{theirs}_failures.csv")
    assert ours_fail[0] == their_fail[0]
    assert sorted(r[:4] for r in ours_fail[1:]) == sorted(r[:4] for r in their_fail[1:])
    assert _rows(f"{prefix}_exceptions.csv") == _rows(f"{theirs}_exceptions.csv")
    history = _rows(f"{prefix}_stats_history.csv")
    assert history[0] == _rows(f"{theirs}_file_stats_history.csv")[0]
    seconds = [int(r[0]) for r in history[1:]]
    assert seconds == sorted(seconds) and len(set(seconds)) >= 3
    by_second = collections.defaultdict(list)
    for r in history[1:]:
        by_second[r[0]].append(r[3])
    assert all(names_[-1] == "Aggregated" for names_ in by_second.values())
    assert history[-1][history[0].index("Total Request Count")] == ours_stats[-1][2]
    assert int(history[-1][1]) == 4         # User Count: every user started


def test_ctrl_c_stops_the_users_and_awaits_their_requests(tmp_path):
    """Ctrl-C (SIGINT) during a users run: no new request, those in flight answered and
    recorded, exit 130; every record has its answer."""
    target = start_serve("--delay-ms", "50", grpc_port=-1)
    out = tmp_path / "run"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "replayer", "run", "-u", "4", "-r", "100",
                                 "-t", "60s", "--host", f"http://127.0.0.1:{target.http_port}",
                                 "--out", str(out)], cwd=run_cwd(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out / "run.json").exists():
            time.sleep(0.1)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        target.stop()
    assert proc.returncode == 130, stderr
    assert "stopping: no new requests" in stderr
    rec, run = records_of(out)
    assert len(rec["event"]) > 20 and (rec["error"] == "ok").all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == 0 and summary["stopped"] == "interrupted"
    assert rec["done_ns"].max() - run["start_ns"] < 10 * 10**9

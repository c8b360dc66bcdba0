"""Runs in stages and live control, end to end with real `replayer run` processes: a PUT of
the rate on the control port reaching every worker within 100 ms (as the records show), a pause
and resume that lose no request, bad PUTs refused whole, --stage.K overrides in each stage's
run.json, an idle stage, perf.jsonl sampled from a real child process, GET /metrics parsed by
prometheus-client and equal to the records, and bad overrides or addresses refused in one
line."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, replayer, write_load
from replayer.analysis.records import read_records
from replayer.schedules.columnar import write_schedule
from replayer.schedules.content import RequestClass
from replayer.schedules.schedule import NS_PER_S, Schedule

MS = 1_000_000


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict | str]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            code, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        code, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    text = raw.decode()
    return code, json.loads(text) if ctype.startswith("application/json") else text


def _wait_for(predicate, proc, timeout=60.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _start_ns(run_dir: Path) -> int | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("start_ns")
    except (OSError, ValueError):
        return None


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "control.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- a rate change


@pytest.fixture(scope="module")
def rate_run(tmp_path_factory):
    """4 s of 100 req/s (one request every 10 ms, so every 20 ms for each of 2 workers); 1 s
    in, PUT {"rate": 0.5}."""
    tmp = tmp_path_factory.mktemp("rate")
    ts = [int(x) for x in np.arange(100) * 10_000]
    load = write_load(tmp / "load.json", [(ts, ["svc.example.com"] * 100)] * 4)
    port, out = free_port(), tmp / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-warmup", "0", "-duration", "4", "--protocol", "null", "-workers", "2", "--no-pin",
         "--control-port", str(port), "--out", str(out)],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _start_ns(out), proc, what="the run's start")
    start = _start_ns(out)
    time.sleep(max(0.0, (start + 1000 * MS - time.time_ns()) / 1e9))
    put = _http("PUT", f"http://127.0.0.1:{port}/config", b'{"rate": 0.5}')
    config = _http("GET", f"http://127.0.0.1:{port}/config")
    metrics = _http("GET", f"http://127.0.0.1:{port}/metrics")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    return {"out": out, "put": put, "config": config, "metrics": metrics, "stderr": stderr}


def test_put_halves_the_rate_in_every_worker_within_100ms(rate_run):
    """PUT {"rate": 0.5} answers with the new settings; control.jsonl logs it with its time
    and each worker's measured delay in applying it (under 100 ms); in every worker's records
    the requests due before the PUT are 20 ms apart and all those due from 100 ms after it
    are 40 ms apart, their send times too; nothing is lost."""
    out = rate_run["out"]
    code, doc = rate_run["put"]
    assert code == 200 and doc["rate"] == 0.5 and doc["paused"] is False and doc["running"]
    assert rate_run["config"][1]["rate"] == 0.5
    change = next(e for e in _log(out) if e["event"] == "change")
    applied = next(e for e in _log(out) if e["event"] == "applied" and e["seq"] == change["seq"])
    assert change["change"] == {"rate": 0.5} and change["source"] == "PUT /config"
    put_ns = change["t_ns"]
    assert [w["worker"] for w in applied["workers"]] == [0, 1]
    assert all(0 <= w["delay_ms"] < 100 for w in applied["workers"]), applied
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == 400
    assert table.column("error").cast("string").to_pylist() == ["ok"] * 400
    for k in (0, 1):
        mine = table.filter(table.column("worker").to_numpy() == k).sort_by("event")
        sched = mine.column("scheduled_ns").to_numpy()
        sent = mine.column("sent_ns").to_numpy()
        before = sched[1:] < put_ns
        after = sched[:-1] >= put_ns + 100 * MS
        assert before.sum() >= 30 and after.sum() >= 30
        gaps = np.diff(sched)
        assert np.all(np.abs(gaps[before] - 20 * MS) <= 1000), gaps[before]
        assert np.all(np.abs(gaps[after] - 40 * MS) <= 1000), gaps[after]
        sent_gaps = np.diff(sent)
        assert abs(np.median(sent_gaps[before]) - 20 * MS) < 2 * MS
        assert abs(np.median(sent_gaps[after]) - 40 * MS) < 2 * MS


def test_metrics_during_a_run_parse_as_prometheus_text(rate_run):
    """GET /metrics while the run goes: Prometheus text that prometheus-client parses, with
    the request counter, both histograms, in-flight per worker and the live rate."""
    code, text = rate_run["metrics"]
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"replayer_requests", "replayer_send_lag_seconds", "replayer_latency_seconds",
            "replayer_inflight", "replayer_rate_scale", "replayer_paused"} <= set(families)
    ok = [s for s in families["replayer_requests"].samples
          if s.name == "replayer_requests_total" and s.labels["outcome"] == "ok"]
    assert ok and 0 < ok[0].value <= 400
    assert [s.value for s in families["replayer_rate_scale"].samples] == [0.5]
    assert {s.labels["worker"] for s in families["replayer_inflight"].samples} == {"0", "1"}


# ---------------------------------------------------------------- stages, pause, perf, metrics


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """Two stages of a 2-class schedule (200 req/s for 3 s) with the control port and a
    monitored child process: stage 0 replays with its own --max-inflight and is paused about
    1 s (PUT {}) then resumed, bad PUTs in between; stage 1 is idle for 2 s, during which
    GET /metrics still shows stage 0's final counts."""
    tmp = tmp_path_factory.mktemp("staged")
    n = 600
    schedule = Schedule(t_ns=np.arange(n, dtype=np.int64) * 5 * MS,
                        target=np.zeros(n, np.int32), targets=["svc.example.com"],
                        cls=(np.arange(n) % 2).astype(np.int16),
                        classes=[RequestClass("urgent"), RequestClass("batch")], unit_ns=NS_PER_S)
    path = tmp / "schedule.arrow"
    write_schedule(schedule, path)
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nwhile True:\n    sum(range(20000)); time.sleep(0.01)"])
    port, out = free_port(), tmp / "run"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "replayer", "run", "-traceFile", str(path), "-warmup", "0",
             "--protocol", "null", "-workers", "2", "--no-pin", "--stages", "2",
             "--stage.duration", "3", "--stage.0.max-inflight", "500", "--stage.1.idle",
             "--stage.1.duration=2", "--control-port", str(port),
             "--monitor-pid", str(child.pid), "--monitor-interval", "0.25", "--out", str(out)],
            cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        stage0 = out / "stage-0"
        _wait_for(lambda: _start_ns(stage0), proc, what="stage 0's start")
        start = _start_ns(stage0)
        time.sleep(max(0.0, (start + 800 * MS - time.time_ns()) / 1e9))
        r = {"pause": _http("PUT", f"{base}/config", b"{}")}
        time.sleep(0.3)
        r["malformed"] = _http("PUT", f"{base}/config", b'{"rate": ')
        r["unknown"] = _http("PUT", f"{base}/config", b'{"faucet": {"interval": 60}}')
        r["bad_weight"] = _http("PUT", f"{base}/config", b'{"classes": {"batch": {"weight": 3}}}')
        r["while_paused"] = _http("GET", f"{base}/config")
        time.sleep(0.7)
        r["resume"] = _http("PUT", f"{base}/config", b'{"paused": false}')
        _wait_for(lambda: (out / "stage-1" / "run.json").exists(), proc, what="stage 1")
        r["metrics"] = _http("GET", f"{base}/metrics")
        r["idle_put"] = _http("PUT", f"{base}/config", b'{"rate": 2}')
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 0, stderr[-3000:]
    return {"out": out, "r": r, "stdout": stdout, "stderr": stderr, "child": child.pid,
            "n": n}


def test_pause_and_resume_lose_no_request(staged_run):
    """PUT {} pauses (as the runner's empty config); while paused no request leaves; on resume
    the requests that fell due meanwhile go, shifted by the pause: every one of the 600 is
    sent and answered, none recorded not_sent."""
    out, r = staged_run["out"] / "stage-0", staged_run["r"]
    assert r["pause"][0] == 200 and r["pause"][1]["paused"] is True
    assert r["resume"][0] == 200 and r["resume"][1]["paused"] is False
    changes = [e for e in _log(out) if e["event"] == "change"]
    paused_ns, resumed_ns = changes[0]["t_ns"], changes[1]["t_ns"]
    assert 0.8e9 < resumed_ns - paused_ns < 3e9
    table, _ = read_records(out)
    assert table.num_rows == staged_run["n"]
    assert set(table.column("error").cast("string").to_pylist()) == {"ok"}
    sent = np.sort(table.column("sent_ns").to_numpy())
    assert not np.any((sent > paused_ns + 100 * MS) & (sent < resumed_ns))
    assert np.diff(sent).max() >= resumed_ns - paused_ns - 200 * MS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == 0 and summary["errors"] == {"ok": staged_run["n"]}


def test_bad_puts_are_refused_whole(staged_run):
    """Malformed JSON, an unknown key, a weight out of range: 400 with the reason, and the
    settings as they were; a PUT while no stage replays (idle) is refused too."""
    r = staged_run["r"]
    assert r["malformed"][0] == 400 and r["malformed"][1]["error"].startswith("malformed JSON")
    assert r["unknown"][0] == 400 and "unknown key 'faucet'" in r["unknown"][1]["error"]
    assert r["bad_weight"][0] == 400 and "must be from 0 to 1" in r["bad_weight"][1]["error"]
    config = r["while_paused"][1]
    assert config["paused"] is True and config["rate"] == 1.0
    assert config["classes"] == {"urgent": {"weight": 1.0}, "batch": {"weight": 1.0}}
    assert len([e for e in _log(staged_run["out"] / "stage-0") if e["event"] == "change"]) == 2
    assert r["idle_put"][0] == 409 and "stage 1 is idle" in r["idle_put"][1]["error"]


def test_stage_overrides_reach_each_stages_run_json(staged_run):
    """--stage.0.max-inflight 500 and --stage.duration 3 in stage 0's run.json, the default
    --max-inflight and idle in stage 1's; the whole run's run.json and summary.json list both."""
    out = staged_run["out"]
    s0 = json.loads((out / "stage-0" / "run.json").read_text())
    s1 = json.loads((out / "stage-1" / "run.json").read_text())
    assert s0["options"]["max_inflight"] == 500 and s0["stage"]["units"] == [0, 3]
    assert s0["stage"]["overrides"] == {"duration": 3, "max-inflight": 500}
    assert s1["options"]["max_inflight"] == 10000 and s1["stage"]["idle"] is True
    root = json.loads((out / "run.json").read_text())
    assert [s["idle"] for s in root["stages"]] == [False, True]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["scheduled"] == staged_run["n"] and summary["exit_code"] == 0
    assert "stage 1   idle" in staged_run["stdout"]


def test_perf_jsonl_samples_a_real_child_at_the_interval(staged_run):
    """--monitor-pid CHILD --monitor-interval 0.25: each stage's perf.jsonl has samples about
    0.25 s apart with the child's CPU, RSS, threads, open files and I/O, and the machine's."""
    for stage, seconds in (("stage-0", 3.0), ("stage-1", 2.0)):
        lines = (staged_run["out"] / stage / "perf.jsonl").read_text().splitlines()
        samples = [json.loads(line) for line in lines]
        assert len(samples) >= 0.6 * seconds / 0.25, (stage, len(samples))
        gaps = np.diff([s["t_ns"] for s in samples]) / 1e9
        assert 0.2 < float(np.median(gaps)) < 0.35, gaps
        proc = samples[-1]["processes"][0]
        assert proc["pid"] == staged_run["child"] and proc["rss_bytes"] > 1 << 20
        assert proc["threads"] >= 1 and proc["cpu_percent"] is not None and proc["fds"] >= 3
        assert {"cpu_percent", "mem_used_bytes", "net_sent_bytes"} <= set(samples[-1]["machine"])


def test_metrics_parse_and_equal_the_records(staged_run):
    """GET /metrics during the idle stage: stage 0's final counts, parsed by prometheus-client:
    requests by class and outcome, the lag histogram's count (requests sent) and the latency
    histogram's (answered ok) per class equal what its records say; nothing in flight."""
    code, text = staged_run["r"]["metrics"]
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    table, _ = read_records(staged_run["out"] / "stage-0")
    names = ["urgent", "batch"]
    cls = table.column("cls").to_numpy()
    errors = np.array(table.column("error").cast("string").to_pylist())
    expected = {(names[k], e): int(np.sum((cls == k) & (errors == e)))
                for k in range(2) for e in set(errors)}
    got = {(s.labels["class"], s.labels["outcome"]): int(s.value)
           for s in families["replayer_requests"].samples if s.name == "replayer_requests_total"}
    assert got == expected and sum(got.values()) == staged_run["n"]
    assert all(s.labels["stage"] == "0" for s in families["replayer_requests"].samples)
    sent = ~np.isnan(table.column("sent_ns").to_numpy(zero_copy_only=False).astype(float))
    for family, mask in (("replayer_send_lag_seconds", sent), ("replayer_latency_seconds",
                                                               errors == "ok")):
        counts = {s.labels["class"]: int(s.value) for s in families[family].samples
                  if s.name == family + "_count"}
        assert counts == {"urgent": int(np.sum(mask & (cls == 0))),
                          "batch": int(np.sum(mask & (cls == 1))), "none": 0}
    assert all(s.value == 0 for s in families["replayer_inflight"].samples)


def test_report_marks_the_changes_and_draws_perf(staged_run):
    """`replayer report` on a stage: the changes made on the control port in its summary (and
    marked on its plots over time), and perf.jsonl drawn on the same time axis."""
    run = staged_run["out"] / "stage-0"
    replayer("report", str(run), check_exit=0, timeout=180)
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert [c["change"] for c in summary["control_changes"]] == [{}, {"paused": False}]
    assert summary["perf_samples"] >= 7
    assert (run / "report" / "perf_over_time.png").stat().st_size > 10_000
    assert "perf_over_time" in (run / "report" / "report.html").read_text()


# ---------------------------------------------------------------- refused before it starts


@pytest.mark.parametrize("args, message", [
    (["--stage.1.bogus", "3"], "--stage.1.bogus: stage 1 has no option 'bogus'"),
    (["--stage.5.workers", "1"], "--stage.5.workers: no stage 5; --stages 3 makes stages 0 to 2"),
    (["--stage.2.max-inflight", "-5"], "--stage.2.max-inflight: stage 2: --max-inflight -5"),
    (["--stage.0.workers", "many"], "--stage.0.workers 'many': expected an integer"),
    (["--stage.1.out", "x"], "--stage.1.out: --out is the same for every stage"),
    (["--stage.1.control.rate", "0"], "--stage.1.control: rate 0: must be from"),
])
def test_bad_stage_override_is_one_line_naming_stage_and_option(tmp_path, args, message):
    """A bad --stage.K override stops the run before anything starts: exit 2, one line that
    names the stage and the option, no run directory."""
    load = write_load(tmp_path / "load.json", [([0, 500_000], ["svc"] * 2)] * 3)
    proc = replayer("run", "-traceFile", str(load), "-min=false", "--protocol", "null",
                    "--stages", "3", "--stage.duration", "1", "-warmup", "0", *args,
                    "--out", str(tmp_path / "run"), check_exit=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


def test_control_port_refuses_a_non_loopback_address_unless_told(tmp_path):
    """--control-address 0.0.0.0 alone: exit 2, saying the API has no authentication; with
    --control-allow-remote the run goes, warning that it is unauthenticated."""
    load = write_load(tmp_path / "load.json", [([0, 500_000], ["svc"] * 2)])
    common = ["run", "-traceFile", str(load), "-min=false", "--protocol", "null", "-warmup", "0",
              "-duration", "1", "-workers", "1", "--control-port", str(free_port()),
              "--control-address", "0.0.0.0"]
    proc = replayer(*common, "--out", str(tmp_path / "a"), check_exit=2)
    assert "no authentication" in proc.stderr and "--control-allow-remote" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = replayer(*common, "--control-allow-remote", "--out", str(tmp_path / "b"), check_exit=0)
    assert "unauthenticated" in proc.stderr


def test_live_status_line_on_a_terminal_only(tmp_path):
    """With stderr on a terminal (a pty), the run rewrites one status line (carriage return,
    erase) with elapsed/total, sent, rate, failed, lag p99 and latency p99; stdout, a pipe,
    gets the summary only, without a control character."""
    import os
    import pty
    load = write_load(tmp_path / "load.json", [([x * 10_000 for x in range(100)], ["svc"] * 100)] * 3)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-warmup", "0", "-duration", "3", "--protocol", "null", "-workers", "1",
         "--out", str(tmp_path / "run")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:           # the pty is closed once the run has exited
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    status = [part for part in seen.decode().split("\r") if "lag p99" in part]
    assert status and all("latency p99" in part and "sent" in part and "req/s" in part
                          for part in status), seen
    assert "\r" not in stdout and "\033" not in stdout and "scheduled 300" in stdout

"""Figure 10: the priority inference load (docs/inference.md), the seed's design and replayer
side by side against the same target, at 20, 70, 700 and 7,000 QPS in total (balanced
workload, 9 tier x SLO classes, Poisson arrivals, a fresh 602 KB float32 tensor per request).

- The seed (bench/seed_inference_loadgen.py): MLPerf LoadGen Server scenario, one instance per
  class, its SUT dispatching each query from a new thread through a grpcio stub after
  numpy.random.rand(1,3,224,224).astype(float32).flatten().tolist(). As specified (nine
  LoadGen tests in threads of one process) it aborts at once with mlcommons-loadgen 6.0
  (part "threads"); the rates are measured with each class in its own process (part
  "rates"), the closest form that runs, and one that has more CPU than the threads would.
- replayer: `replayer gen classes` then `replayer run -workers 1` (libcurl h2c, from C).
- The target: nginx over h2c answering /scheduler.SchedulerService/Infer with a static
  InferResponse, one worker on the last CPU (bench/scheduler_target.py).

Per run, from each tool's own stamps: the achieved rate (requests sent between the first and
the last scheduled time, over that span), the share sent at all, the send lag (the send stamp
minus the scheduled time: for replayer its records' sent_ns - scheduled_ns; for the seed the
stamp just before stub.Infer minus LoadGen's scheduled time of the query, from LoadGen's
trace) and CPU per request sent: of the run (replayer's worker, from its summary; the seed's
nine processes, getrusage around StartTest, up to the give-up when it gave up) and of the
whole command (start-up, imports, spawning, summary and CSV included). The seed's scheduled
times are LoadGen's (steady clock, in its trace); they are put on the wall clock with the
least (issue_query entry - LoadGen's issue start) over the run's queries, which makes the
lag, if anything, smaller than it was. A run the seed cannot keep up with is cut
GIVE_UP_GRACE_S after the minimum duration (queries not dispatched by then are never sent,
and the lag p99 is then "not sent" when more than 1% of them were not). LoadGen's schedule is
the same every run (its default schedule_rng_seed): at these settings its last query is due
at 6.6 s, before the cut; `gen classes` uses its default --seed 1.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

import _lib

RATES = (20.0, 70.0, 700.0, 7000.0)
NO_TENSOR_RATES = (700.0, 7000.0)
DURATION_MS = int(5000 * _lib._SCALE)
MIN_QUERY_COUNT = 5
REPS = 2
GIVE_UP_GRACE_S = 3.0
MAX_RSS_MB = 1500.0            # per class process: the seed's backlog holds 5 MB per query
SEED = _lib.BENCH / "seed_inference_loadgen.py"
_SAMPLE = re.compile(r'"name":"Sample","cat":"default","ph":"b".*?"ts":(-?[\d.]+),"args":\{'
                     r'"sample_seq":\d+,"query_seq":(\d+),"sample_idx":\d+,"issue_start_ns":(\d+)')


@pytest.fixture(scope="session")
def scheduler_target(deps, workdir):
    from scheduler_target import check, scheduler_target as make
    t = make(workdir / "nginx-scheduler", workers=1)
    try:
        assert check(t.port) is True
        yield t
    finally:
        t.stop()


def schedule_stats(scheduled_ns: np.ndarray, sent_ns: np.ndarray) -> dict:
    """The same figures for both tools: sent_ns 0 where never sent."""
    order = np.argsort(scheduled_ns)
    scheduled_ns, sent_ns = scheduled_ns[order], sent_ns[order]
    n = scheduled_ns.size
    first, last = int(scheduled_ns[0]), int(scheduled_ns[-1])
    span_s = max(1e-9, (last - first) / 1e9)
    sent = sent_ns > 0
    in_window = int(np.count_nonzero(sent & (sent_ns >= first) & (sent_ns <= last)))
    lag_us = (sent_ns[sent] - scheduled_ns[sent]) / 1e3
    # Past the first second: the steady state, without the start (the seed's nine classes
    # all issue their first query at once, each paying its first tensor and call).
    steady = (scheduled_ns[sent] - first) > 1_000_000_000
    out = {"scheduled": int(n), "sent": int(sent.sum()), "sent_pct": 100.0 * sent.sum() / n,
           "intended_rate": (n - 1) / span_s, "achieved_rate": in_window / span_s,
           "span_s": span_s, "lag_us": _lib.pcts(lag_us, (50, 99, 100)),
           "steady_lag_us": _lib.pcts(lag_us[steady], (50, 99, 100)),
           "lag_over_1s_pct": 100.0 * np.count_nonzero(lag_us > 1e6) / n}
    if n - sent.sum() > 0.01 * n:
        out["lag_us"]["p99"] = None        # more than 1% never sent: the p99 is one of them
        out["steady_lag_us"]["p99"] = None
        out["p99_not_sent"] = True
    return out


def loadgen_schedule(log_dir: Path) -> dict[int, tuple[float, int]]:
    """query_seq -> (scheduled time in µs of LoadGen's clock, LoadGen's issue delay in ns)."""
    text = (Path(log_dir) / "mlperf_log_trace.json").read_text()
    return {int(q): (float(ts), int(delay)) for ts, q, delay in _SAMPLE.findall(text)}


def seed_arrays(stamps: dict, root: Path) -> tuple[np.ndarray, np.ndarray, list]:
    """(scheduled_ns on the wall clock, sent_ns (0: never sent), LoadGen's issue delays in
    µs) over all classes of one seed run."""
    sched_all, sent_all, delays = [], [], []
    for c in stamps["classes"].values():
        sched = loadgen_schedule(root / c["log_dir"])     # log_dir: relative to the run's cwd
        calls = dict(c["issue_calls"])
        # LoadGen's steady clock -> wall clock: the least gap between its issue start and the
        # issue_query entry (the Python callback's own cost, a few µs when idle).
        offset = min(calls[q] - (ts * 1e3 + d) for q, (ts, d) in sched.items() if q in calls)
        sent = {order: issued for order, issued, _, _ in c["sent"]}
        for q, (ts, d) in sched.items():
            sched_all.append(int(ts * 1e3 + offset))
            sent_all.append(sent.get(q, 0))
            delays.append(d / 1e3)
    return np.array(sched_all, np.int64), np.array(sent_all, np.int64), delays


def run_seed(workdir: Path, target, rate: float, tensor: bool = True,
             classes_in: str = "processes") -> dict:
    _lib._RUN_SEQ[0] += 1
    out = workdir / "seed" / f"{rate:g}-{'t' if tensor else 'nt'}-{_lib._RUN_SEQ[0]}"
    out.mkdir(parents=True, exist_ok=True)
    duration_s = DURATION_MS / 1e3
    cmd = [sys.executable, str(SEED), "--scheduler-url", f"127.0.0.1:{target.port}",
           "--total-qps", f"{rate:g}", "--duration-ms", str(DURATION_MS),
           "--min-query-count", str(MIN_QUERY_COUNT), "--workload", "balanced",
           "--output-dir", str(out / "loadgen_logs"), "--metrics-csv", str(out / "metrics.csv"),
           "--classes-in", classes_in, "--trace", "--stamps", str(out / "stamps.json"),
           "--give-up-s", f"{duration_s + GIVE_UP_GRACE_S:g}", "--max-rss-mb", f"{MAX_RSS_MB:g}"]
    if not tensor:
        cmd.append("--no-tensor")
    p = _lib.run_cmd(cmd, timeout=duration_s + 120, target=target, cwd=out)
    info = {"tool": "seed", "rate": rate, "tensor": tensor, "classes_in": classes_in,
            "rc": p.rc, "wall_s": p.wall_s, "cmd_cpu_s": p.cpu_s}
    if p.rc != 0:
        info["error"] = (p.err.strip().splitlines() or ["(no message)"])[-1]
        return info
    stamps = json.loads((out / "stamps.json").read_text())
    scheduled, sent, delays = seed_arrays(stamps, out)
    stats = schedule_stats(scheduled, sent)
    # A class given up: its CPU and its sends up to that moment (what the drain after it,
    # completing the rest unsent, costs is not the seed's).
    run_cpu, cpu_sent = 0.0, 0
    for c in stamps["classes"].values():
        if c["gave_up_at_ns"] is None:
            run_cpu += c["cpu_run_s"]
            cpu_sent += len(c["sent"])
        else:
            run_cpu += c["cpu_to_give_up_s"]
            cpu_sent += sum(1 for _, issued, _, _ in c["sent"] if issued < c["gave_up_at_ns"])
    run_s = (stamps["wall_end_ns"] - stamps["wall_start_ns"]) / 1e9
    gave_up = sorted({c["gave_up"] for c in stamps["classes"].values() if c["gave_up"]})
    info.update(stats)
    info.update({"cpu_us_per_req": 1e6 * run_cpu / max(1, cpu_sent), "run_cpu_s": run_cpu,
                 "cmd_cpu_us_per_req": 1e6 * p.cpu_s / max(1, stats["sent"]),
                 "loadgen_issue_delay_us": _lib.pcts(delays, (50, 99, 100)),
                 "gave_up": gave_up,
                 "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1),
                 "run_s": run_s})
    return info


def classes_load(workdir: Path, target, rate: float, tensor: bool, duration_ms: int = DURATION_MS,
                 min_query_count: int = MIN_QUERY_COUNT) -> Path:
    kind = "t" if tensor else "nt"
    path = workdir / "loads" / f"classes-{rate:g}-{duration_ms}-{kind}-{target.port}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "replayer", "gen", "classes", "--total-qps", f"{rate:g}",
               "--duration-ms", str(duration_ms), "--min-query-count", str(min_query_count),
               "--workload", "balanced", "--scheduler-url", f"127.0.0.1:{target.port}",
               "-o", str(path)] + ([] if tensor else ["--no-tensor"])
        p = _lib.run_cmd(cmd, timeout=120)
        if p.rc != 0:
            raise RuntimeError(f"gen classes failed: {p.err[-2000:]}")
    return path


def _replayer_cmd(load: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-workers", "1",
            "--out", str(out), "-latf", ""]


def run_replayer(workdir: Path, target, rate: float, tensor: bool = True) -> dict:
    from replayer.analysis.records import read_records
    load = classes_load(workdir, target, rate, tensor)
    _lib._RUN_SEQ[0] += 1
    out = workdir / "runs" / f"classes-{rate:g}-{'t' if tensor else 'nt'}-{_lib._RUN_SEQ[0]}"
    p = _lib.run_cmd(_replayer_cmd(load, out), timeout=DURATION_MS / 1e3 + 120, target=target,
                     cwd=workdir)
    info = {"tool": "replayer", "rate": rate, "tensor": tensor, "rc": p.rc, "wall_s": p.wall_s,
            "cmd_cpu_s": p.cpu_s}
    if not (out / "summary.json").exists():
        info["error"] = (p.err.strip().splitlines() or ["(no message)"])[-1]
        return info
    s = json.loads((out / "summary.json").read_text())
    table, _ = read_records(out, ["scheduled_ns", "sent_ns"])
    sched = table.column("scheduled_ns").to_numpy()
    sent = table.column("sent_ns").fill_null(0).to_numpy()
    stats = schedule_stats(sched, sent)
    info.update(stats)
    # The run's CPU is the worker's (summary.json, the run only); the parent's share of the
    # run, draining records, is ~1 µs a request (figure 8).
    worker_cpu_s = sum(w["cpu_s"] for w in s["workers"])
    info.update({"cpu_us_per_req": 1e6 * worker_cpu_s / max(1, stats["sent"]),
                 "cmd_cpu_us_per_req": 1e6 * p.cpu_s / max(1, stats["sent"]),
                 "errors": s["errors"],
                 "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1)})
    return info


def _stats(values) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def summarise(runs: list[dict]) -> dict:
    """Median and range of a cell's repeats (a p99 'not sent' counts as missing)."""
    ok = [r for r in runs if "error" not in r]
    return {"runs": len(runs), "failed": [r["error"] for r in runs if "error" in r],
            "achieved_rate": _stats([r["achieved_rate"] for r in ok]),
            "achieved_share": _stats([r["achieved_rate"] / r["intended_rate"] for r in ok]),
            "sent_pct": _stats([r["sent_pct"] for r in ok]),
            "lag_p50_us": _stats([r["lag_us"]["p50"] for r in ok]),
            "lag_p99_us": _stats([r["lag_us"]["p99"] for r in ok]),
            "steady_lag_p99_us": _stats([r["steady_lag_us"]["p99"] for r in ok]),
            "p99_not_sent": sum(1 for r in ok if r.get("p99_not_sent")),
            "cpu_us_per_req": _stats([r["cpu_us_per_req"] for r in ok]),
            "cmd_cpu_us_per_req": _stats([r["cmd_cpu_us_per_req"] for r in ok]),
            "loadgen_issue_delay_p99_us": _stats([(r.get("loadgen_issue_delay_us") or {}).get("p99")
                                                  for r in ok]),
            "target_cpu_pct": _stats([r["target_cpu_pct"] for r in ok])}


def test_fig10_seed_threads_as_specified(benchmark, workdir, scheduler_target):
    """The seed as written: nine LoadGen tests in threads of one process."""
    r = benchmark.pedantic(lambda: run_seed(workdir, scheduler_target, RATES[0],
                                            classes_in="threads"), rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 10, "part": "threads", "rate": RATES[0],
                                 "rc": r["rc"], "error": r.get("error"), "wall_s": r["wall_s"],
                                 "completed": "error" not in r})


def test_fig10_seed_vs_replayer(benchmark, workdir, scheduler_target):
    cells = [(rate, True) for rate in RATES] + [(rate, False) for rate in NO_TENSOR_RATES]

    def attempt(fn, *args):
        # One broken run is reported in its cell, not the end of the figure.
        try:
            return fn(*args)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"[:300]}

    def go():
        runs = {(tool, rate, tensor): [] for tool in ("seed", "replayer") for rate, tensor in cells}
        # Interleaved, one load at a time: each repeat sees the machine's load of its minute.
        for _ in range(REPS):
            for rate, tensor in cells:
                runs[("seed", rate, tensor)].append(
                    attempt(run_seed, workdir, scheduler_target, rate, tensor))
                runs[("replayer", rate, tensor)].append(
                    attempt(run_replayer, workdir, scheduler_target, rate, tensor))
        return runs

    runs = benchmark.pedantic(go, rounds=1, iterations=1)
    rows = []
    for (tool, rate, tensor), rs in runs.items():
        rows.append({"tool": tool, "rate": rate, "tensor": tensor, **summarise(rs),
                     "each": [{k: v for k, v in r.items() if k != "tool"} for r in rs]})
    benchmark.extra_info.update({
        "figure": 10, "part": "rates", "rows": rows, "reps": REPS, "duration_ms": DURATION_MS,
        "min_query_count": MIN_QUERY_COUNT, "give_up_grace_s": GIVE_UP_GRACE_S,
        "target": scheduler_target.describe(),
        "seed_classes_in": "processes"})

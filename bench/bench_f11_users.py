"""Figure 11: closed-loop users against nginx, replayer (`run --users`, one worker) vs Locust
(FastHttpUser, one process): the same users, the same think time, the same target, run back to
back on the client's CPU. Achieved rate, CPU per request and requests per CPU-second (the rate
per core), and the latency distributions side by side.

Scenarios: `saturate`, 50 users without think time (constant(0): each user sends as soon as its
answer is in, so the rate is what the client's CPU allows); `think`, 50 users thinking
between(5 ms, 15 ms) (the seed's medium load, its think time shortened so that the run holds
enough requests). replayer runs twice: as by default (spinning the last microseconds before
each due time, which keeps the send lag in microseconds and costs CPU at low rates), and never
spinning (--spin-us 0 --spin-max-us 0). The goal is 10x Locust's rate per core at equal
latency.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import _lib

SCENARIOS = {"saturate": ("constant(0)", 50), "think": ("between(0.005, 0.015)", 50)}
WARMUP_S = 1


def locust_users(url: str, users: int, wait: str, seconds: int, workdir, target) -> dict:
    out = workdir / f"locust-users-{wait.split('(')[0]}.npz"
    cmd = [sys.executable, "-m", "locust", "-f", str(_lib.PEERS / "users_locustfile.py"),
           "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url,
           "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"]
    os.environ["BENCH_LOCUST_WAIT"] = wait
    os.environ["BENCH_LOCUST_OUT"] = str(out)
    try:
        p = _lib.run_cmd(cmd, timeout=seconds + 90, target=target, cpu=_lib.client_cpu())
    finally:
        os.environ.pop("BENCH_LOCUST_WAIT", None)
        os.environ.pop("BENCH_LOCUST_OUT", None)
    if not out.exists():
        raise RuntimeError(f"locust failed (exit {p.rc}): {p.err[-2000:]}")
    d = np.load(out)
    rt_us = d["rt_ms"] * 1e3
    n, cpu = int(rt_us.size), float(d["cpu_s"])
    return {"requests": n, "failed": int(d["failed"].sum()), "rate": n / seconds,
            "cpu_s": cpu, "cpu_s_whole": p.cpu_s, "cpu_us_per_req": 1e6 * cpu / max(1, n),
            "req_per_cpu_s": n / cpu if cpu else None,
            "latency_us": _lib.pcts(rt_us, (50, 90, 99, 99.9, 100)),
            "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1)}


def replayer_users(url: str, users: int, wait: str, seconds: int, workdir, target,
                   startup_s: float, extra=()) -> dict:
    out = workdir / "runs" / f"users-{wait.split('(')[0]}{'-'.join(('',) + tuple(extra))}"
    cmd = [sys.executable, "-m", "replayer", "run", "-u", str(users), "-r", str(users * 100),
           "-t", f"{seconds}s", "--warmup", f"{WARMUP_S}s", "--host", url, "--path", "/",
           "--wait-time", wait, "-workers", "1", "--out", str(out), "-latf", "", *extra]
    p = _lib.run_cmd(cmd, timeout=seconds + 60, target=target, cpu=_lib.client_cpu(),
                     cwd=workdir)
    path = out / "summary.json"
    if not path.exists():
        raise RuntimeError(f"replayer failed (exit {p.rc}): {p.err[-2000:]}")
    s = json.loads(path.read_text())
    n = s["recorded"]
    worker_cpu = sum(w["cpu_s"] for w in s["workers"])
    run_cpu = max(1e-9, p.cpu_s - startup_s)      # parent + worker, start-up taken out
    lat = s["overall"]["latency_ns"]
    return {"requests": n, "failed": s["failed"], "rate": n / seconds, "cpu_s": run_cpu,
            "cpu_s_whole": p.cpu_s, "worker_cpu_s": worker_cpu,
            "cpu_us_per_req": 1e6 * run_cpu / max(1, n),
            "worker_cpu_us_per_req": 1e6 * worker_cpu / max(1, n),
            "req_per_cpu_s": n / run_cpu, "worker_req_per_cpu_s": n / max(worker_cpu, 1e-9),
            "latency_us": {k: None if lat.get(k) is None else lat[k] / 1e3
                           for k in ("p50", "p90", "p99", "p99.9", "max")},
            "lag_us": {k: None if s["overall"]["lag_ns"].get(k) is None
                       else s["overall"]["lag_ns"][k] / 1e3 for k in ("p50", "p99")},
            "target_cpu_pct": round(100 * p.target_cpu_s / max(p.wall_s, 1e-9), 1),
            "run_dir": str(out)}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fig11_users(benchmark, http_target, http_startup, workdir, scenario):
    wait, users = SCENARIOS[scenario]
    seconds = _lib.LAG_SECONDS

    def go():
        loc = locust_users(http_target.url.rstrip("/"), users, wait, seconds, workdir,
                           http_target)
        rep = replayer_users(http_target.url.rstrip("/"), users, wait, seconds, workdir,
                             http_target, http_startup)
        # Never spinning: the worker sleeps (in epoll) until each due time, so its CPU is
        # the requests' own, not the spin that keeps send lag in microseconds.
        rep0 = replayer_users(http_target.url.rstrip("/"), users, wait, seconds, workdir,
                              http_target, http_startup,
                              extra=("--spin-us", "0", "--spin-max-us", "0"))
        return loc, rep, rep0

    loc, rep, rep0 = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "figure": 11, "scenario": scenario, "users": users, "wait_time": wait,
        "seconds": seconds, "target": http_target.describe(), "locust": loc, "replayer": rep,
        "replayer_spin0": rep0,
        "rate_ratio": rep["rate"] / loc["rate"] if loc["rate"] else None,
        "rate_per_core_ratio": (rep["req_per_cpu_s"] / loc["req_per_cpu_s"]
                                if loc["req_per_cpu_s"] else None),
        "rate_per_core_ratio_spin0": (rep0["req_per_cpu_s"] / loc["req_per_cpu_s"]
                                      if loc["req_per_cpu_s"] else None)})

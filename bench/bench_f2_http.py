"""Figures 2, 3 and 4: HTTP/1.1 keep-alive to nginx (one worker, loopback), one client core.

2. The highest open-loop rate one replayer worker sustains (send lag p99 < 1 ms, nothing
   failed, achieved within 3% of intended), next to `wrk -t1 -c32` closed loop on the same
   nginx, run right after it; the plain pycurl loop closed loop (32 handles); and what one
   worker achieves when offered 1.5x wrk's rate, with each HTTP client (native and libcurl).
3. Send lag p50/p99/p99.9/max at 1k, 10k req/s and half of figure 2's rate: replayer (default
   --spin-us 50, and never spinning: --spin-us 0 --spin-max-us 0), `hey -q`, Locust constant_throughput, the plain pycurl loop.
4. CPU per request in those runs (and at figure 2's rate next to wrk's).

Every client runs on the first CPU (replayer pins its worker there; the peers run under
taskset), nginx on the last. Not pass/fail: each benchmark's extra_info carries the figures
and bench/report.py compares them with the targets.
"""
from __future__ import annotations

import pytest

import _lib

RATES = {"1k": 1000.0, "10k": 10000.0, "half": None}
TOOLS = ["replayer", "replayer-spin0", "hey", "locust", "pycurl-loop"]


def _net_cpu_us(r: _lib.RunResult, startup_s: float) -> float:
    return 1e6 * max(0.0, r.cpu_s - startup_s) / max(1, r.sent)


def test_fig2_http_max_rate(benchmark, http_target, http_max, http_startup, workdir, state):
    rate, r, log = http_max

    def peers():
        w = _lib.wrk(http_target.url, _lib.WRK_SECONDS, target=http_target)
        pc = _lib.pycurl_loop(http_target.url, 0, _lib.WRK_SECONDS, workdir, closed=32,
                              target=http_target)
        return w, pc

    w, pc = benchmark.pedantic(peers, rounds=1, iterations=1)
    state["wrk"] = w
    # Saturation, lag aside: replayer offered 1.5x wrk's rate, with each HTTP client. What one
    # worker can push at all, and its CPU per request when never idle.
    saturated = {}
    for client in ("native", "curl"):
        sr = _lib.run_replayer(workdir, round(1.5 * max(w["rate"], 10000.0), -3), _lib.SEARCH_SECONDS,
                               "http", http_target.port, extra=["--http-client", client],
                               target=http_target)
        saturated[client] = {"offered": sr.intended_rate, "achieved_rate": sr.achieved_rate,
                             "worker_cpu_us_per_req": 1e6 * sr.worker_cpu_s / max(1, sr.sent),
                             "target_cpu_pct": round(100 * sr.target_cpu_s / sr.duration_s, 1)}
    info = {"figure": 2, "target": http_target.describe(), "replayer_rate": rate,
            "wrk_rate": w["rate"], "rate_ratio": rate / w["rate"] if w["rate"] else None,
            "wrk_cpu_us_per_req": w["cpu_us_per_req"], "wrk_target_cpu_pct": w["target_cpu_pct"],
            "pycurl_closed_rate": pc["rate"], "pycurl_closed_cpu_us_per_req": pc["cpu_us_per_req"],
            "startup_cpu_s": http_startup, "search": log, "saturated": saturated}
    if r is not None:
        info.update({
            "replayer_lag_us": r.lag_us, "replayer_achieved_rate": r.achieved_rate,
            "replayer_cpu_us_per_req": _net_cpu_us(r, http_startup),
            "replayer_worker_cpu_us_per_req": 1e6 * r.worker_cpu_s / max(1, r.sent),
            "replayer_target_cpu_pct": round(100 * r.target_cpu_s / r.duration_s, 1),
            "run_dir": str(r.run_dir)})
        info["cpu_ratio"] = info["replayer_cpu_us_per_req"] / w["cpu_us_per_req"]
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("label", list(RATES))
def test_fig3_lag_and_cpu(benchmark, request, label, tool, http_target, http_startup, workdir):
    rate = RATES[label]
    if rate is None:
        rate = max(100.0, round(request.getfixturevalue("http_max")[0] / 2, -2))
    seconds = _lib.LAG_SECONDS

    def go():
        if tool.startswith("replayer"):
            extra = ["--spin-us", "0", "--spin-max-us", "0"] if tool == "replayer-spin0" else []
            r = _lib.run_replayer(workdir, rate, seconds, "http", http_target.port, extra=extra,
                                  target=http_target)
            return {"rate": rate, "achieved_rate": r.achieved_rate, "sent": r.sent,
                    "errors": r.errors, "lag_us": r.lag_us, "cpu_us_per_req": _net_cpu_us(r, http_startup),
                    "worker_cpu_us_per_req": 1e6 * r.worker_cpu_s / max(1, r.sent),
                    "target_cpu_pct": round(100 * r.target_cpu_s / r.duration_s, 1),
                    "latency_us": r.latency_us,
                    "spin_window_us": max(w.get("spin_window_us", 0) for w in r.summary["workers"])}
        if tool == "hey":
            return _lib.hey(http_target.url, rate, seconds, target=http_target)
        if tool == "locust":
            return _lib.locust(http_target.url.rstrip("/"), rate, seconds, workdir, target=http_target)
        return _lib.pycurl_loop(http_target.url, rate, seconds, workdir, target=http_target)

    res = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 3, "tool": tool, "rate_label": label, **res})

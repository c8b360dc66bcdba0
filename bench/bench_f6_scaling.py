"""Figure 6: HTTP scaling, the highest rate (same rule as figure 2) with 1, 2, 4, 8 workers,
as many of these as the machine has CPUs. Workers are pinned to the first CPUs; the nginx of
this figure has max(1, min(4, CPUs - 8)) workers on the last CPUs, so on a 16-core machine
8 replayer workers and 4 nginx workers have their own cores, while on 2 cores the second
replayer worker shares a CPU with nginx (the report says so).
"""
from __future__ import annotations

import os

import pytest

import _lib

CPUS = len(os.sched_getaffinity(0))
COUNTS = [k for k in (1, 2, 4, 8) if k <= CPUS]


@pytest.fixture(scope="module")
def scaling_target(deps, workdir):
    from _nginx import http_target
    t = http_target(workdir / "nginx-scaling", workers=max(1, min(4, CPUS - 8)))
    yield t
    t.stop()


@pytest.mark.parametrize("workers", COUNTS)
def test_fig6_scaling(benchmark, workdir, scaling_target, state, workers):
    one = state.get("scaling", {}).get(1) or state.get("http_max", (0,))[0] or _lib.HTTP_SEARCH_START

    def trial(rate):
        return _lib.run_replayer(workdir, rate, _lib.SEARCH_SECONDS, "http", scaling_target.port,
                                 workers=workers, target=scaling_target)

    def go():
        start = max(1000.0, round(0.7 * one * workers, -2))
        return _lib.search_max_rate(trial, start=start, factor=1.2, refine=1)

    best, r, log = benchmark.pedantic(go, rounds=1, iterations=1)
    state.setdefault("scaling", {})[workers] = best
    info = {"figure": 6, "workers": workers, "cpus": CPUS, "target": scaling_target.describe(),
            "max_rate": best, "search": log,
            "shares_cpu_with_target": workers + scaling_target.workers > CPUS}
    if r is not None:
        info.update({"lag_us": r.lag_us, "achieved_rate": r.achieved_rate,
                     "target_cpu_pct": round(100 * r.target_cpu_s / r.duration_s, 1)})
    benchmark.extra_info.update(info)

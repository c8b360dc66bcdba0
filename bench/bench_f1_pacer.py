"""Figure 1: the pacer alone (`--protocol null`: every request completes at once into the
record ring), one worker.

- burst: 2 million requests all due at the start; the rate is sent / (last - first sent
  stamp): the most one worker schedules, pacer + ring + the parent draining it to Arrow.
- paced at 1, 2 and 4 million requests/s for 2 s (the first second is warm-up): achieved rate
  and send lag. Target: >= 2 M/s with lag p99 <= 5 µs.

Each with the CPU stalls the worker counted (summary.json: gaps over 50 µs between its clock
reads while it spun), the floor under its lag tails in that run.
"""
from __future__ import annotations

import numpy as np
import pytest

import _lib


def _info(r: _lib.RunResult) -> dict:
    return {"achieved_rate": r.achieved_rate, "sent": r.sent, "errors": r.errors,
            "lag_us": r.lag_us, "ring_full_waits": r.ring_full_waits,
            "worker_cpu_us_per_req": 1e6 * r.worker_cpu_s / max(1, r.sent),
            "cpu_s": r.cpu_s, "wall_s": r.wall_s, "stalls": _stalls(r)}


def _stalls(r: _lib.RunResult) -> dict:
    st = r.summary["workers"][0]["stalls"]
    return {"per_s": st["per_s"], "over_1ms": st["over_1ms"], "longest_us": st["longest_ns"] / 1e3,
            "lost_pct": 100 * st["lost_ns"] / st["run_ns"] if st["run_ns"] else None}


def test_fig1_pacer_burst(benchmark, workdir):
    n = 2_000_000
    load = _lib.make_load(workdir / "loads", 0, 1, t_ns=np.zeros(n, np.int64), name="burst-2M")

    def go():
        return _lib.run_replayer(workdir, n, 1, "null", 9, warmup=0, load=load)

    r = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 1, "mode": "burst", "requests": n, **_info(r)})


@pytest.mark.parametrize("rate", [1_000_000, 2_000_000, 4_000_000])
def test_fig1_pacer_paced(benchmark, workdir, rate):
    def go():
        return _lib.run_replayer(workdir, rate, 2, "null", 9, warmup=1)

    r = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 1, "mode": "paced", "rate": rate, **_info(r)})

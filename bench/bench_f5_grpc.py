"""Figure 5: gRPC unary (helloworld.Greeter/SayHello), one worker, to nginx answering over h2c
(bench/grpc_target.py: C, one worker, a static reply; grpcio servers in Python are slower
than the client they would measure). Highest open-loop rate (lag p99 < 1 ms, nothing failed,
achieved within 3%), then lag percentiles and CPU per request at half of it.
Target: >= 10k req/s per worker, lag p99 <= 100 µs at half.
"""
from __future__ import annotations

import _lib


def test_fig5_grpc(benchmark, workdir, grpc_target):
    startup = _lib.startup_cpu_s(workdir, "grpc", grpc_target.port, target=grpc_target)

    def trial(rate):
        return _lib.run_replayer(workdir, rate, _lib.SEARCH_SECONDS, "grpc", grpc_target.port,
                                 target=grpc_target)

    def go():
        best, r_best, log = _lib.search_max_rate(trial, start=_lib.GRPC_SEARCH_START)
        half = max(100.0, round(best / 2, -2)) if best else _lib.GRPC_SEARCH_START / 2
        r_half = _lib.run_replayer(workdir, half, _lib.LAG_SECONDS, "grpc", grpc_target.port,
                                   target=grpc_target)
        return best, r_best, log, half, r_half

    best, r_best, log, half, r_half = benchmark.pedantic(go, rounds=1, iterations=1)
    info = {"figure": 5, "target": grpc_target.describe(), "max_rate": best, "search": log,
            "half_rate": half, "half": r_half.brief(), "half_lag_us": r_half.lag_us,
            "half_cpu_us_per_req": 1e6 * max(0.0, r_half.cpu_s - startup) / max(1, r_half.sent),
            "startup_cpu_s": startup}
    if r_best is not None:
        info.update({"max_lag_us": r_best.lag_us,
                     "max_cpu_us_per_req": 1e6 * max(0.0, r_best.cpu_s - startup) / max(1, r_best.sent),
                     "max_target_cpu_pct": round(100 * r_best.target_cpu_s / r_best.duration_s, 1)})
    benchmark.extra_info.update(info)

"""Locust peer for figure 11: FastHttpUser closed-loop users, GET / with the think time of
BENCH_LOCUST_WAIT (a Locust wait_time expression: constant(0), between(0.005, 0.015), ...).

Every request's response time (ms, Locust's own measure, from its send to its answer) and
whether it succeeded, and this process's CPU during the test (test_start to test_stop), go to
BENCH_LOCUST_OUT (npz) at the end.
"""
from __future__ import annotations

import os
import resource

import numpy as np
from locust import (FastHttpUser, between, constant, constant_pacing, constant_throughput,
                    events, task)

WAIT = os.environ.get("BENCH_LOCUST_WAIT", "constant(0)")
OUT = os.environ.get("BENCH_LOCUST_OUT")

_rt_ms: list[float] = []
_failed: list[bool] = []
_cpu0 = [0.0]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@events.test_start.add_listener
def _start(environment, **_kw):
    _cpu0[0] = _cpu()


@events.request.add_listener
def _request(response_time, exception, **_kw):
    _rt_ms.append(response_time)
    _failed.append(exception is not None)


@events.test_stop.add_listener
def _stop(environment, **_kw):
    if OUT:
        np.savez(OUT, rt_ms=np.array(_rt_ms, np.float64), failed=np.array(_failed, bool),
                 cpu_s=np.float64(_cpu() - _cpu0[0]))


class User(FastHttpUser):
    wait_time = eval(WAIT, {"constant": constant, "between": between,
                            "constant_pacing": constant_pacing,
                            "constant_throughput": constant_throughput})

    @task
    def get(self):
        self.client.get("/")

"""Locust peer for the lag figure: FastHttpUser, wait_time = constant_throughput(RATE).

constant_throughput aims each task start at the user's previous task start + 1/RATE; every
task stamps that due time and its actual start (CLOCK_REALTIME ns), and whether it was
answered. At the end of the test (test_stop) the stamps and this process's CPU during the test
go to BENCH_LOCUST_OUT (npz). RATE (per user) comes from BENCH_LOCUST_RATE.
"""
from __future__ import annotations

import os
import resource
import time

import numpy as np
from locust import FastHttpUser, constant_throughput, events, task

RATE = float(os.environ.get("BENCH_LOCUST_RATE", "10"))
OUT = os.environ.get("BENCH_LOCUST_OUT")
PERIOD_NS = int(1e9 / RATE)

_intended: list[int] = []
_actual: list[int] = []
_ok: list[bool] = []
_cpu0 = [0.0]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@events.test_start.add_listener
def _start(environment, **_kw):
    _cpu0[0] = _cpu()


@events.test_stop.add_listener
def _stop(environment, **_kw):
    if OUT:
        np.savez(OUT, intended_ns=np.array(_intended, np.int64), actual_ns=np.array(_actual, np.int64),
                 ok=np.array(_ok, bool), cpu_s=np.float64(_cpu() - _cpu0[0]))


class Client(FastHttpUser):
    wait_time = constant_throughput(RATE)

    def on_start(self):
        self._last = None

    @task
    def get(self):
        now = time.time_ns()
        due = now if self._last is None else self._last + PERIOD_NS
        self._last = now
        with self.client.get("/", catch_response=True) as r:
            ok = r.status_code == 200
            if ok:
                r.success()
        _intended.append(due)
        _actual.append(now)
        _ok.append(ok)

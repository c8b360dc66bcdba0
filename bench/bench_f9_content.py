"""Figure 9: what per-request content costs, HTTP/1.1 POST to nginx, one worker, one client core.

Each run's schedule carries one payload (replayer.schedules.content) for every request:
- static: a 61-byte JSON body, no fields: the same bytes every request;
- fields: the same body with an event id (12 zero-padded digits) and a deadline (decimal,
  send time + the class's 100 ms SLO) written in at send time;
- big-static: a 602,112-byte body, no fields (what sending a tensor costs without making it);
- tensor: 150,528 fresh random float32 (a 224x224x3 image, 602,112 bytes) per request.

Part "variants": all four at RATE, interleaved, REPS times; each once with the default spin
(lag p50/p99 from its records: sent_ns - scheduled_ns) and once never spinning (`--spin-us 0
--spin-max-us 0`), whose worker CPU per request (summary.json, the run only) is the work the
request takes: a spinning worker is busy the whole time at this rate, whatever it sends.
Median and range over the repeats; tensor - static over 0.602 MB is the cost per MB of random
data sent, tensor - big-static the fill alone.
Part "tensor-max": the highest rate one worker sustains with the tensor, by figure 2's rule
(lag p99 < 1 ms, nothing failed, achieved within 3%; on a shared VM that depends on the
minute: bench/README.md), and what one worker pushes offered 5k/s (saturated, lag aside:
requests over the span of their send stamps).
Part "fill": ContentTable.render in this process (no socket): the fill alone, per request.

nginx answers `return 200` and reads and drops the body (client_max_body_size stays at its
1 MB default, above the tensor).
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

import _lib

RATE = 2000.0                  # a fifth of what one worker sends of small GETs (figure 2)
REPS = 3
TENSOR_VALUES = 150528         # 224 x 224 x 3
TENSOR_BYTES = 4 * TENSOR_VALUES
SLO_NS = 100_000_000
VARIANTS = ("static", "fields", "big-static", "tensor")
NO_SPIN = ["--spin-us", "0", "--spin-max-us", "0"]
TENSOR_SEARCH_START = 500.0
TENSOR_SATURATE = 5000.0       # 3 GB/s: more than one worker and one nginx worker move


def _body(variant: str):
    """(body bytes, its fields, Content-Type) of a variant."""
    from replayer.schedules.content import Body
    if variant == "fields":
        b = Body().raw('{"event_id":"').digits("event", 12).raw('","deadline_ns":') \
                  .decimal("deadline_ns").raw("}")
        return b.data, b.fields, "application/json"
    if variant == "static":
        # The fields variant's bytes as one request of it carries them.
        return b'{"event_id":"%012d","deadline_ns":%19d}' % (7, 1_700_000_000_100_000_000), [], \
            "application/json"
    if variant == "tensor":
        b = Body().random_f32(TENSOR_VALUES)
        return b.data, b.fields, "application/octet-stream"
    return bytes(range(256)) * (TENSOR_BYTES // 256), [], "application/octet-stream"


def content_load(workdir, variant: str, rate: float, seconds: int):
    """A uniform schedule at `rate` whose every request carries the variant's payload."""
    from replayer.schedules.columnar import write_schedule
    from replayer.schedules.content import Payload, RequestClass
    from replayer.schedules.schedule import Schedule
    path = workdir / "loads" / f"content-{variant}-{rate:g}-{seconds}s.arrow"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    body, fields, ctype = _body(variant)
    t = _lib.uniform_t_ns(rate, seconds)
    n = t.size
    sched = Schedule(t_ns=t, target=np.zeros(n, np.int32), targets=["svc.local"],
                     cls=np.zeros(n, np.int16), classes=[RequestClass("c", slo_ns=SLO_NS)],
                     payload=np.zeros(n, np.int32),
                     payloads=[Payload(body=body, fields=fields, method="POST",
                                       headers=[f"Content-Type: {ctype}"])],
                     unit_ns=_lib.NS_PER_S, content_seed=1)
    write_schedule(sched, path)
    return path


def _run(workdir, target, variant, rate, extra=()):
    seconds = _lib.SEARCH_SECONDS
    return _lib.run_replayer(workdir, rate, seconds, "http", target.port, target=target,
                             extra=list(extra), load=content_load(workdir, variant, rate, seconds))


def _send_rate(r: _lib.RunResult) -> float | None:
    """Requests per second between the first and the last send stamp (summary.json's rates
    divide by the schedule's duration, which a worker behind schedule overruns)."""
    from replayer.analysis.records import read_records
    table, _ = read_records(r.run_dir, ["sent_ns"])
    sent = table.column("sent_ns").drop_null().to_numpy()
    sent = np.sort(sent[sent > 0])
    if sent.size < 2 or sent[-1] == sent[0]:
        return None
    return (sent.size - 1) * 1e9 / float(sent[-1] - sent[0])


def _stats(values) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _per_req_us(r: _lib.RunResult) -> float:
    return 1e6 * r.worker_cpu_s / max(1, r.sent)


def _brief(r: _lib.RunResult) -> dict:
    v = r.summary.get("verdict") or {}
    st = r.summary["workers"][0]["stalls"]
    return {**r.brief(), "worker_cpu_us_per_req": _per_req_us(r),
            "late_by_cause": v.get("late_by_cause"),
            "stalls_over_1ms": st["over_1ms"],
            "stall_lost_pct": 100 * st["lost_ns"] / st["run_ns"] if st["run_ns"] else None}


def test_fig9_content_variants(benchmark, workdir, http_target):
    def go():
        runs = {v: {"spin": [], "no_spin": []} for v in VARIANTS}
        # Interleaved: the machine's load moves from minute to minute, every variant sees it.
        for _ in range(REPS):
            for v in VARIANTS:
                runs[v]["spin"].append(_run(workdir, http_target, v, RATE))
                runs[v]["no_spin"].append(_run(workdir, http_target, v, RATE, NO_SPIN))
        return runs

    runs = benchmark.pedantic(go, rounds=1, iterations=1)
    out = {}
    for v in VARIANTS:
        spin, idle = runs[v]["spin"], runs[v]["no_spin"]
        out[v] = {
            "body_bytes": len(_body(v)[0]),
            "lag_p50_us": _stats([r.lag_us["p50"] for r in spin]),
            "lag_p99_us": _stats([r.lag_us["p99"] for r in spin]),
            "no_spin_lag_p99_us": _stats([r.lag_us["p99"] for r in idle]),
            "cpu_us_per_req": _stats([_per_req_us(r) for r in idle]),
            "spin_cpu_us_per_req": _stats([_per_req_us(r) for r in spin]),
            "stall_lost_pct": _stats([_brief(r)["stall_lost_pct"] for r in spin]),
            "all_ok": all(not {k for k, n in r.errors.items() if k != "ok" and n} for r in spin + idle),
            "runs": {"spin": [_brief(r) for r in spin], "no_spin": [_brief(r) for r in idle]},
        }
    # Differences of medians of the never-spinning runs' worker CPU.
    cpu = {v: out[v]["cpu_us_per_req"]["median"] for v in VARIANTS}
    mb = TENSOR_BYTES / 1e6
    benchmark.extra_info.update({
        "figure": 9, "part": "variants", "rate": RATE, "reps": REPS, "seconds": _lib.SEARCH_SECONDS,
        "target": http_target.describe(), "variants": out,
        "fields_minus_static_us": cpu["fields"] - cpu["static"],
        "tensor_minus_static_us": cpu["tensor"] - cpu["static"],
        "tensor_us_per_mb": (cpu["tensor"] - cpu["static"]) / mb,
        "fill_us_per_mb": (cpu["tensor"] - cpu["big-static"]) / mb,
        "send_us_per_mb": (cpu["big-static"] - cpu["static"]) / mb})


class _Trial:
    """A tensor run judged by figure 2's rule (RunResult.ok), logged with its late causes and
    the CPU stalls its worker counted."""

    def __init__(self, r: _lib.RunResult):
        self.r = r
        self.ok = r.ok

    def brief(self) -> dict:
        return _brief(self.r)


def test_fig9_tensor_max_rate(benchmark, workdir, http_target):
    def trial(rate):
        return _Trial(_run(workdir, http_target, "tensor", rate))

    def go():
        best, t, log = _lib.search_max_rate(trial, start=TENSOR_SEARCH_START, max_steps=8)
        # Offered more than it can, lag aside: what one worker pushes at all.
        sat = _run(workdir, http_target, "tensor", TENSOR_SATURATE)
        return best, t, log, sat

    best, t, log, sat = benchmark.pedantic(go, rounds=1, iterations=1)
    info = {"figure": 9, "part": "tensor-max", "max_rate": best, "search": log,
            "body_bytes": TENSOR_BYTES, "mb_per_s": best * TENSOR_BYTES / 1e6,
            "saturated": {"offered": sat.intended_rate, "send_rate": _send_rate(sat),
                          "worker_cpu_us_per_req": _per_req_us(sat),
                          "target_cpu_pct": round(100 * sat.target_cpu_s / sat.duration_s, 1)}}
    if t is not None:
        info.update({"lag_us": t.r.lag_us, "worker_cpu_us_per_req": _per_req_us(t.r),
                     "target_cpu_pct": round(100 * t.r.target_cpu_s / t.r.duration_s, 1)})
    benchmark.extra_info.update(info)


def _table(variant: str):
    """A one-pair ContentTable holding the variant's body as the whole request (the fill does
    not care what comes before the body)."""
    from replayer import _pacer
    from replayer.schedules.content import Payload
    from replayer.transports.content import fills
    body, fields, _ = _body(variant)
    p = Payload(body=body, fields=fields)
    n = 1024
    return _pacer.ContentTable(np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int16),
                               1, 1, {(0, 0): 0}, [([body], fills(p, 0, 0, None), len(body), 0)],
                               [SLO_NS], [0], 1, None)


def _render_us(table, calls: int) -> float:
    """Best of 5 of the mean time per render (a copy of the template, its fields filled, a
    bytes object made of it)."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(calls):
            table.render(i & 1023, 1_700_000_000_000_000_000, 1_700_000_000_000_000_000)
        best = min(best, (time.perf_counter() - t0) / calls)
    return 1e6 * best


@pytest.mark.parametrize("pair", [("fields", "static", 20000), ("tensor", "big-static", 200)],
                         ids=["small", "tensor"])
def test_fig9_fill(benchmark, pair):
    filled, plain, calls = pair
    a, b = _table(filled), _table(plain)

    def go():
        return _render_us(a, calls), _render_us(b, calls)

    with_fields, without = benchmark.pedantic(go, rounds=1, iterations=1)
    info = {"figure": 9, "part": "fill", "variant": filled, "render_us": with_fields,
            "render_plain_us": without, "fill_us": with_fields - without}
    if filled == "tensor":
        info["fill_us_per_mb"] = info["fill_us"] / (TENSOR_BYTES / 1e6)
    benchmark.extra_info.update(info)

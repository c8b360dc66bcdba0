"""`replayer gen classes` (the priority inference load) and its verdict: the nine classes and
their shares, Poisson arrivals run until both minimums hold, models per SLO, each request an
InferRequest with its deadline filled at send, the MLPerf-style checks and early stopping, and
bad workloads refused with one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import replayer
from replayer import _pacer
from replayer.analysis.mlperf import class_verdict, min_passing_queries
from replayer.errors import InputError
from replayer.generate.classes import (CLASSES, SLO_NS, TENSOR_FLOATS, ClassesGenOptions,
                                       build_schedule, poisson_arrivals, workload_shares)
from replayer.schedules.content import ENCODING_CODES, KIND_CODES, RANDOM_KINDS
from test_content import _varints

MS = 1_000_000


def _gen(**kw) -> "Schedule":  # noqa: F821
    return build_schedule(ClassesGenOptions(**kw))


def test_nine_classes_at_their_shares_until_both_minimums():
    """balanced at 30 QPS for 60 s: each class near total x share x 60 s, none under the
    minimum query count (the 1.5 QPS class runs past 60 s to reach 100), every class's last
    query at or after the minimum duration."""
    s = _gen(total_qps=30, duration_ms=60000, min_query_count=100, seed=3)
    assert [c.name for c in s.classes] == [f"tier{t}_{slo}" for t, slo in CLASSES]
    assert [c.slo_ns for c in s.classes] == [SLO_NS[slo] for _, slo in CLASSES]
    shares = workload_shares("balanced")
    counts = np.bincount(s.cls, minlength=9)
    for k, share in enumerate(shares):
        times = s.t_ns[s.cls == k]
        assert counts[k] >= 100 and times[-1] >= 60_000 * MS
        expect = 30 * share * 60
        if expect > 100:
            assert 0.75 * expect < counts[k] < 1.25 * expect
        else:
            assert counts[k] == 100                  # the minimum query count decides
    assert s.is_sorted() and s.targets == ["localhost:50051"]


def test_poisson_gaps_are_exponential_and_minimums_hold():
    from scipy import stats
    t = poisson_arrivals(500.0, 10 * 1000 * MS, 100, np.random.default_rng(1))
    assert t[-1] >= 10_000 * MS and t[-2] < 10_000 * MS
    assert stats.kstest(np.diff(t) / 1e9, "expon", args=(0, 1 / 500)).pvalue > 0.001
    few = poisson_arrivals(1.0, 1000 * MS, 50, np.random.default_rng(1))
    assert len(few) == 50


def test_models_follow_the_slo_and_the_same_seed_gives_the_same_load():
    s = _gen(total_qps=200, duration_ms=20000, seed=9)
    names = [p.name for p in s.payloads]
    model = np.array([names[p] for p in s.payload])
    for k, (tier, slo) in enumerate(CLASSES):
        mine = model[s.cls == k]
        if slo == "urgent":
            assert set(mine) == {"resnet50"}
        else:
            assert 0.6 < np.mean(mine == "resnet50") < 0.8
    again = _gen(total_qps=200, duration_ms=20000, seed=9)
    assert np.array_equal(s.t_ns, again.t_ns) and np.array_equal(s.payload, again.payload)
    other = _gen(total_qps=200, duration_ms=20000, seed=10)
    assert not np.array_equal(s.t_ns[:100], other.t_ns[:100])


def test_classes_under_a_hundredth_of_a_qps_are_skipped():
    s = _gen(total_qps=0.1, duration_ms=1000, min_query_count=1)
    counts = np.bincount(s.cls, minlength=9)
    assert counts.tolist() == [0] * 9 or all(
        (c == 0) == (0.1 * share < 0.01) for c, share in zip(counts, workload_shares("balanced")))
    assert s.meta["mlperf"]["classes"][0]["skipped"] is True      # 0.05 x 0.1 = 0.005 QPS


def test_each_request_is_an_infer_request_with_its_deadline_at_send():
    """Filled as a run fills it: tier, deadline = send stamp + the class's SLO, model name,
    150,528 fresh floats, shape [1, 3, 224, 224]."""
    s = _gen(total_qps=30, duration_ms=2000, min_query_count=5)
    event = int(np.flatnonzero(s.cls == 3)[0])          # tier2_urgent
    payload = s.payloads[s.payload[event]]
    fills = [(KIND_CODES[f.kind], ENCODING_CODES[f.encoding], 0, f.at,
              f.count if f.kind in RANDOM_KINDS else f.width) for f in payload.fields]
    table = _pacer.ContentTable(s.target, s.payload, s.cls, 1, len(s.payloads),
                                {(0, int(s.payload[event])): 0},
                                [([payload.body], fills, len(payload.body), 0)],
                                [c.slo_ns for c in s.classes], [0] * 9, 1)
    sent = 1_765_000_000_000_000_000
    msg = _varints(table.render(event, 0, sent))
    assert msg[1] == 2 and msg[2] == sent + SLO_NS["urgent"] and msg[3] == b"resnet50"
    tensor = np.frombuffer(msg[4], np.float32)
    assert len(tensor) == TENSOR_FLOATS and 0 <= tensor.min() and tensor.max() < 1
    shape, value, shift = [], 0, 0
    for b in msg[5]:                                    # packed varints
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            shape.append(value)
            value = shift = 0
    assert shape == [1, 3, 224, 224]


@pytest.mark.parametrize("content, message", [
    ({"1,urgent": 0.5}, "add up to 0.500"),
    ({"4,urgent": 1.0}, "key '4,urgent': not a class"),
    ({"1,urgent": 2}, "is not a fraction"),
    ([1, 2], "JSON object"),
])
def test_a_bad_workload_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=message):
        workload_shares(str(path))
    proc = replayer("gen", "classes", "--workload", str(path), "-o", str(tmp_path / "x.parquet"),
                    check_exit=2)
    assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_early_stopping_counts_as_loadgen_reports_them():
    """LoadGen's summaries: 21 queries none over -> 438 more; 300 -> 159 more (459 in all)."""
    assert min_passing_queries(0, 0.99, 0.99) == 459
    assert min_passing_queries(0, 0.99, 0.99) - 21 == 438
    # More overlatency queries need more under it, never fewer.
    needs = [min_passing_queries(t, 0.99, 0.99) for t in range(0, 6)]
    assert needs == sorted(needs) and needs[1] > 459


def _group(n, met, last_s, ok=None, p99_ms=50):
    return {"requests": n, "slo_met": met, "slo_ns": 100 * MS, "ok": n if ok is None else ok,
            "last_scheduled_ns": 1000 * MS * 1000 + int(last_s * 1e9),
            "latency_ns": {"p99": p99_ms * MS}, "index": 0}


RULES = {"min_duration_ns": 60_000 * MS, "min_query_count": 100, "target_percentile": 0.99,
         "confidence": 0.99}
START = 1000 * MS * 1000


def test_a_class_meeting_every_rule_is_valid():
    v = class_verdict(_group(1000, 1000, 61), RULES, START)
    assert v["valid"] and v["reasons"] == [] and v["early_stopping_needed"] == 0
    assert v["scheduled_qps"] == pytest.approx(1000 / 61)


@pytest.mark.parametrize("group, min_queries, failed, reason", [
    (_group(1000, 1000, 59), 100, ["min_duration"], "before the minimum duration 60 s"),
    (_group(500, 500, 61), 600, ["min_queries"], "500 queries, fewer than the minimum 600"),
    # More than 1% over the SLO: early stopping (the stricter test) fails with it.
    (_group(1000, 980, 61, p99_ms=150), 100, ["latency", "early_stopping"],
     "20 of 1000 queries over it"),
    (_group(300, 300, 61), 100, ["early_stopping"], "would need 159 more queries"),
])
def test_each_rule_broken_says_why(group, min_queries, failed, reason):
    v = class_verdict(group, dict(RULES, min_query_count=min_queries), START)
    assert not v["valid"]
    assert [k for k, ok in v["checks"].items() if not ok] == failed
    assert any(reason in r for r in v["reasons"]), v["reasons"]

"""Thresholds as k6 users write them: every form parsed, malformed ones refused with the place
named, and evaluation against hand-made records (met and not met, per class and per target,
units and shares), the same in the run's streamed passes and the report's loaded columns."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replayer.analysis import stats
from replayer.analysis.model import ERROR_NAMES, Columns
from replayer.analysis.report import build_report, format_summary as format_report
from replayer.analysis.summary import format_summary, summarize_run
from replayer.analysis.thresholds import (Goals, ThresholdEvaluator, evaluate, parse_duration_ns,
                                          parse_threshold)
from replayer.cli import main
from replayer.errors import InputError
from replayer.run.options import RunOptions

from report_fixtures import make_run

MS = 1_000_000


@pytest.mark.parametrize("expr, metric, aggregation, percentile, tags, op, limit", [
    ("latency.p99<500ms", "latency", "p99", 99.0, (), "<", 500 * MS),
    ("latency.p95<=0.2s", "latency", "p95", 95.0, (), "<=", 200 * MS),
    ("latency.p(95)<200", "latency", "p95", 95.0, (), "<", 200 * MS),      # k6: bare = ms
    ("latency.p50 < 1 s", "latency", "p50", 50.0, (), "<", 1000 * MS),
    ("latency.mean<2ms", "latency", "mean", None, (), "<", 2 * MS),
    ("latency.min>=10us", "latency", "min", None, (), ">=", 10_000),
    ("latency.p99.9<1e3ms", "latency", "p99.9", 99.9, (), "<", 1000 * MS),
    ("latency.p75<3ms", "latency", "p75", 75.0, (), "<", 3 * MS),
    ("latency_intended.p90<250µs", "latency_intended", "p90", 90.0, (), "<", 250_000),
    ("lag.p99<1ms", "lag", "p99", 99.0, (), "<", MS),
    ("lag.max<10ms", "lag", "max", 100.0, (), "<", 10 * MS),
    ("lag.p100<10ms", "lag", "max", 100.0, (), "<", 10 * MS),
    ("lag.p50<=800ns", "lag", "p50", 50.0, (), "<=", 800),
    ("errors<1%", "errors", None, None, (), "<", 0.01),
    ("errors<=0.02", "errors", None, None, (), "<=", 0.02),
    ("errors.count==0", "errors", "count", None, (), "==", 0),
    ("rate.sent>=990", "rate", "sent", None, (), ">=", 990),
    ("rate.answered>10/s", "rate", "answered", None, (), ">", 10),
    ("rate.intended==200req/s", "rate", "intended", None, (), "==", 200),
    ("latency{cls=urgent}.p95<100ms", "latency", "p95", 95.0, (("cls", "urgent"),), "<", 100 * MS),
    ("errors{target=svc-a}<0.5%", "errors", None, None, (("target", "svc-a"),), "<", 0.005),
    ("latency{target:svc-a, class:urgent}.max<1s", "latency", "max", 100.0,
     (("cls", "urgent"), ("target", "svc-a")), "<", 1000 * MS),
    ("  errors{target='svc b'} <= 5 %  ", "errors", None, None, (("target", "svc b"),), "<=", 0.05),
])
def test_every_form_is_parsed(expr, metric, aggregation, percentile, tags, op, limit):
    """Each accepted form gives its metric, aggregation, percentile, tags, operator and limit
    in the metric's unit (ns, a share, requests per second, a count)."""
    t = parse_threshold(expr)
    assert (t.metric, t.aggregation, t.percentile, t.tags, t.op) == (metric, aggregation,
                                                                     percentile, tags, op)
    assert t.limit == pytest.approx(limit)
    assert t.expr == expr.strip()


@pytest.mark.parametrize("expr, what, character", [
    ("", "expected a metric", 1),
    ("latncy.p99<1ms", "unknown metric 'latncy'", 1),
    ("latency.p9x<1ms", "unknown aggregation 'p9x' for latency", 9),
    ("latency.p0<1ms", "unknown aggregation 'p0'", 9),
    ("latency<1ms", "latency needs an aggregation", 8),
    ("latency.<1ms", "expected an aggregation after '.'", 9),
    ("latency.p99 1ms", "expected an operator", 13),
    ("latency.p99=<1ms", "expected an operator", 12),
    ("latency.p99<", "expected a number after the operator", 13),
    ("latency.p99<fast", "expected a number after the operator, not 'fast'", 13),
    ("latency.p99<1kg", "latency is a duration: give ns, us, µs, ms or s, not 'kg'", 14),
    ("errors<5", "errors is a share", 9),
    ("errors<1ms", "errors is a share", 9),
    ("errors.p99<1%", "errors takes no aggregation but .count, not .p99", 8),
    ("errors.count<1%", "errors.count is a number of requests", 15),
    ("rate<100", "rate needs one of .sent, .answered, .intended", 5),
    ("rate.sent>=100ms", "a rate is requests per second", 15),
    ("latency{cls=urgent.p99<1ms", "'{' is not closed", 8),
    ("latency{zone=eu}.p99<1ms", "expected cls=NAME or target=NAME inside {}, not 'zone=eu'", 9),
    ("latency{cls=}.p99<1ms", "expected cls=NAME or target=NAME", 9),
    ("latency{cls=a,cls=b}.p99<1ms", "cls given twice", 15),
])
def test_malformed_thresholds_name_the_place_and_the_form(expr, what, character):
    """A malformed threshold is an InputError of one line naming the option, the expression,
    what is wrong, the character where it goes wrong and the accepted form."""
    with pytest.raises(InputError) as err:
        parse_threshold(expr)
    message = str(err.value)
    assert message.startswith(f"--threshold {expr!r}: ")
    assert what in message and f"at character {character};" in message
    assert "the form is METRIC[{cls=NAME|target=NAME}].AGG OP VALUE" in message
    assert "\n" not in message


def test_run_options_refuse_a_malformed_threshold_or_max_lag():
    """The run's options check thresholds and --max-lag when they are built (so before the
    run sends anything); the CLI turns that into exit 2."""
    with pytest.raises(InputError, match=r"--threshold 'lag\.p99<1parsec'"):
        RunOptions(threshold=["errors<1%", "lag.p99<1parsec"])
    with pytest.raises(InputError, match="--max-lag '2 fortnights': expected a duration"):
        RunOptions(max_lag="2 fortnights")
    with pytest.raises(InputError, match="--max-lost -1: must be 0 or more"):
        RunOptions(max_lost=-1)
    assert parse_duration_ns("2ms", "--max-lag") == 2 * MS
    assert parse_duration_ns("1ns", "--max-lag") == 1
    assert main(["report", "no-such-dir", "--threshold", "latency.p99"]) == 2


# ---------------------------------------------------------------- evaluation

START = 1_700_000_000_000_000_000
N = 400
WARMUP = 40
TARGETS = ["svc-a", "svc-b"]
CLASSES = ["urgent", "relaxed"]


def _records() -> Columns:
    """N requests 5 ms apart (200 req/s); the first WARMUP are warm-up with 10 s latencies;
    lag 10..N+9 µs; latency 1..N ms; even events go to svc-a, odd to svc-b; every fourth
    event is class urgent; every tenth svc-b request fails with status 503 and every 25th
    event is never sent (overload)."""
    i = np.arange(N)
    scheduled = START + i * 5 * MS
    sent = scheduled + (i + 10) * 1000
    done = sent + (i + 1) * MS
    done[:WARMUP] = sent[:WARMUP] + 10_000 * MS
    error = np.zeros(N, np.int8)
    status = np.full(N, 200, np.int32)
    failed = i % 20 == 1
    error[failed], status[failed] = ERROR_NAMES.index("status"), 503
    unsent = i % 25 == 3
    error[unsent], status[unsent] = ERROR_NAMES.index("overload"), 0
    return Columns(N, list(TARGETS), event=i.astype(np.int64), worker=np.zeros(N, np.int16),
                   target=(i % 2).astype(np.int32),
                   cls=np.where(i % 4 == 0, 0, 1).astype(np.int16),
                   phase=(i >= WARMUP).astype(np.int8), scheduled_ns=scheduled,
                   sent_ns=np.where(unsent, 0, sent), done_ns=np.where(unsent, 0, done),
                   has_sent=~unsent, has_done=~unsent, status=status, error=error,
                   bytes_out=np.zeros(N, np.int32), bytes_in=np.zeros(N, np.int64))


def _truth(c: Columns, where: np.ndarray):
    """(latencies of ok requests, lags of sent requests, failed share) of measured `where`."""
    m = c.measured & where
    ok = m & c.ok
    return (c.done_ns[ok] - c.sent_ns[ok], c.sent_ns[m & c.sent] - c.scheduled_ns[m & c.sent],
            1 - np.count_nonzero(ok) / np.count_nonzero(m))


def _p(values, q) -> int:
    return int(stats.percentiles(values, (q,))[0])


def _evaluated(exprs: list[str]) -> dict[str, dict]:
    c = _records()
    results = evaluate([parse_threshold(e) for e in exprs], c, CLASSES)
    return {r["expr"]: r for r in results}


def test_evaluation_against_hand_made_records():
    """Each metric and aggregation takes the value numpy gives on the measured requests
    (warm-up left out), in its unit; met and not met follow the operator."""
    c = _records()
    everything = np.ones(N, bool)
    latency, lag, failed = _truth(c, everything)
    ok = c.measured & c.ok
    latency_intended = c.done_ns[ok] - c.scheduled_ns[ok]
    p99 = _p(latency, 99)
    got = _evaluated([
        f"latency.p99<={p99}ns", f"latency.p99<{p99}ns", "latency.p95<0.5s",
        "latency.mean<1s", "latency.min>=1ms", "latency.max>1s",
        "latency_intended.p99.9<10s", "lag.p99<1ms", "lag.max<300us", "lag.p50<=1ms",
        "errors<1%", "errors<=10%", "errors.count==15", "rate.intended==200",
        "rate.sent>=195", "rate.answered>=180",
    ])
    r = got[f"latency.p99<={p99}ns"]
    assert r["value"] == p99 and r["met"] and r["reason"] is None
    assert not got[f"latency.p99<{p99}ns"]["met"]
    assert got["latency.p95<0.5s"]["value"] == _p(latency, 95) and got["latency.p95<0.5s"]["met"]
    assert got["latency.mean<1s"]["value"] == pytest.approx(latency.mean())
    assert got["latency.min>=1ms"]["value"] == latency.min() and got["latency.min>=1ms"]["met"]
    assert got["latency.max>1s"]["value"] == latency.max() and not got["latency.max>1s"]["met"]
    assert got["latency_intended.p99.9<10s"]["value"] == _p(latency_intended, 99.9)
    assert got["lag.p99<1ms"]["value"] == _p(lag, 99) and got["lag.p99<1ms"]["met"]
    assert got["lag.max<300us"]["value"] == lag.max() == 409_000
    assert not got["lag.max<300us"]["met"] and got["lag.max<300us"]["shown"] == "409µs"
    assert got["errors<1%"]["value"] == pytest.approx(failed) and not got["errors<1%"]["met"]
    assert got["errors<1%"]["shown"] == f"{100 * failed:.2f}%"
    assert got["errors<=10%"]["met"]
    # Measured: 18 failed with 503, 14 never sent (overload).
    assert got["errors.count==15"]["value"] == 32 and not got["errors.count==15"]["met"]
    measured = N - WARMUP
    assert got["rate.intended==200"]["value"] == pytest.approx(200.0)
    assert got["rate.intended==200"]["met"]
    assert got["rate.sent>=195"]["value"] == pytest.approx(200.0 * (measured - 14) / measured)
    assert got["rate.sent>=195"]["shown"] == "192.2 req/s" and not got["rate.sent>=195"]["met"]
    assert got["rate.answered>=180"]["value"] == pytest.approx(200.0 * (measured - 32) / measured)
    assert got["rate.answered>=180"]["met"]


def test_per_class_and_per_target():
    """Tags select the requests of one class (by its run.json name) or one target; a name no
    request has is not met, and says which names there are."""
    c = _records()
    i = np.arange(N)
    urgent_latency, _, _ = _truth(c, i % 4 == 0)
    _, _, failed_a = _truth(c, i % 2 == 0)
    _, _, failed_b = _truth(c, i % 2 == 1)
    got = _evaluated(["latency{cls=urgent}.p95<100ms", "latency{cls=1}.max<1s",
                      "errors{target=svc-a}<0.5%", "errors{target=svc-b}<0.5%",
                      "latency{target=svc-b,cls=urgent}.p99<1s",
                      "latency{target=svc-z}.p99<1s", "errors{cls=batch}<1%"])
    r = got["latency{cls=urgent}.p95<100ms"]
    assert r["value"] == _p(urgent_latency, 95) and not r["met"]
    assert got["latency{cls=1}.max<1s"]["met"]
    assert got["errors{target=svc-a}<0.5%"]["value"] == pytest.approx(failed_a)
    assert got["errors{target=svc-b}<0.5%"]["value"] == pytest.approx(failed_b)
    assert failed_b > 0.05
    assert not got["errors{target=svc-b}<0.5%"]["met"]
    # Urgent requests are all even events: none goes to svc-b.
    both = got["latency{target=svc-b,cls=urgent}.p99<1s"]
    assert both["value"] is None and not both["met"] and both["reason"] == "no successful requests"
    unknown = got["latency{target=svc-z}.p99<1s"]
    assert not unknown["met"] and unknown["value"] is None and unknown["shown"] == "-"
    assert unknown["reason"] == "no target named 'svc-z' (targets: svc-a, svc-b)"
    assert got["errors{cls=batch}<1%"]["reason"] == ("no request of class 'batch' (classes: "
                                                     "urgent, relaxed)")


def test_streamed_passes_give_the_values_of_loaded_columns():
    """Fed batch by batch over as many passes as the percentiles need (the run's summary),
    the evaluator gives what it gives on the columns loaded at once (the report's)."""
    exprs = ["latency.p99<1s", "latency{cls=urgent}.p50<10ms", "lag.p99.9<1ms", "lag.mean<1ms",
             "errors{target=svc-b}<1%", "rate.sent>100"]
    thresholds = [parse_threshold(e) for e in exprs]
    c = _records()
    evaluator = ThresholdEvaluator(thresholds, CLASSES)
    passes = 0
    while evaluator.open():
        for lo in range(0, N, 37):
            evaluator.add(c.subset(np.arange(lo, min(lo + 37, N))))
        evaluator.end_pass()
        passes += 1
    assert passes >= 2
    assert evaluator.results() == evaluate(thresholds, c, CLASSES)


def test_thresholds_of_a_run_are_evaluated_and_printed(tmp_path):
    """Thresholds in run.json's options are evaluated over the run's records by its summary
    and by the report (the same results), printed as met or not with their values; a report
    given its own thresholds judges by those instead, and exits 5 when one is not met."""
    run = make_run(tmp_path / "run", n=20_000, workers=2)
    meta = json.loads((run.run_dir / "run.json").read_text())
    meta["options"]["threshold"] = ["latency.p99<1s", "errors<1%", "latency{cls=urgent}.p50<1ms",
                                    "rate.sent>=1000000", "errors{target=nowhere}<1%"]
    (run.run_dir / "run.json").write_text(json.dumps(meta))
    mine = summarize_run(run.run_dir, 20_000)
    report, _, _ = build_report(run.run_dir)
    assert json.loads(json.dumps(mine["thresholds"])) == report["thresholds"]
    t = run.rows
    measured = run.measure
    ok = measured & (t["error"] == 0) & (t["done_ns"] > 0)
    p99 = _p(t["done_ns"][ok] - t["sent_ns"][ok], 99)
    results = {r["expr"]: r for r in mine["thresholds"]}
    assert results["latency.p99<1s"]["value"] == p99 and results["latency.p99<1s"]["met"]
    assert results["errors<1%"]["value"] == pytest.approx(1 - ok.sum() / measured.sum())
    assert not results["errors<1%"]["met"]
    lines = format_summary(mine).splitlines()
    assert f"threshold latency.p99<1s: met ({results['latency.p99<1s']['shown']})" in lines
    assert f"threshold errors<1%: NOT met ({results['errors<1%']['shown']})" in lines
    assert ("threshold errors{target=nowhere}<1%: NOT met (no target named 'nowhere' (targets: "
            "alpha.example, beta.example, gamma.example))") in lines
    assert "thresholds:\n  latency.p99<1s: met" in format_report(report)

    own, _, _ = build_report(run.run_dir, goals=Goals(thresholds=(parse_threshold("lag.p99<1s"),)))
    assert [(r["expr"], r["met"]) for r in own["thresholds"]] == [("lag.p99<1s", True)]
    # `replayer report --threshold`: exit 5 when one given to it is not met; the run's own
    # thresholds (some not met here) are shown without deciding its exit.
    report_dir = str(tmp_path / "report")
    assert main(["report", str(run.run_dir), "--no-plots", "-o", report_dir]) == 0
    assert main(["report", str(run.run_dir), "--no-plots", "-o", report_dir,
                 "--threshold", "lag.p99<1s"]) == 0
    assert main(["report", str(run.run_dir), "--no-plots", "-o", report_dir,
                 "--threshold", "lag.p99<1s", "--threshold", "lag.p99<1ns"]) == 5

"""The verdict on hand-made records: kept; not kept by lag, with the late sends counted by cause
and advice that fits the main one; not kept by lost requests (never sent, or without a record);
--max-lag's default per worker; the same verdict in the run's summary and the report."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from replayer.analysis import stats
from replayer.analysis.model import LATE_CAUSES
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE, records_path
from replayer.analysis.report import build_report, format_summary as format_report
from replayer.analysis.summary import format_summary, goal_failures, summarize_run

from report_fixtures import START_NS, write_records

MS = 1_000_000
GAP_NS = 5 * MS          # 200 req/s
N = 200


def _rows(lag_ns: int = 20_000, late: dict[str, int] | None = None, late_lag_ns: int = 5 * MS,
          unsent: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N requests 5 ms apart, sent lag_ns late and answered 1 ms later; the first requests
    (as many as `late` counts, by cause) sent late_lag_ns late with that cause; the last
    `unsent` never sent (overload)."""
    t_ns = np.arange(N, dtype=np.int64) * GAP_NS
    rows = np.zeros(N, ROW_DTYPE)
    rows["event"] = np.arange(N)
    rows["scheduled_ns"] = START_NS + t_ns
    lags = np.full(N, lag_ns, np.int64)
    k = 0
    for cause, count in (late or {}).items():
        lags[k:k + count] = late_lag_ns
        rows["cause"][k:k + count] = LATE_CAUSES.index(cause)
        k += count
    rows["sent_ns"] = rows["scheduled_ns"] + lags
    rows["done_ns"] = rows["sent_ns"] + MS
    rows["status"] = 200
    if unsent:
        rows["sent_ns"][-unsent:] = rows["done_ns"][-unsent:] = rows["status"][-unsent:] = 0
        rows["cause"][-unsent:] = 0
        rows["error"][-unsent:] = ERROR_NAMES.index("overload")
    return rows, t_ns


def _run(tmp_path, rows, t_ns, options: dict | None = None, workers: int | None = None,
         name: str = "run"):
    meta = {"start_ns": START_NS, "targets": ["svc"], "options": options or {},
            "schedule": {"requests": N, "unit_ns": 1_000_000_000, "time_scale": 1.0}}
    if workers is not None:
        meta["workers"] = workers
    return write_records(tmp_path / name, rows, t_ns, run_json=meta)


def _both(run, scheduled: int = N, worker_stats=None) -> dict:
    """The run summary's verdict, checked equal to the report's."""
    mine = summarize_run(run, scheduled, worker_stats=worker_stats)
    if worker_stats is not None:
        (run / "summary.json").write_text(json.dumps(mine))
    report, _, _ = build_report(run)
    assert json.loads(json.dumps(mine["verdict"])) == report["verdict"]
    return mine


def test_kept(tmp_path):
    """Every request sent 20 µs late: kept, no reasons, no advice, no late send; both printed
    summaries say so."""
    s = _both(_run(tmp_path, *_rows()))
    v = s["verdict"]
    assert v["kept"] and v["reasons"] == [] and v["advice"] == []
    assert (v["lag_p99_ns"], v["max_lag_ns"], v["max_lag_default"]) == (20_000, MS, True)
    assert v["late"] == 0 and v["late_by_cause"] == dict.fromkeys(stats.CAUSES, 0)
    assert v["lost"] == 0 and v["main_cause"] is None
    lines = format_summary(s).splitlines()
    assert "verdict   schedule kept: lag p99 20µs <= 1ms, 0 lost" in lines
    assert not any(line.startswith(("late      ", "advice    ")) for line in lines)
    assert goal_failures(s, strict=True) == []


def test_not_kept_by_lag_counts_causes_and_advises_a_quiet_cpu(tmp_path):
    """10 of 200 sends 5 ms late (6 in CPU stalls, 3 waiting for a connection, 1 without a
    cause): lag p99 5 ms > 1 ms, the shares of the causes in the reason, the counts in
    summary.json, advice for the main cause (a quiet CPU, worded with the worker's stall
    counters) and for one behind at least a fifth of them (connections)."""
    run = _run(tmp_path, *_rows(late={"stall": 6, "connection": 3, "none": 1}),
               options={"connections": 4})
    stalls = {"threshold_ns": 50_000, "count": 54, "over_100us": 20, "over_1ms": 3,
              "longest_ns": 9_100_000, "lost_ns": 8 * MS, "per_s": 27.0, "run_ns": 2_000 * MS}
    s = _both(run, worker_stats=[{"worker": 0, "stalls": stalls}])
    v = s["verdict"]
    assert not v["kept"]
    assert v["reasons"] == ["lag p99 5ms > 1ms (60% of late sends during CPU stalls, 30% "
                            "waiting for a connection, 10% of unknown cause)"]
    assert v["late"] == 10 and v["main_cause"] == "stall"
    assert v["late_by_cause"] == {"stall": 6, "connection": 3, "inflight": 0, "burst": 0,
                                  "unknown": 1}
    assert v["advice"][0].startswith("late sends came during CPU stalls (worker 0 lost its CPU "
                                     "27 times a second for over 50µs, for up to 9.1ms): give "
                                     "the workers a quiet CPU (isolcpus=, nohz_full=")
    assert "docs/quiet-machine.md" in v["advice"][0]
    assert v["advice"][1] == ("late sends waited for a free connection: raise --connections "
                              "(now 4 per host per worker), or the target answers too slowly "
                              "for this rate")
    assert len(v["advice"]) == 2
    lines = format_summary(s).splitlines()
    assert lines[lines.index("verdict   schedule NOT kept: " + v["reasons"][0]) + 1] == \
        "late      10 sends later than 1ms: stall 6, connection 3, unknown 1"
    assert "advice    " + v["advice"][0] in lines
    assert next(line for line in lines if line.startswith("rate")).endswith("SCHEDULE NOT KEPT")
    assert goal_failures(s, strict=False) == []
    assert goal_failures(s, strict=True) == ["schedule NOT kept: " + v["reasons"][0]]
    report = format_report(build_report(run)[0])
    assert "late sends (lag > 1ms): 10 of 200 sent (5.00%), by cause:" in report
    assert re.search(r"^    stall +6 +60\.00%$", report, re.M)
    assert "  advice: late sends came during CPU stalls" in report


@pytest.mark.parametrize("cause, advice", [
    ("connection", "late sends waited for a free connection: raise --connections (now 4 per "
                   "host per worker), or the target answers too slowly for this rate"),
    ("inflight", "late sends were held at the in-flight bound: raise --max-inflight (now "
                 "100), or the target answers too slowly for this rate"),
    ("burst", "late sends came behind earlier ones the worker was still sending (bursts): add "
              "workers (-workers, now 1) or slow the schedule (--time-scale)"),
    ("none", "the cause of most late sends is unknown: the worker saw no CPU stall, "
             "connection wait, in-flight bound or burst for them"),
])
def test_advice_fits_the_main_cause(tmp_path, cause, advice):
    """The advice names what to change for the cause of most late sends, with the run's own
    setting of it (run.json's options)."""
    run = _run(tmp_path, *_rows(late={cause: 8, "stall": 1}),
               options={"connections": 4, "max_inflight": 100})
    v = _both(run)["verdict"]
    assert not v["kept"] and v["advice"] == [advice]
    assert v["main_cause"] == ("unknown" if cause == "none" else cause)


def test_not_kept_by_lost_requests(tmp_path):
    """5 requests never sent (overload) and, against a schedule of 205, 5 without a record:
    not kept with the default --max-lost 0; --max-lost 10 keeps it; 9 does not."""
    rows, t_ns = _rows(unsent=5)
    v = _both(_run(tmp_path, rows, t_ns, options={"max_inflight": 100}))["verdict"]
    assert not v["kept"] and v["reasons"] == ["5 of 200 requests never sent (overload 5)"]
    assert (v["lost"], v["never_sent"], v["missing"]) == (5, 5, 0)
    assert v["advice"] == ["5 requests were over --max-inflight (100) and never sent: raise "
                           "it, or the target answers too slowly for this rate"]

    lenient = _run(tmp_path, rows, t_ns, options={"max_lost": 10}, name="lenient")
    v = summarize_run(lenient, 205)["verdict"]
    assert v["kept"] and (v["lost"], v["missing"], v["max_lost"]) == (10, 5, 10)
    assert ("verdict   schedule kept: lag p99 20µs <= 1ms, 10 lost (<= 10)"
            in format_summary(summarize_run(lenient, 205)))
    strict = _run(tmp_path, rows, t_ns, options={"max_lost": 9}, name="strict")
    v = summarize_run(strict, 205)["verdict"]
    assert v["reasons"] == ["5 of 205 requests never sent (overload 5), 5 without a record: "
                            "10 lost > --max-lost 9"]
    assert v["advice"][-1] == ("5 scheduled requests have no record: a worker died or its "
                               "records were damaged")


def test_max_lag_default_is_per_worker():
    """--max-lag's default: 1 ms, or a tenth of the gap one worker sees between its sends
    (workers x the schedule's mean gap) where that is larger."""
    assert stats.kept_lag_limit_ns(200.0) == MS                 # 5 ms gap: 0.5 ms < 1 ms
    assert stats.kept_lag_limit_ns(200.0, workers=4) == 2 * MS  # 20 ms per worker
    assert stats.kept_lag_limit_ns(10.0) == 10 * MS
    assert stats.kept_lag_limit_ns(10.0, workers=3) == 30 * MS
    assert stats.kept_lag_limit_ns(None, workers=8) == MS


def test_max_lag_from_workers_and_from_the_option(tmp_path):
    """Every send 1.5 ms late at 200 req/s: kept by 4 workers (limit 2 ms), not by 1 (1 ms);
    --max-lag 10ms (run.json) sets the limit, and what counts as late, whatever the rate."""
    rows, t_ns = _rows(lag_ns=1_500_000)
    four = _both(_run(tmp_path, rows, t_ns, workers=4, name="four"))["verdict"]
    assert four["kept"] and four["max_lag_ns"] == 2 * MS and four["workers"] == 4
    assert four["late"] == 0
    one = _both(_run(tmp_path, rows, t_ns, workers=1, name="one"))["verdict"]
    assert not one["kept"] and one["reasons"][0].startswith("lag p99 1.5ms > 1ms (100% of late "
                                                            "sends of unknown cause)")
    assert one["late"] == N
    rows, t_ns = _rows(late={"burst": 20}, late_lag_ns=12 * MS)
    given = _both(_run(tmp_path, rows, t_ns, options={"max_lag": "10ms"}, name="given"))["verdict"]
    assert (given["max_lag_ns"], given["max_lag_default"]) == (10 * MS, False)
    assert not given["kept"] and given["late_by_cause"]["burst"] == 20 and given["late"] == 20


def test_records_without_causes(tmp_path):
    """Records written before late_cause existed: the summary and the report still judge the
    lag, count the late sends, and say the records do not tell why."""
    run = _run(tmp_path, *_rows(late={"stall": 10}))
    path = records_path(run, 0)
    with pa.ipc.open_stream(pa.OSFile(str(path))) as reader:
        table = reader.read_all()
    table = table.drop_columns(["late_cause"])
    with pa.ipc.new_stream(str(path), table.schema) as writer:
        writer.write_table(table)
    v = _both(run)["verdict"]
    assert not v["kept"] and v["reasons"] == ["lag p99 5ms > 1ms"]
    assert v["late"] == 10 and v["late_by_cause"] is None
    assert v["advice"] == ["these records do not say why sends were late (written before "
                           "replayer recorded late causes)"]
    assert "late      10 sends later than 1ms (these records do not say why)" in \
        format_summary(summarize_run(run, N))


def test_every_request_failed_is_said(tmp_path):
    """A run where no request was answered ok gets a warning line in its summary, whatever the
    verdict, and fails its goals only with --strict."""
    rows, t_ns = _rows()
    rows["error"] = ERROR_NAMES.index("status")
    rows["status"] = 503
    s = _both(_run(tmp_path, rows, t_ns))
    assert s["all_failed"] and s["verdict"]["kept"]
    assert "warning   every one of the 200 requests failed (status 200)" in format_summary(s)
    assert goal_failures(s, strict=False) == []
    assert goal_failures(s, strict=True) == ["every one of the 200 requests failed (status 200)"]

"""Rates and the schedule verdict: one definition in the run's summary, `replayer report` and
`replayer compare`, checked on hand-made records (the run summary's own reader and the
report's both read them from the run directory)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replayer.analysis import stats
from replayer.cli import main
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE
from replayer.analysis.report import build_report, format_summary as format_report
from replayer.analysis.summary import format_summary, summarize_run

from report_fixtures import START_NS, write_records

GAP_NS = 5_000_000          # 200 req/s


def _rows(n: int, sent: int, lag_ns: int = 20_000, unsent_kind: str = "overload",
          warmup: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n requests 5 ms apart; the first `sent` sent `lag_ns` late and answered 1 ms later,
    the rest never sent (recorded as unsent_kind)."""
    t_ns = np.arange(n, dtype=np.int64) * GAP_NS
    rows = np.zeros(n, ROW_DTYPE)
    rows["event"] = np.arange(n)
    rows["scheduled_ns"] = START_NS + t_ns
    rows["sent_ns"][:sent] = rows["scheduled_ns"][:sent] + lag_ns
    rows["done_ns"][:sent] = rows["sent_ns"][:sent] + 1_000_000
    rows["status"][:sent] = 200
    rows["error"][sent:] = ERROR_NAMES.index(unsent_kind)
    return rows, t_ns


def test_overloaded_run_same_rates_in_summary_report_and_compare(tmp_path, capsys):
    """200 scheduled at 200 req/s, 5 sent, the rest refused by the in-flight bound: the run
    summary, the report and compare give the same intended/sent/answered rates, and both
    printed summaries say the schedule was not kept and why (one verdict for both)."""
    rows, t_ns = _rows(200, 5)
    run = write_records(tmp_path / "over", rows, t_ns, workers=2)
    run_summary = summarize_run(run, 200)
    report, _, _ = build_report(run)
    for r in (run_summary["rates"], report["rates"]):
        assert r["intended"] == pytest.approx(200.0)
        assert r["sent"] == pytest.approx(5.0)
        assert r["answered"] == pytest.approx(5.0)
    assert run_summary["rates"] == report["rates"] == report["overall"]["rates"]
    assert run_summary["overall"]["rates"] == report["overall"]["rates"]

    text = format_summary(run_summary)
    rate_line = next(line for line in text.splitlines() if line.startswith("rate"))
    assert rate_line.endswith("intended 200.0 req/s  sent 5.0 req/s (2.5%)  answered 5.0 "
                              "req/s   SCHEDULE NOT KEPT")
    assert "verdict   schedule NOT kept: 195 of 200 requests never sent (overload 195)" in text
    assert ("verdict: schedule NOT kept: 195 of 200 requests never sent (overload 195)"
            in format_report(report))
    assert not run_summary["verdict"]["kept"]
    assert json.loads(json.dumps(run_summary["verdict"])) == report["verdict"]

    assert main(["compare", str(run), str(run), "--json"]) == 0
    rows_out = json.loads(capsys.readouterr().out)["rows"]
    got = {r["metric"]: r["a"] for r in rows_out if r["group"] == "overall"}
    assert got["intended/s"] == pytest.approx(200.0) and got["sent/s"] == pytest.approx(5.0)
    assert got["answered/s"] == pytest.approx(5.0)


def test_kept_schedule_shows_no_warning(tmp_path):
    """Every request sent 20 µs late: the rates equal the intended rate, and neither summary
    says the schedule was not kept."""
    rows, t_ns = _rows(200, 200)
    run = write_records(tmp_path / "kept", rows, t_ns)
    run_summary = summarize_run(run, 200)
    report, _, _ = build_report(run)
    assert run_summary["rates"] == report["rates"]
    assert report["rates"]["sent"] == pytest.approx(200.0)
    assert run_summary["verdict"]["kept"] and report["verdict"]["kept"]
    assert "NOT KEPT" not in format_summary(run_summary)
    assert "NOT KEPT" not in format_report(report)


def test_all_sent_but_late_is_not_kept(tmp_path):
    """Every request sent, but 50 ms late: the rates look kept, the verdict on the rate line
    says otherwise."""
    rows, t_ns = _rows(200, 200, lag_ns=50_000_000)
    run = write_records(tmp_path / "late", rows, t_ns)
    text = format_summary(summarize_run(run, 200))
    assert "verdict   schedule NOT kept: lag p99 50ms > 1ms (" in text


def test_single_request_has_no_rate(tmp_path):
    """One request: no span, so no rate (and no rate line), not a division by zero."""
    rows, t_ns = _rows(1, 1)
    run = write_records(tmp_path / "one", rows, t_ns)
    s = summarize_run(run, 1)
    assert s["rates"]["intended"] is None and s["rates"]["sent"] is None
    assert "\nrate" not in format_summary(s)
    report, _, _ = build_report(run)
    assert report["rates"]["intended"] is None and report["overall"]["rates"]["intended"] is None


def test_lag_line_counts_measured_requests_that_were_sent(tmp_path):
    """The lag line's "N measured requests" counts post-warm-up requests that were sent:
    warm-up rows and never-sent rows are not in it."""
    rows, t_ns = _rows(200, 150, unsent_kind="not_sent")     # events 150..199 never sent
    run = write_records(tmp_path / "p2", rows, t_ns, warmup_ns=100 * GAP_NS)
    s = summarize_run(run, 200)
    assert s["overall"]["requests"] == 100 and s["overall"]["sent"] == 50
    assert "(actual - intended, 50 measured requests)" in format_summary(s)
    report, _, _ = build_report(run)
    assert report["fidelity"]["sent"] == 50 and report["fidelity"]["requests"] == 100
    assert "(50 of 100 measured requests sent)" in format_report(report)


def test_rate_definition():
    """n requests 1/r apart make rate r exactly; per-second rates of sent and answered
    requests use the same duration."""
    duration = stats.schedule_duration_ns(200, 0, 199 * GAP_NS)
    assert duration == pytest.approx(1e9)
    r = stats.rates(200, 50, 40, duration)
    assert (r["intended"], r["sent"], r["answered"]) == pytest.approx((200.0, 50.0, 40.0))
    assert stats.schedule_duration_ns(1, 0, 0) is None
    assert stats.rates(1, 1, 1, None)["intended"] is None

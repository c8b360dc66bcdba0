"""Failure reasons shown: each failure kind's first and most frequent messages, from the
workers' failures-wNNN.json, in the run summary (text and summary.json) and in `replayer
report` (text, summary.json, HTML); kinds no transport explains get a fixed explanation."""
from __future__ import annotations

import json
from html import escape

import numpy as np

from replayer.cli import main
from replayer.analysis.failures import write_failures
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE
from replayer.analysis.summary import format_summary, summarize_run

from report_fixtures import START_NS, write_records

REFUSED = "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server"
UNREACHABLE = "Failed to connect to 10.0.0.9 port 80 after 3 ms: No route to host"


def _run(tmp_path):
    """200 requests: 170 ok, 20 connect failures (never sent), 10 refused by the in-flight
    bound; two workers, each with its failure log."""
    n = 200
    t_ns = np.arange(n, dtype=np.int64) * 5_000_000
    rows = np.zeros(n, ROW_DTYPE)
    rows["event"] = np.arange(n)
    rows["scheduled_ns"] = START_NS + t_ns
    rows["sent_ns"] = rows["scheduled_ns"] + 10_000
    rows["done_ns"] = rows["sent_ns"] + 500_000
    rows["status"] = 200
    i = np.arange(n)
    connect = (i % 20 == 3) | (i % 20 == 4)    # 20 requests, 10 per worker, the first event 3
    overload = (i % 10 == 5) & (i >= 100)
    rows["error"][connect] = ERROR_NAMES.index("connect")
    rows["error"][overload] = ERROR_NAMES.index("overload")
    for bad in (connect, overload):
        rows["sent_ns"][bad] = rows["done_ns"][bad] = rows["status"][bad] = 0
    run = write_records(tmp_path / "run", rows, t_ns, workers=2)
    # Worker 1 met the first failure (event 3, at 15 ms) with the rarer message.
    write_failures(run, 0, {"connect": {
        "count": 10, "first": {"message": REFUSED, "event": 4, "time_ns": START_NS + 20_000_000},
        "messages": [{"message": REFUSED, "count": 10}]}})
    write_failures(run, 1, {"connect": {
        "count": 10, "first": {"message": UNREACHABLE, "event": 3, "time_ns": START_NS + 15_000_000},
        "messages": [{"message": REFUSED, "count": 7}, {"message": UNREACHABLE, "count": 3}]}})
    return run


def test_run_summary_shows_first_and_most_frequent_messages(tmp_path):
    """The run's summary: a line per failure kind under `outcomes`, the first message and the
    most frequent ones with their counts; overload gets its fixed explanation."""
    run = _run(tmp_path)
    s = summarize_run(run, 200)
    text = format_summary(s)
    assert "outcomes  connect 20  ok 170  overload 10" in text
    assert (f'  connect 20: first "{UNREACHABLE}"; most "{REFUSED}" (17), "{UNREACHABLE}" (3)'
            in text.splitlines())
    assert "  overload 10: over --max-inflight, never sent" in text.splitlines()
    connect = json.loads(json.dumps(s))["failures"]["connect"]
    assert connect["count"] == 20 and connect["first"]["event"] == 3
    assert connect["messages"] == [{"message": REFUSED, "count": 17},
                                   {"message": UNREACHABLE, "count": 3}]
    assert s["failures"]["overload"]["explanation"] == "over --max-inflight, never sent"


def test_report_shows_failure_messages_in_text_json_and_html(tmp_path, capsys):
    """`replayer report`: the same lines in its table, the messages in summary.json, and a
    table of them in report.html."""
    run = _run(tmp_path)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "errors: 30 of 200 requests failed" in out
    assert f'  connect 20: first "{UNREACHABLE}"; most "{REFUSED}" (17)' in out
    assert "  overload 10: over --max-inflight, never sent" in out
    saved = json.loads((run / "report" / "summary.json").read_text())
    assert saved["failures"]["connect"]["first"]["message"] == UNREACHABLE
    assert saved["failures"]["connect"]["messages"][0] == {"message": REFUSED, "count": 17}
    html = (run / "report" / "report.html").read_text()
    assert "id='failures-table'" in html
    assert f"{escape(REFUSED)} (17)" in html and "over --max-inflight, never sent" in html


def test_no_failure_log_no_messages(tmp_path):
    """A run without failure logs (an older run, or a worker that could not write one):
    the kinds are still listed, with what is known without messages."""
    run = _run(tmp_path)
    for path in run.glob("failures-w*.json"):
        path.unlink()
    s = summarize_run(run, 200)
    assert s["failures"]["connect"] == {"count": 20, "first": None, "messages": [],
                                        "explanation": None}
    lines = format_summary(s).splitlines()
    assert not any(line.startswith("  connect") for line in lines)
    assert "  overload 10: over --max-inflight, never sent" in lines

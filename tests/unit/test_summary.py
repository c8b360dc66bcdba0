"""The summary document: the run's own (streamed, counted as drained) and the report's (from
loaded columns) are one schema with the same numbers; the end of a run reads its records twice;
the printed lines of a run, checked on hand-made records."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replayer.analysis import stats, summary
from replayer.analysis.export import LatfWriter, export_latf
from replayer.analysis.model import LiveCounts
from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE, RecordWriter, records_path
from replayer.analysis.report import build_report
from replayer.analysis.summary import format_summary, summarize_run

from report_fixtures import START_NS, make_run, write_records

N = 20_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", n=N, workers=2)


def _json(doc: dict) -> dict:
    return json.loads(json.dumps(doc))


def test_the_run_summary_is_the_reports_document(run):
    """For the same records, every key of the run's summary.json is in the report's with the
    same value (counts, rates, verdict, failures, the measured group with its percentiles),
    and the numbers are those numpy gives on the hand-made truth."""
    mine = _json(summarize_run(run.run_dir, N))
    report, _, _ = build_report(run.run_dir)
    for key, value in mine.items():
        assert report[key] == value, key
    assert {"targets", "fidelity", "run_dir"} <= set(report) - set(mine)

    t = run.rows
    sent, ok = t["sent_ns"] > 0, (t["error"] == 0) & (t["done_ns"] > 0)
    assert (mine["recorded"], mine["sent"], mine["ok"], mine["lost"]) == (N, sent.sum(), ok.sum(), 0)
    errors = np.bincount(t["error"], minlength=len(ERROR_NAMES))
    assert mine["errors"] == {k: int(v) for k, v in zip(ERROR_NAMES, errors) if v}
    m = run.measure
    overall = mine["overall"]
    assert overall["requests"] == m.sum() and overall["sent"] == (m & sent).sum()
    assert overall["lag_ns"] == stats.distribution(
        t["sent_ns"][m & sent] - t["scheduled_ns"][m & sent])
    assert overall["latency_ns"] == stats.distribution(t["done_ns"][m & ok] - t["sent_ns"][m & ok])
    assert overall["latency_intended_ns"] == stats.distribution(
        t["done_ns"][m & ok] - t["scheduled_ns"][m & ok])
    assert overall["status"]["503"] == int(np.count_nonzero(t["status"][m] == 503))


def _drained(tmp_path, rows, t_ns, warmup_ns, batch=700):
    """Rows written as the drain writes them (several batches), with the drain's counts."""
    live = LiveCounts()
    writer = RecordWriter(records_path(tmp_path, 0), 0, np.zeros(len(t_ns), np.int32), ["svc"],
                          None, t_ns, warmup_ns, {})
    for lo in range(0, len(rows), batch):
        live.add(writer.write(rows[lo:lo + batch]))
    writer.close()
    (tmp_path / "run.json").write_text(json.dumps({"start_ns": START_NS}))
    return live


def test_counts_taken_while_draining_equal_those_of_the_files(run, tmp_path):
    """The run's summary from the drain's counts is the summary counted from the files."""
    live = _drained(tmp_path, run.rows, run.t_ns, run.warmup_ns)
    assert _json(summarize_run(tmp_path, N, [live])) == _json(summarize_run(tmp_path, N))


def test_the_end_of_a_run_reads_its_records_twice(run, tmp_path, monkeypatch):
    """With the drain's counts, the summary, the -latf file and any other reader of the
    records take two passes over the files in all (the percentiles need the second); the
    -latf file is the one `replayer export -f latf` writes."""
    live = _drained(tmp_path, run.rows, run.t_ns, run.warmup_ns)
    passes = []
    real = summary.iter_batches

    def counted(*args, **kwargs):
        passes.append(args[1] if len(args) > 1 else kwargs.get("columns"))
        return real(*args, **kwargs)

    class Seen:
        COLUMNS = ["event"]
        rows = 0
        closed = False

        def add(self, c):
            self.rows += c.n

        def close(self):
            self.closed = True

    monkeypatch.setattr(summary, "iter_batches", counted)
    seen = Seen()
    latf = LatfWriter(tmp_path / "rps_lat.csv")
    summarize_run(tmp_path, N, [live], [latf, seen])
    assert len(passes) == 2 and "status" not in passes[0] and "event" in passes[0]
    assert seen.rows == N and seen.closed
    monkeypatch.setattr(summary, "iter_batches", real)
    export_latf(tmp_path, tmp_path / "exported.csv", False, False, [])
    assert (tmp_path / "rps_lat.csv").read_bytes() == (tmp_path / "exported.csv").read_bytes()
    assert latf.rows == len((tmp_path / "exported.csv").read_text().split())


def test_printed_run_summary(tmp_path):
    """The lines a run prints, on ten hand-made records (two of them warm-up): one never sent
    (connect), one answered 503; two scheduled requests left no record."""
    n = 10
    t_ns = np.arange(n, dtype=np.int64) * 100_000_000
    rows = np.zeros(n, ROW_DTYPE)
    rows["event"] = np.arange(n)
    rows["scheduled_ns"] = START_NS + t_ns
    rows["sent_ns"] = rows["scheduled_ns"] + np.arange(1, n + 1) * 1000        # lag 1..10 µs
    rows["done_ns"] = rows["sent_ns"] + np.arange(1, n + 1) * 1_000_000        # 1..10 ms
    rows["status"] = 200
    rows["error"][3] = ERROR_NAMES.index("connect")
    rows["sent_ns"][3] = rows["done_ns"][3] = rows["status"][3] = 0
    rows["error"][6], rows["status"][6] = ERROR_NAMES.index("status"), 503
    run = write_records(tmp_path / "run", rows, t_ns, warmup_ns=200_000_000)
    assert format_summary(summarize_run(run, 12)).splitlines() == [
        "requests  scheduled 12  sent 9  ok 8  failed 2  lost 2",
        "outcomes  connect 1  ok 8  status 1",
        "  status 1: answered with status 503 (1)",
        "rate      intended 12.2 req/s  sent 9.2 req/s (75.0%)  answered 8.1 req/s   "
        "SCHEDULE NOT KEPT",
        "send lag  p50 7µs  p99 10µs  p99.9 10µs  max 10µs   (actual - intended, 7 measured requests)",
        "latency   p50 6ms  p95 10ms  p99 10ms  p99.9 10ms   (from actual send)",
        "          p50 6.01ms  p95 10ms  p99 10ms  p99.9 10ms   (from intended send)",
        "verdict   schedule NOT kept: 1 of 12 requests never sent (connect 1), 2 without a record",
        "advice    1 request never left (connect): see the failures above",
        "advice    2 scheduled requests have no record: a worker died or its records were damaged",
    ]

"""Results per request class (summary.ClassResults): counts, failures by kind, latency
percentiles from actual and from intended send, and SLO attainment, the same in the run's
streamed summary, `replayer report` and its compare, checked against numbers worked out by
hand; the class table in its old and new forms; thresholds on a class."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replayer.analysis import stats
from replayer.analysis.model import ERROR_NAMES, class_table
from replayer.analysis.records import ROW_DTYPE, RecordWriter, records_path
from replayer.analysis.report import build_report, compare, format_summary as format_report
from replayer.analysis.summary import ClassResults, _ClassPercentiles, format_summary, summarize_run
from replayer.analysis.thresholds import Goals, parse_thresholds

from report_fixtures import START_NS

MS = 1_000_000
WARMUP_NS = 1_000 * MS
CLASSES = [{"name": "urgent", "slo_ns": 5 * MS, "timeout_ns": 50 * MS, "tags": {"tier": "gold"}},
           {"name": "batch", "slo_ns": None, "timeout_ns": None, "tags": {}},
           {"name": "edge", "slo_ns": 2 * MS, "timeout_ns": None, "tags": {}}]


def _write_run(run_dir, rows, t_ns, cls, classes, workers=1, batch=3):
    """Rows (event order) written as `replayer run` writes them: worker k holds events k,
    k + workers, ...; a few rows per batch, so a pass sees many batches."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = np.zeros(len(t_ns), np.int32)
    for w in range(workers):
        writer = RecordWriter(records_path(run_dir, w), w, target, ["svc"], cls, t_ns,
                              WARMUP_NS, {})
        mine = rows[w::workers]
        for lo in range(0, len(mine), batch):
            writer.write(mine[lo:lo + batch].copy())
        writer.close()
    (run_dir / "run.json").write_text(json.dumps({
        "start_ns": START_NS, "targets": ["svc"], "classes": classes,
        "schedule": {"requests": len(t_ns), "unit_ns": 1_000_000_000, "time_scale": 1.0}}))
    return run_dir


class Hand:
    """The hand-made run: every request's class, phase and outcome chosen, 1 ms of send lag."""

    def __init__(self):
        # (cls, warm-up, error, latency from the send in ns or None, sent)
        self.rows: list[tuple] = []

    def add(self, cls, error="ok", latency_ms=None, sent=True, warmup=False):
        self.rows.append((cls, warmup, error, None if latency_ms is None else int(latency_ms * MS),
                          sent))

    def write(self, run_dir, classes=CLASSES, workers=1):
        n = len(self.rows)
        # Warm-up rows first, then measured rows 10 ms apart.
        t_ns = np.array([i * 10 * MS + (0 if warm else WARMUP_NS)
                         for i, (_, warm, *_) in enumerate(self.rows)], np.int64)
        order = np.argsort(t_ns, kind="stable")
        self.rows = [self.rows[i] for i in order]
        t_ns = t_ns[order]
        rows = np.zeros(n, ROW_DTYPE)
        rows["event"] = np.arange(n)
        rows["scheduled_ns"] = START_NS + t_ns
        for i, (_, _, error, latency, sent) in enumerate(self.rows):
            rows["error"][i] = ERROR_NAMES.index(error)
            rows["status"][i] = 503 if error == "status" else 200 if error == "ok" else 0
            if sent:
                rows["sent_ns"][i] = rows["scheduled_ns"][i] + MS
                if latency is not None:
                    rows["done_ns"][i] = rows["sent_ns"][i] + latency
        cls = np.array([c for c, *_ in self.rows], np.int16)
        return _write_run(run_dir, rows, t_ns, cls, classes, workers)


def _hand_run(tmp_path):
    h = Hand()
    # urgent (SLO 5 ms): 10 answered in 1..10 ms from the send (2..11 ms from the intended send),
    # one answered 503 in 1 ms, one never sent, one timed out; warm-up requests answered in
    # 0.5 ms are not counted.
    for k in range(1, 11):
        h.add(0, latency_ms=k)
    h.add(0, "status", latency_ms=1)
    h.add(0, "not_sent", sent=False)
    h.add(0, "timeout")
    for _ in range(5):
        h.add(0, latency_ms=0.5, warmup=True)
    # batch (no SLO): 4 answered in 20 ms, one reset.
    for _ in range(4):
        h.add(1, latency_ms=20)
    h.add(1, "reset")
    # edge (SLO 2 ms): only warm-up requests: no group.
    h.add(2, latency_ms=1, warmup=True)
    # A class number beyond the table, and requests without a class.
    h.add(3, latency_ms=3)
    h.add(-1, latency_ms=1)
    h.add(-1, "connect", sent=False)
    return h.write(tmp_path / "run", workers=2)


def _json(doc):
    return json.loads(json.dumps(doc))


def test_class_groups_match_the_hand_computed_numbers(tmp_path):
    """Per class: requests counted (warm-up left out), ok, failures by kind, latency
    percentiles from actual and intended send, and attainment over every request counted
    (failed, unsent and timed-out requests count as missed); a class without an SLO shows no
    attainment; a class seen only in the warm-up has no group; a number beyond the table is
    classN. The run's streamed summary and the report give the same groups."""
    run = _hand_run(tmp_path)
    mine = _json(summarize_run(run, 27))
    report, _, _ = build_report(run)
    assert mine["classes"] == report["classes"]
    groups = mine["classes"]
    assert list(groups) == ["urgent", "batch", "class3"]

    urgent = groups["urgent"]
    assert (urgent["index"], urgent["tags"], urgent["slo_ns"], urgent["timeout_ns"]) == (
        0, {"tier": "gold"}, 5 * MS, 50 * MS)
    assert (urgent["requests"], urgent["sent"], urgent["completed"], urgent["ok"]) == (
        13, 12, 11, 10)
    assert urgent["errors"] == {"ok": 10, "not_sent": 1, "status": 1, "timeout": 1}
    # Nearest rank over 10 values: p50 is the 5th, p95 and p99 the 10th.
    assert [urgent["latency_ns"][k] for k in ("p50", "p95", "p99")] == [5 * MS, 10 * MS, 10 * MS]
    assert [urgent["latency_intended_ns"][k] for k in ("p50", "p95", "p99")] == [
        6 * MS, 11 * MS, 11 * MS]
    # Within 5 ms of the send: 1..5 ms (5 of 13); of the intended send: 2..5 ms (4 of 13).
    assert (urgent["slo_met"], urgent["slo_met_intended"]) == (5, 4)
    assert urgent["slo_attainment"] == 5 / 13
    assert urgent["slo_attainment_intended"] == 4 / 13

    batch = groups["batch"]
    assert (batch["requests"], batch["ok"], batch["errors"]) == (5, 4, {"ok": 4, "reset": 1})
    assert batch["latency_ns"]["p99"] == 20 * MS
    assert (batch["slo_ns"], batch["slo_met"], batch["slo_attainment"],
            batch["slo_attainment_intended"]) == (None, None, None, None)
    assert groups["class3"]["requests"] == 1 and groups["class3"]["slo_ns"] is None


def test_the_printed_lines_give_one_line_per_class(tmp_path):
    """The run's end lines gain one line per class, between the latencies and the verdict;
    the report's text has the same lines below its table."""
    run = _hand_run(tmp_path)
    lines = format_summary(summarize_run(run, 27)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("class "))
    assert lines[start - 1].endswith("(from intended send)")
    assert lines[start:start + 3] == [
        "class urgent  n 13  ok 10  failed 3 (timeout 1, not_sent 1, status 1)  latency p50 5ms "
        "p95 10ms p99 10ms (intended p50 6ms p95 11ms p99 11ms)  SLO 5ms met 38.46% "
        "(intended 30.77%)",
        "class batch   n 5  ok 4  failed 1 (reset 1)  latency p50 20ms p95 20ms p99 20ms "
        "(intended p50 21ms p95 21ms p99 21ms)  no SLO",
        "class class3  n 1  ok 1  failed 0  latency p50 3ms p95 3ms p99 3ms (intended p50 4ms "
        "p95 4ms p99 4ms)  no SLO",
    ]
    assert lines[start + 3].startswith("verdict ")
    report, _, _ = build_report(run)
    assert lines[start] in format_report(report).splitlines()


def test_a_run_without_classes_prints_no_class_lines(tmp_path):
    """Records without a class and run.json without a class table: no classes in the run's
    summary.json, and no class lines."""
    h = Hand()
    for k in range(1, 6):
        h.add(-1, latency_ms=k)
    run = h.write(tmp_path / "run", classes=[])
    summary = summarize_run(run, 5)
    assert "classes" not in summary
    assert not [line for line in format_summary(summary).splitlines() if line.startswith("class")]
    assert build_report(run)[0]["classes"] == {}


def test_many_classes_streamed_equal_numpy(tmp_path, monkeypatch):
    """Hundreds of classes (the small-histogram setting), rows grouped in chunks smaller than
    the run and percentile ranges kept only when tiny (so several passes): every class's
    counts, percentiles and attainment equal numpy's on the same values, in the run's summary
    and in the report."""
    monkeypatch.setattr(ClassResults, "CHUNK", 1000)
    monkeypatch.setattr(_ClassPercentiles, "COLLECT", 8)
    rng = np.random.default_rng(3)
    n, k = 6000, 300
    classes = [{"name": f"f{i}", "slo_ms": 3} for i in range(k)]
    t_ns = np.sort(rng.integers(0, 4_000 * MS, n)).astype(np.int64)
    cls = rng.integers(-1, k, n).astype(np.int16)
    rows = np.zeros(n, ROW_DTYPE)
    rows["event"] = np.arange(n)
    rows["scheduled_ns"] = START_NS + t_ns
    rows["sent_ns"] = rows["scheduled_ns"] + rng.integers(0, 200_000, n)
    rows["done_ns"] = rows["sent_ns"] + rng.lognormal(np.log(2 * MS), 0.6, n).astype(np.int64)
    failed = rng.random(n) < 0.1
    rows["error"][failed] = ERROR_NAMES.index("status")
    rows["status"] = np.where(failed, 500, 200)
    unsent = rng.random(n) < 0.05
    rows["error"][unsent] = ERROR_NAMES.index("not_sent")
    rows["sent_ns"][unsent] = rows["done_ns"][unsent] = rows["status"][unsent] = 0
    run = _write_run(tmp_path / "run", rows, t_ns, cls, classes, workers=3, batch=97)
    mine = _json(summarize_run(run, n))
    report, _, _ = build_report(run)
    assert mine["classes"] == report["classes"]
    measured = t_ns >= WARMUP_NS
    ok = (rows["error"] == 0)
    latency = rows["done_ns"] - rows["sent_ns"]
    intended = rows["done_ns"] - rows["scheduled_ns"]
    seen = sorted(set(cls[measured & (cls >= 0)].tolist()))
    assert [mine["classes"][f"f{i}"]["index"] for i in seen] == seen
    assert len(mine["classes"]) == len(seen)
    for i in seen:
        g = mine["classes"][f"f{i}"]
        of = measured & (cls == i)
        assert g["requests"] == of.sum() and g["ok"] == (of & ok).sum()
        assert g["latency_ns"] == stats.distribution(latency[of & ok])
        assert g["latency_intended_ns"] == stats.distribution(intended[of & ok])
        lag = rows["sent_ns"] - rows["scheduled_ns"]
        assert g["lag_ns"] == stats.distribution(lag[of & ~unsent])
        assert g["slo_attainment"] == (of & ok & (latency <= 3 * MS)).sum() / of.sum()
        assert g["slo_attainment_intended"] == (of & ok & (intended <= 3 * MS)).sum() / of.sum()


def test_compare_shows_both_attainments(tmp_path):
    """compare puts each class's attainment from actual and from intended send side by side."""
    run = _hand_run(tmp_path)
    summary, _, _ = build_report(run)
    rows = {(r["group"], r["metric"]): r for r in compare(summary, summary)}
    assert rows[("class urgent", "SLO attainment")]["a"] == 5 / 13
    assert rows[("class urgent", "SLO attainment intended")]["b"] == 4 / 13
    assert ("class batch", "SLO attainment") not in rows


def test_class_table_reads_old_and_new_forms():
    """Plain names (older runs), objects as a schedule's class table holds them, and SLOs or
    timeouts in other units all give name, slo_ns, timeout_ns and tags."""
    meta = {"classes": ["plain",
                        {"name": "urgent", "slo_ns": 100 * MS, "timeout_ns": 2_000 * MS,
                         "tags": {"tier": "gold", "model": "resnet"}},
                        {"name": "old", "slo_ms": 5, "timeout_s": 1.5},
                        {"name": "none", "slo_ns": None, "timeout_ns": None, "tags": {}},
                        {"name": "bad", "slo_ns": True, "tags": ["x"]}]}
    assert class_table(meta) == [
        {"name": "plain", "slo_ns": None, "timeout_ns": None, "tags": {}},
        {"name": "urgent", "slo_ns": 100 * MS, "timeout_ns": 2_000 * MS,
         "tags": {"tier": "gold", "model": "resnet"}},
        {"name": "old", "slo_ns": 5 * MS, "timeout_ns": 1_500 * MS, "tags": {}},
        {"name": "none", "slo_ns": None, "timeout_ns": None, "tags": {}},
        {"name": "bad", "slo_ns": None, "timeout_ns": None, "tags": {}},
    ]


@pytest.mark.parametrize("expr, met", [("latency{cls=urgent}.p95<=10ms", True),
                                       ("latency{cls=urgent}.p95<10ms", False),
                                       ("latency_intended{class=urgent}.p50==6ms", True),
                                       ("errors{cls=batch}<=20%", True)])
def test_thresholds_on_a_class_read_the_class_table(tmp_path, expr, met):
    """A threshold naming a class of the table (objects with SLOs) is judged on that class's
    requests, with the value its group shows."""
    run = _hand_run(tmp_path)
    goals = Goals(thresholds=parse_thresholds([expr]))
    mine = summarize_run(run, 27, goals=goals)
    (result,) = mine["thresholds"]
    assert result["met"] is met and result["reason"] is None
    report, _, _ = build_report(run, goals=goals)
    assert report["thresholds"] == _json(mine["thresholds"])

"""The priority inference load run end to end: a `gen classes` schedule replayed whole, its
per-class table and MLPerf-style verdict in the run's summary and in `replayer report`, and
the seed's per-request CSV from its records."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa

from conftest import replayer
from replayer.analysis.records import read_records

MS = 1_000_000


def _gen(tmp_path, *args) -> str:
    path = tmp_path / "classes.parquet"
    replayer("gen", "classes", "--duration-ms", "2000", "--min-query-count", "5", "-o",
             str(path), *args, check_exit=0)
    return str(path)


def test_a_classes_schedule_is_replayed_whole_and_judged(tmp_path):
    """No -warmup/-duration given: every request of the schedule is replayed and counted; the
    summary has the seed's table and a verdict per class (here INVALID: a few queries cannot
    pass early stopping) with the reasons; report says the same."""
    sched = _gen(tmp_path, "--total-qps", "40", "--no-tensor")
    run = tmp_path / "run"
    proc = replayer("run", "-traceFile", sched, "--protocol", "http", "--local-target",
                    "-workers", "1", "--out", str(run), check_exit=0)
    summary = json.loads((run / "summary.json").read_text())
    table, _ = read_records(run, ["event"])
    assert summary["scheduled"] == table.num_rows == summary["overall"]["requests"]
    verdict = summary["mlperf"]
    assert verdict["valid"] is False and set(verdict["classes"]) == set(summary["classes"])
    for name, v in verdict["classes"].items():
        assert v["checks"]["min_queries"] and v["checks"]["min_duration"]
        assert not v["checks"]["early_stopping"]
        assert v["over_slo"] == 0 and v["early_stopping_needed"] == 459 - v["queries"]
    assert "mlperf    result INVALID" in proc.stdout
    assert "slo_attainment_%" in proc.stdout
    report = replayer("report", str(run), check_exit=0)
    assert "result INVALID" in report.stdout and "slo_attainment_%" in report.stdout


def test_the_seeds_csv_has_one_row_per_request_with_its_class_and_model(tmp_path):
    """export -f inference-csv: timestamp_issued is the send stamp, sample_id the event,
    tier/slo the class's tags, model the payload's name, latency send to answer, slo_met
    answered within the class's SLO; one row per request."""
    sched = _gen(tmp_path, "--total-qps", "30", "--no-tensor")
    run = tmp_path / "run"
    replayer("run", "-traceFile", sched, "--protocol", "http", "--local-target", "-workers", "1",
             "--out", str(run), check_exit=0)
    out = tmp_path / "metrics.csv"
    replayer("export", str(run), "-f", "inference-csv", "-o", str(out), check_exit=0)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp_issued", "sample_id", "tier", "slo", "model",
                             "latency_ns", "latency_ms", "slo_met"]
    records, _ = read_records(run, ["event", "cls", "payload", "sent_ns", "done_ns"])
    by_event = {r["event"]: r for r in records.to_pylist()}
    assert len(rows) == len(by_event)
    meta = json.loads((run / "run.json").read_text())
    for row in rows:
        rec = by_event[int(row["sample_id"])]
        cls = meta["classes"][rec["cls"]]
        assert row["tier"] == cls["tags"]["tier"] and row["slo"] == cls["tags"]["slo"]
        assert row["model"] == meta["payloads"][rec["payload"]]["name"]
        assert int(row["timestamp_issued"]) == rec["sent_ns"]
        latency = rec["done_ns"] - rec["sent_ns"]
        assert int(row["latency_ns"]) == latency
        assert float(row["latency_ms"]) == latency / 1e6
        assert row["slo_met"] == ("true" if latency <= cls["slo_ns"] else "false")
    assert {row["model"] for row in rows} <= {"resnet50", "vit"}


def _seed_example(tmp_path, qps: str, workload: str, duration_ms: str):
    """The seed's example command against `replayer serve --scheduler`: gen classes, run
    (gRPC, a fresh tensor per request), the CSV; the run's summary."""
    from conftest import start_target, stop_target

    target = start_target("--scheduler")
    try:
        sched = tmp_path / f"{workload}.parquet"
        replayer("gen", "classes", "--total-qps", qps, "--workload", workload, "--duration-ms",
                 duration_ms, "--min-query-count", "20",
                 "--scheduler-url", f"127.0.0.1:{target.scheduler_port}", "-o", str(sched),
                 check_exit=0)
        run = tmp_path / f"run-{workload}"
        proc = replayer("run", "-traceFile", str(sched), "-workers", "1", "--out", str(run),
                        timeout=240, check_exit=0)
    finally:
        stop_target(target)
    out = tmp_path / f"{workload}.csv"
    replayer("export", str(run), "-f", "inference-csv", "-o", str(out), check_exit=0)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    return json.loads((run / "summary.json").read_text()), rows, proc.stdout


def test_the_seeds_examples_run_against_the_scheduler_target(tmp_path):
    """--total-qps 20 balanced: every class answered, nearly all within its SLO. --total-qps 70
    urgent_heavy (the target's one worker about 86% busy): the queue serves tier 1 first, so
    tier 1's urgent class attains its SLO more often than tier 3's; each run's CSV has a row
    per request with the class and model of its request."""
    light, rows, stdout = _seed_example(tmp_path, "20", "balanced", "6000")
    assert light["errors"] == {"ok": light["scheduled"]} or light["failed"] == 0
    assert len(rows) == light["scheduled"]
    for name, g in light["classes"].items():
        assert g["slo_attainment"] >= 0.9, (name, g["slo_attainment"])
    assert "tier slo        count" in stdout and "mlperf    result" in stdout
    heavy, rows, _ = _seed_example(tmp_path, "70", "urgent_heavy", "8000")
    assert len(rows) == heavy["scheduled"]
    classes = heavy["classes"]
    assert classes["tier1_urgent"]["slo_attainment"] > classes["tier3_urgent"]["slo_attainment"]
    assert classes["tier1_urgent"]["slo_attainment"] >= 0.9
    assert {r["model"] for r in rows} == {"resnet50", "vit"}
    assert {(r["tier"], r["slo"]) for r in rows} == {(str(t), s) for t in (1, 2, 3)
                                                     for s in ("urgent", "normal", "relaxed")}

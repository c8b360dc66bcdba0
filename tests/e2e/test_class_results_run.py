"""A real run of a Parquet schedule with request classes against the built-in target: the
per-class results in its summary.json, its printed lines and `replayer report --json` are
those computed by hand from the run's records."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import replayer
from replayer.analysis.records import read_records

MS = 1_000_000
# (name, endpoint: the built-in target's path for it, SLO ns or None)
CLASSES = [("fast", "ok", 200 * MS), ("slow", "delay-30", 5 * MS),
           ("failing", "status-503", 100 * MS), ("open", "ok", None)]


def _schedule(path, n=300, gap_ns=10 * MS):
    """n requests gap_ns apart, the classes in turn and every tenth without a class; each
    class's endpoint doubles as the path the built-in target reads its answer from."""
    cls = np.arange(n) % len(CLASSES)
    cls[::10] = -1
    endpoints = [CLASSES[k][1] if k >= 0 else "ok" for k in cls]
    classes = [{"name": name, "slo_ns": slo, "timeout_ns": None, "tags": {"path": endpoint}}
               for name, endpoint, slo in CLASSES]
    table = pa.table({"t_ns": pa.array(np.arange(n) * gap_ns, pa.int64()),
                      "endpoint": pa.array(endpoints, pa.string()),
                      "cls": pa.array(cls, pa.int16())})
    table = table.replace_schema_metadata({"replayer.unit_ns": str(1_000_000_000),
                                           "replayer.classes": json.dumps(classes)})
    pq.write_table(table, path)
    return path


def _by_hand(out) -> dict[str, dict]:
    """Per class, from the records: requests counted (measured), ok, nearest-rank latency
    percentiles and the requests answered ok within the SLO, from actual and intended send."""
    table, problems = read_records(out)
    assert problems == []
    col = {name: table.column(name) for name in table.column_names}
    phase = col["phase"].cast(pa.string()).to_numpy(zero_copy_only=False)
    error = col["error"].cast(pa.string()).to_numpy(zero_copy_only=False)
    cls = col["cls"].to_numpy()
    sent = col["sent_ns"].is_valid().to_numpy(zero_copy_only=False)
    done = col["done_ns"].is_valid().to_numpy(zero_copy_only=False)
    sent_ns = col["sent_ns"].fill_null(0).to_numpy()
    done_ns = col["done_ns"].fill_null(0).to_numpy()
    scheduled_ns = col["scheduled_ns"].to_numpy()
    ok = (error == "ok") & sent & done
    out_classes = {}
    for k, (name, _, slo) in enumerate(CLASSES):
        of = (phase == "measure") & (cls == k)
        latency = (done_ns - sent_ns)[of & ok]
        intended = (done_ns - scheduled_ns)[of & ok]
        pick = (lambda v: [int(x) for x in np.percentile(v, [50, 95, 99], method="inverted_cdf")]
                if v.size else [None] * 3)
        n = int(of.sum())
        met = None if slo is None else int((latency <= slo).sum())
        met_intended = None if slo is None else int((intended <= slo).sum())
        out_classes[name] = {
            "requests": n, "ok": int((of & ok).sum()),
            "latency": pick(latency), "intended": pick(intended),
            "slo_met": met, "slo_met_intended": met_intended,
            "slo_attainment": None if slo is None else met / n,
            "slo_attainment_intended": None if slo is None else met_intended / n,
        }
    return out_classes


def _shown(groups: dict) -> dict[str, dict]:
    return {name: {"requests": g["requests"], "ok": g["ok"],
                   "latency": [g["latency_ns"][k] for k in ("p50", "p95", "p99")],
                   "intended": [g["latency_intended_ns"][k] for k in ("p50", "p95", "p99")],
                   **{key: g[key] for key in ("slo_met", "slo_met_intended", "slo_attainment",
                                              "slo_attainment_intended")}}
            for name, g in groups.items()}


def test_class_results_of_a_real_run_match_the_records(tmp_path):
    """Per-class counts, latency percentiles and SLO attainment (answered ok within the SLO,
    over every request of the class counted) in summary.json and in `replayer report --json`
    equal those recomputed from the records; the run prints one line per class; a class whose
    requests all take longer than its SLO, or all fail, attains none of it."""
    schedule = _schedule(tmp_path / "classes.parquet")
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(schedule), "-min=false", "-duration", "2",
                    "-warmup", "1", "-workers", "2", "--protocol", "http", "--url-template",
                    "http://{endpoint}:{port}/{endpoint}", "--local-target", "--out", str(out),
                    "-latf", "")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    truth = _by_hand(out)
    # 200 measured requests, 50 of each class but for the 20 without one: 10 of fast's turns
    # and 10 of failing's.
    assert [truth[name]["requests"] for name, _, _ in CLASSES] == [40, 50, 40, 50]

    summary = json.loads((out / "summary.json").read_text())
    assert _shown(summary["classes"]) == truth
    assert summary["classes"]["fast"]["tags"] == {"path": "ok"}
    assert summary["classes"]["slow"]["slo_ns"] == 5 * MS

    report = replayer("report", str(out), "--json", "--no-plots", check_exit=0)
    assert _shown(json.loads(report.stdout)["classes"]) == truth

    # Fixed by the target's answers, whatever the machine's load.
    assert truth["slow"]["ok"] == 50 and truth["slow"]["slo_met"] == 0
    assert truth["failing"]["ok"] == 0 and truth["failing"]["slo_attainment"] == 0
    assert truth["open"]["slo_attainment"] is None
    assert truth["fast"]["slo_attainment"] > 0.5        # answered at once, SLO 200 ms

    lines = [line for line in proc.stdout.splitlines() if line.startswith("class ")]
    assert [line.split()[1] for line in lines] == [name for name, _, _ in CLASSES]
    assert lines[1].endswith("SLO 5ms met 0.00% (intended 0.00%)")
    assert "failed 40 (status 40)" in lines[2] and lines[3].endswith("no SLO")

"""The inference workload's results (`replayer gen classes`, docs/inference.md): the
MLPerf-style verdict per class and overall, the seed's summary table by (tier, slo), and the
seed's per-request CSV.

The verdict judges each class as LoadGen's Server scenario judges a run, from its records:
- minimum duration: the class's last query scheduled at least min_duration after the start
  (on scheduled time, as LoadGen measures it);
- minimum query count: at least min_query_count queries of the class;
- latency: its 99th percentile within the class's SLO, every query counted (one not answered
  OK counts as over the SLO);
- early stopping at 99% confidence: with t queries over the SLO, at least h + t queries, h the
  fewest under it for which t or fewer over would be that unlikely were the true share under
  it only the target percentile (binomial tail; LoadGen's early_stopping.cc states the same
  test); short of it, "would need N more queries";
and gives the scheduled and the completed rate. A class is VALID when all four hold; the run
when every class is.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from replayer.analysis.fmt import duration as fmt_ns

NS_PER_S = 1_000_000_000


def mlperf_rules(meta: dict) -> dict | None:
    """The rules a `gen classes` schedule left in run.json, or None for another schedule."""
    rules = (meta.get("schedule_meta") or {}).get("mlperf")
    return rules if isinstance(rules, dict) else None


def _overlatency_odds(h: int, t: int, p: float) -> float:
    """P(at most t of h + t queries over the target) when each is under it with chance p."""
    from scipy.stats import binom
    return float(binom.cdf(t, h + t, 1 - p))


def min_passing_queries(t: int, p: float, confidence: float) -> int:
    """The fewest queries under the target, h, for which t over it (of h + t) would happen
    with probability below 1 - confidence were the true percentile only p."""
    lo = 0
    hi = max(1, math.ceil(math.log(1 - confidence) / math.log(p)))
    while _overlatency_odds(hi, t, p) >= 1 - confidence:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if _overlatency_odds(mid, t, p) < 1 - confidence:
            hi = mid
        else:
            lo = mid + 1
    return lo


def class_verdict(group: dict, rules: dict, start_ns: int) -> dict:
    """One class's verdict (see the module doc) from its summary group."""
    n = group["requests"]
    slo = group["slo_ns"]
    met = group.get("slo_met") or 0
    p = float(rules.get("target_percentile", 0.99))
    confidence = float(rules.get("confidence", 0.99))
    over = n - met
    last = group.get("last_scheduled_ns") or start_ns
    scheduled_span_ns = max(0, last - start_ns)
    h = min_passing_queries(over, p, confidence)
    needed = max(0, h + over - n)
    span_s = scheduled_span_ns / NS_PER_S
    checks = {
        "min_duration": scheduled_span_ns >= rules["min_duration_ns"],
        "min_queries": n >= rules["min_query_count"],
        # The p-th percentile of every query's latency (not answered OK: above any SLO).
        "latency": slo is not None and met >= math.floor(n * p) + 1,
        "early_stopping": needed == 0,
    }
    reasons = []
    if not checks["min_duration"]:
        reasons.append(f"last query scheduled at {span_s:.1f} s, before the minimum duration "
                       f"{rules['min_duration_ns'] / NS_PER_S:g} s")
    if not checks["min_queries"]:
        reasons.append(f"{n} queries, fewer than the minimum {rules['min_query_count']}")
    if not checks["latency"]:
        p99 = (group.get("latency_ns") or {}).get("p99")
        reasons.append(f"p{p * 100:g} latency {fmt_ns(p99) if p99 is not None else 'n/a'} over "
                       f"the SLO {fmt_ns(slo)} ({over} of {n} queries over it or not answered)")
    if not checks["early_stopping"]:
        reasons.append(f"early stopping: would need {needed} more queries, all under the SLO")
    return {
        "valid": all(checks.values()), "checks": checks, "reasons": reasons,
        "queries": n, "over_slo": over, "early_stopping_needed": needed,
        "scheduled_span_ns": scheduled_span_ns,
        "scheduled_qps": n / span_s if span_s > 0 else None,
        "completed_qps": group.get("ok", 0) / span_s if span_s > 0 else None,
        "target_qps": None,
        "latency_p99_ns": (group.get("latency_ns") or {}).get("p99"),
        "slo_ns": slo,
    }


def mlperf_verdict(meta: dict, classes: dict[str, dict], start_ns: int) -> dict | None:
    """The verdict per class and overall, or None when the run's schedule has no rules."""
    rules = mlperf_rules(meta)
    if rules is None or not classes:
        return None
    per_class = {}
    targets = rules.get("classes") or []
    for name, group in classes.items():
        v = class_verdict(group, rules, start_ns)
        k = group.get("index")
        if isinstance(k, int) and k < len(targets):
            v["target_qps"] = targets[k].get("qps")
        per_class[name] = v
    reasons = [f"{name}: {why}" for name, v in per_class.items() for why in v["reasons"]]
    return {"valid": all(v["valid"] for v in per_class.values()), "reasons": reasons,
            "classes": per_class, "rules": rules}


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def format_verdict(verdict: dict) -> list[str]:
    """The printed lines: one per class, then the result with its reasons."""
    lines = []
    for name, v in verdict["classes"].items():
        c = v["checks"]
        qps = (f"scheduled {v['scheduled_qps']:.2f}/s completed {v['completed_qps']:.2f}/s"
               if v["scheduled_qps"] is not None else "no span")
        lines.append(f"mlperf    {name:<14} {'VALID' if v['valid'] else 'INVALID':<7}  "
                     f"{v['queries']} queries, {v['over_slo']} over SLO  {qps}  duration "
                     f"{_yes(c['min_duration'])}  queries {_yes(c['min_queries'])}  latency "
                     f"{_yes(c['latency'])}  early stopping {_yes(c['early_stopping'])}")
    lines.append(f"mlperf    result {'VALID' if verdict['valid'] else 'INVALID'}"
                 + (f": {'; '.join(verdict['reasons'][:4])}" if verdict["reasons"] else ""))
    if len(verdict["reasons"]) > 4:
        lines.append(f"mlperf    ... {len(verdict['reasons']) - 4} more reasons in summary.json")
    return lines


def seed_table(classes: dict[str, dict]) -> list[str]:
    """The seed's summary table by (tier, slo): count, p50/p95/p99 ms, SLO attainment %."""
    lines = [f"{'tier':>4} {'slo':<8} {'count':>7} {'p50_ms':>9} {'p95_ms':>9} {'p99_ms':>9} "
             f"{'slo_attainment_%':>17}"]
    for name, g in classes.items():
        tags = g.get("tags") or {}
        lat = g.get("latency_ns") or {}

        def ms(key):
            value = lat.get(key)
            return f"{value / 1e6:9.2f}" if value is not None else f"{'-':>9}"
        att = g.get("slo_attainment")
        lines.append(f"{tags.get('tier', '-'):>4} {tags.get('slo', name):<8} {g['requests']:>7} "
                     f"{ms('p50')} {ms('p95')} {ms('p99')} "
                     f"{(f'{att * 100:.2f}' if att is not None else '-'):>17}")
    return lines


# ---------------------------------------------------------------- the seed's CSV

CSV_COLUMNS = ["timestamp_issued", "sample_id", "tier", "slo", "model", "latency_ns",
               "latency_ms", "slo_met"]


def export_seed_csv(run_dir, out: Path, include_warmup: bool, problems: list[str]) -> int:
    """The seed's per-request CSV, one row per request: timestamp_issued (its send stamp, ns
    since the epoch; the intended time for one never sent), sample_id (its event id), tier and
    slo (its class's tags), model (its payload's name), latency_ns and latency_ms (send to
    answer; empty when it was not answered), slo_met (answered OK within its class's SLO)."""
    from replayer.analysis.model import Columns, class_table, run_metadata
    from replayer.analysis.records import iter_batches

    meta = run_metadata(run_dir)
    classes = class_table(meta)
    models = [(p or {}).get("name") or "" for p in meta.get("payloads") or []]
    tier = np.array([str(c["tags"].get("tier", "")) for c in classes] + [""], dtype=object)
    slo_name = np.array([str(c["tags"].get("slo", c["name"])) for c in classes] + [""],
                        dtype=object)
    slo_ns = np.array([c["slo_ns"] or -1 for c in classes] + [-1], np.int64)
    model = np.array(models + [""], dtype=object)
    schema = pa.schema([("timestamp_issued", pa.int64()), ("sample_id", pa.int64()),
                        ("tier", pa.string()), ("slo", pa.string()), ("model", pa.string()),
                        ("latency_ns", pa.int64()), ("latency_ms", pa.float64()),
                        ("slo_met", pa.bool_())])
    rows = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with pacsv.CSVWriter(str(out), schema) as writer:
        for batch in iter_batches(run_dir, problems=problems):
            c = Columns.decode(batch)
            keep = np.ones(c.n, bool) if include_warmup else c.measured
            payload = (batch.column("payload").to_numpy(zero_copy_only=False)
                       if "payload" in batch.schema.names else np.full(c.n, -1, np.int32))
            k = np.where(c.cls >= 0, c.cls, len(classes))
            k = np.where(k < len(classes), k, len(classes))
            p = np.where((payload >= 0) & (payload < len(models)), payload, len(models))
            answered = c.has_sent & c.has_done
            latency = np.where(answered, c.done_ns - c.sent_ns, 0)
            ok = c.error == 0
            met = answered & ok & (slo_ns[k] >= 0) & (latency <= slo_ns[k])
            issued = np.where(c.has_sent, c.sent_ns, c.scheduled_ns)
            sel = np.flatnonzero(keep)
            table = pa.table([
                pa.array(issued[sel], pa.int64()), pa.array(c.event[sel], pa.int64()),
                pa.array(tier[k[sel]], pa.string()), pa.array(slo_name[k[sel]], pa.string()),
                pa.array(model[p[sel]], pa.string()),
                pa.array(latency[sel], pa.int64(), mask=~answered[sel]),
                pa.array(latency[sel] / 1e6, pa.float64(), mask=~answered[sel]),
                pa.array(met[sel], pa.bool_())], schema=schema)
            writer.write_table(table)
            rows += len(sel)
    return rows

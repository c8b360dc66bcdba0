"""The end-of-run summary: what was scheduled, sent, answered, and how late and how slow.

Percentiles are exact, nearest rank, as in `replayer report` (replayer.stats.percentiles).
Latency and lag figures cover the measured phase (warm-up excluded); counts cover both.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replayer.stats import percentiles

LAG_PERCENTILES = (50, 99, 99.9, 100)
LATENCY_PERCENTILES = (50, 95, 99, 99.9)


def _pcts(values: np.ndarray, qs) -> dict[str, float | None]:
    if values.size == 0:
        return {f"p{q:g}" if q != 100 else "max": None for q in qs}
    got = percentiles(values, qs)
    return {(f"p{q:g}" if q != 100 else "max"): float(v) for q, v in zip(qs, got)}


def summarize_records(table: pa.Table, scheduled_total: int, problems=()) -> dict:
    errors = table.column("error").combine_chunks()
    error_names = errors.dictionary.to_pylist()
    error_idx = errors.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(error_idx, minlength=len(error_names))
    by_error = {name: int(c) for name, c in zip(error_names, counts) if c}

    sent = table.column("sent_ns").to_numpy(zero_copy_only=False)
    done = table.column("done_ns").to_numpy(zero_copy_only=False)
    sched = table.column("scheduled_ns").to_numpy(zero_copy_only=False)
    sent_mask = pc.is_valid(table.column("sent_ns")).to_numpy(zero_copy_only=False)
    done_mask = pc.is_valid(table.column("done_ns")).to_numpy(zero_copy_only=False)
    phase = table.column("phase").combine_chunks()
    measure = phase.indices.to_numpy(zero_copy_only=False) == phase.dictionary.to_pylist().index("measure") \
        if "measure" in phase.dictionary.to_pylist() else np.zeros(len(table), bool)

    ok = error_idx == error_names.index("ok") if "ok" in error_names else np.zeros(len(table), bool)
    n_sent = int(sent_mask.sum())
    summary = {
        "scheduled": int(scheduled_total),
        "recorded": int(len(table)),
        "lost": int(scheduled_total - len(table)),
        "sent": n_sent,
        "ok": int(ok.sum()),
        "failed": int(len(table) - ok.sum()),
        "errors": by_error,
        "measured": int(measure.sum()),
    }
    if n_sent:
        s = sent[sent_mask].astype(np.int64)
        span_ns = int(s.max() - s.min())
        sched_span = int(sched[sent_mask].max() - sched[sent_mask].min())
        summary["achieved_rate"] = n_sent / (span_ns / 1e9) if span_ns > 0 else None
        summary["intended_rate"] = n_sent / (sched_span / 1e9) if sched_span > 0 else None
    m = measure & sent_mask
    lag_us = (sent[m].astype(np.int64) - sched[m]) / 1e3
    summary["lag_us"] = _pcts(lag_us, LAG_PERCENTILES)
    answered = measure & done_mask & sent_mask & ok
    lat_us = (done[answered].astype(np.int64) - sent[answered].astype(np.int64)) / 1e3
    lat_int_us = (done[answered].astype(np.int64) - sched[answered]) / 1e3
    summary["latency_us"] = _pcts(lat_us, LATENCY_PERCENTILES)
    summary["latency_from_intended_us"] = _pcts(lat_int_us, LATENCY_PERCENTILES)
    if problems:
        summary["problems"] = list(problems)
    return summary


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}s"
    if v >= 1e3:
        return f"{v / 1e3:.2f}ms"
    return f"{v:.0f}µs"


def format_summary(summary: dict) -> str:
    lines = []
    rate = summary.get("achieved_rate")
    intended = summary.get("intended_rate")
    lines.append(f"requests  scheduled {summary['scheduled']}  sent {summary['sent']}  "
                 f"ok {summary['ok']}  failed {summary['failed']}  lost {summary['lost']}")
    if summary["errors"]:
        lines.append("outcomes  " + "  ".join(f"{k} {v}" for k, v in sorted(summary["errors"].items())))
    if rate:
        lines.append(f"rate      achieved {rate:,.1f} req/s" + (f" (intended {intended:,.1f})" if intended else ""))
    lag = summary["lag_us"]
    lines.append("send lag  " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lag.items())
                 + f"   (actual - intended, {summary['measured']} measured requests)")
    lat = summary["latency_us"]
    lines.append("latency   " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lat.items()) + "   (from actual send)")
    lat = summary["latency_from_intended_us"]
    lines.append("          " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lat.items()) + "   (from intended send)")
    for p in summary.get("problems", []):
        lines.append(f"warning   {p}")
    return "\n".join(lines)

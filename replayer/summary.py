"""The end-of-run summary: what was scheduled, sent, answered, and how late and how slow.

Read batch by batch from the run's streams, in memory that does not grow with the run: the
percentiles are exact, nearest rank, as in `replayer report` (replayer.stats.percentiles), from
a second pass over the records (stats.StreamedPercentiles), not from a copy of every value.
Latency and lag figures cover the measured phase (warm-up excluded); counts cover both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replayer.records import ERROR_NAMES, PHASES, iter_batches
from replayer.stats import StreamedPercentiles, fmt_ns

LAG_PERCENTILES = (50, 99, 99.9, 100)
LATENCY_PERCENTILES = (50, 95, 99, 99.9)
COLUMNS = ["phase", "error", "scheduled_ns", "sent_ns", "done_ns"]
_OK = ERROR_NAMES.index("ok")
_MEASURE = PHASES.index("measure")


def _pcts(sel: StreamedPercentiles, qs) -> dict[str, float | None]:
    return {(f"p{q:g}" if q != 100 else "max"): (None if v is None else float(v) / 1e3)
            for q, v in zip(qs, sel.values())}


def _codes(col: pa.ChunkedArray | pa.Array, names: list[str]) -> np.ndarray:
    """Dictionary column -> codes in the canonical `names` order."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    local = arr.dictionary.to_pylist()
    remap = np.array([names.index(v) for v in local], dtype=np.int8)
    return remap[arr.indices.to_numpy(zero_copy_only=False)] if len(local) else np.empty(0, np.int8)


def _ints(col) -> tuple[np.ndarray, np.ndarray]:
    """int64 values (0 where null, never via float) and the valid mask."""
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    return pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), valid


def _measures(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                np.ndarray, np.ndarray]:
    err = _codes(batch.column("error"), ERROR_NAMES)
    phase = _codes(batch.column("phase"), PHASES)
    sched = batch.column("scheduled_ns").to_numpy()
    sent, sent_ok = _ints(batch.column("sent_ns"))
    done, done_ok = _ints(batch.column("done_ns"))
    return err, phase, sched, sent, sent_ok, done, done_ok


def _latencies(err, phase, sched, sent, sent_ok, done, done_ok):
    """(lag, latency, latency from the intended time) of the measured requests."""
    m = (phase == _MEASURE) & sent_ok
    answered = m & done_ok & (err == _OK)
    return (sent[m] - sched[m], done[answered] - sent[answered],
            done[answered] - sched[answered])


def summarize_run(run_dir: Path, scheduled_total: int) -> dict:
    problems: list[str] = []
    error_counts = np.zeros(len(ERROR_NAMES), np.int64)
    recorded = sent_count = measured = 0
    sent_lo = sched_lo = np.iinfo(np.int64).max
    sent_hi = sched_hi = np.iinfo(np.int64).min
    # Exact percentiles without keeping a value per request: a first pass over the records
    # counts, later passes (usually one) pick the wanted ranks (stats.StreamedPercentiles).
    sels = (StreamedPercentiles(LAG_PERCENTILES), StreamedPercentiles(LATENCY_PERCENTILES),
            StreamedPercentiles(LATENCY_PERCENTILES))
    for batch in iter_batches(run_dir, COLUMNS, problems):
        n = batch.num_rows
        if n == 0:
            continue
        recorded += n
        cols = _measures(batch)
        err, phase, sched, sent, sent_ok, done, done_ok = cols
        error_counts += np.bincount(err, minlength=len(ERROR_NAMES))
        measured += int((phase == _MEASURE).sum())
        if sent_ok.any():
            sent_count += int(sent_ok.sum())
            sent_lo, sent_hi = min(sent_lo, sent[sent_ok].min()), max(sent_hi, sent[sent_ok].max())
            sched_lo = min(sched_lo, sched[sent_ok].min())
            sched_hi = max(sched_hi, sched[sent_ok].max())
        for sel, values in zip(sels, _latencies(*cols)):
            sel.add(values)
    for sel in sels:
        sel.end_pass()
    while any(sel.open() for sel in sels):
        for batch in iter_batches(run_dir, COLUMNS, []):
            if batch.num_rows:
                for sel, values in zip(sels, _latencies(*_measures(batch))):
                    if sel.open():
                        sel.add(values)
        for sel in sels:
            if sel.open():
                sel.end_pass()
    ok = int(error_counts[_OK])
    summary = {
        "scheduled": int(scheduled_total),
        "recorded": recorded,
        "lost": int(scheduled_total - recorded),
        "sent": sent_count,
        "ok": ok,
        "failed": recorded - ok,
        "errors": {name: int(c) for name, c in zip(ERROR_NAMES, error_counts) if c},
        "measured": measured,
    }
    if sent_count > 1:
        span, sched_span = int(sent_hi - sent_lo), int(sched_hi - sched_lo)
        summary["achieved_rate"] = sent_count / (span / 1e9) if span > 0 else None
        summary["intended_rate"] = sent_count / (sched_span / 1e9) if sched_span > 0 else None
    summary["lag_us"] = _pcts(sels[0], LAG_PERCENTILES)
    summary["latency_us"] = _pcts(sels[1], LATENCY_PERCENTILES)
    summary["latency_from_intended_us"] = _pcts(sels[2], LATENCY_PERCENTILES)
    if problems:
        summary["problems"] = problems
    return summary


def _fmt_us(v: float | None) -> str:
    return fmt_ns(None if v is None else v * 1e3)


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

"""Exact statistics from records: percentiles, rates, schedule fidelity.

Percentile definition: nearest rank (numpy ``method="inverted_cdf"``, Hyndman & Fan type 1).
The p-th percentile is the smallest recorded value v such that at least p% of the values are
<= v. It is always a value that was actually measured (never an interpolation between two),
and "p99 <= SLO" holds exactly when at least 99% of the requests met the SLO. HdrHistogram's
getValueAtPercentile uses the same rule (up to its bucket resolution). p100 is the maximum.
"""
from __future__ import annotations

import math

import numpy as np

# Percentiles every summary reports, and their labels.
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 100.0)
PERCENTILE_LABELS = ("p50", "p90", "p95", "p99", "p99.9", "max")
PERCENTILE_METHOD = "inverted_cdf"

# Send-lag thresholds of the fidelity check, in nanoseconds.
LATE_THRESHOLDS_NS = {"late_100us": 100_000, "late_1ms": 1_000_000}


def percentiles(values: np.ndarray, qs=PERCENTILES) -> np.ndarray:
    """Nearest-rank percentiles (see module doc) of a 1-D array; NaN for an empty one."""
    values = np.asarray(values)
    if values.size == 0:
        return np.full(len(qs), np.nan)
    return np.percentile(values, qs, method=PERCENTILE_METHOD)


def distribution(values_ns: np.ndarray) -> dict:
    """count, mean, min and PERCENTILE_LABELS of nanosecond values, in nanoseconds (int)."""
    values_ns = np.asarray(values_ns)
    out = {"count": int(values_ns.size)}
    if values_ns.size == 0:
        out.update({"mean": None, "min": None, **{k: None for k in PERCENTILE_LABELS}})
        return out
    out["mean"] = float(values_ns.mean())
    out["min"] = int(values_ns.min())
    for label, value in zip(PERCENTILE_LABELS, percentiles(values_ns)):
        out[label] = int(value)
    return out


def rate(times_ns: np.ndarray) -> float | None:
    """Events per second over the span of the given times: (n - 1) gaps over (last - first).
    None when fewer than two events or a zero span."""
    times_ns = np.asarray(times_ns)
    if times_ns.size < 2:
        return None
    span = int(times_ns.max()) - int(times_ns.min())
    if span <= 0:
        return None
    return (times_ns.size - 1) * 1e9 / span


def lag_fidelity(lag_ns: np.ndarray, not_sent: int, total: int) -> dict:
    """How closely sends followed the schedule: lag percentiles and the share of requests
    sent later than each threshold (requests never sent count as late)."""
    lag_ns = np.asarray(lag_ns)
    out = {"lag": distribution(lag_ns), "requests": int(total), "not_sent": int(not_sent)}
    for key, threshold in LATE_THRESHOLDS_NS.items():
        late = int(np.count_nonzero(lag_ns > threshold)) + int(not_sent)
        out[key] = late / total if total else None
    out["early"] = int(np.count_nonzero(lag_ns < 0))
    return out


def rescaled_gaps(times_ns: np.ndarray, unit_starts_ns: np.ndarray, unit_rates: np.ndarray) -> np.ndarray:
    """Inter-arrival gaps of sorted times, each multiplied by the intended rate (per ns) of
    the trace unit it starts in. For a Poisson process whose rate is constant within each
    unit, these gaps are Exp(1) (time-rescaling theorem), so one KS test covers schedules
    whose rate changes from minute to minute."""
    times_ns = np.sort(np.asarray(times_ns, dtype=np.int64))
    if times_ns.size < 2:
        return np.empty(0)
    gaps = np.diff(times_ns).astype(np.float64)
    unit = np.searchsorted(unit_starts_ns, times_ns[:-1], side="right") - 1
    unit = np.clip(unit, 0, len(unit_rates) - 1)
    return gaps * unit_rates[unit]


def ks_exponential(scaled_gaps: np.ndarray) -> dict | None:
    """One-sample Kolmogorov-Smirnov test of rate-scaled gaps against Exp(1)."""
    scaled_gaps = np.asarray(scaled_gaps, dtype=np.float64)
    if scaled_gaps.size < 20:
        return None
    from scipy import stats as _sp  # only here: importing scipy costs ~0.5 s per command
    result = _sp.kstest(scaled_gaps, "expon")
    return {"n": int(scaled_gaps.size), "statistic": float(result.statistic),
            "pvalue": float(result.pvalue)}


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> dict | None:
    """Two-sample KS statistic between achieved and intended inter-arrival gaps."""
    if len(a) < 20 or len(b) < 20:
        return None
    from scipy import stats as _sp
    result = _sp.ks_2samp(a, b)
    return {"n": int(len(a)), "statistic": float(result.statistic), "pvalue": float(result.pvalue)}


def unit_rates(scheduled_ns: np.ndarray, unit_ns: int, origin_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts (ns) and intended rates (events per ns) of each trace unit, from scheduled times."""
    scheduled_ns = np.asarray(scheduled_ns, dtype=np.int64)
    unit_ns = max(int(unit_ns), 1)
    if scheduled_ns.size == 0:
        return np.array([origin_ns], np.int64), np.zeros(1)
    unit = (scheduled_ns - origin_ns) // unit_ns
    first = int(unit.min())
    counts = np.bincount(unit - first)
    starts = origin_ns + (first + np.arange(len(counts), dtype=np.int64)) * unit_ns
    return starts, counts / unit_ns


def fmt_ns(value: float | int | None) -> str:
    """A duration for people: 850ns, 12.3µs, 4.56ms, 1.23s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = float(value)
    a = abs(v)
    if a < 1e3:
        return f"{v:.0f}ns"
    if a < 1e6:
        return f"{v / 1e3:.3g}µs"
    if a < 1e9:
        return f"{v / 1e6:.3g}ms"
    return f"{v / 1e9:.3g}s"

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


def nearest_ranks(n: int, qs) -> np.ndarray:
    """0-based positions in the sorted values of the percentiles qs of n values, as numpy's
    inverted_cdf computes them (the same floating-point steps, so the same positions)."""
    virtual = n * np.true_divide(np.asarray(qs, dtype=np.float64), 100) - 1
    previous = np.floor(virtual)
    ranks = np.where(virtual - previous == 0, previous, previous + 1).astype(np.intp)
    ranks[ranks < 0] = 0
    return ranks


_ONE_BITS = int(np.float64(1.0).view(np.int64))
_KEY_MID = 1 << 58


def _order_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys in [0, 2**59] in the order of the int64 values: the float64 bit pattern of
    |v| counted from 1.0 (so no key is spent on fractions), mirrored below 2**58 for negative
    values. Equal keys only for equal values below 2**53 in magnitude."""
    keys = values.astype(np.float64).view(np.int64)
    if values.size and values.min() < 0:
        m = np.maximum((keys & ((1 << 63) - 1)) - (_ONE_BITS - 1), 0)
        return np.where(values < 0, _KEY_MID - m, _KEY_MID + m)
    keys -= _ONE_BITS - 1 - _KEY_MID          # in place: keys is a fresh array
    return np.maximum(keys, _KEY_MID, out=keys)


class _Range:
    """Values whose order keys lie in [lo, hi]: counted in 2**BITS finer ranges, or kept."""

    def __init__(self, lo: int, hi: int, before: int, wants: list, keep: bool, bits: int):
        self.lo, self.hi = lo, hi
        self.before = before        # values below lo
        self.wants = wants          # [(index in qs, rank among all values)]
        self.kept: list[np.ndarray] | None = [] if keep else None
        self.shift = max(0, (hi - lo).bit_length() - bits)
        self.hist = None if keep else np.zeros(1 << bits, np.int64)
        self.min: int | None = None
        self.max: int | None = None


class StreamedPercentiles:
    """Exact nearest-rank percentiles (as `percentiles`) of int64 values read in several passes
    over the same data, in memory bounded by a few histograms, not by the number of values.

    Every pass `add`s the same values in the same order, then calls `end_pass`, until `open()`
    is false. Pass 1 counts values in 65536 ranges of their order keys (1/256 of an octave
    each); each later pass either keeps the values of the range holding a wanted rank
    (when it holds at most COLLECT) and picks it, or splits that range 65536 ways again.
    Two passes in practice; five at most (six when more than COLLECT values beyond 2**53 share
    a float64, which no nanosecond latency of this century does).
    """

    BITS = 16
    COLLECT = 1 << 18

    def __init__(self, qs):
        self.qs = tuple(qs)
        self.n = 0
        self.passes = 0
        self.result: list[int | None] = [None] * len(self.qs)
        self.ranges = [_Range(0, 2 * _KEY_MID, 0, [], False, self.BITS)]

    def open(self) -> bool:
        return bool(self.ranges)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0 or not self.ranges:
            return
        if self.passes == 0:
            self.n += values.size
        keys = _order_keys(values)
        for r in self.ranges:
            if self.passes == 0:
                k, v = keys, values
            else:
                m = (keys >= r.lo) & (keys <= r.hi)
                k, v = keys[m], values[m]
                if v.size == 0:
                    continue
                lo_v, hi_v = int(v.min()), int(v.max())
                r.min = lo_v if r.min is None else min(r.min, lo_v)
                r.max = hi_v if r.max is None else max(r.max, hi_v)
            if r.kept is not None:
                r.kept.append(v)
            else:
                r.hist += np.bincount((k - r.lo) >> r.shift, minlength=len(r.hist))

    def end_pass(self) -> None:
        if self.passes == 0 and self.n:
            self.ranges[0].wants = list(enumerate(nearest_ranks(self.n, self.qs).tolist()))
        self.passes += 1
        nxt: list[_Range] = []
        for r in self.ranges:
            if r.kept is not None:
                kept = np.sort(np.concatenate(r.kept))
                for i, rank in r.wants:
                    self.result[i] = int(kept[rank - r.before])
            elif r.min is not None and r.min == r.max:
                for i, _ in r.wants:
                    self.result[i] = r.min
            elif r.lo == r.hi:
                # One key, several values (beyond 2**53): keep them.
                nxt.append(_Range(r.lo, r.hi, r.before, r.wants, True, self.BITS))
            else:
                cum = np.cumsum(r.hist)
                split: dict[int, _Range] = {}
                for i, rank in r.wants:
                    b = int(np.searchsorted(cum, rank - r.before, side="right"))
                    if b not in split:
                        lo = r.lo + (b << r.shift)
                        hi = min(r.hi, lo + (1 << r.shift) - 1)
                        split[b] = _Range(lo, hi, r.before + (int(cum[b - 1]) if b else 0), [],
                                          int(r.hist[b]) <= self.COLLECT, self.BITS)
                    split[b].wants.append((i, rank))
                nxt.extend(split.values())
        self.ranges = nxt

    def values(self) -> list[int | None]:
        """The percentiles, in the order of qs (None when there were no values)."""
        return self.result


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

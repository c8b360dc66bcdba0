"""Exact statistics from records: percentiles, rates, schedule fidelity and the verdict.

Rates (one definition, see `rates`): requests per second of the schedule's duration. Fidelity
(`lag_fidelity`): how late requests were sent against their schedule, and whether every one
was sent. The verdict (`schedule_verdict`, the one definition): the schedule was kept when
send lag p99 stays within --max-lag (default `kept_lag_limit_ns`) and no more than
--max-lost requests were lost; when it was not, the causes of the late sends (the records'
late_cause) say why, and the advice fits the main one.

Percentile definition: nearest rank (numpy ``method="inverted_cdf"``, Hyndman & Fan type 1).
The p-th percentile is the smallest recorded value v such that at least p% of the values are
<= v. It is always a value that was actually measured (never an interpolation between two),
and "p99 <= SLO" holds exactly when at least 99% of the requests met the SLO. HdrHistogram's
getValueAtPercentile uses the same rule (up to its bucket resolution). p100 is the maximum.
"""
from __future__ import annotations

import numpy as np

from replayer.analysis import fmt

# Percentiles every summary reports, and their labels.
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 100.0)
PERCENTILE_LABELS = ("p50", "p90", "p95", "p99", "p99.9", "max")
PERCENTILE_METHOD = "inverted_cdf"

# Send-lag thresholds of the fidelity check, in nanoseconds.
LATE_THRESHOLDS_NS = {"late_100us": 100_000, "late_1ms": 1_000_000, "late_10ms": 10_000_000}
# By default a schedule was kept when every request was sent and send lag p99 is at most the
# larger of KEPT_LAG_FLOOR_NS and KEPT_LAG_GAP_SHARE of the mean gap between one worker's
# sends: a sender this close to its schedule delivers the intended arrival process
# (equidistant, Poisson or a trace's own), whatever a test of the gaps' shape would say.
KEPT_LAG_FLOOR_NS = 1_000_000
KEPT_LAG_GAP_SHARE = 0.1


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


def exact_sum(values: np.ndarray) -> int:
    """The sum of int64 values as a Python int, without int64 overflow (fewer than 2**31
    values): high and low 32 bits summed apart."""
    return (int((values >> 32).sum()) << 32) + int((values & 0xFFFFFFFF).sum())


def _described(count: int, total: int, minimum: int | None, pcts) -> dict:
    out = {"count": int(count)}
    if not count:
        out.update({"mean": None, "min": None, **{k: None for k in PERCENTILE_LABELS}})
        return out
    out["mean"] = total / count          # exact integer sum, then one rounding
    out["min"] = int(minimum)
    for label, value in zip(PERCENTILE_LABELS, pcts):
        out[label] = int(value)
    return out


def distribution(values_ns: np.ndarray) -> dict:
    """count, mean, min and PERCENTILE_LABELS of nanosecond values, in nanoseconds (int)."""
    values_ns = np.asarray(values_ns, dtype=np.int64)
    if values_ns.size == 0:
        return _described(0, 0, None, ())
    return _described(values_ns.size, exact_sum(values_ns), int(values_ns.min()),
                      percentiles(values_ns))


class StreamedDistribution:
    """`distribution` of int64 values read in several passes over the same data, in bounded
    memory: count, sum and min in the first pass, the percentiles by StreamedPercentiles.
    Same protocol: add every value each pass, end_pass, until open() is false."""

    def __init__(self):
        self.percentiles = StreamedPercentiles(PERCENTILES)
        self.count = self.total = 0
        self.min: int | None = None

    def open(self) -> bool:
        return self.percentiles.open()

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.int64)
        if self.percentiles.passes == 0 and values.size:
            self.count += values.size
            self.total += exact_sum(values)
            low = int(values.min())
            self.min = low if self.min is None else min(self.min, low)
        self.percentiles.add(values)

    def end_pass(self) -> None:
        self.percentiles.end_pass()

    def result(self) -> dict:
        return _described(self.count, self.total, self.min, self.percentiles.values())


def schedule_duration_ns(scheduled: int, first_ns: int, last_ns: int) -> float | None:
    """How long a schedule of `scheduled` requests, the first due at first_ns and the last at
    last_ns, lasts: its span plus one mean gap, so that n requests 1/r apart make rate r
    exactly. None for fewer than two requests or a zero span (no rate)."""
    span = int(last_ns) - int(first_ns)
    if scheduled < 2 or span <= 0:
        return None
    return span * scheduled / (scheduled - 1)


def rates(scheduled: int, sent: int, answered: int, duration_ns: float | None) -> dict:
    """The run's rates, one definition for the run summary, `replayer report` and `replayer
    compare`: scheduled, sent and successfully answered requests, each per second of the
    schedule's duration (schedule_duration_ns). A sender that keeps its schedule sends at the
    intended rate; one that drops requests sends at less."""
    if not duration_ns:
        return {"intended": None, "sent": None, "answered": None, "duration_s": None}
    per_s = 1e9 / duration_ns
    return {"intended": scheduled * per_s, "sent": sent * per_s, "answered": answered * per_s,
            "duration_s": duration_ns / 1e9}


def kept_lag_limit_ns(intended_rate: float | None, workers: int = 1) -> int:
    """--max-lag's default: the larger of KEPT_LAG_FLOOR_NS and KEPT_LAG_GAP_SHARE of the
    mean gap between one worker's sends. Each worker sends every workers-th request, so the
    gap it sees is `workers` times the schedule's mean gap (1 / intended_rate)."""
    if not intended_rate:
        return KEPT_LAG_FLOOR_NS
    return int(max(KEPT_LAG_FLOOR_NS, KEPT_LAG_GAP_SHARE * max(workers, 1) * 1e9 / intended_rate))


# The causes a late send is counted under: the records' late_cause names (model.LATE_CAUSES)
# but "none", which counts as "unknown".
CAUSES = ("stall", "connection", "inflight", "burst", "unknown")
CAUSE_WORDS = {"stall": "during CPU stalls", "connection": "waiting for a connection",
               "inflight": "held at the in-flight bound", "burst": "behind earlier sends (burst)",
               "unknown": "of unknown cause"}


def count_causes(codes: np.ndarray, names) -> dict[str, int]:
    """Late sends by cause (CAUSES), from their late_cause codes into `names`."""
    out = dict.fromkeys(CAUSES, 0)
    if codes.size:
        found = np.bincount(codes[codes >= 0].astype(np.intp), minlength=len(names))
        for name, n in zip(names, found.tolist()):
            key = name if name in out else "unknown"
            out[key] += int(n)
        out["unknown"] += int(np.count_nonzero(codes < 0))
    return out


def _percent(part: int, whole: int) -> str:
    share = 100 * part / whole
    return "<1%" if 0 < share < 1 else f"{share:.0f}%"


def _causes_text(late_by_cause: dict[str, int]) -> str:
    """'62% of late sends during CPU stalls, 30% waiting for a connection'."""
    total = sum(late_by_cause.values())
    ranked = [(n, c) for c, n in late_by_cause.items() if n]
    ranked.sort(key=lambda nc: (-nc[0], CAUSES.index(nc[1])))
    parts = [f"{_percent(n, total)}{' of late sends' if i == 0 else ''} {CAUSE_WORDS[c]}"
             for i, (n, c) in enumerate(ranked)]
    return ", ".join(parts)


def main_cause(late_by_cause: dict[str, int] | None) -> str | None:
    """The cause of most late sends (the first in CAUSES on a tie), None without any."""
    if not late_by_cause or not any(late_by_cause.values()):
        return None
    return max(CAUSES, key=lambda c: (late_by_cause.get(c, 0), -CAUSES.index(c)))


def stall_words(workers: list[dict] | None) -> str:
    """' (worker 1 lost its CPU 27 times a second for over 50µs, for up to 9.1ms)' from the
    workers' stall counters in summary.json, '' when they have none."""
    stalled = [w for w in workers or () if (w.get("stalls") or {}).get("count")]
    if not stalled:
        return ""
    worst = max(stalled, key=lambda w: w["stalls"].get("longest_ns") or 0)
    s = worst["stalls"]
    per_s = s.get("per_s")
    often = f" {per_s:.0f} times a second" if per_s else f" {s['count']:,} times"
    return (f" (worker {worst.get('worker', '?')} lost its CPU{often} for over "
            f"{fmt.duration(s.get('threshold_ns'))}, for up to {fmt.duration(s.get('longest_ns'))})")


QUIET_CPU = ("give the workers a quiet CPU (isolcpus=, nohz_full=, rcu_nocbs=, interrupts "
             "moved off, the performance governor) or a dedicated or bigger machine; see "
             "docs/quiet-machine.md")


def _cause_advice(cause: str, options: dict, workers: int, worker_stats: list[dict] | None) -> str:
    if cause == "stall":
        return f"late sends came during CPU stalls{stall_words(worker_stats)}: {QUIET_CPU}"
    if cause == "connection":
        now = options.get("connections")
        return ("late sends waited for a free connection: raise --connections"
                + (f" (now {now} per host per worker)" if now else "")
                + ", or the target answers too slowly for this rate")
    if cause == "inflight":
        now = options.get("max_inflight")
        return ("late sends were held at the in-flight bound: raise --max-inflight"
                + (f" (now {now:,})" if isinstance(now, int) else "")
                + ", or the target answers too slowly for this rate")
    if cause == "burst":
        return ("late sends came behind earlier ones the worker was still sending (bursts): "
                f"add workers (-workers, now {workers}) or slow the schedule (--time-scale)")
    return ("the cause of most late sends is unknown: the worker saw no CPU stall, connection "
            "wait, in-flight bound or burst for them")


def _requests(n: int) -> str:
    return f"{n:,} request{'s' if n != 1 else ''}"


def _lost_advice(never: dict[str, int], missing: int, options: dict) -> list[str]:
    out = []
    for kind, n in never.items():
        were = "were" if n != 1 else "was"
        if kind == "overload":
            bound = options.get("max_inflight")
            out.append(f"{_requests(n)} {were} over --max-inflight"
                       + (f" ({bound:,})" if isinstance(bound, int) else "")
                       + " and never sent: raise it, or the target answers too slowly for this rate")
        elif kind == "not_sent":
            out.append(f"{_requests(n)} {were} not sent: the run stopped before they were due")
        else:
            out.append(f"{_requests(n)} never left ({kind}): see the failures above")
    if missing:
        out.append(f"{missing:,} scheduled request{'s have' if missing != 1 else ' has'} no "
                   "record: a worker died or its records were damaged")
    return out


def schedule_verdict(requests: int, never_sent: dict[str, int], lag_p99_ns: float | None,
                     intended_rate: float | None, *, workers: int = 1,
                     max_lag_ns: int | None = None, max_lag_default: bool | None = None,
                     max_lost: int = 0, missing: int = 0,
                     late: int | None = None, late_by_cause: dict[str, int] | None = None,
                     options: dict | None = None, worker_stats: list[dict] | None = None) -> dict:
    """Was the schedule kept? Only if send lag p99 is within max_lag_ns (None: its default,
    kept_lag_limit_ns for `workers` workers; max_lag_default says which it is when the caller
    worked the default out) and at most max_lost requests were lost: never
    sent (`never_sent`, by error kind) or without a record (`missing`). `late`: sends later
    than max_lag_ns, `late_by_cause` them by cause (None: the records do not say); with the
    run's `options` (run.json) and `worker_stats` (summary.json workers, with their stall
    counters), the advice fits the main cause."""
    options = options or {}
    limit = int(max_lag_ns) if max_lag_ns is not None else kept_lag_limit_ns(intended_rate, workers)
    never = {k: int(v) for k, v in sorted(never_sent.items(), key=lambda kv: -kv[1]) if v}
    never_total = sum(never.values())
    missing = max(int(missing or 0), 0)
    lost = never_total + missing
    reasons: list[str] = []
    advice: list[str] = []
    if lag_p99_ns is not None and lag_p99_ns > limit:
        reason = f"lag p99 {fmt.duration(lag_p99_ns)} > {fmt.duration(limit)}"
        if late_by_cause and any(late_by_cause.values()):
            reason += f" ({_causes_text(late_by_cause)})"
            total = sum(late_by_cause.values())
            ranked = sorted((c for c in CAUSES if late_by_cause.get(c)),
                            key=lambda c: (-late_by_cause[c], CAUSES.index(c)))
            # The main cause, and any other behind at least a fifth of the late sends.
            advice += [_cause_advice(c, options, workers, worker_stats) for i, c in enumerate(ranked)
                       if i == 0 or late_by_cause[c] * 5 >= total]
        elif late_by_cause is None:
            advice.append("these records do not say why sends were late (written before "
                          "replayer recorded late causes)")
        reasons.append(reason)
    if lost > max_lost:
        parts = []
        if never_total:
            kinds = ", ".join(f"{k} {v:,}" for k, v in never.items())
            parts.append(f"{never_total:,} of {requests:,} requests never sent ({kinds})")
        if missing:
            parts.append(f"{missing:,} without a record")
        reason = ", ".join(parts)
        if max_lost:
            reason += f": {lost:,} lost > --max-lost {max_lost:,}"
        reasons.append(reason)
        advice += _lost_advice(never, missing, options)
    return {"kept": not reasons, "reasons": reasons, "advice": advice,
            "lag_p99_ns": None if lag_p99_ns is None else int(lag_p99_ns),
            "max_lag_ns": limit,
            "max_lag_default": max_lag_ns is None if max_lag_default is None else max_lag_default,
            "workers": int(workers),
            "lost": lost, "max_lost": int(max_lost), "never_sent": never_total,
            "never_sent_by_kind": never, "missing": missing, "late": late,
            "late_by_cause": late_by_cause, "main_cause": main_cause(late_by_cause)}


def lag_fidelity(lag_ns: np.ndarray, never_sent: dict[str, int], requests: int) -> dict:
    """How closely sends followed the schedule: lag percentiles, the share of sent requests
    later than each threshold, the share never sent (the verdict is the summary's own:
    schedule_verdict)."""
    lag_ns = np.asarray(lag_ns)
    not_sent = sum(int(v) for v in never_sent.values())
    out = {"lag": distribution(lag_ns), "requests": int(requests), "sent": int(lag_ns.size),
           "not_sent": not_sent, "not_sent_share": not_sent / requests if requests else None}
    for key, threshold in LATE_THRESHOLDS_NS.items():
        out[key] = int(np.count_nonzero(lag_ns > threshold)) / lag_ns.size if lag_ns.size else None
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

"""Pick N functions of a large trace whose distributions stay close to the full trace's.

The vSwarm loadgen leaves this to invitro's sampler. Here the distance between the sample and
the full trace is the two-sample Kolmogorov-Smirnov statistic (the largest gap between the
two empirical CDFs) of each feature across functions: the invocation rate (mean invocations
per unit over the replayed window) and the 75th-percentile duration; the objective is the
larger of the two. KS depends only on ranks, so heavy tails need no log transform.

Method: a stratified start (one function from each of N equal slices of the rate ranking),
then a seeded local search that swaps one sampled function for one left out whenever the
swap lowers the objective. Each evaluation costs O(N log M), so a full day of the dataset
(46k functions) samples in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replayer.errors import InputError

DEFAULT_PROPOSALS = 4000


class _Feature:
    """The full population's ECDF of one feature, for fast KS against any subset."""

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)
        self.sorted = np.sort(self.values)
        self.m = self.values.size

    def ks(self, rows: np.ndarray) -> float:
        x = np.sort(self.values[rows])
        ux, idx = np.unique(x, return_index=True)
        n = x.size
        # Sample CDF at and just before each distinct sample value; the full trace's likewise.
        before_s = idx / n
        at_s = np.append(idx[1:], n) / n
        at_p = np.searchsorted(self.sorted, ux, side="right") / self.m
        before_p = np.searchsorted(self.sorted, ux, side="left") / self.m
        return float(max(np.max(np.abs(at_s - at_p)), np.max(np.abs(before_s - before_p))))


@dataclass
class SampleReport:
    rows: np.ndarray          # sorted indices of the chosen functions
    ks_rate: float
    ks_duration: float
    population: int

    @property
    def distance(self) -> float:
        return max(self.ks_rate, self.ks_duration)

    def describe(self) -> str:
        return (f"sampled {self.rows.size} of {self.population} functions; KS distance to the "
                f"full trace: invocation rate {self.ks_rate:.4f}, duration {self.ks_duration:.4f} "
                f"(max {self.distance:.4f})")


def sample_functions(rate: np.ndarray, duration: np.ndarray, n: int, rng: np.random.Generator,
                     proposals: int = DEFAULT_PROPOSALS) -> SampleReport:
    m = int(np.asarray(rate).size)
    if not 1 <= n <= m:
        raise InputError(f"--sample {n}: must be between 1 and the trace's {m} functions")
    f_rate, f_dur = _Feature(rate), _Feature(duration)
    if n == m:
        rows = np.arange(m)
        return SampleReport(rows=rows, ks_rate=0.0, ks_duration=0.0, population=m)
    # Stratified start: slice the rate ranking (ties broken by duration) into n equal parts.
    order = np.lexsort((f_dur.values, f_rate.values))
    edges = np.linspace(0, m, n + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(np.floor(edges[1:]).astype(np.int64), lo + 1)
    picks = order[lo + (rng.random(n) * (hi - lo)).astype(np.int64)]
    chosen = np.zeros(m, dtype=bool)
    chosen[picks] = True
    rows = np.flatnonzero(chosen)

    def objective(r):
        a, b = f_rate.ks(r), f_dur.ks(r)
        return max(a, b), a + b   # secondary key breaks ties toward both being small

    best = objective(rows)
    for _ in range(proposals):
        i = int(rng.integers(n))
        out = np.flatnonzero(~chosen)
        j = int(out[rng.integers(out.size)])
        trial = rows.copy()
        trial[i] = j
        score = objective(trial)
        if score < best:
            chosen[rows[i]] = False
            chosen[j] = True
            rows, best = trial, score
    rows = np.sort(rows)
    return SampleReport(rows=rows, ks_rate=f_rate.ks(rows), ks_duration=f_dur.ks(rows), population=m)

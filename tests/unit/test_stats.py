"""Exact statistics: nearest-rank percentiles, their streamed form, and how numbers are
written for people."""
from __future__ import annotations

import numpy as np
import pytest

from replayer.analysis import fmt, stats


def test_percentiles_are_nearest_rank():
    """The smallest value with at least p% of the values at or below it: always a measured
    value, never an interpolation."""
    values = np.array([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    assert stats.percentiles(values, (50, 90, 95, 99, 100)).tolist() == [50, 90, 100, 100, 100]
    assert stats.percentiles(np.array([7]), (1, 50, 100)).tolist() == [7, 7, 7]
    assert np.isnan(stats.percentiles(np.array([], np.int64), (50,))).all()


@pytest.mark.parametrize("name, values", [
    ("lognormal latencies", np.random.default_rng(1).lognormal(14, 1.5, 200_000).astype(np.int64)),
    ("negative and positive lags", np.random.default_rng(2).integers(-50_000, 5_000_000, 100_000)),
    ("few distinct values", np.random.default_rng(3).integers(0, 4, 300_000) * 1_000_000),
    ("one value", np.full(1000, 123_456)),
    ("beyond 2**53", (1 << 60) + np.random.default_rng(4).integers(0, 10, 5000)),
    ("none", np.empty(0, np.int64)),
])
def test_streamed_distribution_equals_the_loaded_one(name, values):
    """StreamedDistribution over batches, pass after pass, gives exactly distribution() of all
    the values at once: count, mean, min and every percentile."""
    streamed = stats.StreamedDistribution()
    batches = np.array_split(values, 7)
    passes = 0
    while streamed.open():
        for batch in batches:
            streamed.add(batch)
        streamed.end_pass()
        passes += 1
    assert streamed.result() == stats.distribution(values), name
    assert passes <= 6


def test_rates_and_the_kept_limit():
    """n requests 1/r apart make rate r; a kept schedule's lag p99 limit is 1 ms or a tenth
    of the mean gap, whichever is larger."""
    duration = stats.schedule_duration_ns(100, 0, 99_000_000)      # 100 requests 1 ms apart
    assert stats.rates(100, 50, 25, duration) == pytest.approx(
        {"intended": 1000.0, "sent": 500.0, "answered": 250.0, "duration_s": 0.1})
    assert stats.kept_lag_limit_ns(1000.0) == 1_000_000
    assert stats.kept_lag_limit_ns(10.0) == 10_000_000
    verdict = stats.schedule_verdict(100, {"overload": 3}, 2_000_000, 1000.0)
    assert not verdict["kept"] and verdict["reasons"] == [
        "lag p99 2ms > 1ms", "3 of 100 requests never sent (overload 3)"]


@pytest.mark.parametrize("value, text", [
    (850, "850ns"), (12_345, "12.3µs"), (4_560_000, "4.56ms"), (1_234_000_000, "1.23s"),
    (-2_000, "-2µs"), (None, "-"), (float("nan"), "-"),
])
def test_durations_for_people(value, text):
    assert fmt.duration(value) == text


def test_shares_and_rates_for_people():
    """Shares as percentages with two decimals, rates with one and thousands separators; a
    missing value as the mark asked for."""
    assert fmt.share(0.012345) == "1.23%" and fmt.share(None) == "-"
    assert fmt.share(None, missing="–") == "–"
    assert fmt.rate(12345.67) == "12,345.7" and fmt.rate(None) == "-"

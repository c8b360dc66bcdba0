"""Arrival times inside each unit (replayer.generate.arrivals): every unit keeps its exact
count per function, and the instants follow the distribution asked for."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from replayer.generate.arrivals import generate_arrivals, unit_fractions
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, NS_PER_US


def counts_of(t_ns, func, n_funcs, n_units, unit_ns):
    """Invocations per function and unit, counted back from the arrivals."""
    c = np.zeros((n_funcs, n_units), dtype=np.int64)
    np.add.at(c, (func, t_ns // unit_ns), 1)
    return c


def test_exponential_is_a_poisson_process_conditioned_on_the_count():
    """exponential: given n arrivals in a unit, each is marginally uniform, each gap is
    Beta(1, n) and the k-th arrival Beta(k, n + 1 - k), as for a Poisson process; units of
    any size keep their exact count."""
    rng = np.random.Generator(np.random.PCG64(5))
    n = 6
    frac = unit_fractions(np.full(20000, n), "exponential", rng).reshape(-1, n)
    # Given n arrivals in [0, 1), a Poisson process puts them at n sorted uniforms: every
    # arrival is marginally uniform and every gap (first arrival included) is Beta(1, n).
    assert np.all(np.diff(frac, axis=1) >= 0)
    assert stats.kstest(frac.ravel(), "uniform").pvalue > 0.01
    gaps = np.diff(np.concatenate([np.zeros((len(frac), 1)), frac], axis=1), axis=1)
    for k in range(n):
        assert stats.kstest(gaps[:, k], stats.beta(1, n).cdf).pvalue > 0.01
    # The k-th arrival is Beta(k, n + 1 - k), the k-th order statistic.
    assert stats.kstest(frac[:, 2], stats.beta(3, n - 2).cdf).pvalue > 0.01
    # Units of different sizes stay independent and exact in count.
    sizes = np.array([0, 1, 3, 0, 50, 2])
    f = unit_fractions(sizes, "exponential", rng)
    assert f.size == sizes.sum() and np.all((f >= 0) & (f < 1))


def test_vswarm_exponential_is_not_poisson():
    """What vSwarm's generator does per invocation (the first of 1000 Exp(0.5) draws,
    min-max scaled) is far from uniform in the unit: its instants crowd the unit's start."""
    rng = np.random.Generator(np.random.PCG64(1))
    x = rng.exponential(2.0, size=(3000, 1000))
    v = (x[:, 0] - x.min(axis=1)) / (x.max(axis=1) - x.min(axis=1))
    assert stats.kstest(v, "uniform").pvalue < 1e-6
    assert v.mean() < 0.25


def test_uniform_and_equidistant_spacing():
    """uniform: independent uniform instants; equidistant: k / n of the unit, in whole
    microseconds as load.json writes them."""
    rng = np.random.Generator(np.random.PCG64(2))
    n = 8
    u = unit_fractions(np.full(5000, n), "uniform", rng)
    assert stats.kstest(u, "uniform").pvalue > 0.01
    s = np.sort(u.reshape(-1, n), axis=1)
    assert np.mean(np.diff(s, axis=1)) == pytest.approx(1 / (n + 1), rel=0.03)
    e = unit_fractions(np.array([4, 5]), "equidistant", rng)
    assert e.tolist() == [0, 0.25, 0.5, 0.75, 0, 0.2, 0.4, 0.6, 0.8]
    # In µs inside a minute, as written: offsets k * 60 s / n.
    t, f = generate_arrivals(np.array([[3], [0]]), MINUTE_NS, "equidistant", rng)
    assert (t // NS_PER_US).tolist() == [0, 20_000_000, 40_000_000] and f.tolist() == [0, 0, 0]


def test_same_microsecond_is_not_merged():
    """Two functions with equal counts and equidistant arrivals share every instant: both
    invocations are kept (vSwarm's generator keys a dict by time and keeps one)."""
    counts = np.array([[4, 2], [4, 2]])
    t, f = generate_arrivals(counts, NS_PER_S, "equidistant", np.random.Generator(np.random.PCG64(0)))
    assert t.size == 12 and np.array_equal(counts_of(t, f, 2, 2, NS_PER_S), counts)
    assert f.tolist()[:2] == [0, 1] and t[0] == t[1]


def test_arrivals_are_sorted_and_reproducible():
    """generate_arrivals gives the schedule sorted by time (ties by function), with every
    function's count in every unit; the same seed gives the same arrivals."""
    counts = np.array([[3, 0, 5], [1, 4, 0], [0, 0, 2]])
    for distribution in ("equidistant", "uniform", "exponential"):
        t, f = generate_arrivals(counts, NS_PER_S, distribution, np.random.default_rng(3))
        again = generate_arrivals(counts, NS_PER_S, distribution, np.random.default_rng(3))
        assert np.array_equal(t, again[0]) and np.array_equal(f, again[1])
        assert (np.diff(t) >= 0).all() and np.array_equal(counts_of(t, f, 3, 3, NS_PER_S), counts)
        assert (t % NS_PER_US == 0).all()
    with pytest.raises(ValueError, match="unknown distribution"):
        generate_arrivals(counts, NS_PER_S, "poisson", np.random.default_rng(3))

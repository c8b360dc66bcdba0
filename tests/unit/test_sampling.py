"""Sampling functions from a trace (replayer.generate.sampling): n functions whose invocation
rates and durations stay close to the whole trace's (KS distance), reproducible by seed."""
from __future__ import annotations

import numpy as np
import pytest

from replayer.errors import InputError
from replayer.generate.sampling import sample_functions


def test_all_functions_is_the_trace_itself():
    """Asking for every function takes them all, at distance 0."""
    rep = sample_functions(np.arange(10.0), np.arange(10.0), 10, np.random.default_rng(0))
    assert rep.rows.tolist() == list(range(10)) and rep.distance == 0


def test_a_sample_is_distinct_sorted_rows_close_to_the_trace():
    """n distinct rows, sorted, the same for the same seed; the reported KS distances are
    those of the rows chosen, and better than the worst of random picks."""
    rng = np.random.default_rng(1)
    rate, duration = rng.lognormal(0, 2, 300), rng.lognormal(3, 1, 300)
    rep = sample_functions(rate, duration, 30, np.random.default_rng(5))
    again = sample_functions(rate, duration, 30, np.random.default_rng(5))
    assert np.array_equal(rep.rows, again.rows)
    assert len(set(rep.rows.tolist())) == 30 and (np.diff(rep.rows) > 0).all()
    assert rep.population == 300 and rep.describe().startswith("sampled 30 of 300 functions")
    assert rep.distance < 0.1


@pytest.mark.parametrize("n", [0, 11])
def test_a_sample_size_beyond_the_trace_is_named(n):
    """--sample outside 1..functions is one line naming the option and the trace's size."""
    with pytest.raises(InputError, match=f"--sample {n}: must be between 1 and the trace's 10"):
        sample_functions(np.arange(10.0), np.arange(10.0), n, np.random.default_rng(0))

"""How fast `replayer gen azure` turns a trace into a load (pytest-benchmark; not pass/fail).

    pytest bench/bench_gen_azure.py --benchmark-only -q

- the whole vSwarm reference trace (250 functions, 150 minutes, 324k invocations), end to end
  in process: decode, map, arrivals, load.json + parquet + mapping CSV;
- arrivals alone, per distribution, on the reference counts;
- the same arrivals made the vSwarm loadgen's way (a Python loop per invocation and a dict
  per minute), for the ratio; ours keeps every invocation, that one loses same-µs ones;
- arrivals for a synthetic full-day-sized trace (20k functions x 60 minutes, ~12M requests),
  to show the per-request cost holds at scale.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from replayer.generate.arrivals import generate_arrivals
from replayer.generate.azure import AzureGenOptions, gen_azure_command
from replayer.schedules.schedule import MINUTE_NS
from replayer.generate.azure_dataset import read_trace

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "traces" / "azure-sample"


@pytest.fixture(scope="module")
def counts():
    return read_trace(SAMPLE).counts


def test_full_reference_trace_end_to_end(benchmark, tmp_path):
    opts = AzureGenOptions(trace=str(SAMPLE), profile=str(SAMPLE / "profile.json"),
                           output=str(tmp_path / "load.json"), duration=0, seed=1)
    benchmark.pedantic(gen_azure_command, args=(opts,), rounds=5, iterations=1)
    benchmark.extra_info["requests"] = int(read_trace(SAMPLE).counts.sum())


@pytest.mark.parametrize("distribution", ["equidistant", "uniform", "exponential"])
def test_arrivals_reference_trace(benchmark, counts, distribution):
    rng = np.random.Generator(np.random.PCG64(1))
    t, _ = benchmark(generate_arrivals, counts, MINUTE_NS, distribution, rng)
    assert t.size == int(counts.sum())


def _vswarm_style(counts):
    """vSwarm load_generator.py's uniform path: one random.uniform per invocation, sorted per
    function and minute, then merged per minute through a dict keyed by timestamp."""
    load = []
    n_funcs, n_units = counts.shape
    per_func = []
    for f in range(n_funcs):
        units = []
        for u in range(n_units):
            ts = sorted(random.uniform(0.0, 1.0) for _ in range(int(counts[f, u])))
            units.append([int(x * 1_000_000 * 60) for x in ts])
        per_func.append(units)
    for u in range(n_units):
        merged = {}
        for f in range(n_funcs):
            for t in per_func[f][u]:
                merged[t] = f
        keys = sorted(merged)
        load.append({"timestamp": keys, "endpoint": [merged[k] for k in keys]})
    return load


def test_arrivals_vswarm_style_baseline(benchmark, counts):
    random.seed(1)
    load = benchmark.pedantic(_vswarm_style, args=(counts,), rounds=3, iterations=1)
    kept = sum(len(u["timestamp"]) for u in load)
    benchmark.extra_info["lost_invocations"] = int(counts.sum()) - kept


def test_arrivals_synthetic_large(benchmark):
    rng = np.random.default_rng(0)
    # Heavy-tailed per-function rates, as in the dataset: most functions rare, a few very busy.
    rate = np.minimum(rng.pareto(1.2, 20_000) * 2, 5_000)
    big = rng.poisson(rate[:, None], size=(20_000, 60)).astype(np.int32)
    gen_rng = np.random.Generator(np.random.PCG64(1))
    t, _ = benchmark.pedantic(generate_arrivals, args=(big, MINUTE_NS, "exponential", gen_rng),
                              rounds=3, iterations=1)
    benchmark.extra_info["requests"] = int(t.size)

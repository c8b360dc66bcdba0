"""Arrival times inside each unit (minute or second) for per-unit invocation counts.

Exactly counts[f, u] invocations of function f fall in unit u; none is merged with another
at the same microsecond (vSwarm's generator keys a dict by timestamp and loses them).

- equidistant: k * T / n for k = 0..n-1 (vSwarm's spacing).
- uniform: n independent uniform instants in [0, T) (vSwarm's default).
- exponential: a Poisson process conditioned on n arrivals in [0, T): draw n + 1 exponential
  gaps E_1..E_{n+1} and put arrival k at T * (E_1 + ... + E_k) / (E_1 + ... + E_{n+1}).
  Conditioned on its count a homogeneous Poisson process is exactly this (its arrivals are
  the order statistics of n uniforms), so every unit has the trace's count and Poisson
  spacing inside it. vSwarm's "exponential" takes the first of 1000 exponential draws after
  min-max scaling them to [0, 1], which is not a Poisson process: its instants crowd the
  start of each unit (mean near 0.13 T instead of 0.5 T).

Everything is vectorised numpy over chunks of units; offsets are whole microseconds (the
load.json resolution) so load.json and the columnar schedule hold the same instants. The
random stream depends only on the seed and the counts: same seed, same arrivals.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from replayer.schedules.schedule import NS_PER_US

DISTRIBUTIONS = ("equidistant", "uniform", "exponential")
CHUNK_INVOCATIONS = 1 << 22   # bounds the temporary arrays (and cumulative-sum rounding)


def unit_fractions(sizes: np.ndarray, distribution: str, rng: np.random.Generator) -> np.ndarray:
    """Positions in [0, 1) for groups of `sizes` invocations laid end to end (group-major);
    within a group they are ascending for equidistant and exponential, unordered for uniform."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total == 0:
        return np.empty(0, dtype=np.float64)
    starts = np.cumsum(sizes) - sizes                      # first row of each group
    group = np.repeat(np.arange(sizes.size), sizes)
    rank = np.arange(total, dtype=np.int64) - starts[group]  # position inside the group
    if distribution == "equidistant":
        return rank / sizes[group]
    if distribution == "uniform":
        return rng.random(total)
    if distribution == "exponential":
        nz = sizes > 0
        # Group g owns n_g + 1 gaps; gap slot of arrival k is starts[g] + g' + k, where g' counts
        # the non-empty groups before g (each adds its one extra, closing gap).
        extra_before = np.cumsum(nz) - nz
        gaps = rng.standard_exponential(total + int(nz.sum()))
        cs = np.cumsum(gaps)
        first_slot = starts + extra_before                  # slot of the group's first gap
        base = np.where(first_slot > 0, cs[np.maximum(first_slot - 1, 0)], 0.0)
        span = cs[np.minimum(first_slot + sizes, cs.size - 1)] - base
        slot = first_slot[group] + rank
        frac = (cs[slot] - base[group]) / span[group]
        return np.minimum(frac, np.nextafter(1.0, 0.0))    # never the next unit's instant 0
    raise ValueError(f"unknown distribution {distribution!r}; use one of {', '.join(DISTRIBUTIONS)}")


def _chunks(counts: np.ndarray) -> Iterator[tuple[int, int]]:
    """Unit ranges [u0, u1) of about CHUNK_INVOCATIONS invocations (at least one unit)."""
    per_unit = counts.sum(axis=0, dtype=np.int64)
    n_units = per_unit.size
    u0 = 0
    cum = np.cumsum(per_unit)
    while u0 < n_units:
        before = int(cum[u0 - 1]) if u0 else 0
        u1 = int(np.searchsorted(cum, before + CHUNK_INVOCATIONS, side="right"))
        u1 = min(max(u1, u0 + 1), n_units)
        yield u0, u1
        u0 = u1


def iter_arrivals(counts: np.ndarray, unit_ns: int, distribution: str,
                  rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(t_ns int64, function int32) per chunk of units, each sorted by time then function;
    chunks come in time order, so concatenating them gives the sorted schedule."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}")
    counts = np.asarray(counts)
    n_funcs = counts.shape[0]
    unit_us = unit_ns // NS_PER_US
    for u0, u1 in _chunks(counts):
        block = np.ascontiguousarray(counts[:, u0:u1].T, dtype=np.int64)  # [units, functions]
        sizes = block.ravel()
        frac = unit_fractions(sizes, distribution, rng)
        cell = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        unit = u0 + cell // n_funcs
        func = (cell % n_funcs).astype(np.int32)
        offset_us = np.floor(frac * unit_us).astype(np.int64)
        t_ns = (unit * unit_us + offset_us) * NS_PER_US
        # Rows are unit-major then function-major: a stable sort by time breaks ties by function.
        order = np.argsort(t_ns, kind="stable")
        yield t_ns[order], func[order]


def generate_arrivals(counts: np.ndarray, unit_ns: int, distribution: str,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    parts = list(iter_arrivals(counts, unit_ns, distribution, rng))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int32)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

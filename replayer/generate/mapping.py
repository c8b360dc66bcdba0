"""Proxy mapping: each trace function gets the benchmark function (proxy) whose profile is
closest, by the vSwarm loadgen's measure so the choice matches it: the Euclidean norm of the
relative differences of 75th-percentile memory and duration,

    distance = sqrt(((m_t - m_p) / m_t)^2 + ((d_t - d_p) / d_t)^2)    (m_t, d_t = 0 -> 0.01)

With unique=True the mapping is one-to-one, solved as a linear sum assignment over the whole
distance matrix (scipy), when there are at least as many proxies as functions; otherwise, or
if the solver fails, every function gets its closest proxy, as vSwarm does.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.jsonfile import read_json

CLOSEST, ASSIGNMENT = "closest", "assignment"


@dataclass
class Profiles:
    """The proxies of a vSwarm profile.json (key -> {memory, duration, cpu percentiles, yaml})."""
    names: list[str]
    memory_p75_mb: np.ndarray
    duration_p75_ms: np.ndarray
    cpu_p75: np.ndarray          # nan where the profile has no cpu section
    yaml: list[str | None]
    source: str = ""

    def __len__(self) -> int:
        return len(self.names)


def _p75(path, name, entry, section) -> float:
    sec = entry.get(section)
    if not isinstance(sec, dict) or "75-percentile" not in sec:
        raise InputError(f"{path}: proxy {name!r}: missing \"{section}\": {{\"75-percentile\": ...}}; "
                         "profile.json is the vSwarm profiler's output")
    v = sec["75-percentile"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InputError(f"{path}: proxy {name!r} field {section}.75-percentile: {v!r} is not a "
                         "non-negative number")
    return float(v)


def load_profiles(path: Path | str) -> Profiles:
    path = Path(path)
    data = read_json(path, "profile", "-p/--profile names the vSwarm profiler's profile.json")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected a JSON object of proxy name -> profile with at least "
                         "one proxy")
    names, mem, dur, cpu, yaml = [], [], [], [], []
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: proxy {name!r}: expected an object with memory and "
                             "duration percentiles")
        names.append(name)
        mem.append(_p75(path, name, entry, "memory"))
        dur.append(_p75(path, name, entry, "duration"))
        c = entry.get("cpu")
        cpu.append(float(c["75-percentile"]) if isinstance(c, dict)
                   and isinstance(c.get("75-percentile"), (int, float)) else math.nan)
        y = entry.get("yaml")
        yaml.append(y if isinstance(y, str) and y else None)
    return Profiles(names=names, memory_p75_mb=np.asarray(mem), duration_p75_ms=np.asarray(dur),
                    cpu_p75=np.asarray(cpu), yaml=yaml, source=str(path))


def distance_matrix(memory_mb: np.ndarray, duration_ms: np.ndarray, profiles: Profiles) -> np.ndarray:
    """[functions, proxies] distances (vSwarm's get_error, vectorised)."""
    m = np.where(memory_mb == 0, 0.01, memory_mb).astype(np.float64)[:, None]
    d = np.where(duration_ms == 0, 0.01, duration_ms).astype(np.float64)[:, None]
    dm = (m - profiles.memory_p75_mb[None, :]) / m
    dd = (d - profiles.duration_p75_ms[None, :]) / d
    return np.sqrt(dm * dm + dd * dd)


@dataclass
class Mapping:
    proxy: np.ndarray        # int32 [functions]: index into profiles.names
    distance: np.ndarray     # float64 [functions]
    method: str              # CLOSEST or ASSIGNMENT
    note: str = ""           # why the one-to-one mapping was not used, if it was asked for


def map_functions(memory_mb: np.ndarray, duration_ms: np.ndarray, profiles: Profiles,
                  unique: bool = False) -> Mapping:
    cost = distance_matrix(memory_mb, duration_ms, profiles)
    n_f, n_p = cost.shape
    note = ""
    if unique:
        if n_f > n_p:
            note = (f"one-to-one mapping impossible: {n_f} trace functions but {n_p} proxies; "
                    "using the closest proxy for each function")
        else:
            from scipy.optimize import linear_sum_assignment
            try:
                rows, cols = linear_sum_assignment(cost)
            except ValueError as exc:
                note = f"one-to-one mapping failed ({exc}); using the closest proxy for each function"
            else:
                proxy = np.empty(n_f, dtype=np.int32)
                proxy[rows] = cols
                return Mapping(proxy=proxy, distance=cost[np.arange(n_f), proxy],
                               method=ASSIGNMENT)
    # argmin takes the first of equal distances, as vSwarm's strict '<' scan does.
    proxy = np.argmin(cost, axis=1).astype(np.int32)
    return Mapping(proxy=proxy, distance=cost[np.arange(n_f), proxy], method=CLOSEST, note=note)


MAPPING_COLUMNS = ["function", "HashOwner", "HashApp", "HashFunction", "Trigger", "proxy",
                   "endpoint", "distance", "method", "memory_p75_mb", "duration_p75_ms",
                   "proxy_memory_p75_mb", "proxy_duration_p75_ms", "invocations"]


def write_mapping_csv(path: Path | str, trace, profiles: Profiles, mapping: Mapping,
                      endpoints: list[str]) -> None:
    """One row per trace function: which proxy stands in for it, at what distance."""
    totals = trace.counts.sum(axis=1, dtype=np.int64)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MAPPING_COLUMNS)
        for i in range(len(trace)):
            p = int(mapping.proxy[i])
            w.writerow([trace.ids[i], trace.owner[i], trace.app[i], trace.function[i],
                        trace.trigger[i], profiles.names[p], endpoints[i],
                        f"{mapping.distance[i]:.6g}", mapping.method,
                        f"{trace.memory_p75_mb[i]:.6g}", f"{trace.duration_p75_ms[i]:.6g}",
                        f"{profiles.memory_p75_mb[p]:.6g}", f"{profiles.duration_p75_ms[p]:.6g}",
                        int(totals[i])])

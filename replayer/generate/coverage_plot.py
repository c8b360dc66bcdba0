"""`replayer plot`: how well the proxies cover a trace, as PNG files a person can read.

- memory.png, duration.png: the trace functions' 75th-percentile memory (duration) as a
  histogram on log-spaced bins, the proxies' on the same bins, both as a share of their
  population so the shapes compare; bins with trace functions and no proxy stand out.
- profiles.png: memory against duration (log-log) for trace functions and proxies, the
  two features the mapping uses.
- invocations.png: the histogram of per-function per-unit invocation counts, and the
  trace's total invocations per unit over time.
- proxy-cpu.png: the proxies' 75th-percentile CPU, when profile.json has it.
- distance.png: each function's distance to its closest proxy (the mapping's quality).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.options import opt

DPI = 120
SIZE = (10, 6)


@dataclass
class PlotOptions:
    """Histograms of the trace functions' and the proxies' memory and duration, the
    functions' per-unit invocation counts and their distance to the closest proxy: how well a
    set of proxies covers a trace. Flags as in the vSwarm loadgen's plot command."""

    trace: str = opt("trace", "directory with invocations.csv, durations.csv and memory.csv",
                     short="t", metavar="DIR", env=False)
    profile: str = opt("profile.json", "the proxies' profile (vSwarm profiler output)", short="p",
                       metavar="PATH", env=False)
    png_folder: str = opt("png", "folder for the PNG files (created if missing)", short="o",
                          alias="png_folder", metavar="DIR", env=False)
    minute: bool = opt(True, "the trace counts invocations per minute (false: per second)",
                       short="m", env=False)
    drop_incomplete: bool = opt(False, "leave out functions missing from one of the three files "
                                "instead of failing", action="store_true", env=False)
    dbg: bool = opt(False, "debug messages", alias="dbg", env=False)


def _log_bins(*arrays: np.ndarray, per_decade: int = 5) -> np.ndarray:
    vals = np.concatenate([a[np.isfinite(a) & (a > 0)] for a in arrays])
    if vals.size == 0:
        return np.array([0.1, 1.0])
    lo = math.floor(math.log10(vals.min()))
    hi = math.ceil(math.log10(vals.max()))
    hi = max(hi, lo + 1)
    return np.logspace(lo, hi, (hi - lo) * per_decade + 1)


def _positive(a: np.ndarray) -> np.ndarray:
    # Log bins cannot hold 0: count it in the lowest bin, as vSwarm's plot does (0 -> 0.01).
    return np.where(a > 0, a, 0.01)


def _compare(plt, path: Path, trace_vals: np.ndarray, proxy_vals: np.ndarray, title: str,
             xlabel: str) -> None:
    trace_vals, proxy_vals = _positive(trace_vals), _positive(proxy_vals)
    bins = _log_bins(trace_vals, proxy_vals)
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    wt = np.full(trace_vals.size, 100.0 / max(trace_vals.size, 1))
    wp = np.full(proxy_vals.size, 100.0 / max(proxy_vals.size, 1))
    ax.hist(trace_vals, bins=bins, weights=wt, color="tab:blue", alpha=0.6, edgecolor="black",
            label=f"trace functions (n={trace_vals.size})")
    ax.hist(proxy_vals, bins=bins, weights=wp, histtype="step", linewidth=2.2, color="tab:red",
            label=f"proxies (n={proxy_vals.size})")
    t_counts, _ = np.histogram(trace_vals, bins)
    p_counts, _ = np.histogram(proxy_vals, bins)
    uncovered = int(t_counts[(p_counts == 0)].sum())
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of functions (%)")
    ax.set_title(f"{title}\n{uncovered} of {trace_vals.size} trace functions fall in bins "
                 "with no proxy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_command(opts: PlotOptions) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from replayer.generate.mapping import load_profiles, map_functions
    from replayer.generate.azure_dataset import read_trace

    trace = read_trace(opts.trace, drop_incomplete=opts.drop_incomplete)
    profiles = load_profiles(opts.profile)
    out = Path(opts.png_folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the PNG folder ({exc.strerror}); check -o") from None
    unit = "minute" if opts.minute else "second"
    written = []

    p = out / "memory.png"
    _compare(plt, p, trace.memory_p75_mb, profiles.memory_p75_mb,
             "Memory: 75th percentile of trace functions and proxies", "memory (MB, log scale)")
    written.append(p)
    p = out / "duration.png"
    _compare(plt, p, trace.duration_p75_ms, profiles.duration_p75_ms,
             "Duration: 75th percentile of trace functions and proxies",
             "execution time (ms, log scale)")
    written.append(p)

    p = out / "profiles.png"
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    ax.scatter(_positive(trace.memory_p75_mb), _positive(trace.duration_p75_ms), s=18,
               color="tab:blue", alpha=0.6, label=f"trace functions (n={len(trace)})")
    ax.scatter(_positive(profiles.memory_p75_mb), _positive(profiles.duration_p75_ms), s=22,
               marker="x", color="tab:red", label=f"proxies (n={len(profiles)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("memory, 75th percentile (MB, log scale)")
    ax.set_ylabel("duration, 75th percentile (ms, log scale)")
    ax.set_title("Function profiles: what the proxy mapping compares")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(p)
    plt.close(fig)
    written.append(p)

    p = out / "invocations.png"
    counts = trace.counts
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 6), dpi=DPI)
    nz = counts[counts > 0].astype(np.float64)
    zero_share = 100.0 * (1 - nz.size / max(counts.size, 1))
    a1.hist(nz, bins=_log_bins(nz), color="tab:blue", edgecolor="black")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel(f"invocations of one function in one {unit} (log scale)")
    a1.set_ylabel(f"function-{unit}s (log scale)")
    a1.set_title(f"Per-function invocations per {unit}\n({zero_share:.1f}% of function-{unit}s "
                 "have none and are not shown)")
    a1.grid(True, which="both", alpha=0.3)
    totals = counts.sum(axis=0, dtype=np.int64)
    a2.plot(trace.unit_labels, totals, color="tab:blue", linewidth=1.2)
    a2.set_xlabel(f"trace {unit} (column number)")
    a2.set_ylabel(f"invocations per {unit}, all functions")
    a2.set_title(f"Total invocations per {unit} ({int(totals.sum())} in all)")
    a2.set_ylim(bottom=0)
    a2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(p)
    plt.close(fig)
    written.append(p)

    mapping = map_functions(trace.memory_p75_mb, trace.duration_p75_ms, profiles, unique=False)
    p = out / "distance.png"
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    d = mapping.distance
    ax.hist(d, bins=np.linspace(0, max(float(d.max()), 1e-9) * 1.0001, 31), color="tab:green",
            edgecolor="black")
    ax.set_xlabel("distance to the closest proxy (relative memory and duration error)")
    ax.set_ylabel("trace functions")
    ax.set_title(f"Mapping quality: median distance {float(np.median(d)):.3f}, "
                 f"{int((d <= 0.5).sum())} of {d.size} functions within 0.5")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(p)
    plt.close(fig)
    written.append(p)

    cpu = profiles.cpu_p75[np.isfinite(profiles.cpu_p75)]
    if cpu.size:
        p = out / "proxy-cpu.png"
        fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
        ax.hist(_positive(cpu), bins=_log_bins(_positive(cpu)), color="tab:red", edgecolor="black")
        ax.set_xscale("log")
        ax.set_xlabel("CPU utilisation, 75th percentile (profiler units, log scale)")
        ax.set_ylabel("proxies")
        ax.set_title(f"CPU of the proxies (n={cpu.size})")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(p)
        plt.close(fig)
        written.append(p)
    print(f"wrote {len(written)} plots to {out}: {', '.join(x.name for x in written)}")
    return 0

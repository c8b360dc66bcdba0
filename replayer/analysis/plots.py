"""The report's pictures, as PNG bytes (matplotlib, Agg backend: no display needed).

latency_over_time  latency percentile bands per time bin (by send time), log scale
rate_over_time     intended vs sent requests per second (and successful completions)
send_lag           send-lag histogram and CDF, with the 100 µs and 1 ms marks
lag_over_time      send lag over time (p50, p99, max per time bin) and every late send as a
                   dot coloured by its cause (a CPU stall, a connection wait, ...), the
                   verdict's max lag as a line
latency_cdf        latency CDF per endpoint and its tail (1 - CDF), log scales
errors_over_time   requests that failed per second, stacked by error kind
perf_over_time     the machine's and the --monitor-pid processes' CPU, memory and I/O
                   (perf.jsonl), on the same time axis
Times on the x axes are seconds since the run's start; each change made on the control port
(control.jsonl) is a dash-dotted line on every plot over time, with what it set.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter  # noqa: E402

from replayer.analysis import fmt  # noqa: E402

NICE_BINS_S = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
MAX_BINS = 150
MAX_CDF_SERIES = 8
_FIGSIZE = (10, 4.6)


def bin_width(span_s: float) -> float:
    for w in NICE_BINS_S:
        if span_s / w <= MAX_BINS:
            return w
    return NICE_BINS_S[-1] * np.ceil(span_s / MAX_BINS / NICE_BINS_S[-1])


def _plain_ticks(fig) -> None:
    """Log axes labelled 0.1, 1, 10 rather than 10^-1, 10^0, 10^1."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_formatter(fmt)
                axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _png(fig) -> bytes:
    _plain_ticks(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12,
            color="0.4")


def _mark_changes(ax, marks) -> None:
    """The live changes (seconds since the start, what they set) as vertical lines."""
    for x, label in marks or ():
        ax.axvline(x, color="tab:purple", ls="-.", lw=1, alpha=0.8)
        ax.text(x, 0.98, f" {label}", transform=ax.get_xaxis_transform(), rotation=90,
                va="top", ha="left", fontsize=7, color="tab:purple")


def change_marks(changes: list[dict], origin_ns: int) -> list[tuple[float, str]]:
    """control.jsonl's changes as (seconds since origin_ns, a short label)."""
    marks = []
    for entry in changes:
        change = entry.get("change")
        if entry.get("event") != "change" or not isinstance(change, dict):
            continue
        if not change:
            label = "paused (all)"
        else:
            parts = []
            for key, value in change.items():
                if key == "paused":
                    parts.append("paused" if value else "resumed")
                elif key == "rate":
                    parts.append(f"rate {value:g}" if isinstance(value, (int, float)) else "rate")
                else:
                    parts.append(f"{key} weights")
            label = ", ".join(parts)
        marks.append((max(entry.get("t_ns", origin_ns) - origin_ns, 0) / 1e9, label))
    return marks


def binned_percentiles(bins: np.ndarray, values: np.ndarray, nbins: int, qs) -> np.ndarray:
    """Nearest-rank percentiles of values within each bin: shape (len(qs), nbins), NaN where
    a bin is empty."""
    out = np.full((len(qs), nbins), np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, bins))
    v = values[order]
    counts = np.bincount(bins, minlength=nbins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    for i, q in enumerate(qs):
        k = np.maximum(np.ceil(q / 100.0 * counts).astype(np.int64) - 1, 0)
        out[i, has] = v[(starts + k)[has]]
    return out


def latency_over_time(t_s, lat_ms, lat_int_ms, width, nbins, marks=None) -> bytes:
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    if lat_ms.size == 0:
        _empty(ax, "no successful requests")
    else:
        bins = np.clip((t_s / width).astype(np.int64), 0, nbins - 1)
        qs = (50, 90, 99, 99.9, 100)
        p = binned_percentiles(bins, lat_ms, nbins, qs)
        x = (np.arange(nbins) + 0.5) * width
        ax.fill_between(x, p[0], p[1], color="tab:blue", alpha=0.45, step="mid", label="p50–p90")
        ax.fill_between(x, p[1], p[2], color="tab:blue", alpha=0.25, step="mid", label="p90–p99")
        ax.fill_between(x, p[2], p[3], color="tab:blue", alpha=0.12, step="mid", label="p99–p99.9")
        ax.plot(x, p[0], color="tab:blue", lw=1.2, drawstyle="steps-mid", label="p50")
        ax.plot(x, p[4], color="tab:red", lw=0.8, drawstyle="steps-mid", label="max")
        pi = binned_percentiles(bins, lat_int_ms, nbins, (99,))
        ax.plot(x, pi[0], color="black", lw=1, ls="--", drawstyle="steps-mid",
                label="p99 from intended send")
        ax.set_yscale("log")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
    _mark_changes(ax, marks)
    ax.set_title(f"Latency over time (successful requests, {width:g} s bins by send time)")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def rate_over_time(sched_s, sent_s, ok_done_s, width, nbins, marks=None) -> bytes:
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    x = np.arange(nbins + 1) * width
    for data, label, style in ((sched_s, "intended (scheduled)", dict(color="black", lw=1.6, ls="--")),
                               (sent_s, "sent", dict(color="tab:blue", lw=1.2)),
                               (ok_done_s, "completed successfully", dict(color="tab:green", lw=1))):
        counts = np.bincount(np.clip((data / width).astype(np.int64), 0, nbins - 1),
                             minlength=nbins) if data.size else np.zeros(nbins)
        ax.stairs(counts / width, x, label=label, **style)
    _mark_changes(ax, marks)
    ax.set_title(f"Requests per second: intended, sent and answered ({width:g} s bins)")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower center", fontsize=8, ncol=3)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def send_lag(lag_ns: np.ndarray) -> bytes:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=_FIGSIZE)
    if lag_ns.size == 0:
        _empty(ax1, "no request was sent")
        _empty(ax2, "no request was sent")
    else:
        early = int(np.count_nonzero(lag_ns < 0))
        us = np.maximum(lag_ns, 1) / 1e3      # early sends (negative lag) show at 1 ns
        lo, hi = max(us.min(), 1e-3), max(us.max(), 1e-2)
        edges = np.logspace(np.log10(lo), np.log10(hi) + 1e-9, 60)
        ax1.hist(us, bins=edges, color="tab:blue")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_title("Send lag histogram" + (f" ({early:,} sent early, shown at 1 ns)" if early else ""))
        ax1.set_xlabel("lag: sent - scheduled (µs)")
        ax1.set_ylabel("requests")
        s = np.sort(us)
        q = np.linspace(0, 1, min(s.size, 1000))
        xs = s[np.minimum((q * (s.size - 1)).astype(np.int64), s.size - 1)]
        ax2.plot(xs, q, color="tab:blue", label="CDF")
        ax2.set_xscale("log")
        ax2.set_title("Send lag CDF")
        ax2.set_xlabel("lag: sent - scheduled (µs)")
        ax2.set_ylabel("fraction of sent requests")
        for mark, label in ((100, "100 µs"), (1000, "1 ms")):
            for ax in (ax1, ax2):
                ax.axvline(mark, color="tab:red", ls=":", lw=1)
            ax2.text(mark, 0.02, f" {label}", color="tab:red", fontsize=8)
        ax2.legend(loc="upper left", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# Each cause of a late send (stats.CAUSES) in its own colour.
CAUSE_COLOURS = {"stall": "tab:red", "connection": "tab:orange", "inflight": "tab:purple",
                 "burst": "tab:blue", "unknown": "0.45"}
MAX_LATE_DOTS = 20_000


def lag_over_time(t_s: np.ndarray, lag_ns: np.ndarray, cause: np.ndarray | None,
                  max_lag_ns: float, width: float, nbins: int, marks=None) -> bytes:
    """Send lag (µs, log) by scheduled time: per-bin p50, p99 and max of every send, and each
    send later than max_lag_ns as a dot coloured by its cause (`cause`: stats.CAUSES names,
    None where the records do not say). At most MAX_LATE_DOTS dots: those of the largest lags."""
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    if lag_ns.size == 0:
        _empty(ax, "no request was sent")
    else:
        us = np.maximum(lag_ns, 1) / 1e3
        bins = np.clip((t_s / width).astype(np.int64), 0, nbins - 1)
        p = binned_percentiles(bins, us, nbins, (50, 99, 100))
        x = (np.arange(nbins) + 0.5) * width
        ax.plot(x, p[0], color="0.3", lw=1, drawstyle="steps-mid", label="p50")
        ax.plot(x, p[1], color="black", lw=1.2, drawstyle="steps-mid", label="p99")
        ax.plot(x, p[2], color="0.6", lw=0.8, ls="--", drawstyle="steps-mid", label="max")
        late = np.flatnonzero(lag_ns > max_lag_ns)
        names = np.full(late.size, "unknown", object) if cause is None else cause[late]
        keep = (np.sort(np.argsort(lag_ns[late], kind="stable")[-MAX_LATE_DOTS:])
                if late.size > MAX_LATE_DOTS else slice(None))
        for name, colour in CAUSE_COLOURS.items():
            mine = names == name
            dots = late[keep][mine[keep]]
            if dots.size:
                ax.scatter(t_s[dots], us[dots], s=8, color=colour, alpha=0.8, linewidths=0,
                           zorder=3, label=f"late: {name} ({int(np.count_nonzero(mine)):,})")
        ax.axhline(max_lag_ns / 1e3, color="tab:red", ls=":", lw=1)
        ax.text(0, max_lag_ns / 1e3, f" max lag {fmt.duration(max_lag_ns)}", color="tab:red",
                fontsize=8, va="bottom")
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8, ncol=3)
    _mark_changes(ax, marks)
    ax.set_title(f"Send lag over time ({width:g} s bins by scheduled time), late sends by cause")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("lag: sent - scheduled (µs)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def latency_cdf(series: dict[str, np.ndarray]) -> bytes:
    """series: label -> latencies in ms (the first is drawn thicker: overall)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=_FIGSIZE)
    drawn = 0
    for i, (label, values) in enumerate(series.items()):
        if values.size == 0:
            continue
        s = np.sort(values)
        n = s.size
        # Even steps for the body, log steps into the tail down to the slowest request.
        idx = np.unique(np.concatenate([np.linspace(0, n - 1, 1000),
                                        n - np.logspace(np.log10(n), 0, 1000)]).astype(np.int64))
        idx = idx[(idx >= 0) & (idx < n)]
        xs = s[idx]
        q = idx / n
        kw = dict(lw=2.2, color="black") if i == 0 else dict(lw=1)
        ax1.plot(xs, q, label=f"{label} (n={s.size:,})", **kw)
        tail = 1 - q
        ax2.plot(xs, tail, **kw)
        drawn += 1
    if not drawn:
        _empty(ax1, "no successful requests")
        _empty(ax2, "no successful requests")
    else:
        ax1.set_xscale("log")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax1.legend(loc="lower right", fontsize=7)
    ax1.set_title("Latency CDF per endpoint")
    ax1.set_xlabel("latency: done - sent (ms)")
    ax1.set_ylabel("fraction of successful requests")
    ax2.set_title("Latency tail (1 - CDF)")
    ax2.set_xlabel("latency: done - sent (ms)")
    ax2.set_ylabel("fraction slower")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def errors_over_time(t_s, error_codes, error_names, width, nbins, marks=None) -> bytes:
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    x = np.arange(nbins) * width
    bottom = np.zeros(nbins)
    drawn = 0
    for code, name in enumerate(error_names):
        if name == "ok":
            continue
        sel = error_codes == code
        if not sel.any():
            continue
        counts = np.bincount(np.clip((t_s[sel] / width).astype(np.int64), 0, nbins - 1),
                             minlength=nbins) / width
        ax.bar(x, counts, width=width, bottom=bottom, align="edge", label=f"{name} ({int(sel.sum()):,})")
        bottom += counts
        drawn += 1
    if drawn:
        ax.legend(loc="upper right", fontsize=8)
    else:
        _empty(ax, "no errors")
        ax.set_xlim(0, max(nbins * width, 1))
    _mark_changes(ax, marks)
    ax.set_title(f"Errors over time (by scheduled time, {width:g} s bins)")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("failed requests per second")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _rate(t_s: np.ndarray, values: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a cumulative counter between samples (where both are known)."""
    v = np.array([np.nan if x is None else x for x in values], float)
    dt = np.diff(t_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.diff(v) / np.where(dt > 0, dt, np.nan)
    return t_s[1:], r


def perf_over_time(samples: list[dict], origin_ns: int, x_end: float, marks=None) -> bytes:
    """perf.jsonl: CPU (% of one CPU; the machine's in % of all), RSS, and disk and network
    I/O rates, over time since origin_ns."""
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 8.4), sharex=True)
    t = np.array([(s["t_ns"] - origin_ns) / 1e9 for s in samples], float)
    machine = [s.get("machine") or {} for s in samples]
    ax1.plot(t, [m.get("cpu_percent") for m in machine], color="black", lw=1.2,
             label="machine (% of all CPUs)")
    pids = sorted({p["pid"] for s in samples for p in s.get("processes", []) if "pid" in p})
    for pid in pids:
        rows = [(ti, p) for ti, s in zip(t, samples) for p in s.get("processes", [])
                if p.get("pid") == pid and not p.get("gone")]
        if not rows:
            continue
        name = rows[0][1].get("name") or ""
        tp = np.array([ti for ti, _ in rows])
        ax1.plot(tp, [np.nan if p.get("cpu_percent") is None else p["cpu_percent"] for _, p in rows],
                 lw=1, label=f"{name} {pid}")
        ax2.plot(tp, [p.get("rss_bytes", 0) / 1e6 for _, p in rows], lw=1, label=f"{name} {pid}")
        for key, style in (("read_bytes", "-"), ("write_bytes", "--")):
            x, r = _rate(tp, [p.get(key) for _, p in rows])
            if np.isfinite(r).any():
                ax3.plot(x, r / 1e6, ls=style, lw=1, label=f"{name} {pid} disk {key[:-6]}")
    for key, label in (("net_sent_bytes", "machine net sent"), ("net_recv_bytes", "machine net received"),
                       ("disk_read_bytes", "machine disk read"), ("disk_write_bytes", "machine disk write")):
        x, r = _rate(t, [m.get(key) for m in machine])
        if np.isfinite(r).any():
            ax3.plot(x, r / 1e6, lw=0.8, alpha=0.7, label=label)
    ax1.set_ylabel("CPU (%)")
    ax2.set_ylabel("RSS (MB)")
    ax3.set_ylabel("I/O (MB/s)")
    ax3.set_xlabel("time since start (s)")
    ax1.set_title("Monitored processes and the machine (perf.jsonl)")
    for ax in (ax1, ax2, ax3):
        _mark_changes(ax, marks)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax3.set_xlim(0, max(x_end, float(t.max()) if t.size else 0.0, 1e-3))
    fig.tight_layout()
    return _png(fig)


def make_all(c, summary: dict, changes: list[dict] | None = None,
             perf: list[dict] | None = None) -> dict[str, bytes]:
    """Every picture of the report, keyed by file stem. `c` is the model.Columns of the
    requests to draw (warm-up already left out, or not); `changes`, the run's control.jsonl
    (marked on every plot over time); `perf`, its perf.jsonl samples (their own plot)."""
    origin = summary["start_ns"]
    if c.n:
        t_end = max(int(c.scheduled_ns.max()),
                    int(c.done_ns[c.has_done].max()) if c.has_done.any() else 0)
        span_s = max((t_end - origin) / 1e9, 1e-3)
    else:
        span_s = 1.0
    width = bin_width(span_s)
    nbins = int(np.ceil(span_s / width)) + 1
    rel = lambda ns: np.maximum(ns - origin, 0) / 1e9  # noqa: E731
    marks = change_marks(changes or [], origin)
    ok = c.ok
    lat_ms = c.latency / 1e6
    lat_int_ms = c.latency_intended / 1e6
    images = {
        "latency_over_time": latency_over_time(rel(c.sent_ns[ok]), lat_ms, lat_int_ms, width,
                                               nbins, marks),
        "rate_over_time": rate_over_time(rel(c.scheduled_ns), rel(c.sent_ns[c.has_sent]),
                                         rel(c.done_ns[ok]), width, nbins, marks),
        "send_lag": send_lag(c.lag),
    }
    sent = c.sent
    causes = None
    if c.late_cause is not None:
        names = np.array([n if n in CAUSE_COLOURS else "unknown" for n in c.late_causes] + ["unknown"],
                         object)
        causes = names[c.late_cause[sent]]          # -1 (null) takes the last: unknown
    images["lag_over_time"] = lag_over_time(rel(c.scheduled_ns[sent]), c.lag, causes,
                                            summary["verdict"]["max_lag_ns"], width, nbins,
                                            marks)
    series = {"all endpoints": lat_ms}
    by_count = sorted(((int(np.count_nonzero(c.target[ok] == t)), t) for t in range(len(c.targets))),
                      reverse=True)
    for n, t in by_count[:MAX_CDF_SERIES]:
        if n:
            series[c.targets[t]] = lat_ms[c.target[ok] == t]
    images["latency_cdf"] = latency_cdf(series)
    images["errors_over_time"] = errors_over_time(rel(c.scheduled_ns), c.error, c.errors, width,
                                                  nbins, marks)
    if perf:
        images["perf_over_time"] = perf_over_time(perf, origin, nbins * width, marks)
    return images

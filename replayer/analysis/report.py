"""`replayer report` and `replayer compare`: exact numbers from a run's records.

summarize() turns records into a summary dict (per endpoint, per class and overall: counts by
status and error kind, intended, sent and answered rates, send lag and latency percentiles, SLO
attainment, the fidelity check, and the failure messages per error kind). format_summary()
prints it as a compact table; the report command also writes summary.json, PNG plots, one
self-contained HTML page and HdrHistogram logs. Percentiles are exact, nearest rank (see
replayer.analysis.stats); the report loads the columns it needs (peak about 200 bytes per measured
record: 10M records in 2 GB), export streams instead.

Definitions (also written into summary.json):
  lag                sent - scheduled, for requests that were sent
  latency            done - sent, for successful requests (error "ok")
  latency_intended   done - scheduled, for successful requests (free of coordinated omission)
  slo_attainment     share of the class's requests that succeeded with latency_intended <= SLO
                     (requests that failed or were never sent count as missed)
  rates              requests per second of the schedule's duration (stats.rates): the same
                     definition as the run's own summary, over the requests counted here
  fidelity           send lag against the schedule, and whether every request was sent
                     (stats.lag_fidelity); the schedule was kept when all were sent and lag
                     p99 <= max(1 ms, 10% of the mean gap between scheduled sends)
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replayer.analysis import stats
from replayer.errors import InputError
from replayer.analysis.summary import failure_details, format_failures, format_rate_line
from replayer.analysis.export import class_table, load_meta
from replayer.analysis.records import iter_batches
from replayer.options import opt

NEEDED_COLUMNS = ["worker", "target", "cls", "phase", "scheduled_ns", "sent_ns", "done_ns",
                  "status", "error"]
DEFINITIONS = {
    "percentile": "nearest rank: smallest recorded value with at least p% of values <= it "
                  "(numpy method 'inverted_cdf'); max is p100",
    "lag": "sent_ns - scheduled_ns, requests that were sent",
    "latency": "done_ns - sent_ns, successful requests (error ok)",
    "latency_intended": "done_ns - scheduled_ns, successful requests (free of coordinated omission)",
    "slo_attainment": "share of requests that succeeded with latency_intended <= the class SLO; "
                      "failed and unsent requests count as missed",
    "rates": "requests per second of the schedule's duration (last - first scheduled time, "
             "plus one mean gap: n requests 1/r apart make rate r); intended: requests counted, "
             "sent (achieved_rps): those sent, answered: those answered successfully; every "
             "group is divided by the duration of all the requests counted",
    "fidelity": "lag percentiles of sent requests, shares of sends later than 100 µs, 1 ms "
                "and 10 ms, share never sent; kept when every request was sent and lag p99 <= "
                "max(1 ms, 10% of the mean gap between scheduled sends)",
    "units": "nanoseconds for every *_ns value",
}


@dataclass
class ReportOptions:
    """Summarise a run: a terminal table and, in the report directory, summary.json, PNG
    plots, a self-contained report.html and HdrHistogram logs (latency.hlog,
    latency-intended.hlog). Warm-up requests are left out unless --include-warmup."""

    run_dir: str | None = opt(None, "run directory (holds records-w*.arrow and run.json)",
                              positional=True, env=False, metavar="RUN_DIR")
    out: str | None = opt(None, "report directory (default RUN_DIR/report)", short="o", metavar="DIR")
    include_warmup: bool = opt(False, "count warm-up requests too")
    no_plots: bool = opt(False, "skip the PNG plots and the HTML report", action="store_true")
    json: bool = opt(False, "print summary.json to stdout instead of the table", action="store_true")
    hdr_interval: float = opt(1.0, "interval length of the HdrHistogram logs, seconds", metavar="S")

    def __post_init__(self):
        if not self.hdr_interval > 0:
            raise InputError(f"--hdr-interval {self.hdr_interval}: must be more than 0 seconds")


@dataclass
class CompareOptions:
    """Compare two runs side by side: the report's numbers for A and B and the ratio B/A, for
    regression tracking across runs."""

    run_a: str | None = opt(None, "baseline run directory", positional=True, env=False,
                            metavar="RUN_A")
    run_b: str | None = opt(None, "run directory compared with the baseline", positional=True,
                            env=False, metavar="RUN_B")
    include_warmup: bool = opt(False, "count warm-up requests too")
    json: bool = opt(False, "print the comparison as JSON", action="store_true")


# ---------------------------------------------------------------- columns


def _codes(col) -> tuple[np.ndarray, list[str]]:
    """Dictionary column (one or more chunks with their own dictionaries) -> codes, names."""
    if isinstance(col, pa.ChunkedArray):
        col = col.unify_dictionaries()
        chunks = col.chunks
    else:
        chunks = [col]
    if not chunks:
        return np.zeros(0, np.int32), []
    names = chunks[0].dictionary.to_pylist()
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int16)
                            for c in chunks])
    return codes, names


def _ints(col, fill=0, dtype=np.int64) -> np.ndarray:
    return col.fill_null(fill).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _valid(col) -> np.ndarray:
    return col.is_valid().to_numpy(zero_copy_only=False)


class Columns:
    """The record columns the report needs, as numpy arrays (nulls as masks)."""

    def __init__(self, table: pa.Table):
        self.n = table.num_rows
        self.target, self.targets = _codes(table.column("target"))
        self.phase, phases = _codes(table.column("phase"))
        self.error, self.errors = _codes(table.column("error"))
        self.cls = _ints(table.column("cls"), -1, np.int16)
        self.worker = (_ints(table.column("worker"), 0, np.int16) if "worker" in table.column_names
                       else np.zeros(self.n, np.int16))
        self.scheduled = _ints(table.column("scheduled_ns"))
        self.sent = _ints(table.column("sent_ns"))
        self.done = _ints(table.column("done_ns"))
        self.has_sent = _valid(table.column("sent_ns"))
        self.has_done = _valid(table.column("done_ns"))
        self.status = _ints(table.column("status"), 0, np.int32)
        measure = phases.index("measure") if "measure" in phases else -2
        self.measure = self.phase == measure
        ok = self.errors.index("ok") if "ok" in self.errors else -2
        self.ok = (self.error == ok) & self.has_done & self.has_sent

    def subset(self, mask: np.ndarray) -> "Columns":
        out = object.__new__(Columns)
        for key, value in vars(self).items():
            out.__dict__[key] = value[mask] if isinstance(value, np.ndarray) else value
        out.n = int(np.count_nonzero(mask))
        return out

    @property
    def lag(self) -> np.ndarray:
        return (self.sent - self.scheduled)[self.has_sent]

    @property
    def latency(self) -> np.ndarray:
        return (self.done - self.sent)[self.ok]

    @property
    def latency_intended(self) -> np.ndarray:
        return (self.done - self.scheduled)[self.ok]


def load_records(run_dir, include_warmup: bool = True) -> tuple[pa.Table, list[str], int]:
    """The columns the report needs, from every worker stream (warm-up rows dropped batch by
    batch unless include_warmup); damaged ends are reported in problems and the readable
    records are kept. Also returns how many records were read in all."""
    problems: list[str] = []
    batches, total = [], 0
    for batch in iter_batches(run_dir, NEEDED_COLUMNS, problems):
        total += batch.num_rows
        if not include_warmup:
            batch = batch.filter(pc.equal(batch.column("phase").cast(pa.string()), "measure"))
        batches.append(batch)
    if not total:
        raise InputError(f"{run_dir}: no readable records ({'; '.join(problems) or 'all streams empty'})")
    return pa.Table.from_batches(batches, schema=batches[0].schema), problems, total


# ---------------------------------------------------------------- summary


def _counts(codes: np.ndarray, names: list[str]) -> dict[str, int]:
    if codes.size == 0:
        return {}
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    return {names[i]: int(c) for i, c in enumerate(counts) if c}


def _group(c: Columns, duration_ns: float | None, slo_ns: int | None = None) -> dict:
    status_values, status_counts = np.unique(c.status, return_counts=True)
    lat_int = c.latency_intended
    sent, ok = int(np.count_nonzero(c.has_sent)), int(np.count_nonzero(c.ok))
    rates = stats.rates(c.n, sent, ok, duration_ns)
    out = {
        "requests": c.n,
        "sent": sent,
        "completed": int(np.count_nonzero(c.has_done)),
        "ok": ok,
        "errors": _counts(c.error, c.errors),
        "status": {str(int(s)): int(k) for s, k in zip(status_values, status_counts)},
        "intended_rps": rates["intended"],
        "achieved_rps": rates["sent"],
        "answered_rps": rates["answered"],
        "lag_ns": stats.distribution(c.lag),
        "latency_ns": stats.distribution(c.latency),
        "latency_intended_ns": stats.distribution(lat_int),
        "slo_ns": slo_ns,
        "slo_attainment": None,
        "slo_attainment_from_sent": None,
    }
    if slo_ns is not None and c.n:
        out["slo_attainment"] = int(np.count_nonzero(lat_int <= slo_ns)) / c.n
        out["slo_attainment_from_sent"] = int(np.count_nonzero(c.latency <= slo_ns)) / c.n
    return out


def _poisson_declared(meta: dict) -> bool:
    sched = meta.get("schedule") or {}
    words = [sched.get("arrivals"), sched.get("process"), sched.get("kind"),
             (meta.get("options") or {}).get("arrivals")]
    for item in meta.get("classes") or []:
        if isinstance(item, dict):
            words.append(item.get("arrivals") or item.get("process"))
    return any(isinstance(w, str) and w.lower() == "poisson" for w in words)


# A schedule whose own rate-scaled gaps are this close to Exp(1) is treated as Poisson.
POISSON_DETECT_D = 0.02


def fidelity(c: Columns, meta: dict, origin_ns: int, total_records: int,
             intended_rate: float | None) -> dict:
    """How closely the run followed its schedule: how late requests were sent, how many never
    were, and the verdict (stats.lag_fidelity). For a Poisson schedule the KS distance of its
    own gaps from exponential is added as information; it never decides the verdict."""
    out = stats.lag_fidelity(c.lag, _counts(c.error[~c.has_sent], c.errors), c.n, intended_rate)
    scheduled_total = (meta.get("schedule") or {}).get("requests")
    out["records"] = total_records
    out["scheduled"] = scheduled_total if isinstance(scheduled_total, int) else None
    out["missing_records"] = (scheduled_total - total_records
                              if isinstance(scheduled_total, int) else None)
    by_worker = {}
    for w in np.unique(c.worker).tolist():
        lag = c.lag[c.worker[c.has_sent] == w]
        p = stats.percentiles(lag, (50.0, 99.0, 100.0)) if lag.size else [math.nan] * 3
        by_worker[str(w)] = {"sent": int(lag.size),
                             **{k: (None if math.isnan(v) else int(v))
                                for k, v in zip(("p50", "p99", "max"), p)}}
    out["lag_by_worker_ns"] = by_worker
    sched = meta.get("schedule") or {}
    unit_ns = int((sched.get("unit_ns") or 1_000_000_000) * float(sched.get("time_scale") or 1.0))
    starts, rates = stats.unit_rates(c.scheduled, unit_ns, origin_ns)
    ks_sched = stats.ks_exponential(stats.rescaled_gaps(c.scheduled, starts, rates))
    declared = _poisson_declared(meta)
    detected = ks_sched is not None and ks_sched["statistic"] <= POISSON_DETECT_D
    out["poisson_schedule"] = {"poisson": declared or detected,
                               "from": "run.json" if declared else "detected" if detected else None,
                               "unit_ns": unit_ns, "ks": ks_sched if declared or detected else None}
    return out


def summarize(table: pa.Table, run_meta: dict, include_warmup: bool = False) -> dict:
    """Summary of a run's records (see the module doc for every definition)."""
    cols = Columns(table)
    c = cols if include_warmup else cols.subset(cols.measure)
    return summarize_columns(c, run_meta, cols.n, include_warmup)


def summarize_columns(c: Columns, run_meta: dict, total_records: int, include_warmup: bool,
                      run_dir: Path | None = None, problems: list[str] | None = None) -> dict:
    """summarize() on columns already restricted to the requests to count; with run_dir, the
    failure messages its workers kept are added (problems collects what could not be read)."""
    run_meta = run_meta or {}
    problems = [] if problems is None else problems
    origin = run_meta.get("start_ns")
    if not isinstance(origin, int):
        origin = int(c.scheduled.min()) if c.n else 0
    classes = class_table(run_meta)
    duration = (stats.schedule_duration_ns(c.n, int(c.scheduled.min()), int(c.scheduled.max()))
                if c.n else None)
    overall = _group(c, duration)
    rates = stats.rates(c.n, overall["sent"], overall["ok"], duration)
    status_errors = (c.status[c.error == c.errors.index("status")] if "status" in c.errors
                     else np.zeros(0, np.int32))
    codes, counts = np.unique(status_errors, return_counts=True)
    summary = {
        "records": total_records,
        "measured": c.n,
        "include_warmup": include_warmup,
        "start_ns": origin,
        "window_ns": ([int(c.scheduled.min()), int(c.scheduled.max())] if c.n else None),
        "definitions": DEFINITIONS,
        "rates": rates,
        "overall": overall,
        "targets": {},
        "classes": {},
        "fidelity": fidelity(c, run_meta, origin, total_records, rates["intended"]),
        "failures": failure_details(run_dir, overall["errors"],
                                    dict(zip(codes.tolist(), counts.tolist())), problems),
        "tls_verified": not (run_meta.get("transport") or {}).get("insecure", False),
    }
    for t, name in enumerate(c.targets):
        mask = c.target == t
        if mask.any():
            summary["targets"][name] = _group(c.subset(mask), duration)
    for k in np.unique(c.cls).tolist():
        if k < 0:
            continue
        info = classes[k] if k < len(classes) else {"name": f"class{k}", "slo_ns": None}
        summary["classes"][info["name"]] = _group(c.subset(c.cls == k), duration, info["slo_ns"])
    return summary


# ---------------------------------------------------------------- terminal table


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _rps(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _rows(summary: dict) -> list[tuple[str, dict]]:
    rows = [("overall", summary["overall"])]
    rows += [(f"target {name}", g) for name, g in summary["targets"].items()]
    rows += [(f"class {name}", g) for name, g in summary["classes"].items()]
    return rows


def format_summary(summary: dict) -> str:
    """A compact terminal table of a summary, then errors and the fidelity check."""
    lines = []
    scope = "warm-up included" if summary.get("include_warmup") else "warm-up excluded"
    lines.append(f"{summary['measured']:,} requests measured ({scope}) of {summary['records']:,} records")
    rate = format_rate_line(summary.get("rates") or {}, summary["overall"]["requests"],
                            summary["overall"]["sent"], summary["fidelity"].get("verdict"))
    if rate:
        lines.append(rate)
    head = ["", "requests", "ok", "intended/s", "sent/s", "answered/s", "lag p99", "p50", "p90",
            "p95", "p99", "p99.9", "max", "SLO met"]
    lines.append("latency columns p50..max: done - sent of successful requests")
    table = [head]
    for label, g in _rows(summary):
        lat = g["latency_ns"]
        slo = ("-" if g.get("slo_attainment") is None else
               f"{_pct(g['slo_attainment'])} <{stats.fmt_ns(g['slo_ns'])}")
        name = label if len(label) <= 34 else label[:33] + "…"
        table.append([name, f"{g['requests']:,}", f"{g['ok']:,}", _rps(g["intended_rps"]),
                      _rps(g["achieved_rps"]), _rps(g.get("answered_rps")),
                      stats.fmt_ns(g["lag_ns"]["p99"]),
                      *(stats.fmt_ns(lat[k]) for k in stats.PERCENTILE_LABELS), slo])
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    for j, r in enumerate(table):
        cells = [str(r[0]).ljust(widths[0])] + [str(x).rjust(widths[i + 1]) for i, x in enumerate(r[1:])]
        lines.append("  ".join(cells).rstrip())
    errs = summary["overall"]["errors"]
    bad = {k: v for k, v in errs.items() if k != "ok"}
    if bad:
        status = {k: v for k, v in summary["overall"]["status"].items() if k not in ("0", "200")}
        n = summary["overall"]["requests"]
        text = f"{sum(bad.values()):,} of {n:,} requests failed"
        if status:
            text += "; status " + ", ".join(f"{k}: {v:,}" for k, v in status.items())
        lines.append(f"errors: {text}")
        failures = summary.get("failures")
        lines += (format_failures(failures, bare=True) if failures else
                  [f"  {k} {v:,}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])])
    lines.append(format_fidelity(summary["fidelity"]))
    if summary.get("tls_verified") is False:
        lines.append("warning: TLS certificates were NOT verified in this run (--insecure)")
    for problem in summary.get("problems") or []:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def format_fidelity(f: dict) -> str:
    lag = f["lag"]
    lines = [f"fidelity: schedule {stats.format_verdict(f['verdict'], lag['p99'], f['late_1ms'])}",
             f"          send lag p50 {stats.fmt_ns(lag['p50'])}, p99 {stats.fmt_ns(lag['p99'])}, "
             f"p99.9 {stats.fmt_ns(lag['p99.9'])}, max {stats.fmt_ns(lag['max'])} "
             f"({f['sent']:,} of {f['requests']:,} measured requests sent); sends later than "
             f"100µs {_pct(f['late_100us'])}, 1ms {_pct(f['late_1ms'])}, 10ms {_pct(f['late_10ms'])}; "
             f"never sent {f['not_sent']:,} ({_pct(f['not_sent_share'])})"]
    if f.get("missing_records"):
        lines.append(f"          {f['missing_records']:,} scheduled requests have no record")
    poisson = f.get("poisson_schedule") or {}
    if poisson.get("ks"):
        k = poisson["ks"]
        lines.append(f"          Poisson schedule ({poisson['from']}): its own gaps' KS distance from "
                     f"exponential D={k['statistic']:.4f} (information, not part of the verdict)")
    return "\n".join(lines)


# ---------------------------------------------------------------- report command


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def build_report(run_dir, include_warmup: bool = False) -> tuple[dict, Columns, dict]:
    run_dir = Path(run_dir)
    meta = load_meta(run_dir)
    table, problems, total = load_records(run_dir, include_warmup)
    cols = Columns(table)
    del table
    summary = summarize_columns(cols, meta, total, include_warmup, run_dir, problems)
    summary["run_dir"] = str(run_dir)
    summary["problems"] = problems
    return _jsonable(summary), cols, meta


def write_hdr_logs(c: Columns, summary: dict, out_dir: Path, interval_s: float) -> list[Path]:
    """latency.hlog (from actual send) and latency-intended.hlog: one untagged interval
    histogram per interval of completion time, and one tagged with each endpoint."""
    from replayer.analysis import hdr
    origin = summary["start_ns"]
    step = int(interval_s * 1e9)
    done = c.done[c.ok]
    order = np.argsort(done, kind="stable")
    done = done[order]
    target = c.target[c.ok][order]
    paths = []
    for name, values, what in (("latency.hlog", c.latency[order], "done - sent"),
                               ("latency-intended.hlog", c.latency_intended[order], "done - scheduled")):
        path = out_dir / name
        with hdr.LogWriter(path, origin / 1e9, comment=f"replayer: latency {what}, successful "
                           "requests, values in nanoseconds") as log:
            if done.size:
                first = (int(done[0]) - origin) // step
                last = (int(done[-1]) - origin) // step
                edges = origin + np.arange(first, last + 2, dtype=np.int64) * step
                bounds = np.searchsorted(done, edges)
                for i in range(len(edges) - 1):
                    lo, hi = bounds[i], bounds[i + 1]
                    if lo == hi:
                        continue
                    start_s = (edges[i] - origin) / 1e9
                    log.write_values(start_s, interval_s, values[lo:hi])
                    for t in np.unique(target[lo:hi]).tolist():
                        sel = target[lo:hi] == t
                        log.write_values(start_s, interval_s, values[lo:hi][sel], tag=c.targets[t])
        paths.append(path)
    return paths


def report_command(options: ReportOptions) -> int:
    run_dir = Path(options.run_dir)
    summary, cols, meta = build_report(run_dir, options.include_warmup)
    out_dir = Path(options.out) if options.out else run_dir / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the report directory ({exc.strerror}); "
                         "choose another with --out") from None
    written = write_hdr_logs(cols, summary, out_dir, options.hdr_interval)
    if not options.no_plots:
        from replayer.analysis import html, plots
        images = plots.make_all(cols, summary)
        for name, png in images.items():
            (out_dir / f"{name}.png").write_bytes(png)
            written.append(out_dir / f"{name}.png")
        page = html.render(summary, images, meta, format_summary(summary))
        (out_dir / "report.html").write_text(page, encoding="utf-8")
        written.append(out_dir / "report.html")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    written.append(out_dir / "summary.json")
    if options.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary))
        print(f"report: {out_dir} ({', '.join(p.name for p in written)})")
    for problem in summary["problems"]:
        print(f"replayer report: warning: {problem}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- compare


COMPARE_METRICS = [
    ("requests", lambda g: g["requests"]),
    ("ok share", lambda g: g["ok"] / g["requests"] if g["requests"] else None),
    ("intended/s", lambda g: g["intended_rps"]),
    ("sent/s", lambda g: g["achieved_rps"]),
    ("answered/s", lambda g: g.get("answered_rps")),
    ("lag p50", lambda g: g["lag_ns"]["p50"]),
    ("lag p99", lambda g: g["lag_ns"]["p99"]),
    *[(f"latency {k}", (lambda k: lambda g: g["latency_ns"][k])(k)) for k in stats.PERCENTILE_LABELS],
    ("latency_intended p99", lambda g: g["latency_intended_ns"]["p99"]),
    ("SLO attainment", lambda g: g.get("slo_attainment")),
]


def _summary_for(run_dir, include_warmup: bool) -> dict:
    run_dir = Path(run_dir)
    try:
        return build_report(run_dir, include_warmup)[0]
    except InputError:
        saved = run_dir / "report" / "summary.json"
        if saved.is_file():
            return json.loads(saved.read_text())
        raise


def compare(a: dict, b: dict) -> list[dict]:
    """Rows (group, metric, a, b, ratio b/a) over the groups both summaries have."""
    groups = [("overall", a["overall"], b["overall"])]
    for kind in ("targets", "classes"):
        for name in a.get(kind, {}):
            if name in b.get(kind, {}):
                groups.append((f"{kind[:-1]} {name}", a[kind][name], b[kind][name]))
    rows = []
    for label, ga, gb in groups:
        for metric, get in COMPARE_METRICS:
            va, vb = get(ga), get(gb)
            if va is None and vb is None:
                continue
            ratio = (vb / va) if (va not in (None, 0) and vb is not None) else None
            rows.append({"group": label, "metric": metric, "a": va, "b": vb, "ratio": ratio})
    return rows


def _fmt_value(metric: str, v) -> str:
    if v is None:
        return "-"
    if metric.startswith(("lag", "latency")):
        return stats.fmt_ns(v)
    if metric in ("ok share", "SLO attainment"):
        return _pct(v)
    if metric.endswith("/s"):
        return _rps(v)
    return f"{v:,}"


def format_compare(rows: list[dict], name_a: str, name_b: str) -> str:
    table = [["", "", "A", "B", "B/A"]]
    last = None
    for r in rows:
        table.append([r["group"] if r["group"] != last else "", r["metric"],
                      _fmt_value(r["metric"], r["a"]), _fmt_value(r["metric"], r["b"]),
                      "-" if r["ratio"] is None else f"{r['ratio']:.3f}"])
        last = r["group"]
    widths = [max(len(x[i]) for x in table) for i in range(5)]
    lines = [f"A: {name_a}", f"B: {name_b}"]
    for r in table:
        lines.append("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1])] +
                               [r[i].rjust(widths[i]) for i in range(2, 5)]).rstrip())
    return "\n".join(lines)


def compare_command(options: CompareOptions) -> int:
    a = _summary_for(options.run_a, options.include_warmup)
    b = _summary_for(options.run_b, options.include_warmup)
    rows = compare(a, b)
    if options.json:
        print(json.dumps({"a": options.run_a, "b": options.run_b, "rows": _jsonable(rows)}, indent=1))
    else:
        print(format_compare(rows, options.run_a, options.run_b))
    return 0

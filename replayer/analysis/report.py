"""`replayer report` and `replayer compare`: exact numbers from a run's records.

The report's summary.json is the run's summary document (replayer.analysis.summary: the same
schema, the same numbers for the same records) extended with a group per target (counts,
rates, send lag and latency percentiles) and per class (the same, with SLO attainment:
summary.ClassResults), the fidelity check and the files it wrote; format_summary() prints it
as a compact table, and the report directory gets PNG plots, one self-contained HTML page
and HdrHistogram logs. Percentiles are exact, nearest rank (see replayer.analysis.stats); the
report loads the columns it needs (peak about 250 bytes per measured record: 10M records in
2.5 GB), where the run's own summary streams. What lag, latency and the rest mean:
replayer.analysis.model (also written into summary.json).
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from replayer.analysis import fmt, stats
from replayer.analysis.failures import read_failures
from replayer.analysis.model import (DURATIONS, ERROR_NAMES, Columns, Counts, class_table,
                                     run_metadata, scheduled_requests)
from replayer.analysis.records import iter_batches, record_files
from replayer.analysis.summary import (ClassResults, LateSends, all_failed_warning, document,
                                       format_class_lines, format_failures, format_late,
                                       add_inference_verdict,
                                       format_rate_line, format_stalls_line, format_threshold,
                                       format_verdict, goal_failures, group, max_lag_ns,
                                       span_ns, workers_of)
from replayer.analysis.thresholds import Goals, evaluate, parse_duration_ns, parse_thresholds
from replayer.errors import InputError, RunError
from replayer.jsonfile import read_json
from replayer.options import opt

# late_cause where the records have it (those of older runs do not).
NEEDED_COLUMNS = ["worker", "target", "cls", "phase", "scheduled_ns", "sent_ns", "done_ns",
                  "status", "error", "late_cause"]


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
    threshold: list[str] = opt(None, "judge the run by this threshold instead of those it was "
                               "run with, e.g. 'latency.p99<500ms', 'errors<1%%' (repeatable; "
                               "see docs/report.md); one not met exits 5", default_factory=list,
                               metavar="EXPR")
    max_lag: str | None = opt(None, "the verdict's send-lag p99 limit, e.g. 2ms (default: the "
                              "run's --max-lag)", metavar="DURATION")
    max_lost: int | None = opt(None, "requests the verdict allows lost (default: the run's "
                               "--max-lost)", metavar="N")
    strict: bool = opt(False, "exit 5 when the schedule was not kept or every request failed",
                       action="store_true")

    def __post_init__(self):
        if not self.hdr_interval > 0:
            raise InputError(f"--hdr-interval {self.hdr_interval}: must be more than 0 seconds")
        if self.max_lag is not None:
            parse_duration_ns(self.max_lag, "--max-lag")
        if self.max_lost is not None and self.max_lost < 0:
            raise InputError(f"--max-lost {self.max_lost}: must be 0 or more")
        parse_thresholds(self.threshold)

    def goals(self, meta: dict) -> Goals:
        """The run's goals (run.json), with what this report was told instead."""
        run = Goals.from_options(meta.get("options"))
        max_lag = None if self.max_lag is None else parse_duration_ns(self.max_lag, "--max-lag")
        return Goals(
            max_lag_ns=run.max_lag_ns if max_lag is None else max_lag,
            max_lost=run.max_lost if self.max_lost is None else self.max_lost,
            thresholds=parse_thresholds(self.threshold) if self.threshold else run.thresholds)


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


# ---------------------------------------------------------------- records


def load_columns(run_dir, include_warmup: bool = False) -> tuple[Columns, Counts, list[str]]:
    """The columns the report needs, from every worker stream (warm-up rows dropped batch by
    batch unless include_warmup), the counts of every record read, and the problems met:
    damaged ends are reported and the readable records kept."""
    problems: list[str] = []
    targets: list[str] = []
    errors = list(ERROR_NAMES)
    every = Counts()
    parts = []
    for batch in iter_batches(run_dir, NEEDED_COLUMNS, problems):
        c = Columns.decode(batch, targets, errors)
        every.add(c)
        parts.append(c if include_warmup else c.subset(c.measured))
    if not every.requests:
        raise InputError(f"{run_dir}: no readable records ({'; '.join(problems) or 'all streams empty'})")
    return Columns.concat(parts), every, problems


# ---------------------------------------------------------------- summary


def distributions(c: Columns) -> dict[str, dict]:
    return {name: stats.distribution(c.duration(name)) for name in DURATIONS}


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


def fidelity(c: Columns, counted: Counts, meta: dict, origin_ns: int) -> dict:
    """How closely the run followed its schedule: how late requests were sent and how many
    never were (stats.lag_fidelity; the verdict is the summary's). For a Poisson schedule the
    KS distance of its own gaps from exponential is added as information; it never decides
    the verdict."""
    out = stats.lag_fidelity(c.lag, counted.never_sent, c.n)
    by_worker = {}
    for w in np.unique(c.worker).tolist():
        lag = c.duration("lag_ns", c.worker == w)
        p = stats.percentiles(lag, (50.0, 99.0, 100.0)) if lag.size else [math.nan] * 3
        by_worker[str(w)] = {"sent": int(lag.size),
                             **{k: (None if math.isnan(v) else int(v))
                                for k, v in zip(("p50", "p99", "max"), p)}}
    out["lag_by_worker_ns"] = by_worker
    sched = meta.get("schedule") or {}
    unit_ns = int((sched.get("unit_ns") or 1_000_000_000) * float(sched.get("time_scale") or 1.0))
    starts, rates = stats.unit_rates(c.scheduled_ns, unit_ns, origin_ns)
    ks_sched = stats.ks_exponential(stats.rescaled_gaps(c.scheduled_ns, starts, rates))
    declared = _poisson_declared(meta)
    detected = ks_sched is not None and ks_sched["statistic"] <= POISSON_DETECT_D
    out["poisson_schedule"] = {"poisson": declared or detected,
                               "from": "run.json" if declared else "detected" if detected else None,
                               "unit_ns": unit_ns, "ks": ks_sched if declared or detected else None}
    return out


def summarize(table: pa.Table, run_meta: dict, include_warmup: bool = False,
              goals: Goals | None = None) -> dict:
    """The report's summary of a table of records (records.read_records)."""
    cols = Columns.decode(table)
    c = cols if include_warmup else cols.subset(cols.measured)
    workers = len(np.unique(cols.worker)) if cols.worker is not None and cols.n else 1
    return summarize_columns(c, Counts().add(cols), run_meta or {}, include_warmup, goals=goals,
                             workers=workers)


def summarize_columns(c: Columns, every: Counts, meta: dict, include_warmup: bool,
                      messages: dict | None = None, problems: list[str] | None = None,
                      goals: Goals | None = None, workers: int = 1,
                      worker_stats: list[dict] | None = None) -> dict:
    """The summary document (summary.document) of the requests in c, out of the records
    `every` counts, extended with targets, classes and fidelity; `messages`: the failure
    messages the workers kept (failures.read_failures). Judged against `goals` (default:
    run.json's options); `workers`: how many the run had where run.json does not say;
    `worker_stats`: the run's summary.json workers (their stall counters)."""
    goals = Goals.from_options(meta.get("options")) if goals is None else goals
    workers = workers_of(meta, workers)
    scheduled = scheduled_requests(meta)
    counted = Counts().add(c)
    late = LateSends(max_lag_ns(goals, every, scheduled, workers))
    late.add(c)
    classes = class_table(meta)
    summary = document(every, counted, distributions(c), meta, scheduled,
                       include_warmup, messages or {}, [] if problems is None else problems,
                       goals=goals, workers=workers, late=late,
                       thresholds=evaluate(goals.thresholds, c, [k["name"] for k in classes],
                                           include_warmup),
                       worker_stats=worker_stats)
    duration = span_ns(counted)
    summary["targets"] = {}
    for t, name in enumerate(c.targets):
        mask = c.target == t
        if mask.any():
            sub = c.subset(mask)
            summary["targets"][name] = group(Counts().add(sub), distributions(sub), duration)
    summary["classes"] = ClassResults.of_columns(classes, c, duration)
    add_inference_verdict(summary, meta)
    summary["fidelity"] = fidelity(c, counted, meta, summary["start_ns"])
    return summary


# ---------------------------------------------------------------- terminal table


def _rows(summary: dict) -> list[tuple[str, dict]]:
    rows = [("overall", summary["overall"])]
    rows += [(f"target {name}", g) for name, g in summary["targets"].items()]
    rows += [(f"class {name}", g) for name, g in summary["classes"].items()]
    return rows


def format_summary(summary: dict) -> str:
    """A compact terminal table of a summary, then errors and the fidelity check."""
    lines = []
    scope = "warm-up included" if summary.get("include_warmup") else "warm-up excluded"
    overall = summary["overall"]
    lines.append(f"{overall['requests']:,} requests measured ({scope}) of {summary['recorded']:,} records")
    rate = format_rate_line(overall["rates"], overall["requests"], overall["sent"],
                            summary["verdict"])
    if rate:
        lines.append(rate)
    head = ["", "requests", "ok", "intended/s", "sent/s", "answered/s", "lag p99", "p50", "p90",
            "p95", "p99", "p99.9", "max", "SLO met"]
    lines.append("latency columns p50..max: done - sent of successful requests")
    table = [head]
    for label, g in _rows(summary):
        lat = g["latency_ns"]
        slo = ("-" if g.get("slo_attainment") is None else
               f"{fmt.share(g['slo_attainment'])} <{fmt.duration(g['slo_ns'])}")
        name = label if len(label) <= 34 else label[:33] + "…"
        rates = g["rates"]
        table.append([name, f"{g['requests']:,}", f"{g['ok']:,}", fmt.rate(rates["intended"]),
                      fmt.rate(rates["sent"]), fmt.rate(rates["answered"]),
                      fmt.duration(g["lag_ns"]["p99"]),
                      *(fmt.duration(lat[k]) for k in stats.PERCENTILE_LABELS), slo])
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    for j, r in enumerate(table):
        cells = [str(r[0]).ljust(widths[0])] + [str(x).rjust(widths[i + 1]) for i, x in enumerate(r[1:])]
        lines.append("  ".join(cells).rstrip())
    lines += format_class_lines(summary.get("classes") or {}, limit=None)
    if summary.get("mlperf"):
        from replayer.analysis.mlperf import format_verdict as format_mlperf, seed_table
        lines += seed_table(summary["classes"])
        lines += format_mlperf(summary["mlperf"])
    bad = {k: v for k, v in overall["errors"].items() if k != "ok"}
    if bad:
        status = {k: v for k, v in overall["status"].items() if k not in ("0", "200")}
        text = f"{sum(bad.values()):,} of {overall['requests']:,} requests failed"
        if status:
            text += "; status " + ", ".join(f"{k}: {v:,}" for k, v in status.items())
        lines.append(f"errors: {text}")
        failures = overall.get("failures")
        lines += (format_failures(failures, bare=True) if failures else
                  [f"  {k} {v:,}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])])
    lines += format_judgement(summary)
    lines.append(format_fidelity(summary["fidelity"], summary.get("lost")))
    stalls = format_stalls_line(summary.get("workers") or [])
    if stalls:
        lines.append(stalls)
    failed = all_failed_warning(summary)
    if failed:
        lines.append(f"warning: {failed}")
    if summary.get("tls_verified") is False:
        lines.append("warning: TLS certificates were NOT verified in this run (--insecure)")
    for problem in summary.get("problems") or []:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def format_judgement(summary: dict) -> list[str]:
    """The verdict, the late sends by cause (a table), the advice and the thresholds."""
    v = summary["verdict"]
    lines = [f"verdict: {format_verdict(v)}"]
    causes = v.get("late_by_cause")
    if v.get("late") and causes is not None:
        sent = summary["overall"]["sent"]
        lines.append(f"  late sends (lag > {fmt.duration(v['max_lag_ns'])}): {v['late']:,} of "
                     f"{sent:,} sent ({fmt.share(v['late'] / sent if sent else None)}), by cause:")
        width = max(len(c) for c in causes)
        lines += [f"    {c.ljust(width)}  {n:>10,}  {fmt.share(n / v['late']):>7}"
                  for c, n in causes.items()]
    elif v.get("late"):
        lines.append(f"  {format_late(v)}")
    lines += [f"  advice: {a}" for a in v.get("advice") or []]
    thresholds = summary.get("thresholds") or []
    if thresholds:
        lines.append("thresholds:")
        lines += [f"  {format_threshold(t)}" for t in thresholds]
    return lines


def format_fidelity(f: dict, lost: int | None = None) -> str:
    """The fidelity check's lines; `lost`: scheduled requests without a record."""
    lag = f["lag"]
    lines = [f"fidelity: send lag p50 {fmt.duration(lag['p50'])}, p99 {fmt.duration(lag['p99'])}, "
             f"p99.9 {fmt.duration(lag['p99.9'])}, max {fmt.duration(lag['max'])} "
             f"({f['sent']:,} of {f['requests']:,} measured requests sent); sends later than "
             f"100µs {fmt.share(f['late_100us'])}, 1ms {fmt.share(f['late_1ms'])}, "
             f"10ms {fmt.share(f['late_10ms'])}; "
             f"never sent {f['not_sent']:,} ({fmt.share(f['not_sent_share'])})"]
    if lost:
        lines.append(f"          {lost:,} scheduled requests have no record")
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


def run_worker_stats(run_dir: Path) -> list[dict] | None:
    """The workers' counters the run wrote in its summary.json (None without them)."""
    try:
        saved = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    workers = saved.get("workers") if isinstance(saved, dict) else None
    return workers if isinstance(workers, list) else None


def build_report(run_dir, include_warmup: bool = False,
                 goals: Goals | None = None) -> tuple[dict, Columns, dict]:
    """The report's summary of a run directory, the columns it was computed from, run.json;
    judged against `goals` (default: the run's own, from run.json)."""
    run_dir = Path(run_dir)
    meta = run_metadata(run_dir)
    cols, every, problems = load_columns(run_dir, include_warmup)
    summary = summarize_columns(cols, every, meta, include_warmup, read_failures(run_dir, problems),
                                problems, goals=goals, workers=len(record_files(run_dir)),
                                worker_stats=run_worker_stats(run_dir))
    summary["run_dir"] = str(run_dir)
    return _jsonable(summary), cols, meta


def write_hdr_logs(c: Columns, summary: dict, out_dir: Path, interval_s: float) -> list[Path]:
    """latency.hlog (from actual send) and latency-intended.hlog: one untagged interval
    histogram per interval of completion time, and one tagged with each endpoint."""
    from replayer.analysis import hdr
    origin = summary["start_ns"]
    step = int(interval_s * 1e9)
    done = c.done_ns[c.ok]
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
    summary, cols, meta = build_report(run_dir, options.include_warmup,
                                       options.goals(run_metadata(run_dir)))
    out_dir = Path(options.out) if options.out else run_dir / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the report directory ({exc.strerror}); "
                         "choose another with --out") from None
    written = write_hdr_logs(cols, summary, out_dir, options.hdr_interval)
    # What was changed on the control port while it ran, and the processes it watched.
    from replayer.run.live import read_control_log
    from replayer.run.monitor import read_perf
    changes, perf = read_control_log(run_dir), read_perf(run_dir)
    summary["control_changes"] = [{k: e.get(k) for k in ("t_ns", "source", "change", "settings")}
                                  for e in changes if e.get("event") == "change"]
    summary["perf_samples"] = len(perf)
    if not options.no_plots:
        from replayer.analysis import html, plots
        images = plots.make_all(cols, summary, changes, perf)
        for name, png in images.items():
            (out_dir / f"{name}.png").write_bytes(png)
            written.append(out_dir / f"{name}.png")
        page = html.render(summary, images, meta, format_summary(summary))
        (out_dir / "report.html").write_text(page, encoding="utf-8")
        written.append(out_dir / "report.html")
    written.append(out_dir / "summary.json")
    summary["files"] = [p.name for p in written]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if options.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_summary(summary))
        print(f"report: {out_dir} ({', '.join(p.name for p in written)})")
    for problem in summary["problems"]:
        print(f"replayer report: warning: {problem}", file=sys.stderr)
    # The run's own thresholds are shown; only those given here (and --strict) decide the exit.
    judged = goal_failures(summary if options.threshold else {**summary, "thresholds": []},
                           options.strict)
    if judged:
        raise RunError("report: " + "; ".join(judged), exit_code=5)
    return 0


# ---------------------------------------------------------------- compare


COMPARE_METRICS = [
    ("requests", lambda g: g["requests"]),
    ("ok share", lambda g: g["ok"] / g["requests"] if g["requests"] else None),
    ("intended/s", lambda g: (g.get("rates") or {}).get("intended")),
    ("sent/s", lambda g: (g.get("rates") or {}).get("sent")),
    ("answered/s", lambda g: (g.get("rates") or {}).get("answered")),
    ("lag p50", lambda g: g["lag_ns"]["p50"]),
    ("lag p99", lambda g: g["lag_ns"]["p99"]),
    *[(f"latency {k}", (lambda k: lambda g: g["latency_ns"][k])(k)) for k in stats.PERCENTILE_LABELS],
    ("latency_intended p99", lambda g: g["latency_intended_ns"]["p99"]),
    ("SLO attainment", lambda g: g.get("slo_attainment")),
    ("SLO attainment intended", lambda g: g.get("slo_attainment_intended")),
]


def _summary_for(run_dir, include_warmup: bool) -> dict:
    run_dir = Path(run_dir)
    try:
        return build_report(run_dir, include_warmup)[0]
    except InputError:
        saved = run_dir / "report" / "summary.json"
        if saved.is_file():
            return read_json(saved, "report summary", "run replayer report on the run first")
        raise


def _verdict_of(summary: dict) -> dict:
    return summary.get("verdict") or {}


def _thresholds_met(summary: dict) -> str | None:
    results = summary.get("thresholds") or []
    return f"{sum(t['met'] for t in results)} of {len(results)}" if results else None


# The verdict side by side: whole summaries, not groups.
VERDICT_METRICS = [
    ("schedule", lambda s: None if "kept" not in _verdict_of(s) else
     "kept" if _verdict_of(s)["kept"] else "NOT kept"),
    ("max lag", lambda s: _verdict_of(s).get("max_lag_ns")),
    ("lag p99", lambda s: _verdict_of(s).get("lag_p99_ns")),
    ("lost", lambda s: _verdict_of(s).get("lost")),
    ("late sends", lambda s: _verdict_of(s).get("late")),
    *[(f"late: {c}", (lambda c: lambda s: (_verdict_of(s).get("late_by_cause") or {}).get(c))(c))
      for c in stats.CAUSES],
    ("thresholds met", _thresholds_met),
]


def _row(group: str, metric: str, va, vb) -> dict:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
    ratio = vb / va if numeric and va != 0 else None
    return {"group": group, "metric": metric, "a": va, "b": vb, "ratio": ratio}


def compare(a: dict, b: dict) -> list[dict]:
    """Rows (group, metric, a, b, ratio b/a): the verdict, then the groups both summaries
    have."""
    rows = []
    for metric, get in VERDICT_METRICS:
        va, vb = get(a), get(b)
        if va is not None or vb is not None:
            rows.append(_row("verdict", metric, va, vb))
    groups = [("overall", a["overall"], b["overall"])]
    for kind, label in (("targets", "target"), ("classes", "class")):
        for name in a.get(kind, {}):
            if name in b.get(kind, {}):
                groups.append((f"{label} {name}", a[kind][name], b[kind][name]))
    for label, ga, gb in groups:
        for metric, get in COMPARE_METRICS:
            va, vb = get(ga), get(gb)
            if va is None and vb is None:
                continue
            rows.append(_row(label, metric, va, vb))
    return rows


def _fmt_value(metric: str, v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if metric.startswith(("lag", "latency", "max lag")):
        return fmt.duration(v)
    if metric in ("ok share", "SLO attainment", "SLO attainment intended"):
        return fmt.share(v)
    if metric.endswith("/s"):
        return fmt.rate(v)
    return f"{v:,}"


def format_compare(rows: list[dict], name_a: str, name_b: str,
                   verdicts: tuple[dict, dict] | None = None) -> str:
    """The side-by-side table; `verdicts` (A's and B's summaries' verdicts) add their lines."""
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
    for name, v in zip("AB", verdicts or ()):
        if "kept" in v:
            lines.append(f"{name}: {format_verdict(v)}")
    return "\n".join(lines)


def compare_command(options: CompareOptions) -> int:
    a = _summary_for(options.run_a, options.include_warmup)
    b = _summary_for(options.run_b, options.include_warmup)
    rows = compare(a, b)
    if options.json:
        print(json.dumps({"a": options.run_a, "b": options.run_b, "rows": _jsonable(rows),
                          "verdicts": [_verdict_of(a), _verdict_of(b)]}, indent=1))
    else:
        print(format_compare(rows, options.run_a, options.run_b, (_verdict_of(a), _verdict_of(b))))
    return 0

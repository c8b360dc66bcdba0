"""The summary document: one schema for what a run did, written by the run (its summary.json
and the lines it prints) and extended by `replayer report` (per target, per class, fidelity,
the files it wrote) into the report's summary.json.

  scheduled, recorded, lost         requests this node scheduled, records read, the difference
  sent, ok, failed, errors          every record (warm-up included), errors by kind
  rates                             intended, sent, answered per second, duration_s (stats.rates)
  schedule                          was the schedule kept (stats.schedule_verdict)
  failures                          per failure kind: count, first and most frequent messages
  include_warmup, start_ns, window_ns
  overall                           a group: the requests counted (warm-up excluded unless
                                    include_warmup): requests, sent, completed, ok, errors,
                                    status, rates, lag_ns, latency_ns, latency_intended_ns
                                    (stats.distribution), SLO fields, failures
  tls_verified, definitions, problems

The run adds workers, stopped, latf and trace; the report adds run_dir, targets and classes
(groups), fidelity and files. Durations are nanoseconds; what each quantity is, is
replayer.analysis.model's.

The run's summary (summarize_run) is read in memory that does not grow with the run: its
counts were taken as the records were drained (model.LiveCounts), and its percentiles are
exact, nearest rank, from passes over the files (stats.StreamedDistribution): the first pass
also feeds the run's other readers of its records (the -latf file, the Zipkin spans), so the
end of a run reads its records twice (a third time in the rare case StreamedPercentiles needs
it). The report loads columns instead and computes the same numbers (replayer.analysis.report).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from replayer.analysis import fmt, stats
from replayer.analysis.failures import read_failures
from replayer.analysis.model import (DEFINITIONS, DURATIONS, PHASES, Columns, Counts,
                                     LiveCounts, run_metadata)
from replayer.analysis.records import iter_batches

# What the end-of-run passes read: enough for the percentiles...
PASS_COLUMNS = ["phase", "error", "scheduled_ns", "sent_ns", "done_ns"]
# ...and for counting, when the drain did not (a summary of a finished run directory).
COUNT_COLUMNS = PASS_COLUMNS + ["status"]
# The percentiles on the run's printed lines.
LAG_SHOWN = ("p50", "p99", "p99.9", "max")
LATENCY_SHOWN = ("p50", "p95", "p99", "p99.9")


def span_ns(counts: Counts) -> float | None:
    """The duration rates are taken over: that of the requests' schedule."""
    if not counts.requests:
        return None
    return stats.schedule_duration_ns(counts.requests, counts.first_scheduled_ns,
                                      counts.last_scheduled_ns)


def group(counts: Counts, distributions: dict[str, dict], duration_ns: float | None) -> dict:
    """One group of requests (overall, a target, a class): how they ended, their rates over
    duration_ns, and the distributions of lag and latencies (keyed as model.DURATIONS)."""
    return {
        "requests": counts.requests,
        "sent": counts.sent,
        "completed": counts.completed,
        "ok": counts.ok,
        "errors": counts.errors_by_kind(),
        "status": {str(code): n for code, n in sorted(counts.status.items())},
        "rates": stats.rates(counts.requests, counts.sent, counts.ok, duration_ns),
        **{name: distributions[name] for name in DURATIONS},
        "slo_ns": None,
        "slo_attainment": None,
        "slo_attainment_from_sent": None,
    }


def document(run: Counts, counted: Counts, distributions: dict[str, dict], meta: dict,
             scheduled: int | None, include_warmup: bool, messages: dict,
             problems: list[str]) -> dict:
    """The summary document (see the module doc) from the counts of every record (`run`), of
    the requests counted (`counted`), their distributions, run.json, how many requests were
    scheduled (None: unknown), the failure messages (failures.read_failures) and the
    problems met reading."""
    # With no schedule size known, the records say how many requests there were.
    requests = run.requests if scheduled is None else scheduled
    duration = (stats.schedule_duration_ns(requests, run.first_scheduled_ns, run.last_scheduled_ns)
                if run.requests else None)
    rates = stats.rates(requests, run.sent, run.ok, duration)
    start = meta.get("start_ns")
    overall = group(counted, distributions, span_ns(counted))
    overall["failures"] = failure_details(messages, counted.errors, counted.status_failed)
    return {
        "scheduled": scheduled,
        "recorded": run.requests,
        "lost": None if scheduled is None else scheduled - run.requests,
        "sent": run.sent,
        "ok": run.ok,
        "failed": run.requests - run.ok,
        "errors": run.errors_by_kind(),
        "rates": rates,
        "schedule": stats.schedule_verdict(requests, run.never_sent,
                                           distributions["lag_ns"]["p99"], rates["intended"]),
        "failures": failure_details(messages, run.errors, run.status_failed),
        "include_warmup": include_warmup,
        "start_ns": start if isinstance(start, int) else (counted.first_scheduled_ns or 0),
        "window_ns": ([counted.first_scheduled_ns, counted.last_scheduled_ns]
                      if counted.requests else None),
        "overall": overall,
        "tls_verified": not (meta.get("transport") or {}).get("insecure", False),
        "definitions": DEFINITIONS,
        "problems": problems,
    }


def summarize_run(run_dir: Path, scheduled: int, live: list[LiveCounts] | None = None,
                  readers: Iterable = ()) -> dict:
    """The run's summary document (warm-up requests left out of `overall`). Counts come from
    `live` (taken as the run's records were drained), or are taken from the files without
    it. `readers` (objects with COLUMNS and add(model.Columns), closed at the end of the
    first pass) see every record in the first pass over the files."""
    readers = list(readers)
    problems: list[str] = []
    if live is None:
        phases = [Counts() for _ in PHASES]
    else:
        phases = [Counts.total(counts.phases[p] for counts in live) for p in range(len(PHASES))]
    dists = {name: stats.StreamedDistribution() for name in DURATIONS}
    first_columns = sorted(set(COUNT_COLUMNS if live is None else PASS_COLUMNS).union(
        *(r.COLUMNS for r in readers)))
    passes = 0
    try:
        while passes == 0 or any(d.open() for d in dists.values()):
            first = passes == 0
            for batch in iter_batches(run_dir, first_columns if first else PASS_COLUMNS,
                                      problems if first else []):
                c = Columns.decode(batch)
                if first:
                    if live is None:
                        for p, counts in enumerate(phases):
                            counts.add(c, c.phase == p)
                    for reader in readers:
                        reader.add(c)
                measured = c.measured
                for name, d in dists.items():
                    if d.open():
                        d.add(c.duration(name, measured))
            for d in dists.values():
                if d.open():
                    d.end_pass()
            if first:
                for reader in readers:
                    reader.close()
                readers = []
            passes += 1
    finally:
        for reader in readers:
            reader.close()
    messages = read_failures(run_dir, problems)
    measured = phases[PHASES.index("measure")]
    return document(Counts.total(phases), measured, {n: d.result() for n, d in dists.items()},
                    run_metadata(run_dir), scheduled, False, messages, problems)


# ---------------------------------------------------------------- failure messages

# What a failure kind means when its transport left no message of its own.
KIND_EXPLANATIONS = {
    "overload": "over --max-inflight, never sent",
    "not_sent": "run stopped before its due time",
    "cancelled": "in flight or waiting for a connection when the run was stopped",
    "timeout": "no answer within --timeout",
}
MESSAGE_CHARS = 160          # longer messages are cut in the printed summary (not in JSON)
MOST_SHOWN = 3               # most frequent messages printed per kind


def failure_details(messages: dict, errors: dict[str, int], status_codes: dict[int, int]) -> dict:
    """For each failure kind with records: its count, and its first and most frequent
    messages (libcurl's error text, the gRPC status message, errno) from the workers' logs
    (`messages`: failures.read_failures); kinds without messages get a fixed explanation
    where there is one, `status` failures the statuses they were answered with."""
    out = {}
    for kind, count in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])):
        if kind == "ok" or not count:
            continue
        info = {"count": int(count), "first": None, "messages": [], "explanation": None}
        found = messages.get(kind)
        if found and found["messages"]:
            info["first"] = found["first"]
            info["messages"] = list(found["messages"])
        elif kind == "status" and status_codes:
            codes = sorted(status_codes.items(), key=lambda kv: -kv[1])
            info["explanation"] = "answered with status " + ", ".join(f"{c} ({n:,})" for c, n in codes)
        else:
            info["explanation"] = KIND_EXPLANATIONS.get(kind)
        out[kind] = info
    return out


def _quote(message: str) -> str:
    text = " ".join(str(message).split())
    return '"' + (text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…") + '"'


def format_failures(failures: dict, indent: str = "  ", bare: bool = False) -> list[str]:
    """One line per failure kind: `connect 20: first "..."; most "..." (20)`; a kind with
    nothing to say about it gets a bare `reset 20` line only when `bare`."""
    lines = []
    for kind, info in failures.items():
        head = f"{indent}{kind} {info['count']:,}: "
        most = info.get("messages") or []
        first = (info.get("first") or {}).get("message")
        if most:
            top = ", ".join(f"{_quote(m['message'])} ({m['count']:,})" for m in most[:MOST_SHOWN])
            if first is None or (len(most) == 1 and first == most[0]["message"]):
                lines.append(head + top)
            else:
                lines.append(head + f"first {_quote(first)}; most {top}")
        elif info.get("explanation"):
            lines.append(head + info["explanation"])
        elif bare:
            lines.append(head[:-2])
    return lines


# ---------------------------------------------------------------- text


def format_verdict(verdict: dict, lag_p99_ns: float | None, late_1ms: float | None) -> str:
    """'kept: lag p99 120µs (limit 1ms), 0.10% of sends later than 1 ms' or
    'not kept: <reasons>'."""
    if not verdict["kept"]:
        return "not kept: " + "; ".join(verdict["reasons"])
    late = "" if late_1ms is None else f", {fmt.share(late_1ms)} of sends later than 1 ms"
    return (f"kept: lag p99 {fmt.duration(lag_p99_ns)} (limit "
            f"{fmt.duration(verdict['lag_p99_limit_ns'])}){late}")


def format_rate_line(rates: dict, scheduled: int, sent: int, verdict: dict | None) -> str | None:
    """`rate      intended 200.0 req/s  sent 5.0 req/s (2.5%)  answered 5.0 req/s`, and
    `SCHEDULE NOT KEPT: <why>` when it was not. None when there is no rate (one request)."""
    if rates.get("intended") is None:
        return None
    share = f" ({100 * sent / scheduled:.1f}%)" if scheduled else ""
    line = (f"rate      intended {fmt.rate(rates['intended'])} req/s  sent "
            f"{fmt.rate(rates['sent'])} req/s{share}  answered {fmt.rate(rates['answered'])} req/s")
    if verdict is not None and not verdict["kept"]:
        line += "   SCHEDULE NOT KEPT: " + "; ".join(verdict["reasons"])
    return line


def _percentiles(distribution: dict, shown) -> str:
    return "  ".join(f"{k} {fmt.duration(distribution[k])}" for k in shown)


def format_summary(summary: dict) -> str:
    """The lines a run prints at its end."""
    lines = [f"requests  scheduled {summary['scheduled']}  sent {summary['sent']}  "
             f"ok {summary['ok']}  failed {summary['failed']}  lost {summary['lost']}"]
    if summary["errors"]:
        lines.append("outcomes  " + "  ".join(f"{k} {v}" for k, v in sorted(summary["errors"].items())))
    lines += format_failures(summary.get("failures") or {})
    rate = format_rate_line(summary.get("rates") or {}, summary["scheduled"], summary["sent"],
                            summary.get("schedule"))
    if rate:
        lines.append(rate)
    g = summary["overall"]
    lines.append("send lag  " + _percentiles(g["lag_ns"], LAG_SHOWN)
                 + f"   (actual - intended, {g['sent']} measured requests)")
    lines.append("latency   " + _percentiles(g["latency_ns"], LATENCY_SHOWN) + "   (from actual send)")
    lines.append("          " + _percentiles(g["latency_intended_ns"], LATENCY_SHOWN)
                 + "   (from intended send)")
    for p in summary.get("problems") or []:
        lines.append(f"warning   {p}")
    return "\n".join(lines)

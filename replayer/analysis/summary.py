"""The summary document: one schema for what a run did, written by the run (its summary.json
and the lines it prints) and extended by `replayer report` (per target, per class, fidelity,
the files it wrote) into the report's summary.json.

  scheduled, recorded, lost         requests this node scheduled, records read, the difference
  sent, ok, failed, errors          every record (warm-up included), errors by kind
  rates                             intended, sent, answered per second, duration_s (stats.rates)
  verdict                           was the schedule kept (stats.schedule_verdict: lag p99 within
                                    --max-lag, at most --max-lost lost), the late sends by cause,
                                    advice
  thresholds                        each --threshold: expr, value, met, shown, reason
  all_failed                        no request was answered ok
  failures                          per failure kind: count, first and most frequent messages
  include_warmup, start_ns, window_ns
  overall                           a group: the requests counted (warm-up excluded unless
                                    include_warmup): requests, sent, completed, ok, errors,
                                    status, rates, lag_ns, latency_ns, latency_intended_ns
                                    (stats.distribution), failures
  classes                           per request class, the class's group with its SLO and its
                                    attainment (ClassResults); the run's summary has it when
                                    its schedule has classes
  tls_verified, definitions, problems

The run adds workers (given to the summary: their stall counters word the advice), stopped,
latf and trace; the report adds run_dir, targets (groups), fidelity and files.
Durations are nanoseconds; what each quantity is, is replayer.analysis.model's.

The run's summary (summarize_run) is read in memory that does not grow with the run: its
counts were taken as the records were drained (model.LiveCounts), and its percentiles are
exact, nearest rank, from passes over the files (stats.StreamedDistribution): the first pass
also feeds the run's other readers of its records (the -latf file, the Zipkin spans), so the
end of a run reads its records twice (a third time when the range that holds a percentile
holds more values than StreamedPercentiles keeps: over 2**18 within 1/256 of an octave
overall, rare; over 2**15 within 1/16 of an octave for a class, in classes of a million
requests and more). The report loads columns instead and computes the same numbers
(replayer.analysis.report).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from replayer.analysis import fmt, stats
from replayer.analysis.failures import read_failures
from replayer.analysis.model import (DEFINITIONS, DURATIONS, ERROR_NAMES, PHASES, Columns,
                                     Counts, LiveCounts, class_table, run_metadata)
from replayer.analysis.records import iter_batches, record_files
from replayer.analysis.thresholds import Goals, ThresholdEvaluator

# What the end-of-run passes read: enough for the percentiles and the late sends' causes
# (records written before late_cause existed lack it: read where present)...
PASS_COLUMNS = ["phase", "error", "scheduled_ns", "sent_ns", "done_ns", "late_cause"]
# ...and for counting, when the drain did not (a summary of a finished run directory).
COUNT_COLUMNS = PASS_COLUMNS + ["status"]
# What thresholds on a class or a target read besides.
TAG_COLUMNS = ["target", "cls"]
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
    }


def run_rates(run: Counts, scheduled: int | None) -> dict:
    """The run's rates (stats.rates) over every record; with no schedule size known, the
    records say how many requests there were."""
    requests = run.requests if scheduled is None else scheduled
    duration = (stats.schedule_duration_ns(requests, run.first_scheduled_ns, run.last_scheduled_ns)
                if run.requests else None)
    return stats.rates(requests, run.sent, run.ok, duration)


def workers_of(meta: dict, fallback: int) -> int:
    """How many workers the run had: run.json's count, else `fallback` (its record streams)."""
    workers = meta.get("workers")
    return workers if isinstance(workers, int) and workers > 0 else max(fallback, 1)


def max_lag_ns(goals: Goals, run: Counts, scheduled: int | None, workers: int) -> int:
    """The verdict's lag limit, which also makes a send late: --max-lag, else its default
    (stats.kept_lag_limit_ns) from the run's intended rate and workers."""
    if goals.max_lag_ns is not None:
        return goals.max_lag_ns
    return stats.kept_lag_limit_ns(run_rates(run, scheduled)["intended"], workers)


class LateSends:
    """Sends later than threshold_ns (the verdict's max lag), counted over the requests given,
    and by cause (stats.CAUSES) from the records' late_cause; by_cause is None when some
    records do not have it (written before it existed)."""

    def __init__(self, threshold_ns: int | None = None):
        self.threshold_ns = threshold_ns
        self.count = 0
        self.by_cause: dict[str, int] | None = dict.fromkeys(stats.CAUSES, 0)

    def add(self, c: Columns, where: np.ndarray | None = None) -> None:
        sent = c.sent if where is None else c.sent & where
        late = np.zeros(c.n, bool)
        late[sent] = c.sent_ns[sent] - c.scheduled_ns[sent] > self.threshold_ns
        self.count += int(np.count_nonzero(late))
        if self.by_cause is None or not c.n:
            return
        if c.late_cause is None:
            self.by_cause = None
            return
        for cause, n in stats.count_causes(c.late_cause[late], c.late_causes).items():
            self.by_cause[cause] += n


def document(run: Counts, counted: Counts, distributions: dict[str, dict], meta: dict,
             scheduled: int | None, include_warmup: bool, messages: dict,
             problems: list[str], goals: Goals | None = None, workers: int | None = None,
             late: LateSends | None = None, thresholds: list[dict] | None = None,
             worker_stats: list[dict] | None = None) -> dict:
    """The summary document (see the module doc) from the counts of every record (`run`), of
    the requests counted (`counted`), their distributions, run.json, how many requests were
    scheduled (None: unknown), the failure messages (failures.read_failures) and the
    problems met reading; judged against `goals` (default: run.json's options) with the
    late sends (`late`, counted over the requests counted with threshold max_lag_ns), the
    thresholds' results (ThresholdEvaluator) and the workers' counters (`worker_stats`)."""
    goals = Goals.from_options(meta.get("options")) if goals is None else goals
    workers = workers_of(meta, 1) if workers is None else workers
    rates = run_rates(run, scheduled)
    requests = run.requests if scheduled is None else scheduled
    start = meta.get("start_ns")
    overall = group(counted, distributions, span_ns(counted))
    overall["failures"] = failure_details(messages, counted.errors, counted.status_failed)
    verdict = stats.schedule_verdict(
        requests, run.never_sent, distributions["lag_ns"]["p99"], rates["intended"],
        workers=workers, max_lag_ns=max_lag_ns(goals, run, scheduled, workers),
        max_lag_default=goals.max_lag_ns is None, max_lost=goals.max_lost,
        missing=0 if scheduled is None else scheduled - run.requests,
        late=None if late is None else late.count,
        late_by_cause=None if late is None else late.by_cause,
        options=meta.get("options"), worker_stats=worker_stats)
    doc = {
        "scheduled": scheduled,
        "recorded": run.requests,
        "lost": None if scheduled is None else scheduled - run.requests,
        "sent": run.sent,
        "ok": run.ok,
        "failed": run.requests - run.ok,
        "errors": run.errors_by_kind(),
        "rates": rates,
        "verdict": verdict,
        "thresholds": list(thresholds or []),
        "all_failed": bool(run.requests) and run.ok == 0,
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
    if worker_stats is not None:
        doc["workers"] = worker_stats
    return doc


def summarize_run(run_dir: Path, scheduled: int, live: list[LiveCounts] | None = None,
                  readers: Iterable = (), worker_stats: list[dict] | None = None,
                  goals: Goals | None = None) -> dict:
    """The run's summary document (warm-up requests left out of `overall`). Counts come from
    `live` (taken as the run's records were drained), or are taken from the files without
    it. `readers` (objects with COLUMNS and add(model.Columns), closed at the end of the
    first pass) see every record in the first pass over the files. Judged against `goals`
    (default: the options in run.json), with the workers' counters (`worker_stats`,
    summary.json's workers) in the advice."""
    readers = list(readers)
    problems: list[str] = []
    meta = run_metadata(run_dir)
    goals = Goals.from_options(meta.get("options")) if goals is None else goals
    workers = workers_of(meta, len(record_files(run_dir)))
    if live is None:
        phases = [Counts() for _ in PHASES]
    else:
        phases = [Counts.total(counts.phases[p] for counts in live) for p in range(len(PHASES))]
    dists = {name: stats.StreamedDistribution() for name in DURATIONS}
    classes = class_table(meta)
    evaluator = ThresholdEvaluator(goals.thresholds, [k["name"] for k in classes])
    by_class = ClassResults(classes) if classes else None
    # Whether a send was late needs the run's rate: known before the first pass when the
    # drain counted, else after it (then the late sends are counted in the second).
    late = LateSends(None if live is None else max_lag_ns(goals, Counts.total(phases), scheduled,
                                                          workers))
    late_counted = False
    later_columns = PASS_COLUMNS + (TAG_COLUMNS if any(t.tags for t in goals.thresholds) else [])
    if by_class is not None:
        later_columns = sorted(set(later_columns).union(["cls"]))
    first_columns = sorted(set(COUNT_COLUMNS if live is None else PASS_COLUMNS).union(
        later_columns, by_class.COLUMNS if by_class is not None else (),
        *(r.COLUMNS for r in readers)))
    passes = 0
    try:
        while (passes == 0 or any(d.open() for d in dists.values()) or evaluator.open()
               or not late_counted or (by_class is not None and by_class.open())):
            first = passes == 0
            count_late = late.threshold_ns is not None and not late_counted
            for batch in iter_batches(run_dir, first_columns if first else later_columns,
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
                if count_late:
                    late.add(c, measured)
                if evaluator.open():
                    evaluator.add(c)
                if by_class is not None and by_class.open():
                    by_class.add(c, measured)
            for d in dists.values():
                if d.open():
                    d.end_pass()
            if evaluator.open():
                evaluator.end_pass()
            if by_class is not None and by_class.open():
                by_class.end_pass()
            late_counted = late_counted or count_late
            if first:
                for reader in readers:
                    reader.close()
                readers = []
                if late.threshold_ns is None:
                    late.threshold_ns = max_lag_ns(goals, Counts.total(phases), scheduled, workers)
            passes += 1
    finally:
        for reader in readers:
            reader.close()
    messages = read_failures(run_dir, problems)
    measured = phases[PHASES.index("measure")]
    doc = document(Counts.total(phases), measured, {n: d.result() for n, d in dists.items()},
                   meta, scheduled, False, messages, problems, goals=goals, workers=workers,
                   late=late, thresholds=evaluator.results(), worker_stats=worker_stats)
    if by_class is not None:
        doc["classes"] = by_class.results(span_ns(measured))
        add_inference_verdict(doc, meta)
    return doc


def add_inference_verdict(doc: dict, meta: dict) -> None:
    """The MLPerf-style verdict of a `gen classes` schedule (analysis/mlperf.py) and the seed's
    table by (tier, slo), when run.json carries its rules."""
    from replayer.analysis.mlperf import mlperf_verdict
    verdict = mlperf_verdict(meta, doc.get("classes") or {}, doc["start_ns"])
    if verdict is not None:
        doc["mlperf"] = verdict


# ---------------------------------------------------------------- classes


class ClassResults:
    """Results per request class: the one computation of a class's group, for the run's
    summary (streamed over its record files) and `replayer report` (over loaded columns).

    A class's group is a `group` of the class's requests counted (measured: warm-up left out
    unless the report includes it), with the class's index, tags, slo_ns and timeout_ns
    (model.class_table), and its SLO attainment:

      slo_attainment           the share of the class's requests counted that were answered
                               ok with latency (from actual send: done - sent) <= slo_ns
      slo_attainment_intended  the same with latency_intended (from intended send: done -
                               scheduled)
      slo_met, slo_met_intended  how many requests attained it, each way

    Requests never sent, failed or timed out count as not attained: the denominator is every
    request of the class counted. A class without an SLO has None for all four. Groups are
    keyed by class name (classN for a number beyond the class table, name#N for a name
    given twice), in class order; a class without requests counted has none.

    Passes as stats.StreamedDistribution: add() every batch of each pass, end_pass(), until
    open() is false; then results(). Rows are grouped by class in chunks of up to CHUNK rows,
    so a schedule of many classes (gen azure: one per function) costs a few numpy calls per
    class per chunk, not per batch. Memory: a chunk, and per class three distributions, each
    a histogram of 2**BITS counts (BITS_MANY with more than MANY classes) and, after the
    first pass, at most COLLECT values kept per percentile."""

    COLUMNS = ["cls", "status"]         # read besides the counts' and the durations' columns
    CHUNK = 1 << 18
    BITS, BITS_MANY, MANY = 12, 8, 256
    COLLECT = 1 << 15
    _FIELDS = ("cls", "error", "scheduled_ns", "sent_ns", "done_ns", "has_sent", "has_done",
               "status")

    def __init__(self, classes: list[dict]):
        self.classes = classes
        self.bits = self.BITS if len(classes) <= self.MANY else self.BITS_MANY
        self.errors = list(ERROR_NAMES)
        self.counts: dict[int, Counts] = {}
        self.dists: dict[int, dict[str, stats.StreamedDistribution]] = {}
        self.met: dict[int, list[int]] = {}
        self.passes = 0
        self._pending: list[Columns] = []
        self._pending_rows = 0

    @classmethod
    def of_columns(cls, classes: list[dict], c: Columns, duration_ns: float | None) -> dict:
        """The groups of the classes of the requests in c (all of them counted)."""
        results = cls(classes)
        while results.open():
            results.add(c)
            results.end_pass()
        return results.results(duration_ns)

    def open(self) -> bool:
        return self.passes == 0 or any(d.open() for ds in self.dists.values() for d in ds.values())

    def add(self, c: Columns, where: np.ndarray | None = None) -> None:
        """The requests of c with a class (those in `where` too, when given)."""
        if not c.n or c.cls is None:
            return
        sel = c.cls >= 0
        if where is not None:
            sel &= where
        rows = int(np.count_nonzero(sel))
        if not rows:
            return
        arrays = {name: getattr(c, name)[sel] for name in self._FIELDS
                  if getattr(c, name) is not None}
        if c.errors is not self.errors and c.errors != self.errors:
            # Error kinds this version does not know, numbered by this batch: one numbering.
            for name in c.errors:
                if name not in self.errors:
                    self.errors.append(name)
            remap = np.array([self.errors.index(name) for name in c.errors] + [-1], np.int8)
            arrays["error"] = remap[arrays["error"]]
        self._pending.append(Columns(rows, errors=self.errors, **arrays))
        self._pending_rows += rows
        if self._pending_rows >= self.CHUNK:
            self._flush()

    def end_pass(self) -> None:
        self._flush()
        for ds in self.dists.values():
            for d in ds.values():
                if d.open():
                    d.end_pass()
        self.passes += 1

    def _info(self, k: int) -> dict:
        if k < len(self.classes):
            return self.classes[k]
        return {"name": f"class{k}", "slo_ns": None, "timeout_ns": None, "tags": {}}

    def _distribution(self) -> stats.StreamedDistribution:
        d = stats.StreamedDistribution()
        d.percentiles = _ClassPercentiles(stats.PERCENTILES, self.bits)
        return d

    def _flush(self) -> None:
        if not self._pending:
            return
        c = self._pending[0] if len(self._pending) == 1 else Columns.concat(self._pending)
        self._pending, self._pending_rows = [], 0
        order = np.argsort(c.cls, kind="stable")
        codes = c.cls[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], codes.size]
        first = self.passes == 0
        for k, lo, hi in zip(codes[starts].tolist(), starts.tolist(), ends.tolist()):
            sub = c.subset(order[lo:hi])
            if first:
                self._count(k, sub)
            for name, d in self.dists[k].items():
                if d.open():
                    d.add(sub.duration(name))

    def _count(self, k: int, sub: Columns) -> None:
        if k not in self.counts:
            self.counts[k] = Counts()
            self.dists[k] = {name: self._distribution() for name in DURATIONS}
            self.met[k] = [0, 0]
        self.counts[k].add(sub)
        slo = self._info(k)["slo_ns"]
        if slo is not None:
            self.met[k][0] += int(np.count_nonzero(sub.duration("latency_ns") <= slo))
            self.met[k][1] += int(np.count_nonzero(sub.duration("latency_intended_ns") <= slo))

    def results(self, duration_ns: float | None) -> dict[str, dict]:
        """{name: group}: the classes' groups (see the class doc), rates over duration_ns (that
        of all the requests counted)."""
        out: dict[str, dict] = {}
        for k in sorted(self.counts):
            counts = self.counts[k]
            if not counts.requests:
                continue
            info = self._info(k)
            slo = info["slo_ns"]
            met, met_intended = self.met[k] if slo is not None else (None, None)
            name = info["name"] if info["name"] not in out else f"{info['name']}#{k}"
            out[name] = {
                "index": k, "tags": dict(info["tags"]), "slo_ns": slo,
                "timeout_ns": info["timeout_ns"],
                **group(counts, {n: d.result() for n, d in self.dists[k].items()}, duration_ns),
                "slo_met": met, "slo_met_intended": met_intended,
                "slo_attainment": None if slo is None else met / counts.requests,
                "slo_attainment_intended": None if slo is None else met_intended / counts.requests,
                "first_scheduled_ns": counts.first_scheduled_ns,
                "last_scheduled_ns": counts.last_scheduled_ns,
            }
        return out


class _ClassPercentiles(stats.StreamedPercentiles):
    """StreamedPercentiles with a smaller histogram (2**bits counts) and fewer values kept:
    one per class and duration, where a schedule may hold thousands of classes."""

    COLLECT = ClassResults.COLLECT

    def __init__(self, qs, bits: int):
        self.BITS = bits
        super().__init__(qs)


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


def format_verdict(verdict: dict) -> str:
    """'schedule kept: lag p99 120µs <= 1ms, 0 lost' or 'schedule NOT kept: <reasons>'."""
    if not verdict["kept"]:
        return "schedule NOT kept: " + "; ".join(verdict["reasons"])
    allowed = f" (<= {verdict['max_lost']:,})" if verdict["max_lost"] else ""
    return (f"schedule kept: lag p99 {fmt.duration(verdict['lag_p99_ns'])} <= "
            f"{fmt.duration(verdict['max_lag_ns'])}, {verdict['lost']:,} lost{allowed}")


def format_late(verdict: dict) -> str | None:
    """'12 sends later than 1ms: stall 8, connection 3, unknown 1' (None without any)."""
    if not verdict.get("late"):
        return None
    text = f"{verdict['late']:,} sends later than {fmt.duration(verdict['max_lag_ns'])}"
    causes = verdict.get("late_by_cause")
    if causes is None:
        return text + " (these records do not say why)"
    return text + ": " + ", ".join(f"{c} {n:,}" for c, n in causes.items() if n)


def format_threshold(result: dict) -> str:
    """'latency.p99<500ms: met (231ms)', 'errors<1%: NOT met (3.20%)', or NOT met and why."""
    if result["met"]:
        return f"{result['expr']}: met ({result['shown']})"
    return f"{result['expr']}: NOT met ({result['reason'] or result['shown']})"


def all_failed_warning(summary: dict) -> str | None:
    """The line a run where every request failed gets, whatever else it says."""
    if not summary.get("all_failed"):
        return None
    kinds = ", ".join(f"{k} {v:,}" for k, v in summary["errors"].items() if k != "ok")
    return f"every one of the {summary['recorded']:,} requests failed ({kinds})"


def goal_failures(summary: dict, strict: bool) -> list[str]:
    """Why a run (or a report) exits with code 5: thresholds not met; with --strict, a
    schedule not kept or every request failed too. Empty when none."""
    out = [f"threshold {format_threshold(t)}" for t in summary.get("thresholds") or []
           if not t["met"]]
    if strict and not summary["verdict"]["kept"]:
        out.append(format_verdict(summary["verdict"]))
    if strict and summary.get("all_failed"):
        out.append(all_failed_warning(summary))
    return out


def format_rate_line(rates: dict, scheduled: int, sent: int, verdict: dict | None) -> str | None:
    """`rate      intended 200.0 req/s  sent 5.0 req/s (2.5%)  answered 5.0 req/s`, and
    `SCHEDULE NOT KEPT` when it was not (the verdict's line says why). None when there is no
    rate (one request)."""
    if rates.get("intended") is None:
        return None
    share = f" ({100 * sent / scheduled:.1f}%)" if scheduled else ""
    line = (f"rate      intended {fmt.rate(rates['intended'])} req/s  sent "
            f"{fmt.rate(rates['sent'])} req/s{share}  answered {fmt.rate(rates['answered'])} req/s")
    if verdict is not None and not verdict["kept"]:
        line += "   SCHEDULE NOT KEPT"
    return line


def format_stalls_line(workers: list[dict]) -> str | None:
    """`stalls    worker 0: 27/s >50µs, 3 >1ms, longest 9.1ms, lost 0.80%; worker 1: ...`:
    each worker's CPU stalls (the run's summary.json `workers[k]["stalls"]`). None without
    any."""
    parts = []
    for w in workers:
        st = w.get("stalls")
        if not st:
            continue
        per_s = st["per_s"]
        rate = "-" if per_s is None else f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.1f}"
        lost = st["lost_ns"] / st["run_ns"] if st.get("run_ns") else None
        parts.append(f"worker {w['worker']}: {rate}/s >{fmt.duration(st['threshold_ns'])}, "
                     f"{st['over_1ms']} >1ms, longest {fmt.duration(st['longest_ns'])}, "
                     f"lost {fmt.share(lost)}")
    return "stalls    " + "; ".join(parts) if parts else None


def _percentiles(distribution: dict, shown) -> str:
    return "  ".join(f"{k} {fmt.duration(distribution[k])}" for k in shown)


CLASS_SHOWN = ("p50", "p95", "p99")
# The most classes printed one line each; summary.json has every one.
CLASS_LINES = 20


def format_class_lines(classes: dict[str, dict], limit: int | None = CLASS_LINES) -> list[str]:
    """One line per class (ClassResults' groups): `class urgent  n 300  ok 290  failed 10
    (timeout 8, status 2)  latency p50 1.2ms p95 3ms p99 5ms (intended p50 .. p95 .. p99 ..)
    SLO 100ms met 96.67% (intended 95.00%)`; past `limit` classes, one line says how many
    more summary.json holds."""
    shown = list(classes.items())[:limit] if limit is not None else list(classes.items())
    if not shown:
        return []
    width = min(max(len(name) for name, _ in shown), 24)
    lines = []
    for name, g in shown:
        failed = g["requests"] - g["ok"]
        kinds = ", ".join(f"{k} {n:,}" for k, n in g["errors"].items() if k != "ok")
        line = (f"class {name.ljust(width)}  n {g['requests']:,}  ok {g['ok']:,}  "
                f"failed {failed:,}{f' ({kinds})' if failed else ''}  latency "
                + " ".join(f"{k} {fmt.duration(g['latency_ns'][k])}" for k in CLASS_SHOWN)
                + " (intended "
                + " ".join(f"{k} {fmt.duration(g['latency_intended_ns'][k])}" for k in CLASS_SHOWN)
                + ")")
        if g.get("slo_ns") is None:
            line += "  no SLO"
        else:
            line += (f"  SLO {fmt.duration(g['slo_ns'])} met {fmt.share(g['slo_attainment'])} "
                     f"(intended {fmt.share(g['slo_attainment_intended'])})")
        lines.append(line)
    if len(classes) > len(shown):
        lines.append(f"class     ... {len(classes) - len(shown):,} more classes in summary.json")
    return lines


def format_summary(summary: dict) -> str:
    """The lines a run prints at its end."""
    lines = [f"requests  scheduled {summary['scheduled']}  sent {summary['sent']}  "
             f"ok {summary['ok']}  failed {summary['failed']}  lost {summary['lost']}"]
    if summary["errors"]:
        lines.append("outcomes  " + "  ".join(f"{k} {v}" for k, v in sorted(summary["errors"].items())))
    lines += format_failures(summary.get("failures") or {})
    verdict = summary["verdict"]
    rate = format_rate_line(summary.get("rates") or {}, summary["scheduled"], summary["sent"],
                            verdict)
    if rate:
        lines.append(rate)
    g = summary["overall"]
    lines.append("send lag  " + _percentiles(g["lag_ns"], LAG_SHOWN)
                 + f"   (actual - intended, {g['sent']} measured requests)")
    stalls = format_stalls_line(summary.get("workers") or [])
    if stalls:
        lines.append(stalls)
    lines.append("latency   " + _percentiles(g["latency_ns"], LATENCY_SHOWN) + "   (from actual send)")
    lines.append("          " + _percentiles(g["latency_intended_ns"], LATENCY_SHOWN)
                 + "   (from intended send)")
    lines += format_class_lines(summary.get("classes") or {})
    if summary.get("mlperf"):
        from replayer.analysis.mlperf import format_verdict as format_mlperf, seed_table
        lines += ["table     " + line for line in seed_table(summary["classes"])]
        lines += format_mlperf(summary["mlperf"])
    lines.append("verdict   " + format_verdict(verdict))
    late = format_late(verdict)
    if late:
        lines.append("late      " + late)
    lines += ["advice    " + a for a in verdict["advice"]]
    lines += ["threshold " + format_threshold(t) for t in summary.get("thresholds") or []]
    failed = all_failed_warning(summary)
    if failed:
        lines.append(f"warning   {failed}")
    for p in summary.get("problems") or []:
        lines.append(f"warning   {p}")
    return "\n".join(lines)

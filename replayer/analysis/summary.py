"""The end-of-run summary: what was scheduled, sent, answered, and how late and how slow.

Read batch by batch from the run's streams, in memory that does not grow with the run: the
percentiles are exact, nearest rank, as in `replayer report` (replayer.analysis.stats.percentiles), from
a second pass over the records (stats.StreamedPercentiles), not from a copy of every value.
Latency and lag figures cover the measured phase (warm-up excluded); counts and rates cover
both. Rates and the schedule verdict have one definition (replayer.analysis.stats.rates,
stats.schedule_verdict), shared with `replayer report` and `replayer compare`; so have the
failure messages shown per error kind (failure_details) and the progress lines of a run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replayer.analysis import stats
from replayer.analysis.failures import read_failures
from replayer.analysis.records import ERROR_NAMES, PHASES, iter_batches
from replayer.analysis.stats import StreamedPercentiles, fmt_ns

LAG_PERCENTILES = (50, 99, 99.9, 100)
LATENCY_PERCENTILES = (50, 95, 99, 99.9)
COLUMNS = ["phase", "error", "status", "scheduled_ns", "sent_ns", "done_ns"]
_OK = ERROR_NAMES.index("ok")
_STATUS = ERROR_NAMES.index("status")
_MEASURE = PHASES.index("measure")


def _pcts(sel: StreamedPercentiles, qs) -> dict[str, float | None]:
    return {(f"p{q:g}" if q != 100 else "max"): (None if v is None else float(v) / 1e3)
            for q, v in zip(qs, sel.values())}


def _codes(col: pa.ChunkedArray | pa.Array, names: list[str]) -> np.ndarray:
    """Dictionary column -> codes in the canonical `names` order."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    local = arr.dictionary.to_pylist()
    remap = np.array([names.index(v) for v in local], dtype=np.int8)
    return remap[arr.indices.to_numpy(zero_copy_only=False)] if len(local) else np.empty(0, np.int8)


def _ints(col) -> tuple[np.ndarray, np.ndarray]:
    """int64 values (0 where null, never via float) and the valid mask."""
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    return pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), valid


def _measures(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                np.ndarray, np.ndarray]:
    err = _codes(batch.column("error"), ERROR_NAMES)
    phase = _codes(batch.column("phase"), PHASES)
    sched = batch.column("scheduled_ns").to_numpy()
    sent, sent_ok = _ints(batch.column("sent_ns"))
    done, done_ok = _ints(batch.column("done_ns"))
    return err, phase, sched, sent, sent_ok, done, done_ok


def _latencies(err, phase, sched, sent, sent_ok, done, done_ok):
    """(lag, latency, latency from the intended time) of the measured requests."""
    m = (phase == _MEASURE) & sent_ok
    answered = m & done_ok & (err == _OK)
    return (sent[m] - sched[m], done[answered] - sent[answered],
            done[answered] - sched[answered])


def summarize_run(run_dir: Path, scheduled_total: int) -> dict:
    problems: list[str] = []
    error_counts = np.zeros(len(ERROR_NAMES), np.int64)
    never_sent = np.zeros(len(ERROR_NAMES), np.int64)
    status_codes: dict[int, int] = {}
    recorded = sent_count = measured = measured_sent = 0
    sched_lo = np.iinfo(np.int64).max
    sched_hi = np.iinfo(np.int64).min
    # Exact percentiles without keeping a value per request: a first pass over the records
    # counts, later passes (usually one) pick the wanted ranks (stats.StreamedPercentiles).
    sels = (StreamedPercentiles(LAG_PERCENTILES), StreamedPercentiles(LATENCY_PERCENTILES),
            StreamedPercentiles(LATENCY_PERCENTILES))
    for batch in iter_batches(run_dir, COLUMNS, problems):
        n = batch.num_rows
        if n == 0:
            continue
        recorded += n
        cols = _measures(batch)
        err, phase, sched, sent, sent_ok, done, done_ok = cols
        error_counts += np.bincount(err, minlength=len(ERROR_NAMES))
        never_sent += np.bincount(err[~sent_ok], minlength=len(ERROR_NAMES))
        measured += int((phase == _MEASURE).sum())
        measured_sent += int(((phase == _MEASURE) & sent_ok).sum())
        sent_count += int(sent_ok.sum())
        sched_lo, sched_hi = min(sched_lo, int(sched.min())), max(sched_hi, int(sched.max()))
        codes, counts = np.unique(batch.column("status").to_numpy(zero_copy_only=False)[err == _STATUS],
                                  return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist()):
            status_codes[code] = status_codes.get(code, 0) + count
        for sel, values in zip(sels, _latencies(*cols)):
            sel.add(values)
    for sel in sels:
        sel.end_pass()
    while any(sel.open() for sel in sels):
        for batch in iter_batches(run_dir, COLUMNS, []):
            if batch.num_rows:
                for sel, values in zip(sels, _latencies(*_measures(batch))):
                    if sel.open():
                        sel.add(values)
        for sel in sels:
            if sel.open():
                sel.end_pass()
    ok = int(error_counts[_OK])
    errors = {name: int(c) for name, c in zip(ERROR_NAMES, error_counts) if c}
    duration = stats.schedule_duration_ns(scheduled_total, sched_lo, sched_hi) if recorded else None
    rates = stats.rates(scheduled_total, sent_count, ok, duration)
    lag_pcts = sels[0].values()
    summary = {
        "scheduled": int(scheduled_total),
        "recorded": recorded,
        "lost": int(scheduled_total - recorded),
        "sent": sent_count,
        "ok": ok,
        "failed": recorded - ok,
        "errors": errors,
        "measured": measured,
        "measured_sent": measured_sent,
        "rates": rates,
        # The same numbers under the names summary.json has always had.
        "intended_rate": rates["intended"],
        "achieved_rate": rates["sent"],
        "schedule": stats.schedule_verdict(
            int(scheduled_total), {n: int(c) for n, c in zip(ERROR_NAMES, never_sent) if c},
            lag_pcts[LAG_PERCENTILES.index(99)], rates["intended"]),
        "failures": failure_details(run_dir, errors, status_codes, problems),
    }
    summary["lag_us"] = _pcts(sels[0], LAG_PERCENTILES)
    summary["latency_us"] = _pcts(sels[1], LATENCY_PERCENTILES)
    summary["latency_from_intended_us"] = _pcts(sels[2], LATENCY_PERCENTILES)
    if problems:
        summary["problems"] = problems
    return summary


def _fmt_us(v: float | None) -> str:
    return fmt_ns(None if v is None else v * 1e3)


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


def failure_details(run_dir: Path | None, errors: dict[str, int], status_codes: dict[int, int],
                    problems: list[str]) -> dict:
    """For each failure kind with records: its count, and its first and most frequent
    messages (libcurl's error text, the gRPC status message, errno) as the workers kept them
    in run_dir; kinds without messages get a fixed explanation where there is one, `status`
    failures the statuses they were answered with."""
    messages = read_failures(run_dir, problems) if run_dir is not None else {}
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


def format_rate_line(rates: dict, scheduled: int, sent: int, verdict: dict | None) -> str | None:
    """`rate      intended 200.0 req/s  sent 5.0 req/s (2.5%)  answered 5.0 req/s`, and
    `SCHEDULE NOT KEPT: <why>` when it was not. None when there is no rate (one request)."""
    if rates.get("intended") is None:
        return None
    share = f" ({100 * sent / scheduled:.1f}%)" if scheduled else ""
    line = (f"rate      intended {rates['intended']:,.1f} req/s  sent {rates['sent']:,.1f} req/s"
            f"{share}  answered {rates['answered']:,.1f} req/s")
    if verdict is not None and not verdict["kept"]:
        line += "   SCHEDULE NOT KEPT: " + "; ".join(verdict["reasons"])
    return line


def format_summary(summary: dict) -> str:
    lines = []
    lines.append(f"requests  scheduled {summary['scheduled']}  sent {summary['sent']}  "
                 f"ok {summary['ok']}  failed {summary['failed']}  lost {summary['lost']}")
    if summary["errors"]:
        lines.append("outcomes  " + "  ".join(f"{k} {v}" for k, v in sorted(summary["errors"].items())))
    lines += format_failures(summary.get("failures") or {})
    rate = format_rate_line(summary.get("rates") or {}, summary["scheduled"], summary["sent"],
                            summary.get("schedule"))
    if rate:
        lines.append(rate)
    lag = summary["lag_us"]
    lines.append("send lag  " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lag.items())
                 + f"   (actual - intended, {summary['measured_sent']} measured requests)")
    lat = summary["latency_us"]
    lines.append("latency   " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lat.items()) + "   (from actual send)")
    lat = summary["latency_from_intended_us"]
    lines.append("          " + "  ".join(f"{k} {_fmt_us(v)}" for k, v in lat.items()) + "   (from intended send)")
    for p in summary.get("problems", []):
        lines.append(f"warning   {p}")
    return "\n".join(lines)


# ---------------------------------------------------------------- progress while running

PROGRESS_EVERY_S = 5.0      # a line this often when stderr is not a terminal...
PROGRESS_MIN_S = 1.0        # ...or, in a short run, about four lines, at least this far apart
PROGRESS_LINES_SHORT = 4


def format_progress_line(elapsed_s: float, total_s: float, sent: int, failed: int,
                         rate: float | None) -> str:
    """The line written every few seconds when stderr is not a terminal."""
    rate_text = "-" if rate is None else f"{rate:,.1f}"
    return (f"progress  {elapsed_s:.1f}s/{total_s:.1f}s  sent {sent}  failed {failed}  "
            f"rate {rate_text} req/s")


def format_status_line(elapsed_s: float, total_s: float, sent: int, scheduled: int, failed: int,
                       recorded: int, rate: float | None, lag_p99_ns: float | None) -> str:
    """The terminal's one-line status, rewritten each second: progress through the schedule,
    the send rate, the failures since the start (and their share of the requests recorded),
    send lag p99 over the last second, and the time left (the schedule's; in-flight requests
    are awaited after it)."""
    rate_text = "-" if rate is None else f"{rate:,.1f}"
    share = f" ({100 * failed / recorded:.1f}%)" if recorded and failed else ""
    left = total_s - elapsed_s
    eta = f"ETA {left:.0f}s" if left > 0 else "awaiting in-flight requests"
    return (f"  {elapsed_s:.1f}s/{total_s:.1f}s  sent {sent:,} of {scheduled:,}  {rate_text} req/s"
            f"  failed {failed:,}{share}  lag p99 {fmt_ns(lag_p99_ns)}  {eta}")


class Progress:
    """A run's live status on stderr, from the counts of the rows drained so far
    (records.LiveCounts): on a terminal a status line rewritten every second, otherwise a
    plain line every PROGRESS_EVERY_S (less in a short run). Sent and failed count the
    requests whose records were drained: answered, failed or never sent."""

    def __init__(self, counts: list, scheduled: int, start_ns: int, span_ns: int, tty: bool):
        self.counts = counts
        self.scheduled = scheduled
        self.start_ns = start_ns
        self.total_s = span_ns / 1e9
        self.tty = tty
        self.every = 1.0 if tty else min(PROGRESS_EVERY_S, max(PROGRESS_MIN_S,
                                                               self.total_s / PROGRESS_LINES_SHORT))
        self._last_at: float | None = None     # monotonic seconds of the last line
        self._last_sent = 0
        self._last_ns: int | None = None
        for c in counts:
            c.keep_lag = tty

    def due(self, now_s: float) -> bool:
        if self._last_at is None:
            self._last_at = now_s
            return False
        return now_s - self._last_at >= self.every

    def line(self, now_s: float, now_ns: int) -> str:
        """The next line (with its carriage return and erase on a terminal)."""
        sent = sum(c.sent for c in self.counts)
        failed = sum(c.failed for c in self.counts)
        since_ns = self.start_ns if self._last_ns is None else max(self._last_ns, self.start_ns)
        rate = ((sent - self._last_sent) * 1e9 / (now_ns - since_ns)) if now_ns > since_ns else None
        self._last_at, self._last_sent, self._last_ns = now_s, sent, now_ns
        elapsed = max(0.0, (now_ns - self.start_ns) / 1e9)
        if not self.tty:
            return format_progress_line(elapsed, self.total_s, sent, failed, rate)
        lags = [c.take_lags() for c in self.counts]
        lags = np.concatenate(lags) if lags else np.empty(0, np.int64)
        p99 = float(stats.percentiles(lags, (99.0,))[0]) if lags.size else None
        recorded = sum(c.rows for c in self.counts)
        return "\r" + format_status_line(elapsed, self.total_s, sent, self.scheduled, failed,
                                         recorded, rate, p99) + "\033[K"

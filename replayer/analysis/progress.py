"""A run's live status on stderr while it goes, from the counts of the rows drained so far
(model.LiveCounts): the progress line (pipe, log) and the terminal's status line."""
from __future__ import annotations

import numpy as np

from replayer.analysis import fmt, stats

PROGRESS_EVERY_S = 5.0      # a line this often when stderr is not a terminal...
PROGRESS_MIN_S = 1.0        # ...or, in a short run, about four lines, at least this far apart
PROGRESS_LINES_SHORT = 4


def format_progress_line(elapsed_s: float, total_s: float, sent: int, failed: int,
                         rate: float | None, label: str = "") -> str:
    """The line written every few seconds when stderr is not a terminal (label: the stage)."""
    return (f"progress  {label + '  ' if label else ''}{elapsed_s:.1f}s/{total_s:.1f}s  "
            f"sent {sent}  failed {failed}  rate {fmt.rate(rate)} req/s")


def format_status_line(elapsed_s: float, total_s: float, sent: int, scheduled: int, failed: int,
                       recorded: int, rate: float | None, lag_p99_ns: float | None,
                       latency_p99_ns: float | None = None, with_latency: bool = False,
                       label: str = "", paused: bool = False) -> str:
    """The terminal's one-line status, rewritten each second: progress through the schedule,
    the send rate, the failures since the start (and their share of the requests recorded),
    send lag p99 and (with_latency) latency p99 over the last second, and the time left (the
    schedule's at the live rate; in-flight requests are awaited after it)."""
    share = f" ({100 * failed / recorded:.1f}%)" if recorded and failed else ""
    left = total_s - elapsed_s
    eta = ("paused" if paused else f"ETA {left:.0f}s" if left > 0
           else "awaiting in-flight requests")
    latency = f"  latency p99 {fmt.duration(latency_p99_ns)}" if with_latency else ""
    return (f"  {label + '  ' if label else ''}{elapsed_s:.1f}s/{total_s:.1f}s  sent {sent:,} of "
            f"{scheduled:,}  {fmt.rate(rate)} req/s  failed {failed:,}{share}  lag p99 "
            f"{fmt.duration(lag_p99_ns)}{latency}  {eta}")


class Progress:
    """A run's live status on stderr, from the counts of the rows drained so far
    (model.LiveCounts): on a terminal a status line rewritten every second, otherwise a
    plain line every PROGRESS_EVERY_S (less in a short run). Sent and failed count the
    requests whose records were drained: answered, failed or never sent."""

    def __init__(self, counts: list, scheduled: int, start_ns: int, span_ns: int, tty: bool,
                 label: str = ""):
        self.counts = counts
        self.label = label              # which stage of a run in stages
        self.paused = False             # set by the run while paused from the control port
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
            return format_progress_line(elapsed, self.total_s, sent, failed, rate, self.label)
        lag_p99 = _p99([c.take_lags() for c in self.counts])
        # Counts that keep latencies too (metrics.LiveRecords, the run's) show their p99.
        with_latency = bool(self.counts) and all(hasattr(c, "take_latencies")
                                                 for c in self.counts)
        latency_p99 = _p99([c.take_latencies() for c in self.counts]) if with_latency else None
        recorded = sum(c.rows for c in self.counts)
        return "\r" + format_status_line(elapsed, self.total_s, sent, self.scheduled, failed,
                                         recorded, rate, lag_p99, latency_p99, with_latency,
                                         self.label, self.paused) + "\033[K"


def _p99(parts: list[np.ndarray]) -> float | None:
    values = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return float(stats.percentiles(values, (99.0,))[0]) if values.size else None

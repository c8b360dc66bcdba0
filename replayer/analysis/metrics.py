"""A run's live metrics in Prometheus's text format (GET /metrics on the control port), counted
from the records as the parent drains them (so they agree with the records: nothing is counted
twice or guessed), plus the requests in flight that each worker reports in its status row.

  replayer_requests_total{stage, class, outcome}      records by how they ended (error kind)
  replayer_send_lag_seconds{stage, class}             histogram of sent - scheduled (sent)
  replayer_latency_seconds{stage, class}              histogram of done - sent (answered ok)
  replayer_inflight{stage, worker}                    requests handed over, not yet answered
  replayer_scheduled_requests{stage}                  requests the stage replays
  replayer_rate_scale{stage}, replayer_paused{stage}  the live settings (PUT /config)

Counts are those of the records drained so far (the parent drains at least every --flush-ms);
class "none" holds requests of a schedule without classes. LiveRecords is the drain's counter
(model.LiveCounts) that also feeds these and keeps the last second's latencies for the
terminal's status line.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from replayer.analysis.model import ERROR_NAMES, Columns, LiveCounts

# Bucket bounds (seconds): send lag from 10 µs (a kept schedule) up; latency from 100 µs.
LAG_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS_S = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                     0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NO_CLASS = "none"


class _Histograms:
    """One histogram per class: bucket counts (the last slot: above every bound) and sums."""

    def __init__(self, n_classes: int, bounds_s: tuple[float, ...]):
        self.bounds_s = bounds_s
        self.bounds_ns = np.array([round(b * 1e9) for b in bounds_s], np.int64)
        self.counts = np.zeros((n_classes, len(bounds_s) + 1), np.int64)
        self.sums_ns = np.zeros(n_classes, np.float64)

    def add(self, cls: np.ndarray, values_ns: np.ndarray) -> None:
        if values_ns.size == 0:
            return
        # le semantics: a value equal to a bound is in that bound's bucket.
        bucket = np.searchsorted(self.bounds_ns, values_ns, side="left")
        np.add.at(self.counts, (cls, bucket), 1)
        self.sums_ns += np.bincount(cls, weights=values_ns.astype(np.float64),
                                    minlength=len(self.sums_ns))

    def family(self, name: str, doc: str, labels: list[str], prefix: list[str],
               class_names: list[str]):
        from prometheus_client.core import HistogramMetricFamily
        fam = HistogramMetricFamily(name, doc, labels=labels)
        for k, cls_name in enumerate(class_names):
            cumulative = np.cumsum(self.counts[k])
            buckets = [(repr(b), float(cumulative[j])) for j, b in enumerate(self.bounds_s)]
            buckets.append(("+Inf", float(cumulative[-1])))
            fam.add_metric(prefix + [cls_name], buckets, sum_value=self.sums_ns[k] / 1e9)
        return fam


class RunMetrics:
    """The metrics of one run (or stage), fed with the records drained (add) and read by the
    control server (collect, a prometheus_client collector). Thread-safe: the drain adds in
    the supervisor's thread, the server collects in its own."""

    def __init__(self, classes: list[str], stage: str = "", scheduled: int = 0,
                 inflight: Callable[[], list[int]] | None = None,
                 settings: Callable[[], tuple[float, bool]] | None = None):
        self.class_names = list(classes) + [NO_CLASS]
        self.stage = stage
        self.scheduled = scheduled
        self._inflight = inflight
        self._settings = settings
        n = len(self.class_names)
        self.requests = np.zeros((n, len(ERROR_NAMES)), np.int64)
        self.lag = _Histograms(n, LAG_BUCKETS_S)
        self.latency = _Histograms(n, LATENCY_BUCKETS_S)
        self._lock = threading.Lock()

    def _class_index(self, c: Columns) -> np.ndarray:
        none = len(self.class_names) - 1
        if c.cls is None:
            return np.full(c.n, none, np.int64)
        cls = c.cls.astype(np.int64)
        return np.where((cls >= 0) & (cls < none), cls, none)

    def add(self, c: Columns) -> None:
        if c is None or c.n == 0:
            return
        cls = self._class_index(c)
        error = np.clip(c.error.astype(np.int64), 0, len(ERROR_NAMES) - 1)
        sent, ok = c.sent, c.ok
        lag = c.sent_ns[sent] - c.scheduled_ns[sent]
        latency = c.done_ns[ok] - c.sent_ns[ok]
        with self._lock:
            np.add.at(self.requests, (cls, error), 1)
            self.lag.add(cls[sent], lag)
            self.latency.add(cls[ok], latency)

    def counts(self) -> dict[tuple[str, str], int]:
        """{(class, outcome): records} of the records counted so far, zeros left out."""
        with self._lock:
            return {(self.class_names[k], ERROR_NAMES[e]): int(self.requests[k, e])
                    for k, e in zip(*np.nonzero(self.requests))}

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        stage = [self.stage]
        with self._lock:
            requests = CounterMetricFamily(
                "replayer_requests", "Scheduled requests recorded, by class and outcome (the "
                "record's error kind: ok, timeout, connect, ..., not_sent)",
                labels=["stage", "class", "outcome"])
            for k, e in zip(*np.nonzero(self.requests)):
                requests.add_metric(stage + [self.class_names[k], ERROR_NAMES[e]],
                                    float(self.requests[k, e]))
            yield requests
            yield self.lag.family("replayer_send_lag_seconds", "Send lag (sent - scheduled) "
                                  "of the requests sent", ["stage", "class"], stage,
                                  self.class_names)
            yield self.latency.family("replayer_latency_seconds", "Latency (done - sent) of "
                                      "the requests answered ok", ["stage", "class"], stage,
                                      self.class_names)
        inflight = GaugeMetricFamily("replayer_inflight", "Requests handed to the transport "
                                     "and not yet answered, per worker",
                                     labels=["stage", "worker"])
        for k, n in enumerate(self._inflight() if self._inflight else []):
            inflight.add_metric(stage + [str(k)], float(n))
        yield inflight
        yield _gauge("replayer_scheduled_requests", "Requests this stage replays", stage,
                     self.scheduled)
        if self._settings is not None:
            rate, paused = self._settings()
            yield _gauge("replayer_rate_scale", "The live rate, as a share of the schedule's "
                         "(PUT /config rate)", stage, rate)
            yield _gauge("replayer_paused", "1 while paused from the control port", stage,
                         1.0 if paused else 0.0)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of these metrics."""
        from prometheus_client import CollectorRegistry, generate_latest
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry)


def _gauge(name: str, doc: str, stage: list[str], value: float):
    from prometheus_client.core import GaugeMetricFamily
    fam = GaugeMetricFamily(name, doc, labels=["stage"])
    fam.add_metric(stage, float(value))
    return fam


class LiveRecords(LiveCounts):
    """The drain's counts of one worker's records (model.LiveCounts) that also feed the run's
    metrics and, for the terminal's status line, keep the latencies since the last look."""

    def __init__(self, metrics: RunMetrics | None = None):
        super().__init__()
        self.metrics = metrics
        self._latencies: list[np.ndarray] = []

    def add(self, c: Columns) -> None:
        super().add(c)
        if c is None or c.n == 0:
            return
        if self.keep_lag:
            self._latencies.append(c.latency)
        if self.metrics is not None:
            self.metrics.add(c)

    def take_latencies(self) -> np.ndarray:
        latencies = (np.concatenate(self._latencies) if self._latencies
                     else np.empty(0, np.int64))
        self._latencies = []
        return latencies

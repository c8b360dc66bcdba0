"""-trace: one Zipkin v2 client span per sent request, posted after the run.

Spans are built from the records (nothing is collected on the send path); the ids are those
the transports put in each request's traceparent (replayer.transports.traceparent), so the
target's own spans join the same traces.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from replayer.analysis.model import OK, Columns

BATCH = 1000


def spans(c: Columns, trace_id_high: int, name: str) -> list[dict]:
    """Zipkin v2 span dicts for the requests of c that were sent."""
    sent = c.has_sent
    duration, completed = c.per_record("latency_ns")
    out = []
    for e, t, s, d, done, st, err in zip(
            c.event[sent].tolist(), c.target[sent].tolist(), c.sent_ns[sent].tolist(),
            duration[sent].tolist(), completed[sent].tolist(), c.status[sent].tolist(),
            c.error[sent].tolist()):
        span = {"traceId": f"{trace_id_high:016x}{e:016x}", "id": f"{e + 1:016x}",
                "kind": "CLIENT", "name": name, "timestamp": s // 1000,
                "localEndpoint": {"serviceName": "replayer"},
                "remoteEndpoint": {"serviceName": c.targets[t]},
                "tags": {"status": str(st), "replayer.event": str(e)}}
        if done:
            span["duration"] = max(1, d // 1000)
        if err != OK:
            span["tags"]["error"] = c.errors[err]
        out.append(span)
    return out


class SpanPoster:
    """Posts the spans of the records it is given to a Zipkin collector, BATCH at a time, and
    stops at the first failure. A reader of records (COLUMNS, add, close): the first pass of
    the run's summary feeds it (summary.summarize_run). `posted`: spans accepted; `problem`:
    the first failure (None if none)."""

    COLUMNS = ["event", "target", "sent_ns", "done_ns", "status", "error"]

    def __init__(self, trace_id_high: int, name: str, url: str, timeout_s: float = 10):
        self.trace_id_high = trace_id_high
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self.posted = 0
        self.problem: str | None = None
        self._pending: list[dict] = []

    def add(self, c: Columns) -> None:
        # A BATCH of records at a time: at most two batches of spans are ever held.
        rows = np.arange(c.n)
        for lo in range(0, c.n, BATCH):
            if self.problem is not None:
                return
            self._pending += spans(c.subset(rows[lo:lo + BATCH]), self.trace_id_high, self.name)
            if len(self._pending) >= BATCH:
                self._post(self._pending[:BATCH])
                self._pending = self._pending[BATCH:]

    def close(self) -> None:
        if self._pending and self.problem is None:
            self._post(self._pending)
        self._pending = []

    def _post(self, chunk: list[dict]) -> None:
        req = urllib.request.Request(self.url, data=json.dumps(chunk).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.problem = f"{self.url}: {getattr(exc, 'reason', exc)}"
            return
        self.posted += len(chunk)

"""-trace: one Zipkin v2 client span per sent request, posted after the run.

Spans are built from the records (nothing is collected on the send path); the ids are those
the transports put in each request's traceparent (replayer.transports.traceparent), so the
target's own spans join the same traces.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.compute as pc

from replayer.analysis.records import iter_batches

BATCH = 1000


def spans(run_dir: Path, trace_id_high: int, name: str):
    """Zipkin v2 span dicts, in batches, for every request that was sent."""
    cols = ["event", "target", "sent_ns", "done_ns", "status", "error"]
    for batch in iter_batches(run_dir, cols):
        batch = batch.filter(pc.is_valid(batch.column("sent_ns")))
        if batch.num_rows == 0:
            continue
        events = batch.column("event").to_pylist()
        targets = batch.column("target").cast("string").to_pylist()
        sent = batch.column("sent_ns").to_pylist()
        done = batch.column("done_ns").to_pylist()
        status = batch.column("status").to_pylist()
        errors = batch.column("error").cast("string").to_pylist()
        out = []
        for e, t, s, d, st, err in zip(events, targets, sent, done, status, errors):
            span = {"traceId": f"{trace_id_high:016x}{e:016x}", "id": f"{e + 1:016x}",
                    "kind": "CLIENT", "name": name, "timestamp": s // 1000,
                    "localEndpoint": {"serviceName": "replayer"},
                    "remoteEndpoint": {"serviceName": t},
                    "tags": {"status": str(st), "replayer.event": str(e)}}
            if d is not None:
                span["duration"] = max(1, (d - s) // 1000)
            if err != "ok":
                span["tags"]["error"] = err
            out.append(span)
            if len(out) == BATCH:
                yield out
                out = []
        if out:
            yield out


def post_spans(run_dir: Path, trace_id_high: int, name: str, url: str, timeout_s: float = 10) -> tuple[int, str | None]:
    """Post every span; return how many were accepted and the first failure (None if all)."""
    posted = 0
    for chunk in spans(run_dir, trace_id_high, name):
        req = urllib.request.Request(url, data=json.dumps(chunk).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return posted, f"{url}: {getattr(exc, 'reason', exc)}"
        posted += len(chunk)
    return posted, None

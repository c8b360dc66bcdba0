"""Why requests failed: each worker's failure log, and the merge of them for a run.

A transport notes every failed request in a fixed table in C (replayer._pacer.Transport
.note_failure): per error kind, its count, the first failure (event, time) and up to
FAILURE_MESSAGES distinct messages with their counts ("connect to 127.0.0.1:80: Connection
refused", "HTTP 503", "UNAVAILABLE: ..."); failures with yet another message are only counted.
At its end the worker writes that table to `failures-wNNN.json` in the run directory (small:
bounded by the table); `read_failures` merges the files of a run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FAILURES_GLOB = "failures-w*.json"
MESSAGES_SHOWN = 5


def failures_path(run_dir: str | Path, worker: int) -> Path:
    return Path(run_dir) / f"failures-w{worker:03d}.json"


def write_failures(run_dir: str | Path, worker: int, log: dict) -> Path:
    """Write one worker's failure log (Transport.failure_log()) where read_failures finds it;
    written whole or not at all."""
    path = failures_path(run_dir, worker)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"worker": worker, "failures": log}, indent=1))
    os.replace(tmp, path)
    return path


def read_failures(run_dir: str | Path, problems: list[str] | None = None) -> dict:
    """The failure logs of a run's workers, merged:
    {kind: {"count": int, "first": {"message": str, "event": int, "time_ns": int},
            "messages": [{"message": str, "count": int}, ...]}}
    `messages` by count, most frequent first, at most MESSAGES_SHOWN; failures whose message
    is not among them are counted in a last entry "(N other messages)". A missing or damaged
    file is skipped, with a line in `problems`."""
    problems = [] if problems is None else problems
    merged: dict[str, dict] = {}
    for path in sorted(Path(run_dir).glob(FAILURES_GLOB)):
        try:
            log = json.loads(path.read_text())["failures"]
            kinds = [(str(kind), _entry(item)) for kind, item in log.items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{path}: unreadable failure log, skipped ({type(exc).__name__}: {exc})")
            continue
        for kind, (count, first, messages, other) in kinds:
            into = merged.setdefault(kind, {"count": 0, "first": None, "messages": {}, "other": 0})
            into["count"] += count
            if into["first"] is None or first["time_ns"] < into["first"]["time_ns"]:
                into["first"] = first
            for text, n in messages:
                into["messages"][text] = into["messages"].get(text, 0) + n
            into["other"] += other
    return {kind: _shown(item) for kind, item in merged.items()}


def _entry(item: dict) -> tuple[int, dict, list[tuple[str, int]], int]:
    first = item["first"]
    return (int(item["count"]),
            {"message": str(first["message"]), "event": int(first["event"]),
             "time_ns": int(first["time_ns"])},
            [(str(m["message"]), int(m["count"])) for m in item["messages"]],
            int(item.get("other_messages", 0)))


def _shown(item: dict) -> dict:
    ranked = sorted(item["messages"].items(), key=lambda kv: -kv[1])
    other = item["other"]
    if other or len(ranked) > MESSAGES_SHOWN:
        keep = MESSAGES_SHOWN - 1
        other += sum(n for _, n in ranked[keep:])
        ranked = ranked[:keep]
    messages = [{"message": text, "count": n} for text, n in ranked]
    if other:
        messages.append({"message": f"({other} other messages)", "count": other})
    return {"count": item["count"], "first": item["first"], "messages": messages}

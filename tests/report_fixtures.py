"""Synthetic run directories with known records, for the report and export tests.

A run made here looks like one `replayer run` writes: records-wNNN.arrow per worker (written
with replayer.analysis.records.RecordWriter) and run.json. Its truth is returned alongside, so tests
can compare what report/export compute with numpy on the same data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.analysis.records import ERROR_NAMES, ROW_DTYPE, RecordWriter, records_path

START_NS = 1_700_000_000_000_000_000
TARGETS = ["alpha.example", "beta.example", "gamma.example"]
CLASSES = [{"name": "urgent", "slo_ms": 5}, {"name": "relaxed", "slo_ms": 50}]


@dataclass
class SyntheticRun:
    run_dir: Path
    t_ns: np.ndarray        # schedule offsets
    target: np.ndarray
    cls: np.ndarray
    rows: np.ndarray        # ROW_DTYPE, all workers, event order
    warmup_ns: int

    @property
    def measure(self) -> np.ndarray:
        return self.t_ns >= self.warmup_ns


def write_records(run_dir: Path, rows: np.ndarray, t_ns: np.ndarray, warmup_ns: int = 0,
                  targets: list[str] = TARGETS, target: np.ndarray | None = None,
                  workers: int = 1, run_json: dict | None = None) -> Path:
    """Hand-made records (ROW_DTYPE rows in event order, sent_ns/done_ns 0 for null) written
    as `replayer run` writes them, worker k holding events k, k + workers, ..."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = np.zeros(len(t_ns), np.int32) if target is None else target
    for w in range(workers):
        writer = RecordWriter(records_path(run_dir, w), w, target, targets, None, t_ns, warmup_ns,
                              {"source": "hand-made"})
        writer.write(rows[w::workers].copy())
        writer.close()
    meta = {"start_ns": START_NS, "targets": targets,
            "schedule": {"requests": len(t_ns), "unit_ns": 1_000_000_000, "time_scale": 1.0}}
    (run_dir / "run.json").write_text(json.dumps(run_json or meta))
    return run_dir


def make_run(run_dir: Path, n: int = 100_000, workers: int = 2, seconds: float = 10.0,
             warmup_s: float = 2.0, seed: int = 7, error_share: float = 0.02,
             unsent_share: float = 0.002, poisson: bool = True, batch: int = 8192,
             lag_ns_scale: float = 20_000.0, targets: list[str] = TARGETS) -> SyntheticRun:
    """n requests over `seconds`, Poisson arrivals (or evenly spaced), lognormal latencies,
    exponential send lag, some errors, some never sent (sent/done null) and some sent but
    never completed (done null, timeout)."""
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if poisson:
        t_ns = np.sort(rng.uniform(0, seconds * 1e9, n)).astype(np.int64)
    else:
        t_ns = (np.arange(n) * (seconds * 1e9 / n)).astype(np.int64)
    target = rng.integers(0, len(targets), n).astype(np.int32)
    cls = rng.integers(0, len(CLASSES), n).astype(np.int16)
    rows = np.zeros(n, ROW_DTYPE)
    rows["event"] = np.arange(n)
    rows["scheduled_ns"] = START_NS + t_ns
    lag = rng.exponential(lag_ns_scale, n).astype(np.int64)
    latency = (rng.lognormal(np.log(2e6), 0.8, n)).astype(np.int64) + 1000
    rows["sent_ns"] = rows["scheduled_ns"] + lag
    rows["done_ns"] = rows["sent_ns"] + latency
    rows["status"] = 200
    rows["bytes_out"] = 64
    rows["bytes_in"] = rng.integers(100, 200, n)
    err = np.zeros(n, np.int8)
    kinds = rng.random(n)
    status_err = kinds < error_share / 2
    timeout_err = (kinds >= error_share / 2) & (kinds < error_share)
    unsent = (kinds >= error_share) & (kinds < error_share + unsent_share)
    err[status_err] = ERROR_NAMES.index("status")
    rows["status"][status_err] = 503
    err[timeout_err] = ERROR_NAMES.index("timeout")
    rows["status"][timeout_err] = 0
    rows["done_ns"][timeout_err] = 0          # never completed
    rows["bytes_in"][timeout_err] = 0
    err[unsent] = ERROR_NAMES.index("not_sent")
    rows["status"][unsent] = 0
    rows["sent_ns"][unsent] = 0
    rows["done_ns"][unsent] = 0
    rows["bytes_in"][unsent] = 0
    rows["error"] = err
    warmup_ns = int(warmup_s * 1e9)
    meta = {"source": "synthetic"}
    for w in range(workers):
        mine = rows[w::workers]
        # Records arrive in completion order, not event order, as a real drain writes them.
        order = np.argsort(np.where(mine["done_ns"] > 0, mine["done_ns"], mine["scheduled_ns"]),
                           kind="stable")
        mine = mine[order]
        writer = RecordWriter(records_path(run_dir, w), w, target, targets, cls, t_ns, warmup_ns, meta)
        for i in range(0, len(mine), batch):
            writer.write(mine[i:i + batch].copy())
        writer.close()
    run_json = {
        "options": {"protocol": "http", "duration": int(seconds), "warmup": int(warmup_s),
                    "minute": False, "method": None},
        "start_ns": START_NS,
        "schedule": {"requests": n, "unit_ns": 1_000_000_000, "time_scale": 1.0,
                     "arrivals": "poisson" if poisson else "trace"},
        "targets": targets,
        "classes": CLASSES,
    }
    (run_dir / "run.json").write_text(json.dumps(run_json))
    return SyntheticRun(run_dir, t_ns, target, cls, rows, warmup_ns)


def truncate(path: Path, keep_fraction: float = 0.6) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep_fraction)])

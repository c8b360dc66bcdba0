"""`replayer export`: a run's records as one table in the formats other tools read.

Every format streams: one record batch at a time from each worker's Arrow IPC stream, so
memory stays bounded whatever the run's size (tens of millions of records included).

  csv, parquet, jsonl  every record (warm-up included; the phase column tells them apart) with
                       the derived lag and latencies
  latf                 the vSwarm invoker's rps_lat.csv: one integer latency in µs per line, no
                       header, successful post-warm-up requests only
  locust               PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv with
                       Locust's columns and Locust's response-time rounding
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from replayer.analysis.model import DURATIONS, Columns, arrow_duration, class_table, run_metadata
from replayer.analysis.records import iter_batches, record_files
from replayer.errors import InputError
from replayer.options import opt

# inference-csv: the priority inference seed's per-request CSV (analysis/mlperf.py)
# invocations: one JSON line per invocation of a `gen hourly` schedule (replayer/jobs/hourly.py)
FORMATS = ["csv", "parquet", "latf", "locust", "jsonl", "inference-csv", "invocations"]

# Column order of the exported table.
EXPORT_COLUMNS = ["event", "worker", "target", "cls", "class", "phase", "scheduled_ns", "sent_ns",
                  "done_ns", "lag_ns", "latency_ns", "latency_intended_ns", "status", "error",
                  "bytes_out", "bytes_in"]


@dataclass
class ExportOptions:
    """Write a run's records as one table: csv, parquet or jsonl (every record, with lag and
    latencies), latf (the vSwarm invoker's rps_lat.csv) or locust (Locust's three CSV files).
    Streams record batches, so any run size exports in bounded memory."""

    run_dir: str | None = opt(None, "run directory (holds records-w*.arrow and run.json)",
                              positional=True, env=False, metavar="RUN_DIR")
    format: str = opt("csv", "output format", choices=FORMATS, short="f")
    out: str | None = opt(None, "output file (csv, parquet, jsonl, latf) or file prefix (locust), "
                          "or a directory to write the default name into; default "
                          "RUN_DIR/records.csv, records.parquet, records.jsonl, rps_lat.csv, "
                          "RUN_DIR/locust, metrics.csv (inference-csv), invocations.jsonl "
                          "(invocations)", short="o", metavar="PATH")
    include_warmup: bool = opt(False, "latf and locust: include warm-up requests too (csv, parquet "
                               "and jsonl always hold every record)")
    from_intended: bool = opt(False, "latf and locust: time latency from the intended send time "
                              "(free of coordinated omission) instead of the actual send")


# ---------------------------------------------------------------- table formats


def with_derived(batch: pa.RecordBatch, class_names: pa.Array) -> pa.RecordBatch:
    """The batch in EXPORT_COLUMNS order: class names and the derived lag and latencies
    (model.DURATIONS; null where either time is)."""
    cls = batch.column("cls").to_numpy(zero_copy_only=False)
    bad = (cls < 0) | (cls >= len(class_names))
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.where(bad, 0, cls).astype(np.int32), mask=bad), class_names)
    cols = {name: batch.column(name) for name in batch.schema.names}
    cols["class"] = names
    for name in DURATIONS:
        cols[name] = arrow_duration(batch, name)
    return pa.RecordBatch.from_arrays([cols[c] for c in EXPORT_COLUMNS], names=EXPORT_COLUMNS)


def _json_strings(arr: pa.Array) -> pa.Array:
    """A string or dictionary column as JSON literals ("..." or null)."""
    if pa.types.is_dictionary(arr.type):
        values = [json.dumps(v) for v in arr.dictionary.to_pylist()]
        return pc.fill_null(pa.array(values, pa.string()).take(arr.indices), "null")
    return pc.fill_null(pa.array([json.dumps(v) for v in arr.to_pylist()], pa.string()), "null")


def _jsonl_lines(batch: pa.RecordBatch) -> pa.Array:
    parts = []
    for i, name in enumerate(batch.schema.names):
        col = batch.column(i)
        if pa.types.is_dictionary(col.type) or pa.types.is_string(col.type):
            text = _json_strings(col)
        else:
            text = pc.fill_null(pc.cast(col, pa.string()), "null")
        parts += [("{" if i == 0 else ",") + json.dumps(name) + ":", text]
    parts.append("}\n")
    return pc.binary_join_element_wise(*parts, "")


def _write_string_array(f, arr: pa.Array) -> None:
    """Write a string array's characters back to back (each element ends in its own newline)."""
    if len(arr) == 0:
        return
    arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    f.write(memoryview(data)[int(offsets[0]):int(offsets[-1])])


def export_table(run_dir, fmt: str, out: Path, problems: list[str]) -> int:
    meta = run_metadata(run_dir)
    class_names = pa.array([c["name"] for c in class_table(meta)] or ["-"], pa.string())
    rows = 0
    writer = None
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        try:
            for batch in iter_batches(run_dir, problems=problems):
                table_batch = with_derived(batch, class_names)
                if fmt == "csv":
                    if writer is None:
                        writer = pacsv.CSVWriter(f, table_batch.schema)
                    writer.write_batch(table_batch)
                elif fmt == "parquet":
                    if writer is None:
                        writer = pq.ParquetWriter(f, table_batch.schema, compression="zstd")
                    writer.write_batch(table_batch)
                else:
                    _write_string_array(f, _jsonl_lines(table_batch))
                rows += table_batch.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


# ---------------------------------------------------------------- latf (vSwarm invoker)


class LatfWriter:
    """rps_lat.csv as the invoker writes it: latency in µs (truncated, like Go's
    Duration.Microseconds), one per line, no header; successful requests of the measured phase
    only, unless include_warmup. A reader of records (COLUMNS, add, close): `replayer export
    -f latf` feeds it, and so does the first pass of a run's summary (summary.summarize_run)."""

    COLUMNS = ["phase", "error", "scheduled_ns", "sent_ns", "done_ns"]

    def __init__(self, path: Path, include_warmup: bool = False, from_intended: bool = False):
        self.path = Path(path)
        self.include_warmup = include_warmup
        self.latency = "latency_intended_ns" if from_intended else "latency_ns"
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")

    def add(self, c: Columns) -> None:
        ns = c.duration(self.latency, None if self.include_warmup else c.measured)
        if ns.size == 0:
            return
        us = np.sign(ns) * (np.abs(ns) // 1000)          # toward zero
        _write_string_array(self._file, pc.binary_join_element_wise(
            pa.array(us).cast(pa.string()), "\n", ""))
        self.rows += us.size

    def close(self) -> None:
        self._file.close()


def export_latf(run_dir, out: Path, include_warmup: bool, from_intended: bool,
                problems: list[str]) -> int:
    writer = LatfWriter(out, include_warmup, from_intended)
    try:
        for batch in iter_batches(run_dir, writer.COLUMNS, problems):
            writer.add(Columns.decode(batch))
    finally:
        writer.close()
    return writer.rows


# ---------------------------------------------------------------- locust


# Locust's response-time rounding (locust.stats.bucket_response_time): integers below 100 ms,
# then 2 significant digits. Bucket values are encoded as small indices; latencies above
# one hour share the last bucket.
_BUCKET_CAP_MS = 3_600_000


def locust_bucket(ms: np.ndarray) -> np.ndarray:
    ms = np.asarray(ms, dtype=np.float64)
    out = np.where(ms < 100, np.round(ms),
                   np.where(ms < 1000, np.round(ms, -1),
                            np.where(ms < 10000, np.round(ms, -2), np.round(ms, -3))))
    return np.minimum(out, _BUCKET_CAP_MS).astype(np.int64)


def locust_percentile(buckets: dict[int, int], n: int, percent: float) -> int:
    """locust.stats.calculate_response_time_percentile, on a {bucket: count} dict."""
    wanted = int(n * percent)
    processed = 0
    for value in sorted(buckets, reverse=True):
        processed += buckets[value]
        if n - processed <= wanted:
            return value
    return 0


LOCUST_PERCENTILES = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0]


def _readable(p: float) -> str:
    return f"{int(p * 100) if (p * 100).is_integer() else round(100 * p, 6)}%"


LOCUST_PCT_COLUMNS = [_readable(p) for p in LOCUST_PERCENTILES]
LOCUST_STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                        "Average Response Time", "Min Response Time", "Max Response Time",
                        "Average Content Size", "Requests/s", "Failures/s", *LOCUST_PCT_COLUMNS]
LOCUST_HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
                          *LOCUST_PCT_COLUMNS, "Total Request Count", "Total Failure Count",
                          "Total Median Response Time", "Total Average Response Time",
                          "Total Min Response Time", "Total Max Response Time",
                          "Total Average Content Size"]
LOCUST_FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]


class _Entry:
    """One Locust StatsEntry's worth of totals."""

    def __init__(self):
        self.requests = self.failures = self.none = 0
        self.total_rt = 0.0
        self.min_rt = math.inf
        self.max_rt = 0.0
        self.content = 0
        self.buckets: dict[int, int] = {}

    def add(self, rt_ms: np.ndarray, failed: np.ndarray, content: np.ndarray, valid: np.ndarray):
        self.requests += len(rt_ms)
        self.failures += int(failed.sum())
        self.content += int(content.sum())
        rt = rt_ms[valid]
        self.none += len(rt_ms) - len(rt)
        if len(rt):
            self.total_rt += float(rt.sum())
            self.min_rt = min(self.min_rt, float(rt.min()))
            self.max_rt = max(self.max_rt, float(rt.max()))
            values, counts = np.unique(locust_bucket(rt), return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist()):
                self.buckets[v] = self.buckets.get(v, 0) + c

    def merge(self, other: "_Entry") -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.none += other.none
        self.content += other.content
        self.total_rt += other.total_rt
        self.min_rt = min(self.min_rt, other.min_rt)
        self.max_rt = max(self.max_rt, other.max_rt)
        for v, c in other.buckets.items():
            self.buckets[v] = self.buckets.get(v, 0) + c

    def row(self, method: str, name: str, duration_s: float) -> list:
        n = self.requests - self.none
        min_rt = 0 if self.min_rt == math.inf else self.min_rt
        median = locust_percentile(self.buckets, n, 0.5) if self.buckets else 0
        # Locust clamps the rounded median into [min, max] (StatsEntry.median_response_time).
        if self.buckets:
            median = self.max_rt if median > self.max_rt else min_rt if median < min_rt else median
        pct = (["N/A"] * len(LOCUST_PERCENTILES) if not self.requests else
               [int(locust_percentile(self.buckets, n, p)) for p in LOCUST_PERCENTILES])
        return [method, name, self.requests, self.failures, median,
                self.total_rt / n if n else 0.0, min_rt, self.max_rt,
                self.content / self.requests if self.requests else 0,
                self.requests / duration_s if duration_s > 0 else 0.0,
                self.failures / duration_s if duration_s > 0 else 0.0, *pct]


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _locust_method(meta: dict) -> str:
    options = meta.get("options") or {}
    if options.get("protocol", "grpc") == "grpc":
        return "grpc"
    if options.get("method"):
        return str(options["method"]).upper()
    return "POST" if options.get("body") or options.get("body_file") else "GET"


class LocustExport:
    """Accumulates Locust's statistics batch by batch (memory: one entry per endpoint, one
    row per second of the run, one per distinct failure), then writes the three CSV files."""

    def __init__(self, method: str, from_intended: bool):
        self.method = method
        # Locust's response time: that of every request that completed, whatever its outcome.
        self.latency = "latency_intended_ns" if from_intended else "latency_ns"
        self.entries: dict[str, _Entry] = {}
        self.failures: dict[tuple[str, str], list] = {}
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        # Per second of completion (relative to origin_s): counts and sums for the history.
        self.origin_s: int | None = None
        self.sec: dict[str, np.ndarray] = {}
        self.sec_buckets: dict[tuple[int, int], int] = {}

    def _grow(self, n: int) -> None:
        have = len(self.sec.get("requests", ()))
        if n <= have:
            return
        size = max(n, 2 * have, 64)
        for key, dtype, fill in (("requests", np.int64, 0), ("failures", np.int64, 0),
                                 ("none", np.int64, 0), ("sent", np.int64, 0), ("ended", np.int64, 0),
                                 ("rt_sum", np.float64, 0.0), ("content", np.int64, 0),
                                 ("rt_min", np.float64, math.inf), ("rt_max", np.float64, 0.0)):
            new = np.full(size, fill, dtype)
            if have:
                new[:have] = self.sec[key]
            self.sec[key] = new

    def add(self, cols: Columns) -> None:
        if cols.n == 0:
            return
        sched = cols.scheduled_ns
        rt_ns, valid = cols.per_record(self.latency)
        rt = rt_ns / 1e6
        failed = ~cols.ok
        content = cols.bytes_in
        # Locust logs a request when it ends: done, else (never completed) sent, else scheduled.
        when = np.where(cols.has_done, cols.done_ns, np.where(cols.has_sent, cols.sent_ns, sched))
        lo, hi = int(sched.min()), int(when.max())
        self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
        self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)

        idx, names = cols.target, cols.targets
        for t in np.unique(idx).tolist():
            m = idx == t
            self.entries.setdefault(names[t], _Entry()).add(rt[m], failed[m], content[m], valid[m])

        if failed.any():
            status, err_idx, err_names = cols.status, cols.error.astype(np.int64), cols.errors
            fidx = np.flatnonzero(failed)
            keys = np.stack([idx[fidx].astype(np.int64), err_idx[fidx], status[fidx].astype(np.int64)])
            uniq, inverse = np.unique(keys, axis=1, return_inverse=True)
            inverse = inverse.ravel()
            for j in range(uniq.shape[1]):
                rows = fidx[inverse == j]
                t, e, code = (int(x) for x in uniq[:, j])
                kind = err_names[e]
                text = (f"status {code}" if kind == "status" else
                        f"{kind} (status {code})" if code else kind)
                key = (names[t], text)
                t_lo, t_hi = int(when[rows].min()), int(when[rows].max())
                entry = self.failures.get(key)
                if entry is None:
                    self.failures[key] = [len(rows), t_lo, t_hi]
                else:
                    entry[0] += len(rows)
                    entry[1] = min(entry[1], t_lo)
                    entry[2] = max(entry[2], t_hi)

        # History, by second of the log time.
        secs = when // 1_000_000_000
        first_s = int(min(lo, int(when.min())) // 1_000_000_000)
        if self.origin_s is None:
            self.origin_s = first_s
        if first_s < self.origin_s:  # an earlier batch set a later origin: shift what we have
            shift = self.origin_s - first_s
            for key, arr in self.sec.items():
                fill = math.inf if key == "rt_min" else 0
                self.sec[key] = np.concatenate([np.full(shift, fill, arr.dtype), arr])
            self.sec_buckets = {(s + shift, b): c for (s, b), c in self.sec_buckets.items()}
            self.origin_s = first_s
        rel = secs - self.origin_s
        sent_valid = cols.has_sent
        sent_rel = np.clip(cols.sent_ns[sent_valid] // 1_000_000_000 - self.origin_s, 0, None)
        self._grow(int(max(rel.max(), sent_rel.max() if sent_rel.size else 0)) + 1)
        n = len(self.sec["requests"])
        self.sec["requests"] += np.bincount(rel, minlength=n)
        self.sec["failures"] += np.bincount(rel, weights=failed, minlength=n).astype(np.int64)
        self.sec["none"] += np.bincount(rel, weights=~valid, minlength=n).astype(np.int64)
        self.sec["content"] += np.bincount(rel, weights=content, minlength=n).astype(np.int64)
        self.sec["ended"] += np.bincount(rel[sent_valid], minlength=n)
        self.sec["sent"] += np.bincount(sent_rel, minlength=n)
        self.sec["rt_sum"] += np.bincount(rel[valid], weights=rt[valid], minlength=n)
        np.minimum.at(self.sec["rt_min"], rel[valid], rt[valid])
        np.maximum.at(self.sec["rt_max"], rel[valid], rt[valid])
        if valid.any():
            b = locust_bucket(rt[valid])
            key = rel[valid] * (_BUCKET_CAP_MS + 1) + b
            uniq, counts = np.unique(key, return_counts=True)
            for k, c in zip(uniq.tolist(), counts.tolist()):
                kk = divmod(k, _BUCKET_CAP_MS + 1)
                self.sec_buckets[kk] = self.sec_buckets.get(kk, 0) + c

    def write(self, prefix: str) -> list[Path]:
        duration = ((self.last_ns - self.first_ns) / 1e9) if self.first_ns is not None else 0.0
        paths = [Path(prefix + s) for s in ("_stats.csv", "_stats_history.csv", "_failures.csv")]
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        total = _Entry()
        with open(paths[0], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(LOCUST_STATS_COLUMNS)
            for name in sorted(self.entries):
                entry = self.entries[name]
                w.writerow(entry.row(self.method, name, duration))
                total.merge(entry)
            w.writerow(total.row("", "Aggregated", duration))
        with open(paths[1], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(LOCUST_HISTORY_COLUMNS)
            self._write_history(w)
        with open(paths[2], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(LOCUST_FAILURES_COLUMNS)
            for (name, error), (count, lo, hi) in sorted(self.failures.items()):
                w.writerow([self.method, name, error, count, _utc(lo / 1e9), _utc(hi / 1e9)])
        return paths

    def _write_history(self, w) -> None:
        """One Aggregated row per second, as Locust's default (not full) history: that
        second's requests and failures per second, cumulative percentiles and totals. Locust's
        "User Count" has no open-loop counterpart; it holds the requests in flight at the end
        of that second."""
        if self.origin_s is None:
            return
        by_sec: dict[int, list[tuple[int, int]]] = {}
        for (s, b), c in self.sec_buckets.items():
            by_sec.setdefault(s, []).append((b, c))
        cum = _Entry()
        in_flight = 0
        last = int(np.flatnonzero(self.sec["requests"] + self.sec["sent"]).max()) + 1
        for s in range(last):
            n_req = int(self.sec["requests"][s])
            in_flight += int(self.sec["sent"][s]) - int(self.sec["ended"][s])
            cum.requests += n_req
            cum.failures += int(self.sec["failures"][s])
            cum.none += int(self.sec["none"][s])
            cum.content += int(self.sec["content"][s])
            cum.total_rt += float(self.sec["rt_sum"][s])
            cum.min_rt = min(cum.min_rt, float(self.sec["rt_min"][s]))
            cum.max_rt = max(cum.max_rt, float(self.sec["rt_max"][s]))
            for b, c in by_sec.get(s, ()):
                cum.buckets[b] = cum.buckets.get(b, 0) + c
            if not n_req and not cum.requests:
                continue
            row = cum.row("", "Aggregated", 1.0)
            pct = row[11:]
            w.writerow([self.origin_s + s, max(in_flight, 0), "", "Aggregated",
                        f"{float(n_req):2f}", f"{float(self.sec['failures'][s]):2f}", *pct,
                        *row[2:9]])


def export_locust(run_dir, prefix: str, include_warmup: bool, from_intended: bool,
                  problems: list[str]) -> tuple[int, list[Path]]:
    meta = run_metadata(run_dir)
    acc = LocustExport(_locust_method(meta), from_intended)
    columns = ["target", "phase", "scheduled_ns", "sent_ns", "done_ns", "status", "error", "bytes_in"]
    rows = 0
    for batch in iter_batches(run_dir, columns, problems):
        cols = Columns.decode(batch)
        if not include_warmup:
            cols = cols.subset(cols.measured)
        acc.add(cols)
        rows += cols.n
    return rows, acc.write(prefix)


# ---------------------------------------------------------------- command


def default_out(run_dir: Path, fmt: str) -> Path:
    return run_dir / {"csv": "records.csv", "parquet": "records.parquet", "jsonl": "records.jsonl",
                      "inference-csv": "metrics.csv", "invocations": "invocations.jsonl",
                      "latf": "rps_lat.csv", "locust": "locust"}[fmt]


def output_path(run_dir: Path, fmt: str, out: str | None) -> Path:
    """Where an export goes: -o as given, except that a directory (an existing one, or one
    written with a trailing /) gets the format's default name inside it."""
    if not out:
        return default_out(run_dir, fmt)
    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        return path / default_out(run_dir, fmt).name
    return path


def _refuse_run_files(out: Path, fmt: str, run_dir: Path, records: list[Path]) -> None:
    """An export never overwrites what it reads (a records stream, run.json)."""
    targets = ([Path(str(out) + s) for s in ("_stats.csv", "_stats_history.csv", "_failures.csv")]
               if fmt == "locust" else [out])
    inputs = {p.resolve() for p in records} | {(run_dir / "run.json").resolve()}
    for t in targets:
        if t.resolve() in inputs:
            raise InputError(f"-o {out}: would overwrite {t}, which the export reads; give "
                             "another path")


def export_command(options: ExportOptions) -> int:
    if not options.run_dir:
        raise InputError("give the run directory: replayer export RUN_DIR [-f FORMAT] [-o PATH]")
    run_dir = Path(options.run_dir)
    records = record_files(run_dir)
    out = output_path(run_dir, options.format, options.out)
    _refuse_run_files(out, options.format, run_dir, records)
    problems: list[str] = []
    try:
        if options.format == "latf":
            rows = export_latf(run_dir, out, options.include_warmup, options.from_intended,
                               problems)
            written = [out]
        elif options.format == "inference-csv":
            from replayer.analysis.mlperf import export_seed_csv
            rows = export_seed_csv(run_dir, out, options.include_warmup, problems)
            written = [out]
        elif options.format == "invocations":
            from replayer.jobs.hourly import export_invocations
            rows = export_invocations(run_dir, out, problems)
            written = [out]
        elif options.format == "locust":
            rows, written = export_locust(run_dir, str(out), options.include_warmup,
                                          options.from_intended, problems)
        else:
            rows = export_table(run_dir, options.format, out, problems)
            written = [out]
    except OSError as exc:
        # Reading errors are caught per stream (records.iter_stream): this is the output.
        where = exc.filename or out
        blocker = next((a for a in (Path(where), *Path(where).parents) if a.exists()), Path(where))
        why = (f"{blocker} is a file, not a directory"
               if isinstance(exc, (FileExistsError, NotADirectoryError)) else
               f"cannot write {where} ({exc.strerror or str(exc).splitlines()[0]})")
        raise InputError(f"-o {options.out or out}: {why}; give a writable file or "
                         "directory") from None
    for problem in problems:
        print(f"replayer export: warning: {problem}", file=sys.stderr)
    print(f"exported {rows} records to {', '.join(str(p) for p in written)}")
    return 0

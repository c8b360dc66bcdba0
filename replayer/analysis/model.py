"""What a run's records mean: the one decoder of records into numpy columns, the one
definition of every quantity derived from them, the counts of how requests ended, and the one
reader of run.json. The run's summary, the report, the exports, the plots, the HTML page and
the Zipkin spans all take their numbers from here.

Every record is one scheduled request (replayer.analysis.records has the file format):

  sent               sent_ns is set: the request left (never-sent requests have it null)
  completed          done_ns is set: an answer (of any kind) came back
  ok                 error "ok": answered successfully (so sent and completed)
  measured           phase "measure": due after the warm-up
  lag                sent - scheduled, of requests sent
  latency            done - sent, of ok requests
  latency_intended   done - scheduled, of ok requests (free of coordinated omission, as wrk2)

DURATIONS holds the three derived durations; per record (the exports' columns) each is
defined where both its times are set, and summaries take it over the requests named above.
"""
from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replayer import _pacer
from replayer.errors import InputError
from replayer.jsonfile import read_json

# The error kinds, in the pacer's order: a record's error code indexes this list.
ERROR_NAMES = list(_pacer.ERROR_KINDS)
ErrorKind = enum.IntEnum("ErrorKind", {name.upper(): i for i, name in enumerate(ERROR_NAMES)})
PHASES = ["warmup", "measure"]
# Why a request left when it did (the pacer's order): a record's late_cause indexes this list.
LATE_CAUSES = list(_pacer.LATE_CAUSES)
OK = ERROR_NAMES.index("ok")
STATUS = ERROR_NAMES.index("status")
MEASURE = PHASES.index("measure")

# name -> (end time, start time, the requests a summary takes it over): value = end - start.
DURATIONS = {
    "lag_ns": ("sent_ns", "scheduled_ns", "sent"),
    "latency_ns": ("done_ns", "sent_ns", "ok"),
    "latency_intended_ns": ("done_ns", "scheduled_ns", "ok"),
}
_OF = {"sent": "requests that were sent",
       "ok": "successful requests (error ok)"}

# Written into every summary.json, so the file explains itself.
DEFINITIONS = {
    "scopes": "top-level counts, rates, schedule and failures cover every record of the run "
              "(warm-up included); overall, targets and classes cover the requests counted "
              "(measured: warm-up excluded unless include_warmup)",
    "percentile": "nearest rank: smallest recorded value with at least p% of values <= it "
                  "(numpy method 'inverted_cdf'); max is p100",
    **{name[:-3]: f"{end} - {start}, {_OF[of]}" + (" (free of coordinated omission)"
                                                   if name == "latency_intended_ns" else "")
       for name, (end, start, of) in DURATIONS.items()},
    "slo_attainment": "of a class with an SLO: share of its requests counted that were "
                      "answered ok with latency (from actual send) <= the SLO; requests never "
                      "sent, failed or timed out count as not attained (slo_met: how many "
                      "attained)",
    "slo_attainment_intended": "the same with latency_intended (from intended send)",
    "rates": "requests per second of the schedule's duration (last - first scheduled time, "
             "plus one mean gap: n requests 1/r apart make rate r); intended: requests counted, "
             "sent: those sent, answered: those answered successfully; every group is divided "
             "by the duration of all the requests counted",
    "fidelity": "lag percentiles of sent requests, shares of sends later than 100 µs, 1 ms "
                "and 10 ms, share never sent",
    "verdict": "the schedule was kept when lag p99 (of the requests counted) <= max_lag_ns "
               "(--max-lag; default max(1 ms, 10% of the mean gap between one worker's sends: "
               "workers / intended rate)) and lost (requests of the run never sent, plus "
               "scheduled requests without a record) <= --max-lost (default 0); late: counted "
               "sends with lag > max_lag_ns, by their records' late_cause (none: unknown)",
    "thresholds": "each --threshold over the requests counted: value (ns, a share, req/s or "
                  "a count), met; no value (no such requests) is not met",
    "units": "nanoseconds for every *_ns value, seconds for *_s, requests per second for rates",
}


# ---------------------------------------------------------------- columns


def _codes(col, names: list[str], dtype) -> np.ndarray:
    """A dictionary column's values as indices into `names`, which takes any value it lacks
    at its end (-1 for null)."""
    index = {name: i for i, name in enumerate(names)}
    parts = []
    for chunk in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        local = chunk.dictionary.to_pylist()
        for name in local:
            if name not in index:
                index[name] = len(names)
                names.append(name)
        remap = np.array([index[name] for name in local] + [-1], dtype)
        indices = chunk.indices
        if indices.null_count:
            indices = pc.fill_null(indices, len(local))
        parts.append(remap[indices.to_numpy(zero_copy_only=False)])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _ints(col, fill: int, dtype) -> np.ndarray:
    if col.null_count:
        col = pc.fill_null(col, fill)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _valid(col) -> np.ndarray:
    if not col.null_count:
        return np.ones(len(col), bool)
    return pc.is_valid(col).to_numpy(zero_copy_only=False)


_INTS = (("event", np.int64, 0), ("worker", np.int16, 0), ("cls", np.int16, -1),
         ("scheduled_ns", np.int64, 0), ("status", np.int32, 0), ("bytes_out", np.int32, 0),
         ("bytes_in", np.int64, 0))
_NULLABLE = (("sent_ns", "has_sent"), ("done_ns", "has_done"))
_DICTIONARIES = (("target", "targets", np.int32), ("phase", "phases", np.int8),
                 ("error", "errors", np.int8), ("late_cause", "late_causes", np.int8))


class Columns:
    """Records as numpy arrays, one per column, nulls as masks. Attributes (None where the
    source lacked the column): n; event, worker, cls (-1: none), scheduled_ns, status,
    bytes_out, bytes_in; sent_ns and done_ns (0 where null) with has_sent and has_done;
    target, phase, error and late_cause as codes into the lists targets, phases (PHASES),
    errors (ERROR_NAMES, then any name this version does not know) and late_causes
    (LATE_CAUSES, the same)."""

    FIELDS = ("event", "worker", "target", "cls", "phase", "scheduled_ns", "sent_ns", "done_ns",
              "has_sent", "has_done", "status", "error", "bytes_out", "bytes_in", "late_cause")

    def __init__(self, n: int, targets: list[str] | None = None, phases: list[str] | None = None,
                 errors: list[str] | None = None, late_causes: list[str] | None = None, **arrays):
        self.n = n
        self.targets = [] if targets is None else targets
        self.phases = PHASES if phases is None else phases
        self.errors = ERROR_NAMES if errors is None else errors
        self.late_causes = LATE_CAUSES if late_causes is None else late_causes
        for name in self.FIELDS:
            setattr(self, name, arrays.get(name))

    @classmethod
    def decode(cls, data: pa.RecordBatch | pa.Table, targets: list[str] | None = None,
               errors: list[str] | None = None) -> "Columns":
        """The columns a batch or table of records holds. Give the same `targets` and
        `errors` lists to several decodes to get codes that mean the same in all of them."""
        have = set(data.schema.names)
        arrays = {}
        names = {"targets": [] if targets is None else targets, "phases": list(PHASES),
                 "errors": list(ERROR_NAMES) if errors is None else errors,
                 "late_causes": list(LATE_CAUSES)}
        for field, listed, dtype in _DICTIONARIES:
            if field in have:
                arrays[field] = _codes(data.column(field), names[listed], dtype)
        for field, dtype, fill in _INTS:
            if field in have:
                arrays[field] = _ints(data.column(field), fill, dtype)
        for field, mask in _NULLABLE:
            if field in have:
                col = data.column(field)
                arrays[field] = _ints(col, 0, np.int64)
                arrays[mask] = _valid(col)
        return cls(data.num_rows, **names, **arrays)

    @classmethod
    def from_rows(cls, rows: np.ndarray, phase: np.ndarray, target: np.ndarray,
                  targets: list[str], cls_codes: np.ndarray, worker: int) -> "Columns":
        """The columns of record ring rows (replayer.analysis.records.ROW_DTYPE: 0 for a
        null time), with what the schedule holds for them."""
        # One contiguous copy of each field: what Arrow takes without copying, what numpy
        # counts fastest, and nothing that points into a ring the worker will write again.
        field = {name: np.array(rows[name]) for name in
                 ("event", "scheduled_ns", "sent_ns", "done_ns", "status", "error", "bytes_out",
                  "bytes_in")}
        return cls(len(rows), targets, worker=np.full(len(rows), worker, np.int16),
                   target=target, cls=cls_codes, phase=phase, has_sent=field["sent_ns"] != 0,
                   has_done=field["done_ns"] != 0, **field)

    def subset(self, where: np.ndarray) -> "Columns":
        """The records `where` selects (a mask, or positions)."""
        where = np.asarray(where)
        n = int(np.count_nonzero(where)) if where.dtype == bool else len(where)
        arrays = {name: getattr(self, name)[where] for name in self.FIELDS
                  if getattr(self, name) is not None}
        return Columns(n, self.targets, self.phases, self.errors, self.late_causes, **arrays)

    @staticmethod
    def concat(parts: list["Columns"]) -> "Columns":
        """Columns decoded with shared targets and errors lists, one after the other."""
        first = parts[0]
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in first.FIELDS
                  if getattr(first, name) is not None}
        return Columns(sum(p.n for p in parts), first.targets, first.phases, first.errors,
                       first.late_causes, **arrays)

    # -- what the records mean ------------------------------------------------------------
    @property
    def sent(self) -> np.ndarray:
        return self.has_sent

    @property
    def ok(self) -> np.ndarray:
        return (self.error == OK) & self.has_done & self.has_sent

    @property
    def measured(self) -> np.ndarray:
        return self.phase == MEASURE

    def _is_set(self, time: str) -> np.ndarray | None:
        return {"sent_ns": self.has_sent, "done_ns": self.has_done}.get(time)

    def duration(self, name: str, where: np.ndarray | None = None) -> np.ndarray:
        """The derived duration `name` (DURATIONS) of the requests it is taken over (sent, or
        ok), and only those in `where` when given."""
        end, start, of = DURATIONS[name]
        sel = getattr(self, of)
        if where is not None:
            sel = sel & where
        return getattr(self, end)[sel] - getattr(self, start)[sel]

    def per_record(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The derived duration `name` of every record (0 where undefined), and where it is
        defined: both its times set, whatever the outcome (as the exports' columns)."""
        end, start, _ = DURATIONS[name]
        masks = [m for m in (self._is_set(end), self._is_set(start)) if m is not None]
        defined = masks[0] & masks[1] if len(masks) == 2 else masks[0]
        return np.where(defined, getattr(self, end) - getattr(self, start), 0), defined

    @property
    def lag(self) -> np.ndarray:
        return self.duration("lag_ns")

    @property
    def latency(self) -> np.ndarray:
        return self.duration("latency_ns")

    @property
    def latency_intended(self) -> np.ndarray:
        return self.duration("latency_intended_ns")


def arrow_duration(batch: pa.RecordBatch, name: str) -> pa.Array:
    """DURATIONS[name] of every record of an Arrow batch: null where either time is."""
    end, start, _ = DURATIONS[name]
    return pc.subtract(batch.column(end), batch.column(start))


# ---------------------------------------------------------------- counts


def _add_values(into: dict[int, int], values: np.ndarray) -> None:
    if values.size == 0:
        return
    if values.min() >= 0 and values.max() < 1 << 16:       # HTTP statuses, gRPC codes
        counts = np.bincount(values)
        found = np.flatnonzero(counts)
        counts = counts[found]
    else:
        found, counts = np.unique(values, return_counts=True)
    for value, count in zip(found.tolist(), counts.tolist()):
        into[value] = into.get(value, 0) + count


class Counts:
    """How the requests of one scope ended, added batch by batch: requests, sent, completed,
    ok, by error kind, never sent by error kind, by status, the statuses of the `status`
    failures, and the first and last scheduled times (the span rates are taken over)."""

    def __init__(self):
        self.requests = self.sent = self.completed = self.ok = 0
        self.errors: dict[str, int] = {}
        self.never_sent: dict[str, int] = {}
        self.status: dict[int, int] = {}
        self.status_failed: dict[int, int] = {}
        self.first_scheduled_ns: int | None = None
        self.last_scheduled_ns: int | None = None

    def add(self, c: Columns, where: np.ndarray | None = None) -> "Counts":
        """Count the requests of c (those in `where` when given)."""
        if where is None and c.n and c.error.min() < 0:      # a null error kind: not counted
            where = c.error >= 0
        def pick(a):
            return a if where is None else a[where]
        error = pick(c.error)
        if error.size == 0:
            return self
        has_sent, has_done, status = pick(c.has_sent), pick(c.has_done), pick(c.status)
        # One bincount over (error kind, sent, completed) gives every count but the statuses
        # (the parent counts each drained batch: this keeps it to a few ns per request); ok
        # is Columns.ok: error ok, sent and completed.
        key = ((error.astype(np.uint8, copy=False) << 2) | (has_sent.view(np.uint8) << 1)
               | has_done.view(np.uint8))
        kinds = len(c.errors)
        by = np.bincount(key, minlength=4 * kinds).reshape(-1, 4)
        self.requests += error.size
        self.sent += int(by[:, 2:].sum())
        self.completed += int(by[:, 1::2].sum())
        self.ok += int(by[OK, 3])
        for i in np.flatnonzero(by.any(axis=1)).tolist():
            name = c.errors[i]
            self.errors[name] = self.errors.get(name, 0) + int(by[i].sum())
            if by[i, :2].any():
                self.never_sent[name] = self.never_sent.get(name, 0) + int(by[i, :2].sum())
        _add_values(self.status, status)
        if by[STATUS].any():
            _add_values(self.status_failed, status[error == STATUS])
        scheduled = pick(c.scheduled_ns)
        self._span(int(scheduled.min()), int(scheduled.max()))
        return self

    def _span(self, first: int | None, last: int | None) -> None:
        if first is None:
            return
        self.first_scheduled_ns = first if self.first_scheduled_ns is None else min(self.first_scheduled_ns, first)
        self.last_scheduled_ns = last if self.last_scheduled_ns is None else max(self.last_scheduled_ns, last)

    def merge(self, other: "Counts") -> "Counts":
        self.requests += other.requests
        self.sent += other.sent
        self.completed += other.completed
        self.ok += other.ok
        for mine, theirs in ((self.errors, other.errors), (self.never_sent, other.never_sent),
                             (self.status, other.status), (self.status_failed, other.status_failed)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self._span(other.first_scheduled_ns, other.last_scheduled_ns)
        return self

    @staticmethod
    def total(parts) -> "Counts":
        out = Counts()
        for part in parts:
            out.merge(part)
        return out

    def errors_by_kind(self) -> dict[str, int]:
        """Requests by error kind, in ERROR_NAMES order (then any other name)."""
        order = {name: i for i, name in enumerate(ERROR_NAMES)}
        return dict(sorted(self.errors.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


class LiveCounts:
    """Counts of one worker's records as the parent drains them (Counts per phase): the run's
    progress line reads them while it goes, and its end-of-run summary takes them rather than
    counting the files again. With keep_lag, the send lags since the last take_lags() are
    kept too (the terminal line shows their p99)."""

    def __init__(self, keep_lag: bool = False):
        self.phases = [Counts() for _ in PHASES]
        self.keep_lag = keep_lag
        self._lags: list[np.ndarray] = []

    def add(self, c: Columns) -> None:
        if c.n == 0:
            return
        first = int(c.phase[0])
        if first >= 0 and (c.phase == first).all():      # a batch is mostly of one phase
            self.phases[first].add(c)
        else:
            for p, counts in enumerate(self.phases):
                counts.add(c, c.phase == p)
        if self.keep_lag:
            self._lags.append(c.lag)

    @property
    def rows(self) -> int:
        return sum(p.requests for p in self.phases)

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.phases)

    @property
    def failed(self) -> int:
        return sum(p.requests - p.ok for p in self.phases)

    def take_lags(self) -> np.ndarray:
        lags = np.concatenate(self._lags) if self._lags else np.empty(0, np.int64)
        self._lags = []
        return lags


# ---------------------------------------------------------------- run.json


def run_metadata(run_dir: str | Path) -> dict:
    """A run directory's run.json ({} when it has none): the one reader of it. Invalid JSON
    is an InputError naming the file."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return {}
    try:
        meta = read_json(path, "run", "give the --out directory of a replayer run")
    except InputError as exc:
        raise InputError(f"{exc}; it gives only names, rates and SLOs: fix or remove it") from None
    return meta if isinstance(meta, dict) else {}


def scheduled_requests(meta: dict) -> int | None:
    """How many requests this node scheduled, from run.json (None when it does not say)."""
    sched = meta.get("schedule") or {}
    for key in ("node_requests", "requests"):
        if isinstance(sched.get(key), int):
            return sched[key]
    return None


# A duration of a class in run.json, by key: the unit its number is in (ns per unit).
_SLO_KEYS = (("slo_ns", 1), ("slo_us", 1e3), ("slo_ms", 1e6), ("slo_s", 1e9), ("slo", 1e6))
_TIMEOUT_KEYS = (("timeout_ns", 1), ("timeout_us", 1e3), ("timeout_ms", 1e6), ("timeout_s", 1e9))


def _duration_ns(item: dict, keys) -> int | None:
    for key, scale in keys:
        value = item.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value * scale)
    return None


def class_table(meta: dict) -> list[dict]:
    """Classes of a run from run.json: [{"name", "slo_ns", "timeout_ns", "tags"}], index =
    cls; slo_ns and timeout_ns None where the class has none, tags {} without any. Accepts
    plain names (older runs), objects as a schedule's class table holds them (name, slo_ns,
    timeout_ns, tags), and SLOs and timeouts in other units (slo_us, slo_ms, slo_s, slo in ms;
    timeout_us, timeout_ms, timeout_s)."""
    out = []
    for i, item in enumerate(meta.get("classes") or []):
        if isinstance(item, dict):
            tags = item.get("tags")
            out.append({"name": str(item.get("name", item.get("class", f"class{i}"))),
                        "slo_ns": _duration_ns(item, _SLO_KEYS),
                        "timeout_ns": _duration_ns(item, _TIMEOUT_KEYS),
                        "tags": ({str(k): str(v) for k, v in tags.items()}
                                 if isinstance(tags, dict) else {})})
        else:
            out.append({"name": str(item), "slo_ns": None, "timeout_ns": None, "tags": {}})
    return out

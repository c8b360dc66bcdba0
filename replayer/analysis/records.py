"""Per-request records: the schema, the drain from worker rings to Arrow IPC, and reading back.

One Arrow IPC stream per worker (`records-wNNN.arrow` in the run directory), one row per
scheduled request. Times are CLOCK_REALTIME nanoseconds; sent_ns/done_ns are null when the
request never left / never completed. Lag and latencies are derived, not stored:
lag = sent - scheduled, latency = done - sent, latency from intended = done - scheduled.
"""
from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from replayer import _pacer
from replayer.errors import InputError

ErrorKind = enum.IntEnum("ErrorKind", {name.upper(): i for i, name in enumerate(_pacer.ERROR_KINDS)})
ERROR_NAMES = list(_pacer.ERROR_KINDS)
PHASES = ["warmup", "measure"]
RECORDS_GLOB = "records-w*.arrow"

# The ring row as numpy sees it; must match RecordRow in _ext/_pacer.pyx.
ROW_DTYPE = np.dtype([
    ("event", "<i8"), ("scheduled_ns", "<i8"), ("sent_ns", "<i8"), ("done_ns", "<i8"),
    ("bytes_in", "<i8"), ("bytes_out", "<i4"), ("status", "<i4"), ("error", "i1"), ("pad", "V7"),
])
assert ROW_DTYPE.itemsize == _pacer.RECORD_ROW_SIZE

_ERROR_DICT = pa.array(ERROR_NAMES, pa.string())
_PHASE_DICT = pa.array(PHASES, pa.string())

SCHEMA = pa.schema([
    ("event", pa.int64()),
    ("worker", pa.int16()),
    ("target", pa.dictionary(pa.int32(), pa.string())),
    ("cls", pa.int16()),
    ("phase", pa.dictionary(pa.int8(), pa.string())),
    ("scheduled_ns", pa.int64()),
    ("sent_ns", pa.int64()),
    ("done_ns", pa.int64()),
    ("status", pa.int32()),
    ("error", pa.dictionary(pa.int8(), pa.string())),
    ("bytes_out", pa.int32()),
    ("bytes_in", pa.int64()),
])


def records_path(run_dir: Path, worker: int) -> Path:
    return Path(run_dir) / f"records-w{worker:03d}.arrow"


class RecordWriter:
    """Turns ring rows of one worker into record batches on its Arrow IPC stream.

    Columns that the schedule already holds (target, class, phase) are gathered from it by
    event id here, in the parent, so the worker's hot path writes only what it measured.
    """

    def __init__(self, path: Path, worker: int, target: np.ndarray, targets: list[str],
                 cls: np.ndarray | None, t_ns: np.ndarray, warmup_ns: int, metadata: dict):
        self.path = Path(path)
        self.worker = worker
        self._target = target
        self._targets = pa.array(targets, pa.string())
        self._cls = cls
        self._t_ns = t_ns
        self._warmup_ns = warmup_ns
        self._schema = SCHEMA.with_metadata({"replayer": json.dumps(metadata)})
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self._schema)
        self.rows_written = 0

    @property
    def schedule_end_ns(self) -> int:
        """The last request's due time, as an offset from the start (time scale not applied)."""
        return int(self._t_ns[-1]) if len(self._t_ns) else 0

    def write(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        event = rows["event"]
        sent = rows["sent_ns"]
        done = rows["done_ns"]
        n = len(rows)
        cls = (np.full(n, -1, np.int16) if self._cls is None else self._cls[event])
        phase = (self._t_ns[event] >= self._warmup_ns).astype(np.int8)
        batch = pa.record_batch([
            pa.array(event, pa.int64()),
            pa.array(np.full(n, self.worker, np.int16)),
            pa.DictionaryArray.from_arrays(pa.array(self._target[event], pa.int32()), self._targets),
            pa.array(cls, pa.int16()),
            pa.DictionaryArray.from_arrays(pa.array(phase, pa.int8()), _PHASE_DICT),
            pa.array(rows["scheduled_ns"], pa.int64()),
            pa.array(sent, pa.int64(), mask=sent == 0),
            pa.array(done, pa.int64(), mask=done == 0),
            pa.array(rows["status"], pa.int32()),
            pa.DictionaryArray.from_arrays(pa.array(rows["error"], pa.int8()), _ERROR_DICT),
            pa.array(rows["bytes_out"], pa.int32()),
            pa.array(rows["bytes_in"], pa.int64()),
        ], schema=self._schema)
        self._writer.write_batch(batch)
        self.rows_written += n

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


class LiveCounts:
    """Running counts of the rows drained so far, for the run's progress line: counted on each
    drained batch with numpy as it passes (no second look at the records). With keep_lag, the
    send lags since the last take_lags() are kept too (the terminal line shows their p99)."""

    def __init__(self, keep_lag: bool = False):
        self.rows = self.sent = self.failed = 0
        self.keep_lag = keep_lag
        self._lags: list[np.ndarray] = []

    def add(self, rows: np.ndarray) -> None:
        sent = rows["sent_ns"]
        was_sent = sent != 0
        self.rows += len(rows)
        self.sent += int(np.count_nonzero(was_sent))
        self.failed += int(np.count_nonzero(rows["error"] != ErrorKind.OK))
        if self.keep_lag:
            self._lags.append((sent - rows["scheduled_ns"])[was_sent])

    def take_lags(self) -> np.ndarray:
        lags = np.concatenate(self._lags) if self._lags else np.empty(0, np.int64)
        self._lags = []
        return lags


class RingDrain:
    """Parent side of one worker's ring: copy out what is there, hand it to the writer."""

    def __init__(self, ring, writer: RecordWriter, batch_rows: int = 65536):
        self.ring = ring
        self.writer = writer
        self.batch_rows = batch_rows
        self.live = LiveCounts()
        self._rows = None

    def attach_rows(self, buffer) -> None:
        self._rows = np.frombuffer(buffer, dtype=ROW_DTYPE, offset=_pacer.RING_HEADER_SIZE,
                                   count=self.ring.capacity)

    def pending(self) -> int:
        return self.ring.write_idx - self.ring.read_idx

    def drain(self, limit: int | None = None) -> int:
        """Write every completed row (up to limit); return how many."""
        read = self.ring.read_idx
        write = self.ring.write_idx
        todo = write - read if limit is None else min(write - read, limit)
        done = 0
        cap = self.ring.capacity
        while done < todo:
            start = (read + done) % cap
            n = min(todo - done, cap - start, self.batch_rows)
            rows = self._rows[start:start + n].copy()
            self.writer.write(rows)
            self.live.add(rows)
            done += n
            self.ring.advance_read(read + done)
        return done


class RecordsReadError(Exception):
    pass


def record_files(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory (give the --out directory of a "
                         "replayer run)")
    files = sorted(run_dir.glob(RECORDS_GLOB))
    if not files:
        raise InputError(f"{run_dir}: no {RECORDS_GLOB} files: is this a replayer run directory?")
    return files


def iter_stream(path: Path, columns: list[str] | None = None,
                problems: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """One worker's stream, batch by batch. A truncated or corrupt stream yields the batches
    before the damage and appends one line to `problems` naming the file and what was read."""
    problems = [] if problems is None else problems
    batches = rows = 0
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_stream(source)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                batches += 1
                rows += batch.num_rows
                yield batch.select(columns) if columns else batch
    except (pa.ArrowException, OSError, ValueError) as exc:
        what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if batches == 0:
            problems.append(f"{path}: unreadable, no records used from it ({what})")
        else:
            problems.append(f"{path}: damaged after {rows} records ({batches} batches); "
                            f"the records before the damage are used ({what})")


def iter_batches(run_dir: str | Path, columns: list[str] | None = None,
                 problems: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of every worker stream in turn, in bounded memory."""
    for path in record_files(run_dir):
        yield from iter_stream(path, columns, problems)


def _schema(columns: list[str] | None) -> pa.Schema:
    return pa.schema([SCHEMA.field(c) for c in columns]) if columns else SCHEMA


def read_stream(path: Path, columns: list[str] | None = None) -> tuple[pa.Table, str | None]:
    """One worker's records as a table, and the problem met reading it (None if whole)."""
    problems: list[str] = []
    batches = list(iter_stream(path, columns, problems))
    return pa.Table.from_batches(batches, schema=_schema(columns)), (problems[0] if problems else None)


def read_records(run_dir: Path, columns: list[str] | None = None) -> tuple[pa.Table, list[str]]:
    """All records of a run as one table, and the problems met (see iter_stream)."""
    problems: list[str] = []
    batches = list(iter_batches(run_dir, columns, problems))
    return pa.Table.from_batches(batches, schema=_schema(columns)), problems


def run_metadata(run_dir: Path) -> dict:
    path = Path(run_dir) / "run.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise RecordsReadError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None

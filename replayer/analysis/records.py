"""Per-request records: the file format, the drain from worker rings to Arrow IPC, and reading
back.

One Arrow IPC stream per worker (`records-wNNN.arrow` in the run directory), one row per
scheduled request. Times are CLOCK_REALTIME nanoseconds; sent_ns/done_ns are null when the
request never left / never completed. What the columns mean, and what is derived from them
(lag, latencies), is replayer.analysis.model's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from replayer import _pacer
# ErrorKind too: the transports and tests name error kinds through this module.
from replayer.analysis.model import ERROR_NAMES, PHASES, Columns, ErrorKind, LiveCounts  # noqa: F401
from replayer.errors import InputError

RECORDS_GLOB = "records-w*.arrow"

# The ring row as numpy sees it: RecordRow in _ext/replayer/pacer/ring.pxd, field by field
# (tests/unit/test_record_layout.py checks every offset and size).
ROW_DTYPE = np.dtype([
    ("event", "<i8"), ("scheduled_ns", "<i8"), ("sent_ns", "<i8"), ("done_ns", "<i8"),
    ("bytes_in", "<i8"), ("bytes_out", "<i4"), ("status", "<i4"), ("error", "i1"), ("cause", "i1"),
    ("pad", "V6"),
])
assert ROW_DTYPE.itemsize == _pacer.RECORD_ROW_SIZE

_ERROR_DICT = pa.array(ERROR_NAMES, pa.string())
_PHASE_DICT = pa.array(PHASES, pa.string())
# Why each request was sent when it was (CAUSE_* in ring.pxd, by value); "none" for one never
# sent.
LATE_CAUSES = list(_pacer.LATE_CAUSES)
_CAUSE_DICT = pa.array(LATE_CAUSES, pa.string())

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
    ("late_cause", pa.dictionary(pa.int8(), pa.string())),
    ("payload", pa.int32()),          # the schedule's payload index, -1 the target's default
])


def records_path(run_dir: Path, worker: int) -> Path:
    return Path(run_dir) / f"records-w{worker:03d}.arrow"


class RecordWriter:
    """Turns ring rows of one worker into record batches on its Arrow IPC stream.

    Columns that the schedule already holds (target, class, phase) are gathered from it by
    event id here, in the parent, so the worker's hot path writes only what it measured (a
    users run derives them from the event id instead: replayer.run.users.UserRecordWriter).
    """

    def __init__(self, path: Path, worker: int, target: np.ndarray, targets: list[str],
                 cls: np.ndarray | None, t_ns: np.ndarray, warmup_ns: int, metadata: dict,
                 payload: np.ndarray | None = None):
        self.path = Path(path)
        self.worker = worker
        self._target = target
        self._target_names = list(targets)
        self._targets = pa.array(targets, pa.string())
        self._cls = cls
        self._payload = payload
        self._t_ns = t_ns
        self._warmup_ns = warmup_ns
        self._schema = SCHEMA.with_metadata({"replayer": json.dumps(metadata)})
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self._schema)
        self.rows_written = 0
        # Called with each batch written, as (Columns, payload indices): the live Locust CSVs.
        self.listeners: list = []

    @property
    def schedule_end_ns(self) -> int:
        """The last request's due time, as an offset from the start (time scale not applied)."""
        return int(self._t_ns[-1]) if len(self._t_ns) else 0

    def columns(self, rows: np.ndarray) -> Columns:
        """Ring rows as model.Columns, with their target, class and phase from the schedule."""
        event = rows["event"]
        cls = np.full(len(rows), -1, np.int16) if self._cls is None else self._cls[event]
        phase = (self._t_ns[event] >= self._warmup_ns).astype(np.int8)
        return Columns.from_rows(rows, phase, self._target[event], self._target_names, cls,
                                 self.worker)

    def payloads(self, event: np.ndarray) -> np.ndarray:
        """Each event's payload index (-1: its target's default)."""
        return np.full(len(event), -1, np.int32) if self._payload is None else self._payload[event]

    def write(self, rows: np.ndarray) -> Columns | None:
        """Append ring rows to the stream; return them as Columns (None for no rows)."""
        if len(rows) == 0:
            return None
        c = self.columns(rows)
        payload = self.payloads(c.event)
        batch = pa.record_batch([
            pa.array(c.event, pa.int64()),
            pa.array(c.worker),
            pa.DictionaryArray.from_arrays(pa.array(c.target, pa.int32()), self._targets),
            pa.array(c.cls, pa.int16()),
            pa.DictionaryArray.from_arrays(pa.array(c.phase, pa.int8()), _PHASE_DICT),
            pa.array(c.scheduled_ns, pa.int64()),
            pa.array(c.sent_ns, pa.int64(), mask=~c.has_sent),
            pa.array(c.done_ns, pa.int64(), mask=~c.has_done),
            pa.array(c.status, pa.int32()),
            pa.DictionaryArray.from_arrays(pa.array(c.error, pa.int8()), _ERROR_DICT),
            pa.array(c.bytes_out, pa.int32()),
            pa.array(c.bytes_in, pa.int64()),
            pa.DictionaryArray.from_arrays(
                pa.array(np.where(c.has_sent, rows["cause"], 0).astype(np.int8)), _CAUSE_DICT),
            pa.array(payload, pa.int32()),
        ], schema=self._schema)
        self._writer.write_batch(batch)
        self.rows_written += c.n
        for listener in self.listeners:
            listener(c, payload)
        return c

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


class RingDrain:
    """Parent side of one worker's ring: copy out what is there, hand it to the writer, and
    count it as it passes (`live`: model.LiveCounts)."""

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
            # The writer copies what it takes out of the ring (model.Columns.from_rows).
            self.live.add(self.writer.write(self._rows[start:start + n]))
            done += n
            self.ring.advance_read(read + done)
        return done


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
    """One worker's stream, batch by batch (the `columns` it has). A truncated or corrupt stream
    yields the batches before the damage and appends one line to `problems` naming the file and
    what was read."""
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
                # Columns newer than the stream (late_cause) are left out, not an error.
                yield batch.select([c for c in columns if c in batch.schema.names]) if columns else batch
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


def _schema(columns: list[str] | None, batches: list[pa.RecordBatch]) -> pa.Schema:
    """The table's schema: the columns asked for (all), as far as the streams have them (a
    run written before late_cause existed has none); all of them includes the columns a
    merged run adds (`node`: replayer merge)."""
    names = columns or SCHEMA.names
    if not batches:
        return pa.schema([SCHEMA.field(n) for n in names])
    have = batches[0].schema
    names = [n for n in names if n in have.names]
    if not columns:
        names += [n for n in have.names if n not in SCHEMA.names]
    return pa.schema([have.field(n) for n in names])


def read_stream(path: Path, columns: list[str] | None = None) -> tuple[pa.Table, str | None]:
    """One worker's records as a table, and the problem met reading it (None if whole)."""
    problems: list[str] = []
    batches = list(iter_stream(path, columns, problems))
    return (pa.Table.from_batches(batches, schema=_schema(columns, batches)),
            problems[0] if problems else None)


def read_records(run_dir: Path, columns: list[str] | None = None) -> tuple[pa.Table, list[str]]:
    """All records of a run as one table, and the problems met (see iter_stream)."""
    problems: list[str] = []
    batches = list(iter_batches(run_dir, columns, problems))
    return pa.Table.from_batches(batches, schema=_schema(columns, batches)), problems

"""Columnar schedule files: Parquet (.parquet) or Arrow IPC (.arrow, .feather).

Columns, one row per request:
- t_ns      int64, intended send time in ns from the run's start (sorted when written)
- endpoint  string or dictionary<int32, string>: the host name the request goes to
- cls       int16, optional: request class, index into replayer.classes (gen azure: the
            trace function's row), -1 none
- payload   int32, optional: index into replayer.payloads, -1 (or null) the target's default
- function, proxy  dictionary strings, optional: which trace function the request replays
  and which proxy stands in for it (kept for analysis; the replayer ignores them)
Schema metadata: replayer.unit_ns (length of one trace unit in ns: minute or second),
replayer.units (optional: the schedule's length in units, when it ends with quiet units;
otherwise the last request's unit is the last), replayer.classes (JSON list, one entry per cls
value: a name, or a RequestClass object with name, slo_ns, timeout_ns, tags),
replayer.payloads (JSON list of Payload objects: body_b64, fields, method, path, headers;
replayer.schedules.content), replayer.content_seed (of the payloads' random fields),
replayer.meta (a JSON object a generator leaves for analysis, copied to run.json),
replayer.format (version). Indices outside their table are
refused when the schedule is read.

Dictionary columns keep a 300-million-request schedule at about 12 bytes a row on disk
before compression, and read back into the Schedule's int32 target indices without
building Python strings per row.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replayer.errors import InputError
from replayer.schedules.content import Payload, RequestClass
from replayer.schedules.schedule import MINUTE_NS, Schedule

FORMAT_VERSION = "1"
ROW_GROUP = 1 << 20
META_UNIT = b"replayer.unit_ns"
META_CLASSES = b"replayer.classes"
META_FORMAT = b"replayer.format"
META_UNITS = b"replayer.units"
META_PAYLOADS = b"replayer.payloads"
META_SEED = b"replayer.content_seed"
META_META = b"replayer.meta"


def _class_entry(c: RequestClass | str):
    # A class that is only a name is written as one (gen azure's tables stay as they were).
    if isinstance(c, str):
        return c
    if c.slo_ns is None and c.timeout_ns is None and not c.tags:
        return c.name
    return c.to_json()


def _metadata(unit_ns: int, classes: list, units: int | None = None,
              payloads: list[Payload] | None = None, seed: int = 0,
              extra: dict | None = None) -> dict[bytes, bytes]:
    meta = {META_UNIT: str(int(unit_ns)).encode(), META_FORMAT: FORMAT_VERSION.encode()}
    if classes:
        meta[META_CLASSES] = json.dumps([_class_entry(c) for c in classes]).encode()
    if payloads:
        meta[META_PAYLOADS] = json.dumps([p.to_json() for p in payloads]).encode()
        meta[META_SEED] = str(int(seed)).encode()
    if extra:
        meta[META_META] = json.dumps(extra).encode()
    if units is not None:
        meta[META_UNITS] = str(int(units)).encode()
    return meta


class ScheduleWriter:
    """Writes a schedule in time-ordered pieces, so a load of hundreds of millions of requests
    never has to sit in memory whole. Name tables (endpoints, functions, proxies) are fixed
    up front; each piece gives int32 indices into them."""

    def __init__(self, path: Path | str, targets: list[str], unit_ns: int, *,
                 classes: list | None = None, with_cls: bool = False,
                 functions: list[str] | None = None, proxies: list[str] | None = None,
                 units: int | None = None, payloads: list[Payload] | None = None,
                 with_payload: bool = False, content_seed: int = 0, meta: dict | None = None):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".parquet", ".arrow", ".feather"):
            raise InputError(f"{self.path}: unknown schedule format {self.suffix!r}; use .parquet, "
                             ".arrow or .feather")
        self._dicts = {"endpoint": pa.array(list(targets), pa.string())}
        fields = [pa.field("t_ns", pa.int64()),
                  pa.field("endpoint", pa.dictionary(pa.int32(), pa.string()))]
        if with_cls:
            fields.append(pa.field("cls", pa.int16()))
        if with_payload:
            fields.append(pa.field("payload", pa.int32()))
        for name, names in (("function", functions), ("proxy", proxies)):
            if names is not None:
                self._dicts[name] = pa.array(list(names), pa.string())
                fields.append(pa.field(name, pa.dictionary(pa.int32(), pa.string())))
        self.schema = pa.schema(fields, metadata=_metadata(unit_ns, classes or [], units, payloads,
                                                            content_seed, meta))
        self.rows = 0
        self._last_t = None
        if self.suffix == ".parquet":
            # Fixed options (no statistics, one compression) keep identical schedules' bytes identical.
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd",
                                            use_dictionary=["endpoint", "function", "proxy"],
                                            write_statistics=False)
        else:
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, self.schema)

    def write(self, t_ns: np.ndarray, target: np.ndarray, cls: np.ndarray | None = None,
              function: np.ndarray | None = None, proxy: np.ndarray | None = None,
              payload: np.ndarray | None = None) -> None:
        t_ns = np.asarray(t_ns, dtype=np.int64)
        if t_ns.size == 0:
            return
        if (self._last_t is not None and t_ns[0] < self._last_t) or np.any(t_ns[1:] < t_ns[:-1]):
            raise ValueError("ScheduleWriter.write: pieces must come sorted by time")
        self._last_t = int(t_ns[-1])
        cols = [pa.array(t_ns, pa.int64()), self._dict("endpoint", target)]
        if "cls" in self.schema.names:
            cols.append(pa.array(np.asarray(cls, dtype=np.int16), pa.int16()))
        if "payload" in self.schema.names:
            cols.append(pa.array(np.asarray(payload, dtype=np.int32), pa.int32()))
        for name, idx in (("function", function), ("proxy", proxy)):
            if name in self.schema.names:
                cols.append(self._dict(name, idx))
        batch = pa.record_batch(cols, schema=self.schema)
        for start in range(0, batch.num_rows, ROW_GROUP):
            piece = batch.slice(start, ROW_GROUP)
            if self.suffix == ".parquet":
                self._writer.write_batch(piece, row_group_size=ROW_GROUP)
            else:
                self._writer.write_batch(piece)
        self.rows += batch.num_rows

    def _dict(self, name: str, indices) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, dtype=np.int32)),
                                              self._dicts[name])

    def close(self) -> None:
        self._writer.close()
        if self.suffix != ".parquet":
            self._sink.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_schedule(schedule: Schedule, path: Path | str,
                   function: tuple[np.ndarray, list[str]] | None = None,
                   proxy: tuple[np.ndarray, list[str]] | None = None,
                   units: int | None = None) -> None:
    """Write a schedule; the format follows the suffix (.parquet, .arrow, .feather).
    function/proxy: optional (int32 indices per request, names) columns; units: the
    schedule's length in units, when it ends with quiet ones."""
    if function is None and proxy is None:
        schedule = schedule.sorted()
    elif not schedule.is_sorted():
        raise ValueError("write_schedule: sort the schedule (and its function/proxy columns) first")
    with ScheduleWriter(path, schedule.targets, schedule.unit_ns, classes=schedule.classes,
                        with_cls=schedule.cls is not None,
                        functions=None if function is None else function[1],
                        proxies=None if proxy is None else proxy[1], units=units,
                        payloads=schedule.payloads,
                        with_payload=schedule.payload is not None,
                        content_seed=schedule.content_seed, meta=schedule.meta) as w:
        w.write(schedule.t_ns, schedule.target, schedule.cls,
                None if function is None else function[0], None if proxy is None else proxy[0],
                schedule.payload)


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path, read_dictionary=["endpoint"] if _has(path, "endpoint") else None)
        with pa.memory_map(str(path), "r") as source:
            try:
                return pa.ipc.open_file(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).read_all()
    except FileNotFoundError:
        raise InputError(f"{path}: no such schedule file") from None
    except OSError as exc:
        msg = " ".join(str(exc).split())
        if isinstance(exc, pa.ArrowException):
            raise InputError(f"{path}: not a readable {suffix[1:]} schedule ({msg}); write it "
                             "with replayer gen or pyarrow") from None
        raise InputError(f"{path}: cannot read ({msg})") from None
    except pa.ArrowException as exc:
        raise InputError(f"{path}: not a readable {suffix[1:]} schedule "
                         f"({' '.join(str(exc).split())}); write it with replayer gen or pyarrow") from None


def _has(path: Path, name: str) -> bool:
    try:
        return name in pq.read_schema(path).names
    except Exception:  # the real read below reports an unreadable file
        return False


def _endpoints(path: Path, col: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    t = col.type
    if pa.types.is_dictionary(t):
        if not (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
            raise InputError(f"{path}: column endpoint: dictionary of {t.value_type}; expected "
                             "host names (strings)")
        col = col.unify_dictionaries() if col.num_chunks > 1 else col
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        col = col.dictionary_encode()
    else:
        raise InputError(f"{path}: column endpoint: type {t}; expected strings (host names), "
                         "plain or dictionary-encoded")
    if col.null_count:
        i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{path}: column endpoint row {i}: empty; every request needs an endpoint")
    if col.num_chunks == 0:
        return np.empty(0, np.int32), []
    names = col.chunk(0).dictionary.to_pylist()
    indices = np.concatenate([c.indices.to_numpy(zero_copy_only=False).astype(np.int32)
                              for c in col.chunks])
    # Dictionaries may repeat a name (unified or hand-written files): fold to one index each.
    table: dict[str, int] = {}
    remap = np.empty(len(names), dtype=np.int32)
    for k, name in enumerate(names):
        remap[k] = table.setdefault(name, len(table))
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= len(names)):
        row = int(np.flatnonzero((indices < 0) | (indices >= len(names)))[0])
        raise InputError(f"{path}: column endpoint row {row}: dictionary index outside its "
                         f"{len(names)} names; the file is damaged")
    used = np.flatnonzero(np.bincount(indices, minlength=len(names))) if indices.size else indices
    for k in used.tolist():
        if not names[k] or not names[k].strip():
            row = int(np.flatnonzero(indices == k)[0])
            raise InputError(f"{path}: column endpoint row {row}: empty host name; every request "
                             "needs an endpoint")
    return remap[indices] if indices.size else indices, list(table)


def read_schedule(path: Path | str) -> Schedule:
    """A Schedule from a columnar file, validated; sorted by time if the file is not."""
    return read_schedule_units(path)[0]


def read_schedule_units(path: Path | str) -> tuple[Schedule, int]:
    """read_schedule's schedule, and its length in units: replayer.units when the file
    says, else up to the last request's unit."""
    path = Path(path)
    table = _read_table(path)
    names = table.column_names
    for required in ("t_ns", "endpoint"):
        if required not in names:
            raise InputError(f"{path}: missing column {required!r}; a schedule needs t_ns (int64 ns "
                             "from the run's start) and endpoint (host name)")
    t_col = table.column("t_ns")
    if not pa.types.is_integer(t_col.type):
        raise InputError(f"{path}: column t_ns: type {t_col.type}; expected int64 nanoseconds from "
                         "the run's start")
    if t_col.null_count:
        i = int(np.flatnonzero(t_col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{path}: column t_ns row {i}: empty; every request needs a time")
    t_ns = t_col.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_unsigned_integer(t_col.type) and t_ns.size and t_col.type.bit_width == 64:
        big = np.flatnonzero(t_col.to_numpy() > np.iinfo(np.int64).max)
        if big.size:
            raise InputError(f"{path}: column t_ns row {int(big[0])}: beyond int64 nanoseconds")
    neg = np.flatnonzero(t_ns < 0)
    if neg.size:
        i = int(neg[0])
        raise InputError(f"{path}: column t_ns row {i}: {t_ns[i]} is negative; times count "
                         "nanoseconds from the run's start")
    target, targets = _endpoints(path, table.column("endpoint"))
    cls = None
    if "cls" in names:
        c = table.column("cls")
        if not pa.types.is_integer(c.type):
            raise InputError(f"{path}: column cls: type {c.type}; expected int16 class numbers")
        if c.null_count:
            c = c.fill_null(-1)
        arr = c.to_numpy().astype(np.int64)
        bad = np.flatnonzero((arr < -1) | (arr > np.iinfo(np.int16).max))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{path}: column cls row {i}: {arr[i]} is outside -1..32767")
        cls = arr.astype(np.int16)
    meta = table.schema.metadata or {}
    unit_ns = MINUTE_NS
    if META_UNIT in meta:
        try:
            unit_ns = int(meta[META_UNIT])
            if unit_ns <= 0:
                raise ValueError
        except ValueError:
            raise InputError(f"{path}: schema metadata replayer.unit_ns: "
                             f"{meta[META_UNIT][:40]!r} is not a positive integer") from None
    classes = _classes(path, meta)
    payloads = _payloads(path, meta)
    _check_index(path, "cls", cls, len(classes), "replayer.classes", allow_unnamed=True)
    payload = _index_column(path, table, "payload", np.int32) if "payload" in names else None
    _check_index(path, "payload", payload, len(payloads), "replayer.payloads")
    seed = 0
    if META_SEED in meta:
        try:
            seed = int(meta[META_SEED])
            if not 0 <= seed < 1 << 64:
                raise ValueError
        except ValueError:
            raise InputError(f"{path}: schema metadata replayer.content_seed: "
                             f"{meta[META_SEED][:40]!r} is not a number from 0 to 2^64-1") from None
    extra = {}
    if META_META in meta:
        try:
            extra = json.loads(meta[META_META])
        except ValueError:
            extra = None
        if not isinstance(extra, dict):
            raise InputError(f"{path}: schema metadata replayer.meta: not a JSON object")
    schedule = Schedule(t_ns=t_ns, target=target, targets=targets, cls=cls, classes=classes,
                        unit_ns=unit_ns, source=str(path), payload=payload,
                        payloads=payloads, content_seed=seed, meta=extra).sorted()
    _check_content(path, schedule)
    units = schedule.end_ns // unit_ns + 1 if len(schedule) else 0
    if META_UNITS in meta:
        try:
            stated = int(meta[META_UNITS])
            if stated < 0:
                raise ValueError
        except ValueError:
            raise InputError(f"{path}: schema metadata replayer.units: "
                             f"{meta[META_UNITS][:40]!r} is not a whole number of units") from None
        units = max(units, stated)
    return schedule, units


def _classes(path: Path, meta: dict) -> list[RequestClass]:
    if META_CLASSES not in meta:
        return []
    try:
        items = json.loads(meta[META_CLASSES])
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise InputError(f"{path}: schema metadata replayer.classes: not a JSON list")
    try:
        return [RequestClass.from_json(item, f"class {k}") for k, item in enumerate(items)]
    except ValueError as exc:
        raise InputError(f"{path}: schema metadata replayer.classes: {exc}") from None


def _payloads(path: Path, meta: dict) -> list[Payload]:
    if META_PAYLOADS not in meta:
        return []
    try:
        items = json.loads(meta[META_PAYLOADS])
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise InputError(f"{path}: schema metadata replayer.payloads: not a JSON list")
    try:
        return [Payload.from_json(item, f"payload {k}") for k, item in enumerate(items)]
    except ValueError as exc:
        raise InputError(f"{path}: schema metadata replayer.payloads: {exc}") from None


def _index_column(path: Path, table: pa.Table, name: str, dtype) -> np.ndarray:
    c = table.column(name)
    if not pa.types.is_integer(c.type):
        raise InputError(f"{path}: column {name}: type {c.type}; expected integer indices")
    if c.null_count:
        c = c.fill_null(-1)
    return c.to_numpy().astype(np.int64)


def _check_index(path: Path, name: str, column, size: int, table: str,
                 allow_unnamed: bool = False) -> None:
    """Indices -1..size-1 (a cls without a class table only needs to fit int16)."""
    if column is None or (allow_unnamed and size == 0):
        return
    bad = np.flatnonzero((column < -1) | (column >= size))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{path}: column {name} row {i}: {int(column[i])} is outside -1..{size - 1} "
                         f"({table} has {size} entries); fix the index or the table")


def _check_content(path: Path, schedule: Schedule) -> None:
    """What a payload's fields need from the rows that use it: an event id that fits its
    width, and an SLO for a deadline."""
    if schedule.payload is None or not schedule.payloads:
        return
    largest = len(schedule) - 1
    used = np.unique(schedule.payload)
    for p in used[used >= 0].tolist():
        payload = schedule.payloads[p]
        for k, f in enumerate(payload.fields):
            if f.kind == "event" and not f.holds_event(largest):
                raise InputError(f"{path}: payload {p} field {k}: width {f.width} cannot hold "
                                 f"event ids up to {largest}; widen it")
        if not any(f.kind == "deadline_ns" for f in payload.fields):
            continue
        rows = schedule.payload == p
        cls = schedule.cls[rows] if schedule.cls is not None else np.full(1, -1)
        for k in np.unique(cls).tolist():
            if k < 0 or k >= len(schedule.classes) or schedule.classes[k].slo_ns is None:
                row = int(np.flatnonzero(rows & ((schedule.cls if schedule.cls is not None
                                                  else -1) == k))[0])
                name = f"class {schedule.classes[k].name!r} has no SLO" \
                    if 0 <= k < len(schedule.classes) else "request has no class"
                raise InputError(f"{path}: row {row}: payload {p} fills deadline_ns but its "
                                 f"{name}; give each such row a class with an slo_ns")


def read_columns(path: Path | str, columns: list[str]) -> pa.Table:
    """Extra columns (function, proxy) for analysis, in file order."""
    path = Path(path)
    table = _read_table(path)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r}")
    return table.select(columns)

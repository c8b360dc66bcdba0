"""Azure Functions 2019 trace: invocations.csv, durations.csv and memory.csv of one directory.

Schemas (AzureFunctionsDataset2019.md):
- invocations.csv: HashOwner, HashApp, HashFunction, Trigger, then one column per minute (or
  second) whose header is the unit's number (1..1440 in the full dataset; the vSwarm sample
  starts at 540) and whose cells are invocation counts.
- durations.csv: HashOwner, HashApp, HashFunction, Average, Count, Minimum, Maximum,
  percentile_Average_{0,1,25,50,75,99,100} (milliseconds).
- memory.csv: HashOwner, HashApp, [HashFunction,] SampleCount, AverageAllocatedMb,
  AverageAllocatedMb_pct{1,5,25,50,75,95,99,100} (MB). The dataset gives memory per
  application (no HashFunction); the vSwarm sample adds HashFunction. With HashFunction the
  join is by owner/app/function, without it every function of an app shares the app's row.

Every function of invocations.csv must have a durations row and a memory row and the other
way round; anything else is an InputError naming the file, the line and the column.
Reading uses pyarrow's CSV reader: a full day of the dataset (46k functions x 1440 minutes)
decodes in about a second.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import csv as pacsv

from replayer.errors import InputError

KEYS = ("HashOwner", "HashApp", "HashFunction")
DURATION_P75 = "percentile_Average_75"
MEMORY_P75 = "AverageAllocatedMb_pct75"
# Columns of invocations.csv that are not unit counts.
INVOCATION_META = set(KEYS) | {"Trigger"}
FILES = ("invocations.csv", "durations.csv", "memory.csv")


@dataclass
class AzureTrace:
    """Functions (rows) x units (columns) of one trace directory, joined across the files."""
    owner: list[str]
    app: list[str]
    function: list[str]
    trigger: list[str]
    counts: np.ndarray            # int32 [functions, units]: invocations per unit
    unit_labels: np.ndarray       # int64 [units]: the header number of each count column
    duration_p75_ms: np.ndarray   # float64 [functions]
    memory_p75_mb: np.ndarray     # float64 [functions]
    duration_avg_ms: np.ndarray   # float64 [functions] (nan where the column is absent)
    source: str = ""
    dropped: int = 0              # functions left out by drop_incomplete
    _ids: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.function)

    @property
    def n_units(self) -> int:
        return int(self.counts.shape[1])

    @property
    def ids(self) -> list[str]:
        """owner/app/function, the dataset's identity of a function."""
        if self._ids is None:
            self._ids = [f"{o}/{a}/{f}" for o, a, f in zip(self.owner, self.app, self.function)]
        return self._ids

    def short_id(self, i: int) -> str:
        """A 10-hex-digit id of function i, short enough for a DNS label."""
        return hashlib.sha256(self.ids[i].encode()).hexdigest()[:10]

    def take(self, rows: np.ndarray) -> "AzureTrace":
        rows = np.asarray(rows, dtype=np.int64)
        pick = lambda seq: [seq[i] for i in rows.tolist()]  # noqa: E731
        return AzureTrace(owner=pick(self.owner), app=pick(self.app), function=pick(self.function),
                          trigger=pick(self.trigger), counts=self.counts[rows],
                          unit_labels=self.unit_labels, duration_p75_ms=self.duration_p75_ms[rows],
                          memory_p75_mb=self.memory_p75_mb[rows],
                          duration_avg_ms=self.duration_avg_ms[rows], source=self.source,
                          dropped=self.dropped)

    def window(self, start_label: int | None, n_units: int | None) -> "AzureTrace":
        """Units from the column labelled start_label (default: the first), n_units of them
        (None or 0: to the end of the trace)."""
        labels = self.unit_labels
        first = int(labels[0])
        start = first if start_label is None else int(start_label)
        if not first <= start <= int(labels[-1]):
            raise InputError(f"--start-minute {start}: the trace's unit columns of "
                             f"{self.source}/invocations.csv go from {first} to {int(labels[-1])}; "
                             "pick a start inside them")
        lo = start - first
        avail = len(labels) - lo
        n = avail if not n_units else int(n_units)
        if n > avail:
            raise InputError(f"-d/--duration: {n} units asked (duration plus warm-up) but "
                             f"{self.source}/invocations.csv has {avail} from column {start}; "
                             "ask for fewer, start earlier, or use -d 0 for the rest of the trace")
        return AzureTrace(owner=self.owner, app=self.app, function=self.function,
                          trigger=self.trigger, counts=self.counts[:, lo:lo + n],
                          unit_labels=labels[lo:lo + n], duration_p75_ms=self.duration_p75_ms,
                          memory_p75_mb=self.memory_p75_mb, duration_avg_ms=self.duration_avg_ms,
                          source=self.source, dropped=self.dropped, _ids=self._ids)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _ragged_line(path: Path) -> tuple[int, int]:
    """(line, fields) of the first row whose field count differs from the header's (error path
    only: pyarrow does not say which line)."""
    import csv
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        width = len(next(reader, []))
        for row in reader:
            if row and len(row) != width:
                return reader.line_num, len(row)
    return 0, 0


def _read_csv(path: Path, string_columns: tuple[str, ...]) -> pa.Table:
    if not path.is_file():
        raise InputError(f"{path}: no such file; a trace directory holds invocations.csv, "
                         "durations.csv and memory.csv (Azure Functions 2019 format)")
    try:
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", "replace").strip().split(",")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    types = {name: pa.string() for name in string_columns if name in header}
    try:
        return pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        msg = str(exc)
        if "Expected" in msg and "columns" in msg:
            line, got = _ragged_line(path)
            where = f"line {line}: {got} fields" if line else _one_line(msg)
            raise InputError(f"{path}: {where}, but the header has {len(header)} columns; every "
                             "row needs one value per header column") from None
        raise InputError(f"{path}: not a readable CSV file ({_one_line(msg)})") from None


def _require(path: Path, table: pa.Table, names) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InputError(f"{path}: line 1 (header): missing column {missing[0]!r}; the header "
                         f"needs {', '.join(names)} (Azure Functions 2019 format)")


def _keys(path: Path, table: pa.Table, names) -> list[list[str]]:
    cols = []
    for name in names:
        values = table.column(name).to_pylist()
        for i, v in enumerate(values):
            if not v:
                raise InputError(f"{path}: line {i + 2} column {name}: empty; every row needs "
                                 f"{', '.join(names)}")
        cols.append(values)
    return cols


def _numbers(path: Path, table: pa.Table, name: str, what: str, integral: bool,
             row_names: list[str] | None = None) -> np.ndarray:
    """One numeric column as numpy, with the first bad cell named (line, column)."""
    col = table.column(name)
    where = lambda i: (f"{path}: line {i + 2} column {name}"  # noqa: E731
                       + (f" (function {row_names[i]})" if row_names else ""))
    if col.null_count:
        i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{where(i)}: empty; expected {what}")
    t = col.type
    if pa.types.is_integer(t):
        arr = col.to_numpy().astype(np.int64 if integral else np.float64)
    elif pa.types.is_floating(t):
        arr = col.to_numpy()
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{where(i)}: {float(arr[i])!r} is not {what}")
        if integral:
            frac = np.flatnonzero(arr != np.floor(arr))
            if frac.size:
                i = int(frac[0])
                raise InputError(f"{where(i)}: {float(arr[i])!r} is not {what}")
            arr = arr.astype(np.int64)
    elif pa.types.is_null(t):
        raise InputError(f"{where(0)}: empty; expected {what}")
    else:
        values = col.to_pylist()
        for i, v in enumerate(values):
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{where(i)}: {_one_line(v, 40)!r} is not {what}") from None
            if not np.isfinite(x) or (integral and x != int(x)):
                raise InputError(f"{where(i)}: {_one_line(v, 40)!r} is not {what}")
        raise InputError(f"{path}: column {name}: not {what}")  # mixed types pyarrow could not name
    neg = np.flatnonzero(arr < 0)
    if neg.size:
        i = int(neg[0])
        raise InputError(f"{where(i)}: {arr[i]} is negative; expected {what}")
    return arr


def _index(path: Path, keys: list[tuple], label: str) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for i, k in enumerate(keys):
        if k in out:
            raise InputError(f"{path}: line {i + 2}: {label} {'/'.join(k)} also on line "
                             f"{out[k] + 2}; each {label} has one row")
        out[k] = i
    return out


def _unit_columns(path: Path, names: list[str]) -> tuple[list[str], np.ndarray]:
    units = [n for n in names if n not in INVOCATION_META]
    if not units:
        raise InputError(f"{path}: line 1 (header): no unit columns; after HashOwner, HashApp, "
                         "HashFunction, Trigger come the per-minute (or per-second) counts, "
                         "headed by the unit's number")
    labels = []
    for n in units:
        try:
            labels.append(int(n))
        except ValueError:
            raise InputError(f"{path}: line 1 (header) column {n!r}: not a unit number; count "
                             "columns are headed by the minute (or second) they count") from None
    labels = np.asarray(labels, dtype=np.int64)
    step = np.flatnonzero(np.diff(labels) != 1)
    if step.size:
        i = int(step[0]) + 1
        raise InputError(f"{path}: line 1 (header) column {units[i]!r}: follows {units[i - 1]!r}; "
                         "unit columns must be consecutive numbers in ascending order")
    return units, labels


def read_trace(directory: Path | str, drop_incomplete: bool = False) -> AzureTrace:
    """Decode and join the three CSV files of an Azure Functions 2019 trace directory.

    drop_incomplete: leave out functions missing from durations.csv or memory.csv (and rows
    of those files with no invocations) instead of failing; the full public dataset has such
    functions, the vSwarm sample and invitro's sampled traces do not.
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: no such trace directory; -t/--trace names the directory that "
                         "holds invocations.csv, durations.csv and memory.csv")
    inv_path, dur_path, mem_path = (d / name for name in FILES)
    inv = _read_csv(inv_path, KEYS + ("Trigger",))
    dur = _read_csv(dur_path, KEYS)
    mem = _read_csv(mem_path, KEYS)
    _require(inv_path, inv, KEYS)
    _require(dur_path, dur, KEYS + (DURATION_P75,))
    per_app_memory = "HashFunction" not in mem.column_names
    mem_keys_names = KEYS[:2] if per_app_memory else KEYS
    _require(mem_path, mem, mem_keys_names + (MEMORY_P75,))

    units, labels = _unit_columns(inv_path, inv.column_names)
    inv_keys = list(zip(*_keys(inv_path, inv, KEYS)))
    inv_index = _index(inv_path, inv_keys, "function")
    row_names = ["/".join(k) for k in inv_keys]
    trigger = (inv.column("Trigger").to_pylist() if "Trigger" in inv.column_names
               else [""] * len(inv_keys))
    counts = np.empty((len(inv_keys), len(units)), dtype=np.int32)
    for j, name in enumerate(units):
        col = _numbers(inv_path, inv, name, "a whole number of invocations", True, row_names)
        if col.size and col.max() > np.iinfo(np.int32).max:
            i = int(np.argmax(col))
            raise InputError(f"{inv_path}: line {i + 2} column {name}: {col[i]} invocations in "
                             "one unit is beyond 2^31; check the file")
        counts[:, j] = col

    dur_keys = list(zip(*_keys(dur_path, dur, KEYS)))
    dur_index = _index(dur_path, dur_keys, "function")
    dur_p75 = _numbers(dur_path, dur, DURATION_P75, "a duration in milliseconds", False)
    dur_avg = (_numbers(dur_path, dur, "Average", "a duration in milliseconds", False)
               if "Average" in dur.column_names else np.full(len(dur_keys), np.nan))
    mem_keys = list(zip(*_keys(mem_path, mem, mem_keys_names)))
    mem_index = _index(mem_path, mem_keys, "application" if per_app_memory else "function")
    mem_p75 = _numbers(mem_path, mem, MEMORY_P75, "a memory size in MB", False)

    keep, dur_rows, mem_rows = [], [], []
    for i, k in enumerate(inv_keys):
        di = dur_index.get(k)
        mi = mem_index.get(k[:2] if per_app_memory else k)
        if di is None or mi is None:
            if drop_incomplete:
                continue
            where, label = (dur_path, "function") if di is None else (
                mem_path, "application" if per_app_memory else "function")
            raise InputError(f"{where}: no row for {label} {'/'.join(k[:2] if label == 'application' else k)} "
                             f"(invocations.csv line {i + 2}); every function needs a row in each "
                             "of the three files (or pass --drop-incomplete to leave such "
                             "functions out)")
        keep.append(i)
        dur_rows.append(di)
        mem_rows.append(mi)
    if not drop_incomplete:
        # Functions that only the other files list (memory per app has no function rows).
        others = [(dur_path, dur_index)] + ([] if per_app_memory else [(mem_path, mem_index)])
        for path, index in others:
            for k, row in index.items():
                if k not in inv_index:
                    raise InputError(f"{path}: line {row + 2}: function {'/'.join(k)} is not in "
                                     "invocations.csv; the files must list the same functions "
                                     "(or pass --drop-incomplete)")
    if not keep:
        raise InputError(f"{inv_path}: no function with rows in all three files; nothing to replay")
    keep_a = np.asarray(keep, dtype=np.int64)
    dropped = len(inv_keys) - len(keep)
    sel = lambda seq: [seq[i] for i in keep]  # noqa: E731
    owner, app, function = (list(c) for c in zip(*sel(inv_keys)))
    return AzureTrace(owner=owner, app=app, function=function, trigger=sel(trigger),
                      counts=counts[keep_a] if dropped else counts, unit_labels=labels,
                      duration_p75_ms=dur_p75[np.asarray(dur_rows)].astype(np.float64),
                      memory_p75_mb=mem_p75[np.asarray(mem_rows)].astype(np.float64),
                      duration_avg_ms=dur_avg[np.asarray(dur_rows)].astype(np.float64),
                      source=str(d), dropped=dropped)

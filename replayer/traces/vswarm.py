"""vSwarm load.json: a list with one object per minute (or second),
`{"timestamp": [µs offsets from the start of that unit, sorted], "endpoint": [host names]}`.

Decoding streams one unit at a time, so a 10-million-request file costs the output columns
plus one unit's Python lists, not the whole document as Python objects.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from replayer.errors import InputError
from replayer.schedule import MINUTE_NS, NS_PER_S, NS_PER_US, Schedule

_CHUNK_CHARS = 1 << 22
_WS = " \t\n\r"


class _Stream:
    """Characters of a file read in chunks, with the line/column of any position."""

    def __init__(self, f: IO[str], name: str):
        self.f, self.name = f, name
        self.buf = ""
        self.pos = 0          # position in buf
        self.consumed = 0     # characters dropped before buf
        self.lines_before = 0  # newlines in the dropped characters
        self.col_base = 0     # characters since the last dropped newline
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(_CHUNK_CHARS)
        if not chunk:
            self.eof = True
            return False
        dropped = self.buf[:self.pos]
        nl = dropped.count("\n")
        if nl:
            self.lines_before += nl
            self.col_base = len(dropped) - dropped.rfind("\n") - 1
        else:
            self.col_base += len(dropped)
        self.consumed += self.pos
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def skip_ws(self) -> str:
        """Next non-blank character ('' at the end of the file), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def where(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        head = self.buf[:pos]
        nl = head.count("\n")
        col = (len(head) - head.rfind("\n")) if nl else (self.col_base + len(head) + 1)
        return f"line {self.lines_before + nl + 1} column {col}"

    def decode_value(self, decoder: json.JSONDecoder):
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # A value cut by the chunk boundary looks like an error: read on and retry.
                if self.more():
                    continue
                raise InputError(f"{self.name}: {self.where(exc.pos)}: not valid JSON ({exc.msg}); "
                                 "fix the file or regenerate it") from None
            except (ValueError, RecursionError) as exc:
                # Numbers past Python's digit limit, or nesting too deep to decode.
                raise InputError(f"{self.name}: {self.where()}: a value the decoder cannot take "
                                 f"({str(exc).splitlines()[0][:80]}); fix the file or regenerate "
                                 "it") from None
            if end == len(self.buf) and not self.eof and self.more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value


def iter_units(path: Path | str, max_units: int | None = None) -> Iterator[tuple[int, list, list]]:
    """Yield (unit index, timestamps, endpoints) per top-level object, validating the shape."""
    name = str(path)
    decoder = json.JSONDecoder()
    try:
        f = open(path, "r", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{name}: cannot open the trace file ({exc.strerror}); check the path") from None
    with f:
        s = _Stream(f, name)
        try:
            c = s.skip_ws()
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text; a load.json is a JSON file") from None
        if c != "[":
            raise InputError(f"{name}: {s.where()}: expected a JSON list of per-unit objects "
                             f"(got {c!r}); a vSwarm load.json starts with '['")
        s.pos += 1
        unit = 0
        try:
            if s.skip_ws() == "]":
                return
            while True:
                if max_units is not None and unit >= max_units:
                    return
                s.skip_ws()
                start = s.where()
                obj = s.decode_value(decoder)
                if not isinstance(obj, dict):
                    raise InputError(f"{name}: object {unit} ({start}): expected an object with "
                                     f"\"timestamp\" and \"endpoint\" lists, got {type(obj).__name__}")
                for key in ("timestamp", "endpoint"):
                    if key not in obj:
                        raise InputError(f"{name}: object {unit} ({start}): missing \"{key}\"; each "
                                         "unit needs \"timestamp\" and \"endpoint\" lists")
                    if not isinstance(obj[key], list):
                        raise InputError(f"{name}: object {unit} field \"{key}\": expected a list, got "
                                         f"{type(obj[key]).__name__}")
                yield unit, obj["timestamp"], obj["endpoint"]
                unit += 1
                c = s.skip_ws()
                if c == ",":
                    s.pos += 1
                    continue
                if c == "]":
                    s.pos += 1
                    break
                raise InputError(f"{name}: {s.where()}: not valid JSON (expected ',' or ']' after "
                                 f"object {unit - 1}, got {c!r}); fix the file or regenerate it")
            if s.skip_ws() != "":
                raise InputError(f"{name}: {s.where()}: extra data after the closing ']'")
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text; a load.json is a JSON file") from None


def _offsets(name: str, unit: int, values: list, unit_us: int) -> np.ndarray:
    try:
        # map(type) runs in C: one pass to refuse floats, bools and strings exactly.
        if values and set(map(type, values)) != {int}:
            raise TypeError
        ts = np.array(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        bad = next(i for i, v in enumerate(values)
                   if type(v) is not int or not (-(1 << 63) <= v < (1 << 63)))
        raise InputError(f"{name}: object {unit} field \"timestamp\"[{bad}]: {values[bad]!r} is not "
                         "an integer number of microseconds") from None
    if ts.size:
        neg = np.flatnonzero(ts < 0)
        if neg.size:
            i = int(neg[0])
            raise InputError(f"{name}: object {unit} field \"timestamp\"[{i}]: offset {ts[i]} is "
                             "negative; offsets count microseconds from the start of the unit")
        far = np.flatnonzero(ts >= unit_us)
        if far.size:
            i = int(far[0])
            gran = "minute" if unit_us == 60_000_000 else "second"
            hint = (" (a per-second trace? use -min=false)" if gran == "minute"
                    else " (a per-minute trace? use -min=true)")
            raise InputError(f"{name}: object {unit} field \"timestamp\"[{i}]: offset {ts[i]} µs is "
                             f"beyond the {gran} unit of {unit_us} µs{hint}")
        down = np.flatnonzero(ts[1:] < ts[:-1])
        if down.size:
            i = int(down[0]) + 1
            raise InputError(f"{name}: object {unit} field \"timestamp\"[{i}]: offset {ts[i]} comes "
                             f"after {ts[i - 1]}; offsets must be sorted ascending")
    return ts


def read_load_json(path: Path | str, minute: bool = True, max_units: int | None = None) -> Schedule:
    """Decode a vSwarm load.json into a Schedule (t_ns from the start of unit 0).

    max_units: read only the first units (the invoker's -duration). Requests at the same
    microsecond stay distinct requests.
    """
    name = str(path)
    unit_ns = MINUTE_NS if minute else NS_PER_S
    unit_us = unit_ns // NS_PER_US
    times: list[np.ndarray] = []
    target_cols: list[np.ndarray] = []
    table: dict[str, int] = {}
    for unit, stamps, endpoints in iter_units(path, max_units):
        if len(stamps) != len(endpoints):
            raise InputError(f"{name}: object {unit}: \"timestamp\" has {len(stamps)} entries but "
                             f"\"endpoint\" has {len(endpoints)}; they must pair one to one")
        ts = _offsets(name, unit, stamps, unit_us)
        try:
            # Known names map in C (dict lookups through map); new names take the slow path once.
            ids = np.fromiter(map(table.__getitem__, endpoints), np.int32, len(endpoints))
        except (KeyError, TypeError):
            ids = np.empty(len(endpoints), dtype=np.int32)
            for j, e in enumerate(endpoints):
                k = table.get(e) if type(e) is str else None
                if k is None:
                    if type(e) is not str or not e.strip():
                        raise InputError(f"{name}: object {unit} field \"endpoint\"[{j}]: {e!r} is "
                                         "not a host name; every request needs a non-empty endpoint")
                    k = table[e] = len(table)
                ids[j] = k
        times.append(ts * NS_PER_US + unit * unit_ns)
        target_cols.append(ids)
    t_ns = np.concatenate(times) if times else np.empty(0, np.int64)
    target = np.concatenate(target_cols) if target_cols else np.empty(0, np.int32)
    return Schedule(t_ns=t_ns, target=target, targets=list(table), unit_ns=unit_ns, source=name)


def write_load_json(schedule: Schedule, path: Path | str) -> None:
    """Write a schedule as a vSwarm load.json, readable by the vSwarm Go invoker.

    Each request goes to its unit (t_ns // unit_ns) with its µs offset inside it; every unit
    from 0 to the last one is written, empty units included, so unit k stays object k.
    """
    unit_ns = schedule.unit_ns
    sched = schedule.sorted()
    units = sched.t_ns // unit_ns
    offsets_us = (sched.t_ns - units * unit_ns) // NS_PER_US
    n_units = int(units[-1]) + 1 if len(sched) else 0
    bounds = np.searchsorted(units, np.arange(n_units + 1), side="left")
    names = [json.dumps(t) for t in sched.targets]
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for u in range(n_units):
            lo, hi = int(bounds[u]), int(bounds[u + 1])
            f.write(",\n" if u else "\n")
            f.write('  {"timestamp": [')
            f.write(", ".join(map(str, offsets_us[lo:hi].tolist())))
            f.write('], "endpoint": [')
            f.write(", ".join(names[k] for k in sched.target[lo:hi].tolist()))
            f.write("]}")
        f.write("\n]\n")

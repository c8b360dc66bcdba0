"""vSwarm load.json: a list with one object per minute (or second),
`{"timestamp": [µs offsets from the start of that unit, sorted], "endpoint": [host names]}`.

`read_load_json` streams: it reads the file a chunk at a time and writes each request
straight into the shared columns a run hands to its workers, so a 10-million-request file costs
the columns (12 bytes a request) and a few chunks, however large a unit is. The reference
decoder (`iter_units`, `_read_reference`: one unit at a time as Python objects) has the last
word on anything the streaming one does not take, so every malformed file gets its exact
message.
"""
from __future__ import annotations

import ctypes
import io
import json
import os
import stat
import warnings
from json.decoder import scanstring
from pathlib import Path
from typing import IO, BinaryIO, Iterator

import numpy as np

from replayer.run import shm
from replayer.errors import InputError
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, NS_PER_US, Schedule

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


def iter_units(path: Path | str, max_units: int | None = None,
               opened: BinaryIO | None = None) -> Iterator[tuple[int, list, list]]:
    """Yield (unit index, timestamps, endpoints) per top-level object, validating the shape;
    from `opened` when the file is already open (a pipe or FIFO can be opened only once)."""
    name = str(path)
    decoder = json.JSONDecoder()
    try:
        f = (open(path, "r", encoding="utf-8") if opened is None
             else io.TextIOWrapper(opened, encoding="utf-8"))
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


def _read_reference(path: Path | str, minute: bool, max_units: int | None,
                    keep: bool = True) -> Schedule | None:
    """The reference decoder: one unit at a time as Python objects (memory grows with the
    largest unit), every check in its order, the exact message for every malformed file.
    keep=False only checks (returns None): a malformed file raises, a valid one costs no
    columns."""
    return _reference(path, minute, max_units, keep)[0]


def _reference(path: Path | str, minute: bool, max_units: int | None,
               keep: bool = True, opened: BinaryIO | None = None) -> tuple[Schedule | None, int]:
    """_read_reference's schedule, and the units it read."""
    name = str(path)
    unit_ns = MINUTE_NS if minute else NS_PER_S
    unit_us = unit_ns // NS_PER_US
    times: list[np.ndarray] = []
    target_cols: list[np.ndarray] = []
    table: dict[str, int] = {}
    units = 0
    for unit, stamps, endpoints in iter_units(path, max_units, opened):
        units = unit + 1
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
        if keep:
            times.append(ts * NS_PER_US + unit * unit_ns)
            target_cols.append(ids)
    if not keep:
        return None, units
    t_ns = np.concatenate(times) if times else np.empty(0, np.int64)
    target = np.concatenate(target_cols) if target_cols else np.empty(0, np.int32)
    return Schedule(t_ns=t_ns, target=target, targets=list(table), unit_ns=unit_ns,
                    source=name), units


# --- the streaming decoder ---------------------------------------------------------------------
#
# It reads the file in chunks of bytes and writes every request straight into the shared
# columns (replayer.run.shm.Column). Within an array it takes whole runs of elements at once, as
# far as the chunk goes: timestamps through numpy's text parser, checked exactly (only digits,
# commas and blanks; every comma between two numbers; every digit accounted for by the values,
# so no leading zero, no overflow, no empty element), endpoints by splitting at commas and
# looking each element's text up in a table of texts already decoded. Anything else (an
# escaped or new name, odd spacing) goes element by element through json's own string decoder.
# Whatever it does not accept (every malformed file, and a few valid oddities such as a
# repeated key or "-0") is left to the reference decoder above, which gives the exact message
# (or decodes the file).

_READ_BYTES = 1 << 20
_BLANKS = b" \t\n\r"
_BLANK = frozenset(_BLANKS)
_NUMBER_TEXT = b"0123456789," + _BLANKS
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)
_MAX_FORMS = 4096           # element texts remembered per file (beyond: decoded each time)
_ONE_BY_ONE = 64            # endpoints decoded one at a time after one that a run cannot take
_SHORT_RUN = 1 << 12        # bytes in the next run after that
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = b"[]{}"
_QUOTE, _COMMA, _COLON, _BACKSLASH = b'",:\\'


class _Fallback(Exception):
    """Left to the reference decoder."""


class _Reader:
    """The file's bytes, read in chunks: buf[pos:] is what is left to decode."""

    def __init__(self, f):
        self.f = f
        self.buf = b""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk (bigger when a single value is already long); False at EOF."""
        if self.eof:
            return False
        left = len(self.buf) - self.pos
        chunk = self.f.read(max(_READ_BYTES, left))
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def peek(self) -> int:
        """The next non-blank byte (not consumed), -1 at the end of the file."""
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in _BLANK:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.more():
                return -1

    def string(self) -> str:
        """The JSON string at pos (a '"'), decoded as json decodes it; pos moves past it."""
        rel = 1
        while True:
            end = self.buf.find(b'"', self.pos + rel)
            if end < 0:
                rel = len(self.buf) - self.pos
                if not self.more():
                    raise _Fallback
                continue
            k = end
            while self.buf[k - 1] == _BACKSLASH:
                k -= 1
            if (end - k) % 2 == 0:
                break                   # not an escaped quote: the string's end
            rel = end + 1 - self.pos
        try:
            value, _ = scanstring(self.buf[self.pos + 1:end].decode("utf-8") + '"', 0)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
            raise _Fallback from None
        self.pos = end + 1
        return value

    def skip_value(self, decoder: json.JSONDecoder) -> None:
        """Decode and drop the JSON value at pos (a field other than timestamp/endpoint),
        looking at a window of the buffer that grows until the value fits in it."""
        size = 1 << 12
        while True:
            while len(self.buf) - self.pos < size and self.more():
                pass
            window = self.buf[self.pos:self.pos + size]
            whole = self.eof and self.pos + size >= len(self.buf)
            try:
                text = window.decode("utf-8")
            except UnicodeDecodeError as exc:
                if whole or exc.start < len(window) - 4:
                    raise _Fallback from None
                text = window[:exc.start].decode("utf-8")   # a character cut by the window
                whole = False
            try:
                _, stop = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if whole:
                    raise _Fallback from None
                size *= 4
                continue
            except (ValueError, RecursionError):
                raise _Fallback from None
            if stop == len(text) and not whole:
                size *= 4               # a number may go on past the window
                continue
            self.pos += len(text[:stop].encode("utf-8"))
            return

    def run(self, limit: int = 0) -> tuple[bytes, int, bool]:
        """The elements from pos to the array's end, or to the last comma in the buffer (or
        within `limit` bytes, when there is one): (their text, where the next run starts,
        whether the array ends there)."""
        while True:
            buf, pos = self.buf, self.pos
            stop = pos + limit if limit else len(buf)
            end = buf.find(b"]", pos, stop)
            if end >= 0:
                return buf[pos:end], end + 1, True
            cut = buf.rfind(b",", pos, stop)
            if cut >= 0:
                return buf[pos:cut], cut + 1, False
            if limit:
                limit = 0
                continue
            if not self.more():
                raise _Fallback


def _numbers(text: bytes) -> np.ndarray | None:
    """Non-negative integers separated by commas, sorted ascending, as int64 (None for blank
    text); _Fallback for anything else."""
    if text.translate(None, _NUMBER_TEXT):
        raise _Fallback
    compact = text.translate(None, _BLANKS)
    if not compact:
        return None
    if compact[0] == _COMMA or compact[-1] == _COMMA or b",," in compact:
        raise _Fallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = np.fromstring(text, dtype=np.int64, sep=",")
    except (ValueError, DeprecationWarning):
        raise _Fallback from None
    commas = compact.count(b",")
    n = len(values)
    if n != commas + 1 or (n > 1 and not (values[1:] >= values[:-1]).all()):
        raise _Fallback
    # Every digit is in a value: sorted, the values with k+1 digits or more are those >= 10**k.
    digits = n + n * len(_POW10) - int(np.searchsorted(values, _POW10).sum())
    if digits != len(compact) - commas:
        raise _Fallback
    return values


class _FastDecoder:
    def __init__(self, f, unit_ns: int, max_units: int | None):
        self.r = _Reader(f)
        self.unit_ns = unit_ns
        self.unit_us = unit_ns // NS_PER_US
        self.max_units = max_units
        self.t_ns = shm.Column("t_ns", np.int64)
        self.target = shm.Column("target", np.int32)
        self.table: dict[str, int] = {}
        self.forms: dict[bytes, int] = {}   # an element's text (blanks included) -> endpoint id
        self.decoder = json.JSONDecoder()
        self.units = 0                      # unit objects decoded

    def decode(self) -> int:
        """Rows decoded into the columns."""
        r = self.r
        if r.peek() != _LBRACKET:
            raise _Fallback
        r.pos += 1
        rows = unit = 0
        if r.peek() == _RBRACKET:
            return 0
        while True:
            if self.max_units is not None and unit >= self.max_units:
                return rows
            if r.peek() != _LBRACE:
                raise _Fallback
            r.pos += 1
            rows += self.unit(unit, rows)
            unit += 1
            self.units = unit
            c = r.peek()
            if c == _COMMA:
                r.pos += 1
                continue
            if c != _RBRACKET:
                raise _Fallback
            r.pos += 1
            break
        if r.peek() != -1:
            raise _Fallback
        return rows

    def unit(self, unit: int, start: int) -> int:
        r = self.r
        counts: dict[str, int] = {}
        c = r.peek()
        while True:
            if c != _QUOTE:
                raise _Fallback
            key = r.string()
            if key in counts or r.peek() != _COLON:
                raise _Fallback
            r.pos += 1
            c = r.peek()
            if key == "timestamp" or key == "endpoint":
                if c != _LBRACKET:
                    raise _Fallback
                r.pos += 1
                counts[key] = (self.timestamps(unit, start) if key == "timestamp"
                               else self.endpoints(start))
            else:
                counts[key] = 0
                r.skip_value(self.decoder)
            c = r.peek()
            if c == _COMMA:
                r.pos += 1
                c = r.peek()
                continue
            if c != _RBRACE:
                raise _Fallback
            r.pos += 1
            break
        n = counts.get("timestamp")
        if n is None or n != counts.get("endpoint"):
            raise _Fallback
        return n

    def timestamps(self, unit: int, start: int) -> int:
        r = self.r
        count, last = 0, 0
        base = unit * self.unit_ns
        while True:
            text, after, final = r.run()
            values = _numbers(text)
            if values is None:
                if final and count == 0:
                    r.pos = after
                    return 0
                raise _Fallback
            if values[0] < last or values[-1] >= self.unit_us:
                raise _Fallback
            last = int(values[-1])
            values *= NS_PER_US
            values += base
            self.t_ns.write(start + count, values)
            count += len(values)
            r.pos = after
            if final:
                return count

    def endpoints(self, start: int) -> int:
        r = self.r
        count = 0
        limit = 0       # after an element a run could not take, short runs (doubling) for a while
        while True:
            text, after, final = r.run(limit)
            parts = text.split(b",")
            try:
                ids = np.fromiter(map(self.forms.__getitem__, parts), np.int32, len(parts))
                taken = len(parts)
            except KeyError:
                ids, taken = self.new_forms(parts)
            self.target.write(start + count, ids)
            count += len(ids)
            if taken == len(parts):
                r.pos = after
                if final:
                    return count
                if limit:
                    limit = 0 if limit >= _READ_BYTES else 2 * limit
                continue
            limit = _SHORT_RUN
            # parts[taken] is not a whole element: a name with a comma or ']' in it, or
            # malformed text. Element by element past it (a few more, so that names with
            # commas do not cost a fresh split of the chunk each), then whole runs again.
            r.pos += sum(map(len, parts[:taken])) + taken
            for _ in range(_ONE_BY_ONE):
                count, done = self.endpoints_one_by_one(start, count)
                if done:
                    return count

    def new_forms(self, parts: list[bytes]) -> tuple[list[int], int]:
        """Endpoint ids of the leading parts that are whole elements (a JSON string between
        blanks), learning the new ones: (ids, how many parts)."""
        ids: list[int] = []
        forms, table = self.forms, self.table
        for i, part in enumerate(parts):
            k = forms.get(part)
            if k is None:
                text = part.strip(_BLANKS)
                if len(text) < 2 or text[0] != _QUOTE or text[-1] != _QUOTE:
                    return ids, i
                try:
                    inner = text[1:-1].decode("utf-8")
                    name, end = scanstring(inner + '"', 0)
                except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
                    return ids, i
                if end != len(inner) + 1 or not name.strip():
                    return ids, i
                k = table.get(name)
                if k is None:
                    k = table[name] = len(table)
                if len(forms) < _MAX_FORMS:
                    forms[part] = k
            ids.append(k)
        return ids, len(parts)

    def endpoints_one_by_one(self, start: int, count: int) -> tuple[int, bool]:
        """One element from pos (or the end of an empty array), with json's string decoder:
        (count, whether the array ended)."""
        r = self.r
        c = r.peek()
        if c == _RBRACKET and count == 0:
            r.pos += 1
            return count, True
        if c != _QUOTE:
            raise _Fallback
        name = r.string()
        if not name.strip():
            raise _Fallback
        k = self.table.get(name)
        if k is None:
            k = self.table[name] = len(self.table)
        self.target.write(start + count, [k])
        c = r.peek()
        if c != _COMMA and c != _RBRACKET:
            raise _Fallback
        r.pos += 1
        return count + 1, c == _RBRACKET

    def schedule(self, rows: int, name: str) -> Schedule:
        t_ns, target = self.t_ns.finish(rows), self.target.finish(rows)
        return Schedule(t_ns=t_ns, target=target, targets=list(self.table), unit_ns=self.unit_ns,
                        source=name, segments=(self.t_ns.segment, self.target.segment))

    def discard(self) -> None:
        self.t_ns.discard()
        self.target.discard()


def read_load_json(path: Path | str, minute: bool = True, max_units: int | None = None) -> Schedule:
    """Decode a vSwarm load.json into a Schedule (t_ns from the start of unit 0), its columns
    in shared memory ready for the workers.

    max_units: read only the first units (the invoker's -warmup + -duration). Requests at the
    same microsecond stay distinct requests. Memory: the columns (12 bytes a request) and a
    few chunks of the file, however large a unit is.
    """
    return decode_load_json(path, minute, max_units)[0]


def decode_load_json(path: Path | str, minute: bool = True,
                     max_units: int | None = None) -> tuple[Schedule, int]:
    """read_load_json's schedule, and the units read: the file's unit objects (empty ones
    included, as the invoker counts them), at most max_units."""
    name = str(path)
    unit_ns = MINUTE_NS if minute else NS_PER_S
    try:
        f = open(path, "rb")
        regular = stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except OSError:
        f, regular = None, False
    if not regular:
        # The reference's message, or a pipe or FIFO: read once, through the descriptor
        # already open (opening a FIFO again would wait for another writer).
        return _reference(path, minute, max_units, opened=f)
    with f:
        dec = _FastDecoder(f, unit_ns, max_units)
        try:
            rows = dec.decode()
        except BaseException as exc:
            dec.discard()
            if not isinstance(exc, _Fallback):
                raise
            rows = None
    if rows is None:
        # The reference raises the exact message. A valid file that only it takes (a repeated
        # key, "-0") is checked first, in the memory of one unit, then decoded.
        _reference(path, minute, max_units, keep=False)
        return _reference(path, minute, max_units)
    _release_free_heap()
    if rows == 0:
        dec.discard()
        return Schedule(t_ns=np.empty(0, np.int64), target=np.empty(0, np.int32),
                        targets=list(dec.table), unit_ns=unit_ns, source=name), dec.units
    return dec.schedule(rows, name), dec.units


def _release_free_heap() -> None:
    """Give the chunks the decoder freed back to the system (glibc keeps freed heap memory,
    about 1 byte a request here, for later allocations); nothing where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def write_load_json(schedule: Schedule, path: Path | str, n_units: int | None = None) -> None:
    """Write a schedule as a vSwarm load.json, readable by the vSwarm Go invoker.

    Each request goes to its unit (t_ns // unit_ns) with its µs offset inside it; every unit
    from 0 to the last one is written, empty units included, so unit k stays object k.
    n_units: the load's length in units, when it ends with empty units (the invoker counts
    objects: a load's last quiet minutes are still minutes of it).
    """
    unit_ns = schedule.unit_ns
    sched = schedule.sorted()
    units = sched.t_ns // unit_ns
    offsets_us = (sched.t_ns - units * unit_ns) // NS_PER_US
    n_units = max(int(units[-1]) + 1 if len(sched) else 0, n_units or 0)
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

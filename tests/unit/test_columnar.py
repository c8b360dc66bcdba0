"""Columnar schedule files (.parquet, .arrow in file and stream format, .feather) written by
replayer.schedules.columnar and read back: every column, table and unit survives; files made
by other tools are accepted when they hold what a schedule needs; anything else is one line
naming the file, the column and the row."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from input_cases import IN_PROCESS, time_bound
from replayer.errors import InputError
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.schedules import columnar, load_schedule, load_schedule_units


def _schedule(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 5 * NS_PER_S, n))
    return Schedule(t_ns=t, target=rng.integers(0, 3, n), targets=["a.local", "b.local", "c.local"],
                    cls=rng.integers(-1, 4, n), classes=["f0", "f1", "f2", "f3"], unit_ns=NS_PER_S)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".feather"])
def test_round_trip(tmp_path, suffix):
    """Times, endpoints, classes, unit and extra columns (function, proxy) come back as
    written, in every format; max_units cuts by the file's own unit."""
    s = _schedule()
    path = tmp_path / f"s{suffix}"
    func = (np.arange(len(s)) % 7, [f"fn{i}" for i in range(7)])
    columnar.write_schedule(s, path, function=func, proxy=(np.zeros(len(s)), ["p"]))
    back = load_schedule(path)
    assert np.array_equal(back.t_ns, s.t_ns)
    assert [back.targets[k] for k in back.target] == [s.targets[k] for k in s.target]
    assert np.array_equal(back.cls, s.cls)
    assert back.classes == s.classes and back.unit_ns == NS_PER_S
    extra = columnar.read_columns(path, ["function", "proxy"])
    assert extra.column("function").to_pylist()[:8] == [f"fn{i % 7}" for i in range(8)]
    # load_schedule's max_units cuts by the file's own unit (seconds here).
    assert len(load_schedule(path, max_units=2)) == int((s.t_ns < 2 * NS_PER_S).sum())


def test_plain_strings_and_unsorted_rows_are_accepted(tmp_path):
    """A file from another tool (plain string endpoints, rows out of order, no classes, no
    metadata) is sorted stably by time, in minutes by default."""
    path = tmp_path / "hand.parquet"
    pq.write_table(pa.table({"t_ns": pa.array([30, 10, 20, 10], pa.int64()),
                             "endpoint": ["x", "y", "x", "z"]}), path)
    s = columnar.read_schedule(path)
    assert s.t_ns.tolist() == [10, 10, 20, 30]
    # stable: the two requests at t=10 keep their file order (y before z)
    assert [s.targets[k] for k in s.target] == ["y", "z", "x", "x"]
    assert s.cls is None and s.unit_ns == 60 * NS_PER_S


def test_chunks_with_different_dictionaries(tmp_path):
    """Row groups with dictionaries of their own map to one endpoint table."""
    path = tmp_path / "groups.parquet"
    names = ["a", "b", "c", "d", "a", "d"]
    pq.write_table(pa.table({"t_ns": pa.array(range(6), pa.int64()), "endpoint": names}), path,
                   row_group_size=2)
    s = columnar.read_schedule(path)
    assert [s.targets[k] for k in s.target] == names
    assert len(s.targets) == 4


def _expect(path, *words):
    with pytest.raises(InputError) as exc:
        columnar.read_schedule(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("table, words", [
    ({"endpoint": ["a"]}, ["t_ns", "missing"]),
    ({"t_ns": pa.array([1], pa.int64())}, ["endpoint", "missing"]),
    ({"t_ns": pa.array([1.5]), "endpoint": ["a"]}, ["t_ns", "double"]),
    ({"t_ns": pa.array([5, -3], pa.int64()), "endpoint": ["a", "b"]}, ["t_ns", "row 1", "negative"]),
    ({"t_ns": pa.array([1, None], pa.int64()), "endpoint": ["a", "b"]}, ["t_ns", "row 1"]),
    ({"t_ns": pa.array([1], pa.int64()), "endpoint": pa.array([7])}, ["endpoint", "int64"]),
    ({"t_ns": pa.array([1, 2], pa.int64()), "endpoint": ["a", None]}, ["endpoint", "row 1"]),
    ({"t_ns": pa.array([1, 2], pa.int64()), "endpoint": ["a", ""]}, ["endpoint", "row 1"]),
    ({"t_ns": pa.array([1], pa.int64()), "endpoint": ["a"], "cls": pa.array([40000], pa.int32())},
     ["cls", "row 0"]),
    ({"t_ns": pa.array([1], pa.int64()), "endpoint": ["a"], "cls": pa.array(["x"])}, ["cls"]),
])
def test_bad_columns(tmp_path, table, words):
    """Missing, mistyped, null, negative, empty and out-of-range columns: one line naming the
    file, the column and the row."""
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(table), path)
    _expect(path, *words)


def test_bad_metadata_and_files(tmp_path):
    """A bad replayer.unit_ns, a file that is not Parquet and a missing file are named."""
    path = tmp_path / "meta.arrow"
    t = pa.table({"t_ns": pa.array([1], pa.int64()), "endpoint": ["a"]})
    t = t.replace_schema_metadata({b"replayer.unit_ns": b"-5"})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    _expect(path, "unit_ns")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    _expect(junk, "parquet")
    with pytest.raises(InputError):
        load_schedule(tmp_path / "missing.parquet")


def test_stream_format_is_read(tmp_path):
    """An Arrow IPC stream (not only the file format) is read as a schedule."""
    path = tmp_path / "s.arrow"
    t = pa.table({"t_ns": pa.array([2, 1], pa.int64()), "endpoint": ["a", "b"]})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    s = columnar.read_schedule(path)
    assert s.t_ns.tolist() == [1, 2]
    assert [s.targets[k] for k in s.target] == ["b", "a"]


def test_metadata_written(tmp_path):
    """The unit and the class names go into the schema metadata; t_ns is int64, cls int16."""
    path = tmp_path / "m.parquet"
    columnar.write_schedule(_schedule(10), path)
    meta = pq.read_schema(path).metadata
    assert int(meta[b"replayer.unit_ns"]) == NS_PER_S
    assert json.loads(meta[b"replayer.classes"]) == ["f0", "f1", "f2", "f3"]
    schema = pq.read_schema(path)
    assert schema.field("t_ns").type == pa.int64() and schema.field("cls").type == pa.int16()


def test_writer_in_pieces(tmp_path):
    """ScheduleWriter takes the schedule in sorted pieces (equal times across pieces allowed),
    refuses a piece that goes back in time, and counts its rows."""
    path = tmp_path / "pieces.parquet"
    with columnar.ScheduleWriter(path, ["a", "b"], NS_PER_S, functions=["f", "g", "h"]) as w:
        w.write(np.array([1, 2, 3]), np.array([0, 1, 0]), function=np.array([0, 1, 2]))
        w.write(np.array([3, 9]), np.array([1, 1]), function=np.array([2, 2]))
        with pytest.raises(ValueError):
            w.write(np.array([4]), np.array([0]), function=np.array([0]))
    s = columnar.read_schedule(path)
    assert s.t_ns.tolist() == [1, 2, 3, 3, 9] and w.rows == 5 and s.unit_ns == NS_PER_S
    assert columnar.read_columns(path, ["function"]).column("function").to_pylist() == list("fghhh")


def test_units_of_a_columnar_schedule(tmp_path):
    """A columnar schedule's units: replayer.units when written (gen azure writes it, quiet
    last units included), else up to its last request's unit; max_units caps both."""
    sched = Schedule(t_ns=np.array([0, NS_PER_S // 2, NS_PER_S + 1], np.int64),
                     target=np.zeros(3, np.int32), targets=["a"], unit_ns=NS_PER_S)
    columnar.write_schedule(sched, tmp_path / "quiet.parquet", units=4)
    columnar.write_schedule(sched, tmp_path / "plain.arrow")
    assert load_schedule_units(tmp_path / "quiet.parquet")[1] == 4
    assert load_schedule_units(tmp_path / "quiet.parquet", max_units=3)[1] == 3
    schedule, units = load_schedule_units(tmp_path / "plain.arrow", max_units=1)
    assert units == 1 and len(schedule) == 2
    assert load_schedule_units(tmp_path / "plain.arrow")[1] == 2


@pytest.fixture(scope="module")
def schedule_files(tmp_path_factory):
    """The bytes of a small valid schedule in each format the mutation test damages."""
    d = tmp_path_factory.mktemp("columnar")
    out = {}
    for suffix in (".arrow", ".parquet"):
        path = d / f"s{suffix}"
        n = 50
        columnar.write_schedule(Schedule(t_ns=np.arange(n, dtype=np.int64) * 1000,
                                         target=(np.arange(n) % 3).astype(np.int32),
                                         targets=["a", "b", "c"], unit_ns=NS_PER_S), path)
        out[suffix] = path.read_bytes()
    return out


@IN_PROCESS
@given(suffix=st.sampled_from([".arrow", ".parquet"]), data=st.data())
def test_mutated_columnar_schedule(tmp_path, schedule_files, suffix, data):
    """A valid file with bytes flipped, zeroed or cut off: a sound schedule (endpoints in its
    table, no negative time) or one line naming the file, within the time bound."""
    raw = bytearray(schedule_files[suffix])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "zero"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] ^= data.draw(st.integers(1, 255))
        elif op == "truncate":
            del raw[i:]
            if not raw:
                break
        else:
            raw[i:i + 8] = bytes(len(raw[i:i + 8]))
    path = tmp_path / f"sched{suffix}"
    path.write_bytes(bytes(raw))
    try:
        with time_bound():
            s = columnar.read_schedule(path)
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert len(s.t_ns) == len(s.target) and s.is_sorted()
    if len(s):
        assert s.t_ns.min() >= 0 and 0 <= s.target.min() and s.target.max() < len(s.targets)

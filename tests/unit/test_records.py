"""Records: ring rows drained into a worker's Arrow IPC stream and read back whole, counted as
they pass; damaged and missing streams."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from replayer import _pacer
from replayer.analysis.model import ERROR_NAMES, PHASES, Columns, Counts
from replayer.analysis.records import (ROW_DTYPE, SCHEMA, RecordWriter, RingDrain, iter_batches,
                                       read_records, read_stream, record_files, records_path)
from replayer.errors import InputError

T0 = 1_700_000_000_000_000_000
N = 3000
WARMUP_NS = 1_000_000_000


def _truth(n: int = N, seed: int = 3) -> dict[str, np.ndarray]:
    """n requests 1 ms apart over two targets and two classes: most answered, some failed
    with a status, some timed out (sent, never completed), some never sent."""
    rng = np.random.default_rng(seed)
    t_ns = np.arange(n, dtype=np.int64) * 1_000_000
    sent = T0 + t_ns + rng.integers(1, 50_000, n)
    done = sent + rng.integers(100_000, 2_000_000, n)
    error = np.zeros(n, np.int8)
    status = np.full(n, 200, np.int32)
    kind = rng.random(n)
    error[kind < 0.05] = ERROR_NAMES.index("status")
    status[kind < 0.05] = 503
    timeout = (kind >= 0.05) & (kind < 0.08)
    error[timeout], status[timeout], done[timeout] = ERROR_NAMES.index("timeout"), 0, 0
    unsent = (kind >= 0.08) & (kind < 0.1)
    error[unsent], status[unsent], sent[unsent], done[unsent] = ERROR_NAMES.index("overload"), 0, 0, 0
    return {"t_ns": t_ns, "target": rng.integers(0, 2, n).astype(np.int32),
            "cls": rng.integers(0, 2, n).astype(np.int16), "sent": sent, "done": done,
            "error": error, "status": status, "bytes_in": rng.integers(0, 500, n)}


def test_ring_rows_drain_to_the_stream_and_read_back(tmp_path):
    """Rows pushed into a real record ring in completion order (wrapping it many times) and
    drained by RingDrain come back from the Arrow stream as they went in, with target, class
    and phase gathered from the schedule; the drain's live counts equal the counts of the
    file."""
    truth = _truth()
    capacity = 256
    buf = bytearray(_pacer.RecordRing.nbytes(capacity))
    ring = _pacer.RecordRing(buf, True, capacity)
    writer = RecordWriter(records_path(tmp_path, 0), 0, truth["target"], ["a.test", "b.test"],
                          truth["cls"], truth["t_ns"], WARMUP_NS, {"source": "test"})
    drain = RingDrain(ring, writer, batch_rows=100)
    drain.attach_rows(buf)
    order = np.random.default_rng(5).permutation(N)
    for start in range(0, N, 200):
        for e in order[start:start + 200].tolist():
            ring.record(e, T0 + int(truth["t_ns"][e]), int(truth["sent"][e]), int(truth["done"][e]),
                        int(truth["status"][e]), int(truth["error"][e]), 64, int(truth["bytes_in"][e]))
        assert drain.drain() == min(200, N - start)
    writer.close()
    assert writer.rows_written == N and drain.pending() == 0

    table, problems = read_records(tmp_path)
    assert not problems and table.num_rows == N
    c = Columns.decode(table)
    by_event = np.argsort(c.event)
    c = c.subset(by_event)
    assert c.event.tolist() == list(range(N))
    assert [c.targets[t] for t in c.target] == [["a.test", "b.test"][t] for t in truth["target"]]
    assert np.array_equal(c.cls, truth["cls"])
    assert np.array_equal(c.phase, (truth["t_ns"] >= WARMUP_NS).astype(np.int8))
    assert np.array_equal(c.scheduled_ns, T0 + truth["t_ns"])
    assert np.array_equal(c.has_sent, truth["sent"] != 0)
    assert np.array_equal(c.sent_ns[c.has_sent], truth["sent"][truth["sent"] != 0])
    assert np.array_equal(c.has_done, truth["done"] != 0)
    assert np.array_equal(c.done_ns[c.has_done], truth["done"][truth["done"] != 0])
    assert [c.errors[e] for e in c.error] == [ERROR_NAMES[e] for e in truth["error"]]
    assert np.array_equal(c.status, truth["status"]) and np.array_equal(c.bytes_in, truth["bytes_in"])
    for p in range(len(PHASES)):
        assert vars(drain.live.phases[p]) == vars(Counts().add(c, c.phase == p))


def test_damaged_stream_gives_the_records_before_the_damage(tmp_path):
    """A stream cut in its fourth batch yields its first three and one problem line naming
    the file and how much was read; a stream of garbage yields nothing and says so."""
    truth = _truth(400)
    path = records_path(tmp_path, 0)
    writer = RecordWriter(path, 0, truth["target"], ["a.test", "b.test"], None, truth["t_ns"], 0, {})
    rows = np.zeros(400, ROW_DTYPE)
    rows["event"] = np.arange(400)
    rows["scheduled_ns"] = T0 + truth["t_ns"]
    for lo in range(0, 400, 100):
        writer.write(rows[lo:lo + 100])
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.9)])
    problems: list[str] = []
    batches = list(iter_batches(tmp_path, problems=problems))
    assert [b.num_rows for b in batches] == [100, 100, 100]
    assert len(problems) == 1 and problems[0].startswith(f"{path}: damaged after 300 records (3 batches)")
    table, problem = read_stream(path, ["event"])
    assert table.num_rows == 300 and problem == problems[0]

    path.write_bytes(b"not an arrow stream")
    problems = []
    assert list(iter_batches(tmp_path, problems=problems)) == []
    assert problems[0].startswith(f"{path}: unreadable, no records used from it")


def test_a_directory_without_records_is_an_input_error(tmp_path):
    """A missing run directory, or one without record streams, is one line saying which."""
    with pytest.raises(InputError, match="no such run directory"):
        record_files(tmp_path / "missing")
    with pytest.raises(InputError, match=r"no records-w\*\.arrow files"):
        record_files(tmp_path)


def test_records_written_before_late_cause_read_whole(tmp_path):
    """A run directory written before records had late_cause (its streams lack the column)
    reads whole, with or without a column list; the table has no late_cause (the verdict then
    says the records do not tell why sends were late)."""
    old = pa.schema([f for f in SCHEMA if f.name not in ("late_cause", "payload")])
    n = 3
    arrays = [pa.array(range(n), pa.int64()), pa.array([0] * n, pa.int16()),
              pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array(["svc"])),
              pa.array([-1] * n, pa.int16()),
              pa.DictionaryArray.from_arrays(pa.array([1] * n, pa.int8()),
                                             pa.array(["warmup", "measure"])),
              pa.array([10, 20, 30], pa.int64()), pa.array([11, 21, 31], pa.int64()),
              pa.array([15, 25, 35], pa.int64()), pa.array([200] * n, pa.int32()),
              pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int8()), pa.array(["ok"])),
              pa.array([0] * n, pa.int32()), pa.array([0] * n, pa.int64())]
    with pa.OSFile(str(tmp_path / "records-w000.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, old) as writer:
            writer.write_batch(pa.record_batch(arrays, schema=old))
    table, problems = read_records(tmp_path)
    assert problems == [] and table.num_rows == n
    assert "late_cause" not in table.column_names
    assert table.column("sent_ns").to_pylist() == [11, 21, 31]
    table, _ = read_records(tmp_path, ["sent_ns", "late_cause"])
    assert table.column_names == ["sent_ns"] and table.num_rows == n

"""The analysis model: decoding records into columns, the derived durations, the counts of
outcomes, and run.json."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from replayer.analysis.model import (DURATIONS, ERROR_NAMES, Columns, Counts, LiveCounts,
                                     arrow_duration, class_table, run_metadata,
                                     scheduled_requests)
from replayer.analysis.records import SCHEMA
from replayer.errors import InputError

T0 = 1_700_000_000_000_000_000


def _batch(targets: list[str], target: list[int], errors: list[str], error: list[int],
           sent: list[int | None], done: list[int | None], phase: list[int] | None = None,
           status: list[int] | None = None) -> pa.RecordBatch:
    """A record batch with its own dictionaries (as another writer might order them)."""
    n = len(target)
    phase = [1] * n if phase is None else phase
    columns = {
        "event": pa.array(range(n), pa.int64()),
        "worker": pa.array([0] * n, pa.int16()),
        "target": pa.DictionaryArray.from_arrays(pa.array(target, pa.int32()), pa.array(targets)),
        "cls": pa.array([-1] * n, pa.int16()),
        "phase": pa.DictionaryArray.from_arrays(pa.array(phase, pa.int8()),
                                                pa.array(["warmup", "measure"])),
        "scheduled_ns": pa.array([T0 + i * 1000 for i in range(n)], pa.int64()),
        "sent_ns": pa.array(sent, pa.int64()),
        "done_ns": pa.array(done, pa.int64()),
        "status": pa.array([200] * n if status is None else status, pa.int32()),
        "error": pa.DictionaryArray.from_arrays(pa.array(error, pa.int8()), pa.array(errors)),
        "bytes_out": pa.array([0] * n, pa.int32()),
        "bytes_in": pa.array([0] * n, pa.int64()),
        "late_cause": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int8()),
                                                     pa.array(["none"])),
        "payload": pa.array([-1] * n, pa.int32()),
    }
    return pa.record_batch(list(columns.values()), schema=SCHEMA)


def test_decode_maps_every_batch_onto_the_same_codes():
    """Two batches whose dictionaries list targets and error kinds in other orders (and one
    kind this version does not know) decode to codes that mean the same name in both."""
    a = _batch(["x", "y"], [0, 1], ["ok", "timeout"], [0, 1], [T0 + 5, T0 + 1005], [T0 + 9, None])
    b = _batch(["y", "z", "x"], [0, 1, 2], ["mystery", "ok"], [1, 0, 1],
               [T0 + 5, T0 + 1005, T0 + 2005], [T0 + 9, T0 + 1010, T0 + 2009])
    targets, errors = [], list(ERROR_NAMES)
    ca, cb = Columns.decode(a, targets, errors), Columns.decode(b, targets, errors)
    assert targets == ["x", "y", "z"]
    assert [targets[t] for t in ca.target] == ["x", "y"]
    assert [targets[t] for t in cb.target] == ["y", "z", "x"]
    assert errors[:len(ERROR_NAMES)] == ERROR_NAMES and errors[len(ERROR_NAMES):] == ["mystery"]
    assert [errors[e] for e in cb.error] == ["ok", "mystery", "ok"]
    whole = Columns.concat([ca, cb])
    assert whole.n == 5 and [whole.targets[t] for t in whole.target] == ["x", "y", "y", "z", "x"]
    # A table of both (chunks with their own dictionaries) decodes to the same columns.
    table = Columns.decode(pa.Table.from_batches([a, b]))
    assert [table.targets[t] for t in table.target] == ["x", "y", "y", "z", "x"]
    assert table.has_done.tolist() == [True, False, True, True, True]


def test_durations_per_record_and_in_summaries():
    """Each derived duration is end - start: per record wherever both times are set (what the
    exports write, failures included), and in summaries over the requests it is taken over
    (lag: sent ones; latencies: ok ones)."""
    batch = _batch(["x"], [0] * 4, ["ok", "status", "connect", "timeout"], [0, 1, 2, 3],
                   sent=[T0 + 10, T0 + 1020, None, T0 + 3040],
                   done=[T0 + 510, T0 + 1520, None, None])
    c = Columns.decode(batch)
    assert c.lag.tolist() == [10, 20, 40]
    assert c.latency.tolist() == [500] and c.latency_intended.tolist() == [510]
    values, defined = c.per_record("latency_ns")
    assert values[defined].tolist() == [500, 500] and defined.tolist() == [True, True, False, False]
    for name in DURATIONS:
        arrow = arrow_duration(batch, name)
        values, defined = c.per_record(name)
        assert arrow.is_valid().to_numpy(zero_copy_only=False).tolist() == defined.tolist()
        assert arrow.drop_null().to_pylist() == values[defined].tolist()
    assert c.duration("lag_ns", where=np.array([False, True, True, True])).tolist() == [20, 40]


def test_counts_add_up_per_scope_and_merge():
    """Counts of a batch by outcome, never-sent kinds and statuses; split by a mask and
    merged back they equal the counts of the whole."""
    batch = _batch(["x"], [0] * 5, ["ok", "status", "overload"], [0, 1, 2, 0, 2],
                   sent=[T0, T0 + 1000, None, T0 + 3000, None],
                   done=[T0 + 5, T0 + 1005, None, T0 + 3005, None], phase=[0, 1, 1, 1, 0],
                   status=[200, 503, 0, 200, 0])
    c = Columns.decode(batch)
    whole = Counts().add(c)
    assert (whole.requests, whole.sent, whole.completed, whole.ok) == (5, 3, 3, 2)
    assert whole.errors_by_kind() == {"ok": 2, "status": 1, "overload": 2}
    assert whole.never_sent == {"overload": 2}
    assert whole.status == {0: 2, 200: 2, 503: 1} and whole.status_failed == {503: 1}
    assert (whole.first_scheduled_ns, whole.last_scheduled_ns) == (T0, T0 + 4000)
    measured = Counts().add(c, c.measured)
    merged = Counts().add(c, ~c.measured).merge(measured)
    assert vars(merged) == vars(whole)
    live = LiveCounts()
    live.add(c)
    assert vars(Counts.total(live.phases)) == vars(whole)
    assert vars(live.phases[1]) == vars(measured)
    assert (live.rows, live.sent, live.failed) == (5, 3, 3)


def test_run_json_is_read_in_one_place(tmp_path):
    """run.json: none gives {}; invalid JSON is one line naming the file; node_requests is
    what this node scheduled; classes with their SLOs in any unit."""
    assert run_metadata(tmp_path) == {}
    (tmp_path / "run.json").write_text('{"schedule": {"requests": 10, "node_requests": 4}, '
                                       '"classes": ["plain", {"name": "fast", "slo_us": 250}]}')
    meta = run_metadata(tmp_path)
    assert scheduled_requests(meta) == 4 and scheduled_requests({}) is None
    assert class_table(meta) == [
        {"name": "plain", "slo_ns": None, "timeout_ns": None, "tags": {}},
        {"name": "fast", "slo_ns": 250_000, "timeout_ns": None, "tags": {}}]
    (tmp_path / "run.json").write_text('{"schedule": ')
    with pytest.raises(InputError) as err:
        run_metadata(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'run.json'}: not valid JSON") and "\n" not in message
    assert message.endswith("fix or remove it")

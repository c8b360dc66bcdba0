"""Closed-loop users: the C loop (UserPacer) with in-process transports and the real clock
(spawn times, each think time, one request in flight per user, the end of the run, the
payload each request carries), and the model the parent reads records with (UsersModel:
classes by weight, each event's payload as the C side picks it, trace bodies files)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from replayer import _pacer
from replayer.analysis.records import ROW_DTYPE
from replayer.errors import InputError
from replayer.run.options import RunOptions
from replayer.run.users import (PICK_CYCLE, PICK_SAMPLE, UserClassPlan, UsersModel, WaitTime,
                                assign_classes, parse_wait_time, read_trace_bodies, users_load)

MS = 1_000_000


class Recorder(_pacer.Transport):
    """Answers every request at once (a ring row with done = now) and notes the payload the
    pacer put in the request's row of the users' columns."""

    def __init__(self, ring, payload_col, total):
        super().__init__(ring)
        self.payload_col = payload_col
        self.total = total
        self.payloads = {}

    def submit(self, event, scheduled_ns, sent_ns, cause):
        self.payloads[event] = int(self.payload_col[event % self.total])
        self.ring.record(event, scheduled_ns, sent_ns, _pacer.now_ns(), 200, 0)
        return 0


def run_users(classes, user_classes, spawn_rate=100.0, run_ms=300, seed=3, sequence=None,
              transport=None, first=0, stride=1, total=None):
    """Run UserPacer over users first, first + stride, ...; its ring rows, start and
    transport."""
    total = total or len(user_classes)
    cap = 1 << 14
    buf = bytearray(_pacer.RecordRing.nbytes(cap))
    ring = _pacer.RecordRing(buf, True, cap)
    control = np.zeros(_pacer.CONTROL_SIZE + 16, np.int64)
    control[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    cols = np.zeros(total, np.int32), np.full(total, -1, np.int32), np.zeros(total, np.int16)
    users = list(range(first, total, stride))
    clock = _pacer.Pacer(np.zeros(0, np.int64), 0, 1, control, 50_000)
    seq = np.ascontiguousarray(sequence if sequence is not None else np.zeros(1), np.int32)
    pacer = _pacer.UserPacer(clock, control, users, [user_classes[u] for u in users], classes,
                             *cols, seq, spawn_rate, run_ms * MS, seed)
    t = transport(ring, cols[1], total) if transport else _pacer.NullTransport(ring)
    control[_pacer.CONTROL_START_NS] = start = _pacer.now_ns() + 5 * MS
    pacer.run(t, 10**9)
    rows = np.frombuffer(buf, ROW_DTYPE, offset=_pacer.RING_HEADER_SIZE,
                         count=ring.write_idx).copy()
    return rows, start, t, pacer


def by_user(rows, total):
    return {u: rows[rows["event"] % total == u] for u in np.unique(rows["event"] % total)}


def test_spawn_times_and_constant_think_time():
    """User u starts at start + u / spawn rate; after each answer it waits exactly its think
    time; its k-th request is event k * users + u; nothing is decided after the run time."""
    wait = (_pacer.WAIT_CONSTANT, 20 * MS, 0, 0, 0, 0, PICK_CYCLE, -1)
    rows, start, _, pacer = run_users([wait], [0] * 4, spawn_rate=100.0, run_ms=300)
    users = by_user(rows, 4)
    assert sorted(users) == [0, 1, 2, 3]
    for u, r in users.items():
        assert r["scheduled_ns"][0] - start == u * 10 * MS
        assert np.all(r["scheduled_ns"][1:] == r["done_ns"][:-1] + 20 * MS)
        assert (r["event"] // 4).tolist() == list(range(len(r)))
        assert np.all(r["sent_ns"][1:] >= r["done_ns"][:-1])      # one in flight at a time
        assert 8 <= len(r) <= 15
    assert rows["scheduled_ns"].max() < start + 300 * MS
    assert pacer.submitted == len(rows)


@pytest.mark.parametrize("expr, check", [
    ("between(0.005, 0.015)", "between"),
    ("constant_pacing(0.01)", "pacing"),
    ("constant_throughput(100)", "pacing"),
    ("poisson(0.01)", "poisson"),
])
def test_think_times(expr, check):
    """Locust's wait_time functions, measured from the records: between draws uniformly
    from [a, b] after the answer; constant_pacing (and constant_throughput, its inverse)
    sends a period after the previous send unless the answer came later; poisson waits an
    exponential time of the given mean after the answer."""
    w = parse_wait_time(expr)
    rows, start, _, _ = run_users([(w.kind, w.a_ns, w.b_ns, 0, 0, 0, PICK_CYCLE, -1)], [0] * 3,
                                  spawn_rate=1000.0, run_ms=600)
    gaps = []
    for r in by_user(rows, 3).values():
        s, d = r["scheduled_ns"], r["done_ns"]
        if check == "pacing":
            assert np.all(s[1:] == np.maximum(d[:-1], s[:-1] + 10 * MS))
        gaps.append(s[1:] - d[:-1])
    gaps = np.concatenate(gaps) / MS
    if check == "between":
        assert gaps.min() >= 5 and gaps.max() <= 15 and 8 < gaps.mean() < 12
    elif check == "poisson":
        assert gaps.min() >= 0 and 6 < gaps.mean() < 14 and 0.6 < gaps.std() / gaps.mean() < 1.4


def test_a_worker_runs_its_share_of_users():
    """Worker 1 of 2 runs users 1, 3, 5: their spawn times are those of their ids."""
    wait = (_pacer.WAIT_CONSTANT, 30 * MS, 0, 0, 0, 0, PICK_CYCLE, -1)
    rows, start, _, _ = run_users([wait], [0] * 6, spawn_rate=50.0, run_ms=200, first=1,
                                  stride=2)
    users = by_user(rows, 6)
    assert sorted(users) == [1, 3, 5]
    for u, r in users.items():
        assert r["scheduled_ns"][0] - start == u * 20 * MS


def test_payloads_as_the_model_says():
    """Each request's payload, as the pacer sets it for the transport, is the one
    UsersModel.payload_of gives its event: cycled through a class's own payloads, cycled
    through a body order with repeats (sequence), or sampled by hash."""
    sequence = np.array([5, 6, 5, 7, 5], np.int32)
    plans = [UserClassPlan("a", WaitTime(0, 2 * MS), 1, first_payload=0, n_payloads=3),
             UserClassPlan("b", WaitTime(0, 2 * MS), 1, first_payload=5, n_payloads=5,
                           sequence_at=0),
             UserClassPlan("c", WaitTime(0, 2 * MS), 1, first_payload=10, n_payloads=4,
                           pick=PICK_SAMPLE),
             UserClassPlan("d", WaitTime(0, 2 * MS), 1)]
    user_class = np.array([0, 1, 2, 3, 0, 1, 2, 3], np.int16)
    model = UsersModel(8, 1000.0, 150 * MS, 99, plans, user_class, sequence)
    rows, _, t, _ = run_users(model.c_classes(), user_class.tolist(), spawn_rate=1000.0,
                              run_ms=150, seed=99, sequence=sequence, transport=Recorder)
    events = np.array(sorted(t.payloads), np.int64)
    assert len(events) > 100
    assert model.payload_of(events).tolist() == [t.payloads[e] for e in events.tolist()]
    got = model.payload_of(events)
    assert set(got[model.cls_of(events) == 2].tolist()) == {10, 11, 12, 13}
    assert set(got[model.cls_of(events) == 3].tolist()) == {-1}


def test_a_stop_ends_the_users():
    """A stop in the control block (Ctrl-C): no request is sent after it."""
    cap = 1 << 10
    buf = bytearray(_pacer.RecordRing.nbytes(cap))
    ring = _pacer.RecordRing(buf, True, cap)
    control = np.zeros(_pacer.CONTROL_SIZE + 16, np.int64)
    control[_pacer.CONTROL_START_NS] = _pacer.now_ns()
    control[_pacer.CONTROL_STOP] = _pacer.STOP_DRAIN
    cols = np.zeros(2, np.int32), np.full(2, -1, np.int32), np.zeros(2, np.int16)
    clock = _pacer.Pacer(np.zeros(0, np.int64), 0, 1, control, 50_000)
    pacer = _pacer.UserPacer(clock, control, [0, 1], [0, 0],
                             [(_pacer.WAIT_CONSTANT, 0, 0, 0, 0, 0, PICK_CYCLE, -1)], *cols,
                             np.zeros(1, np.int32), 10.0, 10**10)
    pacer.run(_pacer.NullTransport(ring), 10**9)
    assert pacer.submitted == 0 and ring.write_idx == 0


def test_classes_keep_their_weights_in_every_prefix():
    """As users are spawned, each class's share of the users started so far stays within one
    of its weight's share."""
    weights = [3.0, 1.0, 2.0]
    cls = assign_classes(600, weights)
    share = np.array(weights) / sum(weights)
    for n in range(1, 601):
        counts = np.bincount(cls[:n], minlength=3)
        assert np.all(np.abs(counts - n * share) <= 1.0 + 1e-9), (n, counts)


def test_spawned_users():
    model = UsersModel(10, 2.0, 10**10, 0, [UserClassPlan("a", WaitTime(0, 0), 1)],
                       np.zeros(10, np.int16))
    assert [model.spawned(t * 10**9 // 2) for t in (-1, 0, 1, 2, 19, 30)] == [0, 1, 2, 3, 10, 10]


def test_trace_bodies_files(tmp_path):
    """muBench call traces: one per line (sent as written) or a JSON array (sent as compact
    JSON); repeated bodies share one payload and keep their place in the order."""
    trace_a = '{"s0__1": [{"s2__7": [{}]}]}'
    trace_b = '{"s0__2": [{}, {"s5__9": [{}]}]}'
    lines = tmp_path / "traces.jsonl"
    lines.write_text(f"{trace_a}\n\n{trace_b}\n{trace_a}\n")
    assert read_trace_bodies(str(lines)) == [trace_a.encode(), trace_b.encode(), trace_a.encode()]
    array = tmp_path / "traces.json"
    array.write_text(json.dumps([json.loads(trace_a), json.loads(trace_b)], indent=2))
    assert read_trace_bodies(str(array)) == [json.dumps(json.loads(t), separators=(",", ":")).encode()
                                             for t in (trace_a, trace_b)]
    opts = RunOptions(users=4, host="http://h:8/api", user_class=["stochastic", "trace"],
                      trace_bodies=str(lines), run_time="2s")
    load = users_load(opts)
    assert [p.method + " " + p.path for p in load.payloads] == ["GET /api/s0", "POST /api/s0",
                                                                "POST /api/s0"]
    assert load.payloads[1].headers == ["Content-Type: application/json"]
    trace = load.model.classes[1]
    assert load.model.sequence[trace.sequence_at:trace.sequence_at + 3].tolist() == [1, 2, 1]


@pytest.mark.parametrize("text, words", [
    ('{"s0": [{}]}\nnot json\n', "line 2 column 1: not JSON"),
    ('{"s0": [{}]}\n[1, 2]\n', "line 2: a call trace is an object"),
    ('{"s0": {"s1": []}}\n', "line 1: 's0': its calls must be a list"),
    ('[{"s0": [{}]}, 5]', "item 2: a call trace is an object"),
    ('[{"s0": [{}]}', "line 1 column 14: not JSON"),
    ("\n\n", "no call traces"),
])
def test_bad_trace_bodies_name_their_place(tmp_path, text, words):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        read_trace_bodies(str(path))
    assert str(exc.value).startswith(f"--trace-bodies {path}") and words in str(exc.value)

"""Live control in the pacer and its checks: the schedule clock re-based from the control block
(a rate change, a pause that shifts what falls due, a torn write never used), weights that
leave a share of a class's requests out, the settings a PUT /config may set (all or nothing),
and the parent's side of the block (ControlBlock: where the clock stands, the change log)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from replayer import _pacer
from replayer.analysis.records import ROW_DTYPE, ErrorKind
from replayer.run.live import ChangeError, ControlBlock, Settings, apply_change

MS = 1_000_000
START = 1_000 * MS


def make_ring(capacity=1 << 12):
    buf = bytearray(_pacer.RecordRing.nbytes(capacity))
    ring = _pacer.RecordRing(buf, True, capacity)
    rows = np.frombuffer(buf, dtype=ROW_DTYPE, offset=_pacer.RING_HEADER_SIZE, count=capacity)
    return ring, rows


def block(extra=0):
    c = np.zeros(_pacer.CONTROL_SIZE + extra, np.int64)
    c[_pacer.CONTROL_START_NS] = START
    c[_pacer.CONTROL_TIME_SCALE_PPM] = 1_000_000
    return c


class ScriptedTransport(_pacer.Transport):
    """Completes each request at once (fake clock) and runs `script[event]` when that event is
    submitted: a change published the moment the pacer hands it over. `hold` keeps a request
    in flight until poll() has been called `hold` times (answers while paused)."""

    def __init__(self, ring, script=None):
        super().__init__(ring)
        self.pacer = None
        self.script = script or {}
        self.sent = {}
        self.polls = 0
        self.on_poll = None

    def submit(self, event, scheduled_ns, sent_ns, cause):
        self.sent[event] = (scheduled_ns, self.pacer.fake_now)
        self.ring.record(event, scheduled_ns, sent_ns, sent_ns + 1, 200, 0, 0, 0, cause)
        if event in self.script:
            self.script[event](self)
        return 0

    def poll(self, timeout_ns):
        self.polls += 1
        self.pacer.advance(timeout_ns)
        if self.on_poll is not None:
            self.on_poll(self)
        return 0


def run(t_ns, control, script=None, status=None, cls=None):
    ring, rows = make_ring()
    tr = ScriptedTransport(ring, script)
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), 0, 1, control, 50_000, 1 << 20, True, 0,
                         status=status, cls=cls)
    tr.pacer = pacer
    pacer.run(tr, 1000 * MS)
    return pacer, tr, rows[:ring.write_idx]


def test_rate_halved_mid_run_doubles_the_spacing_from_where_the_clock_stands():
    """A rate of 0.5 published when event 3 goes (t = 30 ms, at 1030 ms): the clock is
    re-based there, so the events after it come 20 ms apart instead of 10, with no jump; the
    worker's status row says which change it applied, and when."""
    control = block()
    status = np.zeros(_pacer.STATUS_FIELDS, np.int64)

    def halve(tr):
        _pacer.publish_control(control, tr.pacer.fake_now, 30 * MS, 2_000_000_000, False)

    _, tr, rows = run(np.arange(8) * 10 * MS, control, {3: halve}, status)
    due = [tr.sent[e][0] - START for e in range(8)]
    assert due == [0, 10 * MS, 20 * MS, 30 * MS, 50 * MS, 70 * MS, 90 * MS, 110 * MS]
    assert [tr.sent[e][1] for e in range(8)] == [START + d for d in due]   # sent then too
    assert sorted(rows["scheduled_ns"] - START) == due                     # and recorded
    assert status[_pacer.ST_CONTROL_SEQ] == 2 and status[_pacer.ST_CONTROL_NS] == START + 30 * MS


def test_pause_shifts_what_falls_due_and_loses_nothing():
    """Paused when event 2 goes (at 1020 ms), resumed 100 ms later: nothing is handed over
    meanwhile (answers are still polled for), and every later event keeps its place on the
    schedule, shifted by the pause; each one is sent and recorded once."""
    control = block()
    t = np.arange(6) * 10 * MS

    def pause(tr):
        _pacer.publish_control(control, tr.pacer.fake_now, 20 * MS, 1_000_000_000, True)
        tr.inflight += 1           # an answer still to come: the pacer polls while paused
        tr.paused_at = tr.pacer.fake_now

    def resume_after_100ms(tr):
        if tr.inflight and tr.pacer.fake_now - tr.paused_at >= 100 * MS:
            tr.inflight -= 1
            _pacer.publish_control(control, tr.pacer.fake_now, 20 * MS, 1_000_000_000, False)

    ring, rows = make_ring()
    tr = ScriptedTransport(ring, {2: pause})
    tr.on_poll = resume_after_100ms
    pacer = _pacer.Pacer(t, 0, 1, control, 50_000, 1 << 20, True, 0)
    tr.pacer = pacer
    pacer.run(tr, 1000 * MS)
    resumed = START + 20 * MS + 100 * MS
    assert [tr.sent[e][1] for e in range(6)] == [START, START + 10 * MS, START + 20 * MS,
                                                  resumed + 10 * MS, resumed + 20 * MS,
                                                  resumed + 30 * MS]
    assert tr.polls >= 5            # waited in pieces of CONTROL_CHECK_NS, polling answers
    assert sorted(rows[:ring.write_idx]["event"]) == list(range(6))
    assert pacer.not_sent == 0 and pacer.skipped == 0


def test_a_change_being_written_is_not_used():
    """SEQ odd (the parent is between its writes): the pacer keeps the clock it has, so a
    half-written origin and scale are never used."""
    control = block()
    control[_pacer.CONTROL_SEQ] = 1
    control[_pacer.CONTROL_ORIGIN_NS] = 123
    control[_pacer.CONTROL_SCALE_PPB] = 7
    _, tr, _ = run([0, 10 * MS, 20 * MS], control)
    assert [tr.sent[e][0] for e in range(3)] == [START, START + 10 * MS, START + 20 * MS]


def test_weights_leave_out_a_class_share_by_event_id():
    """Class weights 0.5 and 0: class 1's requests are all recorded not_sent, about half of
    class 0's are (which ones: a hash of the event id, the same on every run), none lost."""
    n = 2000
    cls = (np.arange(n) % 2).astype(np.int16)
    results = []
    for _ in range(2):
        control = block(extra=2)
        control[_pacer.CONTROL_CLASS_WEIGHTS] = _pacer.CONTROL_SIZE
        control[_pacer.CONTROL_N_CLASSES] = 2
        _pacer.publish_control(control, START, 0, 1_000_000_000, False,
                               np.array([500_000, 0], np.int64))
        pacer, tr, rows = run(np.arange(n) * 1000, control, cls=cls)
        assert len(rows) == n and sorted(rows["event"]) == list(range(n))
        skipped = rows["error"] == ErrorKind.NOT_SENT
        assert skipped[cls[rows["event"]] == 1].all()
        share = skipped[cls[rows["event"]] == 0].mean()
        assert 0.44 < share < 0.56
        assert pacer.skipped == int(skipped.sum())
        results.append(sorted(rows["event"][skipped]))
    assert results[0] == results[1]
    assert tr.failure_log()["not_sent"]["messages"][0]["message"].startswith("left out by a weight")


def test_put_bodies_checked_whole():
    """What PUT /config takes: a rate (a share of the schedule's), paused, weights per class or
    target; {} pauses everything; anything else is refused with the reason and changes
    nothing."""
    s = Settings(classes={"a": 1.0, "b": 1.0}, targets={"svc": 1.0})
    assert apply_change(s, {"rate": 0.5}).rate == 0.5
    assert apply_change(s, {}).paused is True
    assert apply_change(s, {"paused": True, "rate": 2}).paused is True
    changed = apply_change(s, {"classes": {"b": {"weight": 0.25}}, "targets": {"svc": {"weight": 0}}})
    assert changed.classes == {"a": 1.0, "b": 0.25} and changed.targets == {"svc": 0.0}
    for body, reason in [
        ([], "must be a JSON object"),
        ({"faucet": {"interval": 60}}, "unknown key 'faucet'"),
        ({"rate": 0}, "rate 0: must be from"),
        ({"rate": "fast"}, 'rate: expected a number, not "fast"'),
        ({"rate": True}, "rate: expected a number"),
        ({"paused": 1}, "paused: expected true or false"),
        ({"classes": {"c": {"weight": 1}}}, "no class 'c'"),
        ({"classes": {"a": {"weight": 2}}}, "classes.a.weight 2: must be from 0 to 1"),
        ({"classes": {"a": 0.5}}, 'expected {"weight": W}'),
        ({"rate": 0.5, "targets": {"x": {"weight": 0}}}, "no target 'x'"),
    ]:
        with pytest.raises(ChangeError, match=re.escape(reason)):
            apply_change(s, body)
    assert s == Settings(classes={"a": 1.0, "b": 1.0}, targets={"svc": 1.0})


def test_control_block_rebases_where_the_clock_stands_and_logs_each_change(tmp_path):
    """The parent's side: a change before the start is published from the start; later ones
    re-base at the time of the change (a pause holds the clock); each is logged with its
    time, and when every worker has applied it, with each worker's delay."""
    classes, targets = ["a"], ["svc1", "svc2"]
    control = np.zeros(ControlBlock.size(1, 2), np.int64)
    log = tmp_path / "control.jsonl"
    b = ControlBlock(control, 1.0, classes, targets, log)
    assert list(control[_pacer.CONTROL_SIZE:]) == [_pacer.WEIGHT_ONE] * 3
    b.change({"rate": 2}, START - 50 * MS)
    assert control[_pacer.CONTROL_SEQ] == 0        # not started: kept for the start
    b.start(START)
    assert control[_pacer.CONTROL_SEQ] == 2
    assert control[_pacer.CONTROL_ORIGIN_NS] == START and control[_pacer.CONTROL_SCALE_PPB] == 500_000_000
    b.change({"paused": True}, START + 100 * MS)   # 100 ms at rate 2: the clock reads 200 ms
    assert control[_pacer.CONTROL_ORIGIN_T] == 200 * MS and control[_pacer.CONTROL_PAUSED] == 1
    assert b.schedule_time(START + 900 * MS) == 200 * MS and b.end_ns(300 * MS) is None
    b.change({"paused": False, "targets": {"svc2": {"weight": 0.5}}}, START + 1000 * MS)
    assert control[_pacer.CONTROL_ORIGIN_NS] == START + 1000 * MS
    assert control[_pacer.CONTROL_ORIGIN_T] == 200 * MS
    assert b.end_ns(300 * MS) == START + 1050 * MS
    assert list(control[_pacer.CONTROL_SIZE:]) == [_pacer.WEIGHT_ONE, _pacer.WEIGHT_ONE, 500_000]
    assert control[_pacer.CONTROL_THINNING] == 1
    status = np.zeros((2, _pacer.STATUS_FIELDS), np.int64)
    status[0, _pacer.ST_CONTROL_SEQ], status[0, _pacer.ST_CONTROL_NS] = 6, START + 1010 * MS
    b.note_applied(status, [True, True])           # worker 1 has not applied any yet
    status[1, _pacer.ST_CONTROL_SEQ], status[1, _pacer.ST_CONTROL_NS] = 6, START + 1003 * MS
    b.note_applied(status, [True, True])
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    changes = [e for e in entries if e["event"] == "change"]
    applied = [e for e in entries if e["event"] == "applied"]
    assert [e["change"] for e in changes] == [{"rate": 2}, {"paused": True},
                                              {"paused": False, "targets": {"svc2": {"weight": 0.5}}}]
    assert [e["seq"] for e in applied] == [2, 4, 6]
    assert applied[-1]["workers"] == [
        {"worker": 0, "applied_ns": START + 1010 * MS, "delay_ms": 10.0},
        {"worker": 1, "applied_ns": START + 1003 * MS, "delay_ms": 3.0}]


def test_terminal_status_shows_lag_and_latency_p99_of_the_last_second(tmp_path):
    """The run's drain counts (metrics.LiveRecords) keep the latencies since the last line
    too: the terminal's status line shows lag p99 and latency p99 of the last second, then
    lets them go; the stage's label comes first."""
    from replayer.analysis.metrics import LiveRecords, RunMetrics
    from replayer.analysis.progress import Progress
    from replayer.analysis.records import RecordWriter
    rows = np.zeros(100, ROW_DTYPE)
    rows["event"] = np.arange(100)
    rows["scheduled_ns"] = START + np.arange(100) * 10 * MS
    rows["sent_ns"] = rows["scheduled_ns"] + np.arange(1, 101) * 1_000        # lags 1..100 µs
    rows["done_ns"] = rows["sent_ns"] + np.arange(1, 101) * 10_000           # 10 µs .. 1 ms
    writer = RecordWriter(tmp_path / "records-w000.arrow", 0, np.zeros(100, np.int32), ["svc"],
                          None, np.arange(100, dtype=np.int64) * 10 * MS, 0, {})
    metrics = RunMetrics([], stage="1")
    live = LiveRecords(metrics)
    progress = Progress([live], scheduled=100, start_ns=START, span_ns=2000 * MS, tty=True,
                        label="stage 1/3")
    live.add(writer.write(rows))
    writer.close()
    assert progress.due(0.0) is False and progress.due(1.0)
    line = progress.line(1.0, START + 1000 * MS)
    assert "  stage 1/3  1.0s/2.0s  sent 100 of 100" in line
    assert "lag p99 99µs  latency p99 990µs  ETA 1s" in line
    assert "latency p99 -" in progress.line(2.0, START + 2000 * MS)     # none since
    assert metrics.counts() == {("none", "ok"): 100}

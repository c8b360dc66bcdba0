"""The pacer: the decision its loop makes (pace_decision wraps the loop's own pace_step), the
real loop against a fake clock (with CPU stalls injected into its spins, and the cause it gives
each request), and the real loop against the real clock with the null transport."""
from __future__ import annotations

import time

import numpy as np
import pytest

from replayer import _pacer
from replayer.analysis.records import ROW_DTYPE, ErrorKind

MS = 1_000_000
US = 1_000


@pytest.mark.parametrize("now, due, lead, spin, expected", [
    (100, 100, 0, 50, ("send", 100)),           # due exactly now
    (130, 100, 0, 50, ("send", 130)),           # late: send at once
    (90, 100, 0, 50, ("spin", 100)),            # inside the spin window
    (50, 100, 0, 50, ("spin", 100)),            # on the window's edge: spin
    (10, 100, 0, 50, ("sleep", 50)),            # far: sleep until the window
    (0, 10 * MS, 0, 50 * US, ("sleep", 10 * MS - 50 * US)),
    (0, 100, 0, 0, ("sleep", 100)),             # no spinning at all
    (80, 100, 20, 50, ("send", 80)),            # a transport's lead: handed over that early
    (70, 100, 20, 50, ("spin", 80)),            # spin until the hand-over, not the due time
    (40, 100, 20, 50, ("sleep", 50)),           # the window is counted back from the due time
    (100, 100, 20, 50, ("send", 100)),         # due, with a lead: send at once
])
def test_pace_decision(now, due, lead, spin, expected):
    """The decision Pacer.run makes (pace_step): send from `lead` before the due time, spin
    until then inside the last `spin` ns, sleep until the spin window before."""
    assert _pacer.pace_decision(now, due, lead, spin) == expected


def make_ring(capacity=1 << 12):
    buf = bytearray(_pacer.RecordRing.nbytes(capacity))
    ring = _pacer.RecordRing(buf, True, capacity)
    rows = np.frombuffer(buf, dtype=ROW_DTYPE, offset=_pacer.RING_HEADER_SIZE, count=capacity)
    return ring, rows


def control_block(start_ns, scale=1.0):
    c = np.zeros(_pacer.CONTROL_SIZE, np.int64)
    c[_pacer.CONTROL_START_NS] = start_ns
    c[_pacer.CONTROL_TIME_SCALE_PPM] = int(scale * 1e6)
    return c


class FakeClockTransport(_pacer.Transport):
    """Records the fake time of each submit; optionally costs fake time per request and keeps
    requests in flight until polled."""

    def __init__(self, ring, cost_ns=0, hold=False, hold_ns=0):
        super().__init__(ring)
        self.pacer = None
        self.cost_ns = cost_ns
        self.hold = hold
        self.hold_ns = hold_ns      # a held request completes once in flight this long
        self.sent = []
        self.causes = []            # the pacer's cause of each submitted request, by name
        self.held = []
        self.flushes = 0

    def submit(self, event, scheduled_ns, sent_ns, cause):
        self.sent.append((event, scheduled_ns, sent_ns))
        self.causes.append(_pacer.LATE_CAUSES[cause])
        if self.cost_ns:
            self.pacer.advance(self.cost_ns)
        if self.hold:
            self.held.append((event, scheduled_ns, sent_ns))
            self.inflight += 1
        else:
            self.ring.record(event, scheduled_ns, sent_ns, sent_ns + 1, 200, 0, 0, 0, cause)
        return 0

    def flush(self):
        self.flushes += 1
        return 0

    def poll(self, timeout_ns):
        self.pacer.advance(timeout_ns)
        now = self.pacer.fake_now
        done = [h for h in self.held if now - h[2] >= self.hold_ns]
        for event, sched, sent in done:
            self.ring.record(event, sched, sent, now, 200, 0, 0, 0)
        self.inflight -= len(done)
        self.held = [h for h in self.held if now - h[2] < self.hold_ns]
        return 0


def run_fake(t_ns, start=1_000 * MS, now=0, scale=1.0, cost_ns=0, hold=False, first=0, stride=1,
             max_inflight=1 << 30, spin_ns=50 * US, hold_ns=0, gaps=None, stall_ns=50 * US):
    ring, rows = make_ring()
    tr = FakeClockTransport(ring, cost_ns=cost_ns, hold=hold, hold_ns=hold_ns)
    fake_gaps = None if gaps is None else np.array(gaps, np.int64).reshape(-1, 2)
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), first, stride, control_block(start, scale),
                         spin_ns, max_inflight, True, now, stall_threshold_ns=stall_ns,
                         fake_gaps=fake_gaps)
    tr.pacer = pacer
    pacer.run(tr, 5 * 1000 * MS)
    return pacer, tr, rows[:ring.write_idx]


@pytest.mark.parametrize("case", [
    # name, t_ns, start, clock at start, scale, cost per send -> expected send times
    ("on time", [0, 10 * MS, 20 * MS], 1000 * MS, 0, 1.0, 0,
     [1000 * MS, 1010 * MS, 1020 * MS]),
    ("started late: early events go at once", [0, 10 * MS, 20 * MS], 1000 * MS, 1015 * MS, 1.0, 0,
     [1015 * MS, 1015 * MS, 1020 * MS]),
    ("burst of equal times", [5 * MS] * 4, 1000 * MS, 0, 1.0, 0, [1005 * MS] * 4),
    ("time scale 0.5 replays twice as fast", [0, 10 * MS, 20 * MS], 1000 * MS, 0, 0.5, 0,
     [1000 * MS, 1005 * MS, 1010 * MS]),
    ("slow transport: late sends catch up, no drift", [0, 1 * MS, 2 * MS, 10 * MS], 1000 * MS, 0,
     1.0, 3 * MS, [1000 * MS, 1003 * MS, 1006 * MS, 1010 * MS]),
], ids=lambda c: c[0])
def test_pacer_fake_clock(case):
    _, t_ns, start, now, scale, cost, expected = case
    pacer, tr, rows = run_fake(t_ns, start=start, now=now, scale=scale, cost_ns=cost)
    assert [s for _, _, s in tr.sent] == expected
    assert [sch for _, sch, _ in tr.sent] == [start + int(t * scale) for t in t_ns]
    assert sorted(rows["event"].tolist()) == list(range(len(t_ns)))
    assert pacer.submitted == len(t_ns)


def test_pacer_flushes_once_per_burst():
    _, tr, _ = run_fake([0, 0, 0, 5 * MS, 5 * MS])
    assert tr.flushes == 2


def test_pacer_shares_by_stride():
    t = list(range(0, 10 * MS, MS))
    _, tr, rows = run_fake(t, first=1, stride=3)
    assert [e for e, _, _ in tr.sent] == [1, 4, 7]
    assert sorted(rows["event"].tolist()) == [1, 4, 7]


def test_pacer_polls_inflight_while_waiting():
    _, tr, rows = run_fake([0, 100 * MS], hold=True)
    assert [e for e, _, _ in tr.sent] == [0, 1]
    # the first request completed while the pacer waited for the second
    assert rows["done_ns"][0] < 1100 * MS
    assert len(rows) == 2


def test_pacer_records_overload_instead_of_queueing():
    # Requests take 10 ms; four are due at once with room for two: the pacer does not wait.
    pacer, tr, rows = run_fake([0, 0, 0, 0], hold=True, hold_ns=10 * MS, max_inflight=2)
    assert [e for e, _, _ in tr.sent] == [0, 1]
    over = rows[rows["error"] == ErrorKind.OVERLOAD]
    assert sorted(over["event"].tolist()) == [2, 3]
    assert (over["sent_ns"] == 0).all()
    assert pacer.overloaded == 2 and len(rows) == 4


def test_pacer_at_the_bound_reaps_finished_requests_before_refusing():
    # Finished but not yet collected: at the bound the pacer collects them (without waiting)
    # and sends, rather than refusing requests it has room for.
    pacer, tr, rows = run_fake([0, 0, 0, 0], hold=True, hold_ns=0, max_inflight=2)
    assert [e for e, _, _ in tr.sent] == [0, 1, 2, 3]
    assert pacer.overloaded == 0 and len(rows) == 4


def test_pacer_stop_records_every_unsent_event():
    ring, rows = make_ring()
    control = control_block(1000 * MS)
    control[_pacer.CONTROL_STOP] = _pacer.STOP_DRAIN
    tr = FakeClockTransport(ring)
    pacer = _pacer.Pacer(np.arange(5, dtype=np.int64) * MS, 0, 1, control, 50 * US, 1 << 30, True, 0)
    tr.pacer = pacer
    pacer.run(tr, MS)
    got = rows[:ring.write_idx]
    assert tr.sent == []
    assert sorted(got["event"].tolist()) == [0, 1, 2, 3, 4]
    assert (got["error"] == ErrorKind.NOT_SENT).all()


def _write_ten_events(ref):
    """Child process: a pacer sending 10 due events through a 4-row ring it shares."""
    from replayer.run import shm
    ring = _pacer.RecordRing(shm.attach(ref))
    start = _pacer.now_ns() + 5 * MS
    pacer = _pacer.Pacer(np.zeros(10, np.int64), 0, 1, control_block(start), 0, 1 << 30)
    pacer.run(_pacer.NullTransport(ring), MS)
    if ring.full_waits < 1:
        raise SystemExit(5)


def test_ring_waits_for_the_reader_instead_of_overwriting():
    """A full ring makes the writer (another process, as in a run) wait until the reader makes
    room: rows arrive in order, none overwritten."""
    import multiprocessing as mp

    from replayer.run import shm
    seg = shm.Segment("test-ring", _pacer.RecordRing.nbytes(4))
    ring = _pacer.RecordRing(seg.map, True, 4)
    rows = np.frombuffer(seg.map, dtype=ROW_DTYPE, offset=_pacer.RING_HEADER_SIZE, count=4)
    writer = mp.get_context("spawn").Process(target=_write_ten_events, args=(seg.ref,), daemon=True)
    writer.start()
    seen, read = [], 0
    deadline = time.monotonic() + 60
    while read < 10 and time.monotonic() < deadline:
        w = ring.write_idx
        assert w - read <= 4                    # never more than the ring holds
        seen.extend(int(rows[i % 4]["event"]) for i in range(read, w))
        read = w
        ring.advance_read(read)
        time.sleep(0.002)
    writer.join(30)
    if writer.is_alive():
        writer.kill()
    seg.close()
    assert seen == list(range(10))
    assert writer.exitcode == 0                 # 5: the ring never filled


def test_pacer_real_clock_null_transport():
    """The real loop on the real clock: every event sent, never early, mostly on time.
    (Timing figures belong to bench/; the margin here is wide on purpose.)"""
    n = 2000
    ring, rows = make_ring(capacity=1 << 12)
    start = _pacer.now_ns() + 20 * MS
    t = (np.arange(n, dtype=np.int64) * 100 * US)    # 10k req/s for 0.2 s
    pacer = _pacer.Pacer(t, 0, 1, control_block(start), 50 * US, 1 << 30)
    pacer.run(_pacer.NullTransport(ring), MS)
    got = rows[:ring.write_idx]
    assert len(got) == n
    lag = got["sent_ns"] - got["scheduled_ns"]
    assert (lag >= 0).all()
    assert np.median(lag) < 1 * MS
    assert (got["scheduled_ns"] == start + t).all()


def test_pacer_flushes_long_bursts():
    """Behind schedule every event is due at once: the transport is still flushed regularly,
    so requests reach the wire while the pacer catches up."""
    _, tr, _ = run_fake([0] * 100)
    assert tr.flushes == 4     # after 32, 64, 96, then the last 4


@pytest.mark.parametrize("lead, spin, handed_over_early", [
    (20 * US, 50 * US, 20 * US),    # a transport's lead: submitted that early, with the due time
    (80 * US, 50 * US, 50 * US),    # never more than the spin budget
    (20 * US, 0, 0),                # --spin-us 0: no early hand-over (it would be spent spinning)
])
def test_pacer_hands_over_a_transports_lead_early(lead, spin, handed_over_early):
    ring, rows = make_ring()
    tr = FakeClockTransport(ring)
    tr.lead_ns = lead
    t_ns = [0, 10 * MS, 20 * MS]
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), 0, 1, control_block(1000 * MS), spin, 1 << 30,
                         True, 0)
    tr.pacer = pacer
    pacer.run(tr, MS)
    due = [1000 * MS + t for t in t_ns]
    assert [s for _, s, _ in tr.sent] == due                            # scheduled = due
    assert [now for _, _, now in tr.sent] == [d - handed_over_early for d in due]


class LateWakeTransport(FakeClockTransport):
    """Every wait for completions ends late_ns after its timeout: a VM waking an idle vCPU late."""
    late_ns = 300 * US

    def poll(self, timeout_ns):
        if timeout_ns > 0:
            self.pacer.advance(self.late_ns)
        return super().poll(timeout_ns)


@pytest.mark.parametrize("max_spin, lags", [
    # widened to spin + 2 x 300 µs after the first late wake: the next requests leave on time
    (2 * MS, [0, 250 * US, 0, 0, 0, 0]),
    (-1, [0] + [250 * US] * 5),          # a fixed window: every wait ends late, every send too
    (400 * US, [0, 250 * US] + [0] * 4), # capped at 400 µs: still wakes 100 µs early enough
])
def test_pacer_widens_its_spin_after_late_wake_ups(max_spin, lags):
    ring, rows = make_ring()
    tr = LateWakeTransport(ring, hold=True, hold_ns=100 * MS)   # requests stay in flight
    t_ns = [k * MS for k in range(6)]
    pacer = _pacer.Pacer(np.asarray(t_ns, np.int64), 0, 1, control_block(1000 * MS), 50 * US,
                         1 << 30, True, 0, max_spin)
    tr.pacer = pacer
    pacer.run(tr, 500 * MS)
    assert [sent - sched for _, sched, sent in tr.sent] == lags
    assert pacer.spin_window_ns == {2 * MS: 650 * US, -1: 50 * US, 400 * US: 400 * US}[max_spin]
    assert ring.write_idx == 6


class RealClockHoldTransport(_pacer.Transport):
    """Real clock: a request completes hold_ns after it was sent, once the pacer polls."""

    def __init__(self, ring, hold_ns):
        super().__init__(ring)
        self.hold_ns = hold_ns
        self.held = []

    def submit(self, event, scheduled_ns, sent_ns, cause):
        self.held.append((event, scheduled_ns, _pacer.now_ns()))
        self.inflight += 1
        return 0

    def flush(self):
        return self.poll(0)

    def poll(self, timeout_ns):
        now = _pacer.now_ns()
        if timeout_ns > 0 and not any(now - s >= self.hold_ns for *_, s in self.held):
            time.sleep(min(timeout_ns, self.hold_ns) / 1e9)
            now = _pacer.now_ns()
        for h in [h for h in self.held if now - h[2] >= self.hold_ns]:
            self.ring.record(h[0], h[1], h[2], now, 200, 0, 0, 0)
            self.held.remove(h)
            self.inflight -= 1
        return 0


def test_pacer_polls_completions_while_it_spins():
    # 1k req/s with a 2 ms spin window: the pacer never sleeps, yet a request's answer (ready
    # 50 µs after it was sent) is taken when it comes, not when the next request is due.
    ring, rows = make_ring()
    tr = RealClockHoldTransport(ring, 50 * US)
    t = np.arange(200, dtype=np.int64) * MS
    pacer = _pacer.Pacer(t, 0, 1, control_block(_pacer.now_ns() + 20 * MS), 2 * MS, 1 << 30)
    pacer.run(tr, 100 * MS)
    got = rows[:ring.write_idx]
    assert len(got) == 200
    assert np.median(got["done_ns"] - got["sent_ns"]) < 500 * US    # not ~1 ms


# Ten requests 1 ms apart, spun for in the last 200 µs before each; gaps (at, length) taken from
# the spins, relative to the due time of the request the pacer spins for.
STALL_START = 1000 * MS
STALL_GAPS = [
    (2, -150 * US, 30 * US),     # under the 50 µs threshold: not a stall
    (3, -500 * US, 5 * MS),      # while the pacer sleeps (before its spin): never seen
    (4, -100 * US, 80 * US),     # a stall that ends before the due time: the send is on time
    (6, -50 * US, 2 * MS),       # covers the due times of 6 and 7: both leave late
    (9, -120 * US, 150 * US),    # covers the due time of 9
]


def _stall_run(stall_ns=50 * US):
    gaps = [(STALL_START + k * MS + at, length) for k, at, length in STALL_GAPS]
    return run_fake([k * MS for k in range(10)], start=STALL_START, spin_ns=200 * US, gaps=gaps,
                    stall_ns=stall_ns)


def test_pacer_counts_exactly_the_gaps_in_its_spins_over_the_threshold():
    """Gaps between two clock reads of a spinning pacer longer than the stall threshold are
    counted (how many, over 100 µs, over 1 ms, the longest, their total); a shorter gap, or one
    while the pacer sleeps, is not. A higher threshold counts fewer."""
    pacer, tr, rows = _stall_run()
    assert (pacer.stalls, pacer.stalls_100us, pacer.stalls_1ms) == (3, 2, 1)
    assert pacer.stall_max_ns == 2 * MS
    assert pacer.stall_lost_ns == 80 * US + 2 * MS + 150 * US
    assert pacer.stall_threshold_ns == 50 * US
    assert pacer.run_ns == 9 * MS + 30 * US        # from the start to the last send
    high, _, _ = _stall_run(stall_ns=100 * US)
    assert (high.stalls, high.stall_lost_ns) == (2, 2 * MS + 150 * US)


def test_pacer_marks_the_requests_a_stall_held_back():
    """A request whose due time a stall covered goes with cause `stall` (also one reached only
    after it), its send as late as the stall made it; the others go on time with `none`."""
    pacer, tr, rows = _stall_run()
    lag = {e: sent - sched for e, sched, sent in tr.sent}
    assert lag == {e: 0 for e in range(10)} | {6: 1950 * US, 7: 950 * US, 9: 30 * US}
    assert tr.causes == ["none"] * 6 + ["stall", "stall", "none", "stall"]
    assert rows["cause"].tolist() == [_pacer.LATE_CAUSES.index(c) for c in tr.causes]


def test_pacer_marks_requests_reached_after_their_time_as_a_burst():
    """Requests due at once (each send costing 10 µs) or due before the pacer started: the
    first it spun for goes with `none`, the ones it reached after their time with `burst`;
    none of it is a stall."""
    pacer, tr, _ = run_fake([5 * MS] * 4, cost_ns=10 * US)
    assert tr.causes == ["none", "burst", "burst", "burst"]
    pacer, tr, _ = run_fake([0, 10 * MS, 20 * MS], now=1015 * MS)
    assert tr.causes == ["burst", "burst", "none"]
    assert pacer.stalls == 0


def test_pacer_marks_requests_it_polled_for_at_the_inflight_bound():
    """At the in-flight bound the pacer polls before it submits: that request says so."""
    _, tr, _ = run_fake([0, 0, 0, 0], hold=True, hold_ns=0, max_inflight=2)
    assert tr.causes == ["none", "none", "inflight", "none"]


def test_pacer_marks_sends_after_a_late_wake_up_as_stalled_without_counting_a_stall():
    """Every wait ends 300 µs late with a fixed 50 µs spin: the sends after those wake-ups
    are 250 µs late, marked `stall` (the CPU came back late); the late wake-ups themselves are
    not counted as stalls (a widened spin window absorbs them)."""
    ring, rows = make_ring()
    tr = LateWakeTransport(ring, hold=True, hold_ns=100 * MS)
    pacer = _pacer.Pacer(np.arange(6, dtype=np.int64) * MS, 0, 1, control_block(1000 * MS),
                         50 * US, 1 << 30, True, 0)
    tr.pacer = pacer
    pacer.run(tr, 500 * MS)
    assert [sent - sched for _, sched, sent in tr.sent] == [0] + [250 * US] * 5
    assert tr.causes == ["none"] + ["stall"] * 5
    assert pacer.stalls == 0 and pacer.stall_lost_ns == 0


@pytest.mark.parametrize("brief, causes, stalls", [
    (True, ["none", "stall", "stall"], 2),     # the last submit has no read after it
    (False, ["none", "burst", "burst"], 0),    # a Python transport's submit is not judged
])
def test_pacer_takes_a_long_brief_submit_as_a_stall(brief, causes, stalls):
    """Three requests due at once, each submit taking 80 µs: where the transport's submit is
    brief C work (a send), the time across it is the CPU taken away (a task the send woke
    preempting the worker), counted as a stall and the cause of the sends after it; where it
    is not, the pacer was busy (burst)."""
    ring, rows = make_ring()
    tr = FakeClockTransport(ring, cost_ns=80 * US)
    tr.brief_submit = brief
    pacer = _pacer.Pacer(np.zeros(3, np.int64), 0, 1, control_block(1000 * MS), 50 * US, 1 << 30,
                         True, 0)
    tr.pacer = pacer
    pacer.run(tr, MS)
    assert tr.causes == causes
    assert (pacer.stalls, pacer.stall_lost_ns) == (stalls, stalls * 80 * US)


class PreparingTransport(FakeClockTransport):
    """Says it prepares requests; records each prepare and submit with the fake time, and
    costs `prepare_ns` of fake time per prepare (a body being filled)."""

    def __init__(self, ring, prepare_ns=0):
        super().__init__(ring)
        self.prepares = True
        self.prepare_ns = prepare_ns
        self.calls = []

    def prepare(self, event, scheduled_ns):
        self.calls.append(("prepare", event, self.pacer.fake_now, scheduled_ns))
        self.pacer.advance(self.prepare_ns)
        return 0

    def submit(self, event, scheduled_ns, sent_ns, cause):
        self.calls.append(("submit", event, sent_ns, scheduled_ns))
        return super().submit(event, scheduled_ns, sent_ns, cause)


def test_a_preparing_transport_fills_each_request_once_before_its_wait():
    """With `prepares`, each request of the worker's share is prepared exactly once, before the
    pacer waits for its due time (so a 300 µs fill far ahead does not make it late), then
    submitted at its due time; a transport without `prepares` is never asked."""
    ring, rows = make_ring()
    tr = PreparingTransport(ring, prepare_ns=300 * US)
    pacer = _pacer.Pacer(np.array([0, 10 * MS, 20 * MS, 30 * MS], np.int64), 1, 2,
                         control_block(1000 * MS), 50 * US, 1 << 30, True, 0)
    tr.pacer = pacer
    pacer.run(tr, 1000 * MS)
    assert [(c[0], c[1]) for c in tr.calls] == [("prepare", 1), ("submit", 1), ("prepare", 3),
                                                ("submit", 3)]
    for kind, event, at, due in tr.calls:
        if kind == "prepare":
            assert at < due - 300 * US            # well before its due time
        else:
            assert at == due                      # and it still leaves on time
    assert pacer.stalls == 0                      # filling a body is no CPU stall
    plain = FakeClockTransport(make_ring()[0])
    assert plain.prepares is False

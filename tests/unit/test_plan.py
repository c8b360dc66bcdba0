"""The run plan (replayer.run.plan): workers, pinning, spin, shards, ring sizes and the
invoker's units rule, derived from options, schedule facts and CPU sets given here, with no
process and no file."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from replayer.errors import InputError
from replayer.run.options import RunOptions
from replayer.run.plan import (DEFAULT_SPIN_MAX_US, DRAIN_GRACE_NS, MAX_RING, MIN_RING, RING_FLOOR,
                               make_plan, replayed_units, ring_capacity, short_load_warning)
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S

MS = 1_000_000


def _plan(requests=1000, cpus=(0, 1, 2, 3), gap_ns=MS, unit_ns=NS_PER_S, **options):
    t_ns = np.arange(requests, dtype=np.int64) * gap_ns
    return make_plan(RunOptions(**options), t_ns, unit_ns, cpus)


# workers option, usable CPUs, requests, --no-pin -> workers, pinned, CPUs of the workers,
# default spin max, the note about pinning
WORKER_CASES = [
    (0, (0, 1, 2, 3), 1000, False, 4, True, [0, 1, 2, 3], 50, None),            # one per CPU
    (2, (0, 1, 2, 3), 1000, False, 2, True, [0, 1], DEFAULT_SPIN_MAX_US, None),  # a CPU spare
    (1, (5,), 1000, False, 1, True, [5], 50, None),                             # none spare
    (0, (7, 3, 5), 1000, False, 3, True, [3, 5, 7], 50, None),                  # in CPU order
    (8, (0, 1, 2, 3), 1000, False, 8, False, [None] * 8, 50, "8 workers on 4 CPUs: not pinning"),
    (2, (0, 1, 2, 3), 1000, True, 2, False, [None] * 2, 50, None),              # --no-pin
    (0, (0, 1, 2, 3), 3, False, 3, True, [0, 1, 2], DEFAULT_SPIN_MAX_US, None),  # few requests
    (16, (0, 1), 1, False, 1, True, [0], DEFAULT_SPIN_MAX_US, None),            # one request
]


@pytest.mark.parametrize("option,cpus,requests,no_pin,workers,pinned,worker_cpus,spin_max,note",
                         WORKER_CASES)
def test_workers_pinning_and_spin_follow_the_cpus(option, cpus, requests, no_pin, workers,
                                                  pinned, worker_cpus, spin_max, note):
    plan = _plan(requests, cpus, workers=option, no_pin=no_pin)
    assert (plan.workers, plan.pinned) == (workers, pinned)
    assert [plan.worker_cpu(k) for k in range(plan.workers)] == worker_cpus
    assert plan.spin_us == 50 and plan.spin_max_us == spin_max
    assert plan.pinning_note(no_pin) == note


@pytest.mark.parametrize("spin_us,spin_max_us,workers,want", [
    (20, None, 2, DEFAULT_SPIN_MAX_US),   # pinned with a CPU spare: widened by default
    (20, None, 4, 20),                    # no CPU spare: fixed at --spin-us
    (20, 300, 4, 300),                    # given: kept as given
    (20, 0, 2, 0),
])
def test_spin_max_default_and_given(spin_us, spin_max_us, workers, want):
    plan = _plan(workers=workers, spin_us=spin_us, spin_max_us=spin_max_us)
    assert (plan.spin_us, plan.spin_max_us) == (spin_us, want)


@pytest.mark.parametrize("requests,shard,workers", [
    (10, "0/1", 1), (10, "0/1", 3), (10, "1/3", 2), (10, "2/3", 4), (7, "0/2", 4),
    (1000, "3/4", 3), (5, "4/5", 2), (2, "1/4", 2),
])
def test_worker_shares_split_the_node_share_exactly(requests, shard, workers):
    """Every request of this node's share (I, I+N, ...) goes to exactly one worker, and no
    request outside it to any."""
    plan = _plan(requests, workers=workers, shard=shard)
    index, count = (int(x) for x in shard.split("/"))
    node = list(range(index, requests, count))
    assert (plan.shard_index, plan.shard_count, plan.requests) == (index, count, requests)
    assert plan.node_requests == len(node)
    assigned = sorted(e for first, stride in plan.shards for e in range(first, requests, stride))
    assert assigned == node
    assert [plan.worker_requests(k) for k in range(plan.workers)] == \
        [len(range(first, requests, stride)) for first, stride in plan.shards]
    # the first worker has the most requests: its ring is sized for every worker
    assert plan.worker_requests(0) == max(plan.worker_requests(k) for k in range(plan.workers))


def test_shards_of_one_node_among_many():
    plan = _plan(20, workers=2, shard="1/3")
    assert plan.shards == ((1, 6), (4, 6))
    assert plan.node_requests == 7 and [plan.worker_requests(k) for k in (0, 1)] == [4, 3]


def test_ring_capacity_follows_the_busiest_quarter_second():
    t = np.arange(1_000_000, dtype=np.int64) * 1000          # 1M req/s
    per_worker = 1_000_000 // 4
    assert ring_capacity(per_worker) == MAX_RING               # events alone
    # 250k/s per worker (4 workers): a quarter second is 62.5k rows.
    assert ring_capacity(per_worker, t, 4, 1.0) == 1 << 16
    assert ring_capacity(per_worker, t, 4, 0.25) == MAX_RING    # four times as fast
    assert ring_capacity(per_worker, t * 1000, 4, 1.0) == RING_FLOOR
    assert ring_capacity(per_worker, np.zeros_like(t), 4, 1.0) == MAX_RING  # one burst
    assert ring_capacity(100, t[:400], 4, 1.0) == 1 << 10      # never more than its events


@pytest.mark.parametrize("requests,gap_ns,workers,time_scale,want", [
    (10, MS, 1, 1.0, MIN_RING),                 # few requests: the smallest ring
    (5000, MS, 1, 1.0, 1 << 13),                # 5000 requests: no more than they need
    (100_000, MS, 1, 1.0, RING_FLOOR),          # 1000/s: the floor holds 16 s of it
    (200_000, 1000, 1, 1.0, 1 << 18),           # 1M/s: a quarter second is 250k rows
    (200_000, 1000, 4, 1.0, 1 << 16),           # shared by 4 workers: 62.5k rows each
    (200_000, 4000, 4, 0.25, 1 << 16),          # 4x slower schedule replayed 4x as fast
    (200_000, 4000, 4, 1.0, RING_FLOOR),
])
def test_ring_size_in_the_plan(requests, gap_ns, workers, time_scale, want):
    plan = _plan(requests, gap_ns=gap_ns, workers=workers, time_scale=time_scale)
    assert plan.ring_capacity == want
    assert plan.ring_capacity & (plan.ring_capacity - 1) == 0      # a power of two


def test_derived_values_of_the_options():
    plan = _plan(unit_ns=MINUTE_NS, warmup=3, timeout=2.5, resolve=["a=127.0.0.2", "*=::1"],
                 header=["X-A: 1", "Authorization: Bearer t"])
    assert plan.unit_ns == MINUTE_NS and plan.warmup_ns == 3 * MINUTE_NS
    assert plan.drain_timeout_ns == 2_500_000_000 + DRAIN_GRACE_NS
    assert plan.resolve_map == {"a": "127.0.0.2", "*": "::1"}
    assert plan.headers == ("X-A: 1", "Authorization: Bearer t")


def test_options_keep_only_what_the_user_gave():
    """RunOptions holds its declared fields and nothing derived from them."""
    opts = RunOptions(shard="1/2", resolve=["a=b"], header=["X: 1"])
    assert set(vars(opts)) == {f.name for f in dataclasses.fields(RunOptions)}


@pytest.mark.parametrize("field,value,message", [
    ("shard", "2/2", "--shard '2/2': need 0 <= I < N"),
    ("resolve", ["nohost"], "--resolve 'nohost': expected HOST=ADDR"),
    ("header", ["no colon"], "--header 'no colon': expected 'Name: value'"),
])
def test_malformed_derived_options_are_refused_with_the_options(field, value, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("*", r"\*")):
        RunOptions(**{field: value})


# units in the load, -warmup, -duration, unit -> the warning (None: the load is long enough)
UNIT_CASES = [
    (10, 2, 8, MINUTE_NS, None),
    (12, 2, 8, MINUTE_NS, None),
    (3, 2, 8, MINUTE_NS, "holds 3 minutes, fewer than -warmup 2 + -duration 8: replaying 3, "
                         "measuring the last 1"),
    (2, 2, 8, NS_PER_S, "holds 2 seconds, fewer than -warmup 2 + -duration 8: replaying 2, "
                        "measuring none (all of it is warm-up)"),
    (1, 0, 3, NS_PER_S, "holds 1 second, fewer than -warmup 0 + -duration 3: replaying 1, "
                        "measuring the last 1"),
    (2, 1, 2, NS_PER_S // 2, "holds 2 units of 0.5 s, fewer than -warmup 1 + -duration 2: "
                             "replaying 2, measuring the last 1"),
]


@pytest.mark.parametrize("units,warmup,duration,unit_ns,tail", UNIT_CASES)
def test_a_short_load_is_replayed_whole_with_a_warning(units, warmup, duration, unit_ns, tail):
    opts = RunOptions(trace_file="load.json", warmup=warmup, duration=duration)
    assert replayed_units(opts) == warmup + duration
    warning = short_load_warning(opts, units, unit_ns)
    assert warning == (None if tail is None else f"warning: load.json {tail}")

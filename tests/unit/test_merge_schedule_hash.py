"""The schedule hash in run.json that `replayer merge` compares: the same for the same
schedule wherever it is computed, different when anything replayed differs."""
from __future__ import annotations

import dataclasses

import numpy as np

from replayer.run.rundir import HASH_CHUNK, schedule_hash
from replayer.schedules.schedule import Schedule


def _schedule(n=1000, **changes) -> Schedule:
    fields = dict(t_ns=np.arange(n, dtype=np.int64) * 1000, target=np.arange(n) % 3,
                  targets=["a", "b", "c"])
    fields.update(changes)
    return Schedule(**fields)


def test_same_schedule_same_hash():
    """Two decodes of one schedule (separate arrays) hash alike."""
    assert schedule_hash(_schedule()) == schedule_hash(_schedule())


def test_any_difference_changes_the_hash():
    """A time, a target, an endpoint name, a row more or less, classes and the unit each
    change the hash."""
    base = schedule_hash(_schedule())
    t = np.arange(1000, dtype=np.int64) * 1000
    t[500] += 1
    target = np.arange(1000) % 3
    target[7] = 0
    variants = [_schedule(t_ns=t), _schedule(target=target),
                _schedule(targets=["a", "b", "x"]), _schedule(n=999),
                _schedule(cls=np.zeros(1000, np.int16), classes=["c0"]),
                dataclasses.replace(_schedule(), unit_ns=1_000_000_000)]
    hashes = {schedule_hash(s) for s in variants}
    assert base not in hashes and len(hashes) == len(variants)


def test_columns_longer_than_a_chunk():
    """A column larger than one hashing chunk is hashed whole: a change past the first chunk
    shows."""
    n = HASH_CHUNK // 8 + 10
    a = _schedule(n=n)
    t = a.t_ns.copy()
    t[-1] += 1
    assert schedule_hash(a) != schedule_hash(_schedule(n=n, t_ns=t))

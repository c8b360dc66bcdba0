"""The schedule (replayer.schedules.schedule): columns of fixed types, a stable sort by time,
row selection that keeps the tables, the prefix a run replays, and the shards that split one
schedule over workers and nodes."""
from __future__ import annotations

import numpy as np
import pytest

from replayer.schedules.schedule import NS_PER_S, Schedule, worker_shards


def _schedule(t_ns, target=None, cls=None):
    n = len(t_ns)
    return Schedule(t_ns=np.asarray(t_ns), target=np.arange(n) % 3 if target is None else target,
                    targets=["a", "b", "c"], cls=cls, classes=["x", "y"], unit_ns=NS_PER_S,
                    source="test")


def test_columns_have_fixed_types_and_sizes():
    """t_ns is int64 and target int32 whatever they were given as (12 bytes a request, what a
    run shares with its workers); classes add int16; the columns must pair up."""
    s = _schedule([3, 1, 2])
    assert (s.t_ns.dtype, s.target.dtype) == (np.int64, np.int32) and s.nbytes == 3 * 12
    with_cls = _schedule([1, 2], cls=[0, 1])
    assert with_cls.cls.dtype == np.int16 and with_cls.nbytes == 2 * 14
    with pytest.raises(ValueError, match="same length"):
        Schedule(t_ns=np.arange(3), target=np.arange(2), targets=["a"])


def test_sorted_is_stable_and_keeps_the_tables():
    """sorted() orders by time; requests at the same instant keep their order; targets,
    classes, unit and source stay; a sorted schedule is returned as it is."""
    s = _schedule([30, 10, 20, 10, 10], target=[0, 1, 2, 2, 0], cls=[1, 0, 1, 1, 0])
    assert not s.is_sorted()
    t = s.sorted()
    assert t.t_ns.tolist() == [10, 10, 10, 20, 30]
    assert t.target.tolist() == [1, 2, 0, 2, 0] and t.cls.tolist() == [0, 1, 0, 1, 1]
    assert (t.targets, t.classes, t.unit_ns, t.source) == (s.targets, s.classes, NS_PER_S, "test")
    assert t.is_sorted() and t.sorted() is t


def test_take_and_before_select_rows():
    """take() keeps the rows asked for with their targets and classes; before(end) is the
    prefix intended before end (the schedule itself when nothing is cut); end_ns is the last
    request's time, 0 when there is none."""
    s = _schedule([0, 5, 5, 9], cls=[0, 1, 0, 1])
    picked = s.take(np.array([3, 0]))
    assert picked.t_ns.tolist() == [9, 0] and picked.target.tolist() == [0, 0]
    assert picked.cls.tolist() == [1, 0]
    assert s.before(5).t_ns.tolist() == [0] and s.before(6).t_ns.tolist() == [0, 5, 5]
    assert s.before(10) is s and len(s.before(0)) == 0
    assert s.end_ns == 9 and s.before(0).end_ns == 0


@pytest.mark.parametrize("workers, nodes", [(1, 1), (3, 1), (1, 4), (3, 2), (4, 3)])
def test_shards_cover_every_request_once(workers, nodes):
    """Every worker of every node takes every (workers x nodes)-th request from its first: the
    shards of all nodes together take each request exactly once, and neighbouring requests go
    to different workers (round-robin spreads a burst)."""
    n = 1000
    owner = np.full(n, -1)
    for node in range(nodes):
        for k, (first, stride) in enumerate(worker_shards(workers, node, nodes)):
            assert stride == workers * nodes
            rows = np.arange(first, n, stride)
            assert (owner[rows] == -1).all()
            owner[rows] = node * workers + k
    assert (owner >= 0).all()
    assert len(set(owner[:workers * nodes].tolist())) == workers * nodes

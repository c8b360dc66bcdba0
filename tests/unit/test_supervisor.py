"""What the supervisor (replayer.run.supervisor) does before it starts any process: loading
the units a run replays, with the invoker's rule for a shorter load and an error for an empty
one. (Spawning, supervising and finishing a run: tests/e2e.)"""
from __future__ import annotations

import numpy as np
import pytest

from replayer.errors import InputError
from replayer.run.options import RunOptions
from replayer.run.supervisor import Supervisor
from replayer.schedules import columnar
from replayer.schedules.schedule import NS_PER_S, Schedule


def test_a_columnar_schedule_shorter_than_asked_warns(tmp_path, capsys):
    """A columnar schedule shorter than -warmup + -duration (2 units in the file, 1 + 2 asked)
    is loaded whole with one warning line, as a load.json is; one long enough, silently."""
    sched = Schedule(t_ns=np.array([0, NS_PER_S + 1], np.int64), target=np.zeros(2, np.int32),
                     targets=["a"], unit_ns=NS_PER_S)
    columnar.write_schedule(sched, tmp_path / "s.parquet")
    opts = RunOptions(trace_file=str(tmp_path / "s.parquet"), warmup=1, duration=2, latf="")
    assert len(Supervisor(opts).load()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds 2 seconds" in err[0] and "measuring the last 1" in err[0]
    opts = RunOptions(trace_file=str(tmp_path / "s.parquet"), warmup=1, duration=1, latf="")
    assert len(Supervisor(opts).load()) == 2 and capsys.readouterr().err == ""


def test_a_load_without_requests_in_the_asked_units_is_refused(tmp_path):
    """A load whose first -warmup + -duration units hold no request: one line naming the file
    and the units, before anything runs."""
    sched = Schedule(t_ns=np.array([5 * NS_PER_S], np.int64), target=np.zeros(1, np.int32),
                     targets=["a"], unit_ns=NS_PER_S)
    columnar.write_schedule(sched, tmp_path / "late.parquet")
    opts = RunOptions(trace_file=str(tmp_path / "late.parquet"), warmup=1, duration=2, latf="")
    with pytest.raises(InputError, match=r"late.parquet: no requests in the first 3 units"):
        Supervisor(opts).load()

"""Reading an Azure Functions 2019 trace directory (replayer.generate.azure_dataset): the
three CSV files joined per function (memory per function or per application), and any
damage to them one line naming the file (never a traceback or a hang)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from input_cases import IN_PROCESS, mutated, time_bound
from replayer.errors import InputError
from replayer.generate.azure_dataset import read_trace

KEYS = [("o1", "a1", "f1"), ("o1", "a1", "f2"), ("o2", "a2", "f3")]
DURATION_HEADER = ("HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,"
                   "percentile_Average_0,percentile_Average_1,percentile_Average_25,"
                   "percentile_Average_50,percentile_Average_75,percentile_Average_99,"
                   "percentile_Average_100")
MEMORY_COLUMNS = ("SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,"
                  "AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,"
                  "AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100")


def _files(per_app_memory: bool = False) -> dict[str, str]:
    """Three functions over units 1-3; memory per function, or per application (as the public
    dataset gives it: no HashFunction column)."""
    inv = ["HashOwner,HashApp,HashFunction,Trigger,1,2,3"]
    dur = [DURATION_HEADER]
    for i, (o, a, f) in enumerate(KEYS):
        inv.append(f"{o},{a},{f},http,{i},{i + 2},{3 * i}")
        dur.append(f"{o},{a},{f},{10 * (i + 1)},100,1,900,1,2,5,8,{12 * (i + 1)},80,900")
    if per_app_memory:
        mem = [f"HashOwner,HashApp,{MEMORY_COLUMNS}", "o1,a1,10,100,90,91,95,99,150,120,125,130",
               "o2,a2,10,100,90,91,95,99,250,120,125,130"]
    else:
        mem = [f"HashOwner,HashApp,HashFunction,{MEMORY_COLUMNS}"]
        mem += [f"{o},{a},{f},10,{100 + i},90,91,95,99,{110 + i},120,125,130"
                for i, (o, a, f) in enumerate(KEYS)]
    return {"invocations.csv": "\n".join(inv) + "\n", "durations.csv": "\n".join(dur) + "\n",
            "memory.csv": "\n".join(mem) + "\n"}


def _write(directory, files):
    for name, text in files.items():
        (directory / name).write_bytes(text.encode("utf-8", "surrogatepass"))
    return directory


def test_functions_are_joined_across_the_files(tmp_path):
    """Each function's counts per unit, its p75 duration and its p75 memory come from its own
    rows; the units are the count columns' header numbers."""
    trace = read_trace(_write(tmp_path, _files()))
    assert len(trace) == 3 and trace.function == ["f1", "f2", "f3"]
    assert trace.counts.tolist() == [[0, 2, 0], [1, 3, 3], [2, 4, 6]]
    assert trace.unit_labels.tolist() == [1, 2, 3]
    assert trace.duration_p75_ms.tolist() == [12, 24, 36]
    assert trace.memory_p75_mb.tolist() == [110, 111, 112]


def test_memory_per_application_is_shared_by_its_functions(tmp_path):
    """Without HashFunction in memory.csv, every function of an application gets the
    application's memory row."""
    trace = read_trace(_write(tmp_path, _files(per_app_memory=True)))
    assert trace.memory_p75_mb.tolist() == [150, 150, 250]


@pytest.mark.parametrize("drop", [False, True])
def test_a_function_missing_from_one_file(tmp_path, drop):
    """A function with no durations row is an error naming the file and the invocations.csv
    line, or, with drop_incomplete, left out and counted."""
    files = _files()
    files["durations.csv"] = "\n".join(files["durations.csv"].splitlines()[:-1]) + "\n"
    _write(tmp_path, files)
    if drop:
        trace = read_trace(tmp_path, drop_incomplete=True)
        assert trace.function == ["f1", "f2"] and trace.dropped == 1
        return
    with pytest.raises(InputError) as exc:
        read_trace(tmp_path)
    assert "durations.csv: no row for function o2/a2/f3 (invocations.csv line 4)" in str(exc.value)


@IN_PROCESS
@given(name=st.sampled_from(sorted(_files())), data=st.data(), drop=st.booleans())
def test_mutated_azure_trace(tmp_path, name, data, drop):
    """One of the three files with characters deleted, inserted, replaced or cut off: a trace
    with non-negative counts and finite durations and memory, or one line naming the trace."""
    files = _files()
    files[name] = data.draw(mutated(st.just(files[name])))
    _write(tmp_path, files)
    try:
        with time_bound():
            trace = read_trace(tmp_path, drop_incomplete=drop)
    except InputError as exc:
        assert "\n" not in str(exc) and str(tmp_path) in str(exc)
        return
    assert trace.counts.shape == (len(trace), len(trace.unit_labels))
    assert (trace.counts >= 0).all()
    assert np.isfinite(trace.duration_p75_ms).all() and np.isfinite(trace.memory_p75_mb).all()

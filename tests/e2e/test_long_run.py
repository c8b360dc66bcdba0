"""A 10-million-request schedule replayed at the highest rate the null transport allows keeps
each worker's memory flat (RSS at start, middle and end)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.schedules.columnar import write_schedule
from replayer.loopback.procinfo import memory_kib, spawned_children

N = 10_000_000
MIB = 1024


@pytest.mark.slow
def test_ten_million_requests_in_flat_worker_memory(tmp_path):
    """10 million requests due within 1 s over 2 workers (beyond what a core sends: each worker
    runs flat out from start to end, the null transport's highest rate): all recorded, and each
    worker's private memory grows by less than 16 MiB (its RSS only by the pages of the shared
    schedule it reads)."""
    sched = tmp_path / "ten-million.arrow"
    t_ns = np.arange(N, dtype=np.int64) * (NS_PER_S // N)
    write_schedule(Schedule(t_ns=t_ns, target=np.zeros(N, np.int32), targets=["svc"],
                            unit_ns=NS_PER_S), sched)
    del t_ns
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(sched), "-duration", "1",
         "-warmup", "0", "-workers", "2", "--protocol", "null", "--out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: dict[int, list[tuple[int, dict]]] = {}    # worker pid -> [(time ns, memory)]
    parent_peak = 0
    start_ns = None
    while proc.poll() is None:
        if start_ns is None and (out / "run.json").exists():
            try:
                start_ns = json.loads((out / "run.json").read_text()).get("start_ns")
            except json.JSONDecodeError:
                pass
        now = time.time_ns()
        for pid in spawned_children(proc.pid):
            mem = memory_kib(pid)
            if mem is not None and start_ns is not None and now >= start_ns:
                samples.setdefault(pid, []).append((now, mem))
        parent = memory_kib(proc.pid)
        if parent:
            parent_peak = max(parent_peak, parent["VmRSS"])
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheduled"] == N and summary["lost"] == 0
    assert summary["errors"] == {"ok": N}
    assert len(samples) == 2
    report = []
    for pid, series in samples.items():
        assert len(series) >= 10, "too few samples while the workers ran"
        first, last = series[0][0], series[-1][0]

        def at(share):   # the sample nearest to this share of the sampled time
            return min(series, key=lambda s: abs(s[0] - (first + share * (last - first))))[1]
        # end: 95% of the way, before the worker unmaps its segments and exits
        start, middle, end = series[0][1], at(0.5), at(0.95)
        peak_anon = max(m["RssAnon"] for _, m in series)
        report.append(f"worker {pid}: RSS start {start['VmRSS'] // MIB} MiB, middle "
                      f"{middle['VmRSS'] // MIB} MiB, end {end['VmRSS'] // MIB} MiB; private "
                      f"(RssAnon) {start['RssAnon'] // MIB}/{middle['RssAnon'] // MIB}/"
                      f"{end['RssAnon'] // MIB} MiB, peak {peak_anon // MIB} MiB; shared "
                      f"(RssShmem) end {end['RssShmem'] // MIB} MiB; {len(series)} samples over "
                      f"{(last - first) / 1e9:.1f} s")
        # Private memory is what a leak grows. VmRSS also counts the pages of the shared
        # schedule (t_ns + target: 12 B per request) as the worker first reads them: bounded
        # by the schedule's size, not by the run's length.
        assert end["RssAnon"] - start["RssAnon"] < 16 * MIB, report[-1]
        assert peak_anon - start["RssAnon"] < 16 * MIB, report[-1]
        assert end["VmRSS"] - start["VmRSS"] < (N * 12) // 1024 + 50 * MIB, report[-1]
    report.append(f"parent: peak RSS {parent_peak // MIB} MiB")
    print("\n".join(report))

"""Figure 7: the schedule's cost for a 10-million-request load.json (1 M req/s for 10 s, one
endpoint, vSwarm format, per-second units).

- decode: read_load_json in a fresh process: requests/s, and peak memory (VmHWM) above the
  process's footprint just before decoding, per request (what decoding needs at its peak, the
  per-unit Python lists included) and what the finished schedule keeps.
- shared: `replayer run` with 8 workers (null transport, --time-scale 0.25, unpinned when the
  machine has fewer than 8 CPUs) on that file; every 100 ms the proportional set size (Pss:
  shared pages divided among the processes mapping them) of the parent and all workers is
  summed; the peak, minus the same run's peak on a 1000-request load, per scheduled request,
  is the memory the schedule costs in total however many workers share it.
Targets: >= 2 M requests/s decoded; <= 24 bytes per scheduled request in total.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import _lib
from replayer.loopback.procinfo import descendants

N = 10_000_000
RATE = 1_000_000
WORKERS = 8

DECODE = r"""
import json, sys, time
from replayer.loopback.procinfo import memory_kib
from replayer.schedules.vswarm import read_load_json
base = memory_kib()["VmRSS"] * 1024
t0 = time.perf_counter()
s = read_load_json(sys.argv[1], minute=False)
dt = time.perf_counter() - t0
after = memory_kib()
print(json.dumps({"n": len(s), "decode_s": dt, "base_rss": base, "peak_rss": after["VmHWM"] * 1024,
                  "after_rss": after["VmRSS"] * 1024, "schedule_nbytes": s.nbytes}))
"""


@pytest.fixture(scope="module")
def big_load(workdir) -> Path:
    return _lib.make_load(workdir / "loads", RATE, N // RATE, fmt="json", name="10M")


def test_fig7_decode(benchmark, big_load):
    def go():
        p = subprocess.run([sys.executable, "-c", DECODE, str(big_load)], capture_output=True,
                           text=True, timeout=600, env=_lib.env())
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-2000:])
        return json.loads(p.stdout.strip().splitlines()[-1])

    d = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "figure": 7, "part": "decode", "requests": d["n"], "file_bytes": big_load.stat().st_size,
        "decode_s": d["decode_s"], "decode_rate": d["n"] / d["decode_s"],
        "peak_bytes_per_req": (d["peak_rss"] - d["base_rss"]) / d["n"],
        "kept_bytes_per_req": (d["after_rss"] - d["base_rss"]) / d["n"],
        "schedule_column_bytes_per_req": d["schedule_nbytes"] / d["n"]})


def _pss(pids: list[int]) -> tuple[int, int]:
    """(total Pss, Pss of replayer's shared-memory segments) in bytes, over pids."""
    total = shared = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        try:
            name = None
            for line in Path(f"/proc/{p}/smaps").read_text().splitlines():
                if not line[:1].isupper() or ":" not in line.split()[0]:
                    name = line
                elif line.startswith("Pss:") and name and "memfd:replayer-" in name \
                        and ("t_ns" in name or "target" in name):
                    shared += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total, shared


def _peak_memory(workdir: Path, load: Path, seconds: int, tag: str) -> dict:
    out = workdir / "runs" / f"mem-{tag}"
    cmd = _lib.replayer_cmd(load, out, "null", 9, seconds, 0, WORKERS,
                            ["--time-scale", "0.25"] + (["--no-pin"] if len(_lib.cpus()) < WORKERS else []))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_lib.env(),
                            cwd=str(workdir))     # its rps_lat.csv stays out of the repository
    peak = {"total": 0, "shared": 0, "procs": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            pids = [proc.pid] + descendants(proc.pid)
            total, shared = _pss(pids)
            if total > peak["total"]:
                peak.update(total=total, procs=len(pids))
            peak["shared"] = max(peak["shared"], shared)
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        stop.set()
        th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"replayer run failed: {err[-2000:]}")
    return peak


def test_fig7_shared_schedule_memory(benchmark, workdir, big_load):
    small = _lib.make_load(workdir / "loads", 1000, 1, fmt="json", name="1k-json")

    def go():
        base = _peak_memory(workdir, small, 1, "base")
        big = _peak_memory(workdir, big_load, N // RATE, "10M")
        return base, big

    base, big = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "figure": 7, "part": "shared", "workers": WORKERS, "requests": N,
        "peak_pss_total": big["total"], "baseline_pss_total": base["total"],
        "processes": big["procs"], "bytes_per_req": (big["total"] - base["total"]) / N,
        "shared_segment_bytes_per_req": big["shared"] / N})

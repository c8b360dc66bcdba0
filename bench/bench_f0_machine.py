"""Figure 0: the machine's own hiccups, the floor under every lag figure.

A C loop (bench/hiccups.c) spins on the client CPU, then on the target's CPU, reading the clock
for 5 s, and counts the gaps between reads: the time it lost the CPU (to the hypervisor, an
interrupt, another task). No pacer on that CPU can send with tails smaller than these; on a
shared VM they change from one hour to the next, so read them next to the lag figures of the
same run.

Right after the loop on the client's CPU, replayer itself (null transport, 100k req/s for 3 s:
its worker spins all the time, on that same CPU) counts the same gaps between its own clock
reads (`--stall-us 10`, the loop's threshold): the stalls every run reports in its summary,
set beside the loop's.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import _lib

SECONDS = 5
STALL_RATE = 100_000        # 10 µs apart: inside the 50 µs spin, so the worker never sleeps
STALL_SECONDS = 3


@pytest.fixture(scope="module")
def hiccups_binary(workdir) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build bench/hiccups.c")
    out = workdir / "hiccups"
    subprocess.run([cc, "-O2", "-o", str(out), str(Path(__file__).with_name("hiccups.c"))],
                   check=True)
    return out


@pytest.mark.parametrize("role", ["client", "target"])
def test_fig0_machine_hiccups(benchmark, hiccups_binary, workdir, role):
    cpu = _lib.client_cpu() if role == "client" else _lib.cpus()[-1]

    def go():
        p = _lib.run_cmd([str(hiccups_binary), str(SECONDS)], timeout=SECONDS + 30, cpu=cpu)
        return json.loads(p.out)

    res = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 0, "role": role, "cpu": cpu, **res})
    if role == "client":
        benchmark.extra_info["replayer"] = _replayer_stalls(workdir, cpu)


def _replayer_stalls(workdir: Path, cpu: int) -> dict:
    """The stalls a replayer run's worker, pinned to `cpu` (replayer pins worker 0 to the first
    CPU, the client's), reports for itself, in the loop's terms."""
    assert cpu == _lib.client_cpu()
    r = _lib.run_replayer(workdir, STALL_RATE, STALL_SECONDS, "null", 9, warmup=0,
                          extra=("--stall-us", "10"))
    st = r.summary["workers"][0]["stalls"]
    seconds = st["run_ns"] / 1e9
    return {"seconds": seconds, "threshold_us": st["threshold_ns"] / 1e3,
            "gaps_over_10us": st["count"], "gaps_over_100us": st["over_100us"],
            "gaps_over_1ms": st["over_1ms"], "longest_us": st["longest_ns"] / 1e3,
            "lost_pct": 100 * st["lost_ns"] / st["run_ns"], "lag_us": r.lag_us,
            "achieved_rate": r.achieved_rate}

"""Figure 0: the machine's own hiccups, the floor under every lag figure.

A C loop (bench/hiccups.c) spins on the client CPU, then on the target's CPU, reading the clock
for 5 s, and counts the gaps between reads: the time it lost the CPU (to the hypervisor, an
interrupt, another task). No pacer on that CPU can send with tails smaller than these; on a
shared VM they change from one hour to the next, so read them next to the lag figures of the
same run.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import _lib

SECONDS = 5


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
def test_fig0_machine_hiccups(benchmark, hiccups_binary, role):
    cpu = _lib.client_cpu() if role == "client" else _lib.cpus()[-1]

    def go():
        p = _lib.run_cmd([str(hiccups_binary), str(SECONDS)], timeout=SECONDS + 30, cpu=cpu)
        return json.loads(p.out)

    res = benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update({"figure": 0, "role": role, "cpu": cpu, **res})

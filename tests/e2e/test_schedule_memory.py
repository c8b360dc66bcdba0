"""The schedule's memory. A load.json is decoded as a stream straight into the shared
segments the workers map, so decoding two million requests in one unit costs the columns and a
few chunks of the file (measured in a fresh process); the end-of-run summary's exact
percentiles need no copy of every value. (A worker's record ring size: tests/unit/test_plan.py.)"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from replayer.analysis.stats import StreamedPercentiles, percentiles

DECODE_MEMORY = r"""
import json, sys
from replayer.loopback.procinfo import memory_kib
from replayer.schedules.vswarm import read_load_json
base = memory_kib()["VmRSS"]
s = read_load_json(sys.argv[1], minute=True)
after = memory_kib()
print(json.dumps({"n": len(s), "peak": (after["VmHWM"] - base) * 1024,
                  "kept": (after["VmRSS"] - base) * 1024}))
"""


def test_decode_memory_does_not_grow_with_the_unit(tmp_path):
    """Two million requests in one unit: the reference decoder needs about 45 bytes a request
    at its peak; streaming, the columns (12) and a few chunks of the file."""
    n = 2_000_000
    path = tmp_path / "load.json"
    with open(path, "w") as f:
        f.write('[{"timestamp": [' + ", ".join(map(str, range(n))) + '], "endpoint": ['
                + ", ".join(['"svc.local"'] * n) + "]}]")
    p = subprocess.run([sys.executable, "-c", DECODE_MEMORY, str(path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["n"] == n
    assert d["peak"] < 12 * n + (32 << 20), d      # reference: ~45 * n = 90 MB
    assert d["kept"] < 12 * n + (16 << 20), d


@pytest.mark.parametrize("dist", ["spread", "narrow", "equal", "signed", "huge"])
def test_streamed_percentiles_are_numpys_nearest_rank(dist):
    """StreamedPercentiles, fed in blocks over passes, gives numpy's nearest-rank percentiles
    exactly (spread, narrow, equal, signed and huge values) within 6 passes, whether it collects
    early or late; with no values, None."""
    rng = np.random.default_rng(7)
    n = 20_000
    values = {"spread": rng.lognormal(12, 3, n).astype(np.int64),
              "narrow": rng.normal(1e6, 10, n).astype(np.int64),
              "equal": np.full(n, 5, np.int64),
              "signed": rng.integers(-10**12, 10**12, n),
              "huge": np.where(rng.random(n) < 0.5, (1 << 60) + rng.integers(0, 3, n), 7)}[dist]
    qs = (0, 1, 50, 95, 99, 99.9, 100)
    for collect in (StreamedPercentiles.COLLECT, 64):
        sel = StreamedPercentiles(qs)
        sel.COLLECT = collect
        while sel.open():
            for i in range(0, n, 4096):
                sel.add(values[i:i + 4096])
            sel.end_pass()
        assert sel.values() == [int(v) for v in percentiles(values, qs)]
        assert sel.passes <= 6
    empty = StreamedPercentiles(qs)
    empty.end_pass()
    assert not empty.open() and empty.values() == [None] * len(qs)

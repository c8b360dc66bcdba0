"""Issue 3, figure 7: the schedule's memory. A load.json is decoded as a stream straight into
the shared segments the workers map (nothing grows with the size of a unit, nothing is copied
to share it), the streaming decoder agrees with the reference decoder on every input, and the
end-of-run summary's exact percentiles need no copy of every value."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from replayer.run import shm
from replayer.errors import InputError
from replayer.run.supervisor import MAX_RING, RING_FLOOR, _ring_capacity
from replayer.analysis.stats import StreamedPercentiles, percentiles
from replayer.schedules import vswarm

FAST = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _decode(fn, path, minute, max_units):
    try:
        s = fn(path, minute, max_units)
    except InputError as exc:
        return ("error", str(exc))
    return ("ok", s.t_ns.tolist(), s.target.tolist(), s.targets, s.unit_ns)


def _agree(tmp_path, text, minute=False, max_units=None, chunk=None, monkeypatch=None):
    path = tmp_path / "load.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    if chunk:
        monkeypatch.setattr(vswarm, "_READ_BYTES", chunk)
    got = _decode(vswarm.read_load_json, path, minute, max_units)
    want = _decode(vswarm._read_reference, path, minute, max_units)
    assert got == want, text


CASES = [
    '[]', '[ ]', '[] x', '', '\ufeff[]', '[{}]', '[{"timestamp": [1], "endpoint": ["a"]},]',
    '[{"timestamp": [1, 2], "endpoint": ["a", "b"]},\n oops]',
    '[{"timestamp": [], "endpoint": []}, {"timestamp": [4, -1], "endpoint": ["a", "a"]}]',
    '[{"endpoint": ["b", "a\\u0041"], "timestamp": [3, 3], "x": {"y": [1, 2, NaN]}}]',
    '[{"timestamp": [-0, 1], "endpoint": ["a", "a"]}]',                 # valid: -0 is 0
    '[{"timestamp": [1], "endpoint": ["a"], "endpoint": ["b"]}]',       # repeated key: the last
    '[{"timestamp": [01], "endpoint": ["a"]}]', '[{"timestamp": [0, , 1], "endpoint": ["a", "a", "a"]}]',
    '[{"timestamp": [0, , 01], "endpoint": ["a", "a", "a"]}]', '[{"timestamp": [1 2], "endpoint": ["a"]}]',
    '[{"timestamp": [99999999999999999999], "endpoint": ["a"]}]', '[{"timestamp": [1,], "endpoint": ["a"]}]',
    '[{"timestamp": [1, 1.0], "endpoint": ["a", "a"]}]', '[{"timestamp": [1e2], "endpoint": ["a"]}]',
    '[{"timestamp": [1], "endpoint": ["a",]}]', '[{"timestamp": [1], "endpoint": [" "]}]',
    '[{"timestamp": [1, 5], "endpoint": ["a,]b", "c\\"d"]}, {"timestamp": [2], "endpoint": ["a,]b"]}]',
    '[{"timestamp": [1], "endpoint": ["\u00e9"]}]', b'[{"timestamp": [1], "endpoint": ["\xff"]}]',
    '[{"timestamp": [1], "endpoint": ["a\tb"]}]', '[{"timestamp": [1], "endpoint": ["a"]} {}]',
    '[\n  {\n    "timestamp": [\n      1,\n      2\n    ],\n    "endpoint": [\n      "a",\n      "b"\n    ]\n  }\n]\n',
]


@pytest.mark.parametrize("chunk", [None, 1, 5])
@pytest.mark.parametrize("text", CASES)
def test_streaming_decoder_agrees_with_the_reference(tmp_path, monkeypatch, text, chunk):
    for max_units in (None, 1):
        _agree(tmp_path, text, max_units=max_units, chunk=chunk, monkeypatch=monkeypatch)


_NAMES = st.sampled_from(["a.example.com", "b", "svc-1", "x,y", "a]b", 'q"q', "\u00e9", "a\\b", " ", ""])
_BLANK = st.sampled_from(["", " ", "\n  ", "\t", "\r\n"])


@st.composite
def _spaced_load(draw):
    """load.json texts with odd spacing, key order, extra and repeated fields, odd names."""
    units = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(0, 12))
        ts = sorted(draw(st.lists(st.integers(0, 1_200_000), min_size=n, max_size=n)))
        eps = draw(st.lists(_NAMES, min_size=n, max_size=n))
        tst = "[" + ",".join(draw(_BLANK) + str(t) + draw(_BLANK) for t in ts) + draw(_BLANK) + "]"
        ept = "[" + ",".join(draw(_BLANK) + json.dumps(e, ensure_ascii=draw(st.booleans()))
                             + draw(_BLANK) for e in eps) + "]"
        fields = [f'"timestamp"{draw(_BLANK)}:{draw(_BLANK)}{tst}', f'"endpoint":{ept}']
        if draw(st.booleans()):
            fields.append('"x": [1, {"y": "z"}]')
        if draw(st.integers(0, 8)) == 0:
            fields.append(draw(st.sampled_from(fields)))
        fields = draw(st.permutations(fields))
        units.append("{" + draw(_BLANK) + ("," + draw(_BLANK)).join(fields) + "}")
    return "[" + ",".join(units) + "]" + draw(_BLANK)


@st.composite
def _damaged(draw):
    text = draw(_spaced_load())
    i = draw(st.integers(0, len(text)))
    return text[:i] + draw(st.sampled_from(["", "-", ".5", "0", ",", "]", '"', "\\", " "])) \
        + text[i + draw(st.integers(0, 3)):]


@FAST
@given(text=_spaced_load() | _damaged(), minute=st.booleans(),
       max_units=st.none() | st.integers(0, 3), chunk=st.sampled_from([1, 3, 64, 1 << 20]))
def test_streaming_decoder_agrees_on_random_files(tmp_path_factory, text, minute, max_units,
                                                  chunk):
    path = tmp_path_factory.mktemp("d") / "load.json"
    path.write_text(text, encoding="utf-8")
    old = vswarm._READ_BYTES
    vswarm._READ_BYTES = chunk
    try:
        got = _decode(vswarm.read_load_json, path, minute, max_units)
    finally:
        vswarm._READ_BYTES = old
    assert got == _decode(vswarm._read_reference, path, minute, max_units)


def test_decoded_columns_are_the_shared_segments(tmp_path):
    path = tmp_path / "load.json"
    path.write_text('[{"timestamp": [1, 2], "endpoint": ["a", "b"]}, '
                    '{"timestamp": [3], "endpoint": ["a"]}]')
    s = vswarm.read_load_json(path, minute=False)
    assert s.t_ns.tolist() == [1000, 2000, 1_000_003_000] and s.target.tolist() == [0, 1, 0]
    seg, view = shm.share_array("t_ns", s.t_ns)
    assert view is s.t_ns and seg.ref.nbytes == 3 * 8 and seg.name == "t_ns"
    seg, view = shm.share_array("target", s.target)
    assert view is s.target and seg.ref.nbytes == 3 * 4
    other = np.arange(3, dtype=np.int64)          # not from a decoder: copied
    seg, view = shm.share_array("t_ns", other)
    assert view is not other and view.tolist() == [0, 1, 2]


DECODE_MEMORY = r"""
import json, sys
from replayer.schedules.vswarm import read_load_json
def kib(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
base = kib('VmRSS:')
s = read_load_json(sys.argv[1], minute=True)
print(json.dumps({"n": len(s), "peak": kib('VmHWM:') - base, "kept": kib('VmRSS:') - base}))
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


def test_ring_capacity_follows_the_busiest_quarter_second():
    t = np.arange(1_000_000, dtype=np.int64) * 1000          # 1M req/s
    per_worker = 1_000_000 // 4
    assert _ring_capacity(per_worker) == MAX_RING               # events alone
    # 250k/s per worker (4 workers): a quarter second is 62.5k rows.
    assert _ring_capacity(per_worker, t, 4, 1.0) == 1 << 16
    assert _ring_capacity(per_worker, t, 4, 0.25) == MAX_RING    # four times as fast
    assert _ring_capacity(per_worker, t * 1000, 4, 1.0) == RING_FLOOR
    assert _ring_capacity(per_worker, np.zeros_like(t), 4, 1.0) == MAX_RING  # one burst
    assert _ring_capacity(100, t[:400], 4, 1.0) == 1 << 10      # never more than its events

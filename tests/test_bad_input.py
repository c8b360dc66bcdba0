"""Malformed load.json files and bad options: exit code 2 and one line naming the place;
never a traceback, never a run directory with partial output."""
from __future__ import annotations

import pytest

from conftest import replayer

CASES = [
    ("not json", "[{\"timestamp\": [1, 2], \"endpoint\": [\"a\", \"b\"]},\n oops]", "line 2 column 2"),
    ("top level not a list", '{"timestamp": [1], "endpoint": ["a"]}', "expected a JSON list"),
    ("unit not an object", '[[1, 2]]', "object 0"),
    ("missing endpoint", '[{"timestamp": [1]}]', 'missing "endpoint"'),
    ("timestamp not a list", '[{"timestamp": 5, "endpoint": ["a"]}]', 'object 0 field "timestamp": expected a list'),
    ("endpoint not a list", '[{"timestamp": [5], "endpoint": "a"}]', 'object 0 field "endpoint": expected a list'),
    ("non-integer offset", '[{"timestamp": [1, "x"], "endpoint": ["a", "a"]}]', '"timestamp"[1]'),
    ("float offset", '[{"timestamp": [1.5], "endpoint": ["a"]}]', '"timestamp"[0]'),
    ("negative offset", '[{"timestamp": [], "endpoint": []}, {"timestamp": [4, -1], "endpoint": ["a", "a"]}]',
     'object 1 field "timestamp"[1]: offset -1 is negative'),
    ("unsorted", '[{"timestamp": [5, 9, 7], "endpoint": ["a", "a", "a"]}]', '"timestamp"[2]: offset 7 comes after 9'),
    ("beyond the unit", '[{"timestamp": [2000000], "endpoint": ["a"]}]', "beyond the second unit"),
    ("length mismatch", '[{"timestamp": [1, 2], "endpoint": ["a"]}]', '"timestamp" has 2 entries but "endpoint" has 1'),
    ("empty endpoint", '[{"timestamp": [1, 2], "endpoint": ["a", ""]}]', 'object 0 field "endpoint"[1]'),
    ("endpoint not a string", '[{"timestamp": [1], "endpoint": [7]}]', 'object 0 field "endpoint"[0]'),
    ("trailing garbage", '[{"timestamp": [1], "endpoint": ["a"]}] x', "extra data"),
    ("empty file", "", "expected a JSON list"),
    ("truncated", '[{"timestamp": [1, 2', "not valid JSON"),
]


@pytest.mark.parametrize("name, text, place", CASES, ids=[c[0] for c in CASES])
def test_malformed_load_json(tmp_path, name, text, place):
    load = tmp_path / "load.json"
    load.write_text(text)
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "5", "--out", str(out),
                    "--protocol", "http")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(load) in lines[0] and place in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()                # nothing written for a run that never started


def test_missing_trace_file(tmp_path):
    proc = replayer("run", "-traceFile", str(tmp_path / "nope.json"))
    assert proc.returncode == 2
    assert "nope.json: no such trace file" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("args, words", [
    (["-workers", "x"], "-workers"),
    (["-workers", "-3"], "-workers -3"),
    (["-duration", "0"], "-duration 0"),
    (["-min", "maybe"], "invalid boolean value: 'maybe'"),
    (["-port", "70000"], "-port 70000"),
    (["-grpcTimeout", "0"], "-grpcTimeout 0"),
    (["--protocol", "ftp"], "invalid choice"),
    (["--resolve", "nohost"], "--resolve 'nohost'"),
    (["--shard", "3/2"], "--shard '3/2'"),
    (["--url-template", "http://{host}/"], "--url-template"),
    (["--header", "NoColon"], "--header 'NoColon'"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_bad_options(tmp_path, args, words):
    proc = replayer("run", "-traceFile", "traces/example-load.json", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr


def test_bad_environment_variable():
    proc = replayer("run", env={"REPLAYER_WORKERS": "many"})
    assert proc.returncode == 2
    assert "REPLAYER_WORKERS='many'" in proc.stderr


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = replayer("run", "-traceFile", "traces/example-load.json", "-min=false",
                    "--out", str(blocker / "run"), "--protocol", "http")
    assert proc.returncode == 2
    assert "cannot write there" in proc.stderr and len(proc.stderr.splitlines()) == 1

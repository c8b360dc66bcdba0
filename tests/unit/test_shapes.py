"""Open-loop shapes built as schedules (replayer.generate.shapes): arrival times of a constant
rate and of a ramp, evenly spaced and Poisson, and vegeta's targets file format."""
from __future__ import annotations

import numpy as np
import pytest

from replayer.errors import InputError
from replayer.generate.shapes import (arrival_times, expected_count, parse_url, read_targets,
                                      shape_schedule)
from replayer.run.options import RunOptions

S = 1_000_000_000


def test_constant_rate_is_evenly_spaced():
    """1000/s for 2 s: 2000 requests, 1 ms apart from 0, as k6's constant-arrival-rate."""
    t = arrival_times([(0, 1000.0), (2 * S, 1000.0)], "constant", 0)
    assert len(t) == 2000 and t[0] == 0
    assert np.all(np.diff(t) == 1_000_000)


def test_ramp_counts_follow_the_integral():
    """A linear ramp 0 -> 400/s over 2 s, then 400/s: each 100 ms holds the rate's integral
    over it (within one request)."""
    points = [(0, 0.0), (2 * S, 400.0), (3 * S, 400.0)]
    t = arrival_times(points, "constant", 0)
    assert len(t) == int(expected_count(points)[-1]) == 800
    edges = np.arange(0, 3 * S + 1, S // 10)
    counts = np.histogram(t, edges)[0]
    mid = (edges[:-1] + edges[1:]) / 2 / S
    want = np.where(mid < 2, 200 * mid, 400) * 0.1
    assert np.all(np.abs(counts - want) <= 1.01)


def test_steps_and_zero_rate_stretches():
    """Two points at one time are a step; nothing is sent while the rate is 0."""
    points = [(0, 0.0), (S, 0.0), (S, 100.0), (2 * S, 100.0)]
    t = arrival_times(points, "constant", 0)
    assert len(t) == 100 and t.min() >= S and np.all(np.diff(t) == 10_000_000)


def test_poisson_arrivals_follow_the_rate():
    """Poisson arrivals of a ramp: counts per second within 5 sigma of the expected, gaps
    exponential (coefficient of variation near 1), the same with the same seed."""
    points = [(0, 200.0), (2 * S, 2000.0), (4 * S, 2000.0)]
    t = arrival_times(points, "poisson", 7)
    assert np.array_equal(t, arrival_times(points, "poisson", 7))
    assert not np.array_equal(t, arrival_times(points, "poisson", 8))
    counts = np.histogram(t, np.arange(0, 4 * S + 1, S))[0]
    want = np.array([200 + 450, 200 + 1350, 2000, 2000], float)    # 1 s integrals
    assert np.all(np.abs(counts - want) <= 5 * np.sqrt(want)), counts
    gaps = np.diff(t[t >= 2 * S])
    assert 0.9 < gaps.std() / gaps.mean() < 1.1


def test_targets_file(tmp_path):
    """vegeta's http format: METHOD URL, header lines, @file and @<<TAG bodies, blank lines
    between entries, an entry right after another, comments."""
    body = tmp_path / "b.json"
    body.write_bytes(b'{"x": 1}\n')
    path = tmp_path / "targets.txt"
    path.write_text(f"""# a comment
GET http://a.example:8080/one?q=1
X-Account-ID: 8675309
Authorization: Token DEADBEEF

POST https://b.example/two
Content-Type: application/json
@{body}
DELETE http://a.example:8080/three

PUT http://a.example:8080/four
@<<EOF
line 1
line 2
EOF
""")
    entries = read_targets(str(path))
    assert [(e.method, e.url) for e in entries] == [
        ("GET", "http://a.example:8080/one?q=1"), ("POST", "https://b.example/two"),
        ("DELETE", "http://a.example:8080/three"), ("PUT", "http://a.example:8080/four")]
    assert entries[0].headers == ["X-Account-ID: 8675309", "Authorization: Token DEADBEEF"]
    assert entries[1].body == b'{"x": 1}\n' and entries[1].headers == ["Content-Type: application/json"]
    assert entries[2].body is None and entries[3].body == b"line 1\nline 2\n"


@pytest.mark.parametrize("text, words", [
    ("FETCH http://a/x\n", "line 1: 'FETCH http://a/x' is not 'METHOD URL'"),
    ("GET http://a/x\nnot a header\n", "line 2: 'not a header' is not a header"),
    ("GET ftp://a/x\n", "line 1 'ftp://a/x': expected an http:// or https:// URL"),
    ("GET http://a/x\n@/nonexistent/body\n", "line 2: body file /nonexistent/body"),
    ("GET http://a/x\n@<<END\nno end\n", "line 2: no line 'END' ends the inline body"),
    ("# only a comment\n", "no entries"),
])
def test_bad_targets_file_names_its_line(tmp_path, text, words):
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        read_targets(str(path))
    assert str(exc.value).startswith(f"--targets {path}") and words in str(exc.value)


def test_urls():
    assert parse_url("http://h/x", "--url") == ("http", "h:80", "/x")
    assert parse_url("https://h:8443", "--url") == ("https", "h:8443", "/")
    assert parse_url("http://[::1]:9/a?b=c", "--url") == ("http", "[::1]:9", "/a?b=c")
    with pytest.raises(InputError, match="user and password"):
        parse_url("http://u:p@h/", "--url")


def test_shape_schedule_sends_entries_in_turn(tmp_path):
    """Request n goes to entry n mod E (vegeta's round robin), each entry a payload with its
    method, path, headers and body; endpoints are the entries' hosts."""
    path = tmp_path / "t.txt"
    path.write_text("GET http://a:1/x\n\nPOST http://b:2/y\nH: v\n\nGET http://a:1/z\n")
    opts = RunOptions(rate="30", duration="1s", targets=str(path))
    schedule, scheme = shape_schedule(opts)
    assert scheme == "http" and schedule.targets == ["a:1", "b:2"] and len(schedule) == 30
    assert schedule.payload.tolist() == [n % 3 for n in range(30)]
    assert schedule.target.tolist() == [[0, 1, 0][n % 3] for n in range(30)]
    assert [(p.method, p.path, p.headers) for p in schedule.payloads] == [
        ("GET", "/x", []), ("POST", "/y", ["H: v"]), ("GET", "/z", [])]


def test_mixed_schemes_are_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("GET http://a/x\n\nGET https://a/y\n")
    with pytest.raises(InputError, match="mixes http:// and https://"):
        shape_schedule(RunOptions(rate="5", duration="1s", targets=str(path)))

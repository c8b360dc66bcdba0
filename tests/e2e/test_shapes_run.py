"""`replayer run --rate/--ramp` against replayer's built-in target on loopback, as a real
command: the records' scheduled times follow the shape (counts per interval within Poisson
noise of the ramp), and a vegeta targets file's entries arrive at the target as written, in
turn."""
from __future__ import annotations

import collections
import json

import numpy as np

from conftest import replayer
from replayer.analysis.records import read_records
from replayer.loopback.launch import start_serve

S = 1_000_000_000


def _records(run_dir):
    table, problems = read_records(run_dir)
    assert not problems
    run = json.loads((run_dir / "run.json").read_text())
    return table, run


def test_ramp_with_poisson_arrivals_follows_the_ramp(tmp_path):
    """--ramp 0:100,1s:500,2s:500 --arrivals poisson on two workers: every request recorded,
    answered, and the scheduled times per quarter second within 5 sigma of the ramp's
    integral over it; the run says what it sent."""
    target = start_serve(grpc_port=-1)
    out = tmp_path / "run"
    try:
        p = replayer("run", "--ramp", "0:100,1s:500,2s:500", "--arrivals", "poisson", "--seed",
                     "11", "--url", f"http://127.0.0.1:{target.http_port}/p?q=1", "-workers", "2",
                     "--out", str(out), check_exit=0, timeout=60)
    finally:
        target.stop()
    assert "--ramp 0:100,1s:500,2s:500 (" in p.stderr and "poisson arrivals" in p.stderr
    table, run = _records(out)
    assert run["schedule_meta"]["shape"]["arrivals"] == "poisson"
    assert set(table.column("error").to_pylist()) == {"ok"}
    t = (table.column("scheduled_ns").to_numpy() - run["start_ns"]) / S
    edges = np.arange(0, 2.0001, 0.25)
    counts = np.histogram(t, edges)[0]
    lo, hi = edges[:-1], edges[1:]
    rate = lambda x: np.where(x < 1, 100 + 400 * x, 500)
    want = (rate(lo) + rate(hi)) / 2 * 0.25          # exact for a linear piece
    assert np.all(np.abs(counts - want) <= 5 * np.sqrt(want)), (counts, want)
    assert abs(len(t) - 800) <= 5 * np.sqrt(800)


def test_targets_file_entries_arrive_as_written(tmp_path):
    """A vegeta targets file of three entries (a GET with a query and headers, a POST with a
    body file, a PUT with an inline body) sent at --rate 90 for --duration 1s: 30 of each,
    every one received with its method, path, headers and body; request n is entry n mod 3
    (vegeta's round robin)."""
    body = tmp_path / "body.json"
    body.write_bytes(b'{"call": [1, 2, 3]}')
    log = tmp_path / "requests.jsonl"
    target = start_serve("--record-requests", str(log), grpc_port=-1)
    base = f"http://127.0.0.1:{target.http_port}"
    targets = tmp_path / "targets.txt"
    targets.write_text(f"""GET {base}/one?item=ball
X-Account-ID: 8675309
Authorization: Token DEADBEEF

POST {base}/two
Content-Type: application/json
@{body}

PUT {base}/three
@<<END
inline
body
END
""")
    out = tmp_path / "run"
    try:
        replayer("run", "-rate", "90/s", "-duration", "1s", "-targets", str(targets),
                 "--out", str(out), check_exit=0, timeout=60)
    finally:
        target.stop()
    table, _ = _records(out)
    payload = table.column("payload").to_numpy()[np.argsort(table.column("event").to_numpy())]
    assert payload.tolist() == [n % 3 for n in range(90)]
    got = [json.loads(line) for line in log.read_text().splitlines()]
    assert collections.Counter((g["method"], g["path"]) for g in got) == {
        ("GET", "/one?item=ball"): 30, ("POST", "/two"): 30, ("PUT", "/three"): 30}
    for g in got:
        headers = {k.lower(): v for k, v in g["headers"]}
        if g["method"] == "GET":
            assert headers["x-account-id"] == "8675309"
            assert headers["authorization"] == "Token DEADBEEF" and g.get("body", "") == ""
        elif g["method"] == "POST":
            assert headers["content-type"] == "application/json"
            assert g["body"] == '{"call": [1, 2, 3]}'
        else:
            assert g["body"] == "inline\nbody\n"

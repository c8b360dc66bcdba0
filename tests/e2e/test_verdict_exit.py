"""Exit codes of a judged run, end to end: --strict exits 5 when the schedule was not kept and 0
when it was; a threshold not met exits 5 (without --strict) and is printed with its value; a
malformed threshold exits 2 with one line before anything is sent; a run where every request
failed says so."""
from __future__ import annotations

import json

from conftest import free_port, replayer, write_load

N = 40


def _load(tmp_path, count: int = N, spacing_us: int = 25_000):
    """`count` requests `spacing_us` apart (1 s at the defaults: 40 req/s) in one 1-second unit."""
    return write_load(tmp_path / "load.json",
                      [([k * spacing_us for k in range(count)], ["svc"] * count)])


def _run(tmp_path, *args, name: str = "run"):
    out = tmp_path / name
    proc = replayer("run", "-traceFile", str(_load(tmp_path)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "1", "--protocol", "null", "--out", str(out),
                    "-latf", "", *args, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, out


def test_strict_exits_5_when_the_schedule_was_not_kept(tmp_path):
    """--max-lag 1ns cannot be kept: with --strict the run exits 5, prints the verdict and
    says why on stderr; summary.json holds the verdict and run.json the result."""
    proc, out = _run(tmp_path, "--max-lag", "1ns", "--strict")
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    assert "verdict   schedule NOT kept: lag p99 " in proc.stdout
    assert "> 1ns (" in proc.stdout
    assert "SCHEDULE NOT KEPT" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "replayer: run failed its goals: schedule NOT kept: lag p99")
    summary = json.loads((out / "summary.json").read_text())
    v = summary["verdict"]
    assert not v["kept"] and v["max_lag_ns"] == 1 and v["late"] > 0
    assert sum(v["late_by_cause"].values()) == v["late"]
    assert json.loads((out / "run.json").read_text())["result"]["exit"] == "goals not met"


def test_strict_exits_0_when_the_schedule_was_kept(tmp_path):
    """A slow, easy run (40 req/s, the null transport) with a generous --max-lag keeps its
    schedule: --strict exits 0 and the summary says kept."""
    proc, out = _run(tmp_path, "--max-lag", "1s", "--strict")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "verdict   schedule kept: lag p99 " in proc.stdout and "<= 1s, 0 lost" in proc.stdout
    assert json.loads((out / "summary.json").read_text())["verdict"]["kept"]


def test_a_threshold_not_met_exits_5(tmp_path):
    """Without --strict, a threshold not met exits 5; every threshold is printed as met or
    not with its value (or why it has none), and summary.json lists them."""
    proc, out = _run(tmp_path, "--threshold", "errors<1%", "--threshold", "rate.sent>=1000000",
                     "--threshold", "latency{target=nowhere}.p99<1s")
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert "threshold errors<1%: met (0.00%)" in lines
    sent = next(line for line in lines if line.startswith("threshold rate.sent>=1000000"))
    assert sent.startswith("threshold rate.sent>=1000000: NOT met (") and sent.endswith(" req/s)")
    assert ("threshold latency{target=nowhere}.p99<1s: NOT met (no target named 'nowhere' "
            "(targets: svc))") in lines
    assert "run failed its goals: threshold rate.sent>=1000000: NOT met" in proc.stderr
    results = json.loads((out / "summary.json").read_text())["thresholds"]
    assert [(r["expr"], r["met"]) for r in results] == [
        ("errors<1%", True), ("rate.sent>=1000000", False),
        ("latency{target=nowhere}.p99<1s", False)]
    assert results[0]["value"] == 0 and 30 < results[1]["value"] < 50


def test_a_malformed_threshold_exits_2_before_anything_is_sent(tmp_path):
    """A malformed threshold is one line on stderr naming the expression, the place and the
    accepted form; exit 2, nothing on stdout, no run directory."""
    proc, out = _run(tmp_path, "--threshold", "latency.p99<500ms", "--threshold",
                     "latency.p99<5 parsecs")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("replayer: error: --threshold 'latency.p99<5 parsecs': latency "
                                  "is a duration: give ns, us, µs, ms or s, not 'parsecs' at "
                                  "character 14; the form is METRIC")
    assert not out.exists()


def test_a_run_where_every_request_failed_says_so(tmp_path):
    """Every request refused (nobody listens on the port): the summary warns that all failed
    and the run exits 0; with --strict it exits 5."""
    port = str(free_port())
    args = ("--protocol", "http", "--resolve", "*=127.0.0.1", "-port", port)
    out_default = tmp_path / "default"
    proc = replayer("run", "-traceFile", str(_load(tmp_path, 10)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "1", "--out", str(out_default), "-latf", "",
                    *args, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "warning   every one of the 10 requests failed (connect 10)" in proc.stdout
    assert "verdict   schedule NOT kept: 10 of 10 requests never sent (connect 10)" in proc.stdout
    assert json.loads((out_default / "summary.json").read_text())["all_failed"] is True
    strict = replayer("run", "-traceFile", str(_load(tmp_path, 10)), "-min=false", "-duration",
                      "1", "-warmup", "0", "-workers", "1", "--out", str(tmp_path / "strict"),
                      "-latf", "", "--strict", *args, timeout=60)
    assert strict.returncode == 5, (strict.stdout, strict.stderr)
    assert "every one of the 10 requests failed (connect 10)" in strict.stderr

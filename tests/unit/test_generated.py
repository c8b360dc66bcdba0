"""Runs without a trace file: the times, rates and ramps their options are written in, which
kind of run the options ask for, and the one-line errors (exit 2) for options that do not go
together, given on the command line."""
from __future__ import annotations

import pytest

from replayer.cli import main
from replayer.errors import InputError
from replayer.run.generated import (SHAPE, TRACE, USERS, load_kind, parse_ramp, parse_rate,
                                    parse_timespan_ns, units_or_time)
from replayer.run.options import RunOptions

S = 1_000_000_000


@pytest.mark.parametrize("text, bare, ns", [
    ("30s", False, 30 * S), ("10m", False, 600 * S), ("1h30m", False, 5400 * S),
    ("1.5s", False, 1500_000_000), ("250ms", False, 250_000_000), ("2m30s", False, 150 * S),
    ("90", True, 90 * S), ("0.5", True, S // 2), ("100us", False, 100_000),
])
def test_timespans(text, bare, ns):
    """Locust's -t and vegeta's -duration spellings; a plain number only where it means
    seconds (Locust's -t)."""
    assert parse_timespan_ns(text, "--x", bare_seconds=bare) == ns


@pytest.mark.parametrize("text, words", [
    ("30", "ambiguous: give its unit"), ("10x", "with its unit"), ("", "with its unit"),
    ("s", "with its unit"), ("0s", "more than 0"), ("400d", "with its unit"),
    ("9999h", "less than a year"),
])
def test_bad_timespans(text, words):
    with pytest.raises(InputError, match=words):
        parse_timespan_ns(text, "--duration")


@pytest.mark.parametrize("text, per_s", [
    ("1000", 1000.0), ("1000/s", 1000.0), ("1000/1s", 1000.0), ("50/100ms", 500.0),
    ("600/1m", 10.0), ("600/m", 10.0), ("2.5", 2.5),
])
def test_rates(text, per_s):
    """vegeta's -rate: a count per a time, per second by default."""
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text", ["0", "-5", "x", "10/0s", "10/x", "100000000"])
def test_bad_rates(text):
    with pytest.raises(InputError, match="--rate"):
        parse_rate(text)


def test_ramp_points():
    """k6's stages as points: a rate at each time, linear in between; equal times: a step."""
    assert parse_ramp("0:100,30s:1000,60s:1000") == [(0, 100.0), (30 * S, 1000.0),
                                                     (60 * S, 1000.0)]
    assert parse_ramp("0:0, 1s:10, 1s:50, 2s:50")[1:3] == [(S, 10.0), (S, 50.0)]


@pytest.mark.parametrize("text, words", [
    ("10s:5,20s:5", "the first at 0"), ("0:5", "at least two points"),
    ("0:5,10s:x", "point 2"), ("0:5,10s:5,5s:5", "must not go back"),
    ("0:0,10s:0", "every rate is 0"), ("0:5,10:5", "point 2"), ("0-5", "point 1"),
])
def test_bad_ramps(text, words):
    with pytest.raises(InputError, match=words):
        parse_ramp(text)


def test_duration_takes_units_or_a_time():
    assert units_or_time("8") == 8 and units_or_time("30s") == "30s"
    with pytest.raises(ValueError):
        units_or_time("30 seconds")


def test_kinds_of_run():
    assert load_kind(RunOptions()) == TRACE
    assert load_kind(RunOptions(users=3, host="http://h:1", run_time="5")) == USERS
    assert load_kind(RunOptions(rate="10", duration="2s", url="http://h:1/")) == SHAPE
    assert load_kind(RunOptions(ramp="0:1,2s:5", url="http://h:1/")) == SHAPE


def test_generated_runs_send_http():
    """--protocol's default (grpc, the invoker's) becomes http without a trace; null stays."""
    assert RunOptions(rate="10", duration="1s", url="http://h:1/").protocol == "http"
    assert RunOptions(users=2, host="http://h:1", protocol="null").protocol == "null"


BAD = [
    (["-u", "5"], "give the users' --host"),
    (["--rate", "100", "--url", "http://127.0.0.1:9/"], "give how long, e.g. --duration 30s"),
    (["--rate", "100", "--duration", "30", "--url", "http://127.0.0.1:9/"],
     "-duration 30: with --rate, give the time with its unit"),
    (["--rate", "100", "--duration", "1s"], "give --url URL or --targets FILE"),
    (["--rate", "100", "--duration", "1s", "--url", "ftp://x/"], "http:// or https://"),
    (["-u", "5", "--host", "http://h:1", "--rate", "10"], "not both"),
    (["-traceFile", "x.json", "--rate", "10", "--duration", "1s", "--url", "http://h:1/"],
     "replays a trace or generates its load"),
    (["--ramp", "0:1,5s:2", "--duration", "5s", "--url", "http://h:1/"],
     "the ramp's last point is its end"),
    (["--rate", "10", "--ramp", "0:1,5s:2", "--url", "http://h:1/"], "give one"),
    (["-u", "5", "--host", "http://h:1", "-duration", "10m"], "lasts -t/--run-time"),
    (["-u", "5", "--host", "http://h:1", "--url", "http://h:1/"], "users send to --host"),
    (["--rate", "10", "--duration", "2s", "--url", "http://h:1/", "-u", "0", "-H", "http://x"],
     "for --users runs"),
    (["--host", "http://h:1"], "only for a run without a trace file"),
    (["-t", "5s"], "only for a run without a trace file"),
    (["-duration", "30s"], "replaying a trace, -duration counts trace units"),
    (["-u", "5", "--host", "http://h:1", "--warmup", "2"], "give the warm-up with its unit"),
    (["-u", "5", "--host", "http://h:1", "-t", "2s", "--warmup", "5s"], "nothing would be measured"),
    (["-u", "5", "--host", "http://h:1", "-c", "nosuch"], "--user-class 'nosuch'"),
    (["-u", "5", "--host", "http://h:1", "-c", "trace"], "--trace-bodies FILE"),
    (["-u", "5", "--host", "http://h:1", "--wait-time", "between(3, 1)"], "A <= B"),
    (["-u", "5", "--host", "http://h:1", "--wait-time", "sometimes(1)"], "expected constant"),
    (["-u", "5", "--host", "http://h:1", "--wait-time", "trace=constant(1)"], "no trace users"),
    (["-u", "5", "--host", "http://h:1", "--class-weights", "stochastic=0"], "more than 0"),
    (["-u", "5", "--host", "http://h:1", "--path", "s0"], "starting with /"),
    (["-u", "5", "--host", "http://h:1", "-r", "0"], "--spawn-rate 0"),
    (["-u", "5", "--host", "http://h:1", "--time-scale", "2"], "--time-scale and --users"),
    (["-u", "5", "--host", "http://h:1", "--stages", "2"], "--stages and --users"),
    (["-u", "5", "--host", "http://h:1", "--shard", "0/2"], "each node runs its own users"),
    (["-u", "2", "--host", "http://h:1", "--csv", "/proc/nope/x", "-latf", ""],
     "--csv /proc/nope/x: cannot write /proc/nope/x_stats.csv"),
]


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_combinations_are_one_line(args, words, capsys):
    """Options that do not go together, or do not parse: exit 2, one line naming them."""
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("replayer: error: "), err
    assert words in err[0], err[0]

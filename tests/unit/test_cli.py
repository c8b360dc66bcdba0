"""The commands' own options as `replayer`'s command line and environment give them: the
vSwarm invoker's flags, spellings and defaults, long names, environment variables scoped to
their command, --help and --version, and random option values either parsed into options
within their bounds or refused with one line."""
from __future__ import annotations

import math

import pytest
from hypothesis import given

from input_cases import IN_PROCESS, run_option_pairs, serve_option_pairs
from report_fixtures import make_run
from replayer import __version__
from replayer.cli import build_options, build_parser, main
from replayer.errors import InputError
from replayer.loopback.faults import GRPC_KINDS, HTTP_KINDS
from replayer.run import options as run_options
from replayer.run.options import RunOptions


def parse(*argv, env=None):
    parser = build_parser()
    ns = parser.parse_args(["run", *argv])
    return build_options(RunOptions, ns, environ=env or {})


def test_invoker_flags():
    """The invoker's Go-style flags set the same options as in the invoker."""
    o = parse("-traceFile", "x.json", "-duration", "3", "-warmup", "1", "-port", "8080",
              "-grpcTimeout", "5", "-latf", "lat.csv", "-dbg", "-workers", "4")
    assert (o.trace_file, o.duration, o.warmup, o.port, o.timeout, o.latf, o.dbg, o.workers) == \
        ("x.json", 3, 1, 8080, 5.0, "lat.csv", True, 4)


@pytest.mark.parametrize("argv, expected", [
    ((), True), (("-min",), True), (("-min=false",), False), (("-min", "false"), False),
    (("-min", "true"), True), (("-min=0",), False), (("--minute", "false"), False),
    (("--min=false",), False),
])
def test_go_style_booleans(argv, expected):
    """-min alone, -min=false, -min false, -min=0 and the long spellings, as Go parses them."""
    assert parse(*argv).minute is expected


def test_long_spellings_and_lists():
    """--long-names work too; repeatable options (--resolve, --header) collect every value."""
    o = parse("--trace-file", "y.json", "--workers", "2", "--resolve", "a=127.0.0.1",
              "--resolve", "*=127.0.0.2", "--header", "X-A: 1", "--spin-us", "20", "--no-pin",
              "--max-inflight", "64", "--protocol", "http", "--url-template", "http://{endpoint}/x")
    assert o.trace_file == "y.json" and o.workers == 2 and o.no_pin
    assert o.resolve == ["a=127.0.0.1", "*=127.0.0.2"]
    assert o.header == ["X-A: 1"] and o.spin_us == 20 and o.max_inflight == 64


def test_environment_fills_what_the_command_line_leaves():
    """REPLAYER_<FIELD> fills what the command line leaves; the command line wins."""
    o = parse("-workers", "3", env={"REPLAYER_WORKERS": "7", "REPLAYER_DURATION": "2",
                                    "REPLAYER_MINUTE": "false"})
    assert o.workers == 3 and o.duration == 2 and o.minute is False


def test_defaults_match_the_invoker():
    """With no flag, the invoker's defaults: load.json, 8 + 2 minutes, port 80, 30 s, gRPC
    (-warmup and -duration resolve to 2 and 8 unless a schedule asks to be replayed whole)."""
    from replayer.run.plan import replayed_units, run_units

    o = parse()
    assert (o.trace_file, o.minute, o.port, o.timeout, o.protocol) == \
        ("load.json", True, 80, 30.0, "grpc")
    assert run_units(o, {}, 100) == (2, 8) and replayed_units(o) == 10
    assert run_units(o, {"replay": "whole"}, 100) == (0, 100)
    assert run_units(parse("-duration", "3"), {"replay": "whole"}, 100) == (0, 3)


def test_validation_names_the_option():
    """A value the options refuse is an InputError naming the option as spelt, and the value."""
    with pytest.raises(InputError, match="-warmup -1"):
        parse("-warmup", "-1")


def test_latf_defaults_to_the_invokers_lat_csv():
    """-latf defaults to lat.csv (the invoker always writes rps_lat.csv); '' writes none."""
    assert parse().latf == "lat.csv" and parse("-latf", "").latf == ""


def test_environment_variables_belong_to_their_command():
    """`run` reads REPLAYER_<FIELD>; every other command REPLAYER_<COMMAND>_<FIELD>, and
    never run's (REPLAYER_OUT must not steer a report)."""
    from replayer.generate.azure import AzureGenOptions
    from replayer.analysis.report import ReportOptions
    env = {"REPLAYER_OUT": "run-dir", "REPLAYER_SEED": "1", "REPLAYER_REPORT_OUT": "rep",
           "REPLAYER_GEN_AZURE_SEED": "7"}
    parser = build_parser()
    report = build_options(ReportOptions, parser.parse_args(["report", "r"]), env, "report")
    assert report.out == "rep"
    gen = build_options(AzureGenOptions, parser.parse_args(["gen", "azure"]), env, "gen azure")
    assert gen.seed == 7
    assert build_options(ReportOptions, parser.parse_args(["report", "r"]), {"REPLAYER_OUT": "x"},
                         "report").out is None
    assert parse(env=env).out == "run-dir"


def test_help_lists_each_commands_own_variables(capsys):
    """A command's --help names its own environment variables."""
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "REPLAYER_REPORT_OUT" in out and "[env REPLAYER_OUT]" not in out


def test_version(capsys):
    """replayer --version prints the package version."""
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"replayer {__version__}"


def test_run_help_is_grouped_with_examples(capsys):
    """`replayer run --help`: options under schedule, load without a trace file, target,
    protocol, pacing, output, reliability, verdict, distributed runs and live control headings
    (in that order, each option once), and two example command lines."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    headings = [line.split(" (")[0] for line in out.splitlines()
                if line and not line.startswith(" ") and line.endswith("):")]
    titles = {key: title.split(" (")[0] for key, title in RunOptions.option_groups.items()}
    assert headings == [titles[k] for k in ("schedule", "load", "target", "protocol", "pacing",
                                            "output", "reliability", "verdict", "distributed",
                                            "live")]
    examples = out.split("examples:")[1].split("options:")[0]
    assert examples.count("replayer run ") == 2 and "--local-target" in examples
    assert "-warmup 2 -duration 8" in examples
    sections = out.split("\nschedule (", 1)[1]
    for flag in ("--trace-file", "--port", "--protocol", "--workers", "--latf", "--timeout"):
        assert sections.count(f"  {flag} ") + sections.count(f"  {flag},") == 1, flag
    assert sections.index("--duration") < sections.index("\ntarget (")
    assert sections.index("--workers") > sections.index("\npacing (")


def _parse_command(argv: list[str]):
    parser = build_parser(argv)
    ns = parser.parse_args(argv)
    return build_options(ns._options, ns, environ={})


@IN_PROCESS
@given(pairs=run_option_pairs)
def test_run_option_values_parse_or_say_why(pairs):
    """Random values for `replayer run`'s options: one error line, or options within the
    bounds the pacer's C types and the clock rely on (finite times, counts in range)."""
    try:
        o = _parse_command(["run"] + [x for pair in pairs for x in pair])
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 <= o.workers <= run_options.MAX_WORKERS
    assert (o.duration is None or o.duration >= 1) and (o.warmup is None or o.warmup >= 0)
    assert 0 < o.port < 65536 and 10 <= o.flush_ms <= 60_000
    assert math.isfinite(o.timeout) and 0 < o.timeout <= run_options.MAX_TIMEOUT_S
    assert run_options.MIN_TIME_SCALE <= o.time_scale <= run_options.MAX_TIME_SCALE
    assert 0 <= o.spin_us <= run_options.MAX_SPIN_US
    assert 1 <= o.max_inflight <= run_options.MAX_INFLIGHT
    assert o.start_at is None or 0 < o.start_at < run_options.MAX_UNIX_TIME


@IN_PROCESS
@given(pairs=serve_option_pairs)
def test_serve_option_values_parse_or_say_why(pairs):
    """Random values for `replayer serve`'s options: one error line, or ports, statuses and
    fault rules the servers can use (each protocol's shares adding up to at most 1)."""
    try:
        o = _parse_command(["serve"] + [x for pair in pairs for x in pair])
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert -1 <= o.http_port < 65536 and -1 <= o.grpc_port < 65536
    assert 100 <= o.status <= 599 and 0 <= o.grpc_code <= 16
    for kinds in (HTTP_KINDS, GRPC_KINDS):
        shares = [r.share for r in o.fault_rules if r.kind in kinds and r.path is None]
        assert sum(shares) <= 1 + 1e-9


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", n=2000, workers=1)


def test_run_environment_leaves_report_and_export_alone(synthetic_run, tmp_path, monkeypatch,
                                                        capsys):
    """REPLAYER_OUT is `replayer run`'s: a report and an export write to their own defaults
    under the run directory; REPLAYER_REPORT_OUT is the report's."""
    run_dir = synthetic_run.run_dir
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("REPLAYER_OUT", str(elsewhere))
    monkeypatch.setenv("REPLAYER_FORMAT", "parquet")
    before = (run_dir / "run.json").read_bytes()
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    assert (run_dir / "report" / "summary.json").exists()
    assert main(["export", str(run_dir)]) == 0
    assert (run_dir / "records.csv").exists()              # csv: REPLAYER_FORMAT is not export's
    assert not elsewhere.exists() and (run_dir / "run.json").read_bytes() == before
    monkeypatch.setenv("REPLAYER_REPORT_OUT", str(tmp_path / "report"))
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    assert (tmp_path / "report" / "summary.json").exists()
    capsys.readouterr()

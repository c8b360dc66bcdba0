"""Every option is declared once and spelt both ways: Go-flag invoker style and --long-name."""
from __future__ import annotations

import pytest

from replayer.cli import build_options, build_parser
from replayer.run.options import RunOptions
from replayer.errors import InputError


def parse(*argv, env=None):
    parser, _ = build_parser()
    ns = parser.parse_args(["run", *argv])
    return build_options(RunOptions, ns, environ=env or {})


def test_invoker_flags():
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
    assert parse(*argv).minute is expected


def test_long_spellings_and_lists():
    o = parse("--trace-file", "y.json", "--workers", "2", "--resolve", "a=127.0.0.1",
              "--resolve", "*=127.0.0.2", "--header", "X-A: 1", "--spin-us", "20", "--no-pin",
              "--max-inflight", "64", "--protocol", "http", "--url-template", "http://{endpoint}/x")
    assert o.trace_file == "y.json" and o.workers == 2 and o.no_pin
    assert o.resolve_map == {"a": "127.0.0.1", "*": "127.0.0.2"}
    assert o.headers == ["X-A: 1"] and o.spin_us == 20 and o.max_inflight == 64


def test_environment_fills_what_the_command_line_leaves():
    o = parse("-workers", "3", env={"REPLAYER_WORKERS": "7", "REPLAYER_DURATION": "2",
                                    "REPLAYER_MINUTE": "false"})
    assert o.workers == 3 and o.duration == 2 and o.minute is False


def test_defaults_match_the_invoker():
    o = parse()
    assert (o.trace_file, o.duration, o.warmup, o.minute, o.port, o.timeout, o.protocol) == \
        ("load.json", 8, 2, True, 80, 30.0, "grpc")


def test_validation_names_the_option():
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
    parser, _ = build_parser()
    report = build_options(ReportOptions, parser.parse_args(["report", "r"]), env, "report")
    assert report.out == "rep"
    gen = build_options(AzureGenOptions, parser.parse_args(["gen", "azure"]), env, "gen azure")
    assert gen.seed == 7
    assert build_options(ReportOptions, parser.parse_args(["report", "r"]), {"REPLAYER_OUT": "x"},
                         "report").out is None
    assert parse(env=env).out == "run-dir"


def test_help_lists_each_commands_own_variables(capsys):
    """A command's --help names its own environment variables."""
    from replayer.cli import main
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "REPLAYER_REPORT_OUT" in out and "[env REPLAYER_OUT]" not in out


def test_version(capsys):
    """replayer --version prints the package version."""
    from replayer import __version__
    from replayer.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"replayer {__version__}"


def test_run_help_is_grouped_with_examples(capsys):
    """`replayer run --help`: options under schedule, target, protocol, pacing, output and
    reliability headings (in that order, each option once), and two example command lines."""
    from replayer.cli import main
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    headings = [line.split(" (")[0] for line in out.splitlines()
                if line and not line.startswith(" ") and line.endswith("):")]
    assert headings == ["schedule", "target", "protocol", "pacing", "output", "reliability"]
    examples = out.split("examples:")[1].split("options:")[0]
    assert examples.count("replayer run ") == 2 and "--local-target" in examples
    assert "-warmup 2 -duration 8" in examples
    sections = out.split("\nschedule (", 1)[1]
    for flag in ("--trace-file", "--port", "--protocol", "--workers", "--latf", "--timeout"):
        assert sections.count(f"  {flag} ") + sections.count(f"  {flag},") == 1, flag
    assert sections.index("--duration") < sections.index("\ntarget (")
    assert sections.index("--workers") > sections.index("\npacing (")

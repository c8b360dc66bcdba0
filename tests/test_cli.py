"""Every option is declared once and spelt both ways: Go-flag invoker style and --long-name."""
from __future__ import annotations

import pytest

from replayer.cli import build_options, build_parser
from replayer.config import RunOptions
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

"""Declaring an option once (replayer.options) and what replayer.cli derives from the
declaration: its flag spellings, its environment variable per command, Go-style booleans,
repeatable options, help text, and the one-line errors for bad values, checked on a small
options class of the test's own."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io

import pytest

from replayer.cli import add_options, build_options, main
from replayer.errors import InputError
from replayer.options import env_name, env_prefix, flag_names, opt, parse_bool


@dataclasses.dataclass
class Toy:
    """A command's options, as a command declares them."""
    trace_file: str = opt("load.json", "trace", alias="traceFile", metavar="PATH")
    workers: int = opt(0, "workers", alias="workers")
    minute: bool = opt(True, "minutes", alias="min")
    ratio: float = opt(1.0, "ratio", short="r")
    header: list[str] = opt(None, "header", default_factory=list)
    mode: str = opt("a", "mode", choices=["a", "b"])
    secret: str = opt("", "not from the environment", env=False)
    run_dir: str = opt(None, "run directory", positional=True)

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError(f"-workers {self.workers}: must be 0 or more")


def _parse(argv, environ=None, command="toy"):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, Toy, command)
    return build_options(Toy, parser.parse_args(argv), environ or {}, command)


@pytest.mark.parametrize("text, value", [
    ("1", True), ("t", True), ("TRUE", True), (" yes ", True), ("y", True), ("on", True),
    ("0", False), ("f", False), ("False", False), ("no", False), ("n", False), ("off", False),
])
def test_parse_bool_takes_go_flag_spellings(text, value):
    """Booleans are spelt as Go's flag package (and the vSwarm invoker) spells them, in any
    case, blanks around them ignored."""
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "yess", "-1"])
def test_parse_bool_refuses_anything_else(text):
    """Anything else is a ValueError saying how to spell a boolean."""
    with pytest.raises(ValueError, match="use true or false"):
        parse_bool(text)


def test_flag_names_long_alias_and_short():
    """A field gives --long-name; an alias adds -alias and --alias (Go takes both), never the
    same spelling twice; a short name adds -s."""
    fields = {f.name: f for f in dataclasses.fields(Toy)}
    assert flag_names(fields["trace_file"]) == ["--trace-file", "-traceFile", "--traceFile"]
    assert flag_names(fields["workers"]) == ["--workers", "-workers"]
    assert flag_names(fields["minute"]) == ["--minute", "-min", "--min"]
    assert flag_names(fields["ratio"]) == ["--ratio", "-r"]
    assert flag_names(fields["mode"]) == ["--mode"]


@pytest.mark.parametrize("command, prefix", [
    ("run", "REPLAYER_"), ("report", "REPLAYER_REPORT_"), ("gen azure", "REPLAYER_GEN_AZURE_"),
    ("serve", "REPLAYER_SERVE_"), ("gen-x y", "REPLAYER_GEN_X_Y_"),
])
def test_environment_variables_are_named_per_command(command, prefix):
    """`run` keeps the bare prefix; every other command's variables carry its words."""
    assert env_prefix(command) == prefix
    field = next(f for f in dataclasses.fields(Toy) if f.name == "trace_file")
    assert env_name(command, field) == f"{prefix}TRACE_FILE"


def test_every_spelling_reaches_the_field():
    """Long names, aliases in both spellings, the short name and Go-style booleans all set the
    same fields; a repeatable option collects every value; the positional is taken as is."""
    a = _parse(["-traceFile", "x.json", "-workers", "3", "-min=false", "-r", "0.5",
                "--header", "A: 1", "--header", "B: 2", "--mode", "b", "dir"])
    b = _parse(["--trace-file", "x.json", "--workers", "3", "--min", "false", "--ratio", "0.5",
                "--header", "A: 1", "--header", "B: 2", "--mode=b", "dir"])
    assert a == b == Toy(trace_file="x.json", workers=3, minute=False, ratio=0.5,
                         header=["A: 1", "B: 2"], mode="b", run_dir="dir")
    assert _parse(["dir", "-min"]).minute is True
    assert _parse(["dir"]) == Toy(run_dir="dir")


def test_the_environment_fills_what_the_command_line_leaves():
    """The command's own variables fill unset fields, converted as their flags are (a list
    field gets a one-item list); the command line wins; env=False fields ignore the
    environment, and another command's variables are not read."""
    environ = {"REPLAYER_TOY_WORKERS": "4", "REPLAYER_TOY_MINUTE": "off",
               "REPLAYER_TOY_HEADER": "C: 3", "REPLAYER_TOY_SECRET": "s",
               "REPLAYER_TRACE_FILE": "run-only.json", "REPLAYER_TOY_RATIO": "2"}
    o = _parse(["-r", "0.25", "dir"], environ)
    assert (o.workers, o.minute, o.header, o.ratio) == (4, False, ["C: 3"], 0.25)
    assert o.secret == "" and o.trace_file == "load.json"
    assert _parse(["dir"], environ, command="run").trace_file == "run-only.json"


@pytest.mark.parametrize("environ, words", [
    ({"REPLAYER_TOY_WORKERS": "many"}, "environment REPLAYER_TOY_WORKERS='many'"),
    ({"REPLAYER_TOY_MINUTE": "maybe"}, "environment REPLAYER_TOY_MINUTE='maybe'"),
    ({"REPLAYER_TOY_WORKERS": "-2"}, "-workers -2: must be 0 or more"),
])
def test_bad_values_are_one_line_naming_the_source(environ, words):
    """A variable that does not convert is named with its value; a value the options refuse is
    the options' own message; both as InputError (one line, exit 2 in the CLI)."""
    with pytest.raises(InputError) as exc:
        _parse(["dir"], environ)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_help_names_defaults_and_variables():
    """Each option's help says its default (when it has one worth saying) and its
    environment variable; an env=False option names none."""
    parser = argparse.ArgumentParser()
    add_options(parser, Toy, "toy")
    text = " ".join(parser.format_help().split())
    assert "trace (default: load.json) [env REPLAYER_TOY_TRACE_FILE]" in text
    assert "workers [env REPLAYER_TOY_WORKERS]" in text
    assert "not from the environment" in text and "REPLAYER_TOY_SECRET" not in text


@pytest.mark.parametrize("delay", ["-1", "nan", "inf", "1e12"])
def test_serve_refuses_a_delay_it_could_not_keep(delay):
    """`replayer serve --delay-ms` takes 0 to a day: a negative, infinite or NaN delay is one
    line naming the option (NaN passed the old `< 0` check and hung every request)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["serve", "--delay-ms", delay]) == 2
    assert err.getvalue().count("\n") == 1 and "--delay-ms" in err.getvalue()

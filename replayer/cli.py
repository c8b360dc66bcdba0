"""The command line: argv and environment into config dataclasses, nothing else.

Each command (COMMANDS) wires an options dataclass to its handler. Options are declared once as dataclass
fields (replayer.options.opt); this module derives every spelling, the help heading, the
environment variable (replayer.options.env_name: REPLAYER_<FIELD> for run,
REPLAYER_<COMMAND>_<FIELD> for the others), and the one-line error with exit code 2 for bad
input.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import types
import typing


# Every command's room is imported up front, so the wiring below is plain imports. Measured:
# `replayer run --help` takes 0.23 s with the run's own imports and 0.28 s with every room's
# (scipy and matplotlib are imported inside the report functions that plot), so deferring
# imports would buy nothing worth hiding the wiring for.
from replayer import __version__
from replayer.analysis.export import ExportOptions, export_command
from replayer.analysis.report import CompareOptions, ReportOptions, compare_command, report_command
from replayer.cluster.k8s import K8sJobOptions, k8s_job_command
from replayer.cluster.merge import MergeOptions, merge_command
from replayer.errors import InputError, exit_code_of
from replayer.generate.azure import AzureGenOptions, gen_azure_command
from replayer.generate.classes import ClassesGenOptions, gen_classes_command
from replayer.generate.coverage_plot import PlotOptions, plot_command
from replayer.generate.hourly import HourlyOptions, gen_hourly_command
from replayer.jobs.hourly import HourlyJobOptions, hourly_command
from replayer.loopback.serve import ServeOptions, serve_command
from replayer.options import env_name, flag_names, parse_bool
from replayer.run.options import RunOptions
from replayer.run.stages import take_stage_args
# `replayer run`: on this machine, or with --ray across a cluster (replayer.cluster).
from replayer.cluster.ray_driver import run_command


@dataclasses.dataclass(frozen=True)
class Command:
    name: str                   # its words on the command line ("gen azure")
    help: str
    options: type               # its options dataclass
    handler: typing.Callable[[typing.Any], int | None]


COMMANDS = (
    Command("run", "replay a trace (vSwarm load.json or a columnar schedule) across pinned "
            "workers", RunOptions, run_command),
    Command("serve", "start the built-in HTTP and gRPC target on loopback", ServeOptions, serve_command),
    Command("gen azure", "turn an Azure Functions trace into a load (load.json + columnar "
            "schedule) with proxy mapping", AzureGenOptions, gen_azure_command),
    Command("gen classes", "the priority inference load: 9 tier x SLO classes, Poisson "
            "arrivals, a deadline and a fresh tensor per request (MLPerf LoadGen's Server "
            "scenario per class)", ClassesGenOptions, gen_classes_command),
    Command("gen hourly", "write one hour of the serverless mix (minute slots, deterministic "
            "jitter, scenarios A/B/C) as a schedule and its plan", HourlyOptions,
            gen_hourly_command),
    Command("hourly", "run one hour of the serverless mix as a job, configured by the "
            "environment, with one JSON line per invocation", HourlyJobOptions, hourly_command),
    Command("plot", "plot how well the proxies cover an Azure Functions trace (PNG histograms)",
            PlotOptions, plot_command),
    Command("export", "write a run's records as csv, parquet, jsonl, the invoker's rps_lat.csv "
            "or Locust's CSVs", ExportOptions, export_command),
    Command("report", "summarise a run: table, summary.json, plots, HTML report, HdrHistogram "
            "logs", ReportOptions, report_command),
    Command("compare", "compare two runs side by side with ratios", CompareOptions, compare_command),
    Command("merge", "merge the run directories of one schedule's shards (--shard I/N) into one "
            "run", MergeOptions, merge_command),
    Command("k8s-job", "write the Kubernetes Indexed Job that replays one schedule from N nodes "
            "(one shard each, one start time) and the Job that merges them", K8sJobOptions,
            k8s_job_command),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def _field_type(field: dataclasses.Field, hints: dict):
    meta_type = field.metadata.get("type")
    if meta_type is not None:
        return meta_type
    t = hints[field.name]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        t = args[0]
    if typing.get_origin(t) is list:
        t = typing.get_args(t)[0]
    return t


def _option_groups(parser: argparse.ArgumentParser, options_cls) -> dict:
    """The --help headings the options class declares (option_groups: name -> title), in
    its order."""
    return {name: parser.add_argument_group(title)
            for name, title in getattr(options_cls, "option_groups", {}).items()}


def add_options(parser: argparse.ArgumentParser, options_cls, command: str = "run") -> None:
    hints = typing.get_type_hints(options_cls)
    groups = _option_groups(parser, options_cls)
    for field in dataclasses.fields(options_cls):
        meta = field.metadata
        if "help" not in meta:
            continue
        container = groups[meta["group"]] if meta.get("group") else parser
        ftype = _field_type(field, hints)
        default = (field.default if field.default is not dataclasses.MISSING
                   else field.default_factory() if field.default_factory is not dataclasses.MISSING
                   else None)
        help_text = meta["help"]
        if default not in (None, "", [], False):
            # argparse drops SUPPRESSed defaults before formatting help: write the value in.
            help_text += f" (default: {str(default).replace('%', '%%')})"
        if meta.get("env"):
            help_text += f" [env {env_name(command, field)}]"
        kwargs = dict(help=help_text, default=argparse.SUPPRESS)
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("positional"):
            if typing.get_origin(hints[field.name]) is list:
                kwargs["nargs"] = "*"          # every word left (replayer merge DIR...)
            container.add_argument(field.name, type=ftype, **kwargs)
            continue
        if meta.get("action") in ("store_true", "store_false"):
            kwargs["action"] = meta["action"]
        elif hints[field.name] is bool:
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
        elif meta.get("action") == "append" or typing.get_origin(hints[field.name]) is list:
            kwargs.update(action="append", type=ftype)
        else:
            kwargs["type"] = ftype
            if meta.get("const") is not None:      # a value that may be left out (--ray)
                kwargs.update(nargs="?", const=meta["const"])
        container.add_argument(*flag_names(field), dest=field.name, **kwargs)


def build_options(options_cls, namespace: argparse.Namespace, environ=None, command: str = "run"):
    """Command line first, then the command's own environment variables (env_name), then
    the field default."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(options_cls)
    values = {}
    for field in dataclasses.fields(options_cls):
        if field.name in vars(namespace):
            values[field.name] = getattr(namespace, field.name)
            continue
        meta = field.metadata
        var = env_name(command, field)
        # A tool's own variable (env_var) set empty counts as unset, as in that tool.
        if meta.get("env") and var in environ and not (meta.get("env_var") and not environ[var]):
            raw = environ[var]
            conv = parse_bool if hints[field.name] is bool else _field_type(field, hints)
            try:
                value = conv(raw)
            except (TypeError, ValueError) as exc:
                raise InputError(f"environment {var}={raw!r}: {exc}") from None
            values[field.name] = [value] if typing.get_origin(hints[field.name]) is list else value
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _selected(argv: list[str] | None) -> str | None:
    """The subcommand argv names (its leading words): only its options are added to the
    parser."""
    if argv is None:
        return None
    for command in COMMANDS:
        words = command.name.split()
        if argv[:len(words)] == words:
            return command.name
    return ""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with argv, only the subcommand it names gets its options (None: all)."""
    selected = _selected(argv)
    parser = _Parser(prog="replayer", description="Trace replayer and open-loop load generator.",
                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"replayer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        name, help_text = command.name, command.help
        words = name.split()
        target = sub
        for i, word in enumerate(words[:-1]):
            key = " ".join(words[: i + 1])
            if key not in groups:
                p = target.add_parser(word, help=f"{word} subcommands", allow_abbrev=False)
                groups[key] = p.add_subparsers(dest=f"command_{i + 1}", metavar="SUBCOMMAND",
                                               parser_class=_Parser)
            target = groups[key]
        if selected is not None and selected != name:
            target.add_parser(words[-1], help=help_text, add_help=False)
            continue
        options_cls, handler = command.options, command.handler
        p = target.add_parser(words[-1], help=help_text,
                              description=inspect.cleandoc(options_cls.__doc__ or ""),
                              allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_options(p, options_cls, name)
        p.set_defaults(_options=options_cls, _handler=handler, _command=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    # `run`'s --stage.K.OPTION arguments have names no parser declares (the runner's dotted
    # overrides): taken out here, read by replayer.run.stages.
    stage_args: list[str] = []
    if _selected(argv) == "run":
        argv, stage_args = take_stage_args(argv)
    def command() -> int:
        ns = parser.parse_args(argv)
        if not hasattr(ns, "_handler"):
            parser.print_help()
            return 2
        if stage_args:
            ns.stage_args = stage_args
        options = build_options(ns._options, ns, command=ns._command)
        return int(ns._handler(options) or 0)
    try:
        return exit_code_of(command)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())

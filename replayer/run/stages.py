"""A run in stages, as the loadgen runner's (`--stages 6 --stage.duration 360
--stage.2.loadgen.faucet.interval 60`): one run directory (results/run-<unix time>/), one
folder per stage (stage-0/, stage-1/, ...), each a complete run directory of its own (run.json
with the stage's options, records, summary.json, perf.jsonl, control.jsonl) that `replayer
report` reads as any run's, and at the top a run.json with the plan of every stage and a
summary.json of the whole run (a line per stage, totals).

What a stage replays: the next -warmup + -duration units of the schedule after those the
stages before it replayed (the runner's stages follow each other in time: its chain and load
generator go on from one stage to the next), its first -warmup units marked warm-up, its
times counted from its own start. An idle stage (--stage.K.idle, the runner's chain-only)
replays nothing: it samples --monitor-pid processes for its duration. A negative duration
runs until interrupted: a load stage replays the rest of the schedule, an idle one monitors;
Ctrl-C ends that stage and the run goes on with the next. A Ctrl-C in any other stage stops
the run after that stage has drained (exit 130).

The overrides follow the runner's parser (yargs-parser): --stage.K.OPTION VALUE or
--stage.K.OPTION=VALUE overrides run option OPTION for stage K (kebab-case, the invoker's
spelling or camelCase: --stage.2.max-inflight, --stage.2.maxInflight, --stage.2.grpcTimeout),
a flag alone is true and --no-stage.K.OPTION false, numbers are numbers, and nested dots build
objects: --stage.K.control.rate 0.5, --stage.K.control.classes.urgent.weight 0 set the live
settings the stage starts with (the keys of PUT /config). --stage.OPTION (no K) is the
default of every stage, as --stage.duration. A bad override stops the run before anything
starts: one line naming the stage and the option, exit 2.
"""
from __future__ import annotations

import dataclasses
import json
import re
import signal
import threading
import time
import types
import typing
from pathlib import Path

from replayer import __version__
from replayer.errors import InputError, RunError
from replayer.options import flag_names, parse_bool
from replayer.run.live import ChangeError, ControlServer, Settings, apply_change
from replayer.run.monitor import PERF_LOG, PerfMonitor, check_pids
from replayer.run.options import RunOptions
from replayer.run.plan import INVOKER_WARMUP, units_text
from replayer.run.rundir import prepare_run_dir, redacted_options, run_dir_path, write_run_json
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, Schedule

# Options that are the run's, not a stage's: where it writes, what it reads and how, who may
# control it, how it is spread over nodes.
RUN_WIDE = ("out", "stages", "stage_args", "control_port", "control_address",
            "control_allow_remote", "trace_file", "minute", "shard", "start_at", "ray", "nodes",
            "users", "rate", "ramp", "url", "targets", "run_time")
IDLE_NAMES = ("idle", "chain-only", "chainOnly", "chain_only")


# ---------------------------------------------------------------- the command line


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def take_stage_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """argv without its --stage.* and --no-stage.* arguments, and those as "KEY=VALUE" (or
    "KEY" for a flag alone; --no-stage.KEY gives "KEY=false"), KEY after "--stage.". A value
    is the next argument unless it looks like an option (a negative number is a value)."""
    rest, taken = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        negated = arg.startswith("--no-stage.")
        if not (arg.startswith("--stage.") or negated):
            rest.append(arg)
            i += 1
            continue
        key = arg[len("--no-stage."):] if negated else arg[len("--stage."):]
        if negated:
            taken.append(f"{key}=false")
        elif "=" in key:
            taken.append(key)
        elif i + 1 < len(argv) and (not argv[i + 1].startswith("-") or _is_number(argv[i + 1])):
            taken.append(f"{key}={argv[i + 1]}")
            i += 1
        else:
            taken.append(key)
        i += 1
    return rest, taken


# ---------------------------------------------------------------- the stages' options


@dataclasses.dataclass
class Stage:
    index: int
    idle: bool = False
    duration: int | None = None      # units; negative: until interrupted; None: as a plain run
    warmup: int | None = None
    options: RunOptions | None = None
    overrides: dict = dataclasses.field(default_factory=dict)    # as given, for run.json
    control: dict = dataclasses.field(default_factory=dict)      # PUT /config body at start

    @property
    def until_interrupted(self) -> bool:
        return self.duration is not None and self.duration < 0


def _spellings() -> dict[str, dataclasses.Field]:
    """Every name a run option goes by: field name, kebab-case, the invoker's alias."""
    names = {}
    for f in dataclasses.fields(RunOptions):
        if "help" not in f.metadata:
            continue
        names[f.name] = f
        for flag in flag_names(f):
            names[flag.lstrip("-")] = f
    return names


def _field_of(name: str) -> tuple[dataclasses.Field | None, bool]:
    """The run option `name` sets and whether it is negated (no-NAME of a boolean)."""
    names = _spellings()
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("-", "_")
    for candidate in (name, snake):
        if candidate in names:
            return names[candidate], False
    for prefix in ("no-", "no_"):
        if name.startswith(prefix):
            f, negated = _field_of(name[len(prefix):])
            if f is not None and typing.get_type_hints(RunOptions)[f.name] is bool:
                return f, not negated
    return None, False


def _scalar(text: str | None):
    """A nested value as yargs-parser gives it: true/false, a number, else the text."""
    if text is None:
        return True
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _convert(f: dataclasses.Field, value: str | None, negated: bool, where: str):
    base = typing.get_type_hints(RunOptions)[f.name]
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if base is bool:
        if value is None:
            return not negated
        try:
            flag = parse_bool(value)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
        return flag != negated
    if value is None:
        raise InputError(f"{where}: needs a value, e.g. {where} VALUE")
    item = typing.get_args(base)[0] if typing.get_origin(base) is list else base
    try:
        converted = item(value)
    except (TypeError, ValueError):
        kind = {int: "an integer", float: "a number"}.get(item, "a value")
        raise InputError(f"{where} {value!r}: expected {kind}") from None
    return converted


def _set_nested(into: dict, path: list[str], value, where: str) -> None:
    for part in path[:-1]:
        node = into.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"{where}: {part} is given a value and keys at once")
        into = node
    into[path[-1]] = value


def parse_stages(opts: RunOptions) -> list[Stage]:
    """Every stage's settings from --stages and the --stage.* arguments (opts.stage_args), each
    stage's options checked as a run's are (InputError naming the stage and the option)."""
    n = opts.stages or 0
    defaults: list[tuple[str, str | None]] = []
    per_stage: dict[int, list[tuple[str, str | None]]] = {k: [] for k in range(n)}
    for token in opts.stage_args:
        key, has_value, value = token.partition("=")
        parts = key.split(".")
        if parts[0].lstrip("-").isdigit():
            k = int(parts[0])
            if not 0 <= k < n:
                raise InputError(f"--stage.{key}: no stage {k}; --stages {n} makes stages 0 "
                                 f"to {n - 1}")
            per_stage[k].append((".".join(parts[1:]), value if has_value else None))
        else:
            defaults.append((key, value if has_value else None))
    stages = []
    for k in range(n):
        stage = Stage(k)
        changes: dict = {}
        for key, value in defaults + per_stage[k]:
            where = f"--stage.{k}.{key}" if (key, value) in per_stage[k] else f"--stage.{key}"
            _apply(stage, changes, key, value, where)
        if stage.duration is None and not stage.idle:
            stage.duration = opts.duration
        stage.options = _stage_options(opts, stage, changes)
        stages.append(stage)
    return stages


def _apply(stage: Stage, changes: dict, key: str, value: str | None, where: str) -> None:
    parts = key.split(".")
    name = parts[0]
    if not name:
        raise InputError(f"{where}: name an option, e.g. --stage.{stage.index}.duration 5")
    stage.overrides[key] = _scalar(value)
    if name in IDLE_NAMES:
        if len(parts) > 1:
            raise InputError(f"{where}: {name} is a flag (--stage.{stage.index}.idle)")
        try:
            stage.idle = True if value is None else parse_bool(value)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
        return
    if name == "control":
        if len(parts) < 2:
            raise InputError(f"{where}: name a setting, e.g. --stage.{stage.index}.control.rate "
                             "0.5 (the keys of PUT /config)")
        _set_nested(stage.control, parts[1:], _scalar(value), where)
        return
    f, negated = _field_of(name)
    if f is None:
        raise InputError(f"{where}: stage {stage.index} has no option {name!r} (any option of "
                         "replayer run --help, idle, or control.SETTING)")
    if len(parts) > 1:
        raise InputError(f"{where}: {name} takes a value, not .{'.'.join(parts[1:])}")
    if f.name in RUN_WIDE:
        raise InputError(f"{where}: --{f.name.replace('_', '-')} is the same for every stage; "
                         "give it once, without --stage.")
    converted = _convert(f, value, negated, where)
    if f.name == "duration":
        stage.duration = converted
        return
    if f.name == "warmup":
        stage.warmup = converted
    if typing.get_origin(typing.get_type_hints(RunOptions)[f.name]) is list:
        changes.setdefault(f.name, []).append(converted)
    else:
        changes[f.name] = converted
    # Checked alone first, so the error names the option that broke it.
    try:
        dataclasses.replace(RunOptions(), **{f.name: changes[f.name]}, stage_args=[])
    except InputError as exc:
        raise InputError(f"{where}: stage {stage.index}: {exc}") from None


def _stage_options(opts: RunOptions, stage: Stage, changes: dict) -> RunOptions:
    where = f"--stage.{stage.index}"
    if stage.duration is not None and stage.duration == 0 and not stage.idle:
        raise InputError(f"{where}.duration 0: a stage that replays needs at least 1 unit (a "
                         "negative duration: until interrupted); only an idle stage may last 0")
    try:
        return dataclasses.replace(opts, **changes, stages=None, stage_args=[])
    except InputError as exc:
        raise InputError(f"{where}: stage {stage.index}: {exc}") from None


# ---------------------------------------------------------------- windows of the schedule


def window(schedule: Schedule, start_ns: int, end_ns: int | None) -> Schedule:
    """The requests due in [start_ns, end_ns) (to the end for None), their times counted from
    start_ns."""
    import numpy as np
    lo = int(np.searchsorted(schedule.t_ns, start_ns, side="left"))
    hi = len(schedule) if end_ns is None else int(np.searchsorted(schedule.t_ns, end_ns,
                                                                  side="left"))
    part = schedule.take(slice(lo, hi))
    part.t_ns = part.t_ns - start_ns
    return part


def plan_windows(stages: list[Stage], schedule: Schedule, units: int,
                 trace: str) -> list[tuple[int, int | None]]:
    """(first unit, end unit or None: to the end) of every stage, idle ones (0, 0); each
    load stage's duration and warm-up resolved as a plain run resolves them."""
    from replayer.run.plan import run_units
    out = []
    at = 0
    for stage in stages:
        if stage.idle:
            if stage.duration is None:
                stage.duration = 0
            out.append((0, 0))
            continue
        opts = stage.options
        if stage.until_interrupted:
            probe = dataclasses.replace(opts, duration=1)
            stage.warmup = run_units(probe, schedule.meta, max(1, units - at))[0]
            end = None
        else:
            probe = dataclasses.replace(opts, duration=stage.duration)
            warmup, duration = run_units(probe, schedule.meta, max(1, units - at))
            stage.warmup, stage.duration = warmup, duration
            end = at + warmup + duration
        if at >= units:
            before = ("a stage before it runs until interrupted"
                      if any(s.until_interrupted and not s.idle for s in stages[:stage.index])
                      else f"the stages before it replay all {units_text(units, schedule.unit_ns)}")
            raise InputError(f"--stages {len(stages)}: stage {stage.index} has nothing left to "
                             f"replay in {trace}: {before}; shorten them, or make stage "
                             f"{stage.index} idle (--stage.{stage.index}.idle)")
        out.append((at, end))
        at = units if end is None else end
    return out


# ---------------------------------------------------------------- running them


class StagedRun:
    """The run of every stage in turn, with one control server and one root directory."""

    def __init__(self, opts: RunOptions):
        self.opts = opts
        if getattr(opts, "ray", None):
            raise InputError("--stages: the stages run on this machine; not with --ray")
        if getattr(opts, "users", None) or getattr(opts, "rate", None) is not None \
                or getattr(opts, "ramp", None) is not None:
            raise InputError("--stages: a run in stages replays parts of a trace file's "
                             "schedule (-traceFile); not with --users, --rate or --ramp")
        self.stages = parse_stages(opts)
        self.root = run_dir_path(opts.out)
        self.server: ControlServer | None = None
        self.interrupted = threading.Event()
        self.results: list[dict] = []

    def log(self, msg: str) -> None:
        import sys
        print(f"replayer: {msg}", file=sys.stderr, flush=True)

    def run(self) -> int:
        opts = self.opts
        if opts.monitor_pid:
            check_pids(opts.monitor_pid)
        schedule, units, unit_ns = self._load()
        windows = plan_windows(self.stages, schedule, units, opts.trace_file) \
            if schedule is not None else [(0, 0)] * len(self.stages)
        self._check_controls(schedule)
        if self.root.exists() and any(self.root.glob("stage-*/records-w*.arrow")):
            raise InputError(f"--out {self.root}: already holds a run's stages; choose another "
                             "directory")
        if opts.control_port is not None:
            self.server = ControlServer(opts.control_address, opts.control_port,
                                        opts.control_allow_remote)
            self.log(f"control API on http://{opts.control_address}:{self.server.port}/config")
        prepare_run_dir(self.root, 0)
        write_run_json(self.root, self._root_info(windows, unit_ns))
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        codes = []
        try:
            for stage, (first, end) in zip(self.stages, windows):
                if self.interrupted.is_set():
                    break
                code = self._run_stage(stage, schedule, first, end, unit_ns)
                codes.append(code)
                if code == 130 or code == 4:
                    break
        except KeyboardInterrupt:
            codes.append(130)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.server is not None:
                self.server.close()
        summary = self._summary(codes)
        (self.root / "summary.json").write_text(json.dumps(summary, indent=2))
        print(format_stages(summary))
        print(f"records   {self.root}")
        return summary["exit_code"]

    def _on_signal(self, signum, frame):
        # Between stages, or in an idle one: the run stops after what is going on.
        if self.interrupted.is_set():
            raise KeyboardInterrupt
        self.interrupted.set()
        self.log("stopping after this stage (Ctrl-C again to exit at once)")

    def _load(self) -> tuple[Schedule | None, int, int]:
        """The schedule (once, for every stage), its units and the unit's length; none when
        every stage is idle."""
        opts = self.opts
        unit_ns = MINUTE_NS if opts.minute else NS_PER_S
        if all(s.idle for s in self.stages):
            return None, 0, unit_ns
        from replayer.run.plan import is_columnar
        from replayer.schedules import load_schedule_units
        # Only the units the stages replay, when every one says how many (a load.json is
        # read no further); else all of it.
        loads = [s for s in self.stages if not s.idle]
        wanted = None
        if all(s.duration is not None and s.duration > 0 for s in loads) \
                and not is_columnar(opts.trace_file):
            wanted = sum(s.duration + (INVOKER_WARMUP if s.options.warmup is None
                                       else s.options.warmup) for s in loads)
        schedule, units = load_schedule_units(opts.trace_file, minute=opts.minute,
                                              max_units=wanted)
        if len(schedule) == 0:
            raise InputError(f"{opts.trace_file}: no requests; nothing to replay")
        return schedule, units, schedule.unit_ns

    def _check_controls(self, schedule: Schedule | None) -> None:
        classes = [] if schedule is None else schedule.class_names
        targets = [] if schedule is None else list(schedule.targets)
        for stage in self.stages:
            if not stage.control or stage.idle:      # an idle stage has nothing to control
                continue
            try:
                apply_change(Settings(classes=dict.fromkeys(classes, 1.0),
                                      targets=dict.fromkeys(targets, 1.0)), stage.control)
            except ChangeError as exc:
                raise InputError(f"--stage.{stage.index}.control: {exc}") from None

    def _root_info(self, windows, unit_ns: int) -> dict:
        return {"version": __version__, "options": redacted_options(self.opts),
                "unit_ns": unit_ns,
                "stages": [{"stage": s.index, "dir": f"stage-{s.index}", "idle": s.idle,
                            "duration": s.duration, "warmup": None if s.idle else s.warmup,
                            "until_interrupted": s.until_interrupted,
                            "units": None if s.idle else list(w),
                            "overrides": s.overrides, "control": s.control}
                           for s, w in zip(self.stages, windows)]}

    def _stage_info(self, stage: Stage, first: int, end: int | None) -> dict:
        return {"index": stage.index, "of": len(self.stages), "idle": stage.idle,
                "duration": stage.duration, "warmup": stage.warmup,
                "until_interrupted": stage.until_interrupted,
                "units": None if stage.idle else [first, end], "overrides": stage.overrides,
                "control": stage.control}

    def _run_stage(self, stage: Stage, schedule, first: int, end: int | None,
                   unit_ns: int) -> int:
        stage_dir = self.root / f"stage-{stage.index}"
        self.log(f"stage {stage.index}/{len(self.stages)}: "
                 + ("idle (monitoring only)" if stage.idle else
                    f"units {first} to {'the end' if end is None else end}")
                 + (", until interrupted" if stage.until_interrupted else ""))
        if stage.idle:
            return self._run_idle(stage, stage_dir, unit_ns)
        from replayer.run.supervisor import Supervisor
        part = window(schedule, first * unit_ns, None if end is None else end * unit_ns)
        opts = dataclasses.replace(
            stage.options, out=str(stage_dir), warmup=stage.warmup,
            duration=(stage.duration if stage.duration and stage.duration > 0
                      else max(1, (part.end_ns // unit_ns) + 1 - stage.warmup)),
            # The invoker's latency file of each stage stays in its folder.
            latf=str(stage_dir / Path(stage.options.latf).name) if stage.options.latf else "",
            # --start-at is when the first stage that replays starts; the others follow it.
            start_at=(stage.options.start_at if stage is next(s for s in self.stages if not s.idle)
                      else None))
        supervisor = Supervisor(opts, schedule=part, server=self.server,
                                stage=self._stage_info(stage, first, end),
                                interrupted=self.interrupted.is_set)
        try:
            code = supervisor.run()
        except RunError as exc:
            code = exc.exit_code
            if code == 130 and stage.until_interrupted:
                self.log(f"stage {stage.index}: ended by Ctrl-C (it runs until interrupted)")
                code = 0
            else:
                self.log(f"stage {stage.index}: {exc}")
        finally:
            if stage.until_interrupted:
                self.interrupted.clear()      # that Ctrl-C was this stage's end
        return code

    def _run_idle(self, stage: Stage, stage_dir: Path, unit_ns: int) -> int:
        """Monitor only: --monitor-pid into perf.jsonl for the stage's duration."""
        prepare_run_dir(stage_dir, 0)
        if self.server is not None:
            self.server.detach(f"stage {stage.index} is idle (monitoring only)")
        start_ns = time.time_ns()
        info = {"version": __version__, "options": redacted_options(stage.options),
                "stage": self._stage_info(stage, 0, 0), "start_ns": start_ns}
        write_run_json(stage_dir, info)
        monitor = PerfMonitor(stage_dir / PERF_LOG, self.opts.monitor_pid,
                              self.opts.monitor_interval) if self.opts.monitor_pid else None
        if monitor is not None:
            monitor.start()
        seconds = None if stage.until_interrupted else stage.duration * unit_ns / 1e9
        try:
            self.interrupted.wait(seconds)
        finally:
            if monitor is not None:
                monitor.stop()
        stopped = self.interrupted.is_set()
        if stage.until_interrupted:
            self.interrupted.clear()
        summary = {"stage": stage.index, "idle": True,
                   "duration_s": (time.time_ns() - start_ns) / 1e9,
                   "perf_samples": monitor.samples if monitor is not None else 0,
                   **({"stopped": "interrupted"} if stopped else {})}
        (stage_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        info["result"] = {"exit": "stopped" if stopped and not stage.until_interrupted else "ok"}
        write_run_json(stage_dir, info)
        return 130 if stopped and not stage.until_interrupted else 0

    def _summary(self, codes: list[int]) -> dict:
        """The whole run: each stage's key figures (from its summary.json) and the totals."""
        rows = []
        totals = dict.fromkeys(("scheduled", "sent", "ok", "failed", "lost"), 0)
        for stage, code in zip(self.stages, codes):
            path = self.root / f"stage-{stage.index}" / "summary.json"
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                doc = {}
            row = {"stage": stage.index, "dir": f"stage-{stage.index}", "idle": stage.idle,
                   "exit_code": code}
            if stage.idle:
                row.update(duration_s=doc.get("duration_s"), perf_samples=doc.get("perf_samples"))
            elif doc:
                overall = doc.get("overall") or {}
                row.update({k: doc.get(k) for k in totals},
                           rate_sent=(doc.get("rates") or {}).get("sent"),
                           lag_p99_ns=(overall.get("lag_ns") or {}).get("p99"),
                           latency_p99_ns=(overall.get("latency_ns") or {}).get("p99"),
                           schedule_kept=(doc.get("verdict") or {}).get("kept"),
                           stopped=doc.get("stopped"))
                for k in totals:
                    totals[k] += doc.get(k) or 0
            rows.append(row)
        not_run = [s.index for s in self.stages[len(codes):]]
        return {"stages": rows, "not_run": not_run, "totals": totals,
                "exit_code": _run_exit(codes, bool(not_run))}


def _run_exit(codes: list[int], cut_short: bool) -> int:
    """The run's exit code from its stages': a stop (130) first, then a write error (4), a
    dead worker (3), goals not met (5)."""
    for code in (130, 4, 3, 5):
        if code in codes:
            return code
    return 130 if cut_short else 0


def format_stages(summary: dict) -> str:
    from replayer.analysis import fmt
    lines = []
    for row in summary["stages"]:
        head = f"stage {row['stage']:<3} "
        if row["idle"]:
            lines.append(head + f"idle {row.get('duration_s') or 0:.1f}s  perf samples "
                         f"{row.get('perf_samples') or 0}")
        elif "scheduled" in row:
            kept = {True: "schedule kept", False: "schedule NOT kept"}.get(row.get("schedule_kept"), "")
            lines.append(head + f"scheduled {row['scheduled']}  sent {row['sent']}  ok {row['ok']}"
                         f"  failed {row['failed']}  lost {row['lost']}  "
                         f"lag p99 {fmt.duration(row.get('lag_p99_ns'))}  "
                         f"latency p99 {fmt.duration(row.get('latency_p99_ns'))}  {kept}"
                         + (f"  ({row['stopped']})" if row.get("stopped") else ""))
        else:
            lines.append(head + f"no summary (exit code {row['exit_code']})")
    for k in summary["not_run"]:
        lines.append(f"stage {k:<3} not run (the run stopped before it)")
    t = summary["totals"]
    lines.append(f"run       scheduled {t['scheduled']}  sent {t['sent']}  ok {t['ok']}  "
                 f"failed {t['failed']}  lost {t['lost']}")
    return "\n".join(lines)


def stages_command(opts: RunOptions) -> int:
    return StagedRun(opts).run()

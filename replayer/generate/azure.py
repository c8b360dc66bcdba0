"""`replayer gen azure`: an Azure Functions 2019 trace into a load to replay.

trace CSVs -> (optional --sample) -> proxy mapping -> arrivals per unit -> load.json (vSwarm
format) + columnar schedule (.parquet) + mapping CSV -> (optional --deploy) proxies.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.generate.arrivals import DISTRIBUTIONS, iter_arrivals
from replayer.generate.mapping import load_profiles, map_functions, write_mapping_csv
from replayer.options import opt
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, Schedule
from replayer.schedules import COLUMNAR_SUFFIXES

DEFAULT_TEMPLATE = "{proxy}.default.127.0.0.1.sslip.io"
TEMPLATE_FIELDS = {"proxy": "p", "n": 0, "fid": "0123456789"}


# Environment variables are this command's own (REPLAYER_GEN_AZURE_SEED...): REPLAYER_DURATION
# and friends belong to `replayer run` and never change a generated load.
@dataclass
class AzureGenOptions:
    """Turn an Azure Functions 2019 trace (invocations.csv, durations.csv, memory.csv) into a
    load: each trace function is mapped to its closest proxy (75th-percentile memory and
    duration, from the vSwarm profiler's profile.json), and each unit's invocation count becomes
    that many requests inside the unit. Writes the vSwarm load.json (for the vSwarm invoker or
    replayer run), a columnar schedule with function/proxy columns (.parquet, for replayer run
    at any scale), and the mapping (NAME.mapping.csv) next to it. vSwarm loadgen flags work
    as they do there."""

    trace: str = opt("trace", "directory with invocations.csv, durations.csv and memory.csv",
                     short="t", metavar="DIR")
    profile: str = opt("profile.json", "the proxies' profile (vSwarm profiler output)", short="p",
                       metavar="PATH")
    config_proxy: str = opt("config.json", "the proxies' deployment config (yaml-location, "
                            "pre/postdeployment-commands); read by --deploy/--dry-run",
                            short="c", alias="config_proxy", metavar="PATH")
    output: str = opt("load.json", "load to write: NAME.json writes the vSwarm load.json plus "
                      "NAME.parquet; NAME.parquet/.arrow writes only the columnar schedule",
                      short="o", metavar="PATH")
    build: str = opt("build", "directory for the renamed proxy YAMLs that --deploy applies",
                     short="b", metavar="DIR")
    minute: bool = opt(True, "the trace counts invocations per minute (false: per second)",
                       short="m")
    unique: bool = opt(False, "one-to-one function-to-proxy mapping (linear sum assignment) "
                       "when there are enough proxies", short="u")
    iat_distribution: str = opt("uniform", "arrival times inside a unit: equidistant, uniform, "
                                "or exponential (Poisson conditioned on the unit's count)",
                                short="i", alias="iat_distribution", choices=list(DISTRIBUTIONS),
                                env=False)
    duration: int = opt(20, "units (minutes, or seconds with -m false) to generate after the "
                        "warm-up; 0: to the end of the trace", short="d")
    warmup_duration: int = opt(2, "warm-up units generated before the -d units",
                               short="w", alias="warmup_duration")
    dbg: bool = opt(False, "debug messages (per-function mapping, timings) on stderr",
                    alias="dbg")
    seed: int | None = opt(None, "random seed (same seed, same files byte for byte; default: "
                           "a fresh seed, printed)")
    start_minute: int | None = opt(None, "trace column (unit number) to start from; default the "
                                   "first (540 in the vSwarm sample)")
    endpoint_template: str = opt(DEFAULT_TEMPLATE, "endpoint of a function's requests; "
                                 "{proxy}: proxy name, {n}: function row, {fid}: 10-hex "
                                 "function id")
    schedule: str | None = opt(None, "columnar schedule path (default: the output's name with "
                               ".parquet)", metavar="PATH")
    sample: int = opt(0, "replay only N functions chosen so that the invocation-rate and "
                      "duration distributions stay close to the full trace's", metavar="N",
                      env=False)
    drop_incomplete: bool = opt(False, "leave out functions missing from one of the three files "
                                "instead of failing", action="store_true")
    deploy: bool = opt(False, "deploy the proxies (config.json commands and kubectl apply) after "
                       "writing the load", action="store_true")
    dry_run: bool = opt(False, "print the deployment commands without running them",
                        action="store_true")

    def __post_init__(self):
        if self.duration < 0:
            raise InputError(f"-d/--duration {self.duration}: must be 0 (the whole trace) or more")
        if self.warmup_duration < 0:
            raise InputError(f"-w/--warmup_duration {self.warmup_duration}: must be 0 or more")
        if self.sample < 0:
            raise InputError(f"--sample {self.sample}: must be 0 (all functions) or more")
        if self.seed is not None and not 0 <= self.seed < 2 ** 63:
            raise InputError(f"--seed {self.seed}: must be between 0 and 2^63-1")
        try:
            self.endpoint_template.format(**TEMPLATE_FIELDS)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"--endpoint-template {self.endpoint_template!r}: only {{proxy}}, "
                             f"{{n}} and {{fid}} can be filled in ({exc})") from None
        if not self.endpoint_template.format(**TEMPLATE_FIELDS).strip():
            raise InputError("--endpoint-template: gives an empty endpoint")

    @property
    def unit_ns(self) -> int:
        return MINUTE_NS if self.minute else NS_PER_S

    def output_paths(self) -> tuple[Path | None, Path, Path]:
        """(load.json or None, columnar schedule, mapping csv)."""
        out = Path(self.output)
        base = out.parent / out.stem
        if out.suffix.lower() in COLUMNAR_SUFFIXES:
            json_path, columnar = None, out
        else:
            json_path = out
            columnar = Path(self.schedule) if self.schedule else base.with_name(out.stem + ".parquet")
        return json_path, columnar, base.with_name(out.stem + ".mapping.csv")


@dataclass
class GeneratedLoad:
    """A mapped trace, ready to become requests (arrivals are drawn when written)."""
    trace: object               # the AzureTrace that is replayed (window, sample applied)
    profiles: object
    mapping: object
    endpoints: list[str]        # per function
    targets: list[str]          # distinct endpoints: the schedule's target table
    func_target: np.ndarray     # int32 per function: index into targets
    proxy_names: list[str]      # proxies in use
    func_proxy: np.ndarray      # int32 per function: index into proxy_names
    sample_report: object | None
    seed: int
    arrival_seed: np.random.SeedSequence
    unit_ns: int
    distribution: str

    @property
    def cls_fits(self) -> bool:
        """cls is int16: it holds the function row when the trace has few enough functions."""
        return len(self.trace) <= np.iinfo(np.int16).max

    def arrival_chunks(self):
        """(t_ns, function row) pieces in time order; the same for the same seed."""
        rng = np.random.Generator(np.random.PCG64(self.arrival_seed))
        return iter_arrivals(self.trace.counts, self.unit_ns, self.distribution, rng)

    def schedule(self) -> tuple[Schedule, np.ndarray]:
        """The whole schedule in memory, and the function row of each request."""
        parts = list(self.arrival_chunks())
        t_ns = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        func = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int32)
        sched = Schedule(t_ns=t_ns, target=self.func_target[func], targets=self.targets,
                         cls=func.astype(np.int16) if self.cls_fits else None,
                         classes=list(self.trace.ids) if self.cls_fits else [],
                         unit_ns=self.unit_ns, source=str(self.trace.source))
        return sched, func


def _log(opts: AzureGenOptions, msg: str) -> None:
    if opts.dbg:
        print(f"replayer: debug: {msg}", file=sys.stderr, flush=True)


def prepare(opts: AzureGenOptions) -> GeneratedLoad:
    """Decode, window, sample and map: everything but drawing the arrivals."""
    from replayer.generate.sampling import sample_functions
    from replayer.generate.azure_dataset import read_trace

    t0 = time.perf_counter()
    seed = opts.seed if opts.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 63))
    # Independent streams, so --sample does not shift the arrival draws of the other stages.
    ss_sample, ss_arrivals = np.random.SeedSequence(seed).spawn(2)
    trace = read_trace(opts.trace, drop_incomplete=opts.drop_incomplete)
    if trace.dropped:
        print(f"replayer: warning: left out {trace.dropped} function(s) missing from "
              "durations.csv or memory.csv (--drop-incomplete)", file=sys.stderr)
    profiles = load_profiles(opts.profile)
    n_units = 0 if opts.duration == 0 else opts.duration + opts.warmup_duration
    trace = trace.window(opts.start_minute, n_units)
    _log(opts, f"trace: {len(trace)} functions x {trace.n_units} units "
               f"(columns {int(trace.unit_labels[0])}..{int(trace.unit_labels[-1])}) "
               f"read in {time.perf_counter() - t0:.3f}s")
    report = None
    if opts.sample:
        rate = trace.counts.mean(axis=1, dtype=np.float64)
        report = sample_functions(rate, trace.duration_p75_ms, opts.sample,
                                  np.random.Generator(np.random.PCG64(ss_sample)))
        trace = trace.take(report.rows)
    mapping = map_functions(trace.memory_p75_mb, trace.duration_p75_ms, profiles, opts.unique)
    if mapping.note:
        print(f"replayer: warning: {mapping.note}", file=sys.stderr)
    endpoints = [opts.endpoint_template.format(proxy=profiles.names[int(p)], n=i, fid=trace.short_id(i))
                 for i, p in enumerate(mapping.proxy)]
    if opts.dbg:
        for i, p in enumerate(mapping.proxy):
            _log(opts, f"map {trace.ids[i]} -> {profiles.names[int(p)]} "
                       f"(distance {mapping.distance[i]:.4f}, {mapping.method})")
    targets: dict[str, int] = {}
    func_target = np.array([targets.setdefault(e, len(targets)) for e in endpoints], dtype=np.int32)
    used = np.unique(mapping.proxy)
    return GeneratedLoad(trace=trace, profiles=profiles, mapping=mapping, endpoints=endpoints,
                         targets=list(targets), func_target=func_target,
                         proxy_names=[profiles.names[int(p)] for p in used],
                         func_proxy=np.searchsorted(used, mapping.proxy).astype(np.int32),
                         sample_report=report, seed=seed, arrival_seed=ss_arrivals,
                         unit_ns=opts.unit_ns, distribution=opts.iat_distribution)


def write_outputs(opts: AzureGenOptions, load: GeneratedLoad) -> tuple[list[Path], int]:
    """Write the load; returns (paths written, requests). A columnar-only output is written
    piece by piece, so its size is bounded by the disk, not by memory."""
    from replayer.schedules import columnar, vswarm

    json_path, columnar_path, mapping_path = opts.output_paths()
    written = []
    for p in (json_path, columnar_path, mapping_path):
        if p is not None and p.parent and not p.parent.is_dir():
            raise InputError(f"{p}: directory {p.parent} does not exist; create it or change -o")
    t0 = time.perf_counter()
    try:
        if json_path is not None:
            sched, func = load.schedule()
            # Every unit of the window, quiet ones at the end included: the invoker counts them.
            vswarm.write_load_json(sched, json_path, load.trace.n_units)
            written.append(json_path)
            columnar.write_schedule(sched, columnar_path, function=(func, list(load.trace.ids)),
                                    proxy=(load.func_proxy[func], load.proxy_names),
                                    units=load.trace.n_units)
            rows = len(sched)
        else:
            with columnar.ScheduleWriter(columnar_path, load.targets, load.unit_ns,
                                         classes=list(load.trace.ids) if load.cls_fits else [],
                                         with_cls=load.cls_fits, functions=list(load.trace.ids),
                                         proxies=load.proxy_names, units=load.trace.n_units) as w:
                for t_ns, func in load.arrival_chunks():
                    w.write(t_ns, load.func_target[func], func.astype(np.int16) if load.cls_fits else None,
                            func, load.func_proxy[func])
            rows = w.rows
        written.append(columnar_path)
        write_mapping_csv(mapping_path, load.trace, load.profiles, load.mapping, load.endpoints)
        written.append(mapping_path)
    except OSError as exc:
        raise InputError(f"{exc.filename or opts.output}: cannot write ({exc.strerror}); check -o") from None
    _log(opts, f"arrivals and files: {rows} requests in {time.perf_counter() - t0:.3f}s")
    return written, rows


def gen_azure_command(opts: AzureGenOptions) -> int:
    t0 = time.perf_counter()
    config = None
    if opts.deploy or opts.dry_run:
        from replayer.generate.deploy import load_config
        config = load_config(opts.config_proxy)   # a bad config fails before anything is written
    load = prepare(opts)
    plan = None
    if config is not None:
        from replayer.generate.deploy import check_plan, plan_deployment
        proxies = [load.profiles.names[int(p)] for p in load.mapping.proxy]
        yaml = dict(zip(load.profiles.names, load.profiles.yaml))
        plan = plan_deployment(load.endpoints, proxies, yaml, config, opts.config_proxy, opts.build)
        not_found = check_plan(plan)      # a missing YAML fails before anything is written
    written, rows = write_outputs(opts, load)
    unit = "minute" if opts.minute else "second"
    n_units = load.trace.n_units
    if load.sample_report is not None:
        print(load.sample_report.describe())
    print(f"{rows} requests from {len(load.trace)} functions over {n_units} {unit}"
          f"{'s' if n_units != 1 else ''} "
          f"({opts.iat_distribution}, seed {load.seed}), {len(load.proxy_names)} proxies "
          f"({load.mapping.method}, mean distance {float(np.mean(load.mapping.distance)):.3f}), "
          f"{len(load.targets)} endpoints; wrote {', '.join(map(str, written))} "
          f"in {time.perf_counter() - t0:.2f}s")
    if plan is not None:
        from replayer.generate.deploy import run_plan
        print(f"deploying {len(plan.services)} proxy service(s): {len(plan.steps)} command(s)"
              + (" (dry run: printing only)" if opts.dry_run else ""), flush=True)
        if not_found:
            print(f"replayer: warning: deploy: not found on PATH: {', '.join(not_found)} (the "
                  "deployment runs them)", file=sys.stderr, flush=True)
        run_plan(plan, dry_run=opts.dry_run)
    return 0

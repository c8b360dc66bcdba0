"""`replayer run` options, as the user gave them: declared once (the CLI derives every spelling)
and validated. What follows from them is the run plan (replayer.run.plan)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from replayer.analysis.thresholds import parse_duration_ns, parse_thresholds
from replayer.errors import InputError
from replayer.options import opt
from replayer.run.generated import check_load_options, units_or_time

HELLO_METHOD = "/helloworld.Greeter/SayHello"

# Bounds that keep every value inside the C types of the pacer and the clock.
MAX_TIMEOUT_S = 86_400.0
MAX_SPIN_US = 1_000_000
MAX_INFLIGHT = 1_000_000
MAX_WORKERS = 4096
MIN_TIME_SCALE, MAX_TIME_SCALE = 1e-6, 1e6
MAX_UNIX_TIME = 4_102_444_800      # 2100-01-01
MAX_SHARDS = 1_000_000


def optional_value(field, const):
    """An option whose value may be left out (`--ray` alone): `const` is then its value."""
    return dataclasses.field(default=field.default, metadata={**field.metadata, "const": const})


@dataclass
class RunOptions:
    """Replay a trace open-loop: every request leaves at its intended time, from N worker
    processes pinned to CPUs, and every request leaves one record (Arrow IPC, per worker).

    The vSwarm invoker's flags work as they do there (-traceFile load.json -warmup 2 -duration
    8 -min true -port 80 -grpcTimeout 30 -latf lat.csv -dbg): the run replays the first
    -warmup + -duration units of the trace (minutes; seconds with -min=false), marks the
    first -warmup units warm-up and measures the -duration units after them.

    examples:
      replayer run -traceFile load.json -warmup 2 -duration 8 -latf lat.csv
          the invoker's command line: 10 minutes, 8 measured; rps_lat.csv in this directory
      replayer run -traceFile traces/example-load.json -min=false -warmup 2 -duration 10 --local-target
          a 12-second demo against replayer's built-in target"""

    # --help headings, in this order; each option names its own with group=.
    option_groups: ClassVar[dict[str, str]] = {
        "schedule": "schedule (what to replay, and when)",
        "load": "load without a trace file (closed-loop users as Locust runs them, open-loop "
                "shapes as vegeta and k6 run them: docs/closed-loop.md)",
        "target": "target (where requests go)",
        "protocol": "protocol (what a request is)",
        "pacing": "pacing (workers, CPUs and send timing)",
        "output": "output (records, latency file, logs, tracing)",
        "reliability": "reliability (timeouts, bounds, failures)",
        "verdict": "verdict (when a run passes: schedule kept, thresholds met, exit code 5)",
        "distributed": "distributed (one schedule over the nodes of a Ray cluster: docs/scaling.md)",
        "live": "stages, live control and monitoring (docs/stages-and-control.md)",
    }

    trace_file: str = opt("load.json", "trace to replay: vSwarm load.json or a columnar schedule "
                          "(.parquet/.arrow from replayer gen)", alias="traceFile",
                          metavar="PATH", group="schedule")
    workers: int = opt(0, "worker processes (0: one per CPU this process may run on)",
                       alias="workers", group="pacing")
    duration: int | str | None = opt(None, "trace units measured after the warm-up (minutes, "
                                     "or seconds with -min=false): the run replays -warmup + "
                                     "-duration units, as the invoker (default 8; a schedule "
                                     "that asks to be replayed whole, as gen classes writes, "
                                     "is); with --rate, a time with its unit (30s)",
                                     alias="duration", type=units_or_time, group="schedule")
    warmup: int | str | None = opt(None, "trace units replayed first, marked warm-up: kept in "
                                   "the records, left out of -latf and latency summaries "
                                   "(default 2; none for a schedule replayed whole); without a "
                                   "trace, a time with its unit (2m)", alias="warmup",
                                   type=units_or_time, group="schedule")
    minute: bool = opt(True, "the trace's units are minutes (false: seconds)", alias="min",
                       group="schedule")
    users: int = opt(0, "closed loop, as Locust: this many users, each sending a request, "
                     "waiting for its answer and its think time, and sending again",
                     short="u", metavar="N", group="load")
    spawn_rate: float = opt(1.0, "users started per second (Locust's -r)", short="r",
                            metavar="PER_S", group="load")
    run_time: str | None = opt(None, "how long a run without a trace lasts: 30s, 10m, 1h30m (a "
                               "plain number: seconds, as Locust's -t); default for users: "
                               "until stopped", short="t", metavar="TIME", group="load")
    host: str | None = opt(None, "the users' base URL, e.g. http://localhost:9090 (Locust's "
                           "--host)", short="H", metavar="URL", group="load")
    user_class: list[str] = opt(None, "user class (repeatable, or commas): stochastic "
                                "(StochasticBenchmarkUser: GET --path) or trace "
                                "(TraceDrivenBenchmarkUser: POST of --trace-bodies); default "
                                "stochastic", short="c", default_factory=list, metavar="NAME",
                                group="load")
    class_weights: str | None = opt(None, "how many users of each class, e.g. stochastic=3,"
                                    "trace=1 (default: equal)", metavar="CLASS=W,...",
                                    group="load")
    wait_time: list[str] = opt(None, "think time after each answer, as Locust's wait_time: "
                               "constant(S), between(A, B), constant_throughput(PER_S), "
                               "constant_pacing(S), poisson(MEAN_S); CLASS=EXPR for one class "
                               "(repeatable); default constant(0)", default_factory=list,
                               metavar="EXPR", group="load")
    path: str = opt("/s0", "path the users send to (after --host's own)", group="load")
    trace_bodies: str | None = opt(None, "muBench call traces the trace-driven users POST, one "
                                   "body per request: a JSON array, or one per line (sent as "
                                   "written)", metavar="PATH", group="load")
    trace_order: str = opt("cycle", "trace bodies in the file's order (user u's k-th request: "
                           "body u + k) or sampled with --seed", choices=["cycle", "sample"],
                           group="load")
    rate: str | None = opt(None, "open loop without a trace, as vegeta: requests per second "
                           "(1000, 1000/s, 50/100ms) for --duration 30s", alias="rate",
                           metavar="RATE", group="load")
    ramp: str | None = opt(None, "open loop, as k6's ramping-arrival-rate: the rate at each "
                           "point, linear in between: 0:100,30s:1000,60s:1000", metavar="POINTS",
                           group="load")
    arrivals: str = opt("constant", "arrivals of --rate/--ramp: evenly spaced (as k6) or a "
                        "Poisson process (--seed)", choices=["constant", "poisson"], group="load")
    url: str | None = opt(None, "the URL of every request of --rate/--ramp (--method, --header, "
                          "--body apply)", metavar="URL", group="load")
    targets: str | None = opt(None, "vegeta targets file (http format: 'METHOD URL', header "
                              "lines, '@body-file', blank line between entries), sent in turn",
                              alias="targets", metavar="PATH", group="load")
    seed: int = opt(0, "seed of think times, sampled trace bodies and Poisson arrivals",
                    metavar="N", group="load")
    headless: bool = opt(False, "accepted as in Locust's command lines: replayer always runs "
                         "headless", action="store_true", group="load")
    csv: str | None = opt(None, "write Locust's CSVs while the run goes (headless locust "
                          "--csv): PREFIX_stats.csv, _stats_history.csv (a row a second), "
                          "_failures.csv, _exceptions.csv; warm-up left out",
                          metavar="PREFIX", group="output")
    csv_full_history: bool = opt(False, "with --csv: a history row per request name too, as "
                                 "locust --csv-full-history", action="store_true",
                                 group="output")
    port: int = opt(80, "port of every endpoint", alias="port", group="target")
    timeout: float = opt(30.0, "per-request timeout in seconds, HTTP and gRPC alike",
                         alias="grpcTimeout", group="reliability")
    latf: str = opt("lat.csv", "the invoker's latency file: write rps_NAME (µs per line, "
                    "answered post-warm-up requests, no header) in the working directory, or in "
                    "NAME's directory when it has one, and a copy in the run directory; '' "
                    "writes none", alias="latf", metavar="NAME", group="output")
    dbg: bool = opt(False, "debug logging", alias="dbg", group="output")
    trace: bool = opt(False, "trace every request: send a W3C traceparent with it and post one "
                      "client span per request to -zipkin at the end", alias="trace",
                      group="output")
    zipkin: str = opt("http://localhost:9411/api/v2/spans", "Zipkin v2 span collector URL, for "
                      "-trace", alias="zipkin", metavar="URL", group="output")
    protocol: str = opt("grpc", "transport: grpc (helloworld.Greeter/SayHello, like the invoker), "
                        "http (see --http-client), or null (completes at once: measures the "
                        "pacer alone)", choices=["grpc", "http", "null"], group="protocol")
    url_template: str = opt("http://{endpoint}:{port}/", "HTTP URL of a request (http:// or "
                            "https://); {endpoint} and {port} are filled in", group="target")
    method: str | None = opt(None, "HTTP method (default GET, or POST with a body)",
                             group="protocol")
    header: list[str] = opt(None, "HTTP header 'Name: value' (repeatable)", default_factory=list,
                            metavar="HEADER", group="protocol")
    body: str | None = opt(None, "request body (HTTP), sent with every request", group="protocol")
    body_file: str | None = opt(None, "file whose bytes are the body (HTTP) or the serialised "
                                "request message (gRPC)", metavar="PATH", group="protocol")
    http_version: str = opt("1.1", "HTTP version: 1.1, 2 (TLS ALPN or upgrade) or h2c (HTTP/2 "
                            "prior knowledge, cleartext)", choices=["1.1", "2", "h2c"],
                            group="protocol")
    grpc_method: str = opt(HELLO_METHOD, "gRPC method of every request", group="protocol")
    grpc_name: str = opt("Invoke relay", "name field of the helloworld request", group="protocol")
    content_seed: int | None = opt(None, "seed of the random fields of a schedule's payloads (a "
                                   "fresh tensor per request; default: the schedule's own, "
                                   "replayer.content_seed)", metavar="N", group="protocol")
    grpc_client: str = opt("curl", "gRPC client: curl (HTTP/2 cleartext through libcurl, driven "
                           "from C) or grpcio (the reference client, slower per request)",
                           choices=["curl", "grpcio"], group="protocol")
    http_client: str = opt("auto", "HTTP client: native (replayer's own HTTP/1.1 client in C, "
                           "for http:// URLs), curl (libcurl, for everything), or auto (native "
                           "where it applies, libcurl for https://, HTTP/2 and proxies)",
                           choices=["auto", "native", "curl"], group="protocol")
    resolve: list[str] = opt(None, "send endpoint HOST to ADDR ('*=127.0.0.1' for all); the "
                             "Host header / :authority stays HOST (repeatable)",
                             default_factory=list, metavar="HOST=ADDR", group="target")
    out: str | None = opt(None, "run directory (default results/run-<unix time>)", metavar="DIR",
                          group="output")
    spin_us: int = opt(50, "spin (instead of sleep) for the last microseconds before a due time",
                       group="pacing")
    spin_max_us: int | None = opt(None, "widen the spin, up to this, when wake-ups from sleep "
                                  "come late (a VM's idle vCPU): spin_us + 2x the latest "
                                  "lateness. Default: 2000 when each worker has a CPU of its own "
                                  "and one is left over, else --spin-us (fixed)", group="pacing")
    no_pin: bool = opt(False, "do not pin workers to CPUs", action="store_true", group="pacing")
    stall_us: int = opt(50, "a gap longer than this between two clock reads of a worker that "
                        "spins, polls or hands a request over is a CPU stall: counted per "
                        "worker, and the cause of the sends it held back", group="pacing")
    max_inflight: int = opt(10000, "requests in flight per worker; one due beyond it is recorded "
                            "as 'overload', never queued or dropped", group="reliability")
    connections: int = opt(64, "connections per host per worker (HTTP/2 and gRPC multiplex "
                           "100 streams on each); past them requests wait in order for a free "
                           "one, and the wait shows as send lag", group="pacing")
    time_scale: float = opt(1.0, "multiply trace times (0.5 replays twice as fast)",
                            group="schedule")
    shard: str = opt("0/1", "replay node I's share of N nodes (I/N), events I, I+N, ...",
                     metavar="I/N", group="schedule")
    start_at: float | None = opt(None, "start at this Unix time (seconds), the same on every node",
                                 metavar="UNIXTIME", group="schedule")
    # --ray alone means "auto" (argparse's const): the cluster this machine belongs to.
    ray: str | None = optional_value(opt(
        None, "replay across a Ray cluster, one shard per node, merged into one run directory "
        "with a node column: ADDRESS as ray.init takes it (host:6379, ray://host:10001); alone, "
        "the cluster this machine belongs to (ray start, RAY_ADDRESS). Needs pip install "
        "'replayer[ray]'", metavar="ADDRESS", group="distributed"), "auto")
    nodes: int = opt(0, "with --ray: nodes to spread the shards over, one each (0: every node "
                     "of the cluster)", metavar="N", group="distributed")
    local_target: bool = opt(False, "start replayer's built-in target on loopback for this run and "
                             "send every endpoint to it", action="store_true", group="target")
    insecure: bool = opt(False, "do not verify TLS certificates", action="store_true",
                         group="target")
    flush_ms: int = opt(200, "write records to disk at least this often (ms)",
                        group="reliability")
    on_worker_failure: str = opt("continue", "when a worker dies: continue with the others, or "
                                 "stop the run cleanly", choices=["continue", "stop"],
                                 group="reliability")
    max_lag: str | None = opt(None, "the schedule was kept only if send lag p99 is at most this "
                              "(e.g. 2ms, 500us); a send later than it is late, and its cause "
                              "counted. Default: the larger of 1ms and 10%% of the mean gap "
                              "between one worker's sends", metavar="DURATION", group="verdict")
    max_lost: int = opt(0, "the schedule was kept only if at most this many requests were lost "
                        "(never sent, or left no record)", metavar="N", group="verdict")
    threshold: list[str] = opt(None, "a goal as in k6, e.g. 'latency.p99<500ms', 'errors<1%%', "
                               "'lag.p99<1ms', 'latency{cls=urgent}.p95<100ms', "
                               "'rate.sent>=990' (repeatable; docs/report.md); one not met "
                               "exits 5", default_factory=list, metavar="EXPR", group="verdict")
    strict: bool = opt(False, "exit 5 when the schedule was not kept or every request failed "
                       "(for CI)", action="store_true", group="verdict")
    stages: int | None = opt(None, "run in N stages (0 to N-1), each in its folder of the run "
                             "directory: stage K replays the next -warmup + -duration units of "
                             "the schedule. --stage.duration M: every stage's -duration (a "
                             "negative one: until interrupted); --stage.K.OPTION VALUE: any run "
                             "option for stage K (--stage.2.max-inflight 50, --stage.1.no-pin, "
                             "--stage.3.control.rate 0.5); --stage.K.idle: stage K only monitors",
                             metavar="N", group="live")
    control_port: int | None = opt(None, "serve the live control API on this port while the "
                                   "run goes: GET/PUT /config (rate, pause, weights), GET "
                                   "/metrics (Prometheus); the runner's is 3352", metavar="PORT",
                                   group="live")
    control_address: str = opt("127.0.0.1", "address of the control API: loopback only unless "
                               "--control-allow-remote (it has no authentication)",
                               metavar="ADDR", group="live")
    control_allow_remote: bool = opt(False, "let --control-address be a non-loopback address "
                                     "(anyone who reaches it can change or pause the run)",
                                     action="store_true", group="live")
    monitor_pid: list[int] = opt(None, "sample this process (the target's: CPU, RSS, threads, "
                                 "open files, disk I/O, connections) and the machine into "
                                 "perf.jsonl (repeatable)", default_factory=list, metavar="PID",
                                 group="live")
    monitor_interval: float = opt(5.0, "seconds between two samples of --monitor-pid (the "
                                  "runner counts minutes)", metavar="SECONDS", group="live")
    # --stage.K.OPTION arguments as the command line gave them ("2.max-inflight=50", "1.idle"):
    # taken out of argv by the CLI (replayer.run.stages.take_stage_args), read by the stages.
    stage_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        check_live_options(self)
        check_load_options(self)
        if self.workers < 0:
            raise InputError(f"-workers {self.workers}: must be 0 (one per CPU) or more")
        if isinstance(self.duration, int) and self.duration <= 0:
            raise InputError(f"-duration {self.duration}: must be at least 1 trace unit")
        if isinstance(self.warmup, int) and self.warmup < 0:
            raise InputError(f"-warmup {self.warmup}: must be 0 or more")
        if not 0 < self.port < 65536:
            raise InputError(f"-port {self.port}: must be between 1 and 65535")
        if not 0 < self.timeout <= MAX_TIMEOUT_S:
            raise InputError(f"-grpcTimeout {self.timeout}: must be more than 0 and at most "
                             f"{MAX_TIMEOUT_S} seconds")
        if not 0 <= self.spin_us <= MAX_SPIN_US:
            raise InputError(f"--spin-us {self.spin_us}: must be between 0 and {MAX_SPIN_US}")
        if self.spin_max_us is not None and not 0 <= self.spin_max_us <= MAX_SPIN_US:
            raise InputError(f"--spin-max-us {self.spin_max_us}: must be between 0 and {MAX_SPIN_US}")
        if not 1 <= self.stall_us <= MAX_SPIN_US:
            raise InputError(f"--stall-us {self.stall_us}: must be between 1 and {MAX_SPIN_US}")
        if self.content_seed is not None and not 0 <= self.content_seed < 1 << 64:
            raise InputError(f"--content-seed {self.content_seed}: must be between 0 and 2^64-1")
        if not 1 <= self.max_inflight <= MAX_INFLIGHT:
            raise InputError(f"--max-inflight {self.max_inflight}: must be between 1 and {MAX_INFLIGHT}")
        if self.workers > MAX_WORKERS:
            raise InputError(f"-workers {self.workers}: at most {MAX_WORKERS}")
        if self.start_at is not None and not 0 < self.start_at < MAX_UNIX_TIME:
            raise InputError(f"--start-at {self.start_at}: must be a Unix time in seconds")
        if not 1 <= self.connections <= MAX_INFLIGHT:
            raise InputError(f"--connections {self.connections}: must be between 1 and {MAX_INFLIGHT}")
        if not MIN_TIME_SCALE <= self.time_scale <= MAX_TIME_SCALE:
            raise InputError(f"--time-scale {self.time_scale}: must be between {MIN_TIME_SCALE} "
                             f"and {MAX_TIME_SCALE}")
        if not 10 <= self.flush_ms <= 60_000:
            raise InputError(f"--flush-ms {self.flush_ms}: must be between 10 and 60000")
        if self.max_lost < 0:
            raise InputError(f"--max-lost {self.max_lost}: must be 0 or more")
        # Parsed here so that a malformed one stops the run before anything is sent; the
        # summary parses them again from run.json (analysis.thresholds.Goals).
        if self.max_lag is not None:
            parse_duration_ns(self.max_lag, "--max-lag")
        parse_thresholds(self.threshold)
        # Checked here; the plan (replayer.run.plan) parses them again for what it derives.
        parse_shard(self.shard)
        check_distributed(self)
        parse_resolve(self.resolve)
        parse_headers(self.header)
        try:
            if len(self.url_template.format(endpoint="e", port=1)) > 8192:
                raise ValueError("the URL is longer than 8192 characters")
        except (KeyError, IndexError, ValueError, AttributeError, TypeError, OverflowError,
                MemoryError) as exc:
            raise InputError(f"--url-template {self.url_template!r}: only {{endpoint}} and "
                             f"{{port}} can be filled in ({exc})") from None
        check_url_template(self.url_template)
        self.latf = self.latf or ""
        if self.latf and (Path(self.latf).name in ("", ".", "..") or self.latf.endswith("/")):
            raise InputError(f"-latf {self.latf!r}: give a file name (rps_ is put before it), "
                             "e.g. -latf lat.csv or -latf results/lat.csv")
        if self.http_client == "native" and self.protocol == "http":
            scheme = self.url_template.split("://", 1)[0].lower()
            if self.http_version != "1.1" or scheme != "http":
                raise InputError(f"--http-client native: speaks HTTP/1.1 over http:// only (here "
                                 f"--http-version {self.http_version}, {scheme}://); use "
                                 "--http-client curl or auto")
        if self.body is not None and self.body_file is not None:
            raise InputError("--body and --body-file: give one of them")


MAX_STAGES = 1000


def check_live_options(opts: "RunOptions") -> None:
    """Stages, control port and monitoring, as far as they can be checked without the
    schedule (replayer.run.stages checks each stage's overrides)."""
    if opts.stages is not None and not 1 <= opts.stages <= MAX_STAGES:
        raise InputError(f"--stages {opts.stages}: must be between 1 and {MAX_STAGES}")
    if opts.stage_args and opts.stages is None:
        raise InputError(f"--stage.{opts.stage_args[0].split('=', 1)[0]}: give --stages N too "
                         "(the number of stages)")
    if opts.control_port is not None and not 0 <= opts.control_port < 65536:
        raise InputError(f"--control-port {opts.control_port}: must be between 1 and 65535 "
                         "(0: any free port)")
    if opts.control_port is not None and opts.users:
        # The users' pacer does not read the live clock: a PUT would be accepted and ignored.
        raise InputError("--control-port applies to open-loop runs; closed-loop --users runs "
                         "take no live changes (set --users, --spawn-rate and think time "
                         "before the run)")
    if not 0.05 <= opts.monitor_interval <= 3600:
        raise InputError(f"--monitor-interval {opts.monitor_interval:g}: must be between 0.05 "
                         "and 3600 seconds")


URL_SCHEMES = ("http", "https")


def check_url_template(template: str) -> None:
    """Only HTTP URLs: libcurl would take ftp://, file://, dict://... and every request would
    fail as `connect`. HTTP/2 without TLS is --http-version h2c, not a scheme."""
    scheme, sep, _ = template.partition("://")
    if not sep or not scheme or "{" in scheme:
        raise InputError(f"--url-template {template!r}: no scheme; start it with http:// or "
                         "https://, e.g. http://{endpoint}:{port}/")
    if scheme.lower() not in URL_SCHEMES:
        hint = (" (HTTP/2 without TLS: http:// with --http-version h2c)"
                if scheme.lower() in ("h2c", "h2", "http2", "grpc") else "")
        shown = f"{scheme}://" if scheme.isalnum() else repr(scheme)
        raise InputError(f"--url-template {template!r}: scheme {shown} is not HTTP; use "
                         f"http:// or https://{hint}")
    try:
        host = urlsplit(template.format(endpoint="e", port=1)).hostname
    except ValueError as exc:
        raise InputError(f"--url-template {template!r}: not a URL ({exc})") from None
    if not host:
        raise InputError(f"--url-template {template!r}: no host; put {{endpoint}} (or a host "
                         "name) after the scheme, e.g. http://{endpoint}:{port}/")


def check_distributed(opts: RunOptions) -> None:
    if not 0 <= opts.nodes <= MAX_SHARDS:
        raise InputError(f"--nodes {opts.nodes}: must be between 0 (every node) and {MAX_SHARDS}")
    if opts.nodes and opts.ray is None:
        raise InputError(f"--nodes {opts.nodes}: only with --ray (without Ray, run each node's "
                         "share with --shard I/N and --start-at, then replayer merge)")
    if opts.ray is not None and opts.shard != "0/1":
        raise InputError(f"--shard {opts.shard}: --ray gives each node its shard; leave --shard "
                         "out")
    if opts.ray is not None and not opts.ray.strip():
        raise InputError("--ray '': give a Ray address (host:6379, ray://host:10001) or 'auto'")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N, e.g. 0/2 for the first of two nodes") from None
    if not 1 <= n <= MAX_SHARDS or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def parse_resolve(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        host, sep, addr = item.partition("=")
        if not sep or not host or not addr:
            raise InputError(f"--resolve {item!r}: expected HOST=ADDR, e.g. '*=127.0.0.1'")
        out[host] = addr
    return out


def parse_headers(items: list[str]) -> list[str]:
    for item in items:
        name, sep, _ = item.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise InputError(f"--header {item!r}: expected 'Name: value'")
    return list(items)

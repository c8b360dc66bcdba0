"""Runs without a trace file. A run replays a trace (the invoker's -traceFile), sends an open-loop
shape built on the spot (vegeta's -rate and targets, k6's arrival-rate executors: --rate,
--ramp), or runs closed-loop users (Locust's -u -r -t). This module says which kind a run's
options ask for, checks the options only one kind takes, and reads the times and rates they
are written in. The shapes are built by replayer.generate.shapes, the users run by
replayer.run.users; docs/closed-loop.md says how.

Times: a run without a trace counts wall time, written with its unit (30s, 10m, 1h30m, 250ms).
-duration and -warmup keep the invoker's meaning for a trace (a number of trace units), so with
--rate, --ramp or --users they must carry a unit: `--duration 30` there would be ambiguous
(30 minutes, as the invoker's units by default, or 30 seconds, as Locust's -t?). Locust's
-t/--run-time takes a plain number as seconds, as Locust does.
"""
from __future__ import annotations

import re

from replayer.errors import InputError

TRACE, SHAPE, USERS = "trace", "shape", "users"
DEFAULT_TRACE_FILE = "load.json"
# The URL templates a generated run sets itself (replayer.run.loads): not the user's.
GENERATED_TEMPLATES = ("http://{endpoint}:{port}/", "https://{endpoint}:{port}/")
DEFAULT_URL_TEMPLATE = "http://{endpoint}:{port}/"

MAX_SPAN_NS = 366 * 86_400 * 10**9        # a year
MAX_RATE = 10_000_000.0                   # requests per second
MAX_USERS = 1_000_000

_UNITS_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3,
             "µs": 10**3, "ns": 1}
_SPAN_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_PLAIN = re.compile(r"\d+(?:\.\d*)?|\.\d+")
TIME_EXAMPLES = "e.g. 30s, 10m, 1h30m or 250ms"


def parse_timespan_ns(text, where: str, bare_seconds: bool = False, zero: bool = False) -> int:
    """A time as Locust's -t and vegeta's -duration write it ('30s', '10m', '1h30m', '1.5s',
    '250ms') in ns; a plain number is seconds only with bare_seconds (Locust's -t), and '0'
    is 0 wherever zero is allowed."""
    t = str(text).strip()
    if zero and t in ("0", "0s"):
        return 0
    if bare_seconds and _PLAIN.fullmatch(t):
        total = float(t) * 1e9
    else:
        total, pos = 0.0, 0
        for m in _SPAN_PART.finditer(t):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS_NS[m.group(2)]
            pos = m.end()
        if pos == 0 or pos != len(t):
            plain = " (a plain number here would be ambiguous: give its unit)" \
                if _PLAIN.fullmatch(t) else ""
            raise InputError(f"{where} {text!r}: expected a time with its unit, "
                             f"{TIME_EXAMPLES}{plain}")
    if not 0 < total < MAX_SPAN_NS:
        raise InputError(f"{where} {text!r}: must be more than 0 and less than a year")
    return max(1, int(round(total)))


def units_or_time(text: str) -> int | str:
    """-duration and -warmup as given: a number of trace units (int), or a time with its unit
    (kept as written; parse_timespan_ns reads it)."""
    t = str(text).strip()
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if not re.fullmatch(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|us|µs|ns|m|s))+", t):
        raise ValueError(t)
    return t


units_or_time.__name__ = "duration (trace units, or a time such as 30s)"


def parse_rate(text: str, where: str = "--rate") -> float:
    """Requests per second from vegeta's -rate: '1000', '1000/s', '1000/1s', '50/100ms',
    '600/1m'."""
    t = str(text).strip()
    count, slash, per = t.partition("/")
    try:
        n = float(count)
    except ValueError:
        n = float("nan")
    if not slash:
        per_ns = 10**9
    else:
        per = per.strip()
        per_ns = parse_timespan_ns(("1" + per) if per in _UNITS_NS else per, where) \
            if re.fullmatch(r"[\d.]*[a-zµ]+", per) else 0
    if not (n > 0) or per_ns <= 0 or n * 1e9 / per_ns > MAX_RATE:
        raise InputError(f"{where} {text!r}: expected requests per second, e.g. 1000, 1000/s "
                         f"or 50/100ms (more than 0, at most {MAX_RATE:.0f}/s)")
    return n * 1e9 / per_ns


def parse_ramp(text: str, where: str = "--ramp") -> list[tuple[int, float]]:
    """k6's ramping-arrival-rate stages as points TIME:RATE, 'e.g. 0:100,30s:1000,60s:1000':
    the rate at each time, linear in between (two points at one time: a step); the shape ends
    at the last point. [(t_ns, per_second)]."""
    points: list[tuple[int, float]] = []
    for k, item in enumerate(str(text).split(",")):
        at, colon, rate = item.strip().rpartition(":")
        if not colon or not at:
            raise InputError(f"{where} {text!r}: point {k + 1} {item.strip()!r} is not "
                             "TIME:RATE, e.g. 0:100,30s:1000,60s:1000")
        t_ns = parse_timespan_ns(at, f"{where} point {k + 1}", zero=True)
        try:
            r = float(rate)
        except ValueError:
            r = -1.0
        if not 0 <= r <= MAX_RATE:
            raise InputError(f"{where} point {k + 1} {item.strip()!r}: the rate must be a number "
                             f"of requests per second from 0 to {MAX_RATE:.0f}")
        if points and t_ns < points[-1][0]:
            raise InputError(f"{where} point {k + 1} {item.strip()!r}: times must not go back "
                             f"(after {at_text(points[-1][0])})")
        points.append((t_ns, r))
    if len(points) < 2 or points[0][0] != 0:
        raise InputError(f"{where} {text!r}: give at least two points, the first at 0, e.g. "
                         "0:100,30s:1000,60s:1000")
    if points[-1][0] <= 0:
        raise InputError(f"{where} {text!r}: the last point must be after 0")
    if all(r == 0 for _, r in points):
        raise InputError(f"{where} {text!r}: every rate is 0: nothing to send")
    return points


def at_text(t_ns: int) -> str:
    return f"{t_ns / 1e9:g}s"


def load_kind(opts) -> str:
    """TRACE, SHAPE (--rate or --ramp) or USERS (--users)."""
    if opts.users:
        return USERS
    if opts.rate is not None or opts.ramp is not None:
        return SHAPE
    return TRACE


# Options that only one kind of run takes: (field, its default, its spelling).
_USERS_ONLY = (("spawn_rate", 1.0, "--spawn-rate/-r"), ("host", None, "--host/-H"),
               ("user_class", [], "--user-class/-c"), ("class_weights", None, "--class-weights"),
               ("wait_time", [], "--wait-time"), ("path", "/s0", "--path"),
               ("trace_bodies", None, "--trace-bodies"), ("trace_order", "cycle", "--trace-order"))
_SHAPE_ONLY = (("url", None, "--url"), ("targets", None, "--targets"),
               ("arrivals", "constant", "--arrivals"))
# (--seed is left alone: a trace has nothing to draw, and REPLAYER_SEED may be set for others.)
_GENERATED_ONLY = (("run_time", None, "--run-time/-t"),)


def _given(opts, table) -> str | None:
    for field, default, spelling in table:
        if getattr(opts, field) != default:
            return spelling
    return None


def check_load_options(opts) -> None:
    """InputError for options that do not go together (one line naming them), and for times
    and rates that do not parse. Generated runs send HTTP: --protocol becomes http (null
    stays, to measure replayer alone)."""
    kind = load_kind(opts)
    if opts.users < 0 or opts.users > MAX_USERS:
        raise InputError(f"--users {opts.users}: must be between 1 and {MAX_USERS:,}")
    if kind == TRACE:
        extra = _given(opts, _USERS_ONLY) or _given(opts, _SHAPE_ONLY) or \
            _given(opts, _GENERATED_ONLY)
        if extra:
            raise InputError(f"{extra}: only for a run without a trace file, with --users (closed "
                             "loop) or --rate/--ramp (open loop); see docs/closed-loop.md")
        for name, value in (("-duration", opts.duration), ("-warmup", opts.warmup)):
            if isinstance(value, str):
                raise InputError(f"{name} {value}: replaying a trace, {name} counts trace units "
                                 "(minutes, or seconds with -min=false), a plain number; a time "
                                 "with its unit is for --rate, --ramp and --users runs")
        return
    which = "--users" if kind == USERS else ("--rate" if opts.rate is not None else "--ramp")
    if opts.trace_file != DEFAULT_TRACE_FILE:
        raise InputError(f"-traceFile {opts.trace_file} and {which}: a run replays a trace or "
                         "generates its load, not both; give one")
    if opts.url_template not in (DEFAULT_URL_TEMPLATE, *GENERATED_TEMPLATES):
        raise InputError(f"--url-template and {which}: a run without a trace takes its URLs from "
                         + ("--host" if kind == USERS else "--url or --targets"))
    if getattr(opts, "stages", None) is not None:
        raise InputError(f"--stages and {which}: stages replay a trace's units one after "
                         "another; run a generated load once per setting instead")
    if opts.time_scale != 1.0:
        raise InputError(f"--time-scale and {which}: scales a trace's times; give the rate "
                         "itself instead")
    if opts.protocol == "grpc":
        opts.protocol = "http"      # the default, for a trace: these runs send HTTP
    if isinstance(opts.warmup, int) and opts.warmup != 0:
        raise InputError(f"-warmup {opts.warmup}: with {which}, give the warm-up with its unit, "
                         "e.g. --warmup 2m (a plain number would be trace units)")
    warmup_ns = parse_timespan_ns(opts.warmup, "--warmup") \
        if isinstance(opts.warmup, str) else 0
    if kind == USERS:
        _check_users(opts, warmup_ns)
    else:
        _check_shape(opts, which, warmup_ns)


def _check_users(opts, warmup_ns: int) -> None:
    if opts.rate is not None or opts.ramp is not None:
        raise InputError("--users and --rate/--ramp: a run is closed loop (users) or open loop "
                         "(a rate), not both")
    extra = _given(opts, _SHAPE_ONLY)
    if extra:
        raise InputError(f"{extra} and --users: users send to --host (and --path); {extra} is for "
                         "--rate/--ramp runs")
    if opts.duration is not None:
        raise InputError(f"-duration {opts.duration} and --users: a users run lasts -t/--run-time "
                         "(as Locust's), e.g. -t 10m")
    if opts.shard != "0/1" or getattr(opts, "ray", None) is not None:
        raise InputError("--shard/--ray and --users: each node runs its own users; give each "
                         "node its -u instead")
    if not 0 < opts.spawn_rate <= MAX_USERS:
        raise InputError(f"--spawn-rate {opts.spawn_rate}: users started per second, more than 0 "
                         f"and at most {MAX_USERS:,}")
    run_ns = parse_timespan_ns(opts.run_time, "--run-time", bare_seconds=True) \
        if opts.run_time is not None else None
    if run_ns is not None and warmup_ns >= run_ns:
        raise InputError(f"--warmup {opts.warmup}: not shorter than --run-time {opts.run_time}; "
                         "nothing would be measured")
    if opts.host is None and not opts.local_target:
        raise InputError("--users: give the users' --host (e.g. --host http://localhost:9090), "
                         "or --local-target")
    from replayer.run.users import check_user_options
    check_user_options(opts)


def _check_shape(opts, which: str, warmup_ns: int) -> None:
    extra = _given(opts, _USERS_ONLY)
    if extra:
        raise InputError(f"{extra} and {which}: for --users runs; an open-loop shape sends to "
                         "--url or the entries of --targets")
    if opts.rate is not None and opts.ramp is not None:
        raise InputError("--rate and --ramp: give one (a constant rate, or a ramp of rates)")
    if (opts.url is None) == (opts.targets is None):
        raise InputError(f"{which}: give --url URL or --targets FILE (one of them)")
    if opts.ramp is not None:
        points = parse_ramp(opts.ramp)
        if opts.duration is not None or opts.run_time is not None:
            raise InputError("--ramp and --duration/--run-time: the ramp's last point is its end")
        span_ns = points[-1][0]
    else:
        parse_rate(opts.rate)
        if opts.duration is not None and opts.run_time is not None:
            raise InputError("--duration and --run-time: the same thing; give one")
        if opts.duration is None and opts.run_time is None:
            raise InputError(f"--rate {opts.rate}: give how long, e.g. --duration 30s")
        if isinstance(opts.duration, int):
            raise InputError(f"-duration {opts.duration}: with --rate, give the time with its unit, "
                             "e.g. --duration 30s (a plain number would be trace units)")
        span_ns = parse_timespan_ns(opts.duration, "--duration") if opts.duration is not None \
            else parse_timespan_ns(opts.run_time, "--run-time", bare_seconds=True)
    if warmup_ns >= span_ns:
        raise InputError(f"--warmup {opts.warmup}: not shorter than the run ({at_text(span_ns)}); "
                         "nothing would be measured")
    if opts.url is not None:
        from replayer.generate.shapes import parse_url
        parse_url(opts.url, "--url")


def run_span_ns(opts) -> int | None:
    """How long a run without a trace lasts (None: a users run until it is stopped)."""
    kind = load_kind(opts)
    if kind == SHAPE and opts.ramp is not None:
        return parse_ramp(opts.ramp)[-1][0]
    if kind == SHAPE and opts.duration is not None:
        return parse_timespan_ns(opts.duration, "--duration")
    if opts.run_time is None:
        return None
    return parse_timespan_ns(opts.run_time, "--run-time", bare_seconds=True)


def warmup_ns(opts, unit_ns: int) -> int:
    """-warmup in ns: trace units, or a time with its unit (a run without a trace)."""
    if isinstance(opts.warmup, str):
        return parse_timespan_ns(opts.warmup, "--warmup")
    return (opts.warmup or 0) * unit_ns

"""`replayer hourly`: one hour of the serverless mix as a job, what the container's entrypoint
runs (docs/hourly.md).

The hour's plan (replayer.generate.hourly) is made and checked first: anything missing or
malformed is one line naming the variable, exit 2, nothing written or sent. Then the schedule
and plan go into the run directory, `replayer run` replays them (on the trace hour's clock when
the hour has not ended, else from now; its summary goes to stderr), and one JSON line per
invocation is written from the records and the plan, after the run: nothing of it is on the
send path. `--dry-run` prints the plan's lines and sends nothing. Bearer tokens and extra
headers are run headers, so run.json keeps their names only; no message repeats a value.
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar, Iterable, TextIO

from replayer.analysis.records import RECORDS_GLOB
from replayer.errors import InputError, RunError
from replayer.generate.hourly import (HOUR_S, MINUTES, HourPlan, HourSettings, describe,
                                      make_plan, plan_path, read_plan, setting_name,
                                      write_hour)
from replayer.options import opt
from replayer.run.options import MAX_TIME_SCALE, MAX_WORKERS, MIN_TIME_SCALE, RunOptions
from replayer.schedules.schedule import NS_PER_S

SCHEDULE_NAME = "hour.parquet"
LINES_NAME = "invocations.jsonl"
RECORD_COLUMNS = ["event", "scheduled_ns", "sent_ns", "done_ns", "status", "error"]
# RFC 9110 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class HourlyJobOptions(HourSettings):
    """Run one hour of the serverless mix, configured as the Cloud Run hourly load generator
    is (its environment variables, or these flags): plan the hour (see replayer gen hourly),
    replay it on the trace hour's clock (from now when that hour has ended or --time-scale
    is not 1), and write one JSON line per invocation (experiment_id, scenario, event_id,
    trace_hour, function, region, URL, scheduled/sent/done times, status, error) from the
    records after the run. The run directory keeps the schedule, the plan, the records and
    the lines. Exit codes as replayer run's; 2 for a missing or malformed setting, before
    anything is sent.

    examples:
      replayer hourly                       (everything from the environment: the container)
      replayer hourly --dry-run             print the plan, send nothing
      replayer hourly --time-scale 0.001 --start now --log hour.jsonl    the hour in 3.6 s"""

    option_groups: ClassVar[dict[str, str]] = {
        **HourSettings.option_groups,
        "send": "sending (tokens, headers, TLS)",
        "job": "the job (run directory, lines, clock)",
    }

    auth_bearer_token: str | None = opt(None, "bearer token of every invocation (scenario C: "
                                        "of the dispatcher, unless "
                                        "DISPATCHER_AUTH_BEARER_TOKEN)",
                                        env_var="AUTH_BEARER_TOKEN", metavar="TOKEN",
                                        group="send")
    extra_headers_json: str | None = opt(None, "JSON object of extra headers of every "
                                         "invocation (scenario C: of the dispatcher, unless "
                                         "DISPATCHER_EXTRA_HEADERS_JSON)",
                                         env_var="EXTRA_HEADERS_JSON", metavar="JSON",
                                         group="send")
    dispatcher_auth_bearer_token: str | None = opt(None, "scenario C: the dispatcher's bearer "
                                                   "token", env_var="DISPATCHER_AUTH_BEARER_TOKEN",
                                                   metavar="TOKEN", group="send")
    dispatcher_extra_headers_json: str | None = opt(None, "scenario C: the dispatcher's extra "
                                                    "headers (JSON object), instead of "
                                                    "EXTRA_HEADERS_JSON",
                                                    env_var="DISPATCHER_EXTRA_HEADERS_JSON",
                                                    metavar="JSON", group="send")
    verify_tls: bool = opt(True, "verify the TLS certificates of https:// URLs",
                           env_var="VERIFY_TLS", group="send")
    dry_run: bool = opt(False, "print the hour's plan (one JSON line per invocation) and send "
                        "nothing", env_var="DRY_RUN", group="job")
    log: str = opt("-", "where the JSON lines go: - for stdout, or a file; the run directory "
                   f"keeps a copy ({LINES_NAME})", metavar="PATH", group="job")
    out: str | None = opt(None, "run directory (default results/run-<unix time>)", metavar="DIR",
                          group="job")
    start: str = opt("auto", "when the hour starts: hour (at the trace hour's start: "
                     "invocations already due leave at once, late), now, or auto (hour while "
                     "the trace hour lasts and --time-scale is 1, else now)",
                     choices=["auto", "hour", "now"], group="job")
    time_scale: float = opt(1.0, "multiply the hour's times (0.001 replays it in 3.6 s)",
                            group="job")
    workers: int = opt(1, "worker processes", group="job")

    def __post_init__(self):
        super().__post_init__()
        if not MIN_TIME_SCALE <= self.time_scale <= MAX_TIME_SCALE:
            raise InputError(f"--time-scale {self.time_scale}: must be between {MIN_TIME_SCALE} "
                             f"and {MAX_TIME_SCALE}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise InputError(f"--workers {self.workers}: must be between 1 and {MAX_WORKERS}")
        for name in ("auth_bearer_token", "dispatcher_auth_bearer_token"):
            setattr(self, name, _token(getattr(self, name), name))
        self.extra_headers = header_lines(self.extra_headers_json, "extra_headers_json")
        self.dispatcher_headers = header_lines(self.dispatcher_extra_headers_json,
                                               "dispatcher_extra_headers_json")


def _token(value: str | None, name: str) -> str | None:
    """A bearer token, stripped; never repeated in a message."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value) or not value.isascii():
        raise InputError(f"{setting_name(name)}: holds a blank, a control or a non-ASCII "
                         "character; give the token alone (without 'Bearer ')")
    return value


def header_lines(raw: str | None, name: str) -> list[str] | None:
    """A JSON object of headers as 'Name: value' lines (None when unset). Messages name the
    header, never its value."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else "?"
        raise InputError(f"{setting_name(name)}: not valid JSON (at {where}); give an object "
                         'such as {"X-Experiment": "A"}') from None
    if not isinstance(data, dict):
        raise InputError(f"{setting_name(name)}: expected a JSON object of header names to values")
    lines = []
    for key, value in data.items():
        if not _HEADER_NAME.match(key):
            raise InputError(f"{setting_name(name)}: {key[:60]!r} is not a header name (letters, "
                             "digits and !#$%&'*+.^_`|~- only)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InputError(f"{setting_name(name)}: header {key}: the value must be a string or "
                             "a number")
        text = str(value)
        if not text.strip() or any(c in text for c in "\r\n\0") or not text.isascii():
            raise InputError(f"{setting_name(name)}: header {key}: the value is empty or holds a "
                             "line break, NUL or a non-ASCII character")
        lines.append(f"{key}: {text.strip()}")
    return lines


def run_headers(opts: HourlyJobOptions, scenario: str) -> list[str]:
    """The headers every request of the run carries: the bearer token, then the extra
    headers (an extra Authorization replaces the token's, as in the seed). Scenario C takes
    the dispatcher's own when given."""
    token, extra = opts.auth_bearer_token, opts.extra_headers
    if scenario == "C":
        token = opts.dispatcher_auth_bearer_token or token
        if opts.dispatcher_headers is not None:
            extra = opts.dispatcher_headers
    extra = extra or []
    named = {line.partition(":")[0].strip().lower() for line in extra}
    own = [f"Authorization: Bearer {token}"] if token and "authorization" not in named else []
    return own + extra


def start_time(opts: HourlyJobOptions, plan: HourPlan, now_ns: int) -> float | None:
    """The run's --start-at (Unix seconds): the trace hour's start, or None (as soon as the
    workers are ready)."""
    hour_end_ns = plan.start_ns + HOUR_S * NS_PER_S
    if opts.start == "now":
        return None
    if opts.start == "hour":
        if opts.time_scale != 1.0:
            raise InputError(f"--start hour: the trace hour's clock needs --time-scale 1 (not "
                             f"{opts.time_scale:g}); use --start now")
        if now_ns >= hour_end_ns:
            raise InputError(f"--start hour: the trace hour {plan.trace_hour_text} has ended; "
                             "use --start now to replay it from now")
    elif opts.time_scale != 1.0 or now_ns >= hour_end_ns:
        return None
    return plan.start_ns / NS_PER_S


def _log(message: str) -> None:
    print(f"replayer hourly: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the JSON lines


def utc_text(ns: int | None) -> str | None:
    """A Unix time in ns as ISO 8601 UTC with microseconds."""
    if ns is None:
        return None
    return (_EPOCH + timedelta(microseconds=ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _line(plan: dict, inv: dict, scheduled_ns: int | None, sent_ns: int | None,
          done_ns: int | None, lag_ns: int | None, latency_ns: int | None, status: int | None,
          error: str | None, dry_run: bool) -> dict:
    return {"experiment_id": plan["experiment_id"], "scenario": plan["scenario"],
            "event_id": inv["event_id"], "trace_hour": plan["trace_hour"],
            "function_id": inv["function_id"], "invocation_index": inv["invocation_index"],
            "region": inv["region"], "url": inv["url"], "slot_minute": inv["slot_minute"],
            "jitter_ms": inv["jitter_ms"],
            "scheduled_time_utc": utc_text(scheduled_ns), "sent_time_utc": utc_text(sent_ns),
            "done_time_utc": utc_text(done_ns), "scheduled_ns": scheduled_ns,
            "sent_ns": sent_ns, "done_ns": done_ns, "lag_ms": _ms(lag_ns),
            "latency_ms": _ms(latency_ns), "status": status, "error": error, "dry_run": dry_run}


def dry_run_lines(plan: dict, start_ns: int) -> list[dict]:
    """The plan's lines: when each invocation would be sent from start_ns, nothing sent."""
    return [_line(plan, inv, start_ns + inv["offset_ns"], None, None, None, None, None, None,
                  True) for inv in plan["invocations"]]


def invocation_lines(plan: dict, run_dir: Path, problems: list[str]) -> list[dict]:
    """One line per invocation of the plan, from the run's records (an invocation without a
    record: error "no_record"); lag and latency as replayer.analysis.model derives them."""
    from replayer.analysis.model import Columns
    from replayer.analysis.records import iter_batches

    found: dict[int, tuple] = {}
    for batch in iter_batches(run_dir, RECORD_COLUMNS, problems):
        c = Columns.decode(batch)
        lag, has_lag = c.per_record("lag_ns")
        latency, has_latency = c.per_record("latency_ns")
        for i in range(c.n):
            error = c.errors[c.error[i]]
            found[int(c.event[i])] = (
                int(c.scheduled_ns[i]), int(c.sent_ns[i]) if c.has_sent[i] else None,
                int(c.done_ns[i]) if c.has_done[i] else None,
                int(lag[i]) if has_lag[i] else None,
                int(latency[i]) if has_latency[i] else None,
                int(c.status[i]) or None, None if error == "ok" else error)
    lines = []
    for inv in plan["invocations"]:
        record = found.get(inv["event"])
        if record is None:
            lines.append(_line(plan, inv, None, None, None, None, None, None, "no_record", False))
        else:
            lines.append(_line(plan, inv, *record, False))
    return lines


def write_lines(lines: Iterable[dict], out: TextIO) -> int:
    n = 0
    for line in lines:
        out.write(json.dumps(line) + "\n")
        n += 1
    out.flush()
    return n


def find_plan(run_dir: Path) -> Path:
    """The plan of a run's schedule: NAME.plan.json beside the NAME.parquet run.json names,
    or in the run directory."""
    from replayer.analysis.model import run_metadata

    trace = (run_metadata(run_dir).get("options") or {}).get("trace_file")
    candidates = [plan_path(trace), run_dir / plan_path(trace).name] if trace else []
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates) or "run.json's trace_file"
    raise InputError(f"{run_dir}: no hourly plan (looked for {looked}); -f invocations is for "
                     "runs of replayer gen hourly's schedules, whose NAME.plan.json stays beside "
                     "NAME.parquet")


def export_invocations(run_dir: Path, out: Path, problems: list[str]) -> int:
    """`replayer export RUN -f invocations`: the run's JSON lines, from its records and plan."""
    plan = read_plan(find_plan(run_dir))
    lines = invocation_lines(plan, run_dir, problems)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        return write_lines(lines, f)


# ---------------------------------------------------------------- the job


@contextlib.contextmanager
def _log_output(path: str):
    """stdout for '-', else the file, opened (so checked) before anything is sent."""
    if path == "-":
        yield sys.stdout
        return
    try:
        f = open(path, "w")
    except OSError as exc:
        raise InputError(f"--log {path}: cannot write ({exc.strerror}); give a writable file or "
                         "- for stdout") from None
    with f:
        yield f


def hourly_command(opts: HourlyJobOptions) -> int:
    from replayer.run.rundir import prepare_run_dir, run_dir_path
    from replayer.run.supervisor import Supervisor

    plan = make_plan(opts)
    headers = run_headers(opts, plan.scenario)
    shown = ", ".join(h.partition(":")[0] for h in headers) or "none"
    with _log_output(opts.log) as log:
        if opts.dry_run:
            write_lines(dry_run_lines(plan.to_json(), plan.start_ns), log)
            _log(f"{describe(plan)}; headers {shown}; dry run: nothing sent")
            return 0
        now_ns = time.time_ns()
        start_at = start_time(opts, plan, now_ns)
        run_dir = run_dir_path(opts.out)
        prepare_run_dir(run_dir, len(plan.invocations))
        schedule, _ = write_hour(plan, run_dir / SCHEDULE_NAME)
        run_opts = RunOptions(
            trace_file=str(schedule), workers=opts.workers, duration=MINUTES,
            warmup=0, minute=True, port=plan.port, timeout=opts.timeout_s, latf="",
            protocol="http", url_template=plan.url_template, header=headers, out=str(run_dir),
            time_scale=opts.time_scale, start_at=start_at, insecure=not opts.verify_tls)
        _log(f"{describe(plan)}; headers {shown}")
        if start_at is not None and start_at * NS_PER_S < now_ns:
            late = sum(plan.start_ns + inv.offset_ns < now_ns for inv in plan.invocations)
            _log(f"the trace hour started {(now_ns - plan.start_ns) / 60e9:.1f} min ago: {late} "
                 "invocation(s) due before now leave at once, late (--start now replays the hour "
                 "from now)")
        failure = None
        try:
            # The run's summary goes to stderr: stdout carries the JSON lines only.
            with contextlib.redirect_stdout(sys.stderr):
                Supervisor(run_opts).run()
        except RunError as exc:
            failure = exc          # the lines of what was recorded are still written
        # A run that stopped before recording anything (workers that never started) has no
        # lines to give; its error says why.
        if any(run_dir.glob(RECORDS_GLOB)):
            problems: list[str] = []
            lines = invocation_lines(plan.to_json(), run_dir, problems)
            for problem in problems:
                _log(f"warning: {problem}")
            with open(run_dir / LINES_NAME, "w") as kept:
                write_lines(lines, kept)
            write_lines(lines, log)
    if failure is not None:
        raise failure
    return 0

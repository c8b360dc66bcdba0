"""Open-loop shapes without a trace file, as vegeta and k6 send them: a constant rate (vegeta's
`-rate 1000/s -duration 30s`, k6's constant-arrival-rate) or a ramp of rates (k6's
ramping-arrival-rate: a rate at each point, linear in between), arrivals evenly spaced or
Poisson, to one URL or to the entries of a vegeta targets file in turn. Built as a Schedule
before the run, so the run, its records, reports and exports are a trace's.

Arrival n (from 0) of a constant shape is at the time the expected count Λ(t) = ∫ rate reaches
n, as k6 starts its iterations; Poisson arrivals are a Poisson process of that rate (unit
exponential gaps in Λ, mapped back to time), reproducible with --seed. Request n goes to entry
n mod E of E targets, as vegeta's round robin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from replayer.errors import InputError
from replayer.run.generated import (parse_ramp, parse_rate, parse_timespan_ns, run_span_ns)
from replayer.schedules.content import Payload
from replayer.schedules.schedule import NS_PER_S, Schedule

# vegeta's methods (lib/targets.go)
METHODS = ("HEAD", "GET", "PUT", "POST", "PATCH", "OPTIONS", "DELETE")
MAX_REQUESTS = 400_000_000          # 4.8 GB of schedule columns
MAX_TARGETS = 100_000


@dataclass
class TargetEntry:
    """One entry of a targets file (or --url): what each of its requests carries."""
    method: str | None
    url: str
    headers: list[str] = field(default_factory=list)
    body: bytes | None = None
    where: str = ""


def parse_url(url: str, where: str) -> tuple[str, str, str]:
    """(scheme, endpoint 'host:port', path and query) of an http:// or https:// URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{where} {url!r}: not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"{where} {url!r}: expected an http:// or https:// URL with a host, e.g. "
                         "http://localhost:8080/path")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{where} {url!r}: user and password in the URL are not supported; send "
                         "an Authorization header instead")
    scheme = parts.scheme.lower()
    port = port or (443 if scheme == "https" else 80)
    host = parts.hostname
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, endpoint, path


def read_targets(path: str) -> list[TargetEntry]:
    """A vegeta targets file (http format): entries 'METHOD URL', then header lines 'Name:
    value', then optionally '@FILE' (the body, read from FILE, relative to the working
    directory as vegeta reads it) or '@<<TAG' (the body inline, up to a line TAG); a blank line
    ends an entry (an entry may also follow the previous one directly); lines starting with
    '#' are comments."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"--targets {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--targets {path}: not UTF-8 text (vegeta's http format: 'GET URL' "
                         "lines)") from None
    entries: list[TargetEntry] = []
    current: TargetEntry | None = None
    k = 0
    while k < len(lines):
        where = f"--targets {path} line {k + 1}"
        line = lines[k].strip()
        k += 1
        if not line:
            current = None
            continue
        if line.startswith("#"):
            continue
        first = line.split(" ", 1)[0]
        if current is None or (first in METHODS and " " in line):
            method, _, url = line.partition(" ")
            if method not in METHODS or not url.strip():
                raise InputError(f"{where}: {line[:80]!r} is not 'METHOD URL' (methods: "
                                 f"{', '.join(METHODS)})")
            parse_url(url, where)
            current = TargetEntry(method, url.strip(), where=where)
            entries.append(current)
            if len(entries) > MAX_TARGETS:
                raise InputError(f"--targets {path}: more than {MAX_TARGETS:,} entries")
            continue
        if line.startswith("@<<"):
            tag, body = line[3:], []
            while k < len(lines) and lines[k] != tag:
                body.append(lines[k] + "\n")
                k += 1
            if k == len(lines):
                raise InputError(f"{where}: no line {tag!r} ends the inline body")
            k += 1
            current.body = "".join(body).encode()
            current = None
            continue
        if line.startswith("@"):
            try:
                current.body = Path(line[1:]).read_bytes()
            except OSError as exc:
                raise InputError(f"{where}: body file {line[1:]}: {exc.strerror or exc} (read "
                                 "from the working directory, as vegeta)") from None
            current = None
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or not value.strip() or " " in name.strip():
            raise InputError(f"{where}: {line[:80]!r} is not a header 'Name: value' (or a body "
                             "'@FILE', or a new entry 'METHOD URL')")
        current.headers.append(f"{name.strip()}: {value.strip()}")
    if not entries:
        raise InputError(f"--targets {path}: no entries ('GET http://host/path' lines)")
    return entries


def rate_points(opts) -> list[tuple[int, float]]:
    """The shape as (t_ns, per_second) points, linear in between."""
    if opts.ramp is not None:
        return parse_ramp(opts.ramp)
    span = run_span_ns(opts)
    rate = parse_rate(opts.rate)
    return [(0, rate), (span, rate)]


def expected_count(points: list[tuple[int, float]]) -> np.ndarray:
    """Λ at each point: the requests expected from the start up to it."""
    t = np.array([p[0] for p in points], dtype=np.float64) / 1e9
    r = np.array([p[1] for p in points], dtype=np.float64)
    return np.concatenate([[0.0], np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(t))])


def invert(points: list[tuple[int, float]], y: np.ndarray) -> np.ndarray:
    """The times (ns from the start) at which Λ reaches each y (0 <= y < Λ(end))."""
    t = np.array([p[0] for p in points], dtype=np.float64) / 1e9
    r = np.array([p[1] for p in points], dtype=np.float64)
    lam = expected_count(points)
    seg = np.clip(np.searchsorted(lam, y, side="right") - 1, 0, len(points) - 2)
    span = t[seg + 1] - t[seg]
    slope = np.divide(r[seg + 1] - r[seg], span, out=np.zeros_like(span), where=span > 0)
    dy = y - lam[seg]
    b = r[seg]
    # a/2 dt² + b dt = dy, solved without cancellation: dt = 2 dy / (b + sqrt(b² + 2 a dy))
    root = np.sqrt(np.maximum(b * b + 2 * slope * dy, 0.0))
    denom = b + root
    dt = np.divide(2 * dy, denom, out=np.zeros_like(dy), where=denom > 0)
    return np.round((t[seg] + np.minimum(dt, span)) * 1e9).astype(np.int64)


def arrival_times(points: list[tuple[int, float]], arrivals: str, seed: int) -> np.ndarray:
    """Sorted due times (ns from the start) of the shape's requests."""
    total = float(expected_count(points)[-1])
    if total > MAX_REQUESTS:
        raise InputError(f"the shape holds {total:,.0f} requests, more than {MAX_REQUESTS:,}: "
                         "shorten it or split it over nodes (--shard)")
    if arrivals == "poisson":
        rng = np.random.default_rng(seed)
        n = int(total + 10 * np.sqrt(total) + 10)
        y = np.cumsum(rng.exponential(1.0, n))
        while y[-1] < total:       # rare: the draw ran out before the end
            y = np.concatenate([y, y[-1] + np.cumsum(rng.exponential(1.0, n))])
        y = y[y < total]
    else:
        y = np.arange(int(np.ceil(total - 1e-9)), dtype=np.float64)
    return np.sort(invert(points, y))


def shape_entries(opts) -> list[TargetEntry]:
    if opts.targets is not None:
        return read_targets(opts.targets)
    return [TargetEntry(None, opts.url, where="--url")]


def shape_schedule(opts) -> tuple[Schedule, str]:
    """The run's schedule and the scheme of its URLs (http or https; one for all)."""
    entries = shape_entries(opts)
    schemes = {parse_url(e.url, e.where)[0] for e in entries}
    if len(schemes) > 1:
        raise InputError(f"--targets {opts.targets}: mixes http:// and https:// URLs; one run "
                         "sends one scheme (split the file)")
    endpoints: dict[str, int] = {}
    payloads, entry_target = [], []
    for e in entries:
        _, endpoint, path = parse_url(e.url, e.where)
        entry_target.append(endpoints.setdefault(endpoint, len(endpoints)))
        payloads.append(Payload(body=e.body, method=e.method, path=path, headers=list(e.headers),
                                name=path))
    points = rate_points(opts)
    t_ns = arrival_times(points, opts.arrivals, opts.seed)
    if len(t_ns) == 0:
        raise InputError("the shape holds no request (its rate is too low for its length)")
    index = np.arange(len(t_ns), dtype=np.int64) % len(entries)
    schedule = Schedule(
        t_ns=t_ns, target=np.asarray(entry_target, np.int32)[index], targets=list(endpoints),
        payload=index.astype(np.int32), payloads=payloads, unit_ns=NS_PER_S,
        meta={"shape": {"points": [[t, r] for t, r in points], "arrivals": opts.arrivals,
                        "seed": opts.seed, "entries": len(entries)}},
        source=describe(opts, len(t_ns)))
    return schedule, schemes.pop()


def describe(opts, n: int) -> str:
    """What a shape run sends, for its log line: '--rate 1000 for 30s (30000 requests,
    constant arrivals) to http://...'."""
    what = f"--ramp {opts.ramp}" if opts.ramp is not None else \
        f"--rate {opts.rate} for {parse_timespan_ns(opts.duration or opts.run_time, 'time', True) / 1e9:g}s"
    to = f"--targets {opts.targets}" if opts.targets is not None else opts.url
    return f"{what} ({n} requests, {opts.arrivals} arrivals) to {to}"

"""Pass/fail goals of a run, as k6 users write them: `--threshold 'latency.p99<500ms'`.

    METRIC[{cls=NAME|target=NAME}][.AGGREGATION] OP VALUE[UNIT]

  latency, latency_intended, lag   durations (replayer.analysis.model.DURATIONS) with an
                                   aggregation: p50, p90, p95, p99, p99.9 (any pN, or k6's
                                   p(N)), min, max, mean; units ns, us, µs, ms, s (a bare
                                   number is milliseconds, as in k6)
  errors                           share of the requests that failed (not answered ok, never
                                   sent included): 1% or 0.01; errors.count: how many
  rate.sent, rate.answered,        requests per second (stats.rates), a bare number or N/s
  rate.intended
  OP                               <, <=, >, >=, ==

A threshold is met when its value, taken over the requests the summary counts (measured:
warm-up excluded unless the report includes it) and the class or target named, stands in
that relation to VALUE. One with no value (no requests of that class, none answered, a name
no request has) is not met, and says why. Parsed once when the options are built
(`parse_threshold`: a malformed one is exit 2 before anything is sent), evaluated in the
passes over the records (`ThresholdEvaluator`: the run's streamed summary and the report's
loaded columns alike).

Goals: the thresholds with the verdict's limits (--max-lag, --max-lost) and --strict, as a
run's options hold them (run.json keeps them, so a report judges the run as it was judged).
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

import numpy as np

from replayer.analysis import fmt, stats
from replayer.analysis.model import Columns
from replayer.errors import InputError

FORM = ("METRIC[{cls=NAME|target=NAME}].AGG OP VALUE, e.g. 'latency.p99<500ms', "
        "'latency{cls=urgent}.p95<=0.2s', 'errors<1%', 'lag.max<10ms', 'rate.sent>=990'")
DURATION_METRICS = {"latency": "latency_ns", "latency_intended": "latency_intended_ns",
                    "lag": "lag_ns"}
METRICS = (*DURATION_METRICS, "errors", "rate")
DURATION_AGGREGATIONS = ("p50", "p90", "p95", "p99", "p99.9", "min", "max", "mean")
RATE_AGGREGATIONS = ("sent", "answered", "intended")
ERROR_AGGREGATIONS = ("count",)
TAG_KEYS = {"cls": "cls", "class": "cls", "target": "target"}
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt,
             ">": operator.gt}
DURATION_UNITS_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}
RATE_UNITS = ("", "/s", "req/s", "rps")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PERCENTILE = re.compile(r"p\(?\s*(\d+(?:\.\d+)?)\s*\)?$")
_METRIC = re.compile(r"[A-Za-z_]+")
_AGGREGATION = re.compile(r"[^<>=!\s]*")       # up to the operator


@dataclass(frozen=True)
class Threshold:
    expr: str
    metric: str                         # one of METRICS
    aggregation: str | None             # p99 / max / mean / min, sent / answered, count, None
    percentile: float | None            # the p of a pN aggregation (max: 100)
    tags: tuple[tuple[str, str], ...]   # (cls | target, name)
    op: str
    limit: float                        # ns, a share (0-1), requests/s or a count

    def met(self, value: float | None) -> bool:
        return value is not None and bool(OPERATORS[self.op](value, self.limit))

    def show(self, value: float | None) -> str:
        """A value of this threshold's metric, for people."""
        if value is None:
            return "-"
        if self.metric in DURATION_METRICS:
            return fmt.duration(value)
        if self.metric == "errors":
            return f"{int(value):,}" if self.aggregation == "count" else fmt.share(value)
        return f"{fmt.rate(value)} req/s"


def _fail(expr: str, where: str, pos: int, what: str):
    raise InputError(f"{where} {expr!r}: {what} at character {pos + 1}; the form is {FORM}")


def parse_duration_ns(text: str, where: str) -> int:
    """'1ms', '500us', '0.2s', '250ns' (a unit is required) as nanoseconds."""
    m = _NUMBER.match(text.strip())
    unit = text.strip()[m.end():].strip() if m else ""
    if not m or unit not in DURATION_UNITS_NS:
        raise InputError(f"{where} {text!r}: expected a duration with a unit (ns, us, µs, ms, "
                         "s), e.g. 2ms or 500us")
    value = float(m.group()) * DURATION_UNITS_NS[unit]
    if not 0 < value < 1e18:
        raise InputError(f"{where} {text!r}: must be more than 0 and less than 31 years")
    return max(1, int(round(value)))


def _tags(expr: str, where: str, body: str, start: int) -> tuple[tuple[str, str], ...]:
    tags: dict[str, str] = {}
    pos = start
    for item in body.split(","):
        key, sep, value = _split_tag(item)
        key, value = key.strip(), value.strip().strip("'\"")
        if not sep or key not in TAG_KEYS or not value:
            _fail(expr, where, pos,
                  f"expected cls=NAME or target=NAME inside {{}}, not {item.strip()!r}")
        if TAG_KEYS[key] in tags:
            _fail(expr, where, pos, f"{key} given twice")
        tags[TAG_KEYS[key]] = value
        pos += len(item) + 1
    return tuple(sorted(tags.items()))


def _split_tag(item: str) -> tuple[str, str, str]:
    """'cls=urgent' or k6's 'cls:urgent' into key, separator, value."""
    cut = min((i for i in (item.find("="), item.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return item, "", ""
    return item[:cut], item[cut], item[cut + 1:]


def _aggregation(expr: str, where: str, metric: str, agg: str | None,
                 pos: int) -> tuple[str | None, float | None]:
    if metric in DURATION_METRICS:
        if agg is None:
            _fail(expr, where, pos, f"{metric} needs an aggregation "
                  f"({', '.join(DURATION_AGGREGATIONS)} or any pN), e.g. {metric}.p99")
        if agg in ("min", "mean"):
            return agg, None
        if agg == "max":
            return "max", 100.0
        m = _PERCENTILE.match(agg)
        if m and 0 < float(m.group(1)) <= 100:
            p = float(m.group(1))
            return ("max" if p == 100 else f"p{p:g}"), p
        _fail(expr, where, pos, f"unknown aggregation {agg!r} for {metric} (use "
              f"{', '.join(DURATION_AGGREGATIONS)} or any pN with 0 < N <= 100)")
    if metric == "rate":
        if agg not in RATE_AGGREGATIONS:
            _fail(expr, where, pos, f"rate needs one of .{', .'.join(RATE_AGGREGATIONS)}"
                  + ("" if agg is None else f", not .{agg}"))
        return agg, None
    if agg not in (None, *ERROR_AGGREGATIONS):
        _fail(expr, where, pos, f"errors takes no aggregation but .count, not .{agg}")
    return agg, None


def _limit(expr: str, where: str, metric: str, agg: str | None, text: str, pos: int) -> float:
    m = _NUMBER.match(text)
    if not m:
        _fail(expr, where, pos, f"expected a number after the operator, not {text!r}")
    number = float(m.group())
    unit = text[m.end():].strip()
    if not math.isfinite(number):
        _fail(expr, where, pos, "the value must be finite")
    if metric in DURATION_METRICS:
        if unit == "":
            return number * 1e6            # k6: a bare number is milliseconds
        if unit not in DURATION_UNITS_NS:
            _fail(expr, where, pos + m.end(), f"{metric} is a duration: give ns, us, µs, ms "
                  f"or s, not {unit!r}")
        return number * DURATION_UNITS_NS[unit]
    if metric == "rate":
        if unit not in RATE_UNITS:
            _fail(expr, where, pos + m.end(), f"a rate is requests per second: a number or "
                  f"N/s, not {unit!r}")
        return number
    if agg == "count":
        if unit:
            _fail(expr, where, pos + m.end(), f"errors.count is a number of requests, not {unit!r}")
        return number
    if unit == "%":
        return number / 100
    if unit or not 0 <= number <= 1:
        _fail(expr, where, pos + m.end(), "errors is a share: a percentage (1%) or a "
              "fraction between 0 and 1 (0.01)")
    return number


def parse_threshold(expr: str, where: str = "--threshold") -> Threshold:
    """One threshold expression (the module doc's form); an InputError naming `where`, the
    expression, the character where it goes wrong and the accepted form otherwise."""
    text = expr
    pos = len(text) - len(text.lstrip())
    m = _METRIC.match(text, pos)
    if not m:
        _fail(expr, where, pos, "expected a metric (" + ", ".join(METRICS) + ")")
    metric = m.group()
    if metric not in METRICS:
        _fail(expr, where, pos, f"unknown metric {metric!r} (metrics: {', '.join(METRICS)})")
    pos = m.end()
    tags: tuple[tuple[str, str], ...] = ()
    if text.startswith("{", pos):
        close = text.find("}", pos)
        if close < 0:
            _fail(expr, where, pos, "'{' is not closed")
        tags = _tags(expr, where, text[pos + 1:close], pos + 1)
        pos = close + 1
    agg = None
    agg_pos = pos
    if text.startswith(".", pos):
        m = _AGGREGATION.match(text, pos + 1)
        agg, agg_pos, pos = m.group(), pos + 1, m.end()
        if not agg:
            _fail(expr, where, agg_pos, "expected an aggregation after '.'")
    aggregation, percentile = _aggregation(expr, where, metric, agg, agg_pos)
    while pos < len(text) and text[pos].isspace():
        pos += 1
    op = next((o for o in OPERATORS if text.startswith(o, pos)), None)
    if op is None:
        _fail(expr, where, pos, "expected an operator (<, <=, >, >=, ==)")
    pos += len(op)
    rest = text[pos:]
    value_pos = pos + len(rest) - len(rest.lstrip())
    limit = _limit(expr, where, metric, aggregation, rest.strip(), value_pos)
    return Threshold(expr=expr.strip(), metric=metric, aggregation=aggregation,
                     percentile=percentile, tags=tags, op=op, limit=limit)


def parse_thresholds(exprs, where: str = "--threshold") -> tuple[Threshold, ...]:
    return tuple(parse_threshold(e, where) for e in exprs or ())


# ---------------------------------------------------------------- goals


@dataclass(frozen=True)
class Goals:
    """What a run must meet: the verdict's limits and the thresholds. max_lag_ns None: the
    verdict's default (stats.default_max_lag_ns)."""
    max_lag_ns: int | None = None
    max_lost: int = 0
    thresholds: tuple[Threshold, ...] = ()

    @classmethod
    def from_options(cls, options: dict | None, where: str = "run.json options") -> "Goals":
        """The goals a run's options (RunOptions, as run.json keeps them) set."""
        options = options or {}
        max_lag = options.get("max_lag")
        max_lost = options.get("max_lost")
        return cls(
            max_lag_ns=None if max_lag in (None, "") else parse_duration_ns(str(max_lag),
                                                                            f"{where} max_lag"),
            max_lost=int(max_lost) if isinstance(max_lost, int) and max_lost >= 0 else 0,
            thresholds=parse_thresholds(options.get("threshold") or (), f"{where} threshold"))


# ---------------------------------------------------------------- evaluation


class _Values:
    """One threshold's numbers over its requests, in the passes of StreamedPercentiles."""

    def __init__(self, t: Threshold):
        self.t = t
        self.requests = self.sent = self.ok = 0
        self.count = self.total = 0
        self.min: int | None = None
        self.percentiles = (stats.StreamedPercentiles((t.percentile,))
                            if t.percentile is not None else None)

    def open(self) -> bool:
        return self.percentiles is not None and self.percentiles.open()

    def add(self, c: Columns, where: np.ndarray, first: bool) -> None:
        t = self.t
        if first:
            self.requests += int(np.count_nonzero(where))
            self.sent += int(np.count_nonzero(where & c.sent))
            self.ok += int(np.count_nonzero(where & c.ok))
        if t.metric not in DURATION_METRICS:
            return
        values = c.duration(DURATION_METRICS[t.metric], where)
        if first and values.size:
            self.count += values.size
            self.total += stats.exact_sum(values)
            low = int(values.min())
            self.min = low if self.min is None else min(self.min, low)
        if self.percentiles is not None:
            self.percentiles.add(values)

    def value(self, duration_ns: float | None) -> tuple[float | None, str | None]:
        """The threshold's value, or None and why there is none."""
        t = self.t
        if t.metric == "errors":
            if not self.requests:
                return None, "no requests"
            failed = self.requests - self.ok
            return (failed if t.aggregation == "count" else failed / self.requests), None
        if t.metric == "rate":
            r = stats.rates(self.requests, self.sent, self.ok, duration_ns)
            return (r[t.aggregation], None) if r["intended"] is not None else \
                (None, "no rate (fewer than two requests, or all due at once)")
        if not self.count:
            return None, ("no requests sent" if t.metric == "lag" else "no successful requests")
        if t.aggregation == "mean":
            return self.total / self.count, None
        if t.aggregation == "min":
            return self.min, None
        return self.percentiles.values()[0], None


class ThresholdEvaluator:
    """Thresholds evaluated over record batches, in passes (the protocol of
    stats.StreamedDistribution: add every batch each pass, end_pass, until open() is false).
    `classes`: class names by index (model.class_table); warm-up records are left out
    unless include_warmup."""

    COLUMNS = ["phase", "error", "scheduled_ns", "sent_ns", "done_ns", "target", "cls"]

    def __init__(self, thresholds, classes: list[str], include_warmup: bool = False):
        self.values = [_Values(t) for t in thresholds]
        self.classes = list(classes)
        self.include_warmup = include_warmup
        self.passes = 0
        self.counted = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.targets_seen: list[str] = []
        self.classes_seen: set[int] = set()

    def open(self) -> bool:
        return self.passes == 0 or any(v.open() for v in self.values)

    def _class_index(self, name: str) -> int | None:
        if name in self.classes:
            return self.classes.index(name)
        if re.fullmatch(r"\d+", name):
            return int(name)
        m = re.fullmatch(r"class(\d+)", name)      # the name a summary gives an unnamed class
        return int(m.group(1)) if m and int(m.group(1)) >= len(self.classes) else None

    def add(self, c: Columns) -> None:
        if not self.values or not c.n:
            return
        first = self.passes == 0
        counted = np.ones(c.n, bool) if self.include_warmup else c.measured
        if first:
            self.counted += int(np.count_nonzero(counted))
            if counted.any():
                scheduled = c.scheduled_ns[counted]
                lo, hi = int(scheduled.min()), int(scheduled.max())
                self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
                self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
            for name in c.targets:
                if name not in self.targets_seen:
                    self.targets_seen.append(name)
            if c.cls is not None:
                self.classes_seen.update(np.unique(c.cls[counted]).tolist())
        for v in self.values:
            if not first and not v.open():
                continue
            where = counted
            for key, name in v.t.tags:
                if key == "target":
                    code = c.targets.index(name) if name in c.targets else -1
                    where = where & (c.target == code)
                else:
                    k = self._class_index(name)
                    where = where & (c.cls == (-2 if k is None else k))
            v.add(c, where, first)

    def end_pass(self) -> None:
        for v in self.values:
            if v.percentiles is not None and v.percentiles.open():
                v.percentiles.end_pass()
        self.passes += 1

    def _unknown(self, t: Threshold) -> str | None:
        """Why a threshold's class or target matches no request at all, if it does not."""
        for key, name in t.tags:
            if key == "target" and name not in self.targets_seen:
                known = ", ".join(self.targets_seen[:8]) or "none"
                return f"no target named {name!r} (targets: {known})"
            if key == "cls":
                k = self._class_index(name)
                if k is None or k not in self.classes_seen:
                    known = ", ".join(self.classes[:8]) or "none named in run.json"
                    return f"no request of class {name!r} (classes: {known})"
        return None

    def results(self) -> list[dict]:
        """[{expr, value, met, shown, reason}] in the order given: value in the metric's unit
        (ns, a share, requests/s, a count), reason (why there is no value) or None."""
        duration = (stats.schedule_duration_ns(self.counted, self.first_ns, self.last_ns)
                    if self.counted else None)
        out = []
        for v in self.values:
            t = v.t
            unknown = self._unknown(t)
            value, reason = (None, unknown) if unknown else v.value(duration)
            out.append({"expr": t.expr, "value": value, "met": t.met(value),
                        "shown": t.show(value), "reason": reason})
        return out


def evaluate(thresholds, c: Columns, classes: list[str],
             include_warmup: bool = False) -> list[dict]:
    """ThresholdEvaluator's results on columns in memory (the report's)."""
    evaluator = ThresholdEvaluator(thresholds, classes, include_warmup)
    while evaluator.open():
        evaluator.add(c)
        evaluator.end_pass()
    return evaluator.results()

"""Closed-loop users, as Locust runs them (`locust --headless -u 50 -r 5 -t 10m --host URL`):
N users, started R per second and spread over the workers (user u on worker u mod W), each
sending a request, waiting for its answer, waiting its think time, and sending again, until
the run time is over; then the requests in flight are awaited. The loop is C
(replayer._pacer UserPacer); this module is what surrounds it: the user classes (what a user
sends, how long it thinks, how many of each class), the model that says what each event was,
the worker's transport and pacer, and the records.

Event ids are unique in the run: user u's k-th request (from 0) is event k * N + u, so a
record says which user sent it (event mod N) and which of its requests it was (event div N);
run.json's "users" holds N. A request's scheduled time is when its user decided to send it
(its start, or its previous answer + think time), so lag and both latencies keep their
open-loop meaning. Memory is bounded by the users, not by the run's length: nothing is sized
by the number of requests.

User classes (Locust's, with the muBench locustfile's two):
  stochastic (StochasticBenchmarkUser)  GET --path (default /s0) of --host
  trace (TraceDrivenBenchmarkUser)      POST of the JSON call traces of --trace-bodies to
                                        --path, one body per request, cycled (user u's k-th
                                        request: body (u + k) mod n) or sampled with --seed
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from replayer.analysis.model import Columns
from replayer.analysis.records import RecordWriter
from replayer.errors import InputError
from replayer.run.generated import parse_timespan_ns, MAX_SPAN_NS
from replayer.schedules.content import Payload, RequestClass

# The C side's numbers (replayer._pacer WAIT_*, PICK_*: users.pxd).
WAIT_CONSTANT, WAIT_BETWEEN, WAIT_PACING, WAIT_POISSON = 0, 1, 2, 3
PICK_CYCLE, PICK_SAMPLE = 0, 1

CLASS_NAMES = {"stochastic": "stochastic", "stochasticbenchmarkuser": "stochastic",
               "trace": "trace", "tracedrivenbenchmarkuser": "trace"}
MAX_BODIES = 100_000             # distinct bodies (one request template each)
MAX_SEQUENCE = 10_000_000        # bodies in the file's order, duplicates included
MAX_BODY_BYTES = 1 << 30         # all distinct bodies together
FOREVER_NS = MAX_SPAN_NS         # a users run without -t: until it is stopped

_WAIT = re.compile(r"^\s*(constant|between|constant_throughput|constant_pacing|poisson)\s*"
                   r"\(\s*([^,()]*?)\s*(?:,\s*([^,()]*?)\s*)?\)\s*$")


@dataclass(frozen=True)
class WaitTime:
    """A class's think time (Locust's wait_time), numbers in seconds as Locust writes them."""
    kind: int
    a_ns: int
    b_ns: int = 0
    text: str = "constant(0)"


def parse_wait_time(text: str, where: str = "--wait-time") -> WaitTime:
    """constant(S), between(A, B), constant_throughput(R), constant_pacing(S), poisson(MEAN)."""
    m = _WAIT.match(text)
    fix = ("expected constant(S), between(A, B), constant_throughput(PER_S), "
           "constant_pacing(S) or poisson(MEAN_S), seconds as numbers, e.g. between(1, 3)")
    if not m:
        raise InputError(f"{where} {text!r}: {fix}")
    name, a_text, b_text = m.group(1), m.group(2), m.group(3)
    try:
        a = float(a_text)
        b = float(b_text) if b_text is not None else None
    except ValueError:
        raise InputError(f"{where} {text!r}: {fix}") from None
    if (name == "between") != (b is not None):
        raise InputError(f"{where} {text!r}: {name} takes {'two numbers' if name == 'between' else 'one number'}")
    if not (0 <= a < 86400) or (b is not None and not a <= b < 86400):
        raise InputError(f"{where} {text!r}: times from 0 to a day (between: A <= B)")
    ns = lambda s: int(round(s * 1e9))
    if name == "constant":
        return WaitTime(WAIT_CONSTANT, ns(a), 0, text.strip())
    if name == "between":
        return WaitTime(WAIT_BETWEEN, ns(a), ns(b), text.strip())
    if name == "constant_pacing":
        return WaitTime(WAIT_PACING, ns(a), 0, text.strip())
    if name == "constant_throughput":
        if a <= 0:
            raise InputError(f"{where} {text!r}: the throughput must be more than 0 per second")
        return WaitTime(WAIT_PACING, ns(1 / a), 0, text.strip())
    if a <= 0:
        raise InputError(f"{where} {text!r}: the mean must be more than 0")
    return WaitTime(WAIT_POISSON, ns(a), 0, text.strip())


def class_names(opts) -> list[str]:
    """The run's user classes, canonical names in the order given (-c, repeatable or with
    commas); the default is stochastic, as the seed's locustfile."""
    names: list[str] = []
    for item in opts.user_class or ["stochastic"]:
        for word in item.split(","):
            word = word.strip()
            name = CLASS_NAMES.get(word.lower())
            if name is None:
                raise InputError(f"--user-class {word!r}: the user classes are stochastic "
                                 "(StochasticBenchmarkUser: GET --path) and trace "
                                 "(TraceDrivenBenchmarkUser: POST of --trace-bodies)")
            if name not in names:
                names.append(name)
    return names


def class_weights(opts, names: list[str]) -> list[float]:
    """--class-weights 'stochastic=3,trace=1' (classes not named: 1)."""
    weights = dict.fromkeys(names, 1.0)
    if opts.class_weights:
        for item in opts.class_weights.split(","):
            name, eq, value = item.partition("=")
            canon = CLASS_NAMES.get(name.strip().lower())
            try:
                w = float(value)
            except ValueError:
                w = -1.0
            if not eq or canon is None:
                raise InputError(f"--class-weights {item.strip()!r}: expected CLASS=WEIGHT, e.g. "
                                 "stochastic=3,trace=1")
            if canon not in weights:
                raise InputError(f"--class-weights {item.strip()!r}: no {canon} users in this run "
                                 f"(-c {','.join(names)})")
            if not 0 < w < 1e9:
                raise InputError(f"--class-weights {item.strip()!r}: the weight must be more than 0")
            weights[canon] = w
    return [weights[n] for n in names]


def wait_times(opts, names: list[str]) -> list[WaitTime]:
    """--wait-time EXPR for every class, CLASS=EXPR for one (the later given wins)."""
    default = WaitTime(WAIT_CONSTANT, 0)
    own: dict[str, WaitTime] = {}
    for item in opts.wait_time:
        head, eq, rest = item.partition("=")
        canon = CLASS_NAMES.get(head.strip().lower()) if eq and "(" not in head else None
        if canon is not None:
            if canon not in names:
                raise InputError(f"--wait-time {item!r}: no {canon} users in this run "
                                 f"(-c {','.join(names)})")
            own[canon] = parse_wait_time(rest, f"--wait-time {canon}=")
        elif eq and "(" not in head:
            raise InputError(f"--wait-time {item!r}: {head.strip()!r} is not a user class "
                             "(stochastic, trace)")
        else:
            default = parse_wait_time(item)
    return [own.get(n, default) for n in names]


def check_user_options(opts) -> None:
    """What RunOptions checks of a users run before anything starts (files are read later)."""
    names = class_names(opts)
    class_weights(opts, names)
    wait_times(opts, names)
    if "trace" in names and opts.trace_bodies is None:
        raise InputError("--user-class trace: give the call traces it POSTs, --trace-bodies FILE")
    if opts.trace_bodies is not None and "trace" not in names:
        raise InputError("--trace-bodies: no trace-driven users in this run; add -c trace")
    if not opts.path.startswith("/") or any(c in opts.path for c in " \r\n"):
        raise InputError(f"--path {opts.path!r}: a URL path starting with /, e.g. /s0")
    if not 0 <= opts.seed < 1 << 64:
        raise InputError(f"--seed {opts.seed}: must be between 0 and 2^64-1")


def _check_call_trace(node, where: str) -> None:
    """muBench's nested call trace: {"service__id": [ {call trace}, ... ], ...}."""
    if not isinstance(node, dict):
        raise InputError(f"{where}: a call trace is an object of service calls, e.g. "
                         '{"s0__47072": [{"s24__71648": [{}]}]}')
    for key, calls in node.items():
        if not isinstance(calls, list):
            raise InputError(f"{where}: {key!r}: its calls must be a list of call traces")
        for call in calls:
            _check_call_trace(call, where)


def read_trace_bodies(path: str) -> list[bytes]:
    """The bodies of the trace-driven users, in the file's order: a JSON array of call traces
    (each sent as compact JSON), or one call trace per line (each line sent as written)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"--trace-bodies {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--trace-bodies {path}: not UTF-8 JSON") from None
    bodies: list[bytes] = []
    try:
        if text.lstrip().startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"--trace-bodies {path} line {exc.lineno} column {exc.colno}: "
                                 f"not JSON ({exc.msg})") from None
            for k, item in enumerate(items):
                _check_call_trace(item, f"--trace-bodies {path} item {k + 1}")
                bodies.append(json.dumps(item, separators=(",", ":")).encode())
        else:
            for k, line in enumerate(text.splitlines()):
                if not line.strip():
                    continue
                where = f"--trace-bodies {path} line {k + 1}"
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where} column {exc.colno}: not JSON ({exc.msg}); give "
                                     "one call trace per line, or a JSON array") from None
                _check_call_trace(item, where)
                bodies.append(line.strip().encode())
                if len(bodies) > MAX_SEQUENCE:
                    break
    except RecursionError:
        raise InputError(f"--trace-bodies {path}: call traces nested too deeply") from None
    if not bodies:
        raise InputError(f"--trace-bodies {path}: no call traces")
    if len(bodies) > MAX_SEQUENCE:
        raise InputError(f"--trace-bodies {path}: more than {MAX_SEQUENCE:,} call traces")
    return bodies


def assign_classes(total: int, weights: list[float]) -> np.ndarray:
    """Each user's class, in spawn order, so that every prefix of the users holds the classes
    in proportion to their weights (as Locust spreads classes while it spawns): class c's j-th
    user comes at virtual time (j + 0.5) / w_c."""
    times, classes = [], []
    share = np.asarray(weights, np.float64) / float(sum(weights))
    for c, s in enumerate(share):
        n = int(np.ceil(total * s)) + 1
        times.append((np.arange(n) + 0.5) / s)
        classes.append(np.full(n, c, np.int16))
    t, c = np.concatenate(times), np.concatenate(classes)
    order = np.lexsort((c, t))[:total]
    return c[order]


def sampled_index(seed: int, event: np.ndarray) -> np.ndarray:
    """ru_hash(seed, event) of users_rng.h, as uint64."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) ^ (np.asarray(event).astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass
class UserClassPlan:
    """One class as the C side runs it."""
    name: str
    wait: WaitTime
    weight: float
    target: int = 0
    first_payload: int = 0
    n_payloads: int = 0              # 0: its target's own request
    pick: int = PICK_CYCLE
    sequence_at: int = -1            # its bodies' order in UsersModel.sequence (-1: in turn)

    def as_c(self) -> tuple:
        return (self.wait.kind, self.wait.a_ns, self.wait.b_ns, self.target, self.first_payload,
                self.n_payloads, self.pick, self.sequence_at)


@dataclass
class UsersModel:
    """Everything the parent and the workers know of a users run; what each event was is a
    function of its id (no per-request state)."""
    total: int
    spawn_rate: float
    run_time_ns: int
    seed: int
    classes: list[UserClassPlan]
    user_class: np.ndarray                                   # int16, per user
    sequence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def spawn_gap_ns(self) -> int:
        return int(1e9 / self.spawn_rate)

    def spawned(self, elapsed_ns: int) -> int:
        """Users started `elapsed_ns` after the run's start."""
        if elapsed_ns < 0:
            return 0
        return min(self.total, elapsed_ns // max(1, self.spawn_gap_ns) + 1)

    def pairs(self) -> list[tuple[int, int]]:
        """The (target, payload) pairs the users send."""
        out = []
        for c in self.classes:
            if not c.n_payloads:
                out.append((c.target, -1))
            elif c.sequence_at >= 0:
                order = self.sequence[c.sequence_at:c.sequence_at + c.n_payloads]
                out += [(c.target, int(p)) for p in np.unique(order)]
            else:
                out += [(c.target, c.first_payload + p) for p in range(c.n_payloads)]
        return sorted(set(out))

    def c_classes(self) -> list[tuple]:
        return [c.as_c() for c in self.classes]

    def user_of(self, event: np.ndarray) -> np.ndarray:
        return np.asarray(event) % self.total

    def cls_of(self, event: np.ndarray) -> np.ndarray:
        return self.user_class[self.user_of(event)]

    def target_of(self, event: np.ndarray) -> np.ndarray:
        targets = np.array([c.target for c in self.classes], np.int32)
        return targets[self.cls_of(event)]

    def payload_of(self, event: np.ndarray) -> np.ndarray:
        """Each event's payload, as UserPacer.payload_of chose it."""
        event = np.asarray(event, np.int64)
        user, k = event % self.total, event // self.total
        cls = self.user_class[user]
        out = np.full(len(event), -1, np.int32)
        for c, plan in enumerate(self.classes):
            mine = cls == c
            if not plan.n_payloads or not mine.any():
                continue
            if plan.pick == PICK_SAMPLE:
                index = (sampled_index(self.seed, event[mine])
                         % np.uint64(plan.n_payloads)).astype(np.int64)
            else:
                index = (user[mine] + k[mine]) % plan.n_payloads
            if plan.sequence_at >= 0:
                out[mine] = self.sequence[plan.sequence_at + index]
            else:
                out[mine] = plan.first_payload + index
        return out


@dataclass
class UsersLoad:
    """A users run's model and the tables its transport and records need."""
    model: UsersModel
    scheme: str
    endpoint: str
    payloads: list[Payload]
    classes: list[RequestClass]


def users_load(opts) -> UsersLoad:
    """The users, their classes and what they send, from the run's options (the trace bodies
    file read here)."""
    from replayer.generate.shapes import parse_url

    if opts.host is not None:
        scheme, endpoint, base = parse_url(opts.host, "--host")
    else:                            # --local-target: the built-in target
        scheme, endpoint, base = "http", "localhost:80", "/"
    path = base.split("?", 1)[0].rstrip("/") + opts.path
    names = class_names(opts)
    weights = class_weights(opts, names)
    waits = wait_times(opts, names)
    json_header = [] if any(h.partition(":")[0].strip().lower() == "content-type"
                            for h in opts.header) else ["Content-Type: application/json"]
    payloads: list[Payload] = []
    plans: list[UserClassPlan] = []
    sequence = np.zeros(0, np.int32)
    for name, weight, wait in zip(names, weights, waits):
        plan = UserClassPlan(name, wait, weight, first_payload=len(payloads))
        if name == "stochastic":
            payloads.append(Payload(method="GET", path=path, name=path))
            plan.n_payloads = 1
        else:
            bodies = read_trace_bodies(opts.trace_bodies)
            distinct: dict[bytes, int] = {}
            order = np.array([distinct.setdefault(b, len(distinct)) for b in bodies], np.int32)
            if len(distinct) > MAX_BODIES or sum(map(len, distinct)) > MAX_BODY_BYTES:
                raise InputError(f"--trace-bodies {opts.trace_bodies}: more than {MAX_BODIES:,} "
                                 f"distinct call traces or {MAX_BODY_BYTES >> 20} MiB of them")
            for body in distinct:
                payloads.append(Payload(body=body, method="POST", path=path,
                                        headers=list(json_header), name=path))
            plan.n_payloads = len(bodies)
            plan.pick = PICK_SAMPLE if opts.trace_order == "sample" else PICK_CYCLE
            plan.sequence_at = len(sequence)
            sequence = np.concatenate([sequence, order + plan.first_payload]).astype(np.int32)
        plans.append(plan)
    run_ns = parse_timespan_ns(opts.run_time, "--run-time", bare_seconds=True) \
        if opts.run_time is not None else FOREVER_NS
    model = UsersModel(opts.users, opts.spawn_rate, run_ns, opts.seed, plans,
                       assign_classes(opts.users, weights), sequence)
    return UsersLoad(model, scheme, endpoint, payloads,
                     [RequestClass(p.name, tags={"wait_time": p.wait.text}) for p in plans])


def describe(opts, load: UsersLoad) -> str:
    """'50 users (stochastic), 5/s, for 10m to http://...': the run's log line."""
    classes = ", ".join(f"{c.name} {c.wait.text}" for c in load.model.classes)
    length = f"for {opts.run_time}" if opts.run_time is not None else "until stopped"
    to = opts.host if opts.host is not None else "the local target"
    return f"{opts.users} users ({classes}), {opts.spawn_rate:g}/s, {length} to {to}"


# -- the worker's side ----------------------------------------------------------------------------


def user_transport_and_pacer(spec, control: np.ndarray, ring):
    """A worker's transport and UserPacer for its users: spec.first, spec.first +
    spec.stride, ... of spec.users (a UsersModel)."""
    from replayer import _pacer
    from replayer.transports import make_transport
    from replayer.transports.content import ScheduleColumns

    model: UsersModel = spec.users
    # Per user of the run, its request in flight: written by the pacer, read by the transport.
    target_col = np.zeros(model.total, np.int32)
    payload_col = np.full(model.total, -1, np.int32)
    cls_col = np.zeros(model.total, np.int16)
    users = list(range(spec.first, model.total, spec.stride))
    columns = ScheduleColumns(target_col, payload_col, cls_col, spec.first, spec.stride,
                              period=model.total, pairs=model.pairs())
    transport = make_transport(spec.transport, ring, columns)
    clock = _pacer.Pacer(np.zeros(0, np.int64), 0, 1, control, spec.spin_ns, spec.max_inflight,
                         max_spin_ns=spec.max_spin_ns, stall_threshold_ns=spec.stall_threshold_ns)
    sequence = np.ascontiguousarray(model.sequence if len(model.sequence) else np.zeros(1, np.int32),
                                    np.int32)
    pacer = _pacer.UserPacer(clock, control, users, [int(model.user_class[u]) for u in users],
                             model.c_classes(), target_col, payload_col, cls_col, sequence,
                             model.spawn_rate, model.run_time_ns, model.seed)
    return transport, pacer


# -- the parent's side: records ------------------------------------------------------------------


class UserRecordWriter(RecordWriter):
    """A worker's records of a users run: target, class and payload follow from each event id
    (UsersModel), the phase from its scheduled time (warm-up: decided in the first --warmup
    after the start)."""

    def __init__(self, path: Path, worker: int, model: UsersModel, targets: list[str],
                 warmup_ns: int, metadata: dict):
        super().__init__(path, worker, np.zeros(0, np.int32), targets, None,
                         np.zeros(0, np.int64), warmup_ns, metadata)
        self.model = model
        self.start_ns = 0            # set when the run's start time is known

    @property
    def schedule_end_ns(self) -> int:
        return self.model.run_time_ns

    def columns(self, rows: np.ndarray) -> Columns:
        event = rows["event"]
        phase = (rows["scheduled_ns"] - self.start_ns >= self._warmup_ns).astype(np.int8)
        return Columns.from_rows(rows, phase, self.model.target_of(event), self._target_names,
                                 self.model.cls_of(event).astype(np.int16), self.worker)

    def payloads(self, event: np.ndarray) -> np.ndarray:
        return self.model.payload_of(event)

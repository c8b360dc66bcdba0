"""`replayer gen hourly`: one hour of the serverless mix, as the Cloud Run hourly load generator
users come from plans it (docs/hourly.md).

Each function of the mix (default 20 api_health_check, 3 crypto_key_gen, 2
image_format_converter, 1 video_transcoder) gets its invocations in minute slots spread evenly
over the hour from its own minute offset, each moved later by a jitter derived from a hash of
its event id (the same event id, the same offset, in every run and in the seed tool), where
the event id is experiment:trace hour:function:index. Every payload is the seed's, with
experiment_id, scenario, event_id and trace_hour written in, and its send time (`sent_ns`)
filled when it leaves. Scenario A sends each function to its URL in FIXED_REGION, B to its URL
in the region the hourly map gives the trace hour, C posts every payload with its function id
to DISPATCHER_URL.

The hour becomes a columnar schedule (NAME.parquet: one row per invocation, its class the
function, its payload its own) and a plan beside it (NAME.plan.json: the facts of each
invocation: event id, function, slot, jitter, region, URL), which `replayer hourly` and
`replayer export -f invocations` join with the run's records. Configuration comes from flags or
from the seed's environment variables (EXPERIMENT_ID, SCENARIO, ...), each declared once
below; anything missing or malformed is one line naming the variable, exit 2, before anything
is written or sent.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import numpy as np

from replayer.errors import InputError
from replayer.jsonfile import read_json
from replayer.options import opt
from replayer.schedules.content import Body, Payload, RequestClass
from replayer.schedules.schedule import MINUTE_NS, NS_PER_S, Schedule

HOUR_S = 3600
MINUTES = 60
NS_PER_MS = 1_000_000
PLAN_FORMAT = 1
PLAN_SUFFIX = ".plan.json"
SCENARIOS = ("A", "B", "C")
# The seed's functions, in its order, with the minute their slots start from (so the four do
# not all fire at minute 0).
MINUTE_OFFSETS = {"api_health_check": 0, "crypto_key_gen": 7, "image_format_converter": 13,
                  "video_transcoder": 29}
FUNCTIONS = tuple(MINUTE_OFFSETS)
DEFAULT_MIX = "api_health_check=20,crypto_key_gen=3,image_format_converter=2,video_transcoder=1"
MAX_PER_FUNCTION = 3600
MAX_TIMEOUT_S = 86_400.0
TRACE_HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
JSON_HEADER = "Content-Type: application/json"
DEFAULT_PORTS = {"http": 80, "https": 443}


def setting_name(name: str) -> str:
    """How a message names an option: the seed's variable and the flag."""
    return f"{name.upper()} (--{name.replace('_', '-')})"


@dataclass
class HourSettings:
    """What an hour is: the settings `gen hourly` and `hourly` share (each field once, with
    the seed's variable)."""

    option_groups: ClassVar[dict[str, str]] = {
        "experiment": "experiment (what the hour is)",
        "targets": "targets (where invocations go, per scenario)",
        "timing": "timing",
    }

    experiment_id: str | None = opt(None, "stable id of the experiment, in every event id and "
                                    "payload", env_var="EXPERIMENT_ID", group="experiment")
    scenario: str | None = opt(None, "A: every function in FIXED_REGION; B: the region of the "
                               "trace hour in the hourly region map; C: every payload to "
                               "DISPATCHER_URL", env_var="SCENARIO", metavar="A|B|C",
                               group="experiment")
    image_gcs_uri: str | None = opt(None, "gcs_uri of image_format_converter's payloads",
                                    env_var="IMAGE_GCS_URI", metavar="URI", group="experiment")
    video_gcs_uri: str | None = opt(None, "gcs_uri of video_transcoder's payloads",
                                    env_var="VIDEO_GCS_URI", metavar="URI", group="experiment")
    mix: str = opt(DEFAULT_MIX, "invocations per hour of each function, FUNCTION=COUNT,... "
                   f"(functions: {', '.join(FUNCTIONS)}; 0 leaves one out)", metavar="MIX",
                   group="experiment")
    function_urls_json: str | None = opt(None, "JSON object function -> region -> URL (A and "
                                         "B; optional for C)", env_var="FUNCTION_URLS_JSON",
                                         metavar="JSON", group="targets")
    function_urls_path: str | None = opt(None, "file holding that JSON (when "
                                         "FUNCTION_URLS_JSON is unset)",
                                         env_var="FUNCTION_URLS_PATH", metavar="PATH",
                                         group="targets")
    fixed_region: str | None = opt(None, "scenario A: the region of every function",
                                   env_var="FIXED_REGION", metavar="REGION", group="targets")
    hourly_region_map_json: str | None = opt(None, "scenario B: JSON object hour (0-23, UTC) "
                                             "-> region", env_var="HOURLY_REGION_MAP_JSON",
                                             metavar="JSON", group="targets")
    hourly_region_map_path: str | None = opt(None, "file holding that JSON (when "
                                             "HOURLY_REGION_MAP_JSON is unset)",
                                             env_var="HOURLY_REGION_MAP_PATH", metavar="PATH",
                                             group="targets")
    dispatcher_url: str | None = opt(None, "scenario C: where every payload is POSTed with its "
                                     "function id", env_var="DISPATCHER_URL", metavar="URL",
                                     group="targets")
    trace_hour_utc: str | None = opt(None, "the hour replayed, ISO 8601 (UTC unless it says; "
                                     "minutes and seconds dropped); default the current hour",
                                     env_var="TRACE_HOUR_UTC", metavar="TIME", group="timing")
    jitter_s: float = opt(15.0, "largest deterministic jitter added to a slot, in seconds",
                          env_var="JITTER_S", metavar="S", group="timing")
    timeout_s: float = opt(120.0, "timeout of each invocation, in seconds",
                           env_var="TIMEOUT_S", metavar="S", group="timing")

    def __post_init__(self):
        for name in ("experiment_id", "image_gcs_uri", "video_gcs_uri", "fixed_region",
                     "dispatcher_url"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.strip() or None)
        if self.scenario is not None:
            self.scenario = self.scenario.strip().upper()
            if self.scenario not in SCENARIOS:
                raise InputError(f"{setting_name('scenario')} {self.scenario!r}: must be A, B or C")
        if not 0 <= self.jitter_s < HOUR_S:       # also refuses nan
            raise InputError(f"{setting_name('jitter_s')} {self.jitter_s}: must be between 0 and "
                             f"{HOUR_S - 1} seconds")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise InputError(f"{setting_name('timeout_s')} {self.timeout_s}: must be more than 0 "
                             f"and at most {MAX_TIMEOUT_S:g} seconds")
        self.mix_counts = parse_mix(self.mix)


@dataclass
class HourlyOptions(HourSettings):
    """Write one hour of the serverless mix as a schedule: each function's invocations in
    fixed minute slots spread over the hour, each moved by a deterministic jitter (a hash of
    its event id), every payload carrying experiment_id, scenario, event_id and trace_hour.
    Scenario A sends each function to its URL in FIXED_REGION, B to its URL in the region the
    hourly map gives the trace hour, C posts every payload with its function id to
    DISPATCHER_URL. Writes NAME.parquet (for replayer run) and NAME.plan.json (each
    invocation's facts). Every option also comes from the environment variable it names, as
    the Cloud Run hourly load generator reads them (an empty one counts as unset).

    examples:
      EXPERIMENT_ID=exp1 SCENARIO=A FIXED_REGION=us-east1 FUNCTION_URLS_PATH=urls.json \\
      IMAGE_GCS_URI=gs://b/i.png VIDEO_GCS_URI=gs://b/v.mp4 replayer gen hourly -o hour.parquet
      replayer hourly --dry-run        (the same environment: print the hour's plan)"""

    option_groups: ClassVar[dict[str, str]] = {**HourSettings.option_groups, "output": "output"}

    output: str = opt("hour.parquet", "schedule to write (.parquet or .arrow); the plan goes "
                      "beside it as NAME.plan.json", short="o", metavar="PATH", group="output")


# ---------------------------------------------------------------- the parts of a plan


def parse_mix(text: str) -> dict[str, int]:
    """FUNCTION=COUNT,... into {function: count}, in the order given (counts of 0 left out)."""
    out: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, count = item.partition("=")
        name = name.strip()
        if not eq:
            raise InputError(f"--mix {text!r}: {item!r} is not FUNCTION=COUNT")
        if name not in MINUTE_OFFSETS:
            raise InputError(f"--mix: unknown function {name!r}; the functions are "
                             f"{', '.join(FUNCTIONS)}")
        if name in out:
            raise InputError(f"--mix: {name} is given twice")
        try:
            n = int(count)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_PER_FUNCTION:
            raise InputError(f"--mix: {name}={count.strip()!r}: the count must be a whole number "
                             f"from 0 to {MAX_PER_FUNCTION}")
        out[name] = n
    out = {k: v for k, v in out.items() if v}
    if not out:
        raise InputError(f"--mix {text!r}: no invocations; give FUNCTION=COUNT, e.g. {DEFAULT_MIX}")
    return out


def parse_trace_hour(text: str | None, now: datetime | None = None) -> datetime:
    """The start of the hour replayed (UTC): TRACE_HOUR_UTC's, or the current one."""
    if text is None:
        when = now or datetime.now(timezone.utc)
    else:
        try:
            when = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{setting_name('trace_hour_utc')} {text!r}: not an ISO 8601 time; "
                             "write e.g. 2024-05-01T13:00:00Z") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def slot_minutes(count: int, offset: int) -> list[int]:
    """The minutes of `count` invocations: evenly spread over the hour from minute `offset`
    (wrapping around), as the seed spreads them."""
    step = MINUTES / count
    return [(int(i * step) + offset) % MINUTES for i in range(count)]


def jitter_ms(event_id: str, jitter_s: float, slot_s: int) -> int:
    """The seed's deterministic jitter, in ms: the first 32 bits of SHA-256(event id) modulo
    (the largest jitter in ms + 1), kept inside the hour."""
    if jitter_s <= 0:
        return 0
    span = max(1, int(jitter_s * 1000))
    value = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:4], "big") % (span + 1)
    return min(value, max(0, (HOUR_S - 1 - slot_s) * 1000))


def event_id(experiment_id: str, trace_hour: str, function_id: str, index: int) -> str:
    return f"{experiment_id}:{trace_hour}:{function_id}:{index:02d}"


def _json_setting(opts: HourSettings, name: str):
    """The JSON of NAME_JSON, else of the file NAME_PATH names, else None."""
    raw = getattr(opts, f"{name}_json")
    if raw is not None:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InputError(f"{setting_name(name + '_json')}: not valid JSON "
                             f"({' '.join(str(exc).split())})") from None
    path = getattr(opts, f"{name}_path")
    if path is not None:
        return read_json(path, "JSON", f"check {setting_name(name + '_path')}")
    return None


def function_urls(raw, where: str) -> dict[str, dict[str, str]]:
    """function -> region -> URL, checked: known functions, URLs as strings."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object function -> region -> URL")
    out = {}
    for fn, regions in raw.items():
        if fn not in MINUTE_OFFSETS:
            raise InputError(f"{where}: unknown function {fn!r}; the functions are "
                             f"{', '.join(FUNCTIONS)}")
        if not isinstance(regions, dict) or not all(isinstance(u, str) for u in regions.values()):
            raise InputError(f"{where}: {fn}: expected an object region -> URL (strings)")
        out[fn] = {str(region): url for region, url in regions.items()}
    return out


def region_map(raw, where: str) -> dict[int, str]:
    """hour (0-23) -> region, checked."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object hour (0-23) -> region")
    out = {}
    for key, region in raw.items():
        try:
            hour = int(key)
        except ValueError:
            hour = -1
        if not 0 <= hour <= 23:
            raise InputError(f"{where}: key {key!r} is not an hour from 0 to 23")
        if not isinstance(region, str) or not region.strip():
            raise InputError(f"{where}: hour {hour}: the region must be a name (a string)")
        out[hour] = region.strip()
    return out


def split_url(url: str, where: str) -> tuple[str, str, str]:
    """(scheme, host[:port], path and query) of an http:// or https:// URL."""
    try:
        parts = urlsplit(url.strip())
        parts.port                                  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise InputError(f"{where}: {url!r} is not a URL ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise InputError(f"{where}: {url!r}: give an http:// or https:// URL")
    if not parts.hostname:
        raise InputError(f"{where}: {url!r} has no host")
    if "@" in parts.netloc:
        raise InputError(f"{where}: user and password in the URL are not supported; give the "
                         "token as AUTH_BEARER_TOKEN")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c.isspace() for c in path):
        raise InputError(f"{where}: {url!r}: the path has blanks; percent-encode them")
    return parts.scheme, parts.netloc, path


def function_payload(fn: str, opts: HourSettings) -> dict:
    """The seed's payload of a function (the protocol's)."""
    if fn == "api_health_check":
        return {"check": "ping"}
    if fn == "crypto_key_gen":
        return {"bits": 4096}
    if fn == "image_format_converter":
        return {"gcs_uri": opts.image_gcs_uri, "format": "WEBP", "quality": 85}
    return {"gcs_uri": opts.video_gcs_uri, "passes": 2}


def _payload_body(prefix: str, suffix: str) -> Body:
    """A JSON body whose object (prefix, without its closing brace) gets "sent_ns": the send
    time, filled when the request leaves, then suffix."""
    return Body().raw(prefix[:-1] + ', "sent_ns": ').decimal("sent_ns").raw("}" + suffix)


# ---------------------------------------------------------------- the plan


@dataclass
class Invocation:
    """One invocation of the hour: its row in the schedule (event), ids, slot and target."""
    event: int
    event_id: str
    function_id: str
    invocation_index: int
    slot_minute: int
    jitter_ms: int
    region: str | None
    url: str
    target: int = 0
    payload: Payload | None = field(default=None, repr=False)

    @property
    def offset_ns(self) -> int:
        """Its send time from the hour's start."""
        return (self.slot_minute * 60_000 + self.jitter_ms) * NS_PER_MS

    def to_json(self) -> dict:
        return {"event": self.event, "event_id": self.event_id, "function_id": self.function_id,
                "invocation_index": self.invocation_index, "slot_minute": self.slot_minute,
                "jitter_ms": self.jitter_ms, "offset_ns": self.offset_ns, "region": self.region,
                "url": self.url}


@dataclass
class HourPlan:
    """The hour, decided: its invocations in send order (row = event) and what a run needs to
    send them (scheme, port, URL template, targets)."""
    experiment_id: str
    scenario: str
    trace_hour: datetime
    jitter_s: float
    timeout_s: float
    mix: dict[str, int]
    scheme: str
    targets: list[str]
    invocations: list[Invocation]
    region_source: str | None

    @property
    def trace_hour_text(self) -> str:
        return self.trace_hour.strftime(TRACE_HOUR_FORMAT)

    @property
    def url_template(self) -> str:
        return f"{self.scheme}://{{endpoint}}/"

    @property
    def port(self) -> int:
        return DEFAULT_PORTS[self.scheme]

    @property
    def start_ns(self) -> int:
        """The trace hour's start, as a Unix time in ns."""
        return int(self.trace_hour.timestamp()) * NS_PER_S

    def schedule(self) -> Schedule:
        functions = list(self.mix)
        return Schedule(
            t_ns=np.array([inv.offset_ns for inv in self.invocations], np.int64),
            target=np.array([inv.target for inv in self.invocations], np.int32),
            targets=list(self.targets),
            cls=np.array([functions.index(inv.function_id) for inv in self.invocations], np.int16),
            classes=[RequestClass(fn, timeout_ns=int(self.timeout_s * NS_PER_S),
                                  tags={"function": fn}) for fn in functions],
            payload=np.arange(len(self.invocations), dtype=np.int32),
            payloads=[inv.payload for inv in self.invocations],
            unit_ns=MINUTE_NS, source=f"hour {self.trace_hour_text}")

    def to_json(self) -> dict:
        return {"format": PLAN_FORMAT, "experiment_id": self.experiment_id,
                "scenario": self.scenario, "trace_hour": self.trace_hour_text,
                "jitter_s": self.jitter_s, "timeout_s": self.timeout_s, "mix": dict(self.mix),
                "url_template": self.url_template, "port": self.port,
                "region_source": self.region_source,
                "invocations": [inv.to_json() for inv in self.invocations]}


def _needs(value, name: str, why: str):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{setting_name(name)}: missing; {why}")
    return value.strip() if isinstance(value, str) else value


def make_plan(opts: HourSettings, now: datetime | None = None) -> HourPlan:
    """The hour's plan from the options; InputError (one line naming the variable) for
    anything missing, malformed, or unknown (function, region)."""
    experiment = _needs(opts.experiment_id, "experiment_id", "every event id and payload "
                        "carries it")
    scenario = _needs(opts.scenario, "scenario", "give A, B or C")
    mix = opts.mix_counts
    if "image_format_converter" in mix:
        _needs(opts.image_gcs_uri, "image_gcs_uri", "image_format_converter's payloads carry it")
    if "video_transcoder" in mix:
        _needs(opts.video_gcs_uri, "video_gcs_uri", "video_transcoder's payloads carry it")
    trace_hour = parse_trace_hour(opts.trace_hour_utc, now)
    hour_text = trace_hour.strftime(TRACE_HOUR_FORMAT)
    urls_src = setting_name("function_urls_json" if opts.function_urls_json is not None
                            else "function_urls_path")
    urls = function_urls(_json_setting(opts, "function_urls"), urls_src)

    region_source = None
    region: str | None = None
    if scenario == "A":
        region = _needs(opts.fixed_region, "fixed_region", "scenario A sends every function "
                        "to its URL in that region")
        region_source = "fixed_region"
    elif scenario == "B":
        raw = _json_setting(opts, "hourly_region_map")
        where = setting_name("hourly_region_map_json"
                             if opts.hourly_region_map_json is not None
                             else "hourly_region_map_path")
        if raw is None:
            raise InputError(f"{setting_name('hourly_region_map_json')} or HOURLY_REGION_MAP_PATH: "
                             "missing; scenario B takes each hour's region from it")
        regions = region_map(raw, where)
        if trace_hour.hour not in regions:
            raise InputError(f"{where}: no region for hour {trace_hour.hour} (the trace hour "
                             f"{hour_text}); add \"{trace_hour.hour}\": REGION")
        region = regions[trace_hour.hour]
        region_source = "hourly_region_map"
    if scenario in ("A", "B"):
        if not urls:
            raise InputError(f"{setting_name('function_urls_json')} or FUNCTION_URLS_PATH: "
                             f"missing; scenario {scenario} sends each function to its URL in its "
                             "region")
        destination = {}
        for fn in mix:
            if fn not in urls:
                raise InputError(f"{urls_src}: no URLs for function {fn}; add \"{fn}\": "
                                 "{REGION: URL}")
            if region not in urls[fn]:
                known = ", ".join(sorted(urls[fn])) or "none"
                raise InputError(f"{urls_src}: {fn} has no URL in region {region!r} (its "
                                 f"regions: {known})")
            destination[fn] = (urls[fn][region], f"{urls_src}: {fn} in {region}")
    else:
        dispatcher = _needs(opts.dispatcher_url, "dispatcher_url", "scenario C posts every "
                            "payload to the dispatcher")
        destination = {fn: (dispatcher, setting_name("dispatcher_url")) for fn in mix}

    parsed = {fn: split_url(url, place) for fn, (url, place) in destination.items()}
    schemes = {scheme for scheme, _, _ in parsed.values()}
    if len(schemes) > 1:
        shown = ", ".join(f"{fn}: {destination[fn][0]}" for fn in parsed)
        raise InputError(f"{urls_src}: the URLs of one hour mix http:// and https:// ({shown}); "
                         "one run speaks one of them: give every function the same scheme")
    scheme = schemes.pop()

    deadline = (trace_hour + timedelta(hours=1)).strftime(TRACE_HOUR_FORMAT)
    targets: dict[str, int] = {}
    invocations: list[Invocation] = []
    for fn, count in mix.items():
        _, endpoint, path = parsed[fn]
        target = targets.setdefault(endpoint, len(targets))
        for idx, minute in enumerate(slot_minutes(count, MINUTE_OFFSETS[fn]), start=1):
            eid = event_id(experiment, hour_text, fn, idx)
            body = dict(function_payload(fn, opts), experiment_id=experiment,
                        scenario=scenario, event_id=eid, trace_hour=hour_text)
            if scenario == "C":
                envelope = {"function_id": fn, "experiment_id": experiment, "scenario": scenario,
                            "event_id": eid, "trace_hour": hour_text, "invocation_index": idx,
                            "deadline": deadline}
                built = _payload_body(json.dumps(envelope)[:-1] + ', "function_payload": '
                                      + json.dumps(body), "}")
            else:
                built = _payload_body(json.dumps(body), "")
            invocations.append(Invocation(
                event=-1, event_id=eid, function_id=fn, invocation_index=idx,
                slot_minute=minute, jitter_ms=jitter_ms(eid, opts.jitter_s, minute * 60),
                region=region, url=destination[fn][0], target=target,
                payload=Payload(body=built.data, fields=built.fields, method="POST", path=path,
                                headers=[JSON_HEADER])))
    order = list(mix)
    # Send order; equal times keep the mix's order, then the index.
    invocations.sort(key=lambda inv: (inv.offset_ns, order.index(inv.function_id),
                                      inv.invocation_index))
    for row, inv in enumerate(invocations):
        inv.event = row
    return HourPlan(experiment_id=experiment, scenario=scenario, trace_hour=trace_hour,
                    jitter_s=opts.jitter_s, timeout_s=opts.timeout_s, mix=dict(mix),
                    scheme=scheme, targets=list(targets), invocations=invocations,
                    region_source=region_source)


# ---------------------------------------------------------------- files


def plan_path(schedule_path: Path | str) -> Path:
    """Where the plan of a schedule goes: NAME.plan.json beside NAME.parquet."""
    p = Path(schedule_path)
    return p.with_name(p.stem + PLAN_SUFFIX)


def write_hour(plan: HourPlan, path: Path | str) -> tuple[Path, Path]:
    """Write the schedule (the hour: 60 one-minute units) and its plan; (schedule, plan)."""
    from replayer.schedules.columnar import write_schedule

    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".arrow", ".feather"):
        raise InputError(f"-o {path}: the schedule is written as .parquet or .arrow")
    if not path.parent.is_dir():
        raise InputError(f"-o {path}: directory {path.parent} does not exist; create it or "
                         "change -o")
    side = plan_path(path)
    try:
        write_schedule(plan.schedule(), path, units=MINUTES)
        side.write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    except OSError as exc:
        raise InputError(f"-o {path}: cannot write {exc.filename or path} "
                         f"({exc.strerror})") from None
    return path, side


def read_plan(path: Path | str) -> dict:
    """A plan file as written by write_hour, checked for what readers use."""
    data = read_json(path, "hourly plan", "write it with replayer gen hourly")
    invs = data.get("invocations") if isinstance(data, dict) else None
    if not isinstance(invs, list) or not all(isinstance(i, dict) and isinstance(i.get("event"), int)
                                             for i in invs):
        raise InputError(f"{path}: not an hourly plan (no invocations list with events); write "
                         "it with replayer gen hourly")
    return data


def describe(plan: HourPlan) -> str:
    counts = ", ".join(f"{n} {fn}" for fn, n in plan.mix.items())
    where = (f"the dispatcher {plan.invocations[0].url}" if plan.scenario == "C"
             else f"region {plan.invocations[0].region}")
    return (f"hour {plan.trace_hour_text}, experiment {plan.experiment_id}, scenario "
            f"{plan.scenario}: {len(plan.invocations)} invocations ({counts}) to {where}, "
            f"jitter up to {plan.jitter_s:g}s")


def gen_hourly_command(opts: HourlyOptions) -> int:
    plan = make_plan(opts)
    schedule, side = write_hour(plan, opts.output)
    print(f"{describe(plan)}; wrote {schedule} and {side}")
    print(f"replay it: replayer run -traceFile {schedule} --protocol http --url-template "
          f"'{plan.url_template}' -port {plan.port} -warmup 0 -duration {MINUTES} "
          "[--header 'Authorization: Bearer ...'], or run the whole job: replayer hourly",
          file=sys.stderr)
    return 0

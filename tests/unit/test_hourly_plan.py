"""The hourly serverless mix (replayer.generate.hourly, replayer.jobs.hourly) in process: the
mix, minute slots and jitter computed as the seed tool computes them (checked against an
independent implementation of its rules), event ids, payloads with the injected fields,
scenarios A/B/C, the configuration from the seed's environment variables, the one-line errors
for what is missing or malformed (without repeating a token), the schedule and plan files,
and when the hour starts."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pytest

from replayer.cli import build_options, build_parser, main
from replayer.errors import InputError
from replayer.generate.hourly import (HourlyOptions, make_plan, parse_trace_hour, plan_path,
                                      read_plan, write_hour)
from replayer.jobs.hourly import HourlyJobOptions, run_headers, start_time
from replayer.schedules.columnar import read_schedule_units

HOUR = "2024-05-01T13:00:00Z"
HOUR_NS = int(datetime(2024, 5, 1, 13, tzinfo=timezone.utc).timestamp()) * 10**9
TOKEN = "tok-3f9a7c1e"
# Hosts under .invalid (RFC 2606): nothing a test plans can ever reach a real service.
URLS = {fn: {"us-east1": f"https://{fn.replace('_', '-')}-e.invalid/run",
             "europe-west1": f"https://{fn.replace('_', '-')}-w.invalid/run?v=2"}
        for fn in ("api_health_check", "crypto_key_gen", "image_format_converter",
                   "video_transcoder")}
BASE_ENV = {"EXPERIMENT_ID": "exp-7", "IMAGE_GCS_URI": "gs://bucket/in.png",
            "VIDEO_GCS_URI": "gs://bucket/in.mp4", "TRACE_HOUR_UTC": HOUR,
            "FUNCTION_URLS_JSON": json.dumps(URLS)}
SCENARIO_ENV = {
    "A": {"SCENARIO": "A", "FIXED_REGION": "us-east1"},
    "B": {"SCENARIO": "B", "HOURLY_REGION_MAP_JSON": json.dumps({"12": "us-east1",
                                                                   "13": "europe-west1"})},
    "C": {"SCENARIO": "C", "DISPATCHER_URL": "https://dispatch.invalid/v1/dispatch"},
}


def options(command: str, env: dict, *argv: str):
    """The options `replayer COMMAND ARGV` takes from argv and this environment."""
    ns = build_parser().parse_args([*command.split(), *argv])
    return build_options(ns._options, ns, environ=env, command=ns._command)


def plan_for(scenario: str, **extra):
    return make_plan(options("gen hourly", {**BASE_ENV, **SCENARIO_ENV[scenario], **extra}))


def filled(inv) -> dict:
    """An invocation's body as the target gets it (sent_ns filled with a time), decoded."""
    body = bytearray(inv.payload.body)
    (f,) = inv.payload.fields
    assert f.kind == "sent_ns" and f.encoding == "decimal"
    body[f.at:f.at + f.width] = str(1714568400123456789).rjust(f.width).encode()
    return json.loads(body)


def seed_jitter_ms(event_id: str, jitter_s: float, slot_s: int) -> int:
    """The seed's rule, written independently: sha256 hex digest, first 8 hex digits modulo
    (max ms + 1), capped so the invocation stays inside the hour."""
    max_ms = max(1, int(jitter_s * 1000))
    ms = int(hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:8], 16) % (max_ms + 1)
    return int(min(ms / 1000.0, max(0.0, 3599 - slot_s)) * 1000 + 0.5)


def test_default_mix_slots_and_jitter_follow_the_seed():
    """The default hour is 20 + 3 + 2 + 1 invocations; each function's slots are evenly
    spread minutes from its own offset (0, 7, 13, 29), each moved by the seed's jitter of
    its event id (experiment:hour:function:index), inside [slot, slot + JITTER_S]; rows are in
    send order and the row is the event."""
    plan = plan_for("A")
    assert Counter(inv.function_id for inv in plan.invocations) == {
        "api_health_check": 20, "crypto_key_gen": 3, "image_format_converter": 2,
        "video_transcoder": 1}
    offsets = {"api_health_check": 0, "crypto_key_gen": 7, "image_format_converter": 13,
               "video_transcoder": 29}
    counts = {"api_health_check": 20, "crypto_key_gen": 3, "image_format_converter": 2,
              "video_transcoder": 1}
    for inv in plan.invocations:
        count, i = counts[inv.function_id], inv.invocation_index - 1
        assert inv.slot_minute == (int(i * (60 / count)) + offsets[inv.function_id]) % 60
        assert inv.event_id == f"exp-7:{HOUR}:{inv.function_id}:{inv.invocation_index:02d}"
        assert inv.jitter_ms == seed_jitter_ms(inv.event_id, 15.0, inv.slot_minute * 60)
        assert 0 <= inv.jitter_ms <= 15_000
        assert inv.offset_ns == (inv.slot_minute * 60_000 + inv.jitter_ms) * 1_000_000
    assert [inv.event for inv in plan.invocations] == list(range(26))
    times = [inv.offset_ns for inv in plan.invocations]
    assert times == sorted(times) and times[-1] < 3600 * 10**9
    assert len({inv.event_id for inv in plan.invocations}) == 26


def test_the_same_event_ids_get_the_same_offsets_every_time():
    """Planning the same experiment and hour again gives the same event ids at the same
    offsets; another experiment id moves the jitter, not the slots."""
    a, b = plan_for("A"), plan_for("A")
    assert [(i.event_id, i.offset_ns) for i in a.invocations] == \
           [(i.event_id, i.offset_ns) for i in b.invocations]
    other = plan_for("A", EXPERIMENT_ID="exp-8")
    assert sorted(i.slot_minute for i in other.invocations) == \
           sorted(i.slot_minute for i in a.invocations)
    assert sorted(i.jitter_ms for i in other.invocations) != \
        sorted(i.jitter_ms for i in a.invocations)


def test_jitter_options_and_a_custom_mix():
    """JITTER_S=0 puts every invocation on its minute; --mix sets the counts (0 leaves a
    function out, and with it the need for its variables)."""
    plan = plan_for("A", JITTER_S="0")
    assert all(inv.jitter_ms == 0 for inv in plan.invocations)
    env = {**BASE_ENV, **SCENARIO_ENV["A"]}
    del env["IMAGE_GCS_URI"], env["VIDEO_GCS_URI"]
    plan = make_plan(options("gen hourly", env, "--mix",
                             "crypto_key_gen=4,api_health_check=2,video_transcoder=0"))
    assert Counter(i.function_id for i in plan.invocations) == {"crypto_key_gen": 4,
                                                                 "api_health_check": 2}
    assert sorted(i.slot_minute for i in plan.invocations if i.function_id == "crypto_key_gen") \
        == [7, 22, 37, 52]


@pytest.mark.parametrize("scenario", ["A", "B"])
def test_payloads_carry_the_seeds_content_and_the_injected_fields(scenario):
    """Every function payload is the seed's, with experiment_id, scenario, event_id and
    trace_hour written in and sent_ns filled at send time; a JSON POST to the path of the
    function's URL."""
    plan = plan_for(scenario)
    expected = {"api_health_check": {"check": "ping"}, "crypto_key_gen": {"bits": 4096},
                "image_format_converter": {"gcs_uri": "gs://bucket/in.png", "format": "WEBP",
                                           "quality": 85},
                "video_transcoder": {"gcs_uri": "gs://bucket/in.mp4", "passes": 2}}
    for inv in plan.invocations:
        body = filled(inv)
        assert body == {**expected[inv.function_id], "experiment_id": "exp-7",
                        "scenario": scenario, "event_id": inv.event_id, "trace_hour": HOUR,
                        "sent_ns": 1714568400123456789}
        assert inv.payload.method == "POST"
        assert inv.payload.headers == ["Content-Type: application/json"]


def test_scenario_a_and_b_pick_the_region_and_its_urls():
    """A sends every function to its URL in FIXED_REGION; B to its URL in the region the hourly
    map gives the trace hour (13: europe-west1). A target is a URL's host, the path (and query)
    is the payload's, the scheme the run's."""
    a = plan_for("A")
    assert {i.region for i in a.invocations} == {"us-east1"}
    assert a.url_template == "https://{endpoint}/" and a.port == 443
    b = plan_for("B")
    assert {i.region for i in b.invocations} == {"europe-west1"}
    for inv in b.invocations:
        assert inv.url == URLS[inv.function_id]["europe-west1"]
        assert b.targets[inv.target] == f"{inv.function_id.replace('_', '-')}-w.invalid"
        assert inv.payload.path == "/run?v=2"
    assert a.region_source == "fixed_region" and b.region_source == "hourly_region_map"


def test_scenario_c_posts_each_payload_with_its_function_id_to_the_dispatcher():
    """C sends every invocation to DISPATCHER_URL: the function id, the ids, the end of the
    hour as deadline, and the function's own payload (with its injected fields)."""
    plan = plan_for("C")
    assert plan.targets == ["dispatch.invalid"]
    for inv in plan.invocations:
        body = filled(inv)
        assert inv.payload.path == "/v1/dispatch" and inv.region is None
        assert body["function_id"] == inv.function_id
        assert (body["experiment_id"], body["scenario"], body["event_id"], body["trace_hour"]) \
            == ("exp-7", "C", inv.event_id, HOUR)
        assert body["deadline"] == "2024-05-01T14:00:00Z"
        assert body["function_payload"]["event_id"] == inv.event_id
        assert body["function_payload"]["sent_ns"] == 1714568400123456789


def test_function_urls_from_a_file_and_empty_variables_count_as_unset(tmp_path):
    """FUNCTION_URLS_PATH and HOURLY_REGION_MAP_PATH name files with the same JSON; a
    variable set empty (as an env file leaves the unused ones) counts as unset."""
    urls, regions = tmp_path / "urls.json", tmp_path / "regions.json"
    urls.write_text(json.dumps(URLS))
    regions.write_text(json.dumps({"13": "us-east1"}))
    env = {**BASE_ENV, "FUNCTION_URLS_JSON": "", "FUNCTION_URLS_PATH": str(urls),
           "SCENARIO": "B", "HOURLY_REGION_MAP_PATH": str(regions), "DISPATCHER_URL": "",
           "FIXED_REGION": "", "JITTER_S": "", "DRY_RUN": ""}
    plan = make_plan(options("hourly", env))
    assert {i.region for i in plan.invocations} == {"us-east1"}
    assert plan.jitter_s == 15.0


@pytest.mark.parametrize("change, words", [
    ({"EXPERIMENT_ID": None}, "EXPERIMENT_ID (--experiment-id): missing"),
    ({"SCENARIO": None}, "SCENARIO (--scenario): missing"),
    ({"SCENARIO": "D"}, "SCENARIO (--scenario) 'D': must be A, B or C"),
    ({"FIXED_REGION": None}, "FIXED_REGION (--fixed-region): missing; scenario A"),
    ({"IMAGE_GCS_URI": ""}, "IMAGE_GCS_URI (--image-gcs-uri): missing"),
    ({"FUNCTION_URLS_JSON": None}, "FUNCTION_URLS_JSON (--function-urls-json) or "
                                   "FUNCTION_URLS_PATH: missing"),
    ({"FUNCTION_URLS_JSON": "{\"api_health_check\": "}, "FUNCTION_URLS_JSON "
                                                         "(--function-urls-json): not valid JSON"),
    ({"FUNCTION_URLS_JSON": json.dumps({**URLS, "resize": {"us-east1": "https://r/"}})},
     "unknown function 'resize'"),
    ({"FIXED_REGION": "asia-east1"}, "api_health_check has no URL in region 'asia-east1' (its "
                                     "regions: europe-west1, us-east1)"),
    ({"FUNCTION_URLS_JSON": json.dumps({**URLS, "crypto_key_gen": {"us-east1": "ftp://x/"}})},
     "crypto_key_gen in us-east1: 'ftp://x/': give an http:// or https:// URL"),
    ({"FUNCTION_URLS_JSON": json.dumps({**URLS, "crypto_key_gen": {"us-east1": "http://x/"}})},
     "mix http:// and https://"),
    ({"FUNCTION_URLS_PATH": "/nonexistent/urls.json", "FUNCTION_URLS_JSON": None},
     "/nonexistent/urls.json: no such JSON file"),
    ({"TRACE_HOUR_UTC": "yesterday"}, "TRACE_HOUR_UTC (--trace-hour-utc) 'yesterday': not an "
                                      "ISO 8601 time"),
    ({"JITTER_S": "-1"}, "JITTER_S (--jitter-s) -1.0: must be between 0 and 3599"),
    ({"JITTER_S": "soon"}, "environment JITTER_S='soon'"),
    ({"TIMEOUT_S": "0"}, "TIMEOUT_S (--timeout-s) 0.0: must be more than 0"),
    ({"SCENARIO": "B"}, "HOURLY_REGION_MAP_JSON (--hourly-region-map-json) or "
                        "HOURLY_REGION_MAP_PATH: missing"),
    ({"SCENARIO": "B", "HOURLY_REGION_MAP_JSON": "{\"12\": \"us-east1\"}"},
     "no region for hour 13"),
    ({"SCENARIO": "B", "HOURLY_REGION_MAP_JSON": "{\"25\": \"us-east1\"}"},
     "key '25' is not an hour from 0 to 23"),
    ({"SCENARIO": "C"}, "DISPATCHER_URL (--dispatcher-url): missing"),
    ({"VERIFY_TLS": "perhaps"}, "environment VERIFY_TLS='perhaps'"),
    ({"EXTRA_HEADERS_JSON": "[1]"}, "EXTRA_HEADERS_JSON (--extra-headers-json): expected a JSON "
                                    "object"),
    ({"EXTRA_HEADERS_JSON": "{\"X Bad\": \"1\"}"}, "'X Bad' is not a header name"),
    ({"DISPATCHER_EXTRA_HEADERS_JSON": "{\"X-A\": \"" + TOKEN + "\\n\"}"},
     "DISPATCHER_EXTRA_HEADERS_JSON (--dispatcher-extra-headers-json): header X-A: the value"),
    ({"AUTH_BEARER_TOKEN": "Bearer " + TOKEN}, "AUTH_BEARER_TOKEN (--auth-bearer-token): holds "
                                               "a blank"),
])
def test_bad_settings_are_one_line_naming_the_variable(change, words, tmp_path, monkeypatch,
                                                        capsys):
    """A variable a scenario needs and lacks, malformed JSON, an unknown function or region, a
    bad value: `replayer hourly` exits 2 with one line naming it, before writing or sending
    anything; no message repeats a token or a header's value."""
    env = {**BASE_ENV, **SCENARIO_ENV["A"]}
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if env.get("SCENARIO") in ("B", "C") and "FIXED_REGION" not in change:
        env.pop("FIXED_REGION")
    for key in list(os_environ_names()):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    # Were a setting wrongly taken, the hour would be over in 0.4 s.
    assert main(["hourly", "--out", str(tmp_path / "run"), "--time-scale", "0.0001",
                 "--start", "now"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and words in err, err
    assert TOKEN not in err
    assert list(tmp_path.iterdir()) == []


def os_environ_names():
    """The seed's variables: cleared so the test's environment is the one given."""
    return ("EXPERIMENT_ID", "SCENARIO", "IMAGE_GCS_URI", "VIDEO_GCS_URI", "FUNCTION_URLS_JSON",
            "FUNCTION_URLS_PATH", "FIXED_REGION", "HOURLY_REGION_MAP_JSON",
            "HOURLY_REGION_MAP_PATH", "DISPATCHER_URL", "TRACE_HOUR_UTC", "JITTER_S",
            "TIMEOUT_S", "VERIFY_TLS", "DRY_RUN", "AUTH_BEARER_TOKEN", "EXTRA_HEADERS_JSON",
            "DISPATCHER_AUTH_BEARER_TOKEN", "DISPATCHER_EXTRA_HEADERS_JSON")


def test_flags_win_over_the_environment():
    """Every setting is a flag too; the command line wins over the variable."""
    o = options("hourly", {**BASE_ENV, **SCENARIO_ENV["A"], "JITTER_S": "3"},
                "--jitter-s", "4", "--fixed-region", "europe-west1", "--verify-tls", "false",
                "--dry-run")
    assert (o.jitter_s, o.fixed_region, o.verify_tls, o.dry_run) == (4.0, "europe-west1", False,
                                                                      True)
    assert {i.region for i in make_plan(o).invocations} == {"europe-west1"}


def test_tokens_and_headers_go_where_they_belong():
    """A and B: AUTH_BEARER_TOKEN and EXTRA_HEADERS_JSON on every invocation. C: the
    dispatcher's own token and headers when given, else the same ones; an extra Authorization
    replaces the token's."""
    env = {**BASE_ENV, **SCENARIO_ENV["A"], "AUTH_BEARER_TOKEN": TOKEN,
           "EXTRA_HEADERS_JSON": json.dumps({"X-Experiment": "A", "X-N": 3})}
    assert run_headers(options("hourly", env), "A") == [
        f"Authorization: Bearer {TOKEN}", "X-Experiment: A", "X-N: 3"]
    assert run_headers(options("hourly", env), "C") == [
        f"Authorization: Bearer {TOKEN}", "X-Experiment: A", "X-N: 3"]
    env.update(DISPATCHER_AUTH_BEARER_TOKEN="disp-1", DISPATCHER_EXTRA_HEADERS_JSON='{"X-D": "1"}')
    assert run_headers(options("hourly", env), "C") == ["Authorization: Bearer disp-1", "X-D: 1"]
    env["EXTRA_HEADERS_JSON"] = json.dumps({"Authorization": "Basic abc"})
    assert run_headers(options("hourly", env), "A") == ["Authorization: Basic abc"]


def test_schedule_and_plan_files(tmp_path):
    """gen hourly writes a one-hour schedule (60 minute units) with one payload per invocation,
    one class per function (TIMEOUT_S as its timeout), and the plan beside it; the plan holds
    each invocation's facts by event."""
    env = {**BASE_ENV, **SCENARIO_ENV["B"], "TIMEOUT_S": "30"}
    out = tmp_path / "hour.parquet"
    assert main_env(["gen", "hourly", "-o", str(out)], env) == 0
    schedule, units = read_schedule_units(out)
    assert units == 60 and len(schedule) == 26
    assert [c.name for c in schedule.classes] == ["api_health_check", "crypto_key_gen",
                                                  "image_format_converter", "video_transcoder"]
    assert {c.timeout_ns for c in schedule.classes} == {30 * 10**9}
    np.testing.assert_array_equal(schedule.payload, np.arange(26))
    plan = read_plan(plan_path(out))
    assert (plan["experiment_id"], plan["scenario"], plan["trace_hour"]) == ("exp-7", "B", HOUR)
    for inv in plan["invocations"]:
        row = inv["event"]
        assert schedule.t_ns[row] == inv["offset_ns"]
        assert schedule.classes[schedule.cls[row]].name == inv["function_id"]
        assert inv["event_id"].encode() in schedule.payloads[row].body


def main_env(argv, env):
    import os
    saved = dict(os.environ)
    try:
        for key in os_environ_names():
            os.environ.pop(key, None)
        os.environ.update(env)
        return main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_write_hour_refuses_other_suffixes(tmp_path):
    """The schedule is Parquet or Arrow; another name is one line naming -o."""
    with pytest.raises(InputError, match=r"-o .*hour.json: the schedule is written as"):
        write_hour(plan_for("A"), tmp_path / "hour.json")


def test_trace_hour_defaults_to_the_current_hour():
    """Without TRACE_HOUR_UTC the hour is the current one; a time is floored to its hour, in
    UTC (a naive time is UTC, an offset is converted)."""
    now = datetime(2024, 5, 1, 13, 42, 7, tzinfo=timezone.utc)
    assert parse_trace_hour(None, now) == datetime(2024, 5, 1, 13, tzinfo=timezone.utc)
    assert parse_trace_hour("2024-05-01T15:30:00+02:00") == datetime(2024, 5, 1, 13,
                                                                     tzinfo=timezone.utc)
    assert parse_trace_hour("2024-05-01 13:59") == datetime(2024, 5, 1, 13, tzinfo=timezone.utc)


@pytest.mark.parametrize("argv, now_s, expected", [
    ((), 13 * 3600 + 60, HOUR_NS / 1e9),                 # during the hour: its clock
    ((), 12 * 3600, HOUR_NS / 1e9),                      # before it: wait for it
    ((), 14 * 3600, None),                               # after it: from now
    (("--time-scale", "0.01"), 13 * 3600, None),         # compressed: from now
    (("--start", "now"), 13 * 3600 + 60, None),
    (("--start", "hour"), 13 * 3600 + 60, HOUR_NS / 1e9),
])
def test_when_the_hour_starts(argv, now_s, expected):
    """On the trace hour's clock while that hour lasts (invocations already due leave at
    once, late), from now once it has ended or when the hour is compressed; --start says."""
    o = options("hourly", {**BASE_ENV, **SCENARIO_ENV["A"]}, *argv)
    now_ns = HOUR_NS - 13 * 3600 * 10**9 + now_s * 10**9
    assert start_time(o, make_plan(o), now_ns) == expected


def test_start_hour_is_refused_when_it_cannot_hold():
    """--start hour after the hour, or with a compressed hour, is one line saying why."""
    o = options("hourly", {**BASE_ENV, **SCENARIO_ENV["A"]}, "--start", "hour")
    with pytest.raises(InputError, match="has ended; use --start now"):
        start_time(o, make_plan(o), HOUR_NS + 3600 * 10**9)
    o = options("hourly", {**BASE_ENV, **SCENARIO_ENV["A"]}, "--start", "hour",
                "--time-scale", "0.5")
    with pytest.raises(InputError, match="needs --time-scale 1"):
        start_time(o, make_plan(o), HOUR_NS)


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """--dry-run (DRY_RUN=true) prints one JSON line per invocation, when it would be sent on
    the trace hour's clock, and writes and sends nothing."""
    for key in os_environ_names():
        monkeypatch.delenv(key, raising=False)
    for key, value in {**BASE_ENV, **SCENARIO_ENV["C"], "DRY_RUN": "true",
                       "AUTH_BEARER_TOKEN": TOKEN}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert main(["hourly"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 26 and all(line["dry_run"] for line in lines)
    plan = plan_for("C")
    for line, inv in zip(lines, plan.invocations):
        assert line["event_id"] == inv.event_id and line["function_id"] == inv.function_id
        assert line["scheduled_ns"] == HOUR_NS + inv.offset_ns
        assert line["url"] == "https://dispatch.invalid/v1/dispatch"
        assert line["sent_ns"] is None and line["status"] is None
    assert "dry run: nothing sent" in err and "Authorization" in err and TOKEN not in err + out
    assert list(tmp_path.iterdir()) == []


def test_job_options_name_the_seeds_variables():
    """Each setting reads the seed's variable of the same name; job-only settings have the
    command's own REPLAYER_HOURLY_* names."""
    from replayer.options import env_name
    import dataclasses
    names = {f.name: env_name("hourly", f) for f in dataclasses.fields(HourlyJobOptions)}
    assert {names[n.lower()] for n in os_environ_names()} == set(os_environ_names())
    assert names["time_scale"] == "REPLAYER_HOURLY_TIME_SCALE"
    gen = {f.name: env_name("gen hourly", f) for f in dataclasses.fields(HourlyOptions)}
    assert gen["experiment_id"] == "EXPERIMENT_ID" and gen["mix"] == "REPLAYER_GEN_HOURLY_MIX"


def test_export_invocations_needs_the_plan(tmp_path, capsys):
    """`replayer export RUN -f invocations` of a run whose schedule has no plan beside it is
    one line saying where it looked, exit 2."""
    from report_fixtures import make_run
    run = make_run(tmp_path / "run", n=50, workers=1)
    assert main(["export", str(run.run_dir), "-f", "invocations"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no hourly plan (looked for" in err
    assert not (run.run_dir / "invocations.jsonl").exists()

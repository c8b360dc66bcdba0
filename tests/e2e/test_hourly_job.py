"""The hourly serverless mix as a job, end to end: `replayer hourly` (and its container
entrypoint, run here as a plain process) against `replayer serve` on loopback, recording every
request it gets. For scenarios A (URL map, fixed region), B (URL map, hourly region map) and C
(replayer serve as the dispatcher): the server sees exactly the mix, each payload with its
injected fields and its send stamp, each invocation in its minute slot plus its jitter (the
hour compressed by --time-scale), tokens and extra headers where they belong and nowhere
else, one JSON line per invocation written from the records, and the same offsets on a second
run. Bad settings send nothing; a SIGTERM to the entrypoint still gets every line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, replayer
from replayer.loopback.launch import start_serve

SCALE = 0.0005                   # the hour in 1.8 s: a minute is 30 ms, 15 s of jitter 7.5 ms
MIX = Counter({"api_health_check": 20, "crypto_key_gen": 3, "image_format_converter": 2,
               "video_transcoder": 1})
TOKEN, DISPATCH_TOKEN = "fn-token-5d1c", "disp-token-77ae"
SEED_VARS = ("EXPERIMENT_ID", "SCENARIO", "IMAGE_GCS_URI", "VIDEO_GCS_URI", "FUNCTION_URLS_JSON",
             "FUNCTION_URLS_PATH", "FIXED_REGION", "HOURLY_REGION_MAP_JSON",
             "HOURLY_REGION_MAP_PATH", "DISPATCHER_URL", "TRACE_HOUR_UTC", "JITTER_S",
             "TIMEOUT_S", "VERIFY_TLS", "DRY_RUN", "AUTH_BEARER_TOKEN", "EXTRA_HEADERS_JSON",
             "DISPATCHER_AUTH_BEARER_TOKEN", "DISPATCHER_EXTRA_HEADERS_JSON")
LATE_MARGIN_NS = 500_000_000     # wall time a request may reach the server after its due time
ENTRYPOINT = ROOT / "tools" / "hourly-entrypoint.sh"


@pytest.fixture
def server(tmp_path):
    """`replayer serve` (HTTP only) writing down every request it gets."""
    log = tmp_path / "requests.jsonl"
    target = start_serve("--record-requests", str(log), grpc_port=-1)
    target.log = log
    yield target
    target.stop()


def received(server) -> list[dict]:
    return [json.loads(line) for line in server.log.read_text().splitlines()] \
        if server.log.exists() else []


def settings(port: int, scenario: str, **more) -> dict:
    """The seed's variables for a loopback hour (every unused one set empty: unset)."""
    urls = {fn: {"us-east1": f"http://127.0.0.1:{port}/us-east1/{fn}",
                 "europe-west1": f"http://127.0.0.1:{port}/europe-west1/{fn}?v=2"}
            for fn in MIX}
    env = dict.fromkeys(SEED_VARS, "")
    env.update(EXPERIMENT_ID="exp-e2e", SCENARIO=scenario, IMAGE_GCS_URI="gs://b/in.png",
               VIDEO_GCS_URI="gs://b/in.mp4", FUNCTION_URLS_JSON=json.dumps(urls),
               AUTH_BEARER_TOKEN=TOKEN, EXTRA_HEADERS_JSON='{"X-Experiment": "E2E"}')
    env.update(more)
    return env


def run_hour(env: dict, out: Path, *argv: str):
    """`replayer hourly` for a compressed hour: its JSON lines (stdout), stderr and run.json."""
    proc = replayer("hourly", "--time-scale", str(SCALE), "--out", str(out), *argv, env=env,
                    timeout=90)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return lines, proc.stderr, json.loads((out / "run.json").read_text())


def body_of(request: dict) -> dict:
    return json.loads(request["body"])


def headers_of(request: dict) -> dict:
    return {name.lower(): value for name, value in request["headers"]}


def check_hour(requests: list[dict], lines: list[dict], run: dict, scenario: str) -> dict:
    """What every scenario shows: exactly the mix, one line per invocation from the records,
    each request with its ids and its send stamp, sent in its slot plus its jitter (the hour
    compressed); the requests by event id."""
    assert len(requests) == len(lines) == sum(MIX.values())
    by_id = {}
    for request in requests:
        body = body_of(request)
        payload = body["function_payload"] if scenario == "C" else body
        assert (payload["experiment_id"], payload["scenario"]) == ("exp-e2e", scenario)
        by_id[payload["event_id"]] = (request, payload)
    assert Counter(line["function_id"] for line in lines) == MIX
    assert set(by_id) == {line["event_id"] for line in lines}
    start_ns = run["start_ns"]
    for line in lines:
        request, payload = by_id[line["event_id"]]
        fn = line["function_id"]
        assert line["event_id"] == f"exp-e2e:{line['trace_hour']}:{fn}:" \
                                   f"{line['invocation_index']:02d}"
        assert payload["trace_hour"] == line["trace_hour"]
        assert (line["status"], line["error"], line["dry_run"]) == (200, None, False)
        # The send stamp in the body is the record's.
        assert payload["sent_ns"] == line["sent_ns"]
        # Scheduled in its minute slot plus its jitter, on the compressed clock...
        offset_ns = (line["slot_minute"] * 60_000 + line["jitter_ms"]) * 1_000_000
        assert abs(line["scheduled_ns"] - (start_ns + offset_ns * SCALE)) <= 1_000
        assert 0 <= line["jitter_ms"] <= 15_000
        # ...and received after it, not long after.
        assert line["scheduled_ns"] <= line["sent_ns"] <= request["t_ns"]
        assert request["t_ns"] - line["scheduled_ns"] < LATE_MARGIN_NS
        assert request["method"] == "POST"
        assert headers_of(request)["content-type"] == "application/json"
    return by_id


def check_no_token(out: Path, *texts: str) -> None:
    """No token in the run directory's files or in what the job printed."""
    for text in texts:
        assert TOKEN not in text and DISPATCH_TOKEN not in text
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and DISPATCH_TOKEN.encode() not in data, path


def test_scenario_a_twice_fixed_region_same_offsets(server, tmp_path):
    """Scenario A: every function's URL in FIXED_REGION, the token and extra headers on every
    request; a second run of the same hour schedules the same event ids at the same offsets
    from its start."""
    env = settings(server.http_port, "A", FIXED_REGION="us-east1")
    lines, err, run = run_hour(env, tmp_path / "run1")
    requests = received(server)
    by_id = check_hour(requests, lines, run, "A")
    for line in lines:
        request, _ = by_id[line["event_id"]]
        assert request["path"] == f"/us-east1/{line['function_id']}"
        assert line["region"] == "us-east1"
        assert line["url"] == f"http://127.0.0.1:{server.http_port}/us-east1/{line['function_id']}"
        headers = headers_of(request)
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["x-experiment"] == "E2E"
    assert (tmp_path / "run1" / "invocations.jsonl").read_text().splitlines() == \
        [json.dumps(line) for line in lines]
    assert "Authorization: <redacted>" in run["options"]["header"]
    check_no_token(tmp_path / "run1", err)

    server.log.write_text("")
    again, err2, run2 = run_hour(env, tmp_path / "run2")
    check_hour(received(server), again, run2, "A")
    assert [(line["event_id"], line["scheduled_ns"] - run["start_ns"]) for line in lines] == \
           [(line["event_id"], line["scheduled_ns"] - run2["start_ns"]) for line in again]


def test_scenario_b_region_of_the_trace_hour(server, tmp_path):
    """Scenario B: the region the hourly map gives the trace hour (13: europe-west1), each
    function to its URL there, path and query as the map says; the export of the run gives
    the same lines."""
    env = settings(server.http_port, "B", TRACE_HOUR_UTC="2024-05-01T13:00:00Z",
                   HOURLY_REGION_MAP_JSON='{"12": "us-east1", "13": "europe-west1"}')
    lines, err, run = run_hour(env, tmp_path / "run")
    by_id = check_hour(received(server), lines, run, "B")
    for line in lines:
        request, payload = by_id[line["event_id"]]
        assert request["path"] == f"/europe-west1/{line['function_id']}?v=2"
        assert line["region"] == "europe-west1" and line["trace_hour"] == "2024-05-01T13:00:00Z"
        assert headers_of(request)["authorization"] == f"Bearer {TOKEN}"
    exported = tmp_path / "again.jsonl"
    proc = replayer("export", str(tmp_path / "run"), "-f", "invocations", "-o", str(exported))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in exported.read_text().splitlines()] == lines
    check_no_token(tmp_path / "run", err)


def test_scenario_c_dispatcher_gets_every_payload(server, tmp_path):
    """Scenario C: replayer serve as the dispatcher gets every payload with its function id,
    with the dispatcher's own token and headers (not the functions'); no function URL is
    called."""
    env = settings(server.http_port, "C",
                   DISPATCHER_URL=f"http://127.0.0.1:{server.http_port}/dispatch",
                   DISPATCHER_AUTH_BEARER_TOKEN=DISPATCH_TOKEN,
                   DISPATCHER_EXTRA_HEADERS_JSON='{"X-Dispatch": "C"}')
    lines, err, run = run_hour(env, tmp_path / "run")
    by_id = check_hour(received(server), lines, run, "C")
    for line in lines:
        request, payload = by_id[line["event_id"]]
        body = body_of(request)
        assert request["path"] == "/dispatch"
        assert body["function_id"] == line["function_id"] == line["event_id"].split(":")[-2]
        assert body["event_id"] == payload["event_id"] and body["scenario"] == "C"
        headers = headers_of(request)
        assert headers["authorization"] == f"Bearer {DISPATCH_TOKEN}"
        assert headers["x-dispatch"] == "C" and "x-experiment" not in headers
        assert line["region"] is None
    check_no_token(tmp_path / "run", err)


def test_a_missing_setting_sends_nothing(server, tmp_path):
    """Scenario B without its region map: one line naming the variables, exit 2, no run
    directory, nothing received."""
    env = settings(server.http_port, "B")
    proc = replayer("hourly", "--time-scale", str(SCALE), "--out", str(tmp_path / "run"),
                    env=env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "HOURLY_REGION_MAP_JSON (--hourly-region-map-json) or HOURLY_REGION_MAP_PATH: " \
           "missing" in proc.stderr
    assert not (tmp_path / "run").exists() and received(server) == []


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that nobody trusts, and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    paths = directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_https_function_urls_and_verify_tls(tmp_path):
    """Function URLs over https:// (the Cloud Run case) go through libcurl: with VERIFY_TLS
    (the default) a self-signed certificate fails every invocation as `tls` and nothing
    arrives; VERIFY_TLS=false sends each payload with its fields filled."""
    log = tmp_path / "requests.jsonl"
    cert, key = _self_signed(tmp_path)
    target = start_serve("--tls-cert", str(cert), "--tls-key", str(key), "--record-requests",
                         str(log), grpc_port=-1)
    try:
        port = target.http_port
        env = settings(port, "A", FIXED_REGION="us-east1", REPLAYER_HOURLY_MIX="crypto_key_gen=3",
                       FUNCTION_URLS_JSON=json.dumps(
                           {"crypto_key_gen": {"us-east1": f"https://127.0.0.1:{port}/ck"}}))
        lines, _, _ = run_hour(env, tmp_path / "verified")
        assert [line["error"] for line in lines] == ["tls"] * 3
        assert not log.exists() or log.read_text() == ""
        lines, _, run = run_hour({**env, "VERIFY_TLS": "false"}, tmp_path / "insecure")
    finally:
        target.stop()
    assert run["transport"]["insecure"] is True
    requests = [json.loads(x) for x in log.read_text().splitlines()]
    assert [line["error"] for line in lines] == [None] * 3 and len(requests) == 3
    sent = sorted(json.loads(r["body"])["sent_ns"] for r in requests)
    assert sent == sorted(line["sent_ns"] for line in lines)
    assert {r["path"] for r in requests} == {"/ck"}
    assert {headers_of(r)["authorization"] for r in requests} == {f"Bearer {TOKEN}"}


def _entrypoint(env: dict, cwd: Path, *args: str, **popen) -> subprocess.Popen:
    """tools/hourly-entrypoint.sh as the image runs it, outside a container."""
    full = dict(os.environ, REPLAYER_PYTHON=sys.executable, PYTHONPATH=str(ROOT), **env)
    return subprocess.Popen(["/bin/sh", str(ENTRYPOINT), *args], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, **popen)


def example_env() -> dict:
    """tools/hourly/env.example.yaml (KEY: 'value' lines) as a job's environment."""
    env = {}
    for line in (ROOT / "tools" / "hourly" / "env.example.yaml").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(": ")
        assert sep and value[0] == value[-1] == "'", line
        env[key] = value[1:-1]
    assert set(env) == set(SEED_VARS)
    return env


def test_entrypoint_dry_run_with_the_example_env_file(tmp_path):
    """The entrypoint with the shipped env file and DRY_RUN=true: the plan's 26 lines on
    stdout, nothing written, nothing sent (the example's URLs are not reachable from here)."""
    proc = _entrypoint({**example_env(), "DRY_RUN": "true"}, tmp_path, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert Counter(line["function_id"] for line in lines) == MIX
    assert {line["region"] for line in lines} == {"us-east1"}
    assert all(line["dry_run"] and line["sent_ns"] is None for line in lines)
    assert "dry run: nothing sent" in err and list(tmp_path.iterdir()) == []


def test_entrypoint_sigterm_still_writes_every_line(server, tmp_path):
    """The entrypoint execs replayer, so a scheduler's SIGTERM reaches it: it stops sending,
    records the rest as not_sent, and still writes one line per invocation (exit 130)."""
    env = settings(server.http_port, "A", FIXED_REGION="us-east1",
                   REPLAYER_HOURLY_TIME_SCALE="0.003", REPLAYER_HOURLY_OUT=str(tmp_path / "run"))
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        proc = _entrypoint(env, tmp_path, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while "replaying" not in err_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3.0)                  # 5 of the hour's 10.8 s: minute 16 or so
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err_path.read_text()
    lines = [json.loads(line) for line in out.splitlines()]
    assert Counter(line["function_id"] for line in lines) == MIX
    outcome = Counter(line["error"] for line in lines)
    assert outcome[None] == len(received(server)) > 0 and outcome["not_sent"] > 0
    assert outcome[None] + outcome["not_sent"] == 26
    assert (tmp_path / "run" / "invocations.jsonl").exists()

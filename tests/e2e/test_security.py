"""No secrets in the run directory, logs or reports; TLS verified by default
(--insecure to skip, recorded in run.json); the built-in target and any port a run opens bind
to loopback unless told otherwise."""
from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from conftest import replayer, start_target, stop_target, write_load
from replayer.analysis.records import read_records
from replayer.loopback.procinfo import descendants

SECRETS = ["Bearer SECRET-A1b2C3", "SECRET-A1b2C3", "tok-SECRET-T2x9", "cookie-SECRET-C7"]


def _load(tmp_path, n=20):
    ts = [int(i * 1_000_000 / n) for i in range(n)]
    return write_load(tmp_path / "load.json", [(ts, ["svc.example.com"] * n)])


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def test_headers_never_reach_the_run_directory_logs_or_reports(tmp_path, target):
    """Header values (Authorization, a token, a cookie from the environment) are sent but never
    written: not in the run directory, its report and exports, nor the logs; run.json keeps each
    header's name with <redacted>."""
    out = tmp_path / "run"
    logs = []
    proc = replayer("run", "-traceFile", str(_load(tmp_path)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "2", "--protocol", "http", "-port",
                    str(target.http_port), "--resolve", "*=127.0.0.1", "--out", str(out),
                    "--header", f"Authorization: {SECRETS[0]}", "--header",
                    f"X-Api-Token: {SECRETS[2]}", "-latf", "lat.csv", "-dbg",
                    env={"REPLAYER_HEADER": f"Cookie: session={SECRETS[3]}"})
    assert proc.returncode == 0, proc.stderr
    logs += [proc.stdout, proc.stderr]
    table, _ = read_records(out)
    assert pc.all(pc.equal(table.column("error").cast("string"), "ok")).as_py()   # sent with them
    for args in (["report", str(out)], ["export", str(out), "-f", "csv"],
                 ["export", str(out), "-f", "jsonl"], ["export", str(out), "-f", "parquet"],
                 ["export", str(out), "-f", "locust", "-o", str(out / "locust")]):
        p = replayer(*args)
        assert p.returncode == 0, (args, p.stderr)
        logs += [p.stdout, p.stderr]
    files = _all_bytes(out)
    assert any(p.name == "run.json" for p, _ in files) and any(p.parent.name == "report"
                                                             for p, _ in files)
    for secret in SECRETS:
        for path, data in files:
            assert secret.encode() not in data, f"{secret!r} written to {path}"
        for text in logs:
            assert secret not in text
    # what is kept: the header names, so a reader knows they were sent
    options = json.loads((out / "run.json").read_text())["options"]
    assert "Authorization: <redacted>" in options["header"]
    assert "X-Api-Token: <redacted>" in options["header"]


def test_a_token_in_the_url_query_is_not_written(tmp_path, target):
    """A token in the URL's query is neither written in the run directory nor printed."""
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(_load(tmp_path)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "1", "--protocol", "http", "-port",
                    str(target.http_port), "--resolve", "*=127.0.0.1", "--out", str(out),
                    "--url-template", "http://{endpoint}:{port}/ok?access_token=" + SECRETS[2])
    assert proc.returncode == 0, proc.stderr
    for path, data in _all_bytes(out):
        assert SECRETS[2].encode() not in data, f"token written to {path}"
    assert SECRETS[2] not in proc.stdout + proc.stderr


# --- TLS ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_target(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("svc.example.com"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    t = start_target("--tls-cert", str(d / "cert.pem"), "--tls-key", str(d / "key.pem"))
    yield t, d / "cert.pem"
    stop_target(t)


def _tls_run(tmp_path, port, *extra, name="run", env=None):
    out = tmp_path / name
    proc = replayer("run", "-traceFile", str(_load(tmp_path)), "-min=false", "-duration", "1",
                    "-warmup", "0", "-workers", "2", "--protocol", "http", "-port", str(port),
                    "--resolve", "*=127.0.0.1", "--url-template", "https://{endpoint}:{port}/",
                    "--out", str(out), "-grpcTimeout", "5", *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    table, problems = read_records(out)
    assert problems == [] and table.num_rows == 20
    errors = set(table.column("error").cast("string").to_pylist())
    return errors, json.loads((out / "run.json").read_text())


def test_tls_certificates_are_verified_by_default(tmp_path, tls_target):
    """A self-signed certificate is refused (`tls` failures) by default; run.json says
    verification was on and the report gives no warning."""
    errors, info = _tls_run(tmp_path, tls_target[0].http_port)
    assert errors == {"tls"}                      # a self-signed certificate is refused
    assert info["transport"]["insecure"] is False
    report = replayer("report", str(tmp_path / "run"), "--no-plots", check_exit=0)
    assert "NOT verified" not in report.stdout


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_tls_certificates_from_a_trusted_ca_are_accepted(tmp_path, tls_target, version):
    """Verification really verifies: the same server passes once its certificate is in the
    trusted set (SSL_CERT_FILE, as curl and OpenSSL read it), and the failure without it
    says why."""
    target, cert = tls_target
    errors, info = _tls_run(tmp_path, target.http_port, "--http-version", version,
                            env={"SSL_CERT_FILE": str(cert), "CURL_CA_BUNDLE": ""})
    assert errors == {"ok"}
    assert info["transport"]["insecure"] is False
    _tls_run(tmp_path, target.http_port, name="untrusted")
    failures = json.loads((tmp_path / "untrusted" / "summary.json").read_text())["failures"]
    assert "certificate" in json.dumps(failures["tls"]).lower()


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_insecure_skips_verification_and_says_so(tmp_path, tls_target, version):
    """--insecure (HTTP/1.1 and 2): answered; run.json records it and the report warns that
    certificates were NOT verified."""
    errors, info = _tls_run(tmp_path, tls_target[0].http_port, "--insecure", "--http-version", version)
    assert errors == {"ok"}
    assert info["transport"]["insecure"] is True and info["options"]["insecure"] is True
    report = replayer("report", str(tmp_path / "run"), "--no-plots", check_exit=0)
    assert "TLS certificates were NOT verified" in report.stdout


# --- listening sockets ----------------------------------------------------------------------

def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by these processes."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    link = str(fd.readlink())
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (FileNotFoundError, PermissionError):
            continue
    out = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            addr_hex, port_hex = f[1].split(":")
            raw = bytes.fromhex(addr_hex)
            if family == socket.AF_INET:
                addr = socket.inet_ntop(family, raw[::-1])
            else:
                addr = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out.append((addr, int(port_hex, 16)))
    return out


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    mapped = getattr(ip, "ipv4_mapped", None)      # grpc listens on ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def test_built_in_target_binds_loopback_by_default():
    """`replayer serve` listens on loopback only, on its HTTP and gRPC ports."""
    t = start_target()
    try:
        socks = _listening([t.proc.pid])
    finally:
        stop_target(t)
    assert {p for _, p in socks} == {t.http_port, t.grpc_port}
    assert all(_loopback(addr) for addr, _ in socks), socks
    assert not _loopback("0.0.0.0") and not _loopback("::")      # the check can fail


def test_a_run_listens_on_loopback_only(tmp_path):
    """Every socket a --local-target run listens on (its target's included) is on loopback."""
    ts = list(range(0, 1_000_000, 20_000))
    load = write_load(tmp_path / "load.json", [(ts, ["svc"] * len(ts))] * 3)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "run", "-traceFile", str(load), "-min=false",
         "-duration", "3", "-warmup", "0", "-workers", "2", "--protocol", "grpc",
         "--local-target", "--out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    socks = []
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "run.json").exists() and "start_ns" in (out / "run.json").read_text():
            socks = _listening([proc.pid] + descendants(proc.pid))
            break
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert len(socks) >= 2                        # the local target's HTTP and gRPC ports
    assert all(_loopback(addr) for addr, _ in socks), socks

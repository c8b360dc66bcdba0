"""Shared fixtures: the built-in target as a real process on loopback, trace files, and
running `replayer` as a real command."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LOAD = str(ROOT / "traces" / "example-load.json")
_run_cwd: Path | None = None


def run_cwd() -> Path:
    """Working directory of the replayer commands the tests start: a temporary one, so what a
    run writes there (rps_lat.csv, as the invoker does) stays out of the repository."""
    global _run_cwd
    if _run_cwd is None:
        _run_cwd = Path(tempfile.mkdtemp(prefix="replayer-tests-cwd-"))
        atexit.register(shutil.rmtree, _run_cwd, True)
    return _run_cwd


@dataclass
class Target:
    proc: subprocess.Popen
    http_port: int
    grpc_port: int


def start_target(*extra: str) -> Target:
    proc = subprocess.Popen(
        [sys.executable, "-m", "replayer", "serve", "--http-port", "0", "--grpc-port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    ports = {}
    for line in proc.stdout:
        words = line.split()
        if words == ["ready"]:
            break
        ports[words[0]] = int(words[1].rsplit(":", 1)[1])
    assert set(ports) == {"http", "grpc"}, "replayer serve did not start"
    return Target(proc, ports["http"], ports["grpc"])


def stop_target(target: Target) -> None:
    target.proc.send_signal(signal.SIGTERM)
    try:
        target.proc.wait(10)
    except subprocess.TimeoutExpired:
        target.proc.kill()


@pytest.fixture(scope="session")
def target():
    t = start_target()
    yield t
    stop_target(t)


@pytest.fixture
def slow_target():
    """Every answer takes 3 s (HTTP and gRPC)."""
    t = start_target("--delay-ms", "3000")
    yield t
    stop_target(t)


def write_load(path: Path, units: list[tuple[list[int], list[str]]]) -> Path:
    path.write_text(json.dumps([{"timestamp": ts, "endpoint": eps} for ts, eps in units]))
    return path


def replayer(*args: str, timeout: float = 120, env=None, check_exit: int | None = None,
             cwd: Path | None = None):
    """Run `python -m replayer ARGS` in cwd (default run_cwd()); return the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "replayer", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or run_cwd(), env=full_env)
    if check_exit is not None:
        assert proc.returncode == check_exit, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

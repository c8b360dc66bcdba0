"""Shared fixtures: the built-in target as a real process on loopback, trace files, and
running `replayer` as a real command."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from replayer.loopback.launch import ServeProcess, start_serve
from replayer.loopback.procinfo import free_port  # noqa: F401  (the tests import it from here)

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


def start_target(*extra: str) -> ServeProcess:
    """`replayer serve EXTRA` on free loopback ports (HTTP and gRPC), once it is ready."""
    return start_serve(*extra)


def stop_target(target: ServeProcess) -> None:
    target.stop()


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

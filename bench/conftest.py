"""Fixtures of the bench/ suite: the targets (nginx on loopback, from configs in a temp dir),
the peers' availability, and results shared between figures (figure 2's rate feeds 3, 4, 6).

Collected only when bench/ is named (`python -m pytest bench`): the default run's testpaths is
tests/, and the files here are bench_*.py, collected by the hook below.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(BENCH), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import _lib  # noqa: E402


def pytest_collect_file(file_path, parent):
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):   # a named file is collected anyway
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _version(cmd: list[str], pattern: str = r"[\d]+\.[\d.]+") -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, p.stdout + p.stderr)
    return m.group(0) if m else None


def machine_description() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import pycurl
        curl = pycurl.version
    except ImportError:
        curl = None
    try:
        import importlib.metadata as md
        locust_v = md.version("locust")
    except Exception:
        locust_v = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gib = None
    return {
        "cpu_model": model, "cpus_usable": len(os.sched_getaffinity(0)),
        "cpus_online": os.cpu_count(), "memory_gib": mem_gib,
        "kernel": platform.release(), "python": platform.python_version(),
        "pycurl_libcurl": curl, "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]), "hey": "Debian package" if shutil.which("hey") else None,
        "locust": locust_v, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["bench"] = machine_description()


@pytest.fixture(scope="session")
def deps():
    """The Debian packages and Locust; installed here when missing and we may (root)."""
    need = [t for t in ("nginx", "wrk", "hey") if shutil.which(t) is None]
    if need and os.geteuid() == 0:
        subprocess.run(["bash", str(ROOT / "tools" / "install-deps.sh"),
                        str(ROOT / "tools" / "bench-debian-packages.txt")], check=False)
        need = [t for t in ("nginx", "wrk", "hey") if shutil.which(t) is None]
    if need:
        pytest.skip(f"missing {', '.join(need)}: run tools/bench.sh (installs them)")
    return True


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="session")
def http_target(deps, workdir):
    from _nginx import http_target as make
    t = make(workdir / "nginx-http", workers=1)
    yield t
    t.stop()


@pytest.fixture(scope="session")
def grpc_target(deps, workdir):
    from grpc_target import check, grpc_target as make
    t = make(workdir / "nginx-grpc", workers=1)
    try:
        reply = check(t.port)
        assert reply == "Hello Invoke relay", reply
        yield t
    finally:
        t.stop()


@pytest.fixture(scope="session")
def state() -> dict:
    """Results one figure hands to another within the session."""
    return {}


@pytest.fixture(scope="session")
def http_startup(workdir, http_target, state) -> float:
    """CPU of replayer's fixed start-up (one HTTP worker), measured once."""
    if "http_startup_cpu_s" not in state:
        state["http_startup_cpu_s"] = _lib.startup_cpu_s(workdir, "http", http_target.port)
    return state["http_startup_cpu_s"]


@pytest.fixture(scope="session")
def http_max(workdir, http_target, state):
    """Figure 2's search: the highest open-loop rate one HTTP worker sustains (lag p99 < 1 ms,
    nothing failed, achieved within 3%), over 3-second runs. Shared by figures 2, 3, 4, 6."""
    if "http_max" not in state:
        def trial(rate):
            return _lib.run_replayer(workdir, rate, _lib.SEARCH_SECONDS, "http", http_target.port,
                                     target=http_target)
        rate, result, log = _lib.search_max_rate(trial, start=_lib.HTTP_SEARCH_START)
        state["http_max"] = (rate, result, log)
    return state["http_max"]

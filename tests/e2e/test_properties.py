"""Bad input given to `replayer` as a command: random and mutated load.json files and option
values (hypothesis) never give a traceback, a hang or a partial output, only exit 0 with a run
directory, or exit 2 with one line naming the place and no run directory. The decoders and
the option parsing are checked in process, with many more examples, in tests/unit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import assume, given

from input_cases import COMMANDS, field_swapped, mutated, run_option_pairs, valid_load

# Edge values that once passed validation and broke a run later (a traceback in a worker, a
# hang): each is run as a command of its own.
KNOWN_BAD = [
    ("--time-scale", "inf"), ("--time-scale", "1e309"), ("--time-scale", "1e300"),
    ("-grpcTimeout", "inf"), ("-grpcTimeout", "1e309"),
    ("--start-at", "nan"), ("--start-at", "NaN"), ("--start-at", "inf"), ("--start-at", "1e309"),
    ("--url-template", "{endpoint.x}"), ("--url-template", "{port:>99999999999}"),
    ("--spin-us", "99999999999999999999"), ("--max-inflight", "99999999999999999999"),
]


def _waits(option: str) -> bool:
    """Options left out of the random command lines: a future --start-at legitimately waits."""
    return option == "--start-at"


# --- as commands ----------------------------------------------------------------------------

def _command(tmp_path: Path, args: list[str], timeout: float = 60):
    """Run `replayer ARGS --out DIR` and check the outcome is one of the two allowed ones:
    exit 0 with run.json and summary.json, or exit 2 with one error line and no DIR."""
    out = tmp_path / f"run-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "replayer", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)
    try:
        proc.stdout_text, proc.stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # the run and its workers
        proc.communicate()
        raise AssertionError(f"replayer {' '.join(args)}: still running after {timeout}s") from None
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr)
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("replayer: error: "), proc.stderr
        assert not out.exists(), "a run that never started left a directory"
    else:
        assert (out / "summary.json").exists() and (out / "run.json").exists()
    return proc


@COMMANDS
@given(text=mutated(valid_load) | field_swapped())
def test_cli_mutated_load_json(tmp_path, text):
    """`replayer run` on a mutated load.json: a run, or one line naming the file."""
    load = tmp_path / "load.json"
    load.write_text(text, encoding="utf-8", errors="surrogatepass")
    proc = _command(tmp_path, ["run", "-traceFile", str(load), "-min=false", "-duration", "2",
                               "-warmup", "0", "-workers", "1", "--protocol", "null"])
    if proc.returncode == 2:
        assert str(load) in proc.stderr


@pytest.fixture(scope="module")
def small_load(tmp_path_factory):
    path = tmp_path_factory.mktemp("load") / "load.json"
    path.write_text(json.dumps([{"timestamp": [1, 300_000, 600_000], "endpoint": ["a", "b", "a"]}]))
    return path


@COMMANDS
@given(pairs=run_option_pairs)
def test_cli_option_values(tmp_path, small_load, pairs):
    """`replayer run` with random values for its options: a run, or one line."""
    assume(not any(_waits(o) for o, v in pairs))
    assume(not any(o == "-latf" for o, _ in pairs))     # writes next to NAME: outside tmp
    argv = ["run", "-traceFile", str(small_load), "-min=false", "-duration", "1", "-warmup", "0",
            "--protocol", "null", "-workers", "1"]
    for o, v in pairs:
        if o != "--protocol" or v not in ("http", "grpc"):   # stay off the network
            argv += [o, v]
    _command(tmp_path, argv)


@pytest.mark.parametrize("option, value", [
    pytest.param(o, v) for o, v in KNOWN_BAD if o != "--start-at" or v == "nan"])
def test_known_bad_option_values(tmp_path, small_load, option, value):
    """Infinite, huge and NaN times and malformed template fields are refused with one line
    before the run starts (or run), within seconds."""
    _command(tmp_path, ["run", "-traceFile", str(small_load), "-min=false", "-duration", "1",
                        "-warmup", "0", "--protocol", "null", "-workers", "1", option, value],
             timeout=6)

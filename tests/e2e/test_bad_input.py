"""Malformed load.json files and bad options: exit code 2 and one line naming the place;
never a traceback, never a run directory with partial output."""
from __future__ import annotations

import pytest

from conftest import EXAMPLE_LOAD, replayer
from input_cases import MALFORMED_LOAD_JSON


@pytest.mark.parametrize("name, text, place", MALFORMED_LOAD_JSON,
                         ids=[c[0] for c in MALFORMED_LOAD_JSON])
def test_malformed_load_json(tmp_path, name, text, place):
    """`replayer run` on each malformed load.json: exit 2, one line naming the file and the
    place, no traceback, no run directory."""
    load = tmp_path / "load.json"
    load.write_text(text)
    out = tmp_path / "run"
    proc = replayer("run", "-traceFile", str(load), "-min=false", "-duration", "5", "--out", str(out),
                    "--protocol", "http")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(load) in lines[0] and place in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()                # nothing written for a run that never started


def test_missing_trace_file(tmp_path):
    """A -traceFile that is not there: exit 2, one line naming it."""
    proc = replayer("run", "-traceFile", str(tmp_path / "nope.json"))
    assert proc.returncode == 2
    assert "nope.json: no such trace file" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_no_load_json_points_to_the_demo(tmp_path):
    """Without -traceFile and no load.json in the working directory, the one error line
    says how to run the bundled example against the built-in target."""
    proc = replayer("run", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replayer: error: load.json: no such trace file")
    assert "-traceFile traces/example-load.json" in lines[0] and "--local-target" in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["-workers", "x"], "-workers"),
    (["-workers", "-3"], "-workers -3"),
    (["-duration", "0"], "-duration 0"),
    (["-min", "maybe"], "invalid boolean value: 'maybe'"),
    (["-port", "70000"], "-port 70000"),
    (["-grpcTimeout", "0"], "-grpcTimeout 0"),
    (["--protocol", "ftp"], "invalid choice"),
    (["--resolve", "nohost"], "--resolve 'nohost'"),
    (["--shard", "3/2"], "--shard '3/2'"),
    (["--url-template", "http://{host}/"], "--url-template"),
    (["--url-template", "ftp://{endpoint}:{port}/"], "scheme ftp:// is not HTTP"),
    (["--url-template", "file:///etc/passwd"], "scheme file:// is not HTTP"),
    (["--url-template", "h2c://{endpoint}/"], "--http-version h2c"),
    (["--url-template", "{endpoint}:{port}/"], "no scheme"),
    (["--url-template", "http:///path"], "no host"),
    (["-latf", "dir/"], "-latf 'dir/': give a file name"),
    (["--header", "NoColon"], "--header 'NoColon'"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_bad_options(tmp_path, args, words):
    """Each bad option: exit 2, one line naming it, nothing written (no run directory, no
    latency file) since nothing ran."""
    proc = replayer("run", "-traceFile", EXAMPLE_LOAD, "--out", str(tmp_path / "run"), *args,
                    cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("latf, words", [
    ("new/x.csv", None),
    ("file/x.csv", "cannot create directory file"),
    ("taken.csv", "rps_taken.csv (Is a directory)"),
])
def test_unwritable_latency_file(tmp_path, latf, words):
    """-latf whose rps_ file cannot be written fails before the run (exit 2, one line), so
    no latencies are lost at its end; a missing directory is made."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "rps_taken.csv").mkdir()
    proc = replayer("run", "-traceFile", EXAMPLE_LOAD, "-min=false", "--protocol", "null",
                    "-duration", "1", "-warmup", "0", "--time-scale", "0.1", "-latf", latf,
                    "--out", str(tmp_path / "run"), cwd=tmp_path)
    if words is None:           # a directory not there yet is made
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "new" / "rps_x.csv").read_bytes() == \
            (tmp_path / "run" / "rps_x.csv").read_bytes()
        return
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"-latf {latf}" in lines[0] and words in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


def test_bad_environment_variable():
    """A REPLAYER_ variable that does not convert: exit 2, naming the variable and its value."""
    proc = replayer("run", env={"REPLAYER_WORKERS": "many"})
    assert proc.returncode == 2
    assert "REPLAYER_WORKERS='many'" in proc.stderr


def test_unwritable_out_dir(tmp_path):
    """An --out below a file (not a directory): exit 2, one line saying it cannot write
    there."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = replayer("run", "-traceFile", EXAMPLE_LOAD, "-min=false",
                    "--out", str(blocker / "run"), "--protocol", "http")
    assert proc.returncode == 2
    assert "cannot write there" in proc.stderr and len(proc.stderr.splitlines()) == 1

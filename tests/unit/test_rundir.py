"""Where a run writes (replayer.run.rundir): the run directory checked before the run, run.json
written whole and without secrets, the invoker's latency file placed and checked."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from replayer.errors import InputError
from replayer.run.options import RunOptions
from replayer.run.plan import make_plan
from replayer.run.rundir import (RECORD_DISK_BYTES, check_disk_space, check_latf, latf_path,
                                 prepare_run_dir, redact_url, run_dir_path, run_info,
                                 write_run_json)
from replayer.schedules.schedule import NS_PER_S, Schedule
from replayer.transports import TransportConfig

SECRETS = ("Bearer s3cr3t", "tok-9f8e", "hunter2", "body-secret")


def test_run_dir_is_out_or_a_new_one_under_results():
    assert run_dir_path("some/dir") == run_dir_path("some/dir") and str(run_dir_path("x")) == "x"
    default = run_dir_path(None)
    assert default.parent.name == "results" and default.name.startswith("run-")
    assert int(default.name[4:]) > 1_600_000_000          # the Unix time it was chosen at


def test_prepare_makes_the_directory_and_leaves_nothing_in_it(tmp_path):
    out = tmp_path / "a" / "b"
    prepare_run_dir(out, 1000)
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_directory_with_a_run_is_refused(tmp_path):
    (tmp_path / "records-w000.arrow").write_bytes(b"")
    with pytest.raises(InputError, match=r"--out .*: already holds a run's records; choose another"):
        prepare_run_dir(tmp_path, 10)


def test_a_directory_that_cannot_be_made_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"--out .*file/run: cannot write there .*choose a writable"):
        prepare_run_dir(tmp_path / "file" / "run", 10)


def test_not_enough_space_is_known_before_the_start(tmp_path):
    """A run whose records could not fit in the free space is refused before it starts."""
    st = os.statvfs(tmp_path)
    too_many = st.f_bavail * st.f_frsize // RECORD_DISK_BYTES + 1_000_000
    with pytest.raises(InputError, match="MB needed"):
        check_disk_space(tmp_path, too_many)
    with pytest.raises(InputError, match="MB needed"):
        prepare_run_dir(tmp_path / "run", too_many)
    check_disk_space(tmp_path, 1000)       # a small run fits


def test_run_json_is_replaced_whole(tmp_path):
    write_run_json(tmp_path, {"a": 1})
    write_run_json(tmp_path, {"a": 2, "path": tmp_path})       # paths are written as text
    assert json.loads((tmp_path / "run.json").read_text()) == {"a": 2, "path": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


@pytest.mark.parametrize("url,want", [
    ("http://{endpoint}:{port}/", "http://{endpoint}:{port}/"),
    ("https://user:hunter2@{endpoint}/x", "https://<redacted>@{endpoint}/x"),
    ("http://{endpoint}/a?token=tok-9f8e&b=", "http://{endpoint}/a?token=<redacted>&b=<redacted>"),
    ("http://[::1/", "<redacted>"),                        # not a URL: nothing of it kept
])
def test_url_redaction(url, want):
    assert redact_url(url) == want


def test_run_json_keeps_no_secret():
    """Header values, the body, a URL's password and query values never reach run.json; the
    header names, the body's length and the rest of the options do."""
    opts = RunOptions(protocol="http", header=["Authorization: Bearer s3cr3t", "X-Id: tok-9f8e"],
                      body="body-secret", url_template="http://u:hunter2@{endpoint}/?k=tok-9f8e",
                      shard="1/2", workers=2)
    schedule = Schedule(t_ns=np.arange(10, dtype=np.int64), target=np.zeros(10, np.int32),
                        targets=["svc"], unit_ns=NS_PER_S)
    plan = make_plan(opts, schedule.t_ns, schedule.unit_ns, [0, 1, 2])
    transport = TransportConfig(protocol="http", endpoints=["svc"], port=80, timeout_s=1.0,
                                url_template=opts.url_template, headers=list(plan.headers),
                                payload=b"body-secret", http_client="curl")
    info = run_info(opts, plan, schedule, transport)
    text = json.dumps(info, default=str)
    assert not [s for s in SECRETS if s in text]
    assert info["options"]["header"] == ["Authorization: <redacted>", "X-Id: <redacted>"]
    assert info["options"]["body"] == "<11 bytes>"
    assert info["options"]["url_template"] == "http://<redacted>@{endpoint}/?k=<redacted>"
    assert info["transport"]["url_template"] == info["options"]["url_template"]
    assert info["options"]["workers"] == 2 and info["options"]["shard"] == "1/2"
    assert (info["workers"], info["pinned"], info["cpus"]) == (2, True, [0, 1, 2])
    schedule = dict(info["schedule"])
    assert len(schedule.pop("schedule_hash")) == 32          # replayer merge checks it
    assert schedule == {"requests": 10, "node_requests": 5, "unit_ns": NS_PER_S,
                        "time_scale": 1.0, "warmup_ns": 2 * NS_PER_S, "shard": [1, 2]}


def test_latency_file_goes_where_the_invoker_puts_it(tmp_path):
    assert str(latf_path("lat.csv")) == "rps_lat.csv"              # the working directory
    assert latf_path(str(tmp_path / "d" / "lat.csv")) == tmp_path / "d" / "rps_lat.csv"
    check_latf(str(tmp_path / "d" / "lat.csv"))                     # its directory is made
    assert (tmp_path / "d").is_dir() and list((tmp_path / "d").iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"-latf .*: cannot create directory .*; give another"):
        check_latf(str(tmp_path / "f" / "lat.csv"))

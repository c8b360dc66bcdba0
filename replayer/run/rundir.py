"""Where a run writes: its directory, checked before anything starts (not another run's,
writable, room for the records), its run.json, written atomically (a reader sees the old file
or the new one, never half of one) and without secrets (header values, the body, a URL's
password and query values), and the invoker's latency file (-latf), checked writable first.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from replayer import __version__
from replayer.errors import InputError, check_writable
from replayer.run.options import RunOptions
from replayer.run.plan import RunPlan
from replayer.schedules.schedule import Schedule
from replayer.transports import TransportConfig

# Arrow bytes per record on disk (measured: ~58 B of columns plus batch framing), with margin.
RECORD_DISK_BYTES = 80
REDACTED = "<redacted>"


def run_dir_path(out: str | None) -> Path:
    """--out, or results/run-<unix time>."""
    return Path(out) if out else Path("results") / f"run-{int(time.time())}"


def prepare_run_dir(path: Path, records: int) -> None:
    """Make the run directory, refusing one that holds a run's records, one that cannot be
    written and one without room for `records` records."""
    if path.exists() and any(path.glob("records-w*.arrow")):
        raise InputError(f"--out {path}: already holds a run's records; choose another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write there ({exc.strerror}); choose a writable "
                         "directory") from None
    check_disk_space(path, records)


def check_disk_space(path: Path, records: int) -> None:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    need = records * RECORD_DISK_BYTES + (1 << 20)
    if free < need:
        raise InputError(f"--out {path}: about {need / 1e6:.1f} MB needed for {records} records "
                         f"but {free / 1e6:.1f} MB free; free some space or choose another "
                         "directory")


def write_run_json(run_dir: Path, info: dict) -> None:
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, run_dir / "run.json")


def run_info(opts: RunOptions, plan: RunPlan, schedule: Schedule,
             transport: TransportConfig) -> dict:
    """run.json as the run starts: the options (redacted), the host, the plan, the schedule
    and the transport. The supervisor adds start_ns and, at the end, result."""
    return {
        "version": __version__, "options": redacted_options(opts), "host": socket.gethostname(),
        "cpus": list(plan.cpus), "workers": plan.workers, "pinned": plan.pinned,
        "spin_max_us": plan.spin_max_us,
        "targets": list(schedule.targets), "classes": [c.to_json() for c in schedule.classes],
        "payloads": [{"name": p.name, "bytes": len(p.body or b"")} for p in schedule.payloads],
        "schedule_meta": schedule.meta,
        "schedule": {"requests": plan.requests, "node_requests": plan.node_requests,
                     "unit_ns": plan.unit_ns, "time_scale": opts.time_scale,
                     "warmup_ns": plan.warmup_ns, "shard": [plan.shard_index, plan.shard_count],
                     "schedule_hash": schedule_hash(schedule)},
        "transport": {"protocol": transport.protocol, "port": transport.port,
                      "url_template": (redact_url(transport.url_template)
                                       if transport.protocol == "http" else None),
                      "http_version": transport.http_version, "insecure": transport.insecure,
                      "http_client": transport.http_client if transport.protocol == "http" else None,
                      "resolve": transport.resolve},
    }


HASH_CHUNK = 1 << 24     # bytes hashed per update: no copy of a whole column


def schedule_hash(schedule: Schedule) -> str:
    """What `replayer merge` compares to tell shards of one schedule from shards of another:
    blake2b over the columns as replayed (after -warmup/-duration cut them), read in place in
    chunks (about 1 GB/s: 0.1 s for 10 M requests), and the endpoint names and time unit."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([len(schedule), schedule.unit_ns, list(schedule.targets)]).encode())
    for name in ("t_ns", "target", "cls", "payload"):
        column = getattr(schedule, name)
        h.update(name.encode())
        if column is None:
            continue
        data = memoryview(column).cast("B")
        for lo in range(0, len(data), HASH_CHUNK):
            h.update(data[lo:lo + HASH_CHUNK])
    return h.hexdigest()


def redacted_options(opts: RunOptions) -> dict:
    """The options as run.json keeps them: header names without their values (Authorization,
    tokens), the body's length instead of the body, the URL template redacted."""
    options = asdict(opts)
    options["header"] = [h.split(":", 1)[0] + ": " + REDACTED for h in opts.header]
    options["body"] = None if opts.body is None else f"<{len(opts.body)} bytes>"
    options["url_template"] = redact_url(opts.url_template)
    return options


def redact_url(url: str) -> str:
    """A URL without what may be a secret: query values and a user's password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = urlencode([(k, REDACTED) for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, "")).replace("%7B", "{").replace("%7D", "}")


def latf_path(name: str) -> Path:
    """Where -latf NAME writes the invoker's rps_NAME: in the working directory for a bare
    NAME (as the invoker, whose users' scripts read it there), in NAME's own directory when it
    has one. The run directory keeps a copy."""
    p = Path(name)
    return p.parent / f"rps_{p.name}"


def check_latf(name: str) -> None:
    """Before the run: rps_NAME's directory exists (made if missing) and is writable, so the
    latencies are not lost at the end."""
    check_writable(latf_path(name), f"-latf {name}",
                   "give another -latf (or -latf '' for none)", name_directory=True)

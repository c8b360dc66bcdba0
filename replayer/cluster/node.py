"""A node's side of `replayer run --ray`: the Ray actor the driver places on each node
(NodeAgent), and the replayer run it starts there as a child process (`python -m
replayer.cluster.node SPEC`), a run like any other except for its start: once its workers are
ready it says so, and it starts at the time the driver sends once every node is ready.

The actor answers the driver's clock reads (its offset), writes the schedule the driver shipped
to a directory of its own, runs the shard there and hands the records back as they are written
(`poll`: the bytes each Arrow stream grew by, so the driver's copy is the node's file), then its
run.json, summary.json and failure logs.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replayer import __version__, _pacer
from replayer.errors import RunError, exit_code_of
from replayer.run.options import RunOptions
from replayer.run.supervisor import Supervisor

READY_LINE = b"ready\n"
# The files of a node's run directory that are whole only at its end.
FINAL_GLOBS = ("run.json", "summary.json", "failures-w*.json")
RECORD_GLOB = "records-w*.arrow"
LOG_TAIL_BYTES = 4000


class NodeSupervisor(Supervisor):
    """A run whose start time comes from the driver: when its workers are ready it writes
    READY_LINE to ready_fd, then reads the start time (Unix seconds, one line) on stdin."""

    def __init__(self, opts: RunOptions, ready_fd: int, start_wait_s: float):
        super().__init__(opts)
        self.ready_fd = ready_fd
        self.start_wait_s = start_wait_s

    def _start(self) -> int:
        os.write(self.ready_fd, READY_LINE)
        os.close(self.ready_fd)
        start_at = self._read_start()
        self.opts = dataclasses.replace(self.opts, start_at=start_at)
        return super()._start()

    def _abort(self, why: str) -> RunError:
        self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
        return RunError(why)

    def _read_start(self) -> float:
        deadline = time.monotonic() + self.start_wait_s
        fd, line = sys.stdin.fileno(), b""
        while b"\n" not in line:
            if self.stop_requests:
                self.control[_pacer.CONTROL_STOP] = _pacer.STOP_ABORT
                raise KeyboardInterrupt
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._abort(f"no start time from the driver within {self.start_wait_s:.0f}s")
            if select.select([fd], [], [], min(left, 0.1))[0]:
                chunk = os.read(fd, 64)
                if not chunk:
                    raise self._abort("the driver went away before the start")
                line += chunk
        try:
            return float(line.split(b"\n", 1)[0])
        except ValueError:
            raise self._abort(f"the driver sent {line!r} for a start time") from None


def main(argv: list[str] | None = None) -> int:
    """The node's run, from the spec the actor wrote: {"options": RunOptions fields, "ready_fd",
    "start_wait_s"}; exit codes as `replayer run`'s."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    _stop_with_parent(spec["parent_pid"])
    return exit_code_of(lambda: NodeSupervisor(RunOptions(**spec["options"]), spec["ready_fd"],
                                               spec["start_wait_s"]).run())


class NodeAgent:
    """The Ray actor on one node (the driver wraps it with ray.remote): runs shard `node` of
    `nodes` in a directory of its own and streams its records back."""

    def __init__(self, node: int, nodes: int):
        self.node, self.nodes = node, nodes
        self.dir = Path(tempfile.mkdtemp(prefix=f"replayer-node{node}-"))
        self.run_dir = self.dir / "run"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "node.log"
        self.sent: dict[str, int] = {}           # bytes of each record stream handed back

    def describe(self) -> dict:
        import ray
        ctx = ray.get_runtime_context()
        return {"host": socket.gethostname(), "ip": ray.util.get_node_ip_address(),
                "ray_node_id": ctx.get_node_id(), "version": __version__,
                "cpus": len(os.sched_getaffinity(0))}

    def clock(self) -> int:
        return time.time_ns()

    def prepare(self, options: dict, trace_name: str, trace: bytes, body_name: str | None,
                body: bytes | None, ready_timeout_s: float, start_wait_s: float) -> dict:
        """Write the shipped files, start the shard's run and wait until its workers are ready:
        {"ready": True, "pid", "run_json"}, or {"ready": False, "exit", "log"}."""
        inputs = self.dir / "in"
        inputs.mkdir()
        options = dict(options)
        options["trace_file"] = str(_write(inputs / Path(trace_name).name, trace))
        if body_name is not None:
            options["body_file"] = str(_write(inputs / Path(body_name).name, body))
        options.update(out=str(self.run_dir), shard=f"{self.node}/{self.nodes}", latf="",
                       ray=None, nodes=0, start_at=None)
        ready_r, ready_w = os.pipe()
        spec_path = self.dir / "spec.json"
        spec_path.write_text(json.dumps({"options": options, "ready_fd": ready_w,
                                         "start_wait_s": start_wait_s,
                                         "parent_pid": os.getpid()}))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "replayer.cluster.node", str(spec_path)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                pass_fds=(ready_w,), start_new_session=True)
        os.close(ready_w)
        try:
            ready = _wait_line(ready_r, self.proc, ready_timeout_s)
        finally:
            os.close(ready_r)
        if not ready:
            if self.proc.poll() is None:
                self.proc.kill()
            return {"ready": False, "exit": self.proc.wait(), "log": self.log_tail()}
        return {"ready": True, "pid": self.proc.pid,
                "run_json": (self.run_dir / "run.json").read_bytes()}

    def start(self, start_at: float) -> int:
        """Give the run its start time; the node's clock when it got it."""
        self.proc.stdin.write(f"{start_at!r}\n".encode())
        self.proc.stdin.flush()
        return time.time_ns()

    def poll(self, max_bytes: int) -> dict:
        """What the record streams grew by since the last poll (at most max_bytes), the run's
        exit code once it ended, and, once it ended and every record is handed back, its
        final files ("final") and the tail of its log."""
        code = self.proc.poll()
        chunks, budget = {}, max_bytes
        for path in sorted(self.run_dir.glob(RECORD_GLOB)):
            done = self.sent.get(path.name, 0)
            size = path.stat().st_size
            if size <= done or budget <= 0:
                continue
            with open(path, "rb") as f:
                f.seek(done)
                data = f.read(min(size - done, budget))
            chunks[path.name] = data
            self.sent[path.name] = done + len(data)
            budget -= len(data)
        out = {"chunks": chunks, "exit": code}
        if code is not None and budget > 0:
            out["final"] = {path.name: path.read_bytes() for pattern in FINAL_GLOBS
                            for path in sorted(self.run_dir.glob(pattern))}
            out["log"] = self.log_tail()
        return out

    def stop(self, abort: bool = False) -> None:
        """Stop the run as Ctrl-C does (abort: kill it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if abort else signal.SIGTERM)

    def log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")

    def cleanup(self) -> None:
        self.stop(abort=True)
        if self.proc is not None:
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent_pid: int) -> None:
    """A node's run whose actor died (its Ray node went down) can hand nothing back: it stops
    as at Ctrl-C (SIGTERM) when the actor's process ends, at once if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        sys.exit("replayer: the node's Ray actor is gone before the run started")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _wait_line(fd: int, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Whether READY_LINE came on fd before proc exited and timeout_s passed."""
    deadline = time.monotonic() + timeout_s
    got = b""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 64)
            if not chunk:
                return False
            got += chunk
            if got.startswith(READY_LINE):
                return True
        elif proc.poll() is not None:
            return False
    return False


if __name__ == "__main__":
    sys.exit(main())

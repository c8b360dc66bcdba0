"""Starting the built-in target (`replayer serve`) as a child process and reading the ports it
listens on: for `replayer run --local-target`, the tests and the benchmarks alike.

`replayer serve` prints one 'PROTOCOL HOST:PORT' line per listener (and 'scheduler HOST:PORT'
with --scheduler), then 'ready'. It stops when the reader of its stdout goes away, so the
child's stdout stays open here until stop().
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from replayer.errors import RunError

# Where this replayer package lives: the child runs from there, so it imports the same one.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_S = 30.0


class ServeProcess:
    """`replayer serve ARGS` on the given ports (0: any free one; -1: none). new_session:
    outside this process group, so a Ctrl-C meant for the caller does not stop the target
    while the caller still needs it. Started at once; wait_ready() reads its listeners into
    ports ({"http": port, "grpc": port})."""

    def __init__(self, *args: str, http_port: int = 0, grpc_port: int = 0,
                 new_session: bool = False):
        self.args = args
        self.expected = {name for name, port in (("http", http_port), ("grpc", grpc_port))
                         if port >= 0}
        self.ports: dict[str, int] = {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replayer", "serve", "--http-port", str(http_port),
             "--grpc-port", str(grpc_port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=PACKAGE_ROOT,
            start_new_session=new_session)

    def wait_ready(self) -> "ServeProcess":
        """Once it says ready, with every listener asked for; RunError (and stopped) if not."""
        ready = False
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.proc.stdout:
            words = line.split()
            if words == ["ready"]:
                ready = True
                break
            if len(words) == 2:
                self.ports[words[0]] = int(words[1].rsplit(":", 1)[1])
            if time.monotonic() > deadline:
                break
        if not ready or not self.expected <= set(self.ports):
            self.stop()
            raise RunError(f"the built-in target ({' '.join(('replayer serve',) + self.args)}) "
                           "did not start")
        return self

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def scheduler_port(self) -> int:
        """With --scheduler: scheduler.SchedulerService's port (the gRPC port)."""
        return self.ports["scheduler"]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after timeout_s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)


def start_serve(*args: str, http_port: int = 0, grpc_port: int = 0,
                new_session: bool = False) -> ServeProcess:
    """`replayer serve ARGS`, once it is ready (see ServeProcess)."""
    return ServeProcess(*args, http_port=http_port, grpc_port=grpc_port,
                        new_session=new_session).wait_ready()

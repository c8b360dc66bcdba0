"""nginx (Debian nginx-light) as a loopback target, from a config written into a temp dir.

The system nginx config, pid file and logs are never touched: the master runs with its own
prefix (-p), config (-c) and error log (-e), in the foreground (`daemon off`), and is stopped
by its pid. Workers are pinned (worker_cpu_affinity) to the last CPUs, away from the client,
which gets the first CPU (replayer pins its worker 0 there).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from _lib import cpus, proc_cpu_s, wait_port
from replayer.loopback.procinfo import children, free_port

HTTP_SERVER = """
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "ok\\n"; }}
"""


def _affinity(workers: int) -> str:
    """worker_cpu_affinity masks placing the workers on the last CPUs, one each."""
    all_cpus = cpus()
    chosen = all_cpus[-workers:] if workers <= len(all_cpus) else all_cpus
    masks = []
    for k in range(workers):
        cpu = chosen[k % len(chosen)]
        masks.append("1" + "0" * cpu)
    return " ".join(masks)


class Nginx:
    def __init__(self, directory: Path, server_block: str, workers: int = 1, name: str = "http"):
        if shutil.which("nginx") is None:
            raise RuntimeError("nginx not found: run `bash tools/install-deps.sh "
                               "tools/bench-debian-packages.txt` (Debian package nginx-light)")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.workers = workers
        self.name = name
        conf = self.dir / "nginx.conf"
        d = self.dir
        # Started as root, nginx would run its workers as `nobody`, who cannot read files under
        # pytest's 0700 temp dirs (the gRPC reply): keep them as the current user.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        conf.write_text(f"""
{user}
worker_processes {workers};
worker_cpu_affinity {_affinity(workers)};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  server {{
{server_block.format(port=self.port, dir=d)}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        try:
            wait_port(self.port)
        except RuntimeError:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"nginx did not start: {err}")
        self.worker_pids = self._workers()

    def _workers(self) -> list[int]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = children(self.proc.pid)
            if len(kids) >= self.workers:
                return kids
            time.sleep(0.05)
        return []

    def cpu_s(self) -> float:
        """CPU of the nginx workers so far (the target's share of a run)."""
        return sum(proc_cpu_s(p) for p in self.worker_pids)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def describe(self) -> str:
        return f"nginx {self.name}, {self.workers} worker(s), 127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.proc.kill()
                self.proc.wait(5)


def http_target(directory: Path, workers: int = 1) -> Nginx:
    return Nginx(directory, HTTP_SERVER, workers, "HTTP/1.1 (return 200)")

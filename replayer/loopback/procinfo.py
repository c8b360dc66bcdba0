"""What the tests and the benchmarks ask of this machine about processes: a free loopback
port, a process's memory (/proc/PID/status), its command line and its children."""
from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid: int | str = "self") -> dict[str, int] | None:
    """The memory lines of /proc/PID/status in KiB, by name (VmRSS, VmHWM, RssAnon, RssFile,
    RssShmem, ...); None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        words = value.split()
        if len(words) == 2 and words[1] == "kB":
            out[key] = int(words[0])
    return out if "VmRSS" in out else None


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory (VmRSS) of a live process, in KiB."""
    memory = memory_kib(pid)
    if memory is None:
        raise ProcessLookupError(f"no process {pid}")
    return memory["VmRSS"]


def children(pid: int) -> list[int]:
    """The child processes of pid's main thread; [] when it is gone."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(pid: int) -> list[int]:
    """Children, their children and so on (pid itself not included)."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def command_line(pid: int) -> bytes:
    """/proc/PID/cmdline: the arguments, each ended by a NUL; b"" when the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def spawned_children(pid: int) -> list[int]:
    """The children of pid that multiprocessing spawned: a run's workers (not its resource
    tracker, nor a --local-target)."""
    return [k for k in children(pid) if b"multiprocessing.spawn" in command_line(k)]

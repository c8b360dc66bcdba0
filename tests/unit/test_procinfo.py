"""What the tests and benchmarks read about processes (replayer.loopback.procinfo): a free
port, a process's memory, its command line, its children and descendants."""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from replayer.loopback.procinfo import (children, command_line, descendants, free_port, memory_kib,
                                        rss_kib, spawned_children)


def test_a_free_port_can_be_listened_on():
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()


def test_memory_counts_touched_pages():
    before = memory_kib()
    assert {"VmRSS", "VmHWM", "RssAnon"} <= set(before) and before["VmRSS"] <= before["VmHWM"]
    block = np.ones(64 << 20, np.uint8)           # 64 MiB, every page written
    assert rss_kib() - before["VmRSS"] > 48 * 1024
    assert memory_kib()["VmHWM"] - before["VmRSS"] > 48 * 1024
    del block


def test_a_finished_process_has_no_memory_and_no_children():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert memory_kib(proc.pid) is None and children(proc.pid) == []
    with pytest.raises(ProcessLookupError):
        rss_kib(proc.pid)


def test_children_and_descendants():
    """A shell with two sleeping children: both are its children and the test's descendants."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        for _ in range(200):
            kids = children(shell.pid)
            if len(kids) == 2:
                break
            time.sleep(0.01)
        assert len(kids) == 2
        tree = descendants(shell.pid)
        assert sorted(tree) == sorted(kids)
        assert shell.pid in children(os.getpid())
        assert set(kids) <= set(descendants(os.getpid()))
    finally:
        for pid in children(shell.pid):
            os.kill(pid, signal.SIGTERM)
        shell.wait(10)


def test_command_line_and_spawned_children():
    """A spawned worker is told apart from other children by its command line."""
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=time.sleep, args=(30,), daemon=True)
    worker.start()
    other = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while command_line(other.pid) != b"sleep\x0030\x00" and time.monotonic() < deadline:
            time.sleep(0.01)        # between fork and exec it is still this Python, or empty
        assert command_line(other.pid).split(b"\0") == [b"sleep", b"30", b""]
        assert worker.pid in spawned_children(os.getpid())
        assert other.pid in children(os.getpid()) and other.pid not in spawned_children(os.getpid())
    finally:
        worker.kill()
        other.kill()
        worker.join(10)
        other.wait(10)
    assert command_line(other.pid) == b""

"""The plain Python baseline: a pycurl multi loop, the way one would write it by hand.

Open loop (default): request i is due at start + i/rate; between due times the loop sleeps in
multi.select() (which also lets completions in) until the next due time, then adds a pooled
keep-alive handle and calls perform(). It stamps each request's intended and actual send time
(CLOCK_REALTIME ns, just before add_handle).
Closed loop (--closed C): C handles, each re-added as soon as its answer arrives (wrk-style).

Prints one JSON line: sent, ok, errors, loop_cpu_s (user+sys of the loop alone, after start-up);
with --out, writes intended_ns/actual_ns arrays (npz).
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pycurl


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _handle(url: str) -> pycurl.Curl:
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.NOSIGNAL, 1)
    c.setopt(pycurl.TIMEOUT_MS, 5000)
    c.setopt(pycurl.WRITEFUNCTION, lambda b: None)
    c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    return c


def _collect(multi, free, counts):
    while True:
        queued, ok, failed = multi.info_read()
        for c in ok:
            counts["ok" if c.getinfo(pycurl.RESPONSE_CODE) == 200 else "status"] += 1
            multi.remove_handle(c)
            free.append(c)
        for c, _errno, _msg in failed:
            counts["error"] += 1
            multi.remove_handle(c)
            free.append(c)
        if not queued:
            return


def open_loop(url: str, rate: float, seconds: float):
    n = int(rate * seconds)
    period = 1e9 / rate
    multi = pycurl.CurlMulti()
    free = [_handle(url) for _ in range(64)]
    pool = [64]
    counts = {"ok": 0, "status": 0, "error": 0}
    intended = np.empty(n, np.int64)
    actual = np.empty(n, np.int64)
    now_ns = time.time_ns
    cpu0 = _cpu()
    start = now_ns() + 50_000_000
    i = 0
    while i < n:
        due = start + int(i * period)
        now = now_ns()
        if now < due:
            if len(free) == pool[0]:
                time.sleep((due - now) / 1e9)        # nothing in flight: sleep until due
            else:
                multi.select((due - now) / 1e9)      # sleep until due, completions meanwhile
                multi.perform()
                _collect(multi, free, counts)
            continue
        if not free:
            free.append(_handle(url))
            pool[0] += 1
        c = free.pop()
        intended[i] = due
        actual[i] = now_ns()
        multi.add_handle(c)
        multi.perform()
        i += 1
    deadline = time.monotonic() + 5
    while len(free) < pool[0] and time.monotonic() < deadline and \
            counts["ok"] + counts["status"] + counts["error"] < n:
        multi.select(0.01)
        multi.perform()
        _collect(multi, free, counts)
    cpu = _cpu() - cpu0
    return n, counts, cpu, intended, actual


def closed_loop(url: str, conns: int, seconds: float):
    multi = pycurl.CurlMulti()
    free = [_handle(url) for _ in range(conns)]
    counts = {"ok": 0, "status": 0, "error": 0}
    cpu0 = _cpu()
    end = time.monotonic() + seconds
    sent = 0
    t0 = time.monotonic()
    while True:
        now = time.monotonic()
        if now < end:
            while free:
                multi.add_handle(free.pop())
                sent += 1
        elif len(free) == conns:
            break
        if now > end + 5:
            break
        multi.perform()
        _collect(multi, free, counts)
        if not free:
            multi.select(0.01)
            multi.perform()
            _collect(multi, free, counts)
    wall = time.monotonic() - t0
    return sent, counts, _cpu() - cpu0, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--closed", type=int, default=0, help="closed loop with this many connections")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.closed:
        sent, counts, cpu, wall = closed_loop(a.url, a.closed, a.seconds)
        print(json.dumps({"mode": "closed", "sent": sent, **counts, "loop_cpu_s": cpu,
                          "rate": counts["ok"] / wall}))
        if a.out:
            np.savez(a.out, intended_ns=np.zeros(0, np.int64), actual_ns=np.zeros(0, np.int64))
        return
    n, counts, cpu, intended, actual = open_loop(a.url, a.rate, a.seconds)
    if a.out:
        np.savez(a.out, intended_ns=intended, actual_ns=actual)
    print(json.dumps({"mode": "open", "sent": n, **counts, "loop_cpu_s": cpu, "rate": a.rate}))


if __name__ == "__main__":
    main()

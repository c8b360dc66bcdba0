"""Locust's CSV files written while a run goes, as `locust --headless --csv PREFIX` writes them:
PREFIX_stats.csv, PREFIX_failures.csv and PREFIX_exceptions.csv rewritten every second (each
replaced whole, so a reader never sees half a file), PREFIX_stats_history.csv one row more
every second (with --csv-full-history, a row per request name before the Aggregated one).

Written by the run's parent from the records it drains (never on the send path), with locust
2.x's columns and rounding (replayer.analysis.export's Locust helpers, checked against files the
real locust writes). Warm-up requests are left out: the history starts when the warm-up ends.
A request is counted when it ends (its answer, or its failure), as Locust logs it.

Locust's meanings, kept: a history row's Requests/s and Failures/s are the average of the ten
seconds that ended two seconds before it (Locust's current_rps); its percentiles are over the
whole measured run, or with --csv-full-history over the last ten seconds (Locust's current
response times); its totals are the whole run's. A row stands for the second before its
Timestamp and is written once that second's records are in (a flush later). A request's Name
is its URL path (a target's name when it has none) and its Type the HTTP method. "User Count"
is the users started (closed loop), 0 for an open-loop run, which has none.
"""
from __future__ import annotations

import csv
import os
from collections import deque
from pathlib import Path

import numpy as np

from replayer.analysis.export import (LOCUST_FAILURES_COLUMNS, LOCUST_HISTORY_COLUMNS,
                                      LOCUST_PERCENTILES, LOCUST_STATS_COLUMNS, _Entry, _utc,
                                      locust_percentile)
from replayer.analysis.model import Columns
from replayer.errors import InputError, check_writable

LOCUST_EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]
SUFFIXES = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")
RATE_WINDOW_S = (12, 2)          # Locust's current_rps: [now - 12, now - 2) seconds
CURRENT_WINDOW_S = 10            # Locust's CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW
NS = 1_000_000_000


def request_names(opts, schedule) -> list[tuple[str, str]]:
    """(Type, Name) of each request key: payload p is key p, a target t's own request (no
    payload) key len(payloads) + t. Name: the payload's path, else the target's name;
    Type: the HTTP method ("grpc" for gRPC), as the request goes."""
    run_body = opts.body is not None or opts.body_file is not None
    if opts.protocol == "grpc":
        run_method = "grpc"
    else:
        run_method = (opts.method or ("POST" if run_body else "GET")).upper()
    names = []
    for p in schedule.payloads:
        method = run_method if opts.protocol == "grpc" else (
            p.method or ("POST" if p.body is not None or run_body else run_method)).upper()
        names.append((method, p.path or p.name or "payload"))
    names += [(run_method, t) for t in schedule.targets]
    return names


def check_csv_prefix(prefix: str) -> None:
    """InputError unless the files of --csv PREFIX can be written (its directory made)."""
    check_writable(Path(prefix + SUFFIXES[0]), f"--csv {prefix}", "give a writable prefix")


class LiveLocustCsv:
    """Accumulates the measured records (add), writes the files every second (tick) and at
    the end (close). Memory: an entry per request name, the seconds not yet written, ten
    seconds of response-time buckets per name."""

    def __init__(self, prefix: str, full_history: bool, names: list[tuple[str, str]],
                 warmup_ns: int, user_count, margin_ns: int):
        self.prefix = prefix
        self.full_history = full_history
        # Keys with the same (Type, Name) are one entry, as in Locust.
        slots: dict[tuple[str, str], int] = {}
        self.slot_of_key = np.array([slots.setdefault(n, len(slots)) for n in names] or [0],
                                    np.int64)
        self.slot_names = list(slots)
        self.n_keys = len(names)
        self.warmup_ns = warmup_ns
        self.user_count = user_count
        self.margin_ns = margin_ns
        self.start_ns: int | None = None
        self.entries: dict[int, _Entry] = {}             # whole run, by slot
        self.failures: dict[tuple[int, str], list] = {}  # (slot, error) -> [count, first, last]
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.pending: dict[int, dict[int, _Entry]] = {}  # second -> slot -> that second's
        self.next_s: int | None = None                   # the next history row's second
        self.history: dict[int, _Entry] = {}             # slot (-1: all) -> rows written so far
        self.counts: dict[int, deque] = {}               # slot -> (second, requests, failures)
        self.recent: dict[int, deque] = {}               # slot -> (second, its buckets)
        paths = [Path(prefix + s) for s in SUFFIXES]
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            self._history_file = open(paths[1], "w", newline="")
        except OSError as exc:
            raise InputError(f"--csv {prefix}: cannot write {paths[1]} "
                             f"({exc.strerror or exc}); give a writable prefix") from None
        self._history = csv.writer(self._history_file)
        self._history.writerow(LOCUST_HISTORY_COLUMNS)
        self._history_file.flush()
        self._write_snapshots()

    # -- records in -------------------------------------------------------------------------
    def start(self, start_ns: int) -> None:
        """The run's start: the history starts when its warm-up ends."""
        self.start_ns = start_ns
        self.next_s = (start_ns + self.warmup_ns) // NS

    def add(self, cols: Columns, payload: np.ndarray) -> None:
        """Records as they are drained (RecordWriter listener): the measured ones count."""
        measured = cols.measured
        if not measured.any():
            return
        c = cols.subset(measured)
        payload = payload[measured]
        key = np.where(payload >= 0, payload, self.n_keys - len(c.targets) + c.target)
        slot = self.slot_of_key[np.clip(key, 0, self.n_keys - 1)]
        rt_ns, valid = c.per_record("latency_ns")
        rt = rt_ns / 1e6
        failed = ~c.ok
        content = c.bytes_in
        when = np.where(c.has_done, c.done_ns, np.where(c.has_sent, c.sent_ns, c.scheduled_ns))
        lo, hi = int(when.min()), int(when.max())
        self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
        self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        sec = when // NS
        if self.next_s is not None:
            sec = np.maximum(sec, self.next_s)   # late to a written second: the next row's
        group = sec * len(self.slot_names) + slot
        for g in np.unique(group).tolist():
            m = group == g
            s, k = divmod(g, len(self.slot_names))
            self.pending.setdefault(s, {}).setdefault(k, _Entry()).add(
                rt[m], failed[m], content[m], valid[m])
        for k in np.unique(slot).tolist():
            m = slot == k
            self.entries.setdefault(k, _Entry()).add(rt[m], failed[m], content[m], valid[m])
        if failed.any():
            self._add_failures(c, slot, failed, when)

    def _add_failures(self, c: Columns, slot: np.ndarray, failed: np.ndarray,
                      when: np.ndarray) -> None:
        fidx = np.flatnonzero(failed)
        keys = np.stack([slot[fidx], c.error[fidx].astype(np.int64),
                         c.status[fidx].astype(np.int64)])
        uniq, inverse = np.unique(keys, axis=1, return_inverse=True)
        inverse = inverse.ravel()
        for j in range(uniq.shape[1]):
            rows = fidx[inverse == j]
            k, e, code = (int(x) for x in uniq[:, j])
            kind = c.errors[e]
            text = (f"status {code}" if kind == "status" else
                    f"{kind} (status {code})" if code else kind)
            lo, hi = int(when[rows].min()), int(when[rows].max())
            entry = self.failures.get((k, text))
            if entry is None:
                self.failures[(k, text)] = [len(rows), lo, hi]
            else:
                entry[0] += len(rows)
                entry[1] = min(entry[1], lo)
                entry[2] = max(entry[2], hi)

    # -- files out --------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """The history rows of the seconds whose records are all in; the other files anew."""
        if self.next_s is None:
            return
        wrote = False
        while (self.next_s + 1) * NS + self.margin_ns <= now_ns:
            self._history_rows(self.next_s)
            self.next_s += 1
            wrote = True
        if wrote:
            self._history_file.flush()
            self._write_snapshots()

    def close(self) -> None:
        """The rows left (up to the last request's second) and the final files."""
        if self.next_s is not None:
            last = max(self.last_ns // NS if self.last_ns is not None else -1,
                       max(self.pending) if self.pending else -1)
            while self.next_s <= last:
                self._history_rows(self.next_s)
                self.next_s += 1
        self._history_file.close()
        self._write_snapshots()

    def _history_rows(self, s: int) -> None:
        """The rows for second s: its records join the totals; Timestamp s + 1 (the time
        they stand for: everything before it)."""
        now_s = s + 1
        done = self.pending.pop(s, {})
        total = _Entry()
        for k, e in done.items():
            total.merge(e)
        # A name has its rows once its first request is in, as a Locust entry exists.
        slots = sorted((k for k in range(len(self.slot_names)) if k in done or k in self.history),
                       key=lambda k: self.slot_names[k][::-1]) if self.full_history else []
        users = self.user_count(now_s * NS)
        for k in [*slots, -1]:
            e = total if k == -1 else done.get(k, _Entry())
            hist = self.history.setdefault(k, _Entry())
            hist.merge(e)
            counts = self.counts.setdefault(k, deque())
            counts.append((s, e.requests, e.failures))
            recent = self.recent.setdefault(k, deque())
            recent.append((s, e.buckets, e.requests - e.none))
            while counts and counts[0][0] < now_s - RATE_WINDOW_S[0]:
                counts.popleft()
            while recent and recent[0][0] < now_s - CURRENT_WINDOW_S:
                recent.popleft()
            lo = max(now_s - RATE_WINDOW_S[0], self.next_s_first)
            window = range(lo, now_s - RATE_WINDOW_S[1])
            per = {t: (r, f) for t, r, f in counts}
            n = max(len(window), 1)
            rps = sum(per.get(t, (0, 0))[0] for t in window) / n
            fps = sum(per.get(t, (0, 0))[1] for t in window) / n
            if not hist.requests:
                pct = ["N/A"] * len(LOCUST_PERCENTILES)
            elif self.full_history:
                buckets: dict[int, int] = {}
                answered = 0
                for _, b, a in recent:
                    answered += a
                    for v, cnt in b.items():
                        buckets[v] = buckets.get(v, 0) + cnt
                pct = [int(locust_percentile(buckets, answered, p)) for p in LOCUST_PERCENTILES]
            else:
                pct = hist.row("", "", 1.0)[11:]
            method, name = ("", "Aggregated") if k == -1 else self.slot_names[k]
            self._history.writerow([now_s, users, method, name, f"{rps:2f}", f"{fps:2f}", *pct,
                                    *hist.row(method, name, 1.0)[2:9]])

    @property
    def next_s_first(self) -> int:
        return (self.start_ns + self.warmup_ns) // NS if self.start_ns is not None else 0

    def _write_snapshots(self) -> None:
        """_stats.csv, _failures.csv, _exceptions.csv as they stand, each replaced whole."""
        start = self.start_ns + self.warmup_ns if self.start_ns is not None else None
        duration = ((self.last_ns - start) / 1e9) if start is not None and \
            self.last_ns is not None else 0.0
        total = _Entry()
        rows = []
        for k in sorted(self.entries, key=lambda k: self.slot_names[k][::-1]):
            method, name = self.slot_names[k]
            rows.append(self.entries[k].row(method, name, duration))
            total.merge(self.entries[k])
        rows.append(total.row("", "Aggregated", duration))
        self._replace(SUFFIXES[0], [LOCUST_STATS_COLUMNS, *rows])
        failures = [[*self.slot_names[k], text, count, _utc(lo / 1e9), _utc(hi / 1e9)]
                    for (k, text), (count, lo, hi) in
                    sorted(self.failures.items(), key=lambda i: (self.slot_names[i[0][0]][::-1],
                                                                 i[0][1]))]
        self._replace(SUFFIXES[2], [LOCUST_FAILURES_COLUMNS, *failures])
        # replayer's requests raise no exceptions: the file holds Locust's header only.
        self._replace(SUFFIXES[3], [LOCUST_EXCEPTIONS_COLUMNS])

    def _replace(self, suffix: str, rows: list) -> None:
        path = self.prefix + suffix
        tmp = path + ".tmp"
        try:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(rows)
            os.replace(tmp, path)
        except OSError as exc:
            if self.start_ns is None:
                raise InputError(f"--csv {self.prefix}: cannot write {path} "
                                 f"({exc.strerror or exc}); give a writable prefix") from None
            raise

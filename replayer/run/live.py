"""Live control of a run while it goes: the settings a user may change (rate, pause, weights per
class and per target), how a change is checked (all or nothing), how it reaches every pacer
(ControlBlock: a re-based schedule clock and the weights, published to the shared control
block as a seqlock, blocks.pxd), the log of every change (control.jsonl in the run directory,
with when each worker applied it), and the HTTP API that makes them (ControlServer, as the
runner's loadgen on port 3352):

  GET /config      the live settings, JSON
  PUT /config      a change: {"rate": 0.5} (share of the schedule's rate), {"paused": true},
                   {"classes": {"urgent": {"weight": 0.2}}}, {"targets": {NAME: {"weight": 0}}};
                   {} pauses everything, as the runner's empty config stops its generators.
                   Malformed JSON or an unknown key: 400 with the reason, nothing changed.
  GET /metrics     Prometheus text (replayer.analysis.metrics)

A rate change re-bases the schedule clock where it stands (no jump: what was due stays due);
a pause stops it, so the requests due while paused are shifted by the pause, none skipped. A
weight below one leaves out that share of a class's (target's) requests, chosen by a hash of
their event id; each is recorded not_sent, with the reason in the failure log.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from replayer import _pacer
from replayer.errors import InputError

MIN_RATE, MAX_RATE = 1e-3, 1e3
MAX_BODY = 1 << 16
CONTROL_LOG = "control.jsonl"
SETTING_KEYS = ("rate", "paused", "classes", "targets")


class ChangeError(ValueError):
    """A change that cannot be made, with the reason the client is told (400)."""


@dataclasses.dataclass
class Settings:
    """The live settings of a run: rate (share of the schedule's rate), paused, and the
    weight of each class and target (share of its requests sent)."""
    rate: float = 1.0
    paused: bool = False
    classes: dict[str, float] = dataclasses.field(default_factory=dict)
    targets: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        """As GET /config shows them: every class, and the targets whose weight is not 1
        (a schedule may have thousands)."""
        return {"rate": self.rate, "paused": self.paused,
                "classes": {n: {"weight": w} for n, w in self.classes.items()},
                "targets": {n: {"weight": w} for n, w in self.targets.items() if w != 1.0}}

    def weights_ppm(self) -> np.ndarray:
        """The weights as the control block holds them: classes', then targets', millionths."""
        values = list(self.classes.values()) + list(self.targets.values())
        return np.array([round(w * _pacer.WEIGHT_ONE) for w in values], np.int64)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ChangeError(f"{where}: expected a number, not {json.dumps(value)}")
    return float(value)


def _weights(current: dict[str, float], change: Any, key: str) -> dict[str, float]:
    noun = {"classes": "class", "targets": "target"}[key]
    if not isinstance(change, dict):
        raise ChangeError(f"{key}: expected an object of {noun} names, e.g. "
                          f'{{"{key}": {{"NAME": {{"weight": 0.5}}}}}}')
    if change and not current:
        raise ChangeError(f"{key}: this run's schedule has no {key}")
    out = dict(current)
    for name, item in change.items():
        if name not in current:
            known = ", ".join(list(current)[:10]) + (", ..." if len(current) > 10 else "")
            raise ChangeError(f"{key}: no {noun} {name!r} (the schedule's {key}: {known})")
        if not isinstance(item, dict) or set(item) != {"weight"}:
            raise ChangeError(f"{key}.{name}: expected {{\"weight\": W}} with W from 0 to 1 "
                              "(the share of its requests sent)")
        weight = _number(item["weight"], f"{key}.{name}.weight")
        if not 0.0 <= weight <= 1.0:
            raise ChangeError(f"{key}.{name}.weight {weight:g}: must be from 0 to 1")
        out[name] = weight
    return out


def apply_change(settings: Settings, body: Any) -> Settings:
    """The settings after a PUT /config body (a JSON value), or ChangeError: checked whole
    before anything changes. {} pauses everything (the runner's empty config)."""
    if not isinstance(body, dict):
        raise ChangeError('the body must be a JSON object, e.g. {"rate": 0.5}')
    unknown = [k for k in body if k not in SETTING_KEYS]
    if unknown:
        raise ChangeError(f"unknown key {unknown[0]!r}: expected {', '.join(SETTING_KEYS)}")
    new = dataclasses.replace(settings, classes=dict(settings.classes),
                              targets=dict(settings.targets))
    if not body:
        new.paused = True
        return new
    if "rate" in body:
        rate = _number(body["rate"], "rate")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ChangeError(f"rate {rate:g}: must be from {MIN_RATE:g} to {MAX_RATE:g} (a share "
                              "of the schedule's rate: 0.5 halves it)")
        new.rate = rate
    if "paused" in body:
        if not isinstance(body["paused"], bool):
            raise ChangeError(f"paused: expected true or false, not {json.dumps(body['paused'])}")
        new.paused = body["paused"]
    if "classes" in body:
        new.classes = _weights(settings.classes, body["classes"], "classes")
    if "targets" in body:
        new.targets = _weights(settings.targets, body["targets"], "targets")
    return new


class ControlBlock:
    """The parent's side of a run's control block: its layout (the weights after the fixed
    part), the schedule clock as the pacers see it, and every change of the settings,
    published as one seqlock write (_pacer.publish_control) and logged."""

    def __init__(self, control: np.ndarray, time_scale: float, classes: list[str],
                 targets: list[str], log_path: Path | None = None):
        self.control = control
        self.time_scale = time_scale
        self.settings = Settings(classes={n: 1.0 for n in classes},
                                 targets={n: 1.0 for n in targets})
        control[_pacer.CONTROL_TIME_SCALE_PPM] = int(round(time_scale * 1e6))
        control[_pacer.CONTROL_CLASS_WEIGHTS] = _pacer.CONTROL_SIZE if classes else 0
        control[_pacer.CONTROL_N_CLASSES] = len(classes)
        control[_pacer.CONTROL_TARGET_WEIGHTS] = (_pacer.CONTROL_SIZE + len(classes)
                                                  if targets else 0)
        control[_pacer.CONTROL_N_TARGETS] = len(targets)
        control[_pacer.CONTROL_SIZE:self.size(len(classes), len(targets))] = _pacer.WEIGHT_ONE
        self.start_ns = 0
        self.origin_ns = 0
        self.origin_t = 0
        self.scale = time_scale
        self.seq = 0
        self.changes: list[dict] = []       # published, not yet seen applied by every worker
        self.log_path = log_path
        self._lock = threading.Lock()

    @staticmethod
    def size(n_classes: int, n_targets: int) -> int:
        """int64 fields of a block with these weights."""
        return _pacer.CONTROL_SIZE + n_classes + n_targets

    def start(self, start_ns: int) -> None:
        """The run's start time, before it is given to the workers: a change made before it
        is published from it."""
        with self._lock:
            self.start_ns = self.origin_ns = start_ns
            if self.settings != Settings(classes=dict.fromkeys(self.settings.classes, 1.0),
                                         targets=dict.fromkeys(self.settings.targets, 1.0)):
                self._publish(start_ns, self.settings)

    def schedule_time(self, now_ns: int) -> float:
        """Where the schedule clock stands at now_ns (t_ns units)."""
        if not self.origin_ns or now_ns <= self.origin_ns or self.settings.paused:
            return float(self.origin_t)
        return self.origin_t + (now_ns - self.origin_ns) / self.scale

    def end_ns(self, schedule_end_t: int) -> int | None:
        """When a request due at schedule_end_t goes, as the clock stands (None: paused)."""
        if self.settings.paused or not self.origin_ns:
            return None
        return self.origin_ns + int((schedule_end_t - self.origin_t) * self.scale)

    def change(self, body: Any, now_ns: int, source: str = "PUT /config") -> Settings:
        """Apply a PUT /config body (ChangeError when it cannot be: nothing changed), publish
        it to the pacers and log it."""
        with self._lock:
            new = apply_change(self.settings, body)
            if self.start_ns:
                self._publish(now_ns, new)
            else:
                self.settings = new
            self._log({"event": "change", "t_ns": now_ns, "source": source, "change": body,
                       "settings": new.to_json(), "seq": self.seq,
                       "clock": {"origin_ns": self.origin_ns, "origin_t": self.origin_t,
                                 "scale": self.scale}})
            return new

    def _publish(self, now_ns: int, new: Settings) -> None:
        # The clock is re-based where it stands: at now (or at the origin, for a change
        # before it), at the schedule time it reads then (as it ran until now: a pause held
        # it); from there it runs at the new rate, or stands while paused.
        if now_ns > self.origin_ns:
            t = self.schedule_time(now_ns)
            self.origin_ns, self.origin_t = now_ns, int(round(t))
        self.settings = s = new
        self.scale = self.time_scale / s.rate
        self.seq = _pacer.publish_control(self.control, self.origin_ns, self.origin_t,
                                          int(round(self.scale * 1e9)), s.paused,
                                          s.weights_ppm())
        self.changes.append({"seq": self.seq, "t_ns": now_ns})

    def note_applied(self, status: np.ndarray, running: list[bool]) -> None:
        """Log, for each change every running worker has applied since, when each did
        (status rows: ST_CONTROL_SEQ, ST_CONTROL_NS). A worker applies a later change in
        place of an earlier one it had not yet seen: its time then counts for both."""
        with self._lock:
            while self.changes:
                change = self.changes[0]
                workers = []
                for k, row in enumerate(status):
                    if int(row[_pacer.ST_CONTROL_SEQ]) >= change["seq"]:
                        at = int(row[_pacer.ST_CONTROL_NS])
                        workers.append({"worker": k, "applied_ns": at,
                                        "delay_ms": round((at - change["t_ns"]) / 1e6, 3)})
                    elif running[k]:
                        return
                    else:
                        workers.append({"worker": k, "applied_ns": None, "done": True})
                self.changes.pop(0)
                self._log({"event": "applied", "seq": change["seq"], "t_ns": change["t_ns"],
                           "workers": workers})

    def _log(self, entry: dict) -> None:
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as exc:
            print(f"replayer: cannot write {self.log_path} ({exc.strerror or exc}); the change "
                  "is made all the same", file=sys.stderr, flush=True)


def read_control_log(run_dir: Path) -> list[dict]:
    """The changes of a run directory's control.jsonl ([] when it has none), with their
    apply lines."""
    path = Path(run_dir) / CONTROL_LOG
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue              # a line cut by a crash: the others still say what changed
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def check_control_address(address: str, allow_remote: bool) -> None:
    """Loopback only, unless told: the API has no authentication."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if not loopback and not allow_remote:
        raise InputError(f"--control-address {address}: not a loopback address; the control "
                         "API has no authentication (anyone who reaches it can change or pause "
                         "the run): add --control-allow-remote to listen there anyway")


class ControlServer:
    """The HTTP API of a run (or of a run in stages: one server, the stage running attached
    to it), served from a thread of the parent."""

    def __init__(self, address: str, port: int, allow_remote: bool = False):
        check_control_address(address, allow_remote)
        self.block: ControlBlock | None = None
        self.metrics = None
        self.stage: int | None = None
        self.idle_reason = "the run has not started yet"
        server = self

        class Handler(_Handler):
            control = server

        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        try:
            self.httpd = Server((address, port), Handler)
        except OSError as exc:
            raise InputError(f"--control-port {port}: cannot listen on {address}:{port} "
                             f"({exc.strerror or exc}); choose another port") from None
        self.port = self.httpd.server_address[1]
        if not ipaddress.ip_address(socket.gethostbyname(address) if family == socket.AF_INET
                                    else address).is_loopback:
            print(f"replayer: warning: the control API on {address}:{self.port} is "
                  "unauthenticated: anyone who reaches it can change or pause the run",
                  file=sys.stderr, flush=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="replayer-control",
                                       daemon=True)
        self.thread.start()

    def attach(self, block: ControlBlock, metrics=None, stage: int | None = None) -> None:
        self.block, self.stage = block, stage
        if metrics is not None:
            self.metrics = metrics

    def detach(self, why: str) -> None:
        """No stage to control (between stages, in an idle one, after the run); /metrics keeps
        the last stage's."""
        self.block = None
        self.idle_reason = why

    def config(self) -> dict:
        block = self.block
        doc = block.settings.to_json() if block is not None else {}
        return {**doc, "running": block is not None, "stage": self.stage,
                **({} if block is not None else {"why": self.idle_reason})}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    control: ControlServer
    server_version = "replayer-control"

    def log_message(self, format, *args):     # the change log says what matters
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, doc: dict) -> None:
        self._send(code, (json.dumps(doc) + "\n").encode())

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/config":
            self._json(200, self.control.config())
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST
            metrics = self.control.metrics
            self._send(200, metrics.exposition() if metrics is not None else b"",
                       CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"error": f"no {path}: GET /config, PUT /config, GET /metrics"})

    def do_PUT(self):
        if self.path.split("?", 1)[0] != "/config":
            self._json(404, {"error": f"no {self.path}: PUT /config"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._json(400, {"error": f"Content-Length: expected 0 to {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(400, {"error": f"malformed JSON: {exc}"})
            return
        if body is None:
            self._json(400, {"error": 'no body: send a JSON object, e.g. {"rate": 0.5} ({} '
                                      'pauses)'})
            return
        block = self.control.block
        if block is None:
            self._json(409, {"error": f"nothing to control: {self.control.idle_reason}"})
            return
        try:
            block.change(body, _pacer.now_ns())
        except ChangeError as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, self.control.config())

    def _not_allowed(self):
        self._json(405, {"error": f"{self.command} not allowed: GET /config, PUT /config, "
                                  "GET /metrics"})

    do_POST = do_DELETE = do_PATCH = _not_allowed


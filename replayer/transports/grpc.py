"""gRPC unary calls through grpcio, without blocking the pacer.

One channel per endpoint, dialled before the start and reused for every request (the vSwarm
invoker dials one per request). Requests are pre-serialised bytes, so any unary method works.
grpcio completes calls on its own threads: their callbacks only stamp the time and queue the
call; the worker's thread turns queued calls into records in poll(), so the ring keeps one
writer.

Stamps: grpcio writes a call on its own threads, out of sight, so `sent_ns` is when the call
was handed to grpcio (at its due time); a call that failed to connect never left and has none.
Failures are noted in the failure log as "STATUS_NAME: details".
"""
from __future__ import annotations

import time
from collections import deque

import grpc

from replayer import _pacer
from replayer.transports.helloworld import hello_request
from replayer.analysis.records import ErrorKind
from replayer.transports import TransportConfig, traceparent, url_host

_OK = int(ErrorKind.OK)
_CONNECT = int(ErrorKind.CONNECT)
_CANCELLED = int(ErrorKind.CANCELLED)


def _error_kind(code: grpc.StatusCode, details: str) -> int:
    if code is grpc.StatusCode.OK:
        return _OK
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return int(ErrorKind.TIMEOUT)
    if code is grpc.StatusCode.CANCELLED:
        return int(ErrorKind.CANCELLED)
    if code is grpc.StatusCode.UNAVAILABLE:
        text = (details or "").lower()
        if "reset" in text or "socket closed" in text or "goaway" in text or "eof" in text:
            return int(ErrorKind.RESET)
        if "ssl" in text or "tls" in text or "handshake" in text:
            return int(ErrorKind.TLS)
        # A dial that failed; otherwise the server itself answered UNAVAILABLE (status 14).
        if any(w in text for w in ("failed to connect", "connection refused", "dns",
                                   "no route", "connect failed", "unreachable")):
            return int(ErrorKind.CONNECT)
        return int(ErrorKind.STATUS)
    if code is grpc.StatusCode.INTERNAL and "protocol" in (details or "").lower():
        return int(ErrorKind.PROTOCOL)
    return int(ErrorKind.STATUS)


class GrpcTransport(_pacer.Transport):
    def __init__(self, ring, config: TransportConfig, target_column, name: str = "Invoke relay"):
        super().__init__(ring)
        self.config = config
        self.target_column = target_column
        self.timeout_s = config.timeout_s
        self.trace_id_high = config.trace_id_high
        self.payload = config.payload if config.payload is not None else hello_request(name)
        self.bytes_out = len(self.payload)
        self.channels = []
        self.calls = []
        options = [("grpc.enable_retries", 0), ("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", -1)]
        for host, port in config.host_ports():
            authority = f"{url_host(host)}:{port}"
            addr = config.address(host)
            target = f"{url_host(addr.strip('[]'))}:{port}" if addr else authority
            opts = options + ([("grpc.default_authority", authority)] if addr else [])
            channel = grpc.insecure_channel(target, options=opts)
            self.channels.append(channel)
            self.calls.append(channel.unary_unary(config.grpc_method))
        # id(future) -> (future, event, scheduled, sent, cause)
        self.pending: dict[int, tuple] = {}
        self.completed: deque = deque()         # (id(future), done_ns), appended by grpc threads

    def connect(self, wait_s: float) -> None:
        """Dial every endpoint before the start; a target that is down is not an error here:
        its requests will be recorded with their failure."""
        futures = [grpc.channel_ready_future(ch) for ch in self.channels]
        deadline = time.monotonic() + wait_s
        for f in futures:
            try:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
            except grpc.FutureTimeoutError:
                pass

    def _on_done(self, future):
        self.completed.append((id(future), _pacer.now_ns()))

    def submit(self, event, scheduled_ns, sent_ns, cause):
        if self.trace_id_high is None:
            future = self.calls[self.target_column[event]].future(self.payload, timeout=self.timeout_s)
        else:
            future = self.calls[self.target_column[event]].future(
                self.payload, timeout=self.timeout_s,
                metadata=(("traceparent", traceparent(self.trace_id_high, event)),))
        self.pending[id(future)] = (future, event, scheduled_ns, sent_ns, cause)
        self.inflight += 1
        future.add_done_callback(self._on_done)
        return 0

    def flush(self):
        completed, pending, ring = self.completed, self.pending, self.ring
        while completed:
            key, done_ns = completed.popleft()
            future, event, scheduled_ns, sent_ns, cause = pending.pop(key)
            code = future.code()
            bytes_in = 0
            if code is grpc.StatusCode.OK:
                bytes_in = len(future.result())
                kind = _OK
            else:
                details = future.details() or ""
                kind = _error_kind(code, details)
                if kind == _CONNECT:
                    sent_ns = 0        # the dial failed: the call never left
                self.note(kind, event, done_ns, f"{code.name}: {details}" if details else code.name)
            ring.record(event, scheduled_ns, sent_ns, done_ns, code.value[0], kind,
                        self.bytes_out, bytes_in, cause)
            self.inflight -= 1
        return 0

    def poll(self, timeout_ns):
        if not self.completed:
            # Completions arrive on grpc's threads; sleeping releases the GIL to them.
            time.sleep(min(timeout_ns, 2_000_000) / 1e9)
        return self.flush()

    def abort(self):
        for future, *_ in list(self.pending.values()):
            future.cancel()
        deadline = time.monotonic() + 1.0
        while self.pending and time.monotonic() < deadline:
            self.flush()
            if self.pending:
                time.sleep(0.001)
        now = _pacer.now_ns()
        for key, (future, event, scheduled_ns, sent_ns, cause) in list(self.pending.items()):
            self.ring.record(event, scheduled_ns, sent_ns, now, grpc.StatusCode.CANCELLED.value[0],
                             _CANCELLED, self.bytes_out, 0, cause)
            self.note(_CANCELLED, event, now, "cancelled at the end of the run, waiting for the answer")
            del self.pending[key]
            self.inflight -= 1
        self.completed.clear()
        return 0

    def close(self):
        for ch in self.channels:
            ch.close()

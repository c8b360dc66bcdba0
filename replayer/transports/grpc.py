"""gRPC unary calls through grpcio, without blocking the pacer.

One channel per endpoint, dialled before the start and reused for every request (the vSwarm
invoker dials one per request). Requests are pre-serialised bytes, so any unary method works.
grpcio completes calls on its own threads: their callbacks only stamp the time and queue the
call; the worker's thread turns queued calls into records in poll(), so the ring keeps one
writer.

Content: each (target, payload) pair the worker sends has a template in a ContentTable
(replayer.transports.content): the message, then the value of each payload header (metadata)
that has fields. A pair without fields sends its bytes as they are; one with fields gets a
message rendered for the request (grpcio takes one bytes object per call anyway): before the
due time (prepare) when every field is known then, at the send otherwise, with the send stamp
the deadline is computed from. A payload's path is the call's method; a request's class sets
its timeout.

Stamps: grpcio writes a call on its own threads, out of sight, so `sent_ns` is when the call
was handed to grpcio (at its due time; for a message with send-time fields, the clock read
they are filled with, just before it is rendered); a call that failed to connect never left
and has none. Failures are noted in the failure log as "STATUS_NAME: details".
"""
from __future__ import annotations

import time
from collections import deque

import grpc

from replayer import _pacer
from replayer.transports.helloworld import hello_request
from replayer.analysis.records import ErrorKind
from replayer.transports import TransportConfig, traceparent, url_host
from replayer.transports import content

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


class _Pair:
    """What a (target, payload) pair's calls carry: its method on its target's channel, the
    message and metadata (static, or rendered per call from template parts), bytes counted."""
    __slots__ = ("call", "message", "metadata", "rendered", "fields", "late", "bytes_out")

    def __init__(self, call, message: bytes, metadata: list, rendered: list, fields: bool,
                 late: bool):
        self.call = call
        self.message = message
        self.metadata = metadata            # (name, value) pairs without fields
        self.rendered = rendered            # (name, template part) of values with fields
        self.fields = fields                # rendered per call
        self.late = late                    # some are send-time fields (sent_ns, deadline)
        self.bytes_out = len(message)


class GrpcTransport(_pacer.Transport):
    def __init__(self, ring, config: TransportConfig, columns, name: str = "Invoke relay"):
        super().__init__(ring)
        self.config = config
        columns = content.as_columns(columns)
        self.cls_column = columns.cls
        self.timeout_s = config.timeout_s
        # Per class, its timeout in s (the run's where it has none).
        self.class_timeout_s = [c.timeout_ns / 1e9 if c.timeout_ns else config.timeout_s
                                for c in config.classes]
        self.trace_id_high = config.trace_id_high
        self.payload = config.payload if config.payload is not None else hello_request(name)
        self.channels = []
        options = [("grpc.enable_retries", 0), ("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", -1)]
        for host, port in config.host_ports():
            authority = f"{url_host(host)}:{port}"
            addr = config.address(host)
            target = f"{url_host(addr.strip('[]'))}:{port}" if addr else authority
            opts = options + ([("grpc.default_authority", authority)] if addr else [])
            channel = grpc.insecure_channel(target, options=opts)
            self.channels.append(channel)
        self.pairs: list[_Pair] = []
        self.table = content.content_table(config, columns, self._template)
        # Messages whose fields are all known before the due time are rendered then.
        self.prepares = any(p.fields and not p.late for p in self.pairs)
        self.staged_event = -1
        self.staged = None                  # (message, metadata) rendered for staged_event
        # id(future) -> (future, event, scheduled, sent, cause, bytes_out)
        self.pending: dict[int, tuple] = {}
        self.completed: deque = deque()         # (id(future), done_ns), appended by grpc threads

    def _template(self, target: int, payload_index: int) -> tuple:
        """The ContentTable template of a pair (called once per pair, in index order): parts
        [message, value of each header with fields], their fills."""
        payload = content.payload_of(self.config, payload_index)
        message = payload.body if payload is not None and payload.body is not None \
            else self.payload
        method = payload.path if payload is not None and payload.path \
            else self.config.grpc_method
        if not method.startswith("/"):
            method = "/" + method
        fielded = {f.header.lower() for f in payload.fields if f.header} if payload else set()
        metadata, rendered, parts, places = [], [], [message], {}
        for line in (payload.headers if payload is not None else []):
            key, _, value = line.partition(":")
            key = key.strip().lower()        # gRPC metadata keys are lower case
            if key in fielded:
                places[key] = len(parts)
                rendered.append((key, len(parts)))
                parts.append(value.strip().encode("latin-1"))
            else:
                metadata.append((key, value.strip()))
        fills = content.fills(payload, 0, 0, lambda name: (places[name.lower()], 0))
        late = payload is not None and payload.send_time_fields
        call = self.channels[target].unary_unary(method)
        self.pairs.append(_Pair(call, message, metadata, rendered, bool(fills), late))
        return parts, fills, len(message), 0

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

    def _content(self, pair: _Pair, event: int, scheduled_ns: int, sent_ns: int):
        """The call's message and metadata, its fields filled."""
        render = self.table.render
        message = render(event, scheduled_ns, sent_ns, 0)
        metadata = pair.metadata + [
            (key, render(event, scheduled_ns, sent_ns, part).decode("latin-1"))
            for key, part in pair.rendered]
        return message, metadata

    def prepare(self, event, scheduled_ns):
        pair = self.pairs[self.table.pair_index(event)]
        if pair.fields and not pair.late:
            self.staged = self._content(pair, event, scheduled_ns, 0)
            self.staged_event = event
        return 0

    def submit(self, event, scheduled_ns, sent_ns, cause):
        pair = self.pairs[self.table.pair_index(event)]
        if not pair.fields:
            message, metadata = pair.message, pair.metadata
        elif self.staged_event == event:
            (message, metadata), self.staged, self.staged_event = self.staged, None, -1
        else:
            # Send-time fields: filled with the clock read that is also the record's sent stamp.
            sent_ns = _pacer.now_ns()
            message, metadata = self._content(pair, event, scheduled_ns, sent_ns)
        if self.trace_id_high is not None:
            metadata = metadata + [("traceparent", traceparent(self.trace_id_high, event))]
        timeout = self.timeout_s
        if self.cls_column is not None and self.class_timeout_s:
            k = self.cls_column[event]
            if 0 <= k < len(self.class_timeout_s):
                timeout = self.class_timeout_s[k]
        future = pair.call.future(message, timeout=timeout, metadata=metadata or None)
        self.pending[id(future)] = (future, event, scheduled_ns, sent_ns, cause, pair.bytes_out)
        self.inflight += 1
        future.add_done_callback(self._on_done)
        return 0

    def flush(self):
        completed, pending, ring = self.completed, self.pending, self.ring
        while completed:
            key, done_ns = completed.popleft()
            future, event, scheduled_ns, sent_ns, cause, bytes_out = pending.pop(key)
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
                        bytes_out, bytes_in, cause)
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
        for key, (future, event, scheduled_ns, sent_ns, cause, bytes_out) in \
                list(self.pending.items()):
            self.ring.record(event, scheduled_ns, sent_ns, now, grpc.StatusCode.CANCELLED.value[0],
                             _CANCELLED, bytes_out, 0, cause)
            self.note(_CANCELLED, event, now, "cancelled at the end of the run, waiting for the answer")
            del self.pending[key]
            self.inflight -= 1
        self.completed.clear()
        return 0

    def close(self):
        for ch in self.channels:
            ch.close()

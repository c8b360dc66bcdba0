"""HTTP through libcurl's multi interface (pycurl): keep-alive reuse, HTTP/1.1 and HTTP/2
(h2c prior knowledge, or ALPN), per-request timeout, never blocking the pacer.

Easy handles are pooled and reused, so a connection and its handle's options are set up once;
per request only the URL (when the target changes) and the bookkeeping are touched.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pycurl

from replayer import _pacer
from replayer.records import ErrorKind
from replayer.transports import TransportConfig, traceparent

_HTTP_VERSIONS = {
    "1.1": pycurl.CURL_HTTP_VERSION_1_1,
    "2": pycurl.CURL_HTTP_VERSION_2_0,
    "h2c": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
}

# libcurl error numbers (CURLE_*, stable across versions) -> replayer error kinds
_CURL_ERRORS = {
    1: ErrorKind.PROTOCOL,    # UNSUPPORTED_PROTOCOL
    3: ErrorKind.PROTOCOL,    # URL_MALFORMAT
    5: ErrorKind.CONNECT,     # COULDNT_RESOLVE_PROXY
    6: ErrorKind.CONNECT,     # COULDNT_RESOLVE_HOST
    7: ErrorKind.CONNECT,     # COULDNT_CONNECT
    8: ErrorKind.PROTOCOL,    # WEIRD_SERVER_REPLY
    16: ErrorKind.PROTOCOL,   # HTTP2 framing layer
    18: ErrorKind.RESET,      # PARTIAL_FILE: closed mid-body
    28: ErrorKind.TIMEOUT,    # OPERATION_TIMEDOUT
    35: ErrorKind.TLS,        # SSL_CONNECT_ERROR
    42: ErrorKind.CANCELLED,  # ABORTED_BY_CALLBACK
    52: ErrorKind.RESET,      # GOT_NOTHING: closed before any answer
    55: ErrorKind.RESET,      # SEND_ERROR
    56: ErrorKind.RESET,      # RECV_ERROR (connection reset)
    58: ErrorKind.TLS,        # SSL_CERTPROBLEM
    59: ErrorKind.TLS,        # SSL_CIPHER
    60: ErrorKind.TLS,        # PEER_FAILED_VERIFICATION
    77: ErrorKind.TLS,        # SSL_CACERT_BADFILE
    92: ErrorKind.RESET,      # HTTP2_STREAM: stream reset by the peer
}
_OK = int(ErrorKind.OK)
_STATUS = int(ErrorKind.STATUS)
_CANCELLED = int(ErrorKind.CANCELLED)


def _discard(data):
    # Bodies are counted by libcurl (SIZE_DOWNLOAD), not kept.
    return None


class HttpTransport(_pacer.Transport):
    def __init__(self, ring, config: TransportConfig, target_column):
        super().__init__(ring)
        self.config = config
        self.target_column = target_column
        self.urls = [config.url_template.format(endpoint=e, port=config.port) for e in config.endpoints]
        self.resolve = self._resolve_entries(config)
        self.multi = pycurl.CurlMulti()
        # A cap per host: past it requests wait in libcurl for a free connection (their
        # latency shows it) instead of dialling thousands of connections when behind.
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, config.connections)
        self.multi.setopt(pycurl.M_MAXCONNECTS, config.connections * max(1, len(config.endpoints)))
        if config.http_version in ("2", "h2c"):
            self.multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        self.payload = config.payload
        self.method = config.method or ("POST" if config.payload is not None else "GET")
        self.free: list[pycurl.Curl] = []
        self.handles: list[pycurl.Curl] = []   # all, in flight or free
        self.timeout_ms = max(1, int(config.timeout_s * 1000))
        self.bytes_out = len(self.payload) if self.payload is not None else 0
        self.base_headers = ["Expect:"] + list(config.headers)
        self.trace_id_high = config.trace_id_high
        self.unsent: list[pycurl.Curl] = []    # submitted, not yet through perform()

    def _resolve_entries(self, config: TransportConfig) -> list[str]:
        entries = []
        for url in set(self.urls):
            parts = urlsplit(url)
            addr = config.address(parts.hostname or "")
            if addr:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                entries.append(f"{parts.hostname}:{port}:{addr}")
        return entries

    def _new_handle(self) -> pycurl.Curl:
        c = pycurl.Curl()
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.TIMEOUT_MS, self.timeout_ms)
        c.setopt(pycurl.CONNECTTIMEOUT_MS, self.timeout_ms)
        c.setopt(pycurl.WRITEFUNCTION, _discard)
        c.setopt(pycurl.HTTP_VERSION, _HTTP_VERSIONS[self.config.http_version])
        c.setopt(pycurl.HTTPHEADER, self.base_headers)
        if self.config.http_version in ("2", "h2c"):
            c.setopt(pycurl.PIPEWAIT, 1)   # wait to multiplex on an existing connection
        if self.resolve:
            c.setopt(pycurl.RESOLVE, self.resolve)
        if self.config.insecure:
            c.setopt(pycurl.SSL_VERIFYPEER, 0)
            c.setopt(pycurl.SSL_VERIFYHOST, 0)
        if self.payload is not None:
            c.setopt(pycurl.POSTFIELDS, self.payload)
        if self.method != ("POST" if self.payload is not None else "GET"):
            c.setopt(pycurl.CUSTOMREQUEST, self.method)
        c.target = -1
        self.handles.append(c)
        return c

    def submit(self, event, scheduled_ns, sent_ns):
        c = self.free.pop() if self.free else self._new_handle()
        target = self.target_column[event]
        if c.target != target:
            c.setopt(pycurl.URL, self.urls[target])
            c.target = target
        if self.trace_id_high is not None:
            c.setopt(pycurl.HTTPHEADER, self.base_headers
                     + ["traceparent: " + traceparent(self.trace_id_high, event)])
        c.event = event
        c.scheduled_ns = scheduled_ns
        c.sent_ns = sent_ns
        self.multi.add_handle(c)
        self.unsent.append(c)
        self.inflight += 1
        return 0

    def flush(self):
        multi = self.multi
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        if self.unsent:
            # perform() wrote them to their sockets: that, not submit(), is the send time.
            written = _pacer.now_ns()
            for c in self.unsent:
                c.sent_ns = written
            self.unsent.clear()
        self._collect()
        return 0

    def poll(self, timeout_ns):
        self.multi.select(min(timeout_ns, 1_000_000_000) / 1e9)
        return self.flush()

    def _collect(self):
        multi, ring, free = self.multi, self.ring, self.free
        while True:
            queued, ok, failed = multi.info_read()
            if ok or failed:
                now = _pacer.now_ns()
                for c in ok:
                    status = c.getinfo(pycurl.RESPONSE_CODE)
                    ring.record(c.event, c.scheduled_ns, c.sent_ns, now, status,
                                _OK if status < 400 else _STATUS, self.bytes_out,
                                int(c.getinfo(pycurl.SIZE_DOWNLOAD)))
                    multi.remove_handle(c)
                    free.append(c)
                for c, errno, _msg in failed:
                    status = c.getinfo(pycurl.RESPONSE_CODE)
                    ring.record(c.event, c.scheduled_ns, c.sent_ns, now, status,
                                int(_CURL_ERRORS.get(errno, ErrorKind.OTHER)), self.bytes_out,
                                int(c.getinfo(pycurl.SIZE_DOWNLOAD)))
                    multi.remove_handle(c)
                    free.append(c)
                self.inflight -= len(ok) + len(failed)
            if not queued:
                return

    def abort(self):
        now = _pacer.now_ns()
        idle = {id(c) for c in self.free}
        for c in [c for c in self.handles if id(c) not in idle]:
            self.ring.record(c.event, c.scheduled_ns, c.sent_ns, now, 0, _CANCELLED, self.bytes_out, 0)
            self.multi.remove_handle(c)
            self.free.append(c)
            self.inflight -= 1
        return 0

    def close(self):
        self.multi.close()

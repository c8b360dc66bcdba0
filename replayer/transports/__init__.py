"""Transports: how a worker sends a request and learns its outcome.

Each is a subclass of replayer._pacer.Transport: submit() is called by the pacer at the due
time, poll() while the next due time is far, flush() after a burst; each submitted request
ends as exactly one ring row. `make_transport` builds the one a run asks for.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TransportConfig:
    """What a worker needs to build its transport (picklable, no options object)."""
    protocol: str                       # "http", "grpc" or "null"
    endpoints: list[str]                # target names, by target index
    port: int
    timeout_s: float
    resolve: dict[str, str] = field(default_factory=dict)
    url_template: str = "http://{endpoint}:{port}/"
    method: str | None = None
    headers: list[str] = field(default_factory=list)
    payload: bytes | None = None
    http_version: str = "1.1"
    insecure: bool = False
    grpc_method: str = "/helloworld.Greeter/SayHello"
    grpc_client: str = "curl"            # "curl" (HTTP/2 from C) or "grpcio"
    http_client: str = "auto"            # "native" (replayer._h1), "curl", or "auto": native
                                         # where it applies (http://, HTTP/1.1, no proxy)
    max_inflight: int = 10000
    connections: int = 64                # HTTP connections per host, per worker
    trace_id_high: int | None = None     # -trace: the run's 64-bit trace id prefix

    def http_urls(self) -> list[str]:
        """The URL of each target, by target index (--url-template filled in)."""
        return [self.url_template.format(endpoint=e, port=self.port) for e in self.endpoints]

    def address(self, endpoint: str) -> str | None:
        """The address an endpoint is sent to, when --resolve maps it (exact name first)."""
        return self.resolve.get(endpoint, self.resolve.get("*"))


def traceparent(trace_id_high: int, event: int) -> str:
    """W3C trace context of one request: trace id = run prefix + event, span id = event + 1
    (never zero); replayer.tracing derives the same ids for the spans it posts."""
    return f"00-{trace_id_high:016x}{event:016x}-{event + 1:016x}-01"


def http_client_of(config: TransportConfig) -> str:
    """The HTTP client a run uses: "native" or "curl" (--http-client auto picks native where
    it applies)."""
    if config.http_client != "auto":
        return config.http_client
    from replayer.transports.native import native_unsupported
    return "native" if native_unsupported(config) is None else "curl"


def make_transport(config: TransportConfig, ring, target_column):
    if config.protocol == "http" and http_client_of(config) == "native":
        from replayer.transports.native import native_transport
        return native_transport(ring, config, target_column)
    if config.protocol == "http":
        from replayer.transports.libcurl import http_transport
        return http_transport(ring, config, target_column)
    if config.protocol == "grpc" and config.grpc_client == "curl":
        from replayer.transports.libcurl import grpc_transport
        return grpc_transport(ring, config, target_column)
    if config.protocol == "grpc":
        from replayer.transports.grpc import GrpcTransport
        return GrpcTransport(ring, config, target_column)
    if config.protocol == "null":
        from replayer._pacer import NullTransport
        return NullTransport(ring)
    raise ValueError(f"unknown protocol {config.protocol!r}")

"""Transports: how a worker sends a request and learns its outcome.

Each is a subclass of replayer._pacer.Transport: submit() is called by the pacer at the due
time, poll() while the next due time is far, flush() after a burst; each submitted request
ends as exactly one ring row, carrying the cause the pacer gave it (replayer._pacer CAUSE_*),
or CAUSE_CONNECTION where the transport held it back for a free connection. `make_transport` builds the one a run asks for.
"""
from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass, field

from replayer.errors import InputError

ENDPOINT_FORMS = ("NAME, NAME:PORT, an IPv4 address (with :PORT or not), or an IPv6 address "
                  "([::1], [::1]:8080, or bare ::1)")


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """(host, port) of a schedule endpoint: its own port, or None when it names none (then
    -port applies). Accepts NAME, NAME:PORT, IPv4[:PORT], [IPv6], [IPv6]:PORT and a bare
    IPv6 address; ValueError says what else is wrong with it."""
    if endpoint.startswith("["):
        close = endpoint.find("]")
        if close < 0:
            raise ValueError("'[' without its closing ']'")
        host, rest = endpoint[1:close], endpoint[close + 1:]
        _check_ipv6(host)
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"{rest!r} after ']' (expected ':PORT' or nothing)")
        return host, _port(rest[1:])
    if endpoint.count(":") >= 2:
        if "%" not in endpoint and not _is_ipv6(endpoint):
            raise ValueError("more than one ':' and not an IPv6 address")
        _check_ipv6(endpoint)
        return endpoint, None
    host, colon, port = endpoint.partition(":")
    if not host:
        raise ValueError("no host name")
    return host, (_port(port) if colon else None)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _check_ipv6(text: str) -> None:
    if "%" in text:
        raise ValueError(f"{text!r}: IPv6 zone ids (%...) are not supported")
    if not _is_ipv6(text):
        raise ValueError(f"{text!r} is not an IPv6 address")


def _port(text: str) -> int:
    if not text:
        raise ValueError("no port after ':'")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def local_endpoint(endpoint: str) -> str:
    """The endpoint as --local-target sends it, to the built-in target on 127.0.0.1: without
    its own port, and an IPv6 address (which --resolve cannot map) replaced by 127.0.0.1."""
    try:
        host, port = split_endpoint(endpoint)
    except ValueError:
        return endpoint          # not dialled as a host (HTTP without {endpoint} in the URL)
    return "127.0.0.1" if ":" in host else host


def url_host(host: str) -> str:
    """A host as it is written in a URL or an authority: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def template_fields(template: str) -> set[str]:
    """The {fields} a --url-template fills in."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def check_endpoints(endpoints, source, protocol: str, url_template: str) -> None:
    """InputError (one line: the file, the endpoint, what is wrong and the forms accepted) for
    the first endpoint split_endpoint refuses, where endpoints are dialled (gRPC, or HTTP with
    {endpoint} in the URL)."""
    if protocol == "null" or (protocol == "http" and "endpoint" not in template_fields(url_template)):
        return
    for endpoint in endpoints:
        try:
            split_endpoint(endpoint)
        except ValueError as exc:
            raise InputError(f"{source}: endpoint {endpoint!r}: {exc}; write it as "
                             f"{ENDPOINT_FORMS}") from None


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
    # Per-request content (replayer.schedules.content): the schedule's payload and class
    # tables, and the seed of random fields.
    payloads: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    content_seed: int = 0

    def host_ports(self) -> list[tuple[str, int]]:
        """(host, port) of each target, by target index: the endpoint's own port, else -port."""
        out = []
        for endpoint in self.endpoints:
            host, port = split_endpoint(endpoint)
            out.append((host, self.port if port is None else port))
        return out

    def http_urls(self) -> list[str]:
        """The URL of each target, by target index (--url-template filled in): {endpoint} is
        the host (an IPv6 address in brackets) and {port} its port; a template without {port}
        gets an endpoint's own port with its host, as the endpoint was written."""
        fields = template_fields(self.url_template)
        if "endpoint" not in fields:
            return [self.url_template.format(port=self.port)] * len(self.endpoints)
        urls = []
        for endpoint, (host, port) in zip(self.endpoints, self.host_ports()):
            shown = url_host(host)
            if "port" not in fields and split_endpoint(endpoint)[1] is not None:
                shown = f"{shown}:{port}"
            urls.append(self.url_template.format(endpoint=shown, port=port))
        return urls

    def address(self, host: str) -> str | None:
        """The address a host is sent to, when --resolve maps it (exact name first). Not for
        an IPv6 address: libcurl's --resolve entries cannot name one, so neither client maps it."""
        if ":" in host:
            return None
        return self.resolve.get(host, self.resolve.get("*"))


def traceparent(trace_id_high: int, event: int) -> str:
    """W3C trace context of one request: trace id = run prefix + event, span id = event + 1
    (never zero); replayer.analysis.zipkin derives the same ids for the spans it posts."""
    return f"00-{trace_id_high:016x}{event:016x}-{event + 1:016x}-01"


def http_client_of(config: TransportConfig) -> str:
    """The HTTP client a run uses: "native" or "curl" (--http-client auto picks native where
    it applies)."""
    if config.http_client != "auto":
        return config.http_client
    from replayer.transports.native import native_unsupported
    return "native" if native_unsupported(config) is None else "curl"


def make_transport(config: TransportConfig, ring, target_column, payload_column=None,
                   cls_column=None, share: tuple[int, int] = (0, 1)):
    """The transport of a worker sending events share[0], share[0] + share[1], ... of the
    schedule whose target, payload and cls columns are given (or a ScheduleColumns instead of
    the target column: a users run's)."""
    from replayer.transports.content import ScheduleColumns

    columns = target_column if isinstance(target_column, ScheduleColumns) else \
        ScheduleColumns(target_column, payload_column, cls_column, *share)
    if config.protocol == "http" and http_client_of(config) == "native":
        from replayer.transports.native import native_transport
        return native_transport(ring, config, columns)
    if config.protocol == "http":
        from replayer.transports.libcurl import http_transport
        return http_transport(ring, config, columns)
    if config.protocol == "grpc" and config.grpc_client == "curl":
        from replayer.transports.libcurl import grpc_transport
        return grpc_transport(ring, config, columns)
    if config.protocol == "grpc":
        from replayer.transports.grpc import GrpcTransport
        return GrpcTransport(ring, config, columns)
    if config.protocol == "null":
        from replayer._pacer import NullTransport
        return NullTransport(ring)
    raise ValueError(f"unknown protocol {config.protocol!r}")

"""Plain HTTP/1.1 through replayer's own C client (replayer._h1).

This module builds what the C client sends: the request bytes of each (target, payload) pair a
worker sends, once (request line, Host, the default, --header and payload header lines, the
body), where the fields filled at send time go in them (a payload's fields, a traceparent's
ids), and the socket addresses each target resolves to. The C side fills and writes those
bytes and parses answers.

The native client serves http:// URLs over HTTP/1.1 without a proxy; `native_unsupported` says
why a run cannot use it, and --http-client auto then falls back to libcurl.
"""
from __future__ import annotations

import socket
import struct
import urllib.request
from urllib.parse import urlsplit

from replayer.schedules.content import Payload
from replayer.transports import TransportConfig, url_host
from replayer.transports import content

TRACE_PLACEHOLDER = "00-" + "0" * 32 + "-" + "0" * 16 + "-01"


def native_unsupported(config: TransportConfig) -> str | None:
    """Why the native client cannot send this run's requests, or None when it can."""
    if config.http_version != "1.1":
        return f"--http-version {config.http_version} (the native client speaks HTTP/1.1)"
    proxies = urllib.request.getproxies_environment()
    for url in config.http_urls():
        parts = urlsplit(url)
        if parts.scheme != "http":
            return f"{parts.scheme}:// URLs (the native client speaks plain http://)"
        # libcurl honours http_proxy / all_proxy (and no_proxy): so must a run that uses them.
        if (proxies.get("http") or proxies.get("all")) and \
                not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
            return "a proxy set in the environment (http_proxy or all_proxy)"
    return None


def build_request(url: str, method: str, headers: list[str], payload: bytes | None,
                  tracing: bool) -> tuple[bytes, int]:
    """The request's bytes, and the offset of the traceparent's ids in them (-1 without).

    Headers follow libcurl's rules, so a run sends the same with either client: Host and
    Accept by default, Content-Length and Content-Type with a body; a user header of one of
    those names replaces it, 'Name:' removes it, 'Name;' sends it empty, and every other
    header is sent as given, in order (twice if given twice)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 80
    shown = f"[{host}]" if ":" in host else host
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    defaults: list[tuple[str, str]] = [("Host", shown if port == 80 else f"{shown}:{port}"),
                                       ("Accept", "*/*")]
    if payload is not None:
        defaults += [("Content-Length", str(len(payload))),
                     ("Content-Type", "application/x-www-form-urlencoded")]
    given: list[tuple[str, str | None]] = []
    for line in headers:
        if line.endswith(";") and ":" not in line:
            given.append((line[:-1].strip(), ""))         # sent with an empty value
        else:
            name, _, value = line.partition(":")
            given.append((name.strip(), value.strip() or None))   # None: only removes a default
    named = {name.lower() for name, _ in given}
    fields = [f for f in defaults if f[0].lower() not in named]
    fields += [(name, value) for name, value in given if value is not None]
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    offset = -1
    if tracing:
        offset = len(head.encode("latin-1")) + len("traceparent: 00-")
        head += f"traceparent: {TRACE_PLACEHOLDER}\r\n"
    data = head.encode("latin-1") + b"\r\n" + (payload or b"")
    return data, offset


def socket_addresses(host: str, port: int) -> list[bytes]:
    """Packed struct sockaddr_in / sockaddr_in6 for each address of host; [] if it does not
    resolve (every request to it is then recorded as a connect error, as with libcurl)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    packed: list[bytes] = []
    for family, _, _, _, sockaddr in infos:
        if family == socket.AF_INET:
            raw = (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                   + socket.inet_pton(socket.AF_INET, sockaddr[0]) + bytes(8))
        elif family == socket.AF_INET6:
            raw = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, sockaddr[2])
                   + socket.inet_pton(socket.AF_INET6, sockaddr[0]) + struct.pack("=I", sockaddr[3]))
        else:
            continue
        if raw not in packed:
            packed.append(raw)
    return packed


def header_value_at(request: bytes, name: str) -> int:
    """Where the value of header `name` starts in a request's head."""
    head = request[:request.index(b"\r\n\r\n") + 2].lower()
    at = head.find(b"\r\n" + name.lower().encode("latin-1") + b":")
    if at < 0:
        raise ValueError(f"no header {name!r} in the request")
    at += 2 + len(name) + 1
    while request[at:at + 1] == b" ":
        at += 1
    return at


def payload_url(url: str, payload: Payload | None) -> str:
    """The target's URL with the payload's path (and query) instead of its own."""
    if payload is None or payload.path is None:
        return url
    parts = urlsplit(url)
    path = payload.path if payload.path.startswith("/") else "/" + payload.path
    return f"{parts.scheme}://{parts.netloc}{path}"


def pair_request(config: TransportConfig, url: str, payload: Payload | None,
                 tracing: bool) -> tuple[list[bytes], list[tuple], int, int]:
    """A (target, payload) pair's template for the ContentTable: the whole request as its one
    part, its fields' fills, the body length a record counts, and its flags."""
    from replayer import _pacer

    body = payload.body if payload is not None and payload.body is not None else config.payload
    method = (payload.method if payload is not None and payload.method else None) \
        or config.method or ("POST" if body is not None else "GET")
    # A payload's headers replace the run's of the same name.
    own = {h.partition(":")[0].strip().lower() for h in (payload.headers if payload else [])}
    headers = ["Expect:"] + [h for h in config.headers
                             if h.rstrip(";").partition(":")[0].strip().lower() not in own]
    headers += payload.headers if payload is not None else []
    data, trace_at = build_request(payload_url(url, payload), method, headers, body, tracing)
    body_at = len(data) - len(body or b"")
    fills = content.fills(payload, 0, body_at, lambda name: (0, header_value_at(data, name)))
    if trace_at >= 0:
        fills.append(content.trace_fill(0, trace_at))
    flags = _pacer.TEMPLATE_HEAD if method.upper() == "HEAD" else 0
    return [data], fills, len(body or b""), flags


def native_transport(ring, config: TransportConfig, columns):
    """columns: content.ScheduleColumns, or the target column alone."""
    from replayer import _h1

    columns = content.as_columns(columns)
    urls = config.http_urls()
    tracing = config.trace_id_high is not None
    # Connections are per host:port, as libcurl counts them for --connections.
    hosts: dict[tuple[str, int], int] = {}
    addresses: list[list[bytes]] = []
    host_names: list[str] = []
    host_of = []
    for url in urls:
        parts = urlsplit(url)
        key = ((parts.hostname or "").lower(), parts.port or 80)
        if key not in hosts:
            hosts[key] = len(addresses)
            address = (config.address(key[0]) or key[0]).strip("[]")
            addresses.append(socket_addresses(address, key[1]))
            host_names.append(f"{url_host(key[0])}:{key[1]}")
        host_of.append(hosts[key])
    table = content.content_table(
        config, columns,
        lambda t, p: pair_request(config, urls[t], content.payload_of(config, p), tracing))
    return _h1.NativeHttpTransport(ring, table, host_of, addresses,
                                   max(1, int(config.timeout_s * 1e9)), config.connections,
                                   host_names)

"""Plain HTTP/1.1 through replayer's own C client (replayer._h1).

This module builds what the C client sends: each target's request bytes, once (request line,
Host, the default and --header lines, the body), where a traceparent's ids go in them, and the
socket addresses each target resolves to. The C side writes those bytes and parses answers.

The native client serves http:// URLs over HTTP/1.1 without a proxy; `native_unsupported` says
why a run cannot use it, and --http-client auto then falls back to libcurl.
"""
from __future__ import annotations

import socket
import struct
import urllib.request
from urllib.parse import urlsplit

from replayer.transports import TransportConfig, url_host

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


def native_transport(ring, config: TransportConfig, target_column):
    from replayer import _h1

    urls = config.http_urls()
    method = config.method or ("POST" if config.payload is not None else "GET")
    tracing = config.trace_id_high is not None
    requests, offsets, host_of = [], [], []
    # Connections are per host:port, as libcurl counts them for --connections.
    hosts: dict[tuple[str, int], int] = {}
    addresses: list[list[bytes]] = []
    host_names: list[str] = []
    for url in urls:
        data, offset = build_request(url, method, ["Expect:"] + list(config.headers),
                                     config.payload, tracing)
        requests.append(data)
        offsets.append(offset)
        parts = urlsplit(url)
        key = ((parts.hostname or "").lower(), parts.port or 80)
        if key not in hosts:
            hosts[key] = len(addresses)
            address = (config.address(key[0]) or key[0]).strip("[]")
            addresses.append(socket_addresses(address, key[1]))
            host_names.append(f"{url_host(key[0])}:{key[1]}")
        host_of.append(hosts[key])
    return _h1.NativeHttpTransport(
        ring, target_column, requests, host_of, addresses, max(1, int(config.timeout_s * 1e9)),
        config.connections, len(config.payload or b""), method.upper() == "HEAD",
        config.trace_id_high, offsets, host_names)

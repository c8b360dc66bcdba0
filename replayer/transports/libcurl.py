"""HTTP, and gRPC over HTTP/2, through libcurl's multi socket interface, driven from C
(replayer._curl).

This module only prepares what the C transport needs: the template of each (target, payload)
pair a worker sends (its body, URL and header lines, with the places of the fields filled per
request: replayer.transports.content), how a slot is set up for it (method, body or none), the
--resolve lines and the libcurl to load. The libcurl is the one pycurl brings (the wheel bundles
one with HTTP/2); replayer itself needs no curl headers to build. Keep-alive reuse, HTTP/1.1 and
HTTP/2 (h2c prior knowledge, or ALPN), a per-request timeout, and a per-host connection cap are
libcurl's.
"""
from __future__ import annotations

import ctypes.util
import os
from typing import Callable
from urllib.parse import urlsplit

from replayer.schedules.content import Payload
from replayer.transports import TransportConfig, url_host
from replayer.transports import content
from replayer.transports.native import TRACE_PLACEHOLDER, payload_url

# CURL_HTTP_VERSION_* values (libcurl ABI)
HTTP_VERSIONS = {"1.1": 2, "2": 3, "h2c": 5}


def libcurl_path() -> str:
    """The libcurl shared library pycurl loaded (or, without pycurl, the system's)."""
    try:
        import pycurl  # noqa: F401  (loads its libcurl into this process)
    except ImportError:
        pass
    else:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.count("/") else ""
                name = path.rsplit("/", 1)[-1]
                if name.startswith("libcurl") and ".so" in name:
                    return path
    found = ctypes.util.find_library("curl")
    if not found:
        raise RuntimeError("no libcurl found: install pycurl (pip install pycurl) or libcurl4")
    return found


def tls_trust() -> tuple[str | None, str | None]:
    """The CA file and directory TLS peers are verified against: curl's and OpenSSL's
    environment variables first (CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR), then this
    machine's OpenSSL defaults. The libcurl in pycurl's wheel looks for a CA file of the
    distribution it was built on (/etc/pki/tls/certs/ca-bundle.crt), absent on Debian."""
    import ssl

    paths = ssl.get_default_verify_paths()
    ca_file = next((f for f in (os.environ.get("CURL_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                                paths.cafile, paths.openssl_cafile) if f and os.path.isfile(f)), None)
    ca_path = next((d for d in (os.environ.get("SSL_CERT_DIR"), paths.capath, paths.openssl_capath)
                    if d and os.path.isdir(d)), None)
    return ca_file, ca_path


def resolve_entries(urls: list[str], config: TransportConfig) -> list[str]:
    """--resolve as libcurl's CURLOPT_RESOLVE lines: HOST:PORT:ADDRESS per URL host (never an
    IPv6 address: such a line cannot name one)."""
    entries = []
    for url in sorted(set(urls)):
        parts = urlsplit(url)
        addr = config.address(parts.hostname or "")
        if addr:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            entries.append(f"{parts.hostname}:{port}:{addr}")
    return entries


# Parts of a pair's template (replayer._curl PART_*): the body, the URL, then the header lines.
PART_BODY, PART_URL, PART_HEADERS = 0, 1, 2
TRACE_LINE = "traceparent: " + TRACE_PLACEHOLDER
TRACE_IDS_AT = len("traceparent: 00-")
GRPC_PREFIX = 5                   # compressed flag + 4-byte length before each gRPC message


def header_name(line: str) -> str:
    """The name of a header line ('Name: value', 'Name:' that removes it, 'Name;' empty)."""
    return line.rstrip(";").partition(":")[0].strip().lower()


def pair_headers(run_headers: list[str], payload: Payload | None) -> list[str]:
    """The run's header lines, then the payload's: a payload header replaces the run's of the
    same name."""
    if payload is None or not payload.headers:
        return list(run_headers)
    own = {header_name(h) for h in payload.headers}
    return [h for h in run_headers if header_name(h) not in own] + list(payload.headers)


def _line_bytes(line: str) -> bytes:
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        return line.encode()


def curl_template(body: bytes | None, url: str, lines: list[str], payload: Payload | None,
                  tracing: bool, body_at: int, bytes_out: int, head: bool) -> tuple:
    """A pair's template for the ContentTable: parts (body, URL, header lines), the fills of
    the payload's fields (a body field at body_at + its offset, a header field in its line's
    value) and of the traceparent's ids, the bytes a record counts as sent, its flags."""
    from replayer import _pacer

    if tracing:
        lines = lines + [TRACE_LINE]
    encoded = [_line_bytes(line) for line in lines]

    def header_at(name: str) -> tuple[int, int]:
        k = max(i for i, line in enumerate(lines) if header_name(line) == name.lower())
        at = encoded[k].index(b":") + 1
        while encoded[k][at:at + 1] in (b" ", b"\t"):
            at += 1
        return PART_HEADERS + k, at

    fills = content.fills(payload, PART_BODY, body_at, header_at)
    if tracing:
        fills.append(content.trace_fill(PART_HEADERS + len(lines) - 1, TRACE_IDS_AT))
    parts = [body or b"", url.encode(), *encoded]
    return parts, fills, bytes_out, _pacer.TEMPLATE_HEAD if head else 0


def http_pair(config: TransportConfig, url: str, payload: Payload | None) -> tuple:
    """(template, method for CUSTOMREQUEST or None, has_body) of an HTTP (target, payload)
    pair: the payload's body, method, path and headers instead of the run's."""
    body = payload.body if payload is not None and payload.body is not None else config.payload
    method = (payload.method if payload is not None and payload.method else None) or config.method
    default_method = "POST" if body is not None else "GET"
    head = bool(method) and method.upper() == "HEAD"
    custom = method if method and not head and method != default_method else None
    # "Expect:" off: no 100-continue round trip before a POST body.
    lines = pair_headers(["Expect:"] + list(config.headers), payload)
    template = curl_template(body, payload_url(url, payload), lines, payload,
                             config.trace_id_high is not None, 0, len(body or b""), head)
    return template, custom, body is not None and not head


def grpc_deadline_ms(config: TransportConfig) -> int:
    """The grpc-timeout every request carries: the longest of the run's timeout and its
    classes'. Each request's own (its class's) is enforced by the client (CURLOPT_TIMEOUT_MS),
    so the server's deadline only has to be no shorter; one header for every request keeps the
    header lists shared."""
    longest = max([config.timeout_s * 1e9] + [c.timeout_ns for c in config.classes
                                              if c.timeout_ns])
    return max(1, int(longest // 1_000_000))


def grpc_pair(config: TransportConfig, host: str, port: int, payload: Payload | None) -> tuple:
    """(template, None, True) of a gRPC (target, payload) pair: the payload's message framed
    with its 5-byte prefix (its fields 5 bytes further), its method path, its headers as
    metadata after the run's."""
    message = payload.body if payload is not None and payload.body is not None else config.payload
    if message is None:
        raise ValueError("gRPC needs a serialised request message")
    framed = b"\x00" + len(message).to_bytes(4, "big") + message
    path = payload.path if payload is not None and payload.path else config.grpc_method
    url = f"http://{url_host(host)}:{port}{path if path.startswith('/') else '/' + path}"
    lines = pair_headers(["Content-Type: application/grpc", "TE: trailers",
                          f"grpc-timeout: {grpc_deadline_ms(config)}m",
                          "User-Agent: replayer-grpc", "Expect:"] + list(config.headers), payload)
    template = curl_template(framed, url, lines, payload, config.trace_id_high is not None,
                             GRPC_PREFIX, len(message), False)
    return template, None, True


def make_curl_transport(ring, config: TransportConfig, columns, urls: list[str],
                        pair: Callable[[int, Payload | None], tuple], http_version: str,
                        grpc: bool = False):
    """urls: each target's URL (its host and port, for --resolve); pair(target, payload): the
    (template, method, has_body) of a pair the worker sends."""
    from replayer import _curl

    _curl.load_libcurl(libcurl_path())
    ca_file, ca_path = (None, None) if config.insecure else tls_trust()
    columns = content.as_columns(columns)
    setups: list[tuple] = []
    header_sets: dict[tuple[bytes, ...], int] = {}

    def template(target: int, payload: int) -> tuple:
        # Called once per pair, in the order of their template indices.
        tmpl, method, has_body = pair(target, content.payload_of(config, payload))
        parts, fills = tmpl[0], tmpl[1]
        lines = tuple(parts[PART_HEADERS:])
        # Pairs whose header lines have no fields share one list per distinct set of lines.
        shared = -1 if any(f[2] >= PART_HEADERS for f in fills) else \
            header_sets.setdefault(lines, len(header_sets))
        setups.append((target, method.encode() if method else None, has_body, shared))
        return tmpl

    table = content.content_table(config, columns, template)
    return _curl.CurlTransport(
        ring, table, setups, [list(lines) for lines in header_sets],
        [r.encode() for r in resolve_entries(urls, config)],
        max(1, int(config.timeout_s * 1000)), HTTP_VERSIONS[http_version],
        http_version in ("2", "h2c"), config.insecure, config.connections, len(urls), grpc,
        None if ca_file is None else os.fsencode(ca_file),
        None if ca_path is None else os.fsencode(ca_path))


def http_transport(ring, config: TransportConfig, columns):
    urls = config.http_urls()
    return make_curl_transport(ring, config, columns, urls,
                               lambda t, payload: http_pair(config, urls[t], payload),
                               config.http_version)


def grpc_transport(ring, config: TransportConfig, columns):
    """gRPC unary calls as HTTP/2 POSTs through the same C path: cleartext h2c (prior
    knowledge) multiplexed over `connections` per host, each message framed with its 5-byte
    gRPC prefix, the status read from the grpc-status trailer, the deadline sent as
    grpc-timeout so the server stops working on it too."""
    hosts = config.host_ports()
    urls = [f"http://{url_host(host)}:{port}{config.grpc_method}" for host, port in hosts]
    return make_curl_transport(ring, config, columns, urls,
                               lambda t, payload: grpc_pair(config, *hosts[t], payload),
                               "h2c", grpc=True)

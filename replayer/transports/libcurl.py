"""HTTP, and gRPC over HTTP/2, through libcurl's multi socket interface, driven from C
(replayer._curl).

This module only prepares what the C transport needs: the URL of each target, the header and
--resolve lines, the method and payload, and the libcurl to load. The libcurl is the one pycurl
brings (the wheel bundles one with HTTP/2); replayer itself needs no curl headers to build.
Keep-alive reuse, HTTP/1.1 and HTTP/2 (h2c prior knowledge, or ALPN), a per-request timeout,
and a per-host connection cap are libcurl's.
"""
from __future__ import annotations

import ctypes.util
import os
from urllib.parse import urlsplit

from replayer.transports import TransportConfig, url_host

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


def make_curl_transport(ring, config: TransportConfig, target_column, urls: list[str],
                        headers: list[str], payload: bytes | None, method: str | None,
                        http_version: str, grpc: bool = False):
    from replayer import _curl

    _curl.load_libcurl(libcurl_path())
    ca_file, ca_path = (None, None) if config.insecure else tls_trust()
    return _curl.CurlTransport(
        ring, target_column,
        [u.encode() for u in urls], [h.encode() for h in headers],
        [r.encode() for r in resolve_entries(urls, config)],
        payload, method.encode() if method else None,
        max(1, int(config.timeout_s * 1000)), HTTP_VERSIONS[http_version],
        http_version in ("2", "h2c"), config.insecure, config.connections,
        config.trace_id_high, grpc,
        None if ca_file is None else os.fsencode(ca_file),
        None if ca_path is None else os.fsencode(ca_path))


def http_transport(ring, config: TransportConfig, target_column):
    urls = config.http_urls()
    default_method = "POST" if config.payload is not None else "GET"
    method = config.method if config.method and config.method != default_method else None
    # "Expect:" off: no 100-continue round trip before a POST body.
    return make_curl_transport(ring, config, target_column, urls, ["Expect:"] + list(config.headers),
                               config.payload, method, config.http_version)


def grpc_transport(ring, config: TransportConfig, target_column):
    """gRPC unary calls as HTTP/2 POSTs through the same C path: cleartext h2c (prior
    knowledge) multiplexed over `connections` per host, each message framed with its 5-byte
    gRPC prefix, the status read from the grpc-status trailer, the deadline sent as
    grpc-timeout so the server stops working on it too."""
    if config.payload is None:
        raise ValueError("gRPC needs a serialised request message")
    urls = [f"http://{url_host(host)}:{port}{config.grpc_method}"
            for host, port in config.host_ports()]
    message = config.payload
    framed = b"\x00" + len(message).to_bytes(4, "big") + message
    timeout_ms = max(1, int(config.timeout_s * 1000))
    headers = ["Content-Type: application/grpc", "TE: trailers", f"grpc-timeout: {timeout_ms}m",
               "User-Agent: replayer-grpc", "Expect:"] + list(config.headers)
    return make_curl_transport(ring, config, target_column, urls, headers, framed, None, "h2c",
                               grpc=True)

"""The Python side of replayer's own HTTP/1.1 client (replayer.transports.native): the request
bytes built once per target, following libcurl's header rules, and when the client applies."""
from __future__ import annotations

from replayer.transports import TransportConfig
from replayer.transports.native import build_request, native_unsupported


def test_request_bytes_built_once():
    """The request line, Host (with the port unless 80, IPv6 in brackets), Accept, the body's
    Content-Length and the user's headers in order, built once per target; with tracing, the
    offset of the traceparent's ids that each send fills in."""
    data, at = build_request("http://svc.test/a/b?x=1&y=2", "GET", [], None, False)
    assert (data, at) == (b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: svc.test\r\nAccept: */*\r\n\r\n", -1)
    data, _ = build_request("http://svc.test:8080", "GET", [], None, False)
    assert data.startswith(b"GET / HTTP/1.1\r\nHost: svc.test:8080\r\n")
    data, _ = build_request("http://[::1]:8080/", "GET", [], None, False)
    assert b"\r\nHost: [::1]:8080\r\n" in data
    data, at = build_request("http://svc.test/", "POST", ["Content-Type: application/json"],
                             b"{}", True)
    assert data.endswith(b"\r\n\r\n{}")
    assert b"\r\nContent-Length: 2\r\nContent-Type: application/json\r\n" in data
    placeholder = b"traceparent: 00-%s-%s-01" % (b"0" * 32, b"0" * 16)
    assert data[at - 16:data.index(b"\r\n", at)] == placeholder


def test_a_user_header_replaces_removes_or_empties_a_default():
    """As with libcurl: a header named like a default replaces it (whatever its case), 'Name:'
    removes it, 'Name;' sends it empty; other headers are sent as given, twice if twice."""
    data, _ = build_request("http://svc.test/", "GET", ["accept: text/plain", "Host:",
                                                         "X-Empty;", "X-Dup: 1", "X-Dup: 2"],
                            None, False)
    assert data == (b"GET / HTTP/1.1\r\naccept: text/plain\r\nX-Empty: \r\nX-Dup: 1\r\n"
                    b"X-Dup: 2\r\n\r\n")


def test_the_native_client_says_what_it_cannot_send(monkeypatch):
    """Plain http:// HTTP/1.1 it sends; https://, HTTP/2 and a proxy from the environment (not
    bypassed by no_proxy) it names as the reason to use libcurl."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def config(**options):
        return TransportConfig(protocol="http", port=80, timeout_s=1, endpoints=["svc.test"],
                               **options)
    assert native_unsupported(config()) is None
    assert "https://" in native_unsupported(config(url_template="https://{endpoint}/"))
    assert "--http-version 2" in native_unsupported(config(http_version="2"))
    monkeypatch.setenv("http_proxy", "http://proxy.test:3128")
    assert "proxy" in native_unsupported(config())
    monkeypatch.setenv("no_proxy", "svc.test")
    assert native_unsupported(config()) is None

"""What every transport shares (replayer.transports): endpoints with their own port and IPv6
addresses parsed by one function and filled into URLs, malformed endpoints named before a
run, the trace context of each request, and the HTTP client a run picks."""
from __future__ import annotations

import numpy as np
import pytest

from replayer import _pacer
from replayer.errors import InputError
from replayer.loopback.procinfo import free_port
from replayer.transports import (TransportConfig, check_endpoints, http_client_of, make_transport,
                                 split_endpoint, traceparent)
from replayer.transports.native import build_request


@pytest.mark.parametrize("endpoint, expected", [
    ("svc", ("svc", None)),
    ("svc.default.example.com:8080", ("svc.default.example.com", 8080)),
    ("10.0.0.1:8080", ("10.0.0.1", 8080)),
    ("[::1]", ("::1", None)),
    ("[::1]:8080", ("::1", 8080)),
    ("::1", ("::1", None)),
    ("fd00::5:1", ("fd00::5:1", None)),
])
def test_endpoint_forms(endpoint, expected):
    """Every accepted endpoint form gives its host and its own port (None: -port applies)."""
    assert split_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint, why", [
    ("a:b:c", "more than one ':' and not an IPv6 address"),
    ("name:99999", "port '99999' is not a number from 1 to 65535"),
    ("name:", "no port after ':'"),
    ("name:http", "port 'http' is not a number"),
    ("[::1", "'[' without its closing ']'"),
    ("[::1]8080", "'8080' after ']'"),
    ("[svc]:80", "'svc' is not an IPv6 address"),
    (":8080", "no host name"),
    ("fe80::1%eth0", "zone ids"),
])
def test_malformed_endpoints_are_named(endpoint, why):
    """A malformed endpoint is refused with what is wrong, the file and the forms accepted."""
    with pytest.raises(InputError) as err:
        check_endpoints(["ok", endpoint], "load.json", "http", "http://{endpoint}:{port}/")
    text = str(err.value)
    assert text.startswith(f"load.json: endpoint {endpoint!r}: ") and why in text
    assert "[::1]:8080" in text and "\n" not in text


def test_urls_take_each_endpoints_host_and_port():
    """{endpoint} is the host (IPv6 in brackets), {port} the endpoint's own port or -port; the
    Host header follows; --resolve matches the host part."""
    config = TransportConfig(protocol="http", port=80, timeout_s=1,
                             endpoints=["svc", "svc:8080", "10.0.0.1:81", "[::1]:8082", "::1"],
                             resolve={"svc": "10.0.0.9"})
    assert config.http_urls() == ["http://svc:80/", "http://svc:8080/", "http://10.0.0.1:81/",
                                  "http://[::1]:8082/", "http://[::1]:80/"]
    assert config.host_ports()[1] == ("svc", 8080)
    assert config.address("svc") == "10.0.0.9"
    hosts = [build_request(u, "GET", [], None, False)[0].split(b"\r\n")[1]
             for u in config.http_urls()]
    assert hosts == [b"Host: svc", b"Host: svc:8080", b"Host: 10.0.0.1:81",
                     b"Host: [::1]:8082", b"Host: [::1]"]
    # A template without {port}: an endpoint's own port stays with its host.
    config.url_template = "http://{endpoint}/fn"
    assert config.http_urls()[:2] == ["http://svc/fn", "http://svc:8080/fn"]


def test_traceparent_ids_follow_the_event():
    """The W3C traceparent of event e: version 00, the run's 64-bit prefix then e as the trace
    id, e + 1 (never zero) as the span id, sampled."""
    assert traceparent(0x1234, 0) == f"00-{0x1234:016x}{0:016x}-{1:016x}-01"
    assert traceparent(0xFFFF_FFFF_FFFF_FFFF, 41) == "00-" + "f" * 16 + f"{41:016x}-{42:016x}-01"


def _noted_failure(config: TransportConfig) -> str:
    """The message the transport make_transport gives `config` notes for a refused
    connection: replayer's own client names the address it dialled ("connect to
    127.0.0.1:PORT: ..."), libcurl words it its own way ("Failed to connect to ...")."""
    ring = _pacer.RecordRing(bytearray(_pacer.RecordRing.nbytes(2)), True, 2)
    transport = make_transport(config, ring, np.zeros(1, np.int32))
    now = _pacer.now_ns()
    transport.submit(0, now, now, _pacer.CAUSE_NONE)
    transport.flush()
    for _ in range(200):
        if ring.write_idx:
            break
        transport.poll(10_000_000)
    log = transport.failure_log()
    transport.close()
    return log["connect"]["first"]["message"]


def test_auto_picks_native_where_it_applies(monkeypatch):
    """--http-client auto: replayer's own client for plain http:// HTTP/1.1, libcurl for
    https://, HTTP/2, --http-client curl and a proxy from the environment (unless no_proxy
    exempts the host); the transport a run makes is the client http_client_of names."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()

    def config(**options):
        return TransportConfig(protocol="http", port=port, timeout_s=2, endpoints=["svc.test"],
                               resolve={"*": "127.0.0.1"}, **options)
    plain = config()
    assert http_client_of(plain) == "native"
    assert _noted_failure(plain).startswith(f"connect to 127.0.0.1:{port}: ")
    for other in (config(url_template="https://{endpoint}:{port}/"), config(http_version="2"),
                  config(http_client="curl")):
        assert http_client_of(other) == "curl"
        assert _noted_failure(other).startswith("Failed to connect to svc.test")
    monkeypatch.setenv("http_proxy", "http://proxy.test:3128")
    assert http_client_of(plain) == "curl"
    monkeypatch.setenv("no_proxy", "svc.test")
    assert http_client_of(plain) == "native"

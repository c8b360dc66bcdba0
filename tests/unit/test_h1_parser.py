"""The native HTTP client's answer parser (replayer._h1.parse_answer feeds it as the transport
does: pieces as they arrive, body bytes dropped unread where the framing allows): how each
framing ends an answer, that any split of the bytes gives the same answer, and what it refuses.
The same parser under the real transport and real servers: tests/e2e/test_native_http.py."""
from __future__ import annotations

import pytest

from replayer._h1 import parse_answer

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = (CHUNKED_HEAD + b"5;x=y\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n"   # 21 bytes
           b"0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def done(status, body_bytes, close, consumed):
    return {"result": "done", "status": status, "body_bytes": body_bytes, "consumed": consumed,
            "close": close, "why": None}


# id, answer bytes (all of them the answer), request was HEAD, the server closes after
# them -> status, body bytes, connection not to be reused
FRAMINGS = [
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", False, False,
     (200, 11, False)),
    ("content-length-any-case-and-blanks",
     b"HTTP/1.1 200 OK\r\ncontent-LENGTH: \t 3 \t\r\n\r\nabc", False, False, (200, 3, False)),
    ("content-length-0", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False, False,
     (200, 0, False)),
    ("chunked-extensions-trailers", CHUNKED, False, False, (200, 21, False)),
    ("chunked-among-codings",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     False, False, (200, 3, False)),
    ("chunked-over-length", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n2\r\nok\r\n0\r\n\r\n", False, False, (200, 2, False)),
    ("until-close-1.1", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 100,
     False, True, (200, 100, True)),
    ("until-close-1.0", b"HTTP/1.0 200 OK\r\n\r\n" + b"y" * 77, False, True,
     (200, 77, True)),
    ("http-1.0-length", b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", False, False,
     (200, 3, True)),
    ("http-1.0-keep-alive",
     b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc", False, False,
     (200, 3, False)),
    ("connection-close",
     b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", False, False,
     (200, 3, True)),
    ("connection-close-among-tokens",
     b"HTTP/1.1 200 OK\r\nConnection: upgrade,close\r\nContent-Length: 0\r\n\r\n", False, False,
     (200, 0, True)),
    ("close-only-as-a-whole-token",
     b"HTTP/1.1 200 OK\r\nConnection: closed\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n",
     False, False, (200, 0, False)),
    ("204", b"HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n", False, False, (204, 0, False)),
    ("304-with-length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", False,
     False, (304, 0, False)),
    ("head", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", True, False, (200, 0, False)),
    ("head-chunked", CHUNKED_HEAD, True, False, (200, 0, False)),
    ("100-continue",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", False,
     False, (201, 2, False)),
    ("103-then-chunked", b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + CHUNKED, False,
     False, (200, 21, False)),
    ("404", b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", False, False,
     (404, 9, False)),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False, False, (200, 2, False)),
]


@pytest.mark.parametrize("data, head, closed, expected", [f[1:] for f in FRAMINGS],
                         ids=[f[0] for f in FRAMINGS])
def test_framings(data, head, closed, expected):
    """Each framing ends the answer where it says, with its status, body bytes and whether the
    connection can carry another request."""
    assert parse_answer(data, head_request=head, closed=closed) == done(*expected, len(data))


@pytest.mark.parametrize("data, head, closed, expected", [f[1:] for f in FRAMINGS],
                         ids=[f[0] for f in FRAMINGS])
def test_any_split_gives_the_same_answer(data, head, closed, expected):
    """The bytes cut at every offset, and one byte at a time: the parser resumes anywhere
    (status line, blank line, a chunk size, its CRLF, a trailer) and body bytes dropped
    unread count as parsed ones."""
    whole = done(*expected, len(data))
    for cut in range(1, len(data)):
        assert parse_answer(data, head_request=head, cuts=[cut], closed=closed) == whole, cut
    assert parse_answer(data, head_request=head, cuts=range(1, len(data)), closed=closed) == whole


def test_an_answer_is_incomplete_until_its_last_byte():
    """Every proper prefix is 'more' (nothing consumed as an answer); a body until close
    needs the close."""
    for data in (OK, CHUNKED, b"HTTP/1.1 100 Continue\r\n\r\n" + OK):
        for end in range(len(data)):
            got = parse_answer(data[:end])
            assert (got["result"], got["consumed"]) == ("more", None), (data, end)
    until_close = b"HTTP/1.1 200 OK\r\n\r\nabc"
    assert parse_answer(until_close)["result"] == "more"
    assert parse_answer(until_close, closed=True) == done(200, 3, True, len(until_close))


def test_bytes_past_the_answer_make_the_connection_untrusted():
    """Bytes read with the answer that are not part of it: the answer ends where its framing
    says and the connection must not be reused. Bytes that come in a later read are not seen
    by the parser (the transport sees them on the idle connection)."""
    junk = OK + b"JUNK"
    assert parse_answer(junk) == done(200, 2, True, len(OK))
    assert parse_answer(CHUNKED + b"X") == done(200, 21, True, len(CHUNKED))
    assert parse_answer(junk, cuts=[len(OK)]) == done(200, 2, False, len(OK))


MALFORMED = [
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP/1.x status line"),
    ("http-2-status-line", b"HTTP/2 200\r\ncontent-length: 2\r\n\r\nok",
     "not an HTTP/1.x status line"),
    ("short-status-line", b"HTTP/1.1\r\n\r\n", "not an HTTP/1.x status line"),
    ("status-letters", b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
     "status not three digits 100-599"),
    ("status-600", b"HTTP/1.1 600 No\r\nContent-Length: 2\r\n\r\nok",
     "status not three digits 100-599"),
    ("status-two-digits", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
     "status not three digits 100-599"),
    ("length-letters", b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nok", "bad Content-Length"),
    ("length-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", "bad Content-Length"),
    ("length-empty", b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", "bad Content-Length"),
    ("length-over-2^56", b"HTTP/1.1 200 OK\r\nContent-Length: 72057594037927937\r\n\r\n",
     "bad Content-Length"),
    ("chunk-size-not-hex", CHUNKED_HEAD + b"zz\r\nok\r\n0\r\n\r\n", "chunk size not hexadecimal"),
    ("chunk-size-over-2^56", CHUNKED_HEAD + b"100000000000001\r\n", "chunk size too large"),
    ("chunk-longer-than-said", CHUNKED_HEAD + b"2\r\nokXX\r\n0\r\n\r\n",
     "chunk longer than its size"),
    ("switching-protocols", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
     "101 Switching Protocols (no protocol switches here)"),
]


@pytest.mark.parametrize("data, why", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_answers_are_refused_with_the_reason(data, why):
    """Whole or cut anywhere, a malformed answer is refused, saying what is wrong."""
    for cuts in ([], *([k] for k in range(1, len(data)))):
        got = parse_answer(data, cuts=cuts)
        assert (got["result"], got["why"]) == ("bad", why), cuts


def test_a_head_over_256_kib_is_refused():
    """A head whose blank line has not come within 256 KiB is refused, at once or as it
    grows; one that ends within it is read."""
    pad = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 300_000
    assert parse_answer(pad)["why"] == "head over 256 KiB"
    assert parse_answer(pad, cuts=range(16384, len(pad), 16384))["why"] == "head over 256 KiB"
    head = (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * (262144 - 60)
            + b"\r\nContent-Length: 2\r\n\r\n")
    assert len(head) <= 262144
    assert parse_answer(head + b"ok", cuts=range(16384, len(head), 16384)) == \
        done(200, 2, False, len(head) + 2)


def test_a_chunk_or_trailer_line_over_4096_bytes_is_refused():
    """A chunk-size line (extensions included) or a trailer line longer than 4096 bytes is
    refused once that much of it is there without its end."""
    extension = CHUNKED_HEAD + b"2;" + b"e" * 5000
    trailer = CHUNKED_HEAD + b"0\r\nX-T: " + b"t" * 5000
    for data in (extension, trailer):
        assert parse_answer(data)["why"] == "chunk or trailer line over 4096 bytes"
    # Within the limit, a long extension is only skipped.
    long_ok = CHUNKED_HEAD + b"2;" + b"e" * 4000 + b"\r\nok\r\n0\r\n\r\n"
    assert parse_answer(long_ok) == done(200, 2, False, len(long_ok))

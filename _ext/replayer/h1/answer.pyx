# The HTTP/1.x answer parser (declarations and phases in answer.pxd). The caller keeps the bytes
# not consumed yet in one buffer, adds what it reads after them and feeds the whole buffer
# again; body bytes that need no parsing may be dropped unread instead (answer_droppable).

cdef void answer_start(Answer *a, bint head_request) noexcept nogil:
    a.phase = P_HEAD
    a.status = 0
    a.close_after = 0
    a.head_request = head_request
    a.scan = 0
    a.remaining = 0
    a.body_bytes = 0
    a.why = NULL


cdef int answer_feed(Answer *a, const char *buf, long long length,
                     long long *used) noexcept nogil:
    """Parse buf[:length], the bytes not consumed yet. MORE: buf[:used] is consumed, the rest
    must come again with what follows; DONE: the answer ends at buf[used] (bytes past it set
    close_after); BAD: not HTTP, a.why says why."""
    cdef long long pos = 0, take, end, size
    cdef const char *nl
    cdef int r
    cdef char ch
    while True:
        if a.phase == P_HEAD:
            end = blank_line_end(buf + pos, a.scan, length - pos)
            if end < 0:
                if length - pos >= MAX_HEAD:
                    a.why = "head over 256 KiB"
                    return BAD
                a.scan = length - pos - 3 if length - pos > 3 else 0
                break
            r = parse_head(a, buf + pos, end)
            if r == BAD:
                return BAD                         # a.why set by parse_head
            pos += end
            a.scan = 0
            if r == DONE:
                return answer_done(a, pos, length, used)
            # INTERIM (100 Continue and the like): the real answer follows. MORE: its body.
        elif a.phase == P_LENGTH or a.phase == P_CHUNK_DATA:
            take = length - pos
            if take > a.remaining:
                take = a.remaining
            a.body_bytes += take
            a.remaining -= take
            pos += take
            if a.remaining:
                break
            if a.phase == P_LENGTH:
                return answer_done(a, pos, length, used)
            a.phase = P_CHUNK_END
        elif a.phase == P_UNTIL_CLOSE:
            a.body_bytes += length - pos
            pos = length
            break
        else:
            # A line: a chunk's size, the CRLF after its data, or a trailer.
            nl = <const char *> memchr(buf + pos, c'\n', length - pos)
            if nl == NULL:
                if length - pos > MAX_LINE:
                    a.why = "chunk or trailer line over 4096 bytes"
                    return BAD
                break
            end = nl - buf                         # the '\n'
            if a.phase == P_CHUNK_SIZE:
                size = 0
                take = pos
                while take < end:
                    ch = buf[take]
                    if c'0' <= ch <= c'9':
                        size = size * 16 + (ch - c'0')
                    elif c'a' <= ch <= c'f':
                        size = size * 16 + (ch - c'a' + 10)
                    elif c'A' <= ch <= c'F':
                        size = size * 16 + (ch - c'A' + 10)
                    else:
                        break                      # ';' extensions, '\r'
                    if size > (1LL << 56):
                        a.why = "chunk size too large"
                        return BAD
                    take += 1
                if take == pos:
                    a.why = "chunk size not hexadecimal"
                    return BAD
                pos = end + 1
                if size == 0:
                    a.phase = P_TRAILER
                else:
                    a.remaining = size
                    a.phase = P_CHUNK_DATA
            elif a.phase == P_CHUNK_END:
                if end - pos > 1 or (end - pos == 1 and buf[pos] != c'\r'):
                    a.why = "chunk longer than its size"
                    return BAD
                pos = end + 1
                a.phase = P_CHUNK_SIZE
            else:                                  # P_TRAILER: up to an empty line
                take = end - pos
                pos = end + 1
                if take == 0 or (take == 1 and buf[end - 1] == c'\r'):
                    return answer_done(a, pos, length, used)
    used[0] = pos
    return MORE


cdef inline int answer_done(Answer *a, long long pos, long long length,
                            long long *used) noexcept nogil:
    if pos < length:
        a.close_after = 1          # bytes past the answer: the connection cannot be trusted
    used[0] = pos
    return DONE


cdef long long answer_droppable(const Answer *a) noexcept nogil:
    """Body bytes that may be dropped unread (counted, never copied) when nothing is buffered:
    what is left of a Content-Length body, any number (-1) of a body that ends at close, or
    none (0): the bytes must be parsed."""
    if a.phase == P_LENGTH:
        return a.remaining
    if a.phase == P_UNTIL_CLOSE:
        return -1
    return 0


cdef int answer_dropped(Answer *a, long long n) noexcept nogil:
    """n body bytes were dropped unread (at most answer_droppable): DONE when that ends it."""
    a.body_bytes += n
    if a.phase == P_LENGTH:
        a.remaining -= n
        if a.remaining == 0:
            return DONE
    return MORE


cdef bint answer_ends_at_close(const Answer *a) noexcept nogil:
    """The server closing now completes the answer (a body without a length)."""
    return a.phase == P_UNTIL_CLOSE


cdef int parse_head(Answer *a, const char *b, long long end) noexcept nogil:
    """The status line and the headers that frame the body, in b[:end] (up to and with the
    blank line): DONE (no body), MORE (a body follows), INTERIM (1xx) or BAD."""
    cdef long long start, stop, v
    cdef const char *nl
    cdef bint http10, chunked = False, has_length = False, keep_alive = False
    cdef long long length = 0
    if end < 12 or memcmp(b, b"HTTP/1.", 7) != 0 or b[8] != c' ':
        a.why = "not an HTTP/1.x status line"
        return BAD
    if not (c'1' <= b[9] <= c'5' and c'0' <= b[10] <= c'9' and c'0' <= b[11] <= c'9'):
        a.why = "status not three digits 100-599"
        return BAD
    a.status = (b[9] - c'0') * 100 + (b[10] - c'0') * 10 + (b[11] - c'0')
    http10 = b[7] == c'0'
    nl = <const char *> memchr(b, c'\n', end)
    start = nl - b + 1
    while start < end:
        nl = <const char *> memchr(b + start, c'\n', end - start)
        stop = nl - b
        if stop > start and b[stop - 1] == c'\r':
            stop -= 1
        if stop == start:
            break                                   # the blank line
        if header_is(b, start, stop, b"content-length:", 15):
            v = start + 15
            while v < stop and (b[v] == c' ' or b[v] == c'\t'):
                v += 1
            a.why = "bad Content-Length"
            if v == stop:
                return BAD
            length = 0
            while v < stop and c'0' <= b[v] <= c'9':
                length = length * 10 + (b[v] - c'0')
                if length > (1LL << 56):
                    return BAD
                v += 1
            while v < stop and (b[v] == c' ' or b[v] == c'\t'):
                v += 1
            if v != stop:
                return BAD
            has_length = True
        elif header_is(b, start, stop, b"transfer-encoding:", 18):
            chunked = value_has(b, start + 18, stop, b"chunked", 7)
        elif header_is(b, start, stop, b"connection:", 11):
            if value_has(b, start + 11, stop, b"close", 5):
                a.close_after = 1
            if value_has(b, start + 11, stop, b"keep-alive", 10):
                keep_alive = True
        start = nl - b + 1
    if http10 and not keep_alive:
        a.close_after = 1
    if a.status < 200:
        if a.status == 101:
            a.why = "101 Switching Protocols (no protocol switches here)"
            return BAD
        return INTERIM
    if a.head_request or a.status == 204 or a.status == 304 or \
            (has_length and length == 0 and not chunked):
        return DONE
    if chunked:
        a.phase = P_CHUNK_SIZE
    elif has_length:
        a.phase = P_LENGTH
        a.remaining = length
    else:
        a.phase = P_UNTIL_CLOSE
        a.close_after = 1
    return MORE


cdef long long blank_line_end(const char *b, long long start, long long length) noexcept nogil:
    """Index just past the head's blank line ("\\r\\n\\r\\n", or a bare "\\n\\n"), -1 none yet."""
    cdef long long k = start
    cdef const char *nl
    while k < length:
        nl = <const char *> memchr(b + k, c'\n', length - k)
        if nl == NULL:
            return -1
        k = nl - b + 1
        if k < length and b[k] == c'\n':
            return k + 1
        if k + 1 < length and b[k] == c'\r' and b[k + 1] == c'\n':
            return k + 2
    return -1


cdef inline bint header_is(const char *b, long long start, long long stop, const char *name,
                           long long n) noexcept nogil:
    return stop - start >= n and strncasecmp(b + start, name, n) == 0


cdef bint value_has(const char *b, long long start, long long stop, const char *word,
                    long long n) noexcept nogil:
    # A comma-separated header value holds `word` (any case), as a whole token.
    cdef long long k = start
    cdef char before, after
    while k + n <= stop:
        if strncasecmp(b + k, word, n) == 0:
            before = b[k - 1]
            after = b[k + n] if k + n < stop else c','
            if (before == c' ' or before == c',' or before == c':' or before == c'\t') and \
                    (after == c' ' or after == c',' or after == c'\t' or after == c';'):
                return True
        k += 1
    return False


def parse_answer(bytes data, bint head_request=False, cuts=(), bint closed=False):
    """For tests: the parser over `data`, fed as the transport feeds it. The bytes arrive in
    pieces cut at the offsets `cuts` (none: all at once); each piece is dropped unread as far as
    the parser allows it while nothing is buffered (answer_droppable), then added to the buffer
    and parsed; `closed`: the server closes after the last byte. Returns a dict: result ("done",
    "more" or "bad"), status, body_bytes, consumed (bytes of `data` the answer took, when done),
    close (the connection must not be reused), why (what is wrong, when bad)."""
    cdef Answer a
    cdef const char *src = data
    cdef long long n = len(data)
    cdef bytearray held = bytearray(n)
    cdef char *buf = held
    cdef long long buf_len = 0, buf_at = 0, pos = 0, piece_end, drop, used = 0
    cdef int r = MORE
    answer_start(&a, head_request)
    for piece_end in [*sorted(c for c in cuts if 0 < c < n), n]:
        while pos < piece_end and r == MORE:
            drop = answer_droppable(&a) if buf_len == 0 else 0
            if drop != 0:
                if drop < 0 or drop > piece_end - pos:
                    drop = piece_end - pos
                pos += drop
                buf_at = pos
                r = answer_dropped(&a, drop)
                used = 0
                continue
            memcpy(buf + buf_len, src + pos, piece_end - pos)
            buf_len += piece_end - pos
            pos = piece_end
            r = answer_feed(&a, buf, buf_len, &used)
            if r == MORE:
                memmove(buf, buf + used, buf_len - used)
                buf_len -= used
                buf_at += used
    if r == MORE and closed and answer_ends_at_close(&a):
        r = DONE
        buf_at = n
        used = 0
    return {"result": {MORE: "more", DONE: "done", BAD: "bad"}[r], "status": a.status,
            "body_bytes": a.body_bytes, "consumed": buf_at + used if r == DONE else None,
            "close": bool(a.close_after), "why": a.why.decode() if r == BAD else None}

# libcurl's callbacks (declared in callbacks.pxd): plain C, called inside socket_action.

cdef size_t discard_body(char *data, size_t size, size_t n, void *user) noexcept nogil:
    # Bodies are counted by libcurl (SIZE_DOWNLOAD_T), not kept.
    return size * n


cdef void fill_slot(Slot *s, const Template *t, const FillValues *v, bint late) noexcept nogil:
    # The fields of the slot's own body and header lines (its template's parts PART_BODY and
    # PART_HEADERS on): those that must be the send time when `late`, the others before.
    cdef curl_slist *h
    cdef int part = PART_HEADERS
    if s.own_body:
        fill_part(t, PART_BODY, s.body.data, v, late)
    if s.own_headers:
        h = s.headers
        while h != NULL:
            fill_part(t, part, h.data, v, late)
            h = h.next
            part += 1


cdef int stamp_sent(void *user, char *primary_ip, char *local_ip, int primary_port,
                    int local_port) noexcept nogil:
    # The pacer hands requests over PRESEND_LEAD_NS early, so that libcurl's set-up of the
    # transfer (URL, connection lookup) is done by now: hold the request until its due time,
    # then stamp it; libcurl builds the request from the header list and writes it (the body
    # from POSTFIELDS) right after this returns, so the send-time fields written here with the
    # same clock read (sent_ns, deadline = it + the class's SLO) go out with it.
    cdef Slot *s = <Slot *> user
    cdef long long now = realtime_ns()
    while now < s.scheduled_ns:
        cpu_relax()
        now = realtime_ns()
    s.sent_ns = now
    if s.late != NULL:
        s.values.sent_ns = now
        fill_slot(s, s.late, &s.values, True)
    return 0   # CURL_PREREQFUNC_OK


cdef size_t read_grpc_status(char *line, size_t size, size_t n, void *user) noexcept nogil:
    # grpc-status comes in the trailers (or the headers of a trailers-only answer), with
    # grpc-message, the reason of a failed call.
    cdef size_t length = size * n
    cdef size_t i = 12
    cdef int code = 0
    cdef char c
    if length > 13 and strncasecmp(line, "grpc-message:", 13) == 0:
        percent_decode(line + 13, length - 13, (<Slot *> user).grpc_message, FAILURE_TEXT)
    elif length > 12 and strncasecmp(line, "grpc-status:", 12) == 0:
        while i < length and line[i] == c' ':
            i += 1
        while i < length:
            c = line[i]
            if c < c'0' or c > c'9':
                break
            code = code * 10 + (c - c'0')
            i += 1
        (<Slot *> user).grpc_status = code
    return length


cdef void percent_decode(const char *value, size_t length, char *out, size_t size) noexcept nogil:
    # A header value (spaces before it, CRLF after it) into `out`, %XX decoded, bounded.
    cdef size_t i = 0, at = 0
    cdef int hi, lo
    while i < length and (value[i] == c' ' or value[i] == c'\t'):
        i += 1
    while length > i and (value[length - 1] == c'\r' or value[length - 1] == c'\n'):
        length -= 1
    while i < length and at + 1 < size:
        if value[i] == c'%' and i + 2 < length and hex_value(value[i + 1]) >= 0 \
                and hex_value(value[i + 2]) >= 0:
            hi = hex_value(value[i + 1])
            lo = hex_value(value[i + 2])
            out[at] = <char> (hi * 16 + lo)
            i += 3
        else:
            out[at] = value[i]
            i += 1
        at += 1
    out[at] = 0


cdef inline int hex_value(char c) noexcept nogil:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef int watch_socket(CURL *easy, int fd, int what, void *user, void *socketp) noexcept nogil:
    # libcurl stops watching a keep-alive connection after each transfer and watches it again
    # for the next one: the epoll set is changed only when the events wanted really change,
    # and an unwatched socket stays registered until it reports something (see pump).
    cdef Loop *loop = <Loop *> user
    cdef epoll_event ev
    cdef unsigned int events = 0
    if fd < 0 or fd >= MAX_FDS:
        return -1
    if what == RC_POLL_REMOVE:
        loop.wanted[fd] = 0
        return 0
    if what & RC_POLL_IN:
        events |= EPOLLIN
    if what & RC_POLL_OUT:
        events |= EPOLLOUT
    loop.wanted[fd] = 1
    if loop.registered[fd] == events:
        return 0
    ev.events = events
    ev.data.fd = fd
    if loop.registered[fd] != 0:
        if epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &ev) == 0:
            loop.registered[fd] = events
            return 0
        if errno != ENOENT:      # closed and reopened under the same number: add it anew
            return -1
    if epoll_ctl(loop.epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
        if errno != EEXIST or epoll_ctl(loop.epfd, EPOLL_CTL_MOD, fd, &ev) != 0:
            return -1
    loop.registered[fd] = events
    return 0


cdef int close_socket(void *user, int fd) noexcept nogil:
    # libcurl closes its sockets through here, so a closed socket's number, reused by the next
    # connection, is known to be out of the epoll set (closing removed it there).
    cdef Loop *loop = <Loop *> user
    if 0 <= fd < MAX_FDS:
        loop.wanted[fd] = 0
        loop.registered[fd] = 0
    return close(fd)


cdef int set_timer(CURLM *multi, long timeout_ms, void *user) noexcept nogil:
    cdef Loop *loop = <Loop *> user
    if timeout_ms < 0:
        loop.timer_ns = -1
    else:
        loop.timer_ns = realtime_ns() + <long long> timeout_ms * 1000000
    return 0

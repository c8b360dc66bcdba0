# The native HTTP client's transport: connections, requests onto them, their answers, endings.

@cython.final
cdef class NativeHttpTransport(Transport):
    """HTTP/1.1 over plain TCP, one request per connection at a time; see the module docstring."""

    def __cinit__(self):
        self.epfd = -1
        self.free_conn = -1
        self.busy_head = -1
        self.busy_tail = -1

    def __init__(self, RecordRing ring, ContentTable content, list host_of, list addresses,
                 long long timeout_ns, long connections, list host_names=None):
        """content: each request's template (the whole request, part 0) and class; host_of:
        the host index of each target; addresses: per host a list of packed sockaddr bytes
        (none: every request to it fails to connect); host_names: per host its "name:port",
        for failure messages."""
        Transport.__init__(self, ring)
        cdef int k, a
        cdef bytes b
        cdef Host *h
        self.content = content
        # A submit writes its request: brief, unless a request is large (a 602 KB body takes
        # 100 µs or more to write, which the pacer would take for a CPU stall).
        self.brief_submit = content.largest_part <= BRIEF_REQUEST
        self.timeout_ns = timeout_ns
        text_append(self.timeout_text, sizeof(self.timeout_text), 0,
                    f"timeout after {timeout_ns / 1e9:g} s".encode())
        self.cap_per_host = <int> max(1, connections)
        self.stage.data = NULL
        self.stage.cap = 0
        self.stage.pair = -1
        self.stage.part = 0
        self.stage_event = -1
        # Fields known before the due time are filled then, not at the send.
        self.prepares = any(content.early_fields(k) for k in range(content.n_pairs))
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self.n_targets = len(host_of)
        self.n_hosts = len(addresses)
        self.host_of = <int *> calloc(max(1, self.n_targets), sizeof(int))
        self.hosts = <Host *> calloc(max(1, self.n_hosts), sizeof(Host))
        if self.host_of == NULL or self.hosts == NULL:
            raise MemoryError()
        for k in range(self.n_targets):
            self.host_of[k] = host_of[k]
            if not 0 <= host_of[k] < self.n_hosts:
                raise ValueError(f"target {k}: no host {host_of[k]}")
        for k in range(self.n_hosts):
            h = &self.hosts[k]
            name = (host_names[k] if host_names is not None else f"host {k}").encode()
            text_append(h.name, NAME_TEXT, 0, name)
            for a, b in enumerate(addresses[k][:MAX_ADDRS]):
                if len(b) > ADDR_SIZE:
                    raise ValueError("socket address too long")
                memcpy(h.addrs[a], <const char *> b, len(b))
                h.addr_lens[a] = len(b)
                h.n_addrs = a + 1
                text_append(h.addr_text[a], ADDR_TEXT, 0, address_text(b).encode())
            h.idle = -1

    # ---- the pacer's seams ----

    cpdef int prepare(self, long long event, long long scheduled_ns) except -1:
        cdef int pair = self.content.pair(event)
        if self.content.template(pair).has_early:
            self.fill_early(&self.stage, event, scheduled_ns, pair)
            self.stage_event = event
        return 0

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns,
                     signed char cause) except -1:
        cdef int host = self.host_of[self.content.target(event)]
        cdef Host *h = &self.hosts[host]
        self.inflight += 1
        # The pacer's `sent_ns` (its hand-over time) is no send stamp: a request is stamped
        # only when its first byte is written (send_request). One that waits for a connection
        # keeps it, to weigh its wait against the pacer's lateness (waited_cause).
        if h.q_len:
            host_enqueue(h, event, scheduled_ns, cause, sent_ns)   # behind those waiting
            self.serve_queue(host, sent_ns)
        else:
            self.dispatch(host, event, scheduled_ns, cause, sent_ns)
        return 0

    cpdef int flush(self) except -1:
        # Requests are written as they are submitted; a pacer behind schedule only flushes,
        # so answers are read here.
        return self.pump(0)

    cpdef int poll(self, long long timeout_ns) except -1:
        return self.pump(timeout_ns)

    cpdef int abort(self) except -1:
        cdef int k
        cdef long long now = realtime_ns()
        cdef long long event, scheduled_ns, handed_ns
        cdef signed char cause
        cdef Conn *c
        for k in range(self.n_hosts):        # waiting requests are cancelled, never sent
            while host_dequeue(&self.hosts[k], &event, &scheduled_ns, &cause, &handed_ns):
                self.inflight -= 1
                self.ring.push(event, scheduled_ns, 0, now, 0, ERR_CANCELLED, CAUSE_NONE,
                               self.content.template(self.content.pair(event)).bytes_out, 0)
                self.note_failure(ERR_CANCELLED, event, now,
                                  "cancelled at the end of the run, waiting for a connection")
        for k in range(self.n_conns):
            c = self.conns[k]
            if c.state == C_CONNECTING:
                self.fail(c, ERR_CANCELLED, now, "cancelled at the end of the run, connecting")
            elif c.state == C_SENDING or c.state == C_RECEIVING:
                self.fail(c, ERR_CANCELLED, now,
                          "cancelled at the end of the run, waiting for the answer")
        return 0

    # ---- requests onto connections ----

    cdef int dispatch(self, int host, long long event, long long scheduled_ns,
                      signed char cause, long long handed_ns) except -1:
        """Send on an idle connection, dial a new one, or wait in the host's queue."""
        cdef Host *h = &self.hosts[host]
        cdef Conn *c
        cdef long long now
        if h.idle >= 0:
            c = self.conns[h.idle]
            h.idle = c.next_idle
            now = realtime_ns()     # one clock read: the deadline's start and the send stamp
            self.assign(c, event, scheduled_ns, cause, 0, now)
            self.send_request(c, now)
        elif h.n_conns < self.cap_per_host:
            c = self.new_conn(host)
            self.assign(c, event, scheduled_ns, cause, 0, realtime_ns())
            self.dial(c, h.preferred)
        else:
            host_enqueue(h, event, scheduled_ns, cause, handed_ns)
        return 0

    cdef int serve_queue(self, int host, long long now) except -1:
        # Iterative, never from inside a request's completion: a dial refused at once fails its
        # request and frees the connection, and the loop goes on with the next one.
        cdef Host *h = &self.hosts[host]
        cdef long long event, scheduled_ns, handed_ns
        cdef signed char cause
        while (h.idle >= 0 or h.n_conns < self.cap_per_host) and \
                host_dequeue(h, &event, &scheduled_ns, &cause, &handed_ns):
            self.dispatch(host, event, scheduled_ns,
                          waited_cause(cause, scheduled_ns, handed_ns, now), handed_ns)
        return 0

    cdef Conn *new_conn(self, int host) except NULL:
        cdef Conn *c
        cdef Conn **grown
        if self.free_conn >= 0:
            c = self.conns[self.free_conn]
            self.free_conn = c.next_idle
        else:
            if self.n_conns == self.cap_conns:
                grown = <Conn **> realloc(self.conns, max(64, 2 * self.cap_conns) * sizeof(Conn *))
                if grown == NULL:
                    raise MemoryError()
                self.conns = grown
                self.cap_conns = max(64, 2 * self.cap_conns)
            c = <Conn *> malloc(sizeof(Conn))
            if c == NULL:
                raise MemoryError()
            c.buf = <char *> malloc(READ_CHUNK)
            if c.buf == NULL:
                free(c)
                raise MemoryError()
            c.buf_cap = READ_CHUNK
            c.gen = 0
            c.own.data = NULL
            c.own.cap = 0
            c.own.pair = -1
            c.own.part = 0
            c.index = self.n_conns
            self.conns[self.n_conns] = c
            self.n_conns += 1
        c.gen += 1
        c.fd = -1
        c.host = host
        c.pair = -1
        c.state = C_CLOSED
        c.served = 0
        c.tries = 0
        c.dial_errno = 0
        c.registered = 0
        c.next_idle = -1
        c.prev_busy = -1
        c.next_busy = -1
        c.event = -1
        self.hosts[host].n_conns += 1
        return c

    cdef void assign(self, Conn *c, long long event, long long scheduled_ns, signed char cause,
                     int retried, long long now) noexcept:
        cdef int after
        c.event = event
        c.pair = self.content.pair(event)
        c.scheduled_ns = scheduled_ns
        c.cause = cause
        # Set by send_request just before the first byte is written; a request that never gets
        # there (its dial failed, timed out or was cancelled) has no sent stamp.
        c.sent_ns = 0
        c.retried = retried
        answer_start(&c.answer, self.content.template(c.pair).flags & TEMPLATE_HEAD)
        c.got = 0
        # Like libcurl's CURLOPT_TIMEOUT, the clock runs from when the request takes its
        # connection (a dial included), not while it waits for one. The busy list stays in
        # deadline order: with one timeout a request goes last; a class with a shorter one
        # goes before the later deadlines of the others.
        c.timeout_ns = self.content.timeout(event, self.timeout_ns)
        c.deadline_ns = now + c.timeout_ns
        after = self.busy_tail
        while after >= 0 and self.conns[after].deadline_ns > c.deadline_ns:
            after = self.conns[after].prev_busy
        c.prev_busy = after
        if after >= 0:
            c.next_busy = self.conns[after].next_busy
            self.conns[after].next_busy = c.index
        else:
            c.next_busy = self.busy_head
            self.busy_head = c.index
        if c.next_busy >= 0:
            self.conns[c.next_busy].prev_busy = c.index
        else:
            self.busy_tail = c.index

    cdef void unlink_busy(self, Conn *c) noexcept:
        if c.prev_busy >= 0:
            self.conns[c.prev_busy].next_busy = c.next_busy
        else:
            self.busy_head = c.next_busy
        if c.next_busy >= 0:
            self.conns[c.next_busy].prev_busy = c.prev_busy
        else:
            self.busy_tail = c.prev_busy
        c.prev_busy = -1
        c.next_busy = -1

    cdef int watch(self, Conn *c, unsigned int events) except -1:
        cdef epoll_event ev
        if c.registered == events:
            return 0
        ev.events = events
        ev.data.u64 = (<unsigned long long> c.gen << 32) | <unsigned int> c.index
        if epoll_ctl(self.epfd, EPOLL_CTL_MOD if c.registered else EPOLL_CTL_ADD, c.fd, &ev) != 0:
            raise OSError(errno, "epoll_ctl failed")
        c.registered = events
        return 0

    # ---- dialling ----

    cdef int dial(self, Conn *c, int addr_index) except -1:
        """Dial the host's address `addr_index`; the next ones if it is refused."""
        cdef Host *h = &self.hosts[c.host]
        cdef int fd, one = 1
        if c.tries >= h.n_addrs:
            return self.dial_failed(c)      # none left (or none resolved)
        c.tries += 1
        c.addr_index = addr_index % h.n_addrs
        fd = socket((<sockaddr *> h.addrs[c.addr_index]).sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        if fd < 0:
            # No socket of this family (IPv6 off, say) or out of descriptors: the next address.
            c.dial_errno = errno
            return self.dial(c, c.addr_index + 1)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
        c.fd = fd
        c.registered = 0
        if connect(fd, <sockaddr *> h.addrs[c.addr_index], h.addr_lens[c.addr_index]) == 0:
            return self.connected(c)
        if errno == EINPROGRESS:
            c.state = C_CONNECTING
            return self.watch(c, EPOLLOUT)
        return self.redial(c, errno)

    cdef int dial_failed(self, Conn *c) except -1:
        # "connect to 127.0.0.1:80: Connection refused" (the last address tried), or the name
        # that resolved to nothing.
        cdef Host *h = &self.hosts[c.host]
        cdef char text[FAILURE_TEXT]
        cdef size_t at
        if h.n_addrs == 0:
            at = text_append(text, FAILURE_TEXT, 0, "cannot resolve ")
            text_append(text, FAILURE_TEXT, at, h.name)
        else:
            at = text_append(text, FAILURE_TEXT, 0, "connect to ")
            at = text_append(text, FAILURE_TEXT, at, h.addr_text[c.addr_index])
            at = text_append(text, FAILURE_TEXT, at, ": ")
            text_append(text, FAILURE_TEXT, at, strerror(c.dial_errno))
        return self.fail(c, ERR_CONNECT, realtime_ns(), text)

    cdef int redial(self, Conn *c, int err) except -1:
        # This address refused (err): close the socket, try the host's next address.
        c.dial_errno = err
        close(c.fd)
        c.fd = -1
        c.registered = 0
        return self.dial(c, c.addr_index + 1)

    cdef int connected(self, Conn *c) except -1:
        self.hosts[c.host].preferred = c.addr_index
        self.watch(c, EPOLLIN)
        return self.send_request(c, realtime_ns())

    # ---- writing and reading ----

    cdef int fill_early(self, ContentBuffer *b, long long event, long long scheduled_ns,
                        int pair) except -1:
        """b: a copy of the pair's request with the fields known before the send filled in."""
        cdef const Template *t = self.content.template(pair)
        cdef FillValues v
        buffer_load(b, t, pair, 0)
        self.content.values(&v, event, scheduled_ns)
        fill_part(t, 0, b.data, &v, False)
        return 0

    cdef int send_request(self, Conn *c, long long now) except -1:
        """Write c's request; `now` (just read) is its sent stamp, and its send-time fields'."""
        cdef const Template *t = self.content.template(c.pair)
        cdef FillValues v
        if t.n_fills:
            if self.stage_event == c.event and self.stage.pair == c.pair:
                buffer_swap(&c.own, &self.stage)     # prepared before its due time
                self.stage_event = -1
            elif t.has_early:
                self.fill_early(&c.own, c.event, c.scheduled_ns, c.pair)
            else:
                buffer_load(&c.own, t, c.pair, 0)
            if t.has_late:
                self.content.values(&v, c.event, c.scheduled_ns)
                v.sent_ns = now
                fill_part(t, 0, c.own.data, &v, True)
            c.out = c.own.data
        else:
            c.out = t.parts[0]
        c.out_len = t.part_lens[0]
        c.out_off = 0
        c.buf_len = 0
        c.state = C_RECEIVING
        c.sent_ns = now
        return self.write_out(c)

    cdef int write_out(self, Conn *c) except -1:
        cdef ssize_t n
        cdef char text[FAILURE_TEXT]
        while c.out_off < c.out_len:
            n = send(c.fd, c.out + c.out_off, c.out_len - c.out_off, MSG_NOSIGNAL)
            if n > 0:
                c.out_off += n
            elif n < 0 and errno == EINTR:
                continue
            elif n < 0 and errno == EAGAIN:
                c.state = C_SENDING          # a large body: go on when there is room
                return self.watch(c, EPOLLIN | EPOLLOUT)
            else:
                if c.out_off == 0:
                    c.sent_ns = 0            # not a byte of it left
                text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                            "sending the request: "), strerror(errno))
                return self.broken(c, ERR_RESET, realtime_ns(), text)
        if c.state == C_SENDING:
            c.state = C_RECEIVING
            self.watch(c, EPOLLIN)
        return 0

    cdef int on_event(self, Conn *c, unsigned int ev, long long now) except -1:
        cdef int err = 0
        cdef socklen_t length = sizeof(err)
        cdef unsigned int gen = c.gen
        if c.state == C_CONNECTING:
            if getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0:
                return self.redial(c, errno)
            if err != 0:
                return self.redial(c, err)
            if ev & EPOLLOUT:
                return self.connected(c)
            return 0
        if c.state == C_IDLE:
            # An idle keep-alive connection has news: the server closed it (or sent what was
            # not asked for). It is no use any more.
            return self.close_conn(c)
        if ev & (EPOLLIN | EPOLLHUP | EPOLLERR):
            # Read first: a server may answer (413, say) and close before taking the whole body.
            self.read_answer(c, now)
            if c.gen != gen:
                return 0                     # answered, failed or replaced: the slot moved on
        if c.state == C_SENDING and ev & EPOLLOUT:
            self.write_out(c)
        return 0

    cdef int read_answer(self, Conn *c, long long now) except -1:
        """Read what the socket holds, up to READ_BUDGET bytes (a 16 MiB body must not hold
        the pacer for milliseconds: epoll reports the rest on the next poll)."""
        cdef char *grown
        cdef ssize_t n
        cdef long long room, want, used
        cdef long long budget = READ_BUDGET
        cdef int r
        cdef char text[FAILURE_TEXT]
        while True:
            want = answer_droppable(&c.answer) if c.buf_len == 0 else 0
            if want != 0:
                # Body bytes are only counted: the kernel drops them, nothing is copied.
                if want < 0 or want > budget:
                    want = budget
                n = recv(c.fd, NULL, want, MSG_TRUNC)
                if n > 0:
                    c.got += n
                    budget -= n
                    if answer_dropped(&c.answer, n) == DONE:
                        return self.complete(c, now)
                    if n < want or budget <= 0:
                        return 0
                    continue
            else:
                room = c.buf_cap - c.buf_len
                if room == 0:
                    # Only a head still being read fills the buffer, and the parser refuses
                    # one of MAX_HEAD bytes: it never grows past that.
                    grown = <char *> realloc(c.buf, 2 * c.buf_cap)
                    if grown == NULL:
                        raise MemoryError()
                    c.buf = grown
                    c.buf_cap *= 2
                    room = c.buf_cap - c.buf_len
                n = recv(c.fd, c.buf + c.buf_len, room, 0)
                if n > 0:
                    c.got += n
                    c.buf_len += n
                    budget -= n
                    r = answer_feed(&c.answer, c.buf, c.buf_len, &used)
                    if r == DONE:
                        c.buf_len = 0
                        return self.complete(c, now)
                    if r == BAD:
                        text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                                    "malformed answer: "), c.answer.why)
                        return self.fail(c, ERR_PROTOCOL, now, text)
                    if used:
                        memmove(c.buf, c.buf + used, c.buf_len - used)
                        c.buf_len -= used
                    if n < room or budget <= 0:
                        return 0             # drained (or enough for now): epoll says when more
                    continue
            if n == 0:
                if answer_ends_at_close(&c.answer):
                    return self.complete(c, now)
                return self.broken(c, ERR_RESET, now,
                                   "server closed the connection before answering" if c.got == 0
                                   else "server closed the connection mid-answer")
            if errno == EINTR:
                continue
            if errno == EAGAIN:
                return 0
            text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                        "reading the answer: "), strerror(errno))
            return self.broken(c, ERR_RESET, now, text)

    # ---- endings ----

    cdef int record(self, Conn *c, signed char kind, long long done_ns,
                    const char *message) except -1:
        """The request's ring row; a failure is also noted, under `message`, in the log."""
        self.unlink_busy(c)
        if c.sent_ns and done_ns < c.sent_ns:
            done_ns = c.sent_ns
        self.inflight -= 1
        self.ring.push(c.event, c.scheduled_ns, c.sent_ns, done_ns, c.answer.status, kind,
                       c.cause, self.content.template(c.pair).bytes_out, c.answer.body_bytes)
        if kind != ERR_OK:
            self.note_failure(kind, c.event, done_ns, message)
        c.event = -1
        return 0

    cdef int complete(self, Conn *c, long long now) except -1:
        cdef Host *h
        cdef char text[16]
        if c.answer.status < 400:
            self.record(c, ERR_OK, now, NULL)
        else:
            text_append_int(text, sizeof(text), text_append(text, sizeof(text), 0, "HTTP "),
                            c.answer.status)
            self.record(c, ERR_STATUS, now, text)
        c.served += 1
        if c.answer.close_after or c.out_off < c.out_len:    # answered before the body was all sent
            return self.close_conn(c)
        h = &self.hosts[c.host]
        c.state = C_IDLE
        c.next_idle = h.idle
        h.idle = c.index
        return 0

    cdef int fail(self, Conn *c, signed char kind, long long now,
                  const char *message) except -1:
        self.record(c, kind, now, message)
        return self.close_conn(c)

    cdef int broken(self, Conn *c, signed char kind, long long now,
                    const char *message) except -1:
        """The connection broke under a request. A keep-alive connection the server closed
        before reading this request is replaced and the request sent again, once (its sent
        stamp is then the second send's)."""
        cdef long long event = c.event, scheduled_ns = c.scheduled_ns
        cdef signed char cause = c.cause
        cdef int host = c.host
        cdef Conn *fresh
        if c.served == 0 or c.got != 0 or c.retried:
            return self.fail(c, kind, now, message)
        self.unlink_busy(c)
        self.close_conn(c)
        fresh = self.new_conn(host)
        self.assign(fresh, event, scheduled_ns, cause, 1, realtime_ns())
        return self.dial(fresh, self.hosts[host].preferred)

    cdef int close_conn(self, Conn *c) except -1:
        cdef Host *h = &self.hosts[c.host]
        cdef int *link
        if c.state == C_IDLE:
            link = &h.idle
            while link[0] >= 0 and link[0] != c.index:
                link = &self.conns[link[0]].next_idle
            if link[0] == c.index:
                link[0] = c.next_idle
        if c.fd >= 0:
            close(c.fd)          # also takes it out of the epoll set
            c.fd = -1
        c.state = C_CLOSED
        c.registered = 0
        c.gen += 1
        h.n_conns -= 1
        c.next_idle = self.free_conn
        self.free_conn = c.index
        return 0

    # ---- the loop ----

    cdef int pump(self, long long timeout_ns) except -1:
        """Wait up to timeout_ns (or the first deadline) for socket events, handle them, and
        record the requests that finished or ran out of time."""
        cdef long long now = realtime_ns()
        cdef long long wait = timeout_ns
        cdef long long arrived
        cdef int n, k, host
        cdef unsigned long long data
        cdef Conn *c
        if self.busy_head >= 0 and self.conns[self.busy_head].deadline_ns - now < wait:
            wait = self.conns[self.busy_head].deadline_ns - now
        if wait > 0:
            with nogil:     # other threads of the process (a test's server) may run meanwhile
                n = rc_epoll_wait_ns(self.epfd, self.events, MAX_EVENTS, wait)
        else:
            n = rc_epoll_wait_ns(self.epfd, self.events, MAX_EVENTS, 0)
        arrived = realtime_ns()
        for k in range(n):
            data = self.events[k].data.u64
            c = self.conns[<int> (data & 0xffffffffULL)]
            if c.gen != <unsigned int> (data >> 32) or c.fd < 0:
                continue             # closed (its slot maybe reused) earlier in this batch
            host = c.host
            self.on_event(c, self.events[k].events, arrived)
            if self.hosts[host].q_len:
                self.serve_queue(host, arrived)
        while self.busy_head >= 0 and self.conns[self.busy_head].deadline_ns <= arrived:
            c = self.conns[self.busy_head]
            host = c.host
            self.timed_out(c, arrived)      # closes the connection: it may still answer
            if self.hosts[host].q_len:
                self.serve_queue(host, arrived)
        return 0

    cdef int timed_out(self, Conn *c, long long now) except -1:
        # "timeout after 5 s waiting for the answer", or connecting to, sending, reading it
        cdef char text[FAILURE_TEXT]
        cdef size_t at
        if c.timeout_ns == self.timeout_ns:
            at = text_append(text, FAILURE_TEXT, 0, self.timeout_text)
        else:                   # its class's own timeout
            at = text_append_int(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                                 "timeout after "), c.timeout_ns // 1000000)
            at = text_append(text, FAILURE_TEXT, at, " ms (its class's)")
        if c.state == C_CONNECTING:
            at = text_append(text, FAILURE_TEXT, at, " connecting to ")
            text_append(text, FAILURE_TEXT, at, self.hosts[c.host].addr_text[c.addr_index])
        elif c.state == C_SENDING:
            text_append(text, FAILURE_TEXT, at, " sending the request")
        elif c.got == 0:
            text_append(text, FAILURE_TEXT, at, " waiting for the answer")
        else:
            text_append(text, FAILURE_TEXT, at, " reading the answer")
        return self.fail(c, ERR_TIMEOUT, now, text)

    def close(self):
        self.release()

    cdef void release(self) noexcept:
        cdef int k
        for k in range(self.n_conns):
            if self.conns[k].fd >= 0:
                close(self.conns[k].fd)
                self.conns[k].fd = -1
            free(self.conns[k].buf)
            buffer_free(&self.conns[k].own)
            free(self.conns[k])
        self.n_conns = 0
        self.free_conn = -1
        self.busy_head = self.busy_tail = -1
        free(self.conns)
        self.conns = NULL
        self.cap_conns = 0
        buffer_free(&self.stage)
        free(self.host_of)
        self.host_of = NULL
        self.n_targets = 0
        if self.hosts != NULL:
            for k in range(self.n_hosts):
                free(self.hosts[k].queue)
            free(self.hosts)
            self.hosts = NULL
            self.n_hosts = 0
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1

    def __dealloc__(self):
        self.release()

# The libcurl transport: submit, admission, the loop, endings.

@cython.final
cdef class CurlTransport(Transport):
    """One libcurl multi handle per worker; see the module docstring."""

    def __cinit__(self):
        self.loop.epfd = -1
        self.loop.timer_ns = -1

    def __init__(self, RecordRing ring, ContentTable content, list pairs, list header_sets,
                 list resolve, long timeout_ms, long http_version, bint multiplex,
                 bint insecure, long connections, int n_targets, bint grpc=False, ca_file=None,
                 ca_path=None):
        """content: each request's template (part 0 the body, 1 the URL, 2.. the header lines)
        and class; pairs: per template index (target, method bytes or None, has_body,
        header_set: index into header_sets, the lines of a pair without header fields);
        resolve: bytes lines; ca_file, ca_path: bytes or None, the certificates TLS peers are
        verified against."""
        Transport.__init__(self, ring)
        cdef bytes b
        cdef int k, f
        cdef PairSetup *p
        cdef const Template *t
        self.lead_ns = PRESEND_LEAD_NS
        self.brief_submit = True
        self.keep = []
        self.content = content
        self.staged = NULL
        self.staged_event = -1
        self.timeout_ms = timeout_ms
        self.http_version = http_version
        self.multiplex = multiplex
        self.insecure = insecure
        self.grpc = grpc
        self.loop.epfd = epoll_create1(EPOLL_CLOEXEC)
        self.loop.timer_ns = -1
        if self.loop.epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self.multi = rc_api.multi_init()
        if self.multi == NULL:
            raise RuntimeError("curl_multi_init failed")
        rc_msetopt_ptr(self.multi, RC_MOPT_SOCKETFUNCTION, <void *> watch_socket)
        rc_msetopt_ptr(self.multi, RC_MOPT_SOCKETDATA, &self.loop)
        rc_msetopt_ptr(self.multi, RC_MOPT_TIMERFUNCTION, <void *> set_timer)
        rc_msetopt_ptr(self.multi, RC_MOPT_TIMERDATA, &self.loop)
        # A cap per host: past it requests wait in libcurl for a free connection (their
        # latency shows it) instead of dialling thousands of connections when behind.
        rc_msetopt_long(self.multi, RC_MOPT_MAX_HOST_CONNECTIONS, connections)
        rc_msetopt_long(self.multi, RC_MOPT_MAXCONNECTS, connections * max(1, n_targets))
        if multiplex:
            rc_msetopt_long(self.multi, RC_MOPT_PIPELINING, RC_PIPE_MULTIPLEX)
        self.n_targets = n_targets
        self.admitted = <int *> malloc(max(1, n_targets) * sizeof(int))
        self.queue_head = <int *> malloc(max(1, n_targets) * sizeof(int))
        self.queue_tail = <int *> malloc(max(1, n_targets) * sizeof(int))
        if self.admitted == NULL or self.queue_head == NULL or self.queue_tail == NULL:
            raise MemoryError()
        for k in range(n_targets):
            self.admitted[k] = 0
            self.queue_head[k] = -1
            self.queue_tail[k] = -1
        # HTTP/1.1: one transfer per connection; HTTP/2: libcurl's default of 100 streams each.
        self.admit_cap = <int> min(connections * (100 if multiplex else 1), 1 << 30)
        self.header_lists = <curl_slist **> calloc(max(1, len(header_sets)), sizeof(curl_slist *))
        if self.header_lists == NULL:
            raise MemoryError()
        self.n_header_lists = len(header_sets)
        for k, lines in enumerate(header_sets):
            for b in lines:
                self.header_lists[k] = rc_api.slist_append(self.header_lists[k], b)
        if len(pairs) != content.n_pairs:
            raise ValueError(f"{len(pairs)} pair set-ups for {content.n_pairs} templates")
        self.pairs = <PairSetup *> calloc(max(1, len(pairs)), sizeof(PairSetup))
        if self.pairs == NULL:
            raise MemoryError()
        self.n_pairs = len(pairs)
        for k, (target, method, has_body, header_set) in enumerate(pairs):
            p = &self.pairs[k]
            t = content.template(k)
            if not 0 <= target < n_targets or t.n_parts < PART_HEADERS:
                raise ValueError(f"pair {k}: target {target} or its template's parts")
            p.target = target
            if method is not None:
                self.keep.append(method)
                p.method = <bytes> method
            p.head = (t.flags & TEMPLATE_HEAD) != 0
            p.has_body = has_body and not p.head
            for f in range(t.n_fills):
                if t.fills[f].part == PART_BODY:
                    p.body_fields = p.has_body
                elif t.fills[f].part >= PART_HEADERS:
                    p.header_fields = True
            if not p.header_fields:
                if not 0 <= header_set < self.n_header_lists:
                    raise ValueError(f"pair {k}: no header list {header_set}")
                p.headers = self.header_lists[header_set]
        # Fields known before the due time (ids, random values) are filled then, not at the send.
        self.prepares = any(content.early_fields(k) for k in range(content.n_pairs))
        for b in resolve:
            self.resolve = rc_api.slist_append(self.resolve, b)
        if ca_file is not None:
            self.keep.append(ca_file)
            self.ca_file = <bytes> ca_file
        if ca_path is not None:
            self.keep.append(ca_path)
            self.ca_path = <bytes> ca_path

    cdef Slot *new_slot(self) except NULL:
        cdef Slot *s
        cdef CURL *e
        if self.n_slots == self.cap_slots:
            self.cap_slots = max(64, 2 * self.cap_slots)
            self.slots = <Slot **> realloc(self.slots, self.cap_slots * sizeof(Slot *))
            self.free_stack = <int *> realloc(self.free_stack, self.cap_slots * sizeof(int))
            if self.slots == NULL or self.free_stack == NULL:
                raise MemoryError()
        e = rc_api.easy_init()
        s = <Slot *> malloc(sizeof(Slot))
        if e == NULL or s == NULL:
            raise MemoryError()
        s.easy = e
        s.index = self.n_slots
        s.pair = -1
        s.target = -1
        s.busy = 0
        s.in_multi = 0
        s.next_queued = -1
        s.timeout_ms = self.timeout_ms
        s.late = NULL
        s.body.data = NULL
        s.body.cap = 0
        s.body.pair = -1
        s.body.part = PART_BODY
        s.headers = NULL
        s.headers_pair = -1
        s.own_body = 0
        s.own_headers = 0
        s.error[0] = 0
        s.grpc_message[0] = 0
        self.slots[self.n_slots] = s
        self.n_slots += 1
        rc_setopt_ptr(e, RC_OPT_PRIVATE, s)
        rc_setopt_ptr(e, RC_OPT_ERRORBUFFER, s.error)
        rc_setopt_long(e, RC_OPT_NOSIGNAL, 1)
        rc_setopt_long(e, RC_OPT_TIMEOUT_MS, self.timeout_ms)
        rc_setopt_long(e, RC_OPT_CONNECTTIMEOUT_MS, self.timeout_ms)
        rc_setopt_ptr(e, RC_OPT_WRITEFUNCTION, <void *> discard_body)
        rc_setopt_ptr(e, RC_OPT_PREREQFUNCTION, <void *> stamp_sent)
        rc_setopt_ptr(e, RC_OPT_PREREQDATA, s)
        rc_setopt_ptr(e, RC_OPT_CLOSESOCKETFUNCTION, <void *> close_socket)
        rc_setopt_ptr(e, RC_OPT_CLOSESOCKETDATA, &self.loop)
        rc_setopt_long(e, RC_OPT_HTTP_VERSION, self.http_version)
        if self.multiplex:
            rc_setopt_long(e, RC_OPT_PIPEWAIT, 1)   # wait to multiplex on an existing connection
        if self.grpc:
            rc_setopt_ptr(e, RC_OPT_HEADERFUNCTION, <void *> read_grpc_status)
            rc_setopt_ptr(e, RC_OPT_HEADERDATA, s)
        if self.resolve != NULL:
            rc_setopt_ptr(e, RC_OPT_RESOLVE, self.resolve)
        if self.insecure:
            rc_setopt_long(e, RC_OPT_SSL_VERIFYPEER, 0)
            rc_setopt_long(e, RC_OPT_SSL_VERIFYHOST, 0)
        else:
            # The libcurl pycurl bundles was built for another distribution's CA file: name
            # this machine's, or no certificate could ever be verified.
            if self.ca_file != NULL:
                rc_setopt_ptr(e, RC_OPT_CAINFO, self.ca_file)
            if self.ca_path != NULL:
                rc_setopt_ptr(e, RC_OPT_CAPATH, self.ca_path)
        return s

    cdef Slot *take_slot(self) except NULL:
        if self.n_free:
            self.n_free -= 1
            return self.slots[self.free_stack[self.n_free]]
        return self.new_slot()

    cdef int use_pair(self, Slot *s, int pair) except -1:
        """Set the slot up for another (target, payload) pair: URL, method, body, headers.
        A slot keeps its pair from one request to the next, so this runs only on a change."""
        cdef const PairSetup *p = &self.pairs[pair]
        cdef const Template *t = self.content.template(pair)
        cdef const char *body
        cdef int k
        rc_setopt_ptr(s.easy, RC_OPT_URL, t.parts[PART_URL])     # libcurl keeps its own copy
        s.target = p.target
        if p.head:
            rc_setopt_long(s.easy, RC_OPT_NOBODY, 1)
        else:
            # NOBODY off turns a HEAD back into a GET; POSTFIELDS makes it a POST.
            rc_setopt_long(s.easy, RC_OPT_NOBODY, 0)
            if p.has_body:
                if p.body_fields:
                    buffer_load(&s.body, t, pair, PART_BODY)
                    body = s.body.data
                else:
                    body = t.parts[PART_BODY]    # sent as it is: no copy
                rc_setopt_off(s.easy, RC_OPT_POSTFIELDSIZE_LARGE, t.part_lens[PART_BODY])
                rc_setopt_ptr(s.easy, RC_OPT_POSTFIELDS, body)
            else:
                rc_setopt_long(s.easy, RC_OPT_HTTPGET, 1)
        s.own_body = p.body_fields
        rc_setopt_ptr(s.easy, RC_OPT_CUSTOMREQUEST, p.method)
        if p.header_fields:
            # The slot's own copy of the lines, its fields written into them in place (libcurl
            # reads the list when it builds the request, after stamp_sent).
            if s.headers_pair != pair:
                if s.headers != NULL:
                    rc_api.slist_free_all(s.headers)
                    s.headers = NULL
                s.headers_pair = -1
                for k in range(PART_HEADERS, t.n_parts):
                    s.headers = rc_api.slist_append(s.headers, t.parts[k])
                    if s.headers == NULL:
                        raise MemoryError()
                s.headers_pair = pair
            rc_setopt_ptr(s.easy, RC_OPT_HTTPHEADER, s.headers)
        else:
            rc_setopt_ptr(s.easy, RC_OPT_HTTPHEADER, p.headers)
        s.own_headers = p.header_fields
        s.pair = pair
        return 0

    cdef void fill_early(self, Slot *s, long long event, long long scheduled_ns) noexcept:
        """The fields of the slot's request known before its due time (ids, random values)."""
        cdef FillValues v
        self.content.values(&v, event, scheduled_ns)
        fill_slot(s, self.content.template(s.pair), &v, False)

    cpdef int prepare(self, long long event, long long scheduled_ns) except -1:
        # The slot that will send it, set up for its pair, its early fields filled (a 602 KB
        # tensor among them) while the pacer still waits for the due time.
        cdef int pair = self.content.pair(event)
        cdef Slot *s
        if not self.content.template(pair).has_early:
            return 0
        if self.kick:
            # The pacer prepares the next request before it flushes the last one: start what
            # was submitted first, or it would wait out this fill (hundreds of µs for a tensor).
            self.start_admitted()
        s = self.staged
        self.staged = NULL
        if s == NULL:
            s = self.take_slot()
        if s.pair != pair:
            self.use_pair(s, pair)
        self.fill_early(s, event, scheduled_ns)
        self.staged = s
        self.staged_event = event
        return 0

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns,
                     signed char cause) except -1:
        cdef Slot *s
        cdef int target, pair
        cdef const Template *t
        cdef long long class_timeout
        cdef long timeout_ms
        if self.staged != NULL and self.staged_event == event:
            s = self.staged          # set up and filled by prepare
            self.staged = NULL
            t = self.content.template(s.pair)
        else:
            s = self.take_slot()
            pair = self.content.pair(event)
            if s.pair != pair:
                self.use_pair(s, pair)
            t = self.content.template(pair)
            if t.has_early:
                self.fill_early(s, event, scheduled_ns)
        target = s.target
        if t.has_late:
            # Filled by stamp_sent, with the send stamp itself.
            self.content.values(&s.values, event, scheduled_ns)
            s.late = t
        else:
            s.late = NULL
        # Its class's timeout (CURLOPT_TIMEOUT_MS: from its start to its answer), set only
        # when it changes for this slot; past it libcurl ends it as a timeout.
        class_timeout = self.content.timeout(event, 0)
        timeout_ms = self.timeout_ms if class_timeout <= 0 else \
            <long> max(1, class_timeout // 1000000)
        if s.timeout_ms != timeout_ms:
            rc_setopt_long(s.easy, RC_OPT_TIMEOUT_MS, timeout_ms)
            s.timeout_ms = timeout_ms
        s.event = event
        s.scheduled_ns = scheduled_ns
        s.cause = cause
        # The pacer's `sent_ns` (its early hand-over) is not a send time: kept to weigh a wait
        # for admission against (admit_queued).
        s.handed_ns = sent_ns
        # Set by the pre-request stamp when libcurl writes the request; one that never goes
        # (its dial failed, it was cancelled while waiting) has none.
        s.sent_ns = 0
        s.error[0] = 0
        s.grpc_message[0] = 0
        s.grpc_status = -1
        s.busy = 1
        self.inflight += 1
        if self.admitted[target] < self.admit_cap:
            self.admit(s)
        else:
            s.next_queued = -1
            if self.queue_tail[target] < 0:
                self.queue_head[target] = s.index
            else:
                self.slots[self.queue_tail[target]].next_queued = s.index
            self.queue_tail[target] = s.index
        return 0

    cdef int admit(self, Slot *s) except -1:
        if rc_api.multi_add_handle(self.multi, s.easy) != 0:
            return self.finish(s, ERR_OTHER, 0, 0, realtime_ns(), "curl_multi_add_handle failed")
        s.in_multi = 1
        self.admitted[s.target] += 1
        self.kick = True
        return 0

    cdef int admit_queued(self, int target, long long now) except -1:
        # Each of them waited for a connection since the pacer handed it over (waited_cause).
        cdef int head
        cdef Slot *s
        while self.queue_head[target] >= 0 and self.admitted[target] < self.admit_cap:
            head = self.queue_head[target]
            s = self.slots[head]
            self.queue_head[target] = s.next_queued
            if self.queue_head[target] < 0:
                self.queue_tail[target] = -1
            s.cause = waited_cause(s.cause, s.scheduled_ns, s.handed_ns, now)
            self.admit(s)
        return 0

    cpdef int flush(self) except -1:
        self.start_admitted()
        # A pacer behind schedule only flushes: answers must still be read here.
        return self.pump(0)

    cdef int start_admitted(self) except -1:
        cdef int running
        # New transfers carry an expired timer: running libcurl's timers starts them. (Their
        # add already reported that timer, so libcurl reports the next one when it changes.)
        self.kick = False
        rc_api.multi_socket_action(self.multi, RC_SOCKET_TIMEOUT, 0, &running)
        return 0

    cpdef int poll(self, long long timeout_ns) except -1:
        return self.pump(timeout_ns)

    cdef int pump(self, long long timeout_ns) except -1:
        """Wait up to timeout_ns for socket events or libcurl's timer, hand them to libcurl,
        and record the transfers that finished."""
        cdef long long now = realtime_ns()
        cdef long long wait = timeout_ns
        cdef long long arrived
        cdef int n, k, fd, mask, running
        cdef unsigned int ev
        if self.loop.timer_ns >= 0 and self.loop.timer_ns - now < wait:
            wait = self.loop.timer_ns - now
        if wait > 0:
            with nogil:     # other threads of the process (a test's server) may run meanwhile
                n = rc_epoll_wait_ns(self.loop.epfd, self.events, MAX_EVENTS, wait)
        else:
            n = rc_epoll_wait_ns(self.loop.epfd, self.events, MAX_EVENTS, 0)
        arrived = realtime_ns()
        for k in range(n):
            ev = self.events[k].events
            fd = self.events[k].data.fd
            if not self.loop.wanted[fd]:
                # A connection libcurl no longer watches (idle keep-alive) has news, most
                # likely the peer closed it: stop watching it until libcurl asks again.
                epoll_ctl(self.loop.epfd, EPOLL_CTL_DEL, fd, NULL)
                self.loop.registered[fd] = 0
                continue
            mask = 0
            if ev & (EPOLLIN | EPOLLHUP):
                mask |= RC_CSELECT_IN
            if ev & EPOLLOUT:
                mask |= RC_CSELECT_OUT
            if ev & EPOLLERR:
                mask |= RC_CSELECT_ERR
            rc_api.multi_socket_action(self.multi, fd, mask, &running)
        if self.loop.timer_ns >= 0 and arrived >= self.loop.timer_ns:
            # libcurl calls set_timer only when its next timeout changes; if by its own clock
            # (milliseconds) nothing was due yet, it stays silent: look again in 1 ms.
            self.loop.timer_ns = arrived + 1000000
            rc_api.multi_socket_action(self.multi, RC_SOCKET_TIMEOUT, 0, &running)
        self.collect(arrived)
        while self.kick:
            # Finished transfers made room for queued ones: put them on the wire now.
            self.start_admitted()
            self.collect(realtime_ns())
        return 0

    cdef int collect(self, long long done_ns) except -1:
        cdef CURLMsg *msg
        cdef int left, code
        cdef CURL *easy
        cdef void *p
        cdef long status
        cdef curl_off_t bytes_in
        cdef signed char kind
        cdef Slot *s
        cdef char text[FAILURE_TEXT]
        cdef const char *why
        cdef long os_errno
        cdef size_t at
        while True:
            msg = rc_api.multi_info_read(self.multi, &left)
            if msg == NULL:
                return 0
            if msg.msg != RC_MSG_DONE:
                continue
            easy = msg.easy_handle
            code = msg.data.result
            p = NULL
            status = 0
            bytes_in = 0
            rc_getinfo_ptr(easy, RC_INFO_PRIVATE, &p)
            rc_getinfo_long(easy, RC_INFO_RESPONSE_CODE, &status)
            rc_getinfo_off(easy, RC_INFO_SIZE_DOWNLOAD_T, &bytes_in)
            s = <Slot *> p
            why = NULL
            if code != 0:
                kind = curl_error_kind(code)
                # libcurl's own words for this transfer, or its generic text for the code.
                if s.error[0]:
                    why = &s.error[0]
                else:
                    why = rc_api.easy_strerror(code)
                # The system's reason, where libcurl's words leave it out ("Could not connect
                # to server": refused? unreachable?).
                os_errno = 0
                rc_getinfo_long(easy, RC_INFO_OS_ERRNO, &os_errno)
                if os_errno != 0 and strstr(why, strerror(os_errno)) == NULL:
                    at = text_append(text, FAILURE_TEXT, 0, why)
                    at = text_append(text, FAILURE_TEXT, at, " (")
                    at = text_append(text, FAILURE_TEXT, at, strerror(os_errno))
                    text_append(text, FAILURE_TEXT, at, ")")
                    why = text
                if self.grpc:
                    status = grpc_code_of_failure(kind)
            elif self.grpc:
                if bytes_in >= GRPC_PREFIX:
                    bytes_in -= GRPC_PREFIX
                if s.grpc_status < 0:
                    # No grpc-status: not a gRPC answer (a proxy's error page, a plain HTTP
                    # server); its HTTP status maps to a gRPC code as gRPC clients do.
                    kind = ERR_STATUS if status >= 400 else ERR_PROTOCOL
                    text_append(text, FAILURE_TEXT, text_append_int(
                        text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0, "HTTP "), status),
                        " without grpc-status")
                    why = text
                    status = grpc_code_of_http_status(status)
                else:
                    status = s.grpc_status
                    kind = grpc_kind(s.grpc_status)
                    if kind != ERR_OK:
                        why = grpc_failure_text(text, s.grpc_status, s.grpc_message)
            elif status < 400:
                kind = ERR_OK
            else:
                kind = ERR_STATUS
                text_append_int(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0, "HTTP "),
                                status)
                why = text
            self.finish(s, kind, status, bytes_in, done_ns, why)

    cdef int finish(self, Slot *s, signed char kind, long status, long long bytes_in,
                    long long done_ns, const char *why) except -1:
        """The transfer's ring row; a failure is also noted, under `why`, in the log."""
        if s.in_multi:
            rc_api.multi_remove_handle(self.multi, s.easy)
            s.in_multi = 0
            self.admitted[s.target] -= 1
        if s.sent_ns and done_ns < s.sent_ns:
            done_ns = s.sent_ns      # finished inside the same socket_action that sent it
        s.busy = 0
        self.free_stack[self.n_free] = s.index
        self.n_free += 1
        self.inflight -= 1
        self.ring.push(s.event, s.scheduled_ns, s.sent_ns, done_ns, <int> status, kind,
                       s.cause, self.content.template(s.pair).bytes_out, bytes_in)
        if kind != ERR_OK:
            self.note_failure(kind, s.event, done_ns, why)
        if self.queue_head[s.target] >= 0:
            self.admit_queued(s.target, done_ns)
        return 0

    cpdef int abort(self) except -1:
        cdef int k
        cdef long long now = realtime_ns()
        for k in range(self.n_targets):    # queued requests are cancelled too, not admitted
            self.queue_head[k] = -1
            self.queue_tail[k] = -1
        cdef Slot *s
        cdef const char *why
        for k in range(self.n_slots):
            s = self.slots[k]
            if s.busy:
                if not s.in_multi:
                    why = "cancelled at the end of the run, waiting for a connection"
                elif s.sent_ns == 0:
                    why = "cancelled at the end of the run, before it was sent (connecting)"
                else:
                    why = "cancelled at the end of the run, waiting for the answer"
                self.finish(s, ERR_CANCELLED, GRPC_CANCELLED if self.grpc else 0, 0, now, why)
        return 0

    def close(self):
        self.release()

    cdef void release(self) noexcept:
        cdef int k
        if self.multi != NULL:
            for k in range(self.n_slots):
                if self.slots[k].in_multi:
                    rc_api.multi_remove_handle(self.multi, self.slots[k].easy)
                rc_api.easy_cleanup(self.slots[k].easy)
                if self.slots[k].headers != NULL:
                    rc_api.slist_free_all(self.slots[k].headers)
                buffer_free(&self.slots[k].body)
                free(self.slots[k])
            rc_api.multi_cleanup(self.multi)
            self.multi = NULL
            self.n_slots = 0
            self.n_free = 0
            self.staged = NULL
        if self.header_lists != NULL:
            for k in range(self.n_header_lists):
                if self.header_lists[k] != NULL:
                    rc_api.slist_free_all(self.header_lists[k])
            free(self.header_lists)
            self.header_lists = NULL
            self.n_header_lists = 0
        free(self.pairs)
        self.pairs = NULL
        self.n_pairs = 0
        if self.resolve != NULL:
            rc_api.slist_free_all(self.resolve)
            self.resolve = NULL
        if self.loop.epfd >= 0:
            close(self.loop.epfd)
            self.loop.epfd = -1

    def __dealloc__(self):
        self.release()
        free(self.slots)
        free(self.free_stack)
        free(self.admitted)
        free(self.queue_head)
        free(self.queue_tail)

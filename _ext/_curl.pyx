# cython: language_level=3
"""HTTP (and gRPC over HTTP/2) through libcurl's multi socket interface, driven from C.

The pacer calls submit/flush/poll; none of them touches a Python object: easy handles are
pooled in C slots, the URL is set only when a slot's target changes, libcurl tells us which
sockets to watch (epoll, nanosecond timeouts) and when its next timer is due, and each
finished transfer becomes a ring row straight from curl_easy_getinfo.

Stamps: `sent_ns` is taken in libcurl's pre-request callback, once the connection is ready
and just before the request is written; a request that never got there (its dial failed, it
was cancelled while waiting for a connection) has none (0). `done_ns` is when epoll reported
the socket that completed it.

Failures: each one is also noted in the transport's failure log (Transport.note_failure):
libcurl's own error text for the transfer (CURLOPT_ERRORBUFFER), "HTTP 503", or for gRPC the
status name and its grpc-message ("UNAVAILABLE: ...").
"""
from libc.stdlib cimport malloc, realloc, free
from libc.errno cimport errno, ENOENT, EEXIST
from libc.string cimport strerror, strstr

from epoll cimport (epoll_event, epoll_create1, epoll_ctl, rc_epoll_wait_ns, EPOLL_CLOEXEC,
                   EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL, EPOLLIN, EPOLLOUT, EPOLLERR,
                   EPOLLHUP)
from clock cimport realtime_ns, cpu_relax
from trace_ids cimport write_trace_ids
from failure_text cimport text_append, text_append_int
from replayer._pacer cimport (Transport, RecordRing, ERR_OK, ERR_TIMEOUT, ERR_CONNECT, ERR_RESET,
                     ERR_TLS, ERR_PROTOCOL, ERR_CANCELLED, ERR_STATUS, ERR_OTHER, FAILURE_TEXT)

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *a, const char *b, size_t n)

cdef extern from "curl_api.h" nogil:
    ctypedef void CURL
    ctypedef void CURLM
    ctypedef long long curl_off_t
    cdef struct curl_slist:
        char *data
        curl_slist *next
    cdef union _msg_data:
        void *whatever
        int result
    ctypedef struct CURLMsg:
        int msg
        CURL *easy_handle
        _msg_data data
    ctypedef struct replayer_curl_api:
        CURL *(*easy_init)()
        void (*easy_cleanup)(CURL *)
        CURLM *(*multi_init)()
        int (*multi_add_handle)(CURLM *, CURL *)
        int (*multi_remove_handle)(CURLM *, CURL *)
        int (*multi_socket_action)(CURLM *, int, int, int *)
        CURLMsg *(*multi_info_read)(CURLM *, int *)
        int (*multi_cleanup)(CURLM *)
        curl_slist *(*slist_append)(curl_slist *, const char *)
        void (*slist_free_all)(curl_slist *)
        char *(*version)()
        const char *(*easy_strerror)(int)
    replayer_curl_api rc_api
    const char *rc_load(const char *path)
    int rc_setopt_long(CURL *e, int opt, long v)
    int rc_setopt_ptr(CURL *e, int opt, const void *v)
    int rc_setopt_off(CURL *e, int opt, curl_off_t v)
    int rc_msetopt_long(CURLM *m, int opt, long v)
    int rc_msetopt_ptr(CURLM *m, int opt, const void *v)
    int rc_getinfo_long(CURL *e, int info, long *v)
    int rc_getinfo_off(CURL *e, int info, curl_off_t *v)
    int rc_getinfo_ptr(CURL *e, int info, void **v)
    int RC_OPT_ERRORBUFFER
    int RC_OPT_WRITEDATA, RC_OPT_URL, RC_OPT_POSTFIELDS, RC_OPT_HTTPHEADER, RC_OPT_HEADERDATA
    int RC_OPT_CUSTOMREQUEST, RC_OPT_SSL_VERIFYPEER, RC_OPT_SSL_VERIFYHOST, RC_OPT_HTTP_VERSION
    int RC_OPT_CAINFO, RC_OPT_CAPATH
    int RC_OPT_NOSIGNAL, RC_OPT_PRIVATE, RC_OPT_TIMEOUT_MS, RC_OPT_CONNECTTIMEOUT_MS
    int RC_OPT_RESOLVE, RC_OPT_PIPEWAIT, RC_OPT_WRITEFUNCTION, RC_OPT_HEADERFUNCTION
    int RC_OPT_POSTFIELDSIZE_LARGE, RC_OPT_PREREQFUNCTION, RC_OPT_PREREQDATA
    int RC_OPT_CLOSESOCKETFUNCTION, RC_OPT_CLOSESOCKETDATA
    int RC_MOPT_SOCKETFUNCTION, RC_MOPT_SOCKETDATA, RC_MOPT_PIPELINING, RC_MOPT_TIMERFUNCTION
    int RC_MOPT_TIMERDATA, RC_MOPT_MAXCONNECTS, RC_MOPT_MAX_HOST_CONNECTIONS
    int RC_INFO_RESPONSE_CODE, RC_INFO_PRIVATE, RC_INFO_SIZE_DOWNLOAD_T, RC_INFO_OS_ERRNO
    int RC_PIPE_MULTIPLEX, RC_MSG_DONE, RC_SOCKET_TIMEOUT
    int RC_CSELECT_IN, RC_CSELECT_OUT, RC_CSELECT_ERR
    int RC_POLL_IN, RC_POLL_OUT, RC_POLL_REMOVE


# The ABI numbers above, for the test that checks them against pycurl's constants.
ABI = {
    "WRITEDATA": RC_OPT_WRITEDATA, "URL": RC_OPT_URL, "POSTFIELDS": RC_OPT_POSTFIELDS,
    "HTTPHEADER": RC_OPT_HTTPHEADER, "CUSTOMREQUEST": RC_OPT_CUSTOMREQUEST,
    "SSL_VERIFYPEER": RC_OPT_SSL_VERIFYPEER, "SSL_VERIFYHOST": RC_OPT_SSL_VERIFYHOST,
    "CAINFO": RC_OPT_CAINFO, "CAPATH": RC_OPT_CAPATH,
    "HTTP_VERSION": RC_OPT_HTTP_VERSION, "NOSIGNAL": RC_OPT_NOSIGNAL,
    "TIMEOUT_MS": RC_OPT_TIMEOUT_MS, "CONNECTTIMEOUT_MS": RC_OPT_CONNECTTIMEOUT_MS,
    "RESOLVE": RC_OPT_RESOLVE, "PIPEWAIT": RC_OPT_PIPEWAIT, "WRITEFUNCTION": RC_OPT_WRITEFUNCTION,
    "HEADERFUNCTION": RC_OPT_HEADERFUNCTION, "POSTFIELDSIZE_LARGE": RC_OPT_POSTFIELDSIZE_LARGE,
    "PREREQFUNCTION": RC_OPT_PREREQFUNCTION, "CLOSESOCKETFUNCTION": RC_OPT_CLOSESOCKETFUNCTION, "M_SOCKETFUNCTION": RC_MOPT_SOCKETFUNCTION,
    "M_PIPELINING": RC_MOPT_PIPELINING, "M_TIMERFUNCTION": RC_MOPT_TIMERFUNCTION,
    "M_MAXCONNECTS": RC_MOPT_MAXCONNECTS, "M_MAX_HOST_CONNECTIONS": RC_MOPT_MAX_HOST_CONNECTIONS,
    "RESPONSE_CODE": RC_INFO_RESPONSE_CODE, "SIZE_DOWNLOAD_T": RC_INFO_SIZE_DOWNLOAD_T,
    "OS_ERRNO": RC_INFO_OS_ERRNO,
    "PIPE_MULTIPLEX": RC_PIPE_MULTIPLEX,
}


def load_libcurl(path):
    """Load libcurl's functions from `path` (once per process); RuntimeError says what failed."""
    cdef bytes p = path.encode() if isinstance(path, str) else bytes(path)
    cdef const char *err = rc_load(p)
    if err != NULL:
        raise RuntimeError(f"cannot use libcurl at {path}: {err.decode(errors='replace')}")
    return rc_api.version().decode()


cdef struct Slot:
    CURL *easy
    long long event
    long long scheduled_ns
    long long sent_ns
    int index            # in the transport's slot table
    int target           # the target whose URL is set, -1 none
    int busy             # submitted, not yet recorded
    int in_multi         # handed to libcurl (else waiting in its target's queue)
    int next_queued      # next slot index in the target's queue, -1 last
    int grpc_status      # from the grpc-status header or trailer, -1 not seen
    curl_slist *headers  # this slot's own header list when requests carry a traceparent
    char *trace_hex      # where in `headers` the traceparent's ids are written
    char error[256]      # libcurl's error text for the transfer (CURLOPT_ERRORBUFFER,
                         # CURL_ERROR_SIZE bytes)
    char grpc_message[FAILURE_TEXT]    # the grpc-message trailer, percent-decoded


cdef enum:
    MAX_FDS = 65536      # socket numbers the transport can watch (RLIMIT_NOFILE is below)


cdef struct Loop:
    int epfd
    long long timer_ns   # libcurl's next timeout, CLOCK_REALTIME ns; -1 none
    unsigned char wanted[MAX_FDS]        # libcurl watches this socket
    unsigned int registered[MAX_FDS]     # epoll events it is registered with, 0 none


# ---- libcurl callbacks: plain C, called inside socket_action ----

cdef size_t discard_body(char *data, size_t size, size_t n, void *user) noexcept nogil:
    # Bodies are counted by libcurl (SIZE_DOWNLOAD_T), not kept.
    return size * n


cdef int stamp_sent(void *user, char *primary_ip, char *local_ip, int primary_port,
                    int local_port) noexcept nogil:
    # The pacer hands requests over PRESEND_LEAD_NS early, so that libcurl's set-up of the
    # transfer (URL, connection lookup) is done by now: hold the request until its due time,
    # then stamp it; libcurl writes it right after this returns.
    cdef Slot *s = <Slot *> user
    cdef long long now = realtime_ns()
    while now < s.scheduled_ns:
        cpu_relax()
        now = realtime_ns()
    s.sent_ns = now
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


cdef signed char curl_error_kind(int code) noexcept nogil:
    # libcurl error numbers (CURLE_*, stable across versions) -> replayer error kinds
    if code == 28:                                   # OPERATION_TIMEDOUT
        return ERR_TIMEOUT
    if code == 5 or code == 6 or code == 7:          # resolve proxy/host, connect
        return ERR_CONNECT
    if code == 18 or code == 52 or code == 55 or code == 56 or code == 92:
        return ERR_RESET                             # partial, nothing, send/recv, h2 stream
    if code == 35 or code == 58 or code == 59 or code == 60 or code == 77:
        return ERR_TLS
    if code == 1 or code == 3 or code == 8 or code == 16:
        return ERR_PROTOCOL                          # protocol, URL, weird reply, h2 framing
    if code == 42:
        return ERR_CANCELLED
    return ERR_OTHER


cdef enum:
    # libcurl's work between taking a transfer and writing it is 5-10 µs here at 10k req/s and
    # 20-30 µs after an idle millisecond (cold caches): handed over this early, a request is
    # held in stamp_sent and leaves at its due time. The pacer caps it at --spin-us.
    PRESEND_LEAD_NS = 40000
    GRPC_PREFIX = 5          # compressed flag + 4-byte length before each gRPC message
    MAX_EVENTS = 64
    TRACE_PREFIX_LEN = 16    # len("traceparent: 00-")


cdef class CurlTransport(Transport):
    """One libcurl multi handle per worker; see the module docstring."""

    cdef CURLM *multi
    cdef Loop loop
    cdef Slot **slots
    cdef int n_slots, cap_slots
    cdef int *free_stack
    cdef int n_free
    # Admission: at most `admit_cap` transfers per target inside libcurl; the rest wait in a
    # FIFO per target. libcurl's own waiting room for a free connection costs a search of the
    # connection pool per waiting transfer every time one finishes, which sinks a pacer that
    # fell behind; queued requests keep their place and are stamped when they really go out.
    cdef int *admitted
    cdef int *queue_head
    cdef int *queue_tail
    cdef int admit_cap
    cdef bint kick           # transfers were admitted since libcurl's timer last ran
    cdef const int[::1] target_of
    cdef char **urls
    cdef int n_urls
    cdef list keep               # bytes objects the C pointers above point into
    cdef curl_slist *base_headers
    cdef curl_slist *resolve
    cdef const char *payload
    cdef long long payload_len
    cdef const char *method
    cdef const char *ca_file     # trusted certificates (replayer.transports.libcurl.tls_trust)
    cdef const char *ca_path
    cdef long timeout_ms
    cdef long http_version
    cdef bint multiplex, insecure, grpc, tracing
    cdef unsigned long long trace_high
    cdef int bytes_out
    cdef epoll_event events[MAX_EVENTS]

    def __cinit__(self):
        self.loop.epfd = -1
        self.loop.timer_ns = -1

    def __init__(self, RecordRing ring, const int[::1] target_of, list urls, list headers,
                 list resolve, payload, method, long timeout_ms, long http_version,
                 bint multiplex, bint insecure, long connections, trace_high=None,
                 bint grpc=False, ca_file=None, ca_path=None):
        """urls: bytes per target index; headers, resolve: bytes lines; payload: bytes or None;
        method: bytes or None (libcurl's default: GET, or POST with a payload); ca_file,
        ca_path: bytes or None, the certificates TLS peers are verified against."""
        Transport.__init__(self, ring)
        cdef bytes b
        self.lead_ns = PRESEND_LEAD_NS
        self.keep = []
        self.target_of = target_of
        self.timeout_ms = timeout_ms
        self.http_version = http_version
        self.multiplex = multiplex
        self.insecure = insecure
        self.grpc = grpc
        self.tracing = trace_high is not None
        self.trace_high = trace_high if trace_high is not None else 0
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
        rc_msetopt_long(self.multi, RC_MOPT_MAXCONNECTS, connections * max(1, len(urls)))
        if multiplex:
            rc_msetopt_long(self.multi, RC_MOPT_PIPELINING, RC_PIPE_MULTIPLEX)
        self.n_urls = len(urls)
        self.urls = <char **> malloc(max(1, self.n_urls) * sizeof(char *))
        self.admitted = <int *> malloc(max(1, self.n_urls) * sizeof(int))
        self.queue_head = <int *> malloc(max(1, self.n_urls) * sizeof(int))
        self.queue_tail = <int *> malloc(max(1, self.n_urls) * sizeof(int))
        if self.urls == NULL or self.admitted == NULL or self.queue_head == NULL or self.queue_tail == NULL:
            raise MemoryError()
        for k in range(self.n_urls):
            self.admitted[k] = 0
            self.queue_head[k] = -1
            self.queue_tail[k] = -1
        # HTTP/1.1: one transfer per connection; HTTP/2: libcurl's default of 100 streams each.
        self.admit_cap = <int> min(connections * (100 if multiplex else 1), 1 << 30)
        for k, b in enumerate(urls):
            self.keep.append(b)
            self.urls[k] = b
        for b in headers:
            self.base_headers = rc_api.slist_append(self.base_headers, b)
        for b in resolve:
            self.resolve = rc_api.slist_append(self.resolve, b)
        if payload is not None:
            self.keep.append(payload)
            self.payload = <bytes> payload
            self.payload_len = len(payload)
            # gRPC: count the message, as grpcio does, not its 5-byte frame prefix.
            self.bytes_out = len(payload) - (GRPC_PREFIX if grpc else 0)
        if method is not None:
            self.keep.append(method)
            self.method = <bytes> method
        if ca_file is not None:
            self.keep.append(ca_file)
            self.ca_file = <bytes> ca_file
        if ca_path is not None:
            self.keep.append(ca_path)
            self.ca_path = <bytes> ca_path

    cdef Slot *new_slot(self) except NULL:
        cdef Slot *s
        cdef curl_slist *h
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
        s.target = -1
        s.busy = 0
        s.in_multi = 0
        s.next_queued = -1
        s.headers = NULL
        s.trace_hex = NULL
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
        if self.payload != NULL:
            rc_setopt_off(e, RC_OPT_POSTFIELDSIZE_LARGE, self.payload_len)
            rc_setopt_ptr(e, RC_OPT_POSTFIELDS, self.payload)
        if self.method != NULL:
            rc_setopt_ptr(e, RC_OPT_CUSTOMREQUEST, self.method)
        if self.tracing:
            # The slot's own copy of the headers, ending with a traceparent whose ids are
            # rewritten in place per request (same length every time).
            h = self.base_headers
            while h != NULL:
                s.headers = rc_api.slist_append(s.headers, h.data)
                h = h.next
            s.headers = rc_api.slist_append(
                s.headers, b"traceparent: 00-00000000000000000000000000000000-0000000000000000-01")
            h = s.headers
            while h.next != NULL:
                h = h.next
            s.trace_hex = h.data + TRACE_PREFIX_LEN
            rc_setopt_ptr(e, RC_OPT_HTTPHEADER, s.headers)
        else:
            rc_setopt_ptr(e, RC_OPT_HTTPHEADER, self.base_headers)
        return s

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns) except -1:
        cdef Slot *s
        cdef int target = self.target_of[event]
        if self.n_free:
            self.n_free -= 1
            s = self.slots[self.free_stack[self.n_free]]
        else:
            s = self.new_slot()
        if s.target != target:
            rc_setopt_ptr(s.easy, RC_OPT_URL, self.urls[target])
            s.target = target
        if self.tracing:
            # W3C trace context, as replayer.transports.traceparent: trace id = run prefix +
            # event, span id = event + 1.
            write_trace_ids(s.trace_hex, self.trace_high, <unsigned long long> event)
        s.event = event
        s.scheduled_ns = scheduled_ns
        # Set by the pre-request stamp when libcurl writes the request; one that never goes
        # (its dial failed, it was cancelled while waiting) has none. The pacer's `sent_ns`
        # (its early hand-over) is not a send time.
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

    cdef int admit_queued(self, int target) except -1:
        cdef int head
        while self.queue_head[target] >= 0 and self.admitted[target] < self.admit_cap:
            head = self.queue_head[target]
            self.queue_head[target] = self.slots[head].next_queued
            if self.queue_head[target] < 0:
                self.queue_tail[target] = -1
            self.admit(self.slots[head])
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
                       self.bytes_out, bytes_in)
        if kind != ERR_OK:
            self.note_failure(kind, s.event, done_ns, why)
        if self.queue_head[s.target] >= 0:
            self.admit_queued(s.target)
        return 0

    cpdef int abort(self) except -1:
        cdef int k
        cdef long long now = realtime_ns()
        for k in range(self.n_urls):       # queued requests are cancelled too, not admitted
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
                free(self.slots[k])
            rc_api.multi_cleanup(self.multi)
            self.multi = NULL
            self.n_slots = 0
            self.n_free = 0
        if self.base_headers != NULL:
            rc_api.slist_free_all(self.base_headers)
            self.base_headers = NULL
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
        free(self.urls)
        free(self.admitted)
        free(self.queue_head)
        free(self.queue_tail)


# gRPC status codes replayer records for failures that have no grpc-status of their own.
cdef enum:
    GRPC_CANCELLED = 1
    GRPC_UNKNOWN = 2
    GRPC_DEADLINE_EXCEEDED = 4
    GRPC_PERMISSION_DENIED = 7
    GRPC_UNIMPLEMENTED = 12
    GRPC_INTERNAL = 13
    GRPC_UNAVAILABLE = 14
    GRPC_UNAUTHENTICATED = 16


cdef extern from *:
    """
    static const char *const replayer_grpc_code_names[17] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    """
    const char *const GRPC_CODE_NAMES "replayer_grpc_code_names" [17]


cdef const char *grpc_failure_text(char *text, int code, const char *message) noexcept nogil:
    # "UNAVAILABLE: the server's grpc-message" (grpc-status N for a code past the known ones)
    cdef size_t at
    if 0 <= code <= 16:
        at = text_append(text, FAILURE_TEXT, 0, GRPC_CODE_NAMES[code])
    else:
        at = text_append_int(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                             "grpc-status "), code)
    if message[0]:
        text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, at, ": "), message)
    return text


cdef signed char grpc_kind(int grpc_status) noexcept nogil:
    if grpc_status == 0:
        return ERR_OK
    if grpc_status == GRPC_DEADLINE_EXCEEDED:
        return ERR_TIMEOUT
    if grpc_status == GRPC_CANCELLED:
        return ERR_CANCELLED
    return ERR_STATUS


cdef long grpc_code_of_failure(signed char kind) noexcept nogil:
    # The code a gRPC client reports for a call that failed below gRPC (as grpcio does).
    if kind == ERR_TIMEOUT:
        return GRPC_DEADLINE_EXCEEDED
    if kind == ERR_CANCELLED:
        return GRPC_CANCELLED
    if kind == ERR_CONNECT or kind == ERR_RESET or kind == ERR_TLS:
        return GRPC_UNAVAILABLE
    if kind == ERR_PROTOCOL:
        return GRPC_INTERNAL
    return GRPC_UNKNOWN


cdef long grpc_code_of_http_status(long http_status) noexcept nogil:
    # gRPC's HTTP-to-gRPC status mapping (doc/http-grpc-status-mapping.md).
    if http_status == 400 or 200 <= http_status < 300:
        return GRPC_INTERNAL
    if http_status == 401:
        return GRPC_UNAUTHENTICATED
    if http_status == 403:
        return GRPC_PERMISSION_DENIED
    if http_status == 404:
        return GRPC_UNIMPLEMENTED
    if http_status == 429 or http_status == 502 or http_status == 503 or http_status == 504:
        return GRPC_UNAVAILABLE
    return GRPC_UNKNOWN

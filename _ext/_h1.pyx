# cython: language_level=3
"""Plain HTTP/1.1 keep-alive requests from C: replayer's own client for http:// targets.

libcurl spends about 7 µs of user time per transfer (request formatting, URL parsing, the
connection-pool search, malloc/free) against the kernel's 7 µs; a replayer request is the same
bytes every time but for its target (and, with -trace, its ids). So each target's request is
built once (replayer.transports.native), each connection writes it with one send() and reads the
answer with a small parser (status line, Content-Length, chunked, Connection: close, bodies
until close); everything else (TLS, HTTP/2, gRPC, proxies) stays with libcurl (replayer._curl).

Connections: at most `connections` per host:port (as libcurl counts them; every target on it
shares them), kept alive; requests beyond them wait in a FIFO per host and go out when a
connection frees up. A keep-alive connection the server closed while idle is replaced and the
request sent again on a fresh one, once, as libcurl does. Body bytes are only counted: the
kernel drops them (MSG_TRUNC), and one wake-up reads at most READ_BUDGET from a connection.

Stamps: `sent_ns` just before the send() of the request's first byte (after the dial, for a
new connection); a request that never got that far (its dial failed or timed out, it was
cancelled while waiting for a connection) has none (0). `done_ns` when epoll reported the
socket whose read completed the answer.

Failures: each one is also noted in the transport's failure log (Transport.note_failure) with
what failed and why ("connect to 127.0.0.1:80: Connection refused", "HTTP 503"), built in a
stack buffer on the failure path.
"""
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove, memchr, memcmp, strerror
from libc.errno cimport errno, EAGAIN, EINTR, EINPROGRESS

from epoll cimport (epoll_event, epoll_create1, epoll_ctl, rc_epoll_wait_ns, EPOLL_CLOEXEC,
                   EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL, EPOLLIN, EPOLLOUT, EPOLLERR,
                   EPOLLHUP)
from clock cimport realtime_ns
from trace_ids cimport write_trace_ids
from failure_text cimport text_append, text_append_int
from replayer._pacer cimport (Transport, RecordRing, ERR_OK, ERR_TIMEOUT, ERR_CONNECT, ERR_RESET,
                     ERR_PROTOCOL, ERR_CANCELLED, ERR_STATUS, FAILURE_TEXT)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    cdef struct sockaddr:
        unsigned short sa_family
    ctypedef long ssize_t
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr *addr, socklen_t length)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
    int setsockopt(int fd, int level, int name, const void *value, socklen_t length)
    int SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, MSG_NOSIGNAL, MSG_TRUNC, SOL_SOCKET, SO_ERROR

cdef extern from "<netinet/in.h>" nogil:
    int IPPROTO_TCP

cdef extern from "<netinet/tcp.h>" nogil:
    int TCP_NODELAY

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *a, const char *b, size_t n)


cdef enum:
    MAX_EVENTS = 64
    MAX_ADDRS = 4            # addresses tried per target (IPv6 and IPv4 of a name, say)
    ADDR_SIZE = 28           # sizeof(struct sockaddr_in6), the largest kind used
    READ_CHUNK = 16384       # initial answer buffer per connection; bodies stream through it
    MAX_HEAD = 262144        # status line + headers; beyond it the answer is a protocol error
    MAX_LINE = 4096          # a chunk-size or trailer line
    READ_BUDGET = 262144     # bytes read from one connection per wake-up
    NAME_TEXT = 128          # a host's "name:port", for failure messages
    ADDR_TEXT = 48           # an address's "[v6 address]:port", for failure messages

# Connection states
cdef enum:
    C_CLOSED = 0
    C_CONNECTING = 1
    C_IDLE = 2
    C_SENDING = 3            # part of the request is written, waiting for room (EPOLLOUT)
    C_RECEIVING = 4

# Where the answer's parser is
cdef enum:
    P_HEAD = 0
    P_LENGTH = 1             # Content-Length bytes left
    P_UNTIL_CLOSE = 2        # no length: the body ends when the server closes
    P_CHUNK_SIZE = 3
    P_CHUNK_DATA = 4
    P_CHUNK_END = 5          # the CRLF after a chunk's data
    P_TRAILER = 6

# parse() and parse_head() results
cdef enum:
    MORE = 0
    DONE = 1
    BAD = -1
    INTERIM = 2              # parse_head: a 1xx answer, the real one follows


cdef struct Target:
    char *request            # the whole request, built once
    long long request_len
    long long trace_at       # offset of the traceparent's hex ids in `request`, -1 none
    int host                 # whose connections carry it


cdef struct Host:
    # One host:port, as libcurl counts them: its addresses, its connections (at most
    # `connections`, shared by every target on it) and the requests waiting for one.
    char addrs[MAX_ADDRS][ADDR_SIZE]
    int addr_lens[MAX_ADDRS]
    int n_addrs
    char name[NAME_TEXT]
    char addr_text[MAX_ADDRS][ADDR_TEXT]
    int preferred            # the address that last took a connection
    int n_conns              # connections open or dialling
    int idle                 # first idle connection (linked by Conn.next_idle), -1 none
    # Requests waiting for a connection, a circular FIFO of (event, scheduled_ns)
    long long *queue
    long long q_head, q_len, q_cap


cdef struct Conn:
    int fd
    unsigned int gen         # bumped on every reuse of the slot: stale epoll events are ignored
    int host
    int target               # of the request it carries (or last carried)
    int own_target           # whose request `own` holds, -1 none
    long long own_cap
    int state
    int addr_index
    int served               # answers read on this connection
    int retried              # this request is already on its second connection
    int index                # in the transport's table, for the lists below
    int next_idle            # next idle connection of the host, or next free slot
    int prev_busy, next_busy # the list of connections carrying a request, oldest deadline first
    int tries                # addresses dialled for this connection
    int registered           # epoll events the socket is registered for
    int dial_errno           # why the last address dialled failed
    const char *why          # what the parser found wrong in a malformed answer
    long long event, scheduled_ns, sent_ns, deadline_ns
    char *out                # the request bytes being written: the target's, or `own` patched
    char *own                # this connection's copy of the request, when ids are written in
    long long out_len, out_off
    char *buf                # the answer, as far as it is not consumed
    long long buf_len, buf_cap
    long long scan           # P_HEAD: where the search for the blank line resumes
    long long got            # bytes received for this request
    int phase
    int status
    int close_after          # the server will close, or the connection cannot be trusted
    long long remaining
    long long bytes_in


cdef class NativeHttpTransport(Transport):
    """HTTP/1.1 over plain TCP, one request per connection at a time; see the module docstring."""

    cdef Target *targets
    cdef int n_targets
    cdef Host *hosts
    cdef int n_hosts
    cdef Conn **conns
    cdef int n_conns, cap_conns
    cdef int free_conn           # first free connection slot (linked by next_idle), -1 none
    cdef int busy_head, busy_tail
    cdef int epfd
    cdef int cap_per_host
    cdef long long timeout_ns
    cdef char timeout_text[48]   # "timeout after 5 s", the start of every timeout's message
    cdef int bytes_out
    cdef bint head_request
    cdef bint tracing
    cdef unsigned long long trace_high
    cdef const int[::1] target_of
    cdef epoll_event events[MAX_EVENTS]

    def __cinit__(self):
        self.epfd = -1
        self.free_conn = -1
        self.busy_head = -1
        self.busy_tail = -1

    def __init__(self, RecordRing ring, const int[::1] target_of, list requests, list host_of,
                 list addresses, long long timeout_ns, long connections, int bytes_out,
                 bint head_request=False, trace_high=None, list trace_offsets=None,
                 list host_names=None):
        """requests: bytes per target; host_of: the host index of each target; addresses: per
        host a list of packed sockaddr bytes (none: every request to it fails to connect);
        trace_offsets: per target the offset of the traceparent's ids in its request (with
        trace_high); host_names: per host its "name:port", for failure messages."""
        Transport.__init__(self, ring)
        cdef int k, a
        cdef bytes b
        cdef Target *t
        cdef Host *h
        self.target_of = target_of
        self.timeout_ns = timeout_ns
        text_append(self.timeout_text, sizeof(self.timeout_text), 0,
                    f"timeout after {timeout_ns / 1e9:g} s".encode())
        self.cap_per_host = <int> max(1, connections)
        self.bytes_out = bytes_out
        self.head_request = head_request
        self.tracing = trace_high is not None
        self.trace_high = trace_high if trace_high is not None else 0
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self.n_targets = len(requests)
        self.n_hosts = len(addresses)
        self.targets = <Target *> calloc(max(1, self.n_targets), sizeof(Target))
        self.hosts = <Host *> calloc(max(1, self.n_hosts), sizeof(Host))
        if self.targets == NULL or self.hosts == NULL:
            raise MemoryError()
        for k in range(self.n_targets):
            t = &self.targets[k]
            b = requests[k]
            t.request_len = len(b)
            t.request = <char *> malloc(max(1, t.request_len))
            if t.request == NULL:
                raise MemoryError()
            memcpy(t.request, <const char *> b, t.request_len)
            t.trace_at = trace_offsets[k] if self.tracing else -1
            t.host = host_of[k]
            if not 0 <= t.host < self.n_hosts:
                raise ValueError(f"target {k}: no host {t.host}")
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

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns) except -1:
        cdef int host = self.targets[self.target_of[event]].host
        cdef Host *h = &self.hosts[host]
        self.inflight += 1
        # The pacer's `sent_ns` (its hand-over time) is not used: a request is stamped only
        # when its first byte is written (send_request).
        if h.q_len:
            self.enqueue(h, event, scheduled_ns)   # behind those already waiting
            self.serve_queue(host)
        else:
            self.dispatch(host, event, scheduled_ns)
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
        cdef Host *h
        cdef long long *q
        cdef Conn *c
        for k in range(self.n_hosts):        # waiting requests are cancelled, never sent
            h = &self.hosts[k]
            while h.q_len:
                q = &h.queue[2 * h.q_head]
                h.q_head = (h.q_head + 1) % h.q_cap
                h.q_len -= 1
                self.inflight -= 1
                self.ring.push(q[0], q[1], 0, now, 0, ERR_CANCELLED, self.bytes_out, 0)
                self.note_failure(ERR_CANCELLED, q[0], now,
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

    cdef int dispatch(self, int host, long long event, long long scheduled_ns) except -1:
        """Send on an idle connection, dial a new one, or wait in the host's queue."""
        cdef Host *h = &self.hosts[host]
        cdef Conn *c
        cdef long long now
        if h.idle >= 0:
            c = self.conns[h.idle]
            h.idle = c.next_idle
            now = realtime_ns()     # one clock read: the deadline's start and the send stamp
            self.assign(c, event, scheduled_ns, 0, now)
            self.send_request(c, now)
        elif h.n_conns < self.cap_per_host:
            c = self.new_conn(host)
            self.assign(c, event, scheduled_ns, 0, realtime_ns())
            self.dial(c, h.preferred)
        else:
            self.enqueue(h, event, scheduled_ns)
        return 0

    cdef int serve_queue(self, int host) except -1:
        # Iterative, never from inside a request's completion: a dial refused at once fails its
        # request and frees the connection, and the loop goes on with the next one.
        cdef Host *h = &self.hosts[host]
        cdef long long event, scheduled_ns
        while h.q_len and (h.idle >= 0 or h.n_conns < self.cap_per_host):
            event = h.queue[2 * h.q_head]
            scheduled_ns = h.queue[2 * h.q_head + 1]
            h.q_head = (h.q_head + 1) % h.q_cap
            h.q_len -= 1
            self.dispatch(host, event, scheduled_ns)
        return 0

    cdef int enqueue(self, Host *h, long long event, long long scheduled_ns) except -1:
        cdef long long *grown
        cdef long long k, n
        if h.q_len == h.q_cap:
            n = max(64, 2 * h.q_cap)
            grown = <long long *> malloc(2 * n * sizeof(long long))
            if grown == NULL:
                raise MemoryError()
            for k in range(h.q_len):       # unwrap the ring into the new array
                memcpy(&grown[2 * k], &h.queue[2 * ((h.q_head + k) % h.q_cap)],
                       2 * sizeof(long long))
            free(h.queue)
            h.queue = grown
            h.q_head = 0
            h.q_cap = n
        k = 2 * ((h.q_head + h.q_len) % h.q_cap)
        h.queue[k] = event
        h.queue[k + 1] = scheduled_ns
        h.q_len += 1
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
            c.own = NULL
            c.own_cap = 0
            c.own_target = -1
            c.index = self.n_conns
            self.conns[self.n_conns] = c
            self.n_conns += 1
        c.gen += 1
        c.fd = -1
        c.host = host
        c.target = -1
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

    cdef void assign(self, Conn *c, long long event, long long scheduled_ns, int retried,
                     long long now) noexcept:
        c.event = event
        c.target = self.target_of[event]
        c.scheduled_ns = scheduled_ns
        # Set by send_request just before the first byte is written; a request that never gets
        # there (its dial failed, timed out or was cancelled) has no sent stamp.
        c.sent_ns = 0
        c.retried = retried
        c.status = 0
        c.bytes_in = 0
        c.got = 0
        # Like libcurl's CURLOPT_TIMEOUT, the clock runs from when the request takes its
        # connection (a dial included), not while it waits for one. The timeout is the same
        # for every request, so appending keeps the list in deadline order.
        c.deadline_ns = now + self.timeout_ns
        c.prev_busy = self.busy_tail
        c.next_busy = -1
        if self.busy_tail >= 0:
            self.conns[self.busy_tail].next_busy = c.index
        else:
            self.busy_head = c.index
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

    cdef int send_request(self, Conn *c, long long now) except -1:
        """Write c's request; `now` (just read) is its sent stamp."""
        cdef Target *t = &self.targets[c.target]
        if t.trace_at >= 0:
            if c.own_target != c.target:
                # The connection's own copy of this target's request, to write ids into.
                if c.own_cap < t.request_len:
                    free(c.own)
                    c.own = <char *> malloc(t.request_len)
                    if c.own == NULL:
                        c.own_cap = 0
                        raise MemoryError()
                    c.own_cap = t.request_len
                memcpy(c.own, t.request, t.request_len)
                c.own_target = c.target
            # W3C trace context, as replayer.transports.traceparent: trace id = run prefix +
            # event, span id = event + 1; same length every time, written in place.
            write_trace_ids(c.own + t.trace_at, self.trace_high, <unsigned long long> c.event)
            c.out = c.own
        else:
            c.out = t.request
        c.out_len = t.request_len
        c.out_off = 0
        c.buf_len = 0
        c.scan = 0
        c.phase = P_HEAD
        c.close_after = 0
        c.remaining = 0
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
        cdef long long room, want
        cdef long long budget = READ_BUDGET
        cdef int r
        cdef char text[FAILURE_TEXT]
        while True:
            if (c.phase == P_LENGTH or c.phase == P_UNTIL_CLOSE) and c.buf_len == 0:
                # Body bytes are only counted: the kernel drops them, nothing is copied.
                want = budget
                if c.phase == P_LENGTH and c.remaining < want:
                    want = c.remaining
                n = recv(c.fd, NULL, want, MSG_TRUNC)
                if n > 0:
                    c.got += n
                    c.bytes_in += n
                    budget -= n
                    if c.phase == P_LENGTH:
                        c.remaining -= n
                        if c.remaining == 0:
                            return self.complete(c, now)
                    if n < want or budget <= 0:
                        return 0
                    continue
            else:
                room = c.buf_cap - c.buf_len
                if room == 0:
                    # Only a head (or a chunk line) still being read fills the buffer.
                    if c.buf_cap >= MAX_HEAD:
                        c.close_after = 1
                        return self.fail(c, ERR_PROTOCOL, now,
                                         "malformed answer: head or chunk line over 256 KiB")
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
                    r = self.parse(c)
                    if r == DONE:
                        return self.complete(c, now)
                    if r == BAD:
                        text_append(text, FAILURE_TEXT, text_append(text, FAILURE_TEXT, 0,
                                    "malformed answer: "), c.why)
                        return self.fail(c, ERR_PROTOCOL, now, text)
                    if n < room or budget <= 0:
                        return 0             # drained (or enough for now): epoll says when more
                    continue
            if n == 0:
                if c.phase == P_UNTIL_CLOSE:
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

    # ---- the answer's parser ----

    cdef int parse(self, Conn *c) except -2:
        """Consume what is in c.buf; DONE when the answer is complete, BAD if it is not HTTP."""
        cdef long long pos = 0, take, end, size
        cdef const char *nl
        cdef int r
        cdef char ch
        while True:
            if c.phase == P_HEAD:
                end = blank_line_end(c.buf, c.scan, c.buf_len)
                if end < 0:
                    c.scan = c.buf_len - 3 if c.buf_len > 3 else 0
                    return MORE
                r = self.parse_head(c, end)
                if r == BAD:
                    return BAD                     # c.why set by parse_head
                pos = end
                if r == INTERIM:
                    # 100 Continue and the like: the real answer follows.
                    memmove(c.buf, c.buf + pos, c.buf_len - pos)
                    c.buf_len -= pos
                    c.scan = 0
                    pos = 0
                    continue
                if r == DONE:
                    return self.finished(c, pos)
            elif c.phase == P_LENGTH or c.phase == P_CHUNK_DATA:
                take = c.buf_len - pos
                if take > c.remaining:
                    take = c.remaining
                c.bytes_in += take
                c.remaining -= take
                pos += take
                if c.remaining:
                    break
                if c.phase == P_LENGTH:
                    return self.finished(c, pos)
                c.phase = P_CHUNK_END
            elif c.phase == P_UNTIL_CLOSE:
                c.bytes_in += c.buf_len - pos
                pos = c.buf_len
                break
            else:
                # A line: a chunk's size, the CRLF after its data, or a trailer.
                nl = <const char *> memchr(c.buf + pos, c'\n', c.buf_len - pos)
                if nl == NULL:
                    if c.buf_len - pos > MAX_LINE:
                        c.why = "chunk or trailer line over 4096 bytes"
                        return BAD
                    break
                end = nl - c.buf                   # the '\n'
                if c.phase == P_CHUNK_SIZE:
                    size = 0
                    take = pos
                    while take < end:
                        ch = c.buf[take]
                        if c'0' <= ch <= c'9':
                            size = size * 16 + (ch - c'0')
                        elif c'a' <= ch <= c'f':
                            size = size * 16 + (ch - c'a' + 10)
                        elif c'A' <= ch <= c'F':
                            size = size * 16 + (ch - c'A' + 10)
                        else:
                            break                  # ';' extensions, '\r'
                        if size > (1LL << 56):
                            c.why = "chunk size too large"
                            return BAD
                        take += 1
                    if take == pos:
                        c.why = "chunk size not hexadecimal"
                        return BAD
                    pos = end + 1
                    if size == 0:
                        c.phase = P_TRAILER
                    else:
                        c.remaining = size
                        c.phase = P_CHUNK_DATA
                elif c.phase == P_CHUNK_END:
                    if end - pos > 1 or (end - pos == 1 and c.buf[pos] != c'\r'):
                        c.why = "chunk longer than its size"
                        return BAD
                    pos = end + 1
                    c.phase = P_CHUNK_SIZE
                else:                              # P_TRAILER: up to an empty line
                    take = end - pos
                    pos = end + 1
                    if take == 0 or (take == 1 and c.buf[end - 1] == c'\r'):
                        return self.finished(c, pos)
        if pos:
            memmove(c.buf, c.buf + pos, c.buf_len - pos)
            c.buf_len -= pos
        return MORE

    cdef int finished(self, Conn *c, long long pos) noexcept:
        if pos < c.buf_len:
            c.close_after = 1      # bytes past the answer: this connection cannot be trusted
        c.buf_len = 0
        return DONE

    cdef int parse_head(self, Conn *c, long long end) noexcept:
        """The status line and the headers that frame the body, in c.buf[:end]."""
        cdef const char *b = c.buf
        cdef long long start, stop, v
        cdef const char *nl
        cdef bint http10, chunked = False, has_length = False, keep_alive = False
        cdef long long length = 0
        if end < 12 or memcmp(b, b"HTTP/1.", 7) != 0 or b[8] != c' ':
            c.why = "not an HTTP/1.x status line"
            return BAD
        if not (c'1' <= b[9] <= c'5' and c'0' <= b[10] <= c'9' and c'0' <= b[11] <= c'9'):
            c.why = "status not three digits 100-599"
            return BAD
        c.status = (b[9] - c'0') * 100 + (b[10] - c'0') * 10 + (b[11] - c'0')
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
                c.why = "bad Content-Length"
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
                    c.close_after = 1
                if value_has(b, start + 11, stop, b"keep-alive", 10):
                    keep_alive = True
            start = nl - b + 1
        if http10 and not keep_alive:
            c.close_after = 1
        if c.status < 200:
            if c.status == 101:
                c.why = "101 Switching Protocols (no protocol switches here)"
                return BAD
            return INTERIM
        if self.head_request or c.status == 204 or c.status == 304 or \
                (has_length and length == 0 and not chunked):
            return DONE
        if chunked:
            c.phase = P_CHUNK_SIZE
        elif has_length:
            c.phase = P_LENGTH
            c.remaining = length
        else:
            c.phase = P_UNTIL_CLOSE
            c.close_after = 1
        return MORE

    # ---- endings ----

    cdef int record(self, Conn *c, signed char kind, long long done_ns,
                    const char *message) except -1:
        """The request's ring row; a failure is also noted, under `message`, in the log."""
        self.unlink_busy(c)
        if c.sent_ns and done_ns < c.sent_ns:
            done_ns = c.sent_ns
        self.inflight -= 1
        self.ring.push(c.event, c.scheduled_ns, c.sent_ns, done_ns, c.status, kind,
                       self.bytes_out, c.bytes_in)
        if kind != ERR_OK:
            self.note_failure(kind, c.event, done_ns, message)
        c.event = -1
        return 0

    cdef int complete(self, Conn *c, long long now) except -1:
        cdef Host *h
        cdef char text[16]
        if c.status < 400:
            self.record(c, ERR_OK, now, NULL)
        else:
            text_append_int(text, sizeof(text), text_append(text, sizeof(text), 0, "HTTP "),
                            c.status)
            self.record(c, ERR_STATUS, now, text)
        c.served += 1
        if c.close_after or c.out_off < c.out_len:    # answered before the body was all sent
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
        cdef int host = c.host
        cdef Conn *fresh
        if c.served == 0 or c.got != 0 or c.retried:
            return self.fail(c, kind, now, message)
        self.unlink_busy(c)
        self.close_conn(c)
        fresh = self.new_conn(host)
        self.assign(fresh, event, scheduled_ns, 1, realtime_ns())
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
                self.serve_queue(host)
        while self.busy_head >= 0 and self.conns[self.busy_head].deadline_ns <= arrived:
            c = self.conns[self.busy_head]
            host = c.host
            c.close_after = 1
            self.timed_out(c, arrived)
            if self.hosts[host].q_len:
                self.serve_queue(host)
        return 0

    cdef int timed_out(self, Conn *c, long long now) except -1:
        # "timeout after 5 s waiting for the answer", or connecting to, sending, reading it
        cdef char text[FAILURE_TEXT]
        cdef size_t at = text_append(text, FAILURE_TEXT, 0, self.timeout_text)
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
            free(self.conns[k].own)
            free(self.conns[k])
        self.n_conns = 0
        self.free_conn = -1
        self.busy_head = self.busy_tail = -1
        free(self.conns)
        self.conns = NULL
        self.cap_conns = 0
        if self.targets != NULL:
            for k in range(self.n_targets):
                free(self.targets[k].request)
            free(self.targets)
            self.targets = NULL
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


def address_text(bytes packed):
    """'127.0.0.1:80' or '[::1]:80' of a packed sockaddr_in / sockaddr_in6."""
    import socket
    import struct
    family = struct.unpack("=H", packed[:2])[0]
    if family == socket.AF_INET and len(packed) >= 8:
        return f"{socket.inet_ntop(socket.AF_INET, packed[4:8])}:{struct.unpack('!H', packed[2:4])[0]}"
    if family == socket.AF_INET6 and len(packed) >= 24:
        return f"[{socket.inet_ntop(socket.AF_INET6, packed[8:24])}]:{struct.unpack('!H', packed[2:4])[0]}"
    return f"an address of family {family}"


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

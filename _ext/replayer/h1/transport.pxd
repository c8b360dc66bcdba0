# replayer's own HTTP/1.1 client: its connections and the transport that drives them.

cdef enum:
    MAX_EVENTS = 64
    READ_CHUNK = 16384       # initial answer buffer per connection; bodies stream through it
    READ_BUDGET = 262144     # bytes read from one connection per wake-up
    BRIEF_REQUEST = 65536    # a request up to this size is written in a brief submit

# Connection states
cdef enum:
    C_CLOSED = 0
    C_CONNECTING = 1
    C_IDLE = 2
    C_SENDING = 3            # part of the request is written, waiting for room (EPOLLOUT)
    C_RECEIVING = 4


ctypedef struct Conn:
    int fd
    unsigned int gen         # bumped on every reuse of the slot: stale epoll events are ignored
    int host
    int pair                 # the template of the request it carries (ContentTable)
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
    signed char cause        # of its request (CAUSE_*): the pacer's, or that it waited here
    long long event, scheduled_ns, sent_ns, deadline_ns
    long long timeout_ns     # its request's: the run's, or its class's
    char *out                # the request bytes being written: the template's, or `own` filled
    ContentBuffer own        # this connection's copy of the request, when fields are filled in
    long long out_len, out_off
    char *buf                # the answer, as far as it is not consumed
    long long buf_len, buf_cap
    long long got            # bytes received for this request
    Answer answer            # the parser's state, the status and body bytes read


@cython.final
cdef class NativeHttpTransport(Transport):
    cdef ContentTable content    # each request's template and class
    cdef int *host_of            # per target
    cdef int n_targets
    # A request's content filled before its due time (prepare), taken by the connection that
    # sends it (swapped with its own copy).
    cdef ContentBuffer stage
    cdef long long stage_event
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
    cdef epoll_event events[MAX_EVENTS]

    # submit, flush, poll and abort: Transport's (replayer._pacer)
    cdef int dispatch(self, int host, long long event, long long scheduled_ns,
                      signed char cause, long long handed_ns) except -1
    cdef int serve_queue(self, int host, long long now) except -1
    cdef Conn *new_conn(self, int host) except NULL
    cdef void assign(self, Conn *c, long long event, long long scheduled_ns, signed char cause,
                     int retried, long long now) noexcept
    cdef void unlink_busy(self, Conn *c) noexcept
    cdef int watch(self, Conn *c, unsigned int events) except -1
    cdef int dial(self, Conn *c, int addr_index) except -1
    cdef int dial_failed(self, Conn *c) except -1
    cdef int redial(self, Conn *c, int err) except -1
    cdef int connected(self, Conn *c) except -1
    cdef int fill_early(self, ContentBuffer *b, long long event, long long scheduled_ns,
                        int pair) except -1
    cdef int send_request(self, Conn *c, long long now) except -1
    cdef int write_out(self, Conn *c) except -1
    cdef int on_event(self, Conn *c, unsigned int ev, long long now) except -1
    cdef int read_answer(self, Conn *c, long long now) except -1
    cdef int record(self, Conn *c, signed char kind, long long done_ns,
                    const char *message) except -1
    cdef int complete(self, Conn *c, long long now) except -1
    cdef int fail(self, Conn *c, signed char kind, long long now,
                  const char *message) except -1
    cdef int broken(self, Conn *c, signed char kind, long long now,
                    const char *message) except -1
    cdef int close_conn(self, Conn *c) except -1
    cdef int pump(self, long long timeout_ns) except -1
    cdef int timed_out(self, Conn *c, long long now) except -1
    cdef void release(self) noexcept

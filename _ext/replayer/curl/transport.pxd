# The libcurl transport: one multi handle per worker, easy handles pooled in C slots.

cdef enum:
    # libcurl's work between taking a transfer and writing it is 5-10 µs here at 10k req/s and
    # 20-30 µs after an idle millisecond (cold caches): handed over this early, a request is
    # held in stamp_sent and leaves at its due time. The pacer caps it at --spin-us.
    PRESEND_LEAD_NS = 40000
    GRPC_PREFIX = 5          # compressed flag + 4-byte length before each gRPC message
    MAX_EVENTS = 64
    TRACE_PREFIX_LEN = 16    # len("traceparent: 00-")


@cython.final
cdef class CurlTransport(Transport):
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

    # submit, flush, poll and abort: Transport's (replayer._pacer)
    cdef Slot *new_slot(self) except NULL
    cdef int admit(self, Slot *s) except -1
    cdef int admit_queued(self, int target, long long now) except -1
    cdef int start_admitted(self) except -1
    cdef int pump(self, long long timeout_ns) except -1
    cdef int collect(self, long long done_ns) except -1
    cdef int finish(self, Slot *s, signed char kind, long status, long long bytes_in,
                    long long done_ns, const char *why) except -1
    cdef void release(self) noexcept

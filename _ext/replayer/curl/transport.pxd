# The libcurl transport: one multi handle per worker, easy handles pooled in C slots.

cdef enum:
    # libcurl's work between taking a transfer and writing it is 5-10 µs here at 10k req/s and
    # 20-30 µs after an idle millisecond (cold caches): handed over this early, a request is
    # held in stamp_sent and leaves at its due time. The pacer caps it at --spin-us.
    PRESEND_LEAD_NS = 40000
    GRPC_PREFIX = 5          # compressed flag + 4-byte length before each gRPC message
    MAX_EVENTS = 64
    # A template's parts (replayer.transports.libcurl): the body (gRPC: framed), the URL, then
    # one per header line.
    PART_BODY = 0
    PART_URL = 1
    PART_HEADERS = 2


# How a slot is set up for a (target, payload) pair, beside its template's parts.
ctypedef struct PairSetup:
    int target
    const char *method       # CURLOPT_CUSTOMREQUEST, NULL: libcurl's (GET, POST with a body)
    bint head                # HEAD: CURLOPT_NOBODY, no body awaited
    bint has_body            # POSTFIELDS: the template's body part (or a slot's copy of it)
    bint body_fields         # the body has fields: each slot sends its own copy
    bint header_fields       # header lines have fields: each slot its own copy of the list
    curl_slist *headers      # without header fields: the list every slot of the pair shares


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
    cdef int n_targets
    # Each request's template (body, URL, header lines; fields filled per request) and class
    # (its timeout), and how a slot is set up for each pair.
    cdef ContentTable content
    cdef PairSetup *pairs
    cdef int n_pairs
    cdef curl_slist **header_lists   # the distinct shared header lists of the pairs
    cdef int n_header_lists
    # A slot taken and filled before its request's due time (prepare), for `staged_event`.
    cdef Slot *staged
    cdef long long staged_event
    cdef list keep               # bytes objects the C pointers above point into
    cdef curl_slist *resolve
    cdef const char *ca_file     # trusted certificates (replayer.transports.libcurl.tls_trust)
    cdef const char *ca_path
    cdef long timeout_ms         # the run's
    cdef long http_version
    cdef bint multiplex, insecure, grpc
    cdef epoll_event events[MAX_EVENTS]

    # prepare, submit, flush, poll and abort: Transport's (replayer._pacer)
    cdef Slot *new_slot(self) except NULL
    cdef Slot *take_slot(self) except NULL
    cdef int use_pair(self, Slot *s, int pair) except -1
    cdef void fill_early(self, Slot *s, long long event, long long scheduled_ns) noexcept
    cdef int admit(self, Slot *s) except -1
    cdef int admit_queued(self, int target, long long now) except -1
    cdef int start_admitted(self) except -1
    cdef int pump(self, long long timeout_ns) except -1
    cdef int collect(self, long long done_ns) except -1
    cdef int finish(self, Slot *s, signed char kind, long status, long long bytes_in,
                    long long done_ns, const char *why) except -1
    cdef void release(self) noexcept

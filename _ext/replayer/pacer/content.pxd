# Per-request content: each request's template (its target's request, or a payload's, with
# fields filled at send time) and its class (SLO, timeout). One table per worker, shared by
# whichever transport sends; replayer.schedules.content describes the fields in Python.

# A field's kind and encoding: the numbers of replayer.schedules.content KIND_CODES and
# ENCODING_CODES.
cpdef enum:
    FILL_SENT_NS = 0
    FILL_SCHEDULED_NS = 1
    FILL_DEADLINE_NS = 2         # the send time + the request's class's SLO
    FILL_EVENT = 3
    FILL_RANDOM_BYTES = 4
    FILL_RANDOM_F32 = 5
    FILL_TRACE_IDS = 6           # a traceparent's ids (-trace): run prefix + event, event + 1

cpdef enum:
    ENC_VARINT = 0
    ENC_DECIMAL = 1              # right-aligned after spaces
    ENC_DIGITS = 2               # right-aligned after zeros
    ENC_RAW = 3

# Template flags
cpdef enum:
    TEMPLATE_HEAD = 1            # a HEAD request: its answer has no body

ctypedef struct Fill:
    int kind
    int encoding
    int part                     # which of the template's parts it is in
    long long at                 # byte offset in that part
    long long width              # bytes of a value; values of a random kind

# What a request carries, in parts (a transport's choice: the whole HTTP/1.1 request, or a
# body, a URL and header lines for libcurl), and where its fields go.
ctypedef struct Template:
    char **parts
    long long *part_lens
    int n_parts
    Fill *fills
    int n_fills
    bint has_early               # fields filled before the due time (ids, random values)
    bint has_late                # fields that must be the send time (sent_ns, deadline)
    long long bytes_out          # what a record counts as sent: the body (a gRPC message)
    int flags                    # TEMPLATE_*

# The values a request's fields take.
ctypedef struct FillValues:
    long long event
    long long scheduled_ns
    long long sent_ns
    long long slo_ns
    unsigned long long seed
    unsigned long long trace_high

# A request's own copy of a template part, to fill in: reused while it holds the same pair
# (every field overwrites all of its bytes, so a copy filled once stays a valid base).
ctypedef struct ContentBuffer:
    char *data
    long long cap
    int pair                     # whose part it holds, -1 none
    int part

cdef void fill_part(const Template *t, int part, char *buf, const FillValues *v,
                    bint late) noexcept nogil
cdef int buffer_load(ContentBuffer *b, const Template *t, int pair, int part) except -1
cdef void buffer_swap(ContentBuffer *a, ContentBuffer *b) noexcept nogil
cdef void buffer_free(ContentBuffer *b) noexcept nogil


@cython.final
cdef class ContentTable:
    # Each event's target, payload (-1: its target's default) and class (-1: none).
    cdef const int[::1] target_of
    cdef const int[::1] payload_of
    cdef const short[::1] cls_of
    cdef bint has_payloads, has_classes
    cdef readonly int n_targets, n_payloads, n_classes
    # The template of each (target, payload) pair that the worker sends, by pair_index.
    cdef int *pair_of            # [target * (n_payloads + 1) + payload + 1] -> pair, -1 none
    cdef Template *templates
    cdef readonly int n_pairs
    cdef readonly long long largest_part     # bytes of the largest template part
    cdef long long *slo_ns       # per class, 0 none
    cdef long long *timeout_ns   # per class, 0: the run's
    cdef readonly unsigned long long seed
    cdef readonly bint tracing
    cdef unsigned long long trace_high

    # Closed-loop users (users.pyx): the columns hold one row per user, describing its request
    # in flight; event e's row is e mod period (0: the columns are the schedule's, row e).
    cdef readonly long long period

    cdef inline long long row(self, long long event) noexcept nogil:
        return event % self.period if self.period else event

    cdef inline int target(self, long long event) noexcept nogil:
        return self.target_of[self.row(event)]

    cdef inline int pair(self, long long event) noexcept nogil:
        cdef long long r = self.row(event)
        cdef int payload = self.payload_of[r] if self.has_payloads else -1
        return self.pair_of[self.target_of[r] * (self.n_payloads + 1) + payload + 1]

    cdef inline int cls(self, long long event) noexcept nogil:
        return self.cls_of[self.row(event)] if self.has_classes else -1

    cdef inline long long timeout(self, long long event, long long default_ns) noexcept nogil:
        cdef int k = self.cls(event)
        if 0 <= k < self.n_classes and self.timeout_ns[k] > 0:
            return self.timeout_ns[k]
        return default_ns

    cdef inline const Template *template(self, int pair) noexcept nogil:
        return &self.templates[pair]

    cdef void values(self, FillValues *v, long long event, long long scheduled_ns) noexcept nogil
    cdef void release(self) noexcept

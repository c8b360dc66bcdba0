# Declarations shared with the other Cython modules of replayer (the libcurl transport):
# the record row, the ring that carries rows to the parent, and the transport seams.

ctypedef struct RecordRow:
    long long event
    long long scheduled_ns
    long long sent_ns        # 0: never sent
    long long done_ns        # 0: never completed
    long long bytes_in
    int bytes_out
    int status               # HTTP status or gRPC code
    signed char error        # replayer.records.ErrorKind
    char pad[7]

ctypedef struct RingHeader:
    long long write_idx      # advanced by the worker (release), read by the parent
    long long read_idx       # advanced by the parent (release), read by the worker
    long long capacity
    long long pad[5]


# Error kinds, the one list of them; replayer.records names them for Python.
cdef enum:
    ERR_OK = 0
    ERR_TIMEOUT = 1
    ERR_CONNECT = 2
    ERR_RESET = 3
    ERR_TLS = 4
    ERR_PROTOCOL = 5
    ERR_CANCELLED = 6
    ERR_OVERLOAD = 7
    ERR_NOT_SENT = 8
    ERR_STATUS = 9
    ERR_OTHER = 10


# The failure log each transport keeps (Transport.note_failure): per error kind, the first
# FAILURE_MESSAGES distinct messages with their counts; failures whose message does not fit
# among them are only counted (`other`). Fixed size: a failure costs at most a bounded copy.
cdef enum:
    N_ERROR_KINDS = 11
    FAILURE_MESSAGES = 8
    FAILURE_TEXT = 200       # bytes kept of a message, its terminating NUL included

ctypedef struct FailureMessage:
    long long count
    char text[FAILURE_TEXT]

ctypedef struct FailureKindLog:
    long long count
    long long first_event
    long long first_ns
    long long other
    int n_messages
    FailureMessage messages[FAILURE_MESSAGES]


cdef class RecordRing:
    cdef RingHeader *header
    cdef RecordRow *rows
    cdef object buffer       # keeps the shared mapping alive
    cdef long long _full_waits

    cdef int push(self, long long event, long long scheduled_ns, long long sent_ns,
                  long long done_ns, int status, signed char error,
                  int bytes_out, long long bytes_in) except -1 nogil


cdef class Transport:
    cdef public RecordRing ring
    cdef public long long inflight
    # How long before its due time the pacer hands a request over. A transport with a lead
    # does its set-up work early and holds the request back until the due time itself.
    cdef public long long lead_ns
    cdef FailureKindLog failures[N_ERROR_KINDS]

    cdef void note_failure(self, signed char kind, long long event, long long now,
                           const char *message) noexcept nogil
    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns) except -1
    cpdef int flush(self) except -1
    cpdef int poll(self, long long timeout_ns) except -1
    cpdef int abort(self) except -1

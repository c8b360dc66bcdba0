# The base of every transport (Python or Cython): the seams the pacer calls, and the failure log
# each one keeps.

# The failure log (Transport.note_failure): per error kind, the first FAILURE_MESSAGES distinct
# messages with their counts; failures whose message does not fit among them are only counted
# (`other`). Fixed size: a failure costs at most a bounded copy.
cdef enum:
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


cdef class Transport:
    cdef public RecordRing ring
    cdef public long long inflight
    # How long before its due time the pacer hands a request over. A transport with a lead
    # does its set-up work early and holds the request back until the due time itself.
    cdef public long long lead_ns
    # submit is a short piece of C work (no Python, no waiting, no more than a send): the pacer
    # takes a gap longer than its stall threshold across it as its CPU taken away (a stall),
    # as a task woken by the send preempting it.
    cdef public bint brief_submit
    # The transport fills part of a request's content before its due time (prepare): the
    # pacer calls prepare once per request, before it waits for it.
    cdef public bint prepares
    cdef FailureKindLog failures[N_ERROR_KINDS]

    cdef void note_failure(self, signed char kind, long long event, long long now,
                           const char *message) noexcept nogil
    cpdef int prepare(self, long long event, long long scheduled_ns) except -1
    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns,
                     signed char cause) except -1
    cpdef int flush(self) except -1
    cpdef int poll(self, long long timeout_ns) except -1
    cpdef int abort(self) except -1

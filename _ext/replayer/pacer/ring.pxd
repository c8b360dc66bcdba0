# The record row and the ring that carries rows from a worker to the parent. Transports in the
# other modules (replayer._h1, replayer._curl) push rows without the GIL.

# Why a request was sent when it was, as far as its sender knows: every row carries one (the
# pacer's, or the transport's when it held the request back for a connection). Exported to
# Python under the same names (cpdef); ring.pyx names them (LATE_CAUSES).
cpdef enum:
    CAUSE_NONE = 0           # nothing held it back (a late one of these is "unknown")
    CAUSE_STALL = 1          # a CPU stall (or a late wake-up) covered its hand-over time
    CAUSE_CONNECTION = 2     # it waited for a free connection to its host
    CAUSE_INFLIGHT = 3       # the pacer polled at the in-flight bound before submitting it
    CAUSE_BURST = 4          # the pacer reached it after its hand-over time, busy with others
    N_LATE_CAUSES = 5


cdef inline signed char waited_cause(signed char cause, long long scheduled_ns,
                                     long long handed_ns, long long now) noexcept nogil:
    # A transport's request that waited for a free connection from its hand-over (handed_ns)
    # until now: that wait is why it leaves when it does, unless the pacer handed it over
    # later (past its due time) than the wait lasted and knew why.
    if cause == CAUSE_NONE or now - handed_ns > handed_ns - scheduled_ns:
        return CAUSE_CONNECTION
    return cause

# One scheduled request's record. replayer.analysis.records.ROW_DTYPE is how numpy reads it;
# tests/unit/test_record_layout.py checks every field's offset and size (RECORD_ROW_FIELDS).
ctypedef struct RecordRow:
    long long event
    long long scheduled_ns
    long long sent_ns        # 0: never sent
    long long done_ns        # 0: never completed
    long long bytes_in
    int bytes_out
    int status               # HTTP status or gRPC code
    signed char error        # ERR_* (errors.pxd)
    signed char cause        # CAUSE_* above
    char pad[6]

ctypedef struct RingHeader:
    long long write_idx      # advanced by the worker (release), read by the parent
    long long read_idx       # advanced by the parent (release), read by the worker
    long long capacity
    long long pad[5]


@cython.final
cdef class RecordRing:
    cdef RingHeader *header
    cdef RecordRow *rows
    cdef object buffer       # keeps the shared mapping alive
    cdef long long _full_waits

    cdef int push(self, long long event, long long scheduled_ns, long long sent_ns,
                  long long done_ns, int status, signed char error, signed char cause,
                  int bytes_out, long long bytes_in) except -1 nogil

# The record row and the ring that carries rows from a worker to the parent. Transports in the
# other modules (replayer._h1, replayer._curl) push rows without the GIL.

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
    char pad[7]

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
                  long long done_ns, int status, signed char error,
                  int bytes_out, long long bytes_in) except -1 nogil

# The record ring: single producer (the worker), single consumer (the parent), in shared memory.

# The late causes' names, by value (CAUSE_* in ring.pxd); tests/unit/test_record_layout.py
# checks every CAUSE_* against them.
LATE_CAUSES = ("none", "stall", "connection", "inflight", "burst")
assert len(LATE_CAUSES) == N_LATE_CAUSES

RECORD_ROW_SIZE = sizeof(RecordRow)
RING_HEADER_SIZE = sizeof(RingHeader)


cdef RecordRow _layout
cdef char *_base = <char *> &_layout
# Every field of RecordRow: name -> (offset, size), for the test against ROW_DTYPE.
RECORD_ROW_FIELDS = {
    "event": (<char *> &_layout.event - _base, sizeof(_layout.event)),
    "scheduled_ns": (<char *> &_layout.scheduled_ns - _base, sizeof(_layout.scheduled_ns)),
    "sent_ns": (<char *> &_layout.sent_ns - _base, sizeof(_layout.sent_ns)),
    "done_ns": (<char *> &_layout.done_ns - _base, sizeof(_layout.done_ns)),
    "bytes_in": (<char *> &_layout.bytes_in - _base, sizeof(_layout.bytes_in)),
    "bytes_out": (<char *> &_layout.bytes_out - _base, sizeof(_layout.bytes_out)),
    "status": (<char *> &_layout.status - _base, sizeof(_layout.status)),
    "error": (<char *> &_layout.error - _base, sizeof(_layout.error)),
    "cause": (<char *> &_layout.cause - _base, sizeof(_layout.cause)),
    "pad": (<char *> &_layout.pad - _base, sizeof(_layout.pad)),
}


@cython.final
cdef class RecordRing:
    """Single-producer (worker), single-consumer (parent) ring of RecordRow in shared memory.

    Every scheduled request ends as exactly one row. When the parent falls behind, push waits
    rather than drop: losing a record is worse than a late one.
    """

    def __cinit__(self, buffer, bint initialise=False, long long capacity=0):
        cdef unsigned char[::1] view = buffer
        self.buffer = buffer
        self.header = <RingHeader *> &view[0]
        self.rows = <RecordRow *> (&view[0] + sizeof(RingHeader))
        if initialise:
            if capacity <= 0 or sizeof(RingHeader) + capacity * sizeof(RecordRow) > view.shape[0]:
                raise ValueError("ring buffer too small for its capacity")
            memset(self.header, 0, sizeof(RingHeader))
            self.header.capacity = capacity

    @staticmethod
    def nbytes(long long capacity):
        return sizeof(RingHeader) + capacity * sizeof(RecordRow)

    @property
    def capacity(self):
        return self.header.capacity

    @property
    def write_idx(self):
        return load_acquire(&self.header.write_idx)

    @property
    def read_idx(self):
        return load_acquire(&self.header.read_idx)

    @property
    def full_waits(self):
        return self._full_waits

    def advance_read(self, long long new_read):
        """Parent: rows before new_read are copied out and may be overwritten."""
        store_release(&self.header.read_idx, new_read)

    cdef int push(self, long long event, long long scheduled_ns, long long sent_ns,
                  long long done_ns, int status, signed char error, signed char cause,
                  int bytes_out, long long bytes_in) except -1 nogil:
        cdef long long w = self.header.write_idx
        cdef long long cap = self.header.capacity
        cdef RecordRow *row
        cdef PyThreadState *saved = NULL
        if w - load_acquire(&self.header.read_idx) >= cap:
            self._full_waits += 1
            # Rare path: release the GIL if we hold it, so no other thread of this process
            # (a gRPC callback, a test's reader) is blocked while we wait for the reader.
            if PyGILState_Check():
                saved = PyEval_SaveThread()
            while w - load_acquire(&self.header.read_idx) >= cap:
                sleep_until_realtime_ns(realtime_ns() + 200000)
            if saved != NULL:
                PyEval_RestoreThread(saved)
        row = &self.rows[w % cap]
        row.event = event
        row.scheduled_ns = scheduled_ns
        row.sent_ns = sent_ns
        row.done_ns = done_ns
        row.bytes_in = bytes_in
        row.bytes_out = bytes_out
        row.status = status
        row.error = error
        row.cause = cause
        store_release(&self.header.write_idx, w + 1)
        return 0

    def record(self, long long event, long long scheduled_ns, long long sent_ns,
               long long done_ns, int status, int error, int bytes_out=0, long long bytes_in=0,
               int cause=CAUSE_NONE):
        """Python transports call this once per completed request."""
        self.push(event, scheduled_ns, sent_ns, done_ns, status, <signed char>error,
                  <signed char>cause, bytes_out, bytes_in)

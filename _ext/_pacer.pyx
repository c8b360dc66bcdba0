# cython: language_level=3
"""Pacer, record ring and transport base: the only code on the send path.

Waiting and stamping run without the GIL and without Python objects; the GIL is taken at
one seam, Transport.submit/flush/poll, where a Python transport (pycurl, grpcio) needs it.
`cython -a _ext/_pacer.pyx` shows that seam as the only yellow in Pacer.run.

Each transport also keeps a failure log (Transport.note_failure, a fixed table in C): per
error kind, the first failure and its most common messages, written out by the worker at its
end (replayer.analysis.failures).
"""
from libc.string cimport memset, strncmp
from cpython.pystate cimport PyThreadState

cdef extern from "Python.h":
    int PyGILState_Check() nogil
    PyThreadState *PyEval_SaveThread() nogil
    void PyEval_RestoreThread(PyThreadState *) nogil
from clock cimport (realtime_ns, sleep_until_realtime_ns, cpu_relax,
                    load_acquire, store_release)
from failure_text cimport text_append

# RecordRow, RingHeader, the error kinds and the class attributes are declared in _pacer.pxd,
# so that transports in other Cython modules (replayer._curl) write rows without the GIL.

ERROR_KINDS = ("ok", "timeout", "connect", "reset", "tls", "protocol", "cancelled",
               "overload", "not_sent", "status", "other")
assert len(ERROR_KINDS) == N_ERROR_KINDS

# Control block: one int64 array in shared memory, written by the parent, read by pacers.
# C constants for the loop (a Python global there would be a dict lookup per iteration),
# exported under the same names without the C_ prefix.
cdef enum:
    C_START_NS = 0        # run start, CLOCK_REALTIME ns; 0 until the parent sets it
    C_STOP = 1            # 0 run, 1 stop scheduling and drain, 2 abort at once
    C_TIME_SCALE_PPM = 2  # trace time multiplier in millionths (1_000_000 = as recorded)
    C_SIZE = 8
    C_STOP_DRAIN = 1
    C_STOP_ABORT = 2

CONTROL_START_NS = C_START_NS
CONTROL_STOP = C_STOP
CONTROL_TIME_SCALE_PPM = C_TIME_SCALE_PPM
CONTROL_SIZE = C_SIZE
STOP_DRAIN = C_STOP_DRAIN
STOP_ABORT = C_STOP_ABORT

# Requests submitted before the transport is told to flush them onto the wire, when a burst
# (equal due times, or a pacer behind schedule) goes on.
cdef enum:
    MAX_BURST = 32
    # While spinning with requests in flight, the pacer polls the transport (completions are
    # stamped when they come, and the CPU never idles) until this close to the send time.
    BUSY_POLL_MARGIN_NS = 5000
    # Wake-up lateness is kept as the maximum of the current and the previous window.
    WAKE_WINDOW_NS = 1000000000

RECORD_ROW_SIZE = sizeof(RecordRow)
RING_HEADER_SIZE = sizeof(RingHeader)


def now_ns():
    """CLOCK_REALTIME in ns, the clock every record time is stamped with."""
    return realtime_ns()


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
                  long long done_ns, int status, signed char error,
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
        store_release(&self.header.write_idx, w + 1)
        return 0

    def record(self, long long event, long long scheduled_ns, long long sent_ns,
               long long done_ns, int status, int error, int bytes_out=0, long long bytes_in=0):
        """Python transports call this once per completed request."""
        self.push(event, scheduled_ns, sent_ns, done_ns, status, <signed char>error,
                  bytes_out, bytes_in)


cdef class Transport:
    """Base of every transport. Subclasses (Python or Cython) own their in-flight state and
    must write exactly one ring row per submitted request, then decrement `inflight`."""

    def __cinit__(self):
        memset(self.failures, 0, sizeof(self.failures))

    def __init__(self, RecordRing ring):
        self.ring = ring
        self.inflight = 0
        self.lead_ns = 0

    cdef void note_failure(self, signed char kind, long long event, long long now,
                           const char *message) noexcept nogil:
        """Count one failed request in the failure log, under its message (see _pacer.pxd).
        Called on failure paths only: a few string compares and at most one bounded copy."""
        cdef FailureKindLog *log
        cdef FailureMessage *m
        cdef int k
        if kind <= 0 or kind >= N_ERROR_KINDS:
            return
        log = &self.failures[kind]
        if log.count == 0:
            log.first_event = event
            log.first_ns = now
        log.count += 1
        if message == NULL:
            message = ""
        for k in range(log.n_messages):
            if strncmp(log.messages[k].text, message, FAILURE_TEXT - 1) == 0:
                log.messages[k].count += 1
                return
        if log.n_messages < FAILURE_MESSAGES:
            m = &log.messages[log.n_messages]
            text_append(m.text, FAILURE_TEXT, 0, message)
            m.count = 1
            log.n_messages += 1
        else:
            log.other += 1

    def note(self, int kind, long long event, long long now, message):
        """note_failure for transports written in Python (grpcio)."""
        cdef bytes text = message.encode("utf-8", "replace") if isinstance(message, str) \
            else bytes(message)
        self.note_failure(<signed char> kind, event, now, text)

    def failure_log(self):
        """The failure log as a dict: {kind: {"count", "first": {"message", "event",
        "time_ns"}, "messages": [{"message", "count"}] in first-seen order,
        "other_messages": failures whose message was not kept}}, failed kinds only."""
        cdef int kind, k
        cdef FailureKindLog *log
        out = {}
        for kind in range(N_ERROR_KINDS):
            log = &self.failures[kind]
            if log.count == 0:
                continue
            messages = [{"message": log.messages[k].text.decode("utf-8", "replace"),
                         "count": log.messages[k].count} for k in range(log.n_messages)]
            out[ERROR_KINDS[kind]] = {
                "count": log.count,
                "first": {"message": messages[0]["message"] if messages else "",
                          "event": log.first_event, "time_ns": log.first_ns},
                "messages": messages,
                "other_messages": log.other,
            }
        return out

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns) except -1:
        raise NotImplementedError

    cpdef int flush(self) except -1:
        """Put what was submitted in this burst on the wire."""
        return 0

    cpdef int poll(self, long long timeout_ns) except -1:
        """Handle completions, waiting up to timeout_ns for them."""
        return 0

    cpdef int abort(self) except -1:
        """Record every request still in flight as cancelled."""
        return 0

    def close(self):
        pass


cdef class NullTransport(Transport):
    """Completes every request at once: benchmarks the pacer and the ring alone."""

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns) except -1:
        self.ring.push(event, scheduled_ns, sent_ns, realtime_ns(), 0, ERR_OK, 0, 0)
        return 0


cdef class Pacer:
    """Sends events first, first+stride, ... of a sorted schedule at start + t_ns * scale.

    Far from the next due time it sleeps (or lets the transport wait for completions); in the
    last part it spins (polling the transport while requests are in flight). That part is
    spin_ns, widened to spin_ns + 2x the latest wake-ups' lateness, up to max_spin_ns: on a VM
    whose idle vCPU is woken milliseconds late, it stops sleeping at all between close
    requests. With fake_clock=True, time only moves when the pacer sleeps or spins
    or a test calls advance(): the table-driven tests run the real loop against it.
    """

    cdef const long long[::1] t_ns
    cdef long long first, stride, n_total
    cdef long long[::1] control
    cdef long long spin_ns
    cdef long long max_spin_ns
    cdef long long wake_late_now, wake_late_before, wake_window_end
    cdef long long max_inflight
    cdef double _time_scale
    cdef bint fake_clock
    cdef public long long fake_now
    cdef public long long next_index
    cdef public long long submitted
    cdef public long long overloaded
    cdef public long long not_sent
    cdef bytes overload_message

    def __init__(self, const long long[::1] t_ns, long long first, long long stride,
                 long long[::1] control, long long spin_ns=50000, long long max_inflight=1 << 30,
                 bint fake_clock=False, long long fake_now=0, long long max_spin_ns=-1):
        if stride <= 0 or first < 0:
            raise ValueError("stride must be positive and first non-negative")
        if control.shape[0] < C_SIZE:
            raise ValueError("control block too small")
        self.t_ns = t_ns
        self.first = first
        self.stride = stride
        self.n_total = t_ns.shape[0]
        self.control = control
        self.spin_ns = spin_ns
        self.max_spin_ns = max(spin_ns, max_spin_ns)   # -1: the window never widens
        self.wake_late_now = 0
        self.wake_late_before = 0
        self.wake_window_end = 0
        self.max_inflight = max_inflight
        self.fake_clock = fake_clock
        self.fake_now = fake_now
        self.next_index = first
        self.submitted = 0
        self.overloaded = 0
        self.not_sent = 0
        self.overload_message = (f"over --max-inflight: {max_inflight} requests in flight, "
                                 "not sent").encode()

    cdef long long now(self) noexcept nogil:
        if self.fake_clock:
            return self.fake_now
        return realtime_ns()

    cdef void sleep_until(self, long long t) noexcept nogil:
        if self.fake_clock:
            if t > self.fake_now:
                self.fake_now = t
        else:
            sleep_until_realtime_ns(t)

    cdef void spin_until(self, long long t) noexcept nogil:
        if self.fake_clock:
            if t > self.fake_now:
                self.fake_now = t
            return
        while realtime_ns() < t:
            cpu_relax()

    cdef inline long long spin_window(self) noexcept nogil:
        cdef long long late = max(self.wake_late_now, self.wake_late_before)
        return min(self.spin_ns + 2 * late, self.max_spin_ns)

    cdef inline void note_wake(self, long long wanted, long long woke) noexcept nogil:
        # How late a sleep (or a wait in the transport) ended; a window turns over only when a
        # new sample comes, so a pacer that no longer sleeps keeps what made it stop.
        cdef long long late = woke - wanted
        if late < 0:
            return               # woken early by a completion: says nothing of the wake-up
        if woke >= self.wake_window_end:
            self.wake_late_before = self.wake_late_now
            self.wake_late_now = 0
            self.wake_window_end = woke + WAKE_WINDOW_NS
        if late > self.wake_late_now:
            self.wake_late_now = late

    @property
    def spin_window_ns(self):
        """The spin window now in use (spin_ns, widened by late wake-ups)."""
        return self.spin_window()

    def advance(self, long long ns):
        """Fake clock only: time spent elsewhere (a slow transport, a preempted process)."""
        self.fake_now += ns

    @property
    def time_scale(self):
        return self._time_scale

    def run(self, Transport transport, long long drain_timeout_ns):
        """Send this worker's share of the schedule, then drain in-flight requests.

        Returns when every event of the share has its record in the ring (sent, refused by
        the in-flight bound, or not sent because of a stop).
        """
        cdef long long start = self.control[C_START_NS]
        cdef long long i = self.next_index
        cdef long long n = self.n_total
        cdef long long due, go, now, wait, spin, wake
        cdef long long burst = 0
        # The lead is spent spinning (in the transport), so it comes out of the spin budget:
        # the pacer wakes spin_ns before the due time either way.
        cdef long long lead = min(transport.lead_ns, self.spin_ns)
        cdef RecordRing ring = transport.ring
        cdef const char *overload_message = self.overload_message
        self._time_scale = self.control[C_TIME_SCALE_PPM] / 1e6
        if start <= 0:
            raise ValueError("control block has no start time")
        while i < n:
            if load_acquire(&self.control[C_STOP]) != 0:
                break
            due = start + <long long>(self.t_ns[i] * self._time_scale)
            go = due - lead     # the transport holds the request back until `due` itself
            now = self.now()
            if now < go:
                if burst:
                    transport.flush()   # GIL seam: end of a burst
                    burst = 0
                    continue
                wait = due - now
                spin = self.spin_window()
                if wait > spin:
                    wake = due - spin
                    if transport.inflight > 0:
                        transport.poll(wake - now)   # GIL seam: completions while far
                    else:
                        with nogil:
                            self.sleep_until(wake)
                    self.note_wake(wake, self.now())
                    continue
                if transport.inflight > 0 and go - now > BUSY_POLL_MARGIN_NS and not self.fake_clock:
                    transport.poll(0)   # GIL seam: completions while spinning
                    continue
                with nogil:
                    self.spin_until(go)
                now = self.now()
            if transport.inflight >= self.max_inflight:
                transport.poll(0)   # GIL seam: at the bound, reap what finished first
            if transport.inflight >= self.max_inflight:
                # Open loop: never wait for a slot, say that this one could not go.
                ring.push(i, due, 0, 0, 0, ERR_OVERLOAD, 0, 0)
                transport.note_failure(ERR_OVERLOAD, i, now, overload_message)
                self.overloaded += 1
            else:
                transport.submit(i, due, now)   # GIL seam: one call per request
                self.submitted += 1
                burst += 1
                if burst >= MAX_BURST:
                    # Behind schedule, every event is due: still put requests on the wire.
                    transport.flush()   # GIL seam: a long burst
                    burst = 0
            i += self.stride
        if burst:
            transport.flush()
        self.next_index = i
        # Stopped early: every event left still gets its record.
        now = self.now()
        while i < n:
            due = start + <long long>(self.t_ns[i] * self._time_scale)
            ring.push(i, due, 0, 0, 0, ERR_NOT_SENT, 0, 0)
            transport.note_failure(ERR_NOT_SENT, i, now, "the run stopped before its due time")
            self.not_sent += 1
            i += self.stride
        self.next_index = i
        self._drain(transport, drain_timeout_ns)

    def _drain(self, Transport transport, long long drain_timeout_ns):
        cdef long long deadline = self.now() + drain_timeout_ns
        cdef long long now
        while transport.inflight > 0:
            if load_acquire(&self.control[C_STOP]) == C_STOP_ABORT:
                break
            now = self.now()
            if now >= deadline:
                break
            transport.poll(min(deadline - now, 10000000))
        if transport.inflight > 0:
            transport.abort()


def pace_decision(long long now, long long due, long long spin_ns):
    """The pacer's choice, as a pure function for table-driven tests:
    ('send', now) when due, ('spin', due) in the last spin_ns, ('sleep', due - spin_ns) before."""
    if now >= due:
        return ("send", now)
    if due - now > spin_ns:
        return ("sleep", due - spin_ns)
    return ("spin", due)

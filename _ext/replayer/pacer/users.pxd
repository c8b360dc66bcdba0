# Closed-loop users, as Locust runs them: each user sends a request, waits for its answer,
# waits its think time, then sends the next. UserPacer (users.pyx) runs one worker's users.

# A user class's think time (Locust's wait_time), from an answer to the next send.
cpdef enum:
    WAIT_CONSTANT = 0        # wait_a_ns
    WAIT_BETWEEN = 1         # uniform in [wait_a_ns, wait_b_ns]
    WAIT_PACING = 2          # sends at most every wait_a_ns, whatever the answers take
                             # (constant_pacing; constant_throughput is 1 / its rate)
    WAIT_POISSON = 3         # exponential with mean wait_a_ns

# How a class picks each request's payload among its own.
cpdef enum:
    PICK_CYCLE = 0           # user u's k-th request: payload (u + k) mod n
    PICK_SAMPLE = 1          # ru_hash(seed, event) mod n

ctypedef struct UserClass:
    int wait                 # WAIT_*
    long long wait_a_ns
    long long wait_b_ns
    int target
    int first_payload        # its payloads in the run's payload table: first .. first + n - 1
    int n_payloads           # 0: its target's own request
    int pick                 # PICK_*
    int sequence_at          # >= 0: the payloads in a given order, sequence[at .. at + n - 1]
                             # (a file's bodies, repeats included); -1: first .. first + n - 1

ctypedef struct UserSlot:
    long long user           # its id in the run: 0 .. total users - 1
    long long due_ns         # when it decided (decides) its next request
    long long requests       # requests it sent: the k of its next event id
    unsigned long long rng   # its think times' stream
    int cls


@cython.final
cdef class UserPacer:
    cdef Pacer clock             # the open-loop pacer's clocks, spin window and stall count
    cdef long long[::1] control
    cdef UserSlot *slots
    cdef int n_slots
    cdef UserClass *classes
    cdef int n_classes
    cdef int *heap               # the slots waiting to send, earliest due first
    cdef int heap_len
    # Per user of the run, what its request in flight is: the ContentTable reads event e's
    # target, payload and class at row e mod total_users (its `period`).
    cdef int[::1] target_col
    cdef int[::1] payload_col
    cdef short[::1] cls_col
    cdef const int[::1] sequence
    cdef readonly long long total_users
    cdef long long first_user, user_stride   # this worker's users: first, first + stride, ...
    cdef readonly long long spawn_gap_ns     # user u starts at start + u * spawn_gap_ns
    cdef readonly long long run_time_ns      # no request decided after start + run_time_ns
    cdef unsigned long long seed
    cdef long long seen          # ring rows reap has looked at
    cdef public long long submitted
    cdef public long long overloaded         # always 0: a user never has two in flight
    cdef public long long not_sent           # always 0: a request exists once decided
    cdef readonly long long run_ns

    cdef long long event_of(self, int j) noexcept nogil
    cdef int payload_of(self, int j, long long event) noexcept nogil
    cdef void assign(self, int j, long long event) noexcept nogil
    cdef long long think(self, int j, long long answered_ns) noexcept nogil
    cdef void heap_push(self, int j) noexcept nogil
    cdef int heap_pop(self) noexcept nogil
    cdef long long reap(self, RecordRing ring) noexcept nogil

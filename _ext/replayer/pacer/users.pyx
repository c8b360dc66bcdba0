# Closed-loop users: the loop that sends each user's next request when its think time is over,
# learning of answers from the rows its transport pushed to the record ring.

from libc.math cimport log
from includes.users_rng cimport ru_hash, ru_uniform

cdef enum:
    # While every waiting user is due after the run's end, the pacer waits for the answers of
    # those in flight in slices this long (a stop is seen within one).
    ANSWER_WAIT_NS = 10000000


@cython.final
cdef class UserPacer:
    """Runs one worker's users, Locust's closed loop: user u starts at start + u *
    spawn_gap_ns, sends, and once its answer is in (its ring row: success or failure alike)
    waits its class's think time and sends again; no request is decided after start +
    run_time_ns, and those in flight are then awaited (drain).

    A request's scheduled time is when its user decided to send it (its previous answer +
    think time, or its start), so lag and both latencies mean what they mean open loop. Event
    ids are unique in the run: user u's k-th request is k * total_users + u.

    users: the ids of this worker's users; user_classes: each one's class index; classes: per
    class (wait, wait_a_ns, wait_b_ns, target, first_payload, n_payloads, pick, sequence_at),
    with sequence the payload orders they point into;
    target_col, payload_col, cls_col: per user of the run (total_users rows), written here and
    read by the transport's ContentTable (period total_users). users must be first, first +
    stride, ... (a worker's share, as worker_shards gives events). clock: a Pacer whose clocks,
    spin window and stall count this one uses (it sends nothing of its own).

    The ring rows are read back in the worker, which is their only writer: between two looks
    the transport pushes at most one row per user, so a ring with more rows than the worker
    has users never overwrites one before it is seen.
    """

    def __cinit__(self):
        self.slots = NULL
        self.classes = NULL
        self.heap = NULL

    def __init__(self, Pacer clock, long long[::1] control, list users, list user_classes,
                 list classes, int[::1] target_col, int[::1] payload_col, short[::1] cls_col,
                 const int[::1] sequence, double spawn_rate, long long run_time_ns, unsigned long long seed=0):
        cdef int j, k
        cdef long long total = target_col.shape[0]
        if control.shape[0] < CONTROL_SIZE:
            raise ValueError("control block too small")
        if len(users) != len(user_classes):
            raise ValueError("one class per user")
        if payload_col.shape[0] != total or cls_col.shape[0] != total:
            raise ValueError("target, payload and cls columns: one row per user of the run")
        if not spawn_rate > 0 or run_time_ns <= 0:
            raise ValueError("the spawn rate and the run time must be positive")
        self.clock = clock
        self.control = control
        self.total_users = total
        self.target_col = target_col
        self.payload_col = payload_col
        self.cls_col = cls_col
        self.sequence = sequence
        self.spawn_gap_ns = <long long> (1e9 / spawn_rate)
        self.run_time_ns = run_time_ns
        self.seed = seed
        self.n_classes = len(classes)
        self.classes = <UserClass *> calloc(max(1, self.n_classes), sizeof(UserClass))
        self.n_slots = len(users)
        self.slots = <UserSlot *> calloc(max(1, self.n_slots), sizeof(UserSlot))
        self.heap = <int *> calloc(max(1, self.n_slots), sizeof(int))
        if self.classes == NULL or self.slots == NULL or self.heap == NULL:
            raise MemoryError()
        for k, (wait, a, b, target, first, n, pick, at) in enumerate(classes):
            if wait not in (WAIT_CONSTANT, WAIT_BETWEEN, WAIT_PACING, WAIT_POISSON) or \
                    pick not in (PICK_CYCLE, PICK_SAMPLE) or a < 0 or (wait == WAIT_BETWEEN
                    and b < a) or n < 0 or (at >= 0 and at + n > sequence.shape[0]):
                raise ValueError(f"user class {k}: {(wait, a, b, target, first, n, pick, at)}")
            self.classes[k] = UserClass(wait, a, b, target, first, n, pick, at)
        self.first_user = users[0] if users else 0
        self.user_stride = users[1] - users[0] if len(users) > 1 else 1
        for j in range(self.n_slots):
            if users[j] != self.first_user + j * self.user_stride or self.user_stride <= 0:
                raise ValueError("users: first, first + stride, ... (stride > 0)")
            if not 0 <= users[j] < total or not 0 <= user_classes[j] < self.n_classes:
                raise ValueError(f"user {users[j]} (class {user_classes[j]}) out of range")
            self.slots[j].user = users[j]
            self.slots[j].cls = user_classes[j]
            self.slots[j].rng = ru_hash(seed ^ 0x5851F42D4C957F2D, <unsigned long long> users[j])
        self.heap_len = 0
        self.submitted = self.overloaded = self.not_sent = 0
        self.run_ns = 0

    def __dealloc__(self):
        free(self.slots)
        free(self.classes)
        free(self.heap)

    # ---- what a user sends and when ----

    cdef long long event_of(self, int j) noexcept nogil:
        return self.slots[j].requests * self.total_users + self.slots[j].user

    cdef int payload_of(self, int j, long long event) noexcept nogil:
        cdef UserSlot *s = &self.slots[j]
        cdef UserClass *c = &self.classes[s.cls]
        cdef long long i
        if c.n_payloads == 0:
            return -1
        if c.pick == PICK_SAMPLE:
            i = <long long> (ru_hash(self.seed, <unsigned long long> event)
                             % <unsigned long long> c.n_payloads)
        else:
            i = (s.user + s.requests) % c.n_payloads
        if c.sequence_at >= 0:
            return self.sequence[c.sequence_at + i]
        return c.first_payload + <int> i

    cdef void assign(self, int j, long long event) noexcept nogil:
        # The user's row describes its next request from here until its answer.
        cdef long long u = self.slots[j].user
        cdef int k = self.slots[j].cls
        self.target_col[u] = self.classes[k].target
        self.payload_col[u] = self.payload_of(j, event)
        self.cls_col[u] = <short> k

    cdef long long think(self, int j, long long answered_ns) noexcept nogil:
        """When user j, answered at answered_ns, decides its next request."""
        cdef UserSlot *s = &self.slots[j]
        cdef UserClass *c = &self.classes[s.cls]
        if c.wait == WAIT_BETWEEN:
            return answered_ns + c.wait_a_ns + <long long> (
                (c.wait_b_ns - c.wait_a_ns) * ru_uniform(&s.rng))
        if c.wait == WAIT_PACING:
            # s.due_ns still holds the request just answered: the next one a period later.
            return max(answered_ns, s.due_ns + c.wait_a_ns)
        if c.wait == WAIT_POISSON:
            return answered_ns + <long long> (-log(1.0 - ru_uniform(&s.rng)) * c.wait_a_ns)
        return answered_ns + c.wait_a_ns

    # ---- the users waiting to send: a binary heap by due time ----

    cdef void heap_push(self, int j) noexcept nogil:
        cdef int at = self.heap_len
        cdef int parent
        cdef long long due = self.slots[j].due_ns
        self.heap_len += 1
        while at > 0:
            parent = (at - 1) >> 1
            if self.slots[self.heap[parent]].due_ns <= due:
                break
            self.heap[at] = self.heap[parent]
            at = parent
        self.heap[at] = j

    cdef int heap_pop(self) noexcept nogil:
        cdef int top = self.heap[0]
        cdef int last, at, child
        cdef long long due
        self.heap_len -= 1
        if self.heap_len == 0:
            return top
        last = self.heap[self.heap_len]
        due = self.slots[last].due_ns
        at = 0
        while True:
            child = 2 * at + 1
            if child >= self.heap_len:
                break
            if child + 1 < self.heap_len and \
                    self.slots[self.heap[child + 1]].due_ns < self.slots[self.heap[child]].due_ns:
                child += 1
            if self.slots[self.heap[child]].due_ns >= due:
                break
            self.heap[at] = self.heap[child]
            at = child
        self.heap[at] = last
        return top

    cdef long long reap(self, RecordRing ring) noexcept nogil:
        """The users whose answers the transport recorded since the last look, back in the
        heap at their next due time; -1 if rows were overwritten before being seen."""
        cdef long long w = ring.header.write_idx
        cdef long long cap = ring.header.capacity
        cdef long long n = w - self.seen
        cdef const RecordRow *row
        cdef long long u, answered
        cdef int j
        if n > cap:
            return -1
        while self.seen < w:
            row = &ring.rows[self.seen % cap]
            self.seen += 1
            u = row.event % self.total_users
            j = <int> ((u - self.first_user) // self.user_stride)
            answered = row.done_ns if row.done_ns > 0 else self.clock.now()
            self.slots[j].due_ns = self.think(j, answered)
            self.heap_push(j)
        return n

    # ---- the loop ----

    def run(self, Transport transport, long long drain_timeout_ns):
        """Run the users until the run time is over (or a stop), then drain the requests in
        flight. Every request sent has its record in the ring when this returns."""
        cdef long long start = self.control[CONTROL_START_NS]
        cdef long long end, due, go, now, until, event
        cdef int j
        cdef PaceAction action
        cdef signed char cause
        cdef long long burst = 0
        cdef long long prepared = -1
        cdef long long quiet = 0
        cdef bint slept = False
        cdef Pacer clock = self.clock
        cdef long long lead = min(transport.lead_ns, clock.spin_ns)
        cdef RecordRing ring = transport.ring
        if start <= 0:
            raise ValueError("control block has no start time")
        end = start + self.run_time_ns
        self.seen = ring.header.write_idx
        self.heap_len = 0
        for j in range(self.n_slots):
            self.slots[j].due_ns = start + self.slots[j].user * self.spawn_gap_ns
            self.heap_push(j)
        while True:
            if load_acquire(&self.control[CONTROL_STOP]) != 0:
                break
            if self.reap(ring) < 0:
                raise RuntimeError("record ring overrun: more rows between two looks than it "
                                   "holds (give each worker fewer users)")
            if self.heap_len == 0 or self.slots[self.heap[0]].due_ns >= end:
                # Every waiting user is done; those in flight may still decide a request
                # before the end.
                if burst:
                    transport.flush()   # GIL seam: end of a burst
                    burst = 0
                    continue
                if transport.inflight == 0:
                    break
                transport.poll(ANSWER_WAIT_NS)   # GIL seam: answers of the users in flight
                continue
            j = self.heap[0]
            due = self.slots[j].due_ns
            event = self.event_of(j)
            go = due - lead      # its hand-over time
            if prepared != event and transport.prepares and not burst:
                self.assign(j, event)
                transport.prepare(event, due)   # GIL seam: its content before the wait
                prepared = event
                quiet = 0
            now = clock.now()
            if quiet and now - quiet > clock.stall_threshold_ns:
                clock.note_stall(quiet, now)
            quiet = 0
            action = pace_step(now, due, lead, clock.spin_window(), &until)
            cause = CAUSE_BURST if now > go and not slept else CAUSE_NONE
            slept = False
            if action != PACE_SEND:
                if burst:
                    transport.flush()   # GIL seam: end of a burst
                    burst = 0
                    continue
                if action == PACE_SLEEP:
                    if transport.inflight > 0:
                        transport.poll(until - now)   # GIL seam: answers while far
                    else:
                        with nogil:
                            clock.sleep_until(until)
                    quiet = clock.now()
                    clock.note_wake(until, quiet)
                    slept = True
                    continue
                if transport.inflight > 0 and until - now > BUSY_POLL_MARGIN_NS:
                    transport.poll(0)   # GIL seam: answers while spinning
                    quiet = now
                    continue
                with nogil:
                    now = clock.spin_until(until, now)
                cause = CAUSE_NONE
            if clock.stall_end > go:
                cause = CAUSE_STALL
            self.heap_pop()
            if prepared != event:
                self.assign(j, event)
            transport.submit(event, due, now, cause)   # GIL seam: one call per request
            self.slots[j].requests += 1
            self.submitted += 1
            burst += 1
            if burst >= MAX_BURST:
                transport.flush()   # GIL seam: a long burst
                burst = 0
            elif transport.brief_submit:
                quiet = now
        if burst:
            transport.flush()
        self.run_ns = max(0, clock.now() - start)
        clock._drain(transport, drain_timeout_ns)
        self.reap(ring)

    # ---- what the worker reports (the clock's counters) ----

    @property
    def spin_window_ns(self):
        return self.clock.spin_window()

    @property
    def stalls(self):
        return self.clock.stalls

    @property
    def stalls_100us(self):
        return self.clock.stalls_100us

    @property
    def stalls_1ms(self):
        return self.clock.stalls_1ms

    @property
    def stall_max_ns(self):
        return self.clock.stall_max_ns

    @property
    def stall_lost_ns(self):
        return self.clock.stall_lost_ns

    @property
    def waiting(self):
        """Users waiting to send (the others are in flight or done)."""
        return self.heap_len

    def requests_of(self, int j):
        """Requests slot j's user sent."""
        if not 0 <= j < self.n_slots:
            raise IndexError(j)
        return self.slots[j].requests

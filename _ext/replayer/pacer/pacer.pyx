# The pacer: its decision (pace_step, the one the tests table), its loop and its clocks.

def now_ns():
    """CLOCK_REALTIME in ns, the clock every record time is stamped with."""
    return realtime_ns()


cdef inline PaceAction pace_step(long long now, long long due, long long lead, long long spin,
                                 long long *until) noexcept nogil:
    """What to do at `now` for a request due at `due`, handed over `lead` early: send at once
    (from lead before it is due), spin until then (inside the spin window), or sleep until
    the spin window opens. `until` is set to the send, spin or wake time."""
    cdef long long go = due - lead
    if now >= go:
        until[0] = now
        return PACE_SEND
    if due - now > spin:
        until[0] = due - spin
        return PACE_SLEEP
    until[0] = go
    return PACE_SPIN


cdef inline unsigned long long mix64(unsigned long long x) noexcept nogil:
    # splitmix64's finaliser: a request's event id as a uniform draw, the same in every worker
    # and run, so a weight keeps the same share of a class's requests wherever they fall.
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL
    return x ^ (x >> 31)


def publish_control(long long[::1] control, long long origin_ns, long long origin_t,
                    long long scale_ppb, bint paused, const long long[::1] weights=None):
    """Publish a re-based schedule clock (and, given, the weights that follow the block's
    fixed part: its classes', then its targets') to every pacer, as a seqlock: SEQ odd, the
    fields, SEQ even, each a release store, so a pacer that reads the new SEQ twice around
    them never uses half of a change. One writer (the parent, under its lock). Returns the
    published SEQ."""
    cdef long long seq = control[CONTROL_SEQ]
    cdef Py_ssize_t k
    cdef bint thinning = False
    if control.shape[0] < CONTROL_SIZE:
        raise ValueError("control block too small")
    if weights is not None and CONTROL_SIZE + weights.shape[0] > control.shape[0]:
        raise ValueError("more weights than the control block holds")
    if scale_ppb <= 0:
        raise ValueError("the scale must be positive")
    seq += seq & 1
    store_release(&control[CONTROL_SEQ], seq + 1)
    store_release(&control[CONTROL_ORIGIN_NS], origin_ns)
    store_release(&control[CONTROL_ORIGIN_T], origin_t)
    store_release(&control[CONTROL_SCALE_PPB], scale_ppb)
    store_release(&control[CONTROL_PAUSED], 1 if paused else 0)
    if weights is not None:
        for k in range(weights.shape[0]):
            store_release(&control[CONTROL_SIZE + k], weights[k])
            thinning = thinning or weights[k] < WEIGHT_ONE
        store_release(&control[CONTROL_THINNING], 1 if thinning else 0)
    store_release(&control[CONTROL_SEQ], seq + 2)
    return seq + 2


def pace_decision(long long now, long long due, long long lead_ns, long long spin_ns):
    """pace_step, the pacer's decision, for table-driven tests: ('send', now), ('spin', due -
    lead_ns) in the last spin_ns, or ('sleep', due - spin_ns) before."""
    cdef long long until
    cdef PaceAction action = pace_step(now, due, lead_ns, spin_ns, &until)
    return ({PACE_SEND: "send", PACE_SPIN: "spin", PACE_SLEEP: "sleep"}[action], until)


@cython.final
cdef class Pacer:
    """Sends events first, first+stride, ... of a sorted schedule at start + t_ns * scale.

    Far from the next due time it sleeps (or lets the transport wait for completions); in the
    last part it spins (polling the transport while requests are in flight). That part is
    spin_ns, widened to spin_ns + 2x the latest wake-ups' lateness, up to max_spin_ns: on a VM
    whose idle vCPU is woken milliseconds late, it stops sleeping at all between close
    requests. With fake_clock=True, time only moves when the pacer sleeps or spins
    or a test calls advance(): the table-driven tests run the real loop against it;
    fake_gaps, (at, length) rows in time order, take the CPU from a spin that reaches `at` for
    `length` (a spin that does not cover `at` never sees its gap).

    The schedule clock can be re-based while it runs (a live rate change, a pause: the control
    block's SEQ, blocks.pxd): the pacer looks at SEQ before each request and at least every
    CONTROL_CHECK_NS while it waits, and writes the SEQ it applied, and when, to its status
    row. While paused it hands nothing over (requests due then are shifted by the pause).
    With weights below one (per class, per target), the requests a weight leaves out are
    recorded not_sent (`skipped`), chosen by a hash of their event id.

    While it spins, busy-polls or hands a request to a transport whose submit is brief C work,
    the pacer counts CPU stalls from the clock reads it does anyway (note_stall): two
    consecutive reads more than stall_threshold_ns apart. Each request goes to the transport
    with its cause (CAUSE_* in ring.pxd): stall, in-flight bound, burst or none.
    """

    def __init__(self, const long long[::1] t_ns, long long first, long long stride,
                 long long[::1] control, long long spin_ns=50000, long long max_inflight=1 << 30,
                 bint fake_clock=False, long long fake_now=0, long long max_spin_ns=-1,
                 long long stall_threshold_ns=50000, const long long[:, ::1] fake_gaps=None,
                 long long[::1] status=None, const short[::1] cls=None,
                 const int[::1] target=None):
        if stride <= 0 or first < 0:
            raise ValueError("stride must be positive and first non-negative")
        if control.shape[0] < CONTROL_SIZE:
            raise ValueError("control block too small")
        if stall_threshold_ns <= 0:
            raise ValueError("the stall threshold must be positive")
        if fake_gaps is not None and fake_gaps.shape[1] != 2:
            raise ValueError("fake_gaps: one (at, length) row per gap")
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
        self.n_fake_gaps = 0
        if fake_gaps is not None:
            self.fake_gaps = fake_gaps
            self.n_fake_gaps = fake_gaps.shape[0]
        self.fake_gap_next = 0
        self.stall_threshold_ns = stall_threshold_ns
        self.stalls = self.stalls_100us = self.stalls_1ms = 0
        self.stall_max_ns = self.stall_lost_ns = 0
        self.stall_end = 0
        self.run_ns = 0
        self.next_index = first
        self.submitted = 0
        self.overloaded = 0
        self.not_sent = 0
        self.overload_message = (f"over --max-inflight: {max_inflight} requests in flight, "
                                 "not sent").encode()
        self.skip_message = b"left out by a weight below 1 (PUT /config on the control port)"
        self.skipped = 0
        self.has_status = status is not None
        if status is not None:
            if status.shape[0] <= ST_SKIPPED:
                raise ValueError("status row too small")
            self.status = status
        self.has_cls = cls is not None
        if cls is not None:
            self.cls_col = cls
        self.has_target = target is not None
        if target is not None:
            self.target_col = target
        self.origin_ns = self.origin_t = self.seen_seq = 0
        self.scale = 1.0
        self.paused = self.thinning = False
        self.class_w_at = self.n_class_w = self.target_w_at = self.n_target_w = 0

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

    cdef long long spin_until(self, long long t, long long last) noexcept nogil:
        """Spin until t from the pacer's clock read `last`; return the last read. Reads more
        than the stall threshold apart are a stall: nothing but cpu_relax runs between them."""
        cdef long long now
        if self.fake_clock:
            return self.fake_spin_until(t, last)
        while True:
            now = realtime_ns()
            if now - last > self.stall_threshold_ns:
                self.note_stall(last, now)
            if now >= t:
                return now
            cpu_relax()
            last = now

    cdef long long fake_spin_until(self, long long t, long long last) noexcept nogil:
        # The fake clock's spin reads the clock at the start of each injected gap it reaches
        # and again at its end, then at t.
        cdef long long at, after
        while self.fake_gap_next < self.n_fake_gaps:
            at = self.fake_gaps[self.fake_gap_next, 0]
            if at >= t:
                break
            self.fake_gap_next += 1
            if at < self.fake_now:
                continue                 # fell outside a spin: never seen
            after = at + self.fake_gaps[self.fake_gap_next - 1, 1]
            self.fake_now = after
            if after - at > self.stall_threshold_ns:
                self.note_stall(at, after)
            if after >= t:
                return after
        if t > self.fake_now:
            self.fake_now = t
        return self.fake_now

    cdef void note_stall(self, long long before, long long after) noexcept nogil:
        # The CPU was taken from the pacer between two consecutive clock reads.
        cdef long long gap = after - before
        self.stalls += 1
        self.stall_lost_ns += gap
        if gap > 100000:
            self.stalls_100us += 1
            if gap > 1000000:
                self.stalls_1ms += 1
        if gap > self.stall_max_ns:
            self.stall_max_ns = gap
        if after > self.stall_end:
            self.stall_end = after

    cdef long long spin_window(self) noexcept nogil:
        cdef long long late = max(self.wake_late_now, self.wake_late_before)
        return min(self.spin_ns + 2 * late, self.max_spin_ns)

    cdef void note_wake(self, long long wanted, long long woke) noexcept nogil:
        # How late a sleep (or a wait in the transport) ended; a window turns over only when a
        # new sample comes, so a pacer that no longer sleeps keeps what made it stop.
        cdef long long late = woke - wanted
        if late < 0:
            return               # woken early by a completion: says nothing of the wake-up
        # A wake-up later than the stall threshold is the CPU not given back in time: a request
        # due before it was held back by it (cause stall). It is not counted as a stall: an
        # idle vCPU woken late is the hypervisor's wake-up latency, which the widened spin
        # window absorbs (a run keeping its schedule would report stalls), not a running
        # pacer losing its CPU, which is what note_stall counts and figure 0 compares with.
        if late > self.stall_threshold_ns and woke > self.stall_end:
            self.stall_end = woke
        if woke >= self.wake_window_end:
            self.wake_late_before = self.wake_late_now
            self.wake_late_now = 0
            self.wake_window_end = woke + WAKE_WINDOW_NS
        if late > self.wake_late_now:
            self.wake_late_now = late

    cdef bint read_control(self, long long now) noexcept nogil:
        """Take a published change of the control block (a seqlock read: SEQ, the fields, SEQ
        again); False when there is none, or one is being written (taken at the next look)."""
        cdef long long seq = load_acquire(&self.control[CONTROL_SEQ])
        cdef long long origin_ns, origin_t, scale_ppb, paused, thinning
        cdef long long class_at, n_class, target_at, n_target
        if seq == self.seen_seq or seq & 1:
            return False
        origin_ns = load_acquire(&self.control[CONTROL_ORIGIN_NS])
        origin_t = load_acquire(&self.control[CONTROL_ORIGIN_T])
        scale_ppb = load_acquire(&self.control[CONTROL_SCALE_PPB])
        paused = load_acquire(&self.control[CONTROL_PAUSED])
        thinning = load_acquire(&self.control[CONTROL_THINNING])
        class_at = load_acquire(&self.control[CONTROL_CLASS_WEIGHTS])
        n_class = load_acquire(&self.control[CONTROL_N_CLASSES])
        target_at = load_acquire(&self.control[CONTROL_TARGET_WEIGHTS])
        n_target = load_acquire(&self.control[CONTROL_N_TARGETS])
        if load_acquire(&self.control[CONTROL_SEQ]) != seq or scale_ppb <= 0:
            return False
        self.origin_ns = origin_ns
        self.origin_t = origin_t
        self.scale = scale_ppb / 1e9
        self.paused = paused != 0
        # Weights live in the block: an index out of it is none.
        self.thinning = thinning != 0
        self.class_w_at = class_at if class_at >= CONTROL_SIZE and \
            class_at + n_class <= self.control.shape[0] else 0
        self.n_class_w = n_class
        self.target_w_at = target_at if target_at >= CONTROL_SIZE and \
            target_at + n_target <= self.control.shape[0] else 0
        self.n_target_w = n_target
        self.seen_seq = seq
        if self.has_status:
            self.status[ST_CONTROL_NS] = now
            store_release(&self.status[ST_CONTROL_SEQ], seq)
        return True

    cdef long long due_of(self, long long i) noexcept nogil:
        """When event i is due on the schedule clock as it stands."""
        return self.origin_ns + <long long>((self.t_ns[i] - self.origin_t) * self.scale)

    cdef bint thinned(self, long long i) noexcept nogil:
        """Whether the weights of event i's class and target leave it out."""
        cdef long long w = WEIGHT_ONE
        cdef long long k
        if self.class_w_at and self.has_cls:
            k = self.cls_col[i]
            if 0 <= k < self.n_class_w:
                w = load_acquire(&self.control[self.class_w_at + k])
        if self.target_w_at and self.has_target:
            k = self.target_col[i]
            if 0 <= k < self.n_target_w:
                w = w * load_acquire(&self.control[self.target_w_at + k]) // WEIGHT_ONE
        if w >= WEIGHT_ONE:
            return False
        return <long long>(mix64(<unsigned long long>i) % WEIGHT_ONE) >= w

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
        cdef long long start = self.control[CONTROL_START_NS]
        cdef long long i = self.next_index
        cdef long long n = self.n_total
        cdef long long due, go, now, until
        cdef PaceAction action
        cdef signed char cause
        cdef long long burst = 0
        cdef long long prepared = -1
        cdef long long prepared_due = 0
        # The previous clock read, while only spinning, polling or a brief submit came after
        # it (0 after a sleep's wait or a flush): two such reads further apart than the
        # threshold are a stall.
        cdef long long quiet = 0
        cdef bint slept = False
        # The lead is spent spinning (in the transport), so it comes out of the spin budget:
        # the pacer wakes spin_ns before the due time either way.
        cdef long long lead = min(transport.lead_ns, self.spin_ns)
        cdef RecordRing ring = transport.ring
        cdef const char *overload_message = self.overload_message
        cdef const char *skip_message = self.skip_message
        self._time_scale = self.control[CONTROL_TIME_SCALE_PPM] / 1e6
        if start <= 0:
            raise ValueError("control block has no start time")
        # The clock as the run starts; a change published before it is taken at once.
        self.origin_ns = start
        self.origin_t = 0
        self.scale = self._time_scale
        self.read_control(self.now())
        while i < n:
            if load_acquire(&self.control[CONTROL_STOP]) != 0:
                break
            if load_acquire(&self.control[CONTROL_SEQ]) != self.seen_seq:
                self.read_control(self.now())
            if self.has_status:
                self.status[ST_INFLIGHT] = transport.inflight
            if self.paused:
                # Nothing is handed over; answers are still taken. The clock stands still, so
                # what falls due meanwhile goes after the resume, shifted by the pause.
                if burst:
                    transport.flush()   # GIL seam: a pause ends a burst
                    burst = 0
                elif transport.inflight > 0:
                    transport.poll(CONTROL_CHECK_NS)   # GIL seam: answers while paused
                else:
                    with nogil:
                        self.sleep_until(self.now() + CONTROL_CHECK_NS)
                quiet = 0
                slept = True
                continue
            due = self.due_of(i)
            if self.thinning and self.thinned(i):
                # Left out by a weight: its record says not sent, and why (failure log).
                ring.push(i, due, 0, 0, 0, ERR_NOT_SENT, CAUSE_NONE, 0, 0)
                transport.note_failure(ERR_NOT_SENT, i, due, skip_message)
                self.skipped += 1
                if self.has_status:
                    self.status[ST_SKIPPED] = self.skipped
                quiet = 0
                i += self.stride
                continue
            go = due - lead      # its hand-over time
            if (prepared != i or prepared_due != due) and transport.prepares and not burst:
                # Its content, but for the send-time fields, before the wait (GIL seam); not
                # while a burst waits to be flushed (the requests before it would wait for it).
                # Again when a re-based clock moved its due time (a field may carry it).
                transport.prepare(i, due)
                prepared = i
                prepared_due = due
                quiet = 0        # filling a body is work, not a stall
            now = self.now()
            if quiet and now - quiet > self.stall_threshold_ns:
                self.note_stall(quiet, now)
            quiet = 0
            action = pace_step(now, due, lead, self.spin_window(), &until)
            # Reached after its hand-over time, busy with the requests before it (not woken
            # late: that is a stall past the threshold, too little to matter below it).
            cause = CAUSE_BURST if now > go and not slept else CAUSE_NONE
            slept = False
            if action != PACE_SEND:
                if burst:
                    transport.flush()   # GIL seam: end of a burst
                    burst = 0
                    continue
                if action == PACE_SLEEP:
                    if until - now > CONTROL_CHECK_NS:
                        until = now + CONTROL_CHECK_NS   # then look at the control block
                    if transport.inflight > 0:
                        transport.poll(until - now)   # GIL seam: completions while far
                    else:
                        with nogil:
                            self.sleep_until(until)
                    quiet = self.now()
                    self.note_wake(until, quiet)
                    slept = True
                    continue
                if transport.inflight > 0 and until - now > BUSY_POLL_MARGIN_NS and not self.fake_clock:
                    transport.poll(0)   # GIL seam: completions while spinning
                    quiet = now
                    continue
                # The transport holds the request back until `due` itself.
                with nogil:
                    now = self.spin_until(until, now)
                cause = CAUSE_NONE
            if self.stall_end > go:
                cause = CAUSE_STALL      # a stall (or a late wake-up) ran past its hand-over
            if transport.inflight >= self.max_inflight:
                transport.poll(0)   # GIL seam: at the bound, reap what finished first
                if cause != CAUSE_STALL:
                    cause = CAUSE_INFLIGHT
            if transport.inflight >= self.max_inflight:
                # Open loop: never wait for a slot, say that this one could not go.
                ring.push(i, due, 0, 0, 0, ERR_OVERLOAD, CAUSE_NONE, 0, 0)
                transport.note_failure(ERR_OVERLOAD, i, now, overload_message)
                self.overloaded += 1
            else:
                if (prepared != i or prepared_due != due) and transport.prepares:
                    transport.prepare(i, due)   # GIL seam: due inside a burst, filled now
                    prepared = i
                    prepared_due = due
                transport.submit(i, due, now, cause)   # GIL seam: one call per request
                self.submitted += 1
                burst += 1
                if burst >= MAX_BURST:
                    # Behind schedule, every event is due: still put requests on the wire.
                    transport.flush()   # GIL seam: a long burst
                    burst = 0
                elif transport.brief_submit:
                    quiet = now          # the next read, past the submit, may show a stall
            i += self.stride
        if burst:
            transport.flush()
        self.next_index = i
        # Stopped early: every event left still gets its record.
        now = self.now()
        self.run_ns = max(0, now - start)
        while i < n:
            due = self.due_of(i)
            ring.push(i, due, 0, 0, 0, ERR_NOT_SENT, CAUSE_NONE, 0, 0)
            transport.note_failure(ERR_NOT_SENT, i, now, "the run stopped before its due time")
            self.not_sent += 1
            i += self.stride
        self.next_index = i
        if self.has_status:
            self.status[ST_INFLIGHT] = transport.inflight
        self._drain(transport, drain_timeout_ns)
        if self.has_status:
            self.status[ST_INFLIGHT] = transport.inflight

    def _drain(self, Transport transport, long long drain_timeout_ns):
        cdef long long deadline = self.now() + drain_timeout_ns
        cdef long long now
        while transport.inflight > 0:
            if load_acquire(&self.control[CONTROL_STOP]) == STOP_ABORT:
                break
            now = self.now()
            if now >= deadline:
                break
            transport.poll(min(deadline - now, 10000000))
        if transport.inflight > 0:
            transport.abort()

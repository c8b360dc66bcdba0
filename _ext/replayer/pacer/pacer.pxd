# The pacer: sends a worker's share of the schedule at its due times.

# What the pacer does next (pace_step in pacer.pyx; pace_decision for tests).
cdef enum PaceAction:
    PACE_SEND
    PACE_SPIN                # spin (or poll completions) until the hand-over time
    PACE_SLEEP               # sleep (or wait for completions) until the spin window

cdef enum:
    # Requests submitted before the transport is told to flush them onto the wire, when a
    # burst (equal due times, or a pacer behind schedule) goes on.
    MAX_BURST = 32
    # While spinning with requests in flight, the pacer polls the transport (completions are
    # stamped when they come, and the CPU never idles) until this close to the send time.
    BUSY_POLL_MARGIN_NS = 5000
    # Wake-up lateness is kept as the maximum of the current and the previous window.
    WAKE_WINDOW_NS = 1000000000


@cython.final
cdef class Pacer:
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
    cdef const long long[:, ::1] fake_gaps     # (at, length) rows: gaps injected into spins
    cdef Py_ssize_t n_fake_gaps, fake_gap_next
    cdef public long long next_index
    cdef public long long submitted
    cdef public long long overloaded
    cdef public long long not_sent
    # CPU stalls (note_stall): gaps longer than stall_threshold_ns between two consecutive
    # clock reads while spinning, busy-polling or in a brief submit; how many, over 100 µs,
    # over 1 ms, the longest and their total.
    cdef readonly long long stall_threshold_ns
    cdef readonly long long stalls, stalls_100us, stalls_1ms, stall_max_ns, stall_lost_ns
    # The end of the latest stall or late wake-up: a request whose hand-over time is before it
    # was held back by the CPU.
    cdef long long stall_end
    cdef readonly long long run_ns            # from the run's start to the end of its sends
    cdef bytes overload_message
    # The schedule clock (blocks.pxd): due = origin_ns + (t - origin_t) * scale, none while
    # paused; re-read whenever the control block's SEQ moves past seen_seq (read_control).
    cdef long long origin_ns, origin_t, seen_seq
    cdef double scale
    cdef bint paused, thinning
    cdef long long class_w_at, n_class_w, target_w_at, n_target_w
    # The worker's status row (live: the control SEQ applied, in flight, skipped) and the
    # schedule's class and target columns (weights), each optional.
    cdef long long[::1] status
    cdef const short[::1] cls_col
    cdef const int[::1] target_col
    cdef bint has_status, has_cls, has_target
    cdef readonly long long skipped         # left out by a weight below one (not_sent)
    cdef bytes skip_message

    cdef long long now(self) noexcept nogil
    cdef void sleep_until(self, long long t) noexcept nogil
    cdef long long spin_until(self, long long t, long long last) noexcept nogil
    cdef long long fake_spin_until(self, long long t, long long last) noexcept nogil
    cdef void note_stall(self, long long before, long long after) noexcept nogil
    cdef long long spin_window(self) noexcept nogil
    cdef void note_wake(self, long long wanted, long long woke) noexcept nogil
    cdef bint read_control(self, long long now) noexcept nogil
    cdef long long due_of(self, long long i) noexcept nogil
    cdef bint thinned(self, long long i) noexcept nogil

# The blocks the parent and its workers share, each an int64 array in shared memory indexed by
# these constants. Exported to Python under the same names (cpdef): replayer.run.supervisor
# and replayer.run.worker index them; the pacer reads the control block in C (a Python global
# there would be a dict lookup per iteration).

# Control block: one for the run, written by the parent, read by every pacer. A request's due
# time is START_NS + t * TIME_SCALE_PPM / 1e6 until the parent re-bases the schedule clock
# (a live rate change or pause: replayer.run.live): then ORIGIN_NS + (t - ORIGIN_T) * SCALE_PPB
# / 1e9, frozen at ORIGIN_T while PAUSED. The parent writes the fields from SEQ on as a seqlock
# (publish_control): SEQ is odd while it writes, so a pacer never uses a torn set.
cpdef enum:
    CONTROL_START_NS = 0        # run start, CLOCK_REALTIME ns; 0 until the parent sets it
    CONTROL_STOP = 1            # 0 run, STOP_DRAIN or STOP_ABORT
    CONTROL_TIME_SCALE_PPM = 2  # trace time multiplier in millionths (1_000_000 = as recorded)
    CONTROL_SEQ = 3             # 0: never re-based; odd: being written; even: published
    CONTROL_ORIGIN_NS = 4       # CLOCK_REALTIME ns at which the schedule clock read ORIGIN_T
    CONTROL_ORIGIN_T = 5        # schedule time (t_ns units) at ORIGIN_NS
    CONTROL_SCALE_PPB = 6       # real ns per schedule ns, in billionths (time scale / rate)
    CONTROL_PAUSED = 7          # 1: no request is handed over; the clock stands at ORIGIN_T
    CONTROL_THINNING = 8        # 1: some weight below WEIGHT_ONE (checked per request)
    CONTROL_CLASS_WEIGHTS = 9   # index of the per-class weights in the block (0: none)
    CONTROL_N_CLASSES = 10
    CONTROL_TARGET_WEIGHTS = 11  # index of the per-target weights (0: none)
    CONTROL_N_TARGETS = 12
    CONTROL_SIZE = 16           # the fixed part; the weights follow it

# Weights (share of a class's or a target's requests sent; the rest are recorded not_sent)
cpdef enum:
    WEIGHT_ONE = 1000000        # in millionths

# How long a pacer waits at most before it looks at the control block again (a sleep or a
# transport's wait is cut into pieces this long): a change applies within it.
cpdef enum:
    CONTROL_CHECK_NS = 20000000

# CONTROL_STOP values
cpdef enum:
    STOP_DRAIN = 1              # stop scheduling, wait for the requests in flight
    STOP_ABORT = 2              # stop at once

# Status block: one row of STATUS_FIELDS per worker, written by the worker, read by the parent.
cpdef enum:
    ST_STATE = 0                # STATE_* below
    ST_PID = 1
    ST_SUBMITTED = 2            # the pacer's counters, once it returns
    ST_OVERLOADED = 3
    ST_NOT_SENT = 4
    ST_CPU_NS = 5               # CPU time (user + system) of the run itself
    ST_RING_WAITS = 6           # times the ring was full
    ST_EVENTS = 7               # events in the worker's share
    ST_SPIN_WINDOW_NS = 8       # the spin window at the end
    # CPU stalls: two consecutive clock reads of the pacer, while it spun, busy-polled or
    # handed over a request, more than its stall threshold apart (Pacer.note_stall)
    ST_STALLS = 9
    ST_STALLS_100US = 10        # of them, longer than 100 µs
    ST_STALLS_1MS = 11          # longer than 1 ms
    ST_STALL_MAX_NS = 12        # the longest
    ST_STALL_NS = 13            # their total: time the CPU was taken away
    ST_RUN_NS = 14              # from the run's start to the end of the worker's sends
    ST_CONTROL_SEQ = 15         # the control block's SEQ the pacer applied last (live, release)
    ST_CONTROL_NS = 16          # when it applied it (CLOCK_REALTIME ns)
    ST_INFLIGHT = 17            # requests in flight now (live)
    ST_SKIPPED = 18             # requests left out by a weight below one (live)
    STATUS_FIELDS = 19

# ST_STATE values
cpdef enum:
    STATE_STARTING = 0
    STATE_READY = 1
    STATE_RUNNING = 2
    STATE_DONE = 3
    STATE_FAILED = 4

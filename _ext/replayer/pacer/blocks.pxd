# The blocks the parent and its workers share, each an int64 array in shared memory indexed by
# these constants. Exported to Python under the same names (cpdef): replayer.run.supervisor
# and replayer.run.worker index them; the pacer reads the control block in C (a Python global
# there would be a dict lookup per iteration).

# Control block: one for the run, written by the parent, read by every pacer.
cpdef enum:
    CONTROL_START_NS = 0        # run start, CLOCK_REALTIME ns; 0 until the parent sets it
    CONTROL_STOP = 1            # 0 run, STOP_DRAIN or STOP_ABORT
    CONTROL_TIME_SCALE_PPM = 2  # trace time multiplier in millionths (1_000_000 = as recorded)
    CONTROL_SIZE = 8

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
    STATUS_FIELDS = 15

# ST_STATE values
cpdef enum:
    STATE_STARTING = 0
    STATE_READY = 1
    STATE_RUNNING = 2
    STATE_DONE = 3
    STATE_FAILED = 4

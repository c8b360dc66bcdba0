# C externs for time and memory order: the clock every record is stamped with, absolute
# sleeps, the spin-wait hint and the acquire/release accesses of the shared blocks. All
# callable without the GIL.
cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    ctypedef int clockid_t
    int CLOCK_REALTIME
    int CLOCK_MONOTONIC
    int TIMER_ABSTIME
    int clock_gettime(clockid_t clk, timespec *ts)
    int clock_nanosleep(clockid_t clk, int flags, const timespec *req, timespec *rem)

cdef inline long long realtime_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <long long>ts.tv_sec * 1000000000LL + ts.tv_nsec

cdef inline void sleep_until_realtime_ns(long long t) noexcept nogil:
    # Absolute sleep: no drift from the time spent before the call.
    cdef timespec ts
    ts.tv_sec = <time_t>(t // 1000000000LL)
    ts.tv_nsec = <long>(t % 1000000000LL)
    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL)

cdef extern from *:
    """
    static inline void replayer_cpu_relax(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #elif defined(__aarch64__)
        __asm__ __volatile__("yield");
    #endif
    }
    static inline long long replayer_load_acquire(const long long *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void replayer_store_release(long long *p, long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    """
    void cpu_relax "replayer_cpu_relax" () noexcept nogil
    long long load_acquire "replayer_load_acquire" (const long long *p) noexcept nogil
    void store_release "replayer_store_release" (long long *p, long long v) noexcept nogil

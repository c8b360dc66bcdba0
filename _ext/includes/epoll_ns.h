/* epoll_wait with a nanosecond timeout, shared by the transports. */
#ifndef REPLAYER_EPOLL_NS_H
#define REPLAYER_EPOLL_NS_H

#include <errno.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* epoll_wait with a nanosecond timeout (Linux 5.11+): the pacer waits for completions up to
 * `spin` before the next due time, so a millisecond timeout would wake it late. Falls back to
 * epoll_wait with the timeout rounded down to whole milliseconds (the pacer polls again). */
static int replayer_pwait2_missing = 0;

static inline int rc_epoll_wait_ns(int epfd, struct epoll_event *events, int max, long long timeout_ns) {
    if (timeout_ns < 0)
        timeout_ns = 0;
#ifdef SYS_epoll_pwait2
    if (!replayer_pwait2_missing) {
        struct timespec ts;
        int n;
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        n = (int)syscall(SYS_epoll_pwait2, epfd, events, max, &ts, NULL, 0);
        if (n >= 0 || errno != ENOSYS)
            return n;
        replayer_pwait2_missing = 1;
    }
#endif
    return epoll_wait(epfd, events, max, (int)(timeout_ns / 1000000LL));
}

#endif

# epoll, as the transports use it: the events they wait for, and a wait with a nanosecond
# timeout (epoll_ns.h).

cdef extern from "<sys/epoll.h>" nogil:
    cdef union epoll_data:
        int fd
        unsigned long long u64
    cdef struct epoll_event:
        unsigned int events
        epoll_data data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL
    unsigned int EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP

cdef extern from "epoll_ns.h" nogil:
    int rc_epoll_wait_ns(int epfd, epoll_event *events, int max, long long timeout_ns)

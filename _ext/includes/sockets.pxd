# The socket calls replayer's own HTTP/1.1 client makes (non-blocking TCP, MSG_TRUNC reads),
# and the two libc calls both transports share.

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    cdef struct sockaddr:
        unsigned short sa_family
    ctypedef long ssize_t
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr *addr, socklen_t length)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
    int setsockopt(int fd, int level, int name, const void *value, socklen_t length)
    int SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, MSG_NOSIGNAL, MSG_TRUNC, SOL_SOCKET, SO_ERROR

cdef extern from "<netinet/in.h>" nogil:
    int IPPROTO_TCP

cdef extern from "<netinet/tcp.h>" nogil:
    int TCP_NODELAY

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *a, const char *b, size_t n)

# Where the native HTTP client sends: the hosts (host:port, as libcurl counts them) whose
# connections carry the targets' requests (built once per target and payload: the worker's
# ContentTable), with the FIFO of requests waiting for a connection.

cdef enum:
    MAX_ADDRS = 4            # addresses tried per target (IPv6 and IPv4 of a name, say)
    ADDR_SIZE = 28           # sizeof(struct sockaddr_in6), the largest kind used
    NAME_TEXT = 128          # a host's "name:port", for failure messages
    ADDR_TEXT = 48           # an address's "[v6 address]:port", for failure messages


ctypedef struct Host:
    # One host:port: its addresses, its connections (at most the transport's `connections`,
    # shared by every target on it) and the requests waiting for one.
    char addrs[MAX_ADDRS][ADDR_SIZE]
    int addr_lens[MAX_ADDRS]
    int n_addrs
    char name[NAME_TEXT]
    char addr_text[MAX_ADDRS][ADDR_TEXT]
    int preferred            # the address that last took a connection
    int n_conns              # connections open or dialling
    int idle                 # first idle connection (linked by Conn.next_idle), -1 none
    # Requests waiting for a connection, a circular FIFO of (event, scheduled_ns, the pacer's
    # cause, the pacer's hand-over time)
    long long *queue
    long long q_head, q_len, q_cap

cdef enum:
    QUEUED = 4               # long longs per waiting request

cdef int host_enqueue(Host *h, long long event, long long scheduled_ns, signed char cause,
                      long long handed_ns) except -1
cdef bint host_dequeue(Host *h, long long *event, long long *scheduled_ns, signed char *cause,
                       long long *handed_ns) noexcept nogil

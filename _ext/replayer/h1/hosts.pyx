# The hosts' waiting requests (a FIFO that grows), and the text of their addresses.

cdef int host_enqueue(Host *h, long long event, long long scheduled_ns, signed char cause,
                      long long handed_ns) except -1:
    cdef long long *grown
    cdef long long k, n
    if h.q_len == h.q_cap:
        n = max(64, 2 * h.q_cap)
        grown = <long long *> malloc(QUEUED * n * sizeof(long long))
        if grown == NULL:
            raise MemoryError()
        for k in range(h.q_len):       # unwrap the ring into the new array
            memcpy(&grown[QUEUED * k], &h.queue[QUEUED * ((h.q_head + k) % h.q_cap)],
                   QUEUED * sizeof(long long))
        free(h.queue)
        h.queue = grown
        h.q_head = 0
        h.q_cap = n
    k = QUEUED * ((h.q_head + h.q_len) % h.q_cap)
    h.queue[k] = event
    h.queue[k + 1] = scheduled_ns
    h.queue[k + 2] = cause
    h.queue[k + 3] = handed_ns
    h.q_len += 1
    return 0


cdef bint host_dequeue(Host *h, long long *event, long long *scheduled_ns, signed char *cause,
                       long long *handed_ns) noexcept nogil:
    """The request that waited longest, False if none waits."""
    if h.q_len == 0:
        return False
    event[0] = h.queue[QUEUED * h.q_head]
    scheduled_ns[0] = h.queue[QUEUED * h.q_head + 1]
    cause[0] = <signed char> h.queue[QUEUED * h.q_head + 2]
    handed_ns[0] = h.queue[QUEUED * h.q_head + 3]
    h.q_head = (h.q_head + 1) % h.q_cap
    h.q_len -= 1
    return True


def address_text(bytes packed):
    """'127.0.0.1:80' or '[::1]:80' of a packed sockaddr_in / sockaddr_in6."""
    import socket
    import struct
    family = struct.unpack("=H", packed[:2])[0]
    if family == socket.AF_INET and len(packed) >= 8:
        return f"{socket.inet_ntop(socket.AF_INET, packed[4:8])}:{struct.unpack('!H', packed[2:4])[0]}"
    if family == socket.AF_INET6 and len(packed) >= 24:
        return f"[{socket.inet_ntop(socket.AF_INET6, packed[8:24])}]:{struct.unpack('!H', packed[2:4])[0]}"
    return f"an address of family {family}"

# W3C trace context ids written in place into a request's traceparent header, shared by the
# transports: trace id = run prefix + event, span id = event + 1 (as
# replayer.transports.traceparent, which replayer.tracing uses for the spans it posts).

cdef extern from *:
    """
    static const char replayer_hex_digits[] = "0123456789abcdef";
    """
    const char *HEX_DIGITS "replayer_hex_digits"


cdef inline void write_hex(char *out, unsigned long long v, int digits) noexcept nogil:
    cdef int k
    for k in range(digits - 1, -1, -1):
        out[k] = HEX_DIGITS[v & 15]
        v >>= 4


cdef inline void write_trace_ids(char *ids, unsigned long long trace_high,
                                 unsigned long long event) noexcept nogil:
    # `ids` points at "<32 hex trace id>-<16 hex span id>" in "traceparent: 00-...-01"
    write_hex(ids, trace_high, 16)
    write_hex(ids + 16, event, 16)
    write_hex(ids + 33, event + 1, 16)

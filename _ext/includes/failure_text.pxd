# Bounded text for failure messages (failure_text.h): the transports build "what failed: why"
# into a stack buffer on a failure path, without allocating or formatting.

cdef extern from "failure_text.h" nogil:
    size_t text_append "rp_text_append" (char *buf, size_t size, size_t at, const char *s)
    size_t text_append_int "rp_text_append_int" (char *buf, size_t size, size_t at, long long v)

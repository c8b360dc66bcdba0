# The HTTP/1.x answer parser over a small struct: no Python objects, no allocation, callable
# without the GIL. It reads the status line and the headers that frame the body (its length,
# chunked transfer, Connection), then the body: a length, chunks with their extensions and
# trailers, or up to the server's close. The transport (h1/transport.pyx) owns the bytes.

cdef enum:
    MAX_HEAD = 262144        # status line + headers; beyond it the answer is malformed
    MAX_LINE = 4096          # a chunk-size or trailer line

# Where the parser is
cdef enum AnswerPhase:
    P_HEAD
    P_LENGTH                 # Content-Length bytes left
    P_UNTIL_CLOSE            # no length: the body ends when the server closes
    P_CHUNK_SIZE
    P_CHUNK_DATA
    P_CHUNK_END              # the CRLF after a chunk's data
    P_TRAILER

# answer_feed() and answer_dropped() results (and parse_head's INTERIM)
cdef enum:
    MORE = 0
    DONE = 1
    BAD = -1
    INTERIM = 2              # parse_head: a 1xx answer, the real one follows

ctypedef struct Answer:
    AnswerPhase phase
    int status
    int close_after          # the server will close, or the connection cannot be trusted
    bint head_request        # a HEAD request's answer has no body, whatever its headers say
    long long scan           # P_HEAD: where the search for the blank line resumes
    long long remaining      # body bytes left (P_LENGTH) or chunk bytes left (P_CHUNK_DATA)
    long long body_bytes
    const char *why          # what is wrong with a malformed answer

cdef void answer_start(Answer *a, bint head_request) noexcept nogil
cdef int answer_feed(Answer *a, const char *buf, long long length,
                     long long *used) noexcept nogil
cdef long long answer_droppable(const Answer *a) noexcept nogil
cdef int answer_dropped(Answer *a, long long n) noexcept nogil
cdef bint answer_ends_at_close(const Answer *a) noexcept nogil

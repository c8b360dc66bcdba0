# libcurl's callbacks: plain C, called inside socket_action, on the transfer's slot or the
# transport's loop (the sockets libcurl wants watched, and its timer).

ctypedef struct Slot:
    CURL *easy
    long long event
    long long scheduled_ns
    long long sent_ns
    int index            # in the transport's slot table
    int pair             # the (target, payload) template it is set up for (URL, method, body,
                         # headers; ContentTable), -1 none
    int target           # that pair's target (its admission count), -1 none
    int busy             # submitted, not yet recorded
    int in_multi         # handed to libcurl (else waiting in its target's queue)
    int next_queued      # next slot index in the target's queue, -1 last
    int grpc_status      # from the grpc-status header or trailer, -1 not seen
    long long handed_ns  # when the pacer handed it over
    signed char cause    # of its request (CAUSE_*): the pacer's, or that it waited for admission
    long timeout_ms      # its CURLOPT_TIMEOUT_MS: the run's, or its request's class's
    # Its request's content where the pair's template has fields: the slot's own copies of the
    # body and header lines, filled in place (before the due time, and in stamp_sent for the
    # send-time fields, with `values`).
    const Template *late # the template whose send-time fields stamp_sent fills, NULL none
    FillValues values
    ContentBuffer body   # POSTFIELDS, when own_body
    curl_slist *headers  # HTTPHEADER, when own_headers: the lines of template `headers_pair`
    int headers_pair
    bint own_body, own_headers
    char error[256]      # libcurl's error text for the transfer (CURLOPT_ERRORBUFFER,
                         # CURL_ERROR_SIZE bytes)
    char grpc_message[FAILURE_TEXT]    # the grpc-message trailer, percent-decoded


cdef enum:
    MAX_FDS = 65536      # socket numbers the transport can watch (RLIMIT_NOFILE is below)


ctypedef struct Loop:
    int epfd
    long long timer_ns   # libcurl's next timeout, CLOCK_REALTIME ns; -1 none
    unsigned char wanted[MAX_FDS]        # libcurl watches this socket
    unsigned int registered[MAX_FDS]     # epoll events it is registered with, 0 none


cdef void fill_slot(Slot *s, const Template *t, const FillValues *v, bint late) noexcept nogil
cdef size_t discard_body(char *data, size_t size, size_t n, void *user) noexcept nogil
cdef int stamp_sent(void *user, char *primary_ip, char *local_ip, int primary_port,
                    int local_port) noexcept nogil
cdef size_t read_grpc_status(char *line, size_t size, size_t n, void *user) noexcept nogil
cdef void percent_decode(const char *value, size_t length, char *out, size_t size) noexcept nogil
cdef int watch_socket(CURL *easy, int fd, int what, void *user, void *socketp) noexcept nogil
cdef int close_socket(void *user, int fd) noexcept nogil
cdef int set_timer(CURLM *multi, long timeout_ms, void *user) noexcept nogil

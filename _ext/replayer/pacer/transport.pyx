# The transport base: the pacer's seams (submit, flush, poll, abort) and the failure log.

cdef class Transport:
    """Base of every transport. Subclasses (Python or Cython) own their in-flight state and
    must write exactly one ring row per submitted request, then decrement `inflight`."""

    def __cinit__(self):
        memset(self.failures, 0, sizeof(self.failures))

    def __init__(self, RecordRing ring):
        self.ring = ring
        self.inflight = 0
        self.lead_ns = 0
        self.brief_submit = False
        self.prepares = False

    cdef void note_failure(self, signed char kind, long long event, long long now,
                           const char *message) noexcept nogil:
        """Count one failed request in the failure log, under its message (see transport.pxd).
        Called on failure paths only: a few string compares and at most one bounded copy."""
        cdef FailureKindLog *log
        cdef FailureMessage *m
        cdef int k
        if kind <= 0 or kind >= N_ERROR_KINDS:
            return
        log = &self.failures[kind]
        if log.count == 0:
            log.first_event = event
            log.first_ns = now
        log.count += 1
        if message == NULL:
            message = ""
        for k in range(log.n_messages):
            if strncmp(log.messages[k].text, message, FAILURE_TEXT - 1) == 0:
                log.messages[k].count += 1
                return
        if log.n_messages < FAILURE_MESSAGES:
            m = &log.messages[log.n_messages]
            text_append(m.text, FAILURE_TEXT, 0, message)
            m.count = 1
            log.n_messages += 1
        else:
            log.other += 1

    def note(self, int kind, long long event, long long now, message):
        """note_failure for transports written in Python (grpcio)."""
        cdef bytes text = message.encode("utf-8", "replace") if isinstance(message, str) \
            else bytes(message)
        self.note_failure(<signed char> kind, event, now, text)

    def failure_log(self):
        """The failure log as a dict: {kind: {"count", "first": {"message", "event",
        "time_ns"}, "messages": [{"message", "count"}] in first-seen order,
        "other_messages": failures whose message was not kept}}, failed kinds only."""
        cdef int kind, k
        cdef FailureKindLog *log
        out = {}
        for kind in range(N_ERROR_KINDS):
            log = &self.failures[kind]
            if log.count == 0:
                continue
            messages = [{"message": log.messages[k].text.decode("utf-8", "replace"),
                         "count": log.messages[k].count} for k in range(log.n_messages)]
            out[ERROR_KINDS[kind]] = {
                "count": log.count,
                "first": {"message": messages[0]["message"] if messages else "",
                          "event": log.first_event, "time_ns": log.first_ns},
                "messages": messages,
                "other_messages": log.other,
            }
        return out

    cpdef int prepare(self, long long event, long long scheduled_ns) except -1:
        """Fill what `event` carries that is known before its due time (ids, random values),
        so that at the due time only the send-time fields are left (with `prepares`)."""
        return 0

    cpdef int submit(self, long long event, long long scheduled_ns, long long sent_ns,
                     signed char cause) except -1:
        """Send `event`, due at scheduled_ns, handed over at sent_ns; `cause` (CAUSE_*) is the
        pacer's word on why it comes when it does, for its ring row (a transport that held it
        back for a connection says CAUSE_CONNECTION instead of CAUSE_NONE)."""
        raise NotImplementedError

    cpdef int flush(self) except -1:
        """Put what was submitted in this burst on the wire."""
        return 0

    cpdef int poll(self, long long timeout_ns) except -1:
        """Handle completions, waiting up to timeout_ns for them."""
        return 0

    cpdef int abort(self) except -1:
        """Record every request still in flight as cancelled."""
        return 0

    def close(self):
        pass

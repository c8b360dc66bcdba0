# Per-request content: filling a template's fields, a request's own copy of it, and the table
# of templates and classes a worker's transport sends from.

cdef void fill_part(const Template *t, int part, char *buf, const FillValues *v,
                    bint late) noexcept nogil:
    """Write the fields of `part` into buf (a copy of it): those that must be the send time
    when `late`, the others before (ids, times known in advance, random values)."""
    cdef int k
    cdef const Fill *f
    cdef unsigned long long value
    cdef rc_rng rng
    for k in range(t.n_fills):
        f = &t.fills[k]
        if f.part != part:
            continue
        if (f.kind == FILL_SENT_NS or f.kind == FILL_DEADLINE_NS) != late:
            continue
        if f.kind == FILL_RANDOM_F32 or f.kind == FILL_RANDOM_BYTES:
            rc_rng_seed(&rng, v.seed, <unsigned long long> v.event, <unsigned long long> k)
            if f.kind == FILL_RANDOM_F32:
                rc_fill_random_f32(buf + f.at, f.width, &rng)
            else:
                rc_fill_random_bytes(buf + f.at, f.width, &rng)
            continue
        if f.kind == FILL_TRACE_IDS:
            write_trace_ids(buf + f.at, v.trace_high, <unsigned long long> v.event)
            continue
        if f.kind == FILL_SENT_NS:
            value = <unsigned long long> v.sent_ns
        elif f.kind == FILL_DEADLINE_NS:
            value = <unsigned long long> (v.sent_ns + v.slo_ns)
        elif f.kind == FILL_SCHEDULED_NS:
            value = <unsigned long long> v.scheduled_ns
        else:
            value = <unsigned long long> v.event
        if f.encoding == ENC_VARINT:
            rc_write_varint(buf + f.at, value, <int> f.width)
        else:
            rc_write_decimal(buf + f.at, value, <int> f.width,
                             b' ' if f.encoding == ENC_DECIMAL else b'0')


cdef int buffer_load(ContentBuffer *b, const Template *t, int pair, int part) except -1:
    """Make b a copy of the template's part (unless it holds one already)."""
    cdef long long n = t.part_lens[part]
    cdef char *grown
    if b.pair == pair and b.part == part:
        return 0
    if b.cap < n + 1:
        grown = <char *> realloc(b.data, n + 1)
        if grown == NULL:
            raise MemoryError()
        b.data = grown
        b.cap = n + 1
    memcpy(b.data, t.parts[part], n)
    b.data[n] = 0                # URL and header parts are C strings
    b.pair = pair
    b.part = part
    return 0


cdef void buffer_swap(ContentBuffer *a, ContentBuffer *b) noexcept nogil:
    cdef ContentBuffer tmp = a[0]
    a[0] = b[0]
    b[0] = tmp


cdef void buffer_free(ContentBuffer *b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.cap = 0
    b.pair = -1


@cython.final
cdef class ContentTable:
    """Each event's template and class, for one worker's transport.

    target_of, payload_of (None: no payloads) and cls_of (None: no classes) are the schedule's
    columns; pairs: {(target, payload): index} of the pairs this worker sends (payload -1: the
    target's default); templates: per pair index, (parts, fills, bytes_out, flags), parts a
    list of bytes and fills a list of (kind, encoding, part, at, width); slo_ns, timeout_ns: per class (0: none,
    the run's); seed: of the random fields; trace_high: the run's trace id prefix (fields of
    kind FILL_TRACE_IDS); period: closed-loop users' columns, one row per user (see row)."""

    def __cinit__(self):
        self.pair_of = NULL
        self.templates = NULL
        self.slo_ns = NULL
        self.timeout_ns = NULL

    def __init__(self, const int[::1] target_of, payload_of, cls_of, int n_targets,
                 int n_payloads, dict pairs, list templates, list slo_ns=None,
                 list timeout_ns=None, unsigned long long seed=0, trace_high=None,
                 long long period=0):
        cdef int k, p, n
        cdef Template *t
        if period < 0:
            raise ValueError("period must be 0 (none) or positive")
        self.period = period
        self.target_of = target_of
        self.has_payloads = payload_of is not None
        if self.has_payloads:
            self.payload_of = payload_of
        self.has_classes = cls_of is not None
        if self.has_classes:
            self.cls_of = cls_of
        self.n_targets = n_targets
        self.n_payloads = n_payloads
        self.seed = seed
        self.tracing = trace_high is not None
        self.trace_high = trace_high if trace_high is not None else 0
        n = n_targets * (n_payloads + 1)
        self.pair_of = <int *> malloc(max(1, n) * sizeof(int))
        if self.pair_of == NULL:
            raise MemoryError()
        for k in range(n):
            self.pair_of[k] = -1
        for (target, payload), index in pairs.items():
            if not (0 <= target < n_targets and -1 <= payload < n_payloads
                    and 0 <= index < len(templates)):
                raise ValueError(f"pair {(target, payload)} -> {index} out of range")
            self.pair_of[target * (n_payloads + 1) + payload + 1] = index
        self.n_pairs = len(templates)
        self.templates = <Template *> calloc(max(1, self.n_pairs), sizeof(Template))
        if self.templates == NULL:
            raise MemoryError()
        for k, (parts, fills, bytes_out, flags) in enumerate(templates):
            t = &self.templates[k]
            t.bytes_out = bytes_out
            t.flags = flags
            t.n_parts = len(parts)
            t.parts = <char **> calloc(max(1, t.n_parts), sizeof(char *))
            t.part_lens = <long long *> calloc(max(1, t.n_parts), sizeof(long long))
            t.fills = <Fill *> calloc(max(1, len(fills)), sizeof(Fill))
            if t.parts == NULL or t.part_lens == NULL or t.fills == NULL:
                raise MemoryError()
            for p, data in enumerate(parts):
                t.part_lens[p] = len(data)
                self.largest_part = max(self.largest_part, len(data))
                t.parts[p] = <char *> malloc(len(data) + 1)
                if t.parts[p] == NULL:
                    raise MemoryError()
                memcpy(t.parts[p], <const char *> data, len(data))
                t.parts[p][len(data)] = 0
            for kind, encoding, part, at, width in fills:
                if not 0 <= part < t.n_parts or at < 0 or width <= 0:
                    raise ValueError(f"template {k}: field out of its part")
                size = 4 * width if kind == FILL_RANDOM_F32 else (
                    48 + 1 if kind == FILL_TRACE_IDS else width)
                if at + size > t.part_lens[part]:
                    raise ValueError(f"template {k}: field at {at} (+{size}) beyond part "
                                     f"{part} ({t.part_lens[part]} bytes)")
                t.fills[t.n_fills] = Fill(kind, encoding, part, at, width)
                t.n_fills += 1
                if kind == FILL_SENT_NS or kind == FILL_DEADLINE_NS:
                    t.has_late = True
                else:
                    t.has_early = True
        n = len(slo_ns or [])
        self.n_classes = n
        self.slo_ns = <long long *> calloc(max(1, n), sizeof(long long))
        self.timeout_ns = <long long *> calloc(max(1, n), sizeof(long long))
        if self.slo_ns == NULL or self.timeout_ns == NULL:
            raise MemoryError()
        for k in range(n):
            self.slo_ns[k] = slo_ns[k] or 0
            self.timeout_ns[k] = (timeout_ns[k] or 0) if timeout_ns is not None else 0

    cdef void values(self, FillValues *v, long long event, long long scheduled_ns) noexcept nogil:
        cdef int k = self.cls(event)
        v.event = event
        v.scheduled_ns = scheduled_ns
        v.sent_ns = 0
        v.slo_ns = self.slo_ns[k] if k >= 0 and k < self.n_classes else 0
        v.seed = self.seed
        v.trace_high = self.trace_high

    def render(self, long long event, long long scheduled_ns, long long sent_ns, int part=0):
        """The bytes of `event`'s template part, every field filled (for tests and for the
        grpcio transport, which needs a bytes object per request anyway)."""
        cdef int pair
        cdef FillValues v
        cdef const Template *t
        if event < 0 or not 0 <= self.row(event) < self.target_of.shape[0]:
            raise ValueError(f"event {event} is not in the schedule")
        pair = self.pair(event)
        if pair < 0:
            raise ValueError(f"event {event}: no template for its target and payload")
        t = self.template(pair)
        if not 0 <= part < t.n_parts:
            raise ValueError(f"part {part} out of range")
        out = bytearray(t.parts[part][:t.part_lens[part]])
        self.values(&v, event, scheduled_ns)
        v.sent_ns = sent_ns
        fill_part(t, part, out, &v, False)
        fill_part(t, part, out, &v, True)
        return bytes(out)

    def early_fields(self, int pair):
        """Whether a pair's template has fields filled before the due time."""
        return bool(self.templates[pair].has_early) if 0 <= pair < self.n_pairs else False

    def pair_index(self, long long event):
        """The template index of `event` (-1: none)."""
        return self.pair(event)

    cdef void release(self) noexcept:
        cdef int k, p
        if self.templates != NULL:
            for k in range(self.n_pairs):
                for p in range(self.templates[k].n_parts):
                    free(self.templates[k].parts[p])
                free(self.templates[k].parts)
                free(self.templates[k].part_lens)
                free(self.templates[k].fills)
            free(self.templates)
            self.templates = NULL
        free(self.pair_of)
        self.pair_of = NULL
        free(self.slo_ns)
        self.slo_ns = NULL
        free(self.timeout_ns)
        self.timeout_ns = NULL

    def __dealloc__(self):
        self.release()

# The field writers of fill.h: padded varints, fixed-width digits, seeded random values.

cdef extern from "fill.h" nogil:
    ctypedef struct rc_rng:
        pass
    void rc_write_varint(char *out, unsigned long long v, int width)
    void rc_write_decimal(char *out, unsigned long long v, int width, char pad)
    void rc_rng_seed(rc_rng *r, unsigned long long seed, unsigned long long event,
                     unsigned long long field)
    void rc_fill_random_bytes(char *out, long long n, rc_rng *r)
    void rc_fill_random_f32(char *out, long long n, rc_rng *r)

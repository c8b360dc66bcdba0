# The closed-loop users' random numbers (users_rng.h).

cdef extern from "users_rng.h" nogil:
    unsigned long long ru_next(unsigned long long *state)
    double ru_uniform(unsigned long long *state)
    unsigned long long ru_hash(unsigned long long seed, unsigned long long event)

/* The closed-loop users' random numbers (replayer._pacer UserPacer): one splitmix64 stream per
 * user for its think times, and a hash of (seed, event) that picks a sampled body. Python
 * recomputes the hash for the records (replayer.run.users.sampled_index): keep them equal. */
#ifndef REPLAYER_USERS_RNG_H
#define REPLAYER_USERS_RNG_H

/* 64-bit unsigned arithmetic (wraps), as unsigned long long: the type Cython passes. */
static inline unsigned long long ru_next(unsigned long long *state) {
    unsigned long long z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static inline double ru_uniform(unsigned long long *state) {
    return (double)(ru_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static inline unsigned long long ru_hash(unsigned long long seed, unsigned long long event) {
    unsigned long long x = seed ^ (event * 0xD1B54A32D192ED03ULL);
    return ru_next(&x);
}

#endif

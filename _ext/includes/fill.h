/* Writers for the fields of a payload filled at send time (replayer._pacer content): padded
 * protobuf varints, fixed-width decimal digits, and fresh random bytes or float32 values from
 * a seeded xoshiro256+ generator. Plain C: no allocation, nothing but the output written. */
#ifndef REPLAYER_FILL_H
#define REPLAYER_FILL_H

#include <stdint.h>
#include <string.h>

/* A varint padded to `width` bytes (1..10): every byte but the last carries the continuation
 * bit, so parsers read the same value as from the shortest encoding. */
static inline void rc_write_varint(char *out, uint64_t v, int width) {
    int k;
    for (k = 0; k < width - 1; k++) {
        out[k] = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    out[width - 1] = (char)(v & 0x7F);
}

/* v right-aligned in `width` characters, padded with `pad` (' ' or '0'). The caller checks
 * that every value fits (times take 19 digits); a value that did not would keep its lowest. */
static inline void rc_write_decimal(char *out, uint64_t v, int width, char pad) {
    int k = width - 1;
    do {
        out[k--] = (char)('0' + v % 10);
        v /= 10;
    } while (v && k >= 0);
    while (k >= 0)
        out[k--] = pad;
}

typedef struct { uint64_t s[4]; } rc_rng;

static inline uint64_t rc_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One stream per (run seed, event, field): the same seed gives the same values for an event
 * in any run, whichever worker sends it. */
static inline void rc_rng_seed(rc_rng *r, uint64_t seed, uint64_t event, uint64_t field) {
    uint64_t x = seed ^ (event * 0xD1B54A32D192ED03ULL) ^ (field * 0xABC98388FB8FAC03ULL);
    r->s[0] = rc_splitmix64(&x);
    r->s[1] = rc_splitmix64(&x);
    r->s[2] = rc_splitmix64(&x);
    r->s[3] = rc_splitmix64(&x);
}

static inline uint64_t rc_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rc_rng_next(rc_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = s[0] + s[3];
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rc_rotl(s[3], 45);
    return result;
}

static inline void rc_fill_random_bytes(char *out, int64_t n, rc_rng *r) {
    uint64_t v;
    while (n >= 8) {
        v = rc_rng_next(r);
        memcpy(out, &v, 8);
        out += 8;
        n -= 8;
    }
    if (n > 0) {
        v = rc_rng_next(r);
        memcpy(out, &v, (size_t)n);
    }
}

/* Little-endian float32 in [0, 1), two per generator step: 23 random bits as the mantissa
 * of a float in [1, 2), less 1 (no integer-to-float conversion; every value a multiple of
 * 2^-23). */
static inline void rc_fill_random_f32(char *out, int64_t n, rc_rng *r) {
    uint32_t bits[2];
    float pair[2];
    uint64_t v;
    while (n >= 2) {
        v = rc_rng_next(r);
        bits[0] = (uint32_t)(v >> 41) | 0x3F800000u;
        bits[1] = (uint32_t)((v >> 9) & 0x7FFFFFu) | 0x3F800000u;
        memcpy(pair, bits, 8);
        pair[0] -= 1.0f;
        pair[1] -= 1.0f;
        memcpy(out, pair, 8);
        out += 8;
        n -= 2;
    }
    if (n > 0) {
        v = rc_rng_next(r);
        bits[0] = (uint32_t)(v >> 41) | 0x3F800000u;
        memcpy(pair, bits, 4);
        pair[0] -= 1.0f;
        memcpy(out, pair, 4);
    }
}

#endif

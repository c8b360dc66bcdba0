/* Bounded text for failure messages, written into fixed buffers on a failure path: no
 * allocation, no formatting library, never past `size` (the result is always terminated). */
#ifndef REPLAYER_FAILURE_TEXT_H
#define REPLAYER_FAILURE_TEXT_H

#include <stddef.h>
#include <string.h>

/* Appends s at buf[at]; returns the new length (at most size - 1). */
static inline size_t rp_text_append(char *buf, size_t size, size_t at, const char *s) {
    if (size == 0)
        return 0;
    if (s == NULL)
        s = "";
    while (at + 1 < size && *s)
        buf[at++] = *s++;
    buf[at] = '\0';
    return at;
}

/* Appends the decimal digits of v at buf[at]; returns the new length. */
static inline size_t rp_text_append_int(char *buf, size_t size, size_t at, long long v) {
    char digits[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < 22);
    if (v < 0)
        digits[n++] = '-';
    while (n > 0 && at + 1 < size)
        buf[at++] = digits[--n];
    if (size)
        buf[at < size ? at : size - 1] = '\0';
    return at;
}

#endif

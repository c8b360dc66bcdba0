/* The machine's own hiccups: spin on one CPU reading the clock for SECONDS and count the gaps
 * between reads (the loop lost the CPU: to the hypervisor, an interrupt, another task). Whatever
 * a pacer on that CPU does, its lag tails cannot be smaller than these. Prints one JSON line.
 * Usage: hiccups SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    long long start = now_ns(), end = start + (long long)(seconds * 1e9), prev = start;
    long long over_10us = 0, over_100us = 0, over_1ms = 0, lost_ns = 0, longest = 0;
    for (;;) {
        long long t = now_ns(), gap = t - prev;
        prev = t;
        if (gap > 10000) {
            over_10us++;
            lost_ns += gap;
            if (gap > 100000)
                over_100us++;
            if (gap > 1000000)
                over_1ms++;
            if (gap > longest)
                longest = gap;
        }
        if (t >= end)
            break;
    }
    double elapsed = (prev - start) / 1e9;
    printf("{\"seconds\": %.3f, \"gaps_over_10us\": %lld, \"gaps_over_100us\": %lld, "
           "\"gaps_over_1ms\": %lld, \"longest_us\": %.1f, \"lost_pct\": %.3f}\n",
           elapsed, over_10us, over_100us, over_1ms, longest / 1e3, 100.0 * lost_ns / (elapsed * 1e9));
    return 0;
}

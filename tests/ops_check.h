/* Helpers shared by the backend op tests (tests/test_ops_cpu*.c): a seeded random
 * source, float <-> double copies, and a central-difference gradient check against a
 * double-precision reference forward written in the test. */
#ifndef GRPO_TESTS_OPS_CHECK_H
#define GRPO_TESTS_OPS_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* splitmix64: a fixed, seeded stream so failures reproduce. */
typedef struct { uint64_t state; } ops_rng;

static inline uint64_t ops_rng_next(ops_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline float ops_rng_uniform(ops_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((ops_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

static inline int ops_rng_int(ops_rng *r, int n) { return (int)(ops_rng_next(r) % (uint64_t)n); }

/* A float array of n values in [lo, hi) (caller frees). */
static inline float *ops_random(ops_rng *r, size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = ops_rng_uniform(r, lo, hi);
    return x;
}

/* The exact double values of a float array (caller frees). */
static inline double *ops_to_double(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *ops_copy(const float *x, size_t n) {
    float *c = malloc((n ? n : 1) * sizeof *c);
    for (size_t i = 0; i < n; i++) c[i] = x[i];
    return c;
}

/* max |got - want| / max(max |want|, floor) with want in double. */
static inline double ops_rel_err_d(const float *got, const double *want, size_t n, double floor_) {
    double maxdiff = 0, maxref = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d != d) return INFINITY;
        if (d > maxdiff) maxdiff = d;
        if (fabs(want[i]) > maxref) maxref = fabs(want[i]);
    }
    return maxdiff / maxref;
}

/* A scalar loss evaluated in double by the test's reference forward. */
typedef double (*ops_loss_fn)(void *ctx);

/* Central differences (loss(x + h) - loss(x - h)) / 2h, h = 1e-5 |x| (at least 1e-6),
 * on the double input x[n] that the loss reads, compared with the backend's gradient
 * grad[n]. At most `samples` coordinates are checked (all when samples >= n; else a
 * seeded random subset). Returns max |fd - grad| / max(max |fd|, 1e-3): truncation and
 * rounding errors of the difference itself are ~1e-9, so what remains is the float32
 * error of the backend. `what` names the tensor in the failure printout. */
static inline double ops_fd_check(const char *what, ops_loss_fn loss, void *ctx, double *x, size_t n,
                                  const float *grad, size_t samples, ops_rng *r) {
    double maxdiff = 0, maxref = 1e-3;
    size_t worst = 0;
    size_t count = samples < n ? samples : n;
    for (size_t s = 0; s < count; s++) {
        size_t i = count == n ? s : (size_t)(ops_rng_next(r) % n);
        double x0 = x[i], h = fabs(x0) * 1e-5;
        if (h < 1e-6) h = 1e-6;
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double d = fabs(fd - (double)grad[i]);
        if (d != d) d = INFINITY;
        if (d > maxdiff) { maxdiff = d; worst = i; }
        if (fabs(fd) > maxref) maxref = fabs(fd);
    }
    double err = maxdiff / maxref;
    if (err > 1e-4)
        fprintf(stderr, "  fd check %s: rel err %.3g (worst index %zu: backend %.9g)\n", what, err, worst,
                (double)grad[worst]);
    return err;
}

#endif

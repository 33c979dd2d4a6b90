/* A tiny assertion harness for the ctest executables: each CHECK prints what differed
 * (expected, got, where) and marks the test failed; TEST_MAIN returns the exit code.
 * Exit code 77 means "skipped" (ctest's SKIP_RETURN_CODE). */
#ifndef GRPO_TEST_HARNESS_H
#define GRPO_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failures;
static int harness_checks;

#define CHECK(cond) do { harness_checks++; if (!(cond)) { harness_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { harness_checks++; if (!(cond)) { harness_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_INT(expected, got) do { long long e_ = (long long)(expected), g_ = (long long)(got); \
    harness_checks++; if (e_ != g_) { harness_failures++; \
    fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, e_, g_); } } while (0)
#define CHECK_STR(expected, got) do { const char *e_ = (expected), *g_ = (got); harness_checks++; \
    if (!e_ || !g_ || strcmp(e_, g_) != 0) { harness_failures++; \
    fprintf(stderr, "%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, #got, \
            e_ ? e_ : "(null)", g_ ? g_ : "(null)"); } } while (0)
/* |got - expected| <= atol + rtol * |expected| */
#define CHECK_NEAR(expected, got, atol, rtol) do { double e_ = (expected), g_ = (got); harness_checks++; \
    if (!(fabs(g_ - e_) <= (atol) + (rtol) * fabs(e_))) { harness_failures++; \
    fprintf(stderr, "%s:%d: %s: expected %.9g, got %.9g (diff %.3g)\n", __FILE__, __LINE__, #got, \
            e_, g_, fabs(g_ - e_)); } } while (0)
/* A status-returning call that must succeed; prints the error message otherwise. */
#define CHECK_OK(expr) do { int s_ = (int)(expr); harness_checks++; if (s_ != 0) { harness_failures++; \
    fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, grpo_error_message()); } } while (0)
/* A call that must fail with a message containing `needle` (NULL: any message). */
#define CHECK_FAILS(expr, needle) do { int s_ = (int)(expr); harness_checks++; \
    const char *m_ = grpo_error_message(); \
    if (s_ == 0) { harness_failures++; fprintf(stderr, "%s:%d: %s succeeded, expected failure\n", \
        __FILE__, __LINE__, #expr); } \
    else if ((needle) && !strstr(m_, (needle))) { harness_failures++; \
        fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, #expr, m_, (needle)); } \
    } while (0)

/* Largest relative error max|a-b| / max(max|b|, floor) over n floats. */
static inline double harness_max_rel_err(const float *a, const float *b, long n, double floor_) {
    double maxdiff = 0, maxref = floor_;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxdiff || d != d) maxdiff = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > maxref) maxref = fabs((double)b[i]);
    }
    return maxdiff / maxref;
}

/* Path under the source tree (GRPO_SOURCE_DIR is set by ctest). Static buffer. */
static inline const char *harness_source_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("GRPO_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

#define TEST_MAIN_END() do { \
    printf("%d checks, %d failed\n", harness_checks, harness_failures); \
    return harness_failures ? 1 : 0; } while (0)
#define TEST_SKIP(...) do { printf("SKIP: "); printf(__VA_ARGS__); printf("\n"); return 77; } while (0)

#endif

/* Flag parsing helpers for the subcommands (tools/args.h). */
#include "tools/args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int arg_match(int argc, char **argv, int *i, const char *flag, const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (strncmp(a, flag, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "grpo: %s expects a value\n", flag);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int arg_int(const char *cmd, const char *flag, const char *value, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi) {
        fprintf(stderr, "grpo %s: %s: expected an integer in [%" PRId64 ", %" PRId64 "], found '%s'\n", cmd, flag,
                lo, hi, value);
        return 0;
    }
    *out = v;
    return 1;
}

int arg_double(const char *cmd, const char *flag, const char *value, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "grpo %s: %s: expected a number in [%g, %g], found '%s'\n", cmd, flag, lo, hi, value);
        return 0;
    }
    *out = v;
    return 1;
}

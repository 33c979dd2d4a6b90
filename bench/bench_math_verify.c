/* Throughput of the math verifier on one core: verify_math over every case of a case
 * table (default tests/fixtures/math_cases.jsonl), repeated, as verifications per second.
 * Also writes our verdict per case as JSONL (--out) for bench/math_verify_ref.py, which
 * runs Math-Verify on the same cases and reports agreement.
 *
 *   bench_math_verify [--cases FILE] [--out FILE] [--seconds S] [--min-repeats R]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verifiers/math.h"

typedef struct {
    char *gold, *response;
    int expected;
    int last_number;
} bench_case;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int load(const char *path, bench_case **out, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "bench_math_verify: cannot open %s\n", path); return 0; }
    int cap = 256, n = 0, lineno = 0;
    bench_case *cases = malloc(sizeof *cases * (size_t)cap);
    char line[65536];
    while (cases && fgets(line, sizeof line, f)) {
        lineno++;
        json_error_t err;
        json_t *obj = json_loads(line, 0, &err);
        const char *g = obj ? json_string_value(json_object_get(obj, "gold")) : NULL;
        const char *r = obj ? json_string_value(json_object_get(obj, "response")) : NULL;
        if (!g || !r) {
            fprintf(stderr, "%s:%d: expected {\"gold\": .., \"response\": ..}\n", path, lineno);
            json_decref(obj);
            continue;
        }
        if (n == cap) {
            bench_case *nc = realloc(cases, sizeof *cases * (size_t)(cap *= 2));
            if (!nc) break;
            cases = nc;
        }
        cases[n].gold = strdup(g);
        cases[n].response = strdup(r);
        cases[n].expected = json_is_true(json_object_get(obj, "expected"));
        cases[n].last_number = json_is_true(json_object_get(json_object_get(obj, "options"), "last_number_fallback"));
        n++;
        json_decref(obj);
    }
    fclose(f);
    *out = cases;
    *count = n;
    return cases != NULL && n > 0;
}

int main(int argc, char **argv) {
    const char *cases_path = NULL, *out_path = NULL;
    double seconds = 2.0;
    int min_repeats = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cases") && i + 1 < argc) cases_path = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--min-repeats") && i + 1 < argc) min_repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--cases FILE] [--out FILE] [--seconds S] [--min-repeats R]\n", argv[0]);
            return 2;
        }
    }
    char default_path[4096];
    if (!cases_path) {
        const char *root = getenv("GRPO_SOURCE_DIR");
        snprintf(default_path, sizeof default_path, "%s/tests/fixtures/math_cases.jsonl", root ? root : ".");
        cases_path = default_path;
    }
    bench_case *cases;
    int n;
    if (!load(cases_path, &cases, &n)) return 1;
    verify_math_options base, with_last;
    verify_math_options_default(&base);
    with_last = base;
    with_last.last_number_fallback = 1;

    /* one pass for the verdicts */
    int agree = 0;
    FILE *out = out_path ? fopen(out_path, "w") : NULL;
    if (out_path && !out) { fprintf(stderr, "bench_math_verify: cannot write %s\n", out_path); return 1; }
    for (int i = 0; i < n; i++) {
        verify_math_result r;
        verify_math(cases[i].gold, cases[i].response, cases[i].last_number ? &with_last : &base, &r);
        agree += r.correct == cases[i].expected;
        if (out) {
            json_t *o = json_pack("{s:i, s:b, s:s, s:s, s:s}", "index", i, "correct", r.correct, "status",
                                  verify_math_status_name(r.status), "rule", verify_math_rule_name(r.rule),
                                  "extracted", r.extracted);
            char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            fprintf(out, "%s\n", s);
            free(s);
            json_decref(o);
        }
    }
    if (out) fclose(out);

    /* timed passes */
    long verifications = 0;
    int repeats = 0;
    double t0 = now_s(), elapsed = 0;
    volatile int sink = 0;
    while (repeats < min_repeats || elapsed < seconds) {
        for (int i = 0; i < n; i++) {
            verify_math_result r;
            verify_math(cases[i].gold, cases[i].response, cases[i].last_number ? &with_last : &base, &r);
            sink += r.correct;
        }
        verifications += n;
        repeats++;
        elapsed = now_s() - t0;
    }
    printf("cases: %d (%s)\n", n, cases_path);
    printf("agreement with the table's expected verdicts: %d/%d\n", agree, n);
    printf("verifications: %ld in %.3f s over %d repeats\n", verifications, elapsed, repeats);
    printf("throughput: %.0f verifications/s on one core (%.2f us each)\n", (double)verifications / elapsed,
           1e6 * elapsed / (double)verifications);
    for (int i = 0; i < n; i++) { free(cases[i].gold); free(cases[i].response); }
    free(cases);
    return 0;
}

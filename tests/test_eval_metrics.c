/* pass@k against the combinatorial definition, maj@k voting, aggregation. */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "rl/eval_metrics.h"

/* C(n, k) as a double, directly. */
static double binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

static int same_ci(const char *a, const char *b, void *ctx) {
    (void)ctx;
    return strcasecmp(a, b) == 0;
}

int main(void) {
    for (int n = 1; n <= 16; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                double expect = 1.0 - binom(n - c, k) / binom(n, k);
                CHECK_NEAR(expect, eval_pass_at_k(n, c, k), 1e-12, 1e-10);
            }
    CHECK_NEAR(0.25, eval_pass_at_k(8, 2, 1), 0, 1e-12);   /* pass@1 = c / n */
    CHECK_NEAR(1.0, eval_pass_at_k(8, 8, 3), 0, 0);
    CHECK_NEAR(0.0, eval_pass_at_k(8, 0, 8), 0, 0);

    const char *votes[] = {"12", "7", "12", "", NULL, "7", "12"};
    CHECK_INT(0, eval_majority(votes, 7, NULL, NULL));
    CHECK_INT(0, eval_majority(votes, 2, NULL, NULL));     /* tie 12 vs 7: the earliest group wins */
    CHECK_INT(0, eval_majority(votes + 1, 3, NULL, NULL)); /* 7, 12, "": tie, 7 (index 0) came first */
    const char *none[] = {"", NULL};
    CHECK_INT(-1, eval_majority(none, 2, NULL, NULL));
    const char *cased[] = {"Yes", "no", "YES", "No", "no"};
    CHECK_INT(1, eval_majority(cased, 5, same_ci, NULL));

    eval_summary s = {0};
    int c1[4] = {1, 0, 0, 0}, l1[4] = {10, 20, 30, 40};
    int c2[4] = {1, 1, 1, 1}, l2[4] = {5, 5, 5, 5};
    eval_summary_add(&s, 4, c1, l1, 4, 0);
    eval_summary_add(&s, 4, c2, l2, 4, 1);
    eval_summary_finish(&s);
    CHECK_INT(2, s.problems);
    CHECK_NEAR((0.25 + 1.0) / 2, s.pass_at_1, 0, 1e-12);
    CHECK_NEAR((1.0 + 1.0) / 2, s.pass_at_k, 0, 1e-12);
    CHECK_NEAR(0.5, s.maj_at_k, 0, 1e-12);
    CHECK_NEAR((25.0 + 5.0) / 2, s.mean_length, 0, 1e-12);
    TEST_MAIN_END();
}

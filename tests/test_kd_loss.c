/* The logit-distillation loss (rl/kd_loss.h) against an independent float64 computation
 * (sorting for the top-k, direct softmax), its gradient against central finite
 * differences, the top-k truncation (renormalised, ties to lower ids), the mask, the
 * denominator, vocabularies of different widths, and bad input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "harness.h"
#include "rl/kd_loss.h"

static void fill_random(float *x, size_t n, uint64_t seed, double scale) {
    rng_stream r = rng_stream_make(seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * rng_next_uniform(&r) - 1.0));
}

/* Reference: ids of the k largest of z[0..V) by sorting (value descending, id ascending). */
static const float *sort_z;
static int by_value_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_z[i] != sort_z[j]) return sort_z[i] > sort_z[j] ? -1 : 1;
    return i - j;
}

/* Reference row: T^2 KL(p || q) and its gradient (before the 1/denominator), all in double,
 * computed as p and q probabilities directly (no log-sum-exp sharing with the code). */
static double ref_row(const float *zs, int Vs, const float *zt, int Vt, double T, int top_k, double *grad) {
    int V = Vs < Vt ? Vs : Vt, k = top_k > 0 && top_k < V ? top_k : V;
    int *ids = malloc((size_t)V * sizeof *ids);
    for (int i = 0; i < V; i++) ids[i] = i;
    sort_z = zt;
    qsort(ids, (size_t)V, sizeof *ids, by_value_desc);
    double *p = calloc((size_t)Vs, sizeof *p), *q = malloc((size_t)Vs * sizeof *q);
    double zp = 0, zq = 0, top = zt[ids[0]], smax = zs[0];
    for (int j = 0; j < Vs; j++) smax = zs[j] > smax ? zs[j] : smax;
    for (int c = 0; c < k; c++) zp += exp((zt[ids[c]] - top) / T);
    for (int c = 0; c < k; c++) p[ids[c]] = exp((zt[ids[c]] - top) / T) / zp;
    for (int j = 0; j < Vs; j++) zq += exp((zs[j] - smax) / T);
    for (int j = 0; j < Vs; j++) q[j] = exp((zs[j] - smax) / T) / zq;
    double kl = 0;
    for (int j = 0; j < Vs; j++)
        if (p[j] > 0) kl += p[j] * log(p[j] / q[j]);
    for (int j = 0; j < Vs && grad; j++) grad[j] = T * (q[j] - p[j]);
    free(ids);
    free(p);
    free(q);
    return T * T * kl;
}

static void check_against_reference(int N, int Vs, int Vt, double T, int top_k, const uint8_t *mask, double denominator,
                                    uint64_t seed) {
    float *zs = malloc((size_t)N * Vs * sizeof *zs), *zt = malloc((size_t)N * Vt * sizeof *zt);
    float *g = malloc((size_t)N * Vs * sizeof *g);
    double *rg = malloc((size_t)Vs * sizeof *rg);
    fill_random(zs, (size_t)N * Vs, seed, 3.0);
    fill_random(zt, (size_t)N * Vt, seed + 1, 4.0);
    kd_options o = {.temperature = T, .top_k = top_k};
    double loss = -1;
    CHECK_OK(kd_loss(&o, N, zs, Vs, zt, Vt, mask, denominator, &loss, g));
    int counted = 0;
    for (int n = 0; n < N; n++) counted += !mask || mask[n];
    double denom = denominator > 0 ? denominator : counted, ref = 0, max_err = 0, max_g = 0;
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) {
            for (int j = 0; j < Vs; j++) CHECK(g[(size_t)n * Vs + j] == 0.0f);
            continue;
        }
        ref += ref_row(zs + (size_t)n * Vs, Vs, zt + (size_t)n * Vt, Vt, T, top_k, rg);
        double row_sum = 0;
        for (int j = 0; j < Vs; j++) {
            double d = fabs(g[(size_t)n * Vs + j] - rg[j] / denom);
            max_err = d > max_err ? d : max_err;
            max_g = fabs(rg[j] / denom) > max_g ? fabs(rg[j] / denom) : max_g;
            row_sum += g[(size_t)n * Vs + j];
        }
        CHECK_NEAR(0.0, row_sum, 1e-5, 0);   /* shift invariance: the gradient sums to 0 */
    }
    ref /= denom;
    CHECK(ref > 0);
    CHECK_NEAR(ref, loss, 1e-9, 1e-6);
    CHECK_MSG(max_err <= 1e-6 * (max_g > 1 ? max_g : 1), "gradient vs reference: max abs err %.3g (max |g| %.3g)",
              max_err, max_g);

    /* Central finite differences of the loss on a few student logits per counted row
     * (h a power of two, so the perturbed floats are exact). */
    const float h = 1.0f / 256;
    double worst = 0;
    rng_stream r = rng_stream_make(seed, 7);
    for (int trial = 0; trial < 24; trial++) {
        int n = (int)rng_next_below(&r, (uint32_t)N), j = (int)rng_next_below(&r, (uint32_t)Vs);
        size_t at = (size_t)n * Vs + j;
        float keep = zs[at];
        double lp, lm;
        zs[at] = keep + h;
        CHECK_OK(kd_loss(&o, N, zs, Vs, zt, Vt, mask, denominator, &lp, NULL));
        zs[at] = keep - h;
        CHECK_OK(kd_loss(&o, N, zs, Vs, zt, Vt, mask, denominator, &lm, NULL));
        zs[at] = keep;
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[at]) / (fabs(fd) + 1e-4);
        worst = err > worst ? err : worst;
    }
    CHECK_MSG(worst < 2e-3, "finite differences: worst relative error %.3g (T %g, top_k %d)", worst, T, top_k);
    free(zs);
    free(zt);
    free(g);
    free(rg);
}

static void test_values_and_gradients(void) {
    check_against_reference(5, 40, 40, 1.0, 0, NULL, 0, 11);
    check_against_reference(5, 40, 40, 2.0, 0, NULL, 0, 12);
    check_against_reference(6, 40, 40, 2.0, 7, NULL, 0, 13);
    check_against_reference(6, 40, 40, 0.5, 1, NULL, 0, 14);
    uint8_t mask[6] = {0, 1, 1, 0, 1, 0};
    check_against_reference(6, 40, 40, 1.5, 5, mask, 0, 15);
    check_against_reference(6, 40, 40, 1.5, 0, mask, 17.0, 16);   /* an outside denominator */
    check_against_reference(4, 48, 40, 1.0, 6, NULL, 0, 17);      /* student vocabulary wider */
    check_against_reference(4, 40, 48, 1.0, 0, NULL, 0, 18);      /* teacher vocabulary wider */
}

static void test_top_k(void) {
    const int V = 10;
    float zt[10], zs[10], g_all[10], g_v[10], g[10];
    fill_random(zt, V, 21, 2.0);
    fill_random(zs, V, 22, 2.0);
    kd_options all = {.temperature = 1.3, .top_k = 0}, full = {.temperature = 1.3, .top_k = V},
               over = {.temperature = 1.3, .top_k = 3 * V};
    double l_all, l_v, l_over;
    CHECK_OK(kd_loss(&all, 1, zs, V, zt, V, NULL, 0, &l_all, g_all));
    CHECK_OK(kd_loss(&full, 1, zs, V, zt, V, NULL, 0, &l_v, g_v));
    CHECK_OK(kd_loss(&over, 1, zs, V, zt, V, NULL, 0, &l_over, NULL));
    CHECK_NEAR(l_all, l_v, 1e-12, 1e-12);   /* top_k >= V is the untruncated KL */
    CHECK_NEAR(l_all, l_over, 1e-12, 1e-12);
    CHECK(harness_max_rel_err(g_v, g_all, V, 1e-6) < 1e-6);

    /* A student equal to the teacher on the kept set and (nearly) -inf elsewhere has loss ~0:
     * the target is renormalised over the top-k, not the teacher's untruncated probabilities. */
    float teacher[10] = {0.5f, 3.0f, -1.0f, 2.0f, 0.0f, 2.5f, -2.0f, 1.0f, -0.5f, 1.5f};
    float student[10];
    kd_options k3 = {.temperature = 1.0, .top_k = 3};
    for (int i = 0; i < V; i++) student[i] = (i == 1 || i == 3 || i == 5) ? teacher[i] : -1e4f;
    double l;
    CHECK_OK(kd_loss(&k3, 1, student, V, teacher, V, NULL, 0, &l, g));
    CHECK_NEAR(0.0, l, 1e-9, 0);
    for (int i = 0; i < V; i++) CHECK_NEAR(0.0, g[i], 1e-7, 0);
    /* The same student against the untruncated teacher is penalised. */
    CHECK_OK(kd_loss(&all, 1, student, V, teacher, V, NULL, 0, &l, NULL));
    CHECK(l > 1.0);

    /* Ties at the k-th value keep the lower ids: teacher all equal, top_k 2 -> p = 1/2 on
     * ids 0 and 1, so with a uniform student g_j = T (1/V - p_j). */
    float flat[10] = {0}, uniform[10] = {0};
    kd_options k2 = {.temperature = 1.0, .top_k = 2};
    CHECK_OK(kd_loss(&k2, 1, uniform, V, flat, V, NULL, 0, &l, g));
    CHECK_NEAR(log(V / 2.0), l, 1e-9, 1e-9);   /* KL(uniform on 2 || uniform on V) */
    CHECK_NEAR(0.1 - 0.5, g[0], 1e-7, 0);
    CHECK_NEAR(0.1 - 0.5, g[1], 1e-7, 0);
    for (int i = 2; i < V; i++) CHECK_NEAR(0.1, g[i], 1e-7, 0);
}

static void test_mask(void) {
    const int N = 4, V = 16;
    float zs[64], zt[64], g[64];
    fill_random(zs, 64, 31, 3.0);
    fill_random(zt, 64, 32, 3.0);
    uint8_t mask[4] = {1, 0, 1, 0};
    kd_options o = kd_options_default();
    double masked, row0, row2, changed;
    CHECK_OK(kd_loss(&o, N, zs, V, zt, V, mask, 0, &masked, g));
    CHECK_OK(kd_loss(&o, 1, zs, V, zt, V, NULL, 0, &row0, NULL));
    CHECK_OK(kd_loss(&o, 1, zs + 2 * V, V, zt + 2 * V, V, NULL, 0, &row2, NULL));
    CHECK_NEAR((row0 + row2) / 2, masked, 1e-12, 1e-9);   /* the mean over the counted rows */
    for (int j = 0; j < V; j++) CHECK(g[V + j] == 0.0f && g[3 * V + j] == 0.0f);
    /* Rows outside the mask do not matter, even with non-finite logits. */
    for (int j = 0; j < V; j++) zs[V + j] = NAN;
    CHECK_OK(kd_loss(&o, N, zs, V, zt, V, mask, 0, &changed, NULL));
    CHECK_NEAR(masked, changed, 0, 0);
    /* Nothing counted: loss 0, gradient 0. */
    uint8_t none[4] = {0};
    CHECK_OK(kd_loss(&o, N, zs, V, zt, V, none, 0, &changed, g));
    CHECK(changed == 0);
    for (int i = 0; i < 64; i++) CHECK(g[i] == 0.0f);
}

static void test_bad_input(void) {
    float zs[8] = {0}, zt[8] = {0};
    double l;
    kd_options o = kd_options_default();
    kd_options bad_t = {.temperature = 0, .top_k = 0}, bad_k = {.temperature = 1, .top_k = -1};
    CHECK_FAILS(kd_loss(&bad_t, 1, zs, 8, zt, 8, NULL, 0, &l, NULL), "kd.temperature");
    CHECK_FAILS(kd_loss(&bad_k, 1, zs, 8, zt, 8, NULL, 0, &l, NULL), "kd.top_k");
    zt[3] = INFINITY;
    CHECK_FAILS(kd_loss(&o, 1, zs, 8, zt, 8, NULL, 0, &l, NULL), "row 0");
    CHECK_FAILS(kd_loss(&o, 1, zs, 0, zt, 8, NULL, 0, &l, NULL), "V_student");
}

int main(void) {
    test_values_and_gradients();
    test_top_k();
    test_mask();
    test_bad_input();
    TEST_MAIN_END();
}

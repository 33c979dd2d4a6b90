/* Token sampling, the per-row maths (core/sample.h) and the CPU backend's sample op:
 *  - the op equals sampler_sample (rollouts/sampler.h) bit for bit on every row, over
 *    every setting of sample_param_cases (greedy, top_k past V, tiny top_p, min_p, their
 *    combinations) and rows with many ties, all equal, one dominant token;
 *  - ldl = 0 draws every row from one row of logits; u may be NULL when greedy;
 *  - the draw is the inverse CDF of sample_distribution: the token's interval of the
 *    cumulative kept mass (id order) holds u (rows where u falls within 1e-9 of a
 *    boundary are skipped), logprob = log q(token), policy_logprob = log softmax(z)[token]
 *    computed here in double;
 *  - frequencies of many draws match sample_distribution (chi-square, a bound far in the
 *    tail: df + 8 sqrt(2 df) + 20);
 *  - a no-sort formulation of top-k / top-p (thresholds by bisection over the order key
 *    of z, then the tie group at the cut; what core/cuda/cuda_sample.cu runs) keeps the
 *    same tokens as the sort in core/sample.c on every case.
 * Inputs are fresh each run (seed printed; GRPO_TEST_SEED repeats one). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/rng.h"
#include "core/sample.h"
#include "rollouts/sampler.h"
#include "tests/harness.h"
#include "tests/sample_cases.h"

static uint64_t seed;
static backend *cpu;

/* ---- the op against sampler_sample ---- */

static void check_op_matches_sampler(int V, int rows_per_kind) {
    const int N = SAMPLE_ROW_KINDS * rows_per_kind;
    float *logits = malloc((size_t)N * V * sizeof(float)), *lp = malloc(N * sizeof(float));
    float *plp = malloc(N * sizeof(float));
    double *u = malloc(N * sizeof(double));
    int32_t *tok = malloc(N * sizeof(int32_t));
    void *scratch = malloc(sampler_scratch_bytes(V));
    sample_params cases[256];
    int n_cases = sample_param_cases(V, cases, 256);
    GRPO_ASSERT(n_cases <= 256);
    int bad = 0;
    for (int c = 0; c < n_cases; c++) {
        for (int i = 0; i < N; i++) {
            sample_fill_row(logits + (size_t)i * V, V, i % SAMPLE_ROW_KINDS, seed, (uint64_t)(c * 1000 + i));
            u[i] = sampler_uniform(seed + (uint64_t)i, (uint64_t)c);
        }
        cpu->sample(cpu, tok, lp, plp, logits, V, N, V, u, cases[c].temperature, cases[c].top_k, cases[c].top_p,
                    cases[c].min_p);
        for (int i = 0; i < N; i++) {
            sampler_result r;
            sampler_sample(&cases[c], logits + (size_t)i * V, V, seed + (uint64_t)i, (uint64_t)c, scratch, &r);
            if (r.token != tok[i] || memcmp(&r.logprob, &lp[i], sizeof(float)) ||
                memcmp(&r.policy_logprob, &plp[i], sizeof(float))) {
                if (bad++ < 5)
                    fprintf(stderr, "V %d case T=%g k=%d p=%g min_p=%g row %d: sampler %d %.9g %.9g, op %d %.9g %.9g\n",
                            V, cases[c].temperature, cases[c].top_k, cases[c].top_p, cases[c].min_p, i, r.token,
                            r.logprob, r.policy_logprob, tok[i], lp[i], plp[i]);
            }
        }
    }
    CHECK_INT(0, bad);
    free(logits);
    free(lp);
    free(plp);
    free(u);
    free(tok);
    free(scratch);
}

/* ldl = 0: every row from the same logits, each with its own u; NULL u when greedy. */
static void check_broadcast_and_greedy(void) {
    const int V = 300, N = 40;
    float *row = malloc(V * sizeof(float)), lp[40], plp[40];
    double u[40];
    int32_t tok[40];
    void *scratch = malloc(sample_scratch_bytes(V));
    sample_fill_row(row, V, 0, seed, 77);
    sample_params p = {0.9f, 20, 0.9f, 0.0f};
    for (int i = 0; i < N; i++) u[i] = rng_uniform(seed, 78, (uint64_t)i);
    cpu->sample(cpu, tok, lp, plp, row, 0, N, V, u, p.temperature, p.top_k, p.top_p, p.min_p);
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        int32_t t;
        float a, b;
        sample_row(&p, row, V, u[i], scratch, &t, &a, &b);
        CHECK_INT(t, tok[i]);
        CHECK(a == lp[i] && b == plp[i]);
        distinct += i > 0 && tok[i] != tok[0];
    }
    CHECK_MSG(distinct > 0, "40 draws from a spread row all gave token %d", tok[0]);
    /* greedy: the argmax (lowest id on ties) with u NULL */
    row[V - 1] = row[3] = 100.0f;
    cpu->sample(cpu, tok, lp, plp, row, 0, 2, V, NULL, 0.0f, 0, 1.0f, 0.0f);
    CHECK_INT(3, tok[0]);
    CHECK_INT(3, tok[1]);
    CHECK(lp[0] == 0.0f);
    free(row);
    free(scratch);
}

/* ---- the draw is the inverse CDF of the distribution ---- */

static void check_inverse_cdf(int V) {
    float *x = malloc(V * sizeof(float));
    double *probs = malloc(V * sizeof(double));
    void *scratch = malloc(sample_scratch_bytes(V));
    sample_params cases[256];
    int n_cases = sample_param_cases(V, cases, 256), checked = 0, bad = 0;
    for (int c = 0; c < n_cases; c++)
        for (int kind = 0; kind < SAMPLE_ROW_KINDS; kind++) {
            const sample_params *p = &cases[c];
            sample_fill_row(x, V, kind, seed ^ 0xabc, (uint64_t)(c * 10 + kind));
            double u = rng_uniform(seed, 91, (uint64_t)(c * 10 + kind));
            int32_t tok;
            float lp, plp;
            sample_row(p, x, V, u, scratch, &tok, &lp, &plp);
            sample_distribution(p, x, V, scratch, probs);
            /* the interval [cdf(tok - 1), cdf(tok)) of the kept mass in id order holds u */
            double below = 0;
            for (int i = 0; i < tok; i++) below += probs[i];
            double above = below + probs[tok];
            if (p->temperature > 0 && (fabs(u - below) < 1e-9 || fabs(u - above) < 1e-9)) continue;
            checked++;
            int ok = probs[tok] > 0 && (p->temperature == 0 || (below <= u && u < above));
            /* logprob: log q(token); policy: log softmax(z)[token] in double here */
            double T = p->temperature > 0 ? p->temperature : 1.0, zmax = -INFINITY, s = 0;
            for (int i = 0; i < V; i++) zmax = fmax(zmax, (double)(x[i] / (float)T));
            for (int i = 0; i < V; i++) s += exp((double)(x[i] / (float)T) - zmax);
            double policy = (double)(x[tok] / (float)T) - zmax - log(s);
            double want_lp = p->temperature > 0 ? log(probs[tok]) : 0.0;
            ok = ok && fabs(lp - want_lp) <= 1e-5 + 1e-6 * fabs(want_lp) &&
                 fabs(plp - policy) <= 1e-5 + 1e-6 * fabs(policy);
            if (!ok && bad++ < 5)
                fprintf(stderr, "V %d T=%g k=%d p=%g min_p=%g kind %d u %.17g: token %d [%.17g, %.17g) lp %.9g (want "
                        "%.9g) plp %.9g (want %.9g)\n", V, p->temperature, p->top_k, p->top_p, p->min_p, kind, u, tok,
                        below, above, lp, want_lp, plp, policy);
        }
    CHECK_INT(0, bad);
    CHECK_MSG(checked > n_cases * 4, "only %d of %d cases checked", checked, n_cases * SAMPLE_ROW_KINDS);
    free(x);
    free(probs);
    free(scratch);
}

/* ---- frequencies of many draws (the op, one row broadcast) ---- */

static void check_frequencies(void) {
    const int V = 40, N = 100000;
    float *x = malloc(V * sizeof(float)), *lp = malloc(N * sizeof(float)), *plp = malloc(N * sizeof(float));
    double *u = malloc(N * sizeof(double)), probs[40];
    int32_t *tok = malloc(N * sizeof(int32_t));
    void *scratch = malloc(sample_scratch_bytes(V));
    const sample_params cases[] = {{1.0f, 0, 1.0f, 0.0f}, {0.8f, 10, 1.0f, 0.0f}, {1.2f, 0, 0.9f, 0.0f},
                                   {1.0f, 25, 0.95f, 0.02f}};
    for (int c = 0; c < 4; c++) {
        const sample_params *p = &cases[c];
        sample_fill_row(x, V, c == 3 ? 1 : 0, seed, 500 + (uint64_t)c);
        for (int i = 0; i < V; i++) x[i] *= 0.3f;   /* a spread the draws can see */
        for (int i = 0; i < N; i++) u[i] = sampler_uniform(seed + 1000 + (uint64_t)c, (uint64_t)i);
        cpu->sample(cpu, tok, lp, plp, x, 0, N, V, u, p->temperature, p->top_k, p->top_p, p->min_p);
        int kept = sample_distribution(p, x, V, scratch, probs);
        long count[40] = {0};
        int outside = 0;
        for (int i = 0; i < N; i++) {
            count[tok[i]]++;
            outside += probs[tok[i]] == 0;
        }
        double chi2 = 0;
        for (int i = 0; i < V; i++)
            if (probs[i] > 0) chi2 += (count[i] - N * probs[i]) * (count[i] - N * probs[i]) / (N * probs[i]);
        int df = kept - 1;
        double bound = df + 8 * sqrt(2.0 * (df > 0 ? df : 1)) + 20;
        CHECK_INT(0, outside);
        CHECK_MSG(kept > 3, "case %d keeps %d tokens", c, kept);
        CHECK_MSG(chi2 < bound, "case %d: chi-square %.1f with %d degrees of freedom (bound %.1f)", c, chi2, df, bound);
    }
    free(x);
    free(lp);
    free(plp);
    free(u);
    free(tok);
    free(scratch);
}

/* ---- a no-sort formulation of the truncation (cuda_sample.cu's) against the sort ---- */

static uint32_t order_key(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float key_value(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* keep[V]: 1 for the tokens top-k and top-p keep, by thresholds only (sampling; T > 0). */
static void keep_by_bisection(const sample_params *p, const float *x, int V, int *keep) {
    float zmax = -INFINITY, kth = -INFINITY, zf = -INFINITY;
    int idf = V, n_kept = V;
    float *z = malloc(V * sizeof(float));
    for (int i = 0; i < V; i++) zmax = fmaxf(zmax, z[i] = x[i] / p->temperature);
    if (p->top_k > 0 && p->top_k < V) {
        uint32_t lo = 0, hi = 0xffffffffu;
        while (lo < hi) {
            uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
            int c = 0;
            for (int i = 0; i < V; i++) c += order_key(z[i]) >= mid;
            if (c >= p->top_k) lo = mid;
            else hi = mid - 1;
        }
        kth = key_value(lo);
        n_kept = 0;
        for (int i = 0; i < V; i++) n_kept += z[i] >= kth;
    }
    if (p->top_p < 1.0f && n_kept > 1) {
        double total = 0, limit = 1.0 - (double)p->top_p;
        for (int i = 0; i < V; i++)
            if (z[i] >= kth) total += exp((double)z[i] - zmax);
        uint32_t lo = kth == -INFINITY ? 0u : order_key(kth), hi = order_key(zmax);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            double a = 0;
            for (int i = 0; i < V; i++)
                if (z[i] >= kth && order_key(z[i]) <= mid) a += exp((double)z[i] - zmax) / total;
            if (a > limit) hi = mid;
            else lo = mid + 1;
        }
        zf = key_value(hi);
        double below = 0;
        int group = 0;
        for (int i = 0; i < V; i++) {
            if (z[i] >= kth && z[i] < zf) below += exp((double)z[i] - zmax) / total;
            group += z[i] == zf;
        }
        double pf = exp((double)zf - zmax) / total, cum = below;
        int k = 0;
        for (; k < group - 1; k++) {
            cum += pf;
            if (cum > limit) break;
        }
        int stay = group - k, seen = 0;
        for (int i = 0; i < V; i++)
            if (z[i] == zf && ++seen == stay) idf = i;
    }
    for (int i = 0; i < V; i++) {
        keep[i] = z[i] >= kth && (z[i] > zf || (z[i] == zf && i <= idf));
        if (p->min_p > 0.0f && exp((double)z[i] - zmax) < (double)p->min_p) keep[i] = 0;
    }
    free(z);
}

static void check_no_sort_truncation(int V) {
    float *x = malloc(V * sizeof(float));
    double *probs = malloc(V * sizeof(double));
    int *keep = malloc(V * sizeof(int));
    void *scratch = malloc(sample_scratch_bytes(V));
    sample_params cases[256];
    int n_cases = sample_param_cases(V, cases, 256), bad = 0;
    for (int c = 0; c < n_cases; c++) {
        if (cases[c].temperature == 0.0f) continue;
        for (int kind = 0; kind < SAMPLE_ROW_KINDS; kind++) {
            sample_fill_row(x, V, kind, seed ^ 0x5eed, (uint64_t)(c * 10 + kind));
            sample_distribution(&cases[c], x, V, scratch, probs);
            keep_by_bisection(&cases[c], x, V, keep);
            int diff = 0;
            for (int i = 0; i < V; i++) diff += keep[i] != (probs[i] > 0);
            if (diff && bad++ < 5)
                fprintf(stderr, "V %d T=%g k=%d p=%g min_p=%g kind %d: %d tokens kept differently\n", V,
                        cases[c].temperature, cases[c].top_k, cases[c].top_p, cases[c].min_p, kind, diff);
        }
    }
    CHECK_INT(0, bad);
    free(x);
    free(probs);
    free(keep);
    free(scratch);
}

int main(void) {
    seed = sample_test_seed();
    cpu = backend_cpu_create();
    CHECK(cpu != NULL);
    if (!cpu) TEST_MAIN_END();
    CHECK_OK(BACKEND_REQUIRE(cpu, sample));
    const int Vs[] = {1, 2, 7, 50, 1000};
    for (int i = 0; i < 5; i++) {
        check_op_matches_sampler(Vs[i], 4);
        check_inverse_cdf(Vs[i]);
        check_no_sort_truncation(Vs[i]);
    }
    check_broadcast_and_greedy();
    check_frequencies();
    backend_free(cpu);
    TEST_MAIN_END();
}

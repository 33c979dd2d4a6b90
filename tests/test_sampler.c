/* The token sampler (rollouts/sampler.h):
 *  - truncation against transformers' warpers (fixture from make_sampler_fixtures.py:
 *    temperature, top-k with ties, top-p, min-p and their combinations);
 *  - truncation against a direct rank-counting reference on larger random rows;
 *  - temperature: the sampled distribution and policy log-prob are softmax(logits / T);
 *    greedy is the argmax with policy log-prob at T = 1;
 *  - draws: empirical frequencies match the distribution, the returned log-probs are
 *    those of the drawn token, and a (seed, position) pair always gives the same token;
 *  - stop strings: matches spanning pieces, the earliest match wins, long pieces, offsets;
 *  - parameter checks. */
#include <math.h>
#include <stdlib.h>

#include "core/safetensors.h"
#include "rollouts/sampler.h"
#include "tests/harness.h"

static uint64_t lcg_state = 2024;
static double lcg_uniform(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}
static double lcg_normal(void) {
    double u1 = lcg_uniform() + 1e-12, u2 = lcg_uniform();
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- against transformers' warpers ---- */

static void check_hf_fixture(void) {
    st_file *f;
    CHECK_OK(st_open(harness_source_path("tests/fixtures/sampler/warpers.safetensors"), &f));
    if (!f) return;
    const st_tensor *tl = st_find(f, "logits");
    CHECK(tl != NULL);
    if (!tl) {
        st_close(f);
        return;
    }
    int R = (int)tl->shape[0], V = (int)tl->shape[1];
    float *logits = malloc((size_t)R * V * sizeof(float)), *params = malloc((size_t)R * 4 * sizeof(float));
    float *probs = malloc((size_t)R * V * sizeof(float));
    CHECK_OK(st_load_f32(f, "logits", logits, (int64_t)R * V));
    CHECK_OK(st_load_f32(f, "params", params, (int64_t)R * 4));
    CHECK_OK(st_load_f32(f, "probs", probs, (int64_t)R * V));
    void *scratch = malloc(sampler_scratch_bytes(V));
    double *mine = malloc((size_t)V * sizeof(double));
    int mismatched_rows = 0;
    double max_err = 0;
    for (int r = 0; r < R; r++) {
        sampler_params p = {params[r * 4], (int)params[r * 4 + 1], params[r * 4 + 2], params[r * 4 + 3]};
        CHECK_OK(sampler_params_validate(&p));
        int kept = sampler_distribution(&p, logits + (size_t)r * V, V, scratch, mine);
        int hf_kept = 0, same = 1;
        for (int i = 0; i < V; i++) {
            float ref = probs[(size_t)r * V + i];
            hf_kept += ref > 0;
            if ((ref > 0) != (mine[i] > 0)) same = 0;
            double err = fabs(mine[i] - ref);
            if (err > max_err) max_err = err;
        }
        if (!same || kept != hf_kept) {
            mismatched_rows++;
            fprintf(stderr, "row %d (T %g, top_k %d, top_p %g, min_p %g): kept %d tokens, transformers %d\n", r,
                    p.temperature, p.top_k, p.top_p, p.min_p, kept, hf_kept);
        }
    }
    CHECK_INT(0, mismatched_rows);
    /* transformers' softmax runs in float32 */
    CHECK_MSG(max_err < 2e-6, "probabilities vs transformers: max error %.3g", max_err);
    printf("transformers warpers: %d rows, kept sets equal, max prob error %.3g\n", R, max_err);
    free(logits);
    free(params);
    free(probs);
    free(scratch);
    free(mine);
    st_close(f);
}

/* ---- against a direct reference ---- */

/* HF's rules by counting: top-k keeps z_i with fewer than k larger; top-p keeps i when the
 * mass at or below i in ascending order (ties: higher id first) exceeds 1 - top_p, or i is
 * the top; min-p keeps p_i >= min_p * p_max. */
static int reference_keep(const sampler_params *p, const float *logits, int V, double *probs) {
    double *z = malloc((size_t)V * sizeof(double));
    int *keep = malloc((size_t)V * sizeof(int));
    const float T = p->temperature > 0 ? p->temperature : 1.0f;
    for (int i = 0; i < V; i++) {
        z[i] = (double)(logits[i] / T);
        keep[i] = 1;
    }
    if (p->top_k > 0)
        for (int i = 0; i < V; i++) {
            int larger = 0;
            for (int j = 0; j < V; j++) larger += z[j] > z[i];
            if (larger >= p->top_k) keep[i] = 0;
        }
    double zmax = -INFINITY;
    for (int i = 0; i < V; i++)
        if (z[i] > zmax) zmax = z[i];
    if (p->top_p < 1.0f) {
        double total = 0;
        for (int i = 0; i < V; i++)
            if (keep[i]) total += exp(z[i] - zmax);
        int *next = malloc((size_t)V * sizeof(int));
        for (int i = 0; i < V; i++) {
            next[i] = keep[i];
            if (!keep[i]) continue;
            double below = 0;
            int is_top = 1;
            for (int j = 0; j < V; j++) {
                if (!keep[j]) continue;
                if (z[j] < z[i] || (z[j] == z[i] && j >= i)) below += exp(z[j] - zmax) / total;
                else is_top = 0;
            }
            next[i] = is_top || below > 1.0 - (double)p->top_p;
        }
        memcpy(keep, next, (size_t)V * sizeof(int));
        free(next);
    }
    if (p->min_p > 0)
        for (int i = 0; i < V; i++)
            if (keep[i] && exp(z[i] - zmax) < p->min_p) keep[i] = 0;
    double total = 0;
    int n = 0;
    for (int i = 0; i < V; i++) total += (probs[i] = keep[i] ? exp(z[i] - zmax) : 0.0), n += keep[i];
    for (int i = 0; i < V; i++) probs[i] /= total;
    free(z);
    free(keep);
    return n;
}

static void check_reference(void) {
    const int V = 300;
    float *logits = malloc(V * sizeof(float));
    double *mine = malloc(V * sizeof(double)), *ref = malloc(V * sizeof(double));
    void *scratch = malloc(sampler_scratch_bytes(V));
    int bad = 0, rows = 0;
    for (int r = 0; r < 120; r++) {
        double scale = 0.5 + 4 * lcg_uniform();
        for (int i = 0; i < V; i++) logits[i] = (float)(scale * lcg_normal());
        if (r % 5 == 0)
            for (int i = 0; i < V; i++) logits[i] = roundf(logits[i]);   /* many ties */
        sampler_params p = {(float)(0.3 + 1.5 * lcg_uniform()), r % 3 == 0 ? 0 : 1 + (int)(lcg_uniform() * 60),
                            r % 4 == 0 ? 1.0f : (float)(0.05 + 0.9 * lcg_uniform()),
                            r % 2 == 0 ? 0.0f : (float)(0.3 * lcg_uniform())};
        int n = sampler_distribution(&p, logits, V, scratch, mine);
        int m = reference_keep(&p, logits, V, ref);
        int same = n == m;
        for (int i = 0; i < V; i++)
            if ((mine[i] > 0) != (ref[i] > 0) || fabs(mine[i] - ref[i]) > 1e-12) same = 0;
        if (!same) {
            bad++;
            fprintf(stderr, "row %d (T %g, top_k %d, top_p %g, min_p %g): kept %d, reference %d\n", r,
                    p.temperature, p.top_k, p.top_p, p.min_p, n, m);
        }
        rows++;
    }
    CHECK_INT(0, bad);
    printf("direct reference: %d rows of %d tokens agree\n", rows, V);
    free(logits);
    free(mine);
    free(ref);
    free(scratch);
}

/* ---- temperature, greedy, draws ---- */

static void check_temperature_and_draws(void) {
    const int V = 6;
    const float logits[6] = {1.0f, 2.5f, -0.5f, 2.5f, 0.0f, 1.7f};
    void *scratch = malloc(sampler_scratch_bytes(V));
    double probs[6];

    /* T = 0.6 without truncation: softmax(logits / 0.6), and the policy log-prob */
    sampler_params p;
    sampler_params_defaults(&p);
    p.temperature = 0.6f;
    CHECK_INT(V, sampler_distribution(&p, logits, V, scratch, probs));
    double lse = 0;
    for (int i = 0; i < V; i++) lse += exp((double)(logits[i] / 0.6f));
    lse = log(lse);
    for (int i = 0; i < V; i++) CHECK_NEAR(exp((double)(logits[i] / 0.6f) - lse), probs[i], 1e-12, 0);
    sampler_result res;
    sampler_sample(&p, logits, V, 5, 0, scratch, &res);
    CHECK_NEAR((double)(logits[res.token] / 0.6f) - lse, res.policy_logprob, 1e-6, 0);
    CHECK_NEAR(res.policy_logprob, res.logprob, 1e-6, 0);   /* nothing truncated: the same */

    /* greedy: the first of the tied maxima, log-prob 0, policy log-prob at T = 1 */
    p.temperature = 0.0f;
    sampler_sample(&p, logits, V, 5, 0, scratch, &res);
    CHECK_INT(1, res.token);
    CHECK_NEAR(0.0, res.logprob, 0, 0);
    double lse1 = 0;
    for (int i = 0; i < V; i++) lse1 += exp((double)logits[i]);
    CHECK_NEAR(2.5 - log(lse1), res.policy_logprob, 1e-6, 0);

    /* draws with top-p: frequencies, log-probs of the drawn token, reproducibility */
    p.temperature = 0.9f;
    p.top_p = 0.8f;
    int kept = sampler_distribution(&p, logits, V, scratch, probs);
    CHECK(kept < V);
    const int draws = 60000;
    int count[6] = {0};
    int lp_bad = 0;
    for (int d = 0; d < draws; d++) {
        uint64_t seed = (uint64_t)d / 7, pos = (uint64_t)d % 7;
        sampler_sample(&p, logits, V, seed, pos, scratch, &res);
        count[res.token]++;
        if (probs[res.token] == 0 || fabs(log(probs[res.token]) - res.logprob) > 1e-6) lp_bad++;
    }
    CHECK_INT(0, lp_bad);
    for (int i = 0; i < V; i++) {
        double expect = probs[i] * draws, sigma = sqrt(draws * probs[i] * (1 - probs[i])) + 1e-9;
        CHECK_MSG(fabs(count[i] - expect) <= 5 * sigma + (probs[i] == 0 ? 0 : 1),
                  "token %d drawn %d times, expected %.1f +- %.1f", i, count[i], expect, sigma);
    }
    sampler_result a, b, c;
    sampler_sample(&p, logits, V, 77, 3, scratch, &a);
    sampler_sample(&p, logits, V, 77, 3, scratch, &b);
    CHECK_INT(a.token, b.token);
    int differs = 0;
    for (uint64_t pos = 0; pos < 64; pos++) {
        sampler_sample(&p, logits, V, 77, pos, scratch, &c);
        differs += c.token != a.token;
    }
    CHECK(differs > 0);
    /* the uniform numbers: in [0, 1), distinct for neighbouring seeds and positions */
    double u0 = sampler_uniform(1, 0), u1 = sampler_uniform(1, 1), u2 = sampler_uniform(2, 0);
    CHECK(u0 >= 0 && u0 < 1 && u0 != u1 && u0 != u2);
    free(scratch);
}

static void check_params(void) {
    sampler_params p;
    sampler_params_defaults(&p);
    CHECK_OK(sampler_params_validate(&p));
    p.temperature = -1;
    CHECK_FAILS(sampler_params_validate(&p), "temperature");
    p.temperature = NAN;
    CHECK_FAILS(sampler_params_validate(&p), "temperature");
    sampler_params_defaults(&p);
    p.top_p = 0;
    CHECK_FAILS(sampler_params_validate(&p), "top_p");
    p.top_p = 1.5f;
    CHECK_FAILS(sampler_params_validate(&p), "top_p");
    sampler_params_defaults(&p);
    p.top_k = -2;
    CHECK_FAILS(sampler_params_validate(&p), "top_k");
    sampler_params_defaults(&p);
    p.min_p = 1.2f;
    CHECK_FAILS(sampler_params_validate(&p), "min_p");
}

/* ---- stop strings ---- */

/* Feeds the pieces; returns the index of the piece where a match was reported (-1: none)
 * and the matched string's index in *which. */
static int which_stop;
static int feed_all(const sampler_stop *s, char *buf, size_t cap, const char *const *pieces, int n, size_t *start,
                    size_t *end) {
    sampler_stop_state st;
    sampler_stop_state_init(&st, buf, cap);
    which_stop = -1;
    for (int i = 0; i < n; i++)
        if ((which_stop = sampler_stop_feed(s, &st, pieces[i], strlen(pieces[i]), start, end)) >= 0) return i;
    return -1;
}

static void check_stop_strings(void) {
    const char *stops[] = {"</answer>", "\n\nUser:", "xyz"};
    sampler_stop *s;
    CHECK_OK(sampler_stop_create(stops, 3, &s));
    CHECK_INT(9, sampler_stop_max_len(s));
    size_t cap = sampler_stop_window_bytes(s, 4);
    char *buf = malloc(cap);
    size_t start = 0, end = 0;

    /* "</answer>" split over four pieces, after 10 bytes of text */
    const char *a[] = {"<answer>42", "</", "ans", "wer", "> tail"};
    CHECK_INT(4, feed_all(s, buf, cap, a, 5, &start, &end));
    CHECK_INT(0, which_stop);
    CHECK_INT(10, start);
    CHECK_INT(19, end);
    /* a long text before it slides the window; offsets stay absolute */
    const char *b[] = {"abcd", "efgh", "ijkl", "mnop", "qrst", "uvw_", "yz\n", "\nUse", "r:"};
    CHECK_INT(8, feed_all(s, buf, cap, b, 9, &start, &end));
    CHECK_INT(1, which_stop);
    CHECK_INT(26, start);
    CHECK_INT(33, end);
    /* two stop strings completing in the same piece: the earlier start wins, whatever
     * the listed order */
    const char *late_first[] = {"wer>", "</answer>"};
    sampler_stop *s2;
    CHECK_OK(sampler_stop_create(late_first, 2, &s2));
    char *buf2 = malloc(sampler_stop_window_bytes(s2, 8));
    const char *c[] = {"</ans", "wer>"};
    CHECK_INT(1, feed_all(s2, buf2, sampler_stop_window_bytes(s2, 8), c, 2, &start, &end));
    CHECK_INT(1, which_stop);
    CHECK_INT(0, start);
    CHECK_INT(9, end);
    sampler_stop_free(s2);
    free(buf2);
    /* a piece longer than the window is fed in parts: the match inside it is found */
    const char *d[] = {"0123456789 lots of text </answer> more"};
    CHECK_INT(0, feed_all(s, buf, cap, d, 1, &start, &end));
    CHECK_INT(24, start);
    /* no match; a near miss across pieces */
    const char *e[] = {"</ans", "wers>", "x", "y", "-z"};
    CHECK_INT(-1, feed_all(s, buf, cap, e, 5, &start, &end));
    /* a match found once is not reported again for the bytes after it */
    const char *f[] = {"xyz", "abc"};
    CHECK_INT(0, feed_all(s, buf, cap, f, 2, &start, &end));
    CHECK_INT(2, which_stop);

    const char *empty[] = {"ok", ""};
    sampler_stop *bad;
    CHECK_FAILS(sampler_stop_create(empty, 2, &bad), "empty");
    CHECK(bad == NULL);
    sampler_stop *none;
    CHECK_OK(sampler_stop_create(NULL, 0, &none));
    CHECK_INT(-1, feed_all(none, buf, sampler_stop_window_bytes(none, 4), a, 5, &start, &end));
    sampler_stop_free(none);
    sampler_stop_free(s);
    sampler_stop_free(NULL);
    free(buf);
}

int main(void) {
    check_hf_fixture();
    check_reference();
    check_temperature_and_draws();
    check_params();
    check_stop_strings();
    TEST_MAIN_END();
}

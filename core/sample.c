/* One row of token sampling (core/sample.h): temperature, top-k, top-p and min-p as
 * transformers' warpers apply them, in double precision after the float division by the
 * temperature, then an inverse-CDF draw over the kept tokens in id order. */
#include "core/sample.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float z;
    int32_t id;
} scored;

void sample_params_defaults(sample_params *p) {
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
}

grpo_status sample_params_validate(const sample_params *p) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return grpo_fail(GRPO_ERR_INVALID, "temperature: expected a finite number >= 0, found %g", p->temperature);
    if (p->top_k < 0) return grpo_fail(GRPO_ERR_INVALID, "top_k: expected >= 0 (0 = off), found %d", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return grpo_fail(GRPO_ERR_INVALID, "top_p: expected a number in (0, 1], found %g", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return grpo_fail(GRPO_ERR_INVALID, "min_p: expected a number in [0, 1], found %g", p->min_p);
    return GRPO_OK;
}

/* scratch: z [V] floats, pairs [V] scored, kept [V] int32. */
size_t sample_scratch_bytes(int V) { return (size_t)V * (sizeof(float) + sizeof(scored) + sizeof(int32_t)); }

/* The k-th largest of x[0..n) (1 <= k <= n), reordering x (Hoare's selection). */
static float kth_largest(float *x, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;   /* index in descending order */
    while (lo < hi) {
        float pivot = x[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > pivot) i++;
            while (x[j] < pivot) j--;
            if (i <= j) {
                float t = x[i];
                x[i] = x[j];
                x[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return x[want];
    }
    return x[want];
}

/* Ascending z; among equal z the higher id first, so the descending order (what the
 * nucleus keeps first) prefers the lower id. */
static int cmp_ascending(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->z != y->z) return x->z < y->z ? -1 : 1;
    return x->id > y->id ? -1 : x->id < y->id;
}

/* Fills z = logits / T and the kept ids (ascending) after top-k, top-p and min-p.
 * Returns how many are kept (>= 1); *zmax is the largest z (always kept). */
static int truncate_tokens(const sample_params *p, const float *logits, int V, void *scratch, float *zmax_out) {
    float *z = scratch;
    scored *pairs = (scored *)(z + V);
    int32_t *kept = (int32_t *)(pairs + V);
    const float T = p->temperature > 0.0f ? p->temperature : 1.0f;
    float zmax = -INFINITY;
    for (int i = 0; i < V; i++) {
        z[i] = logits[i] / T;
        if (z[i] > zmax) zmax = z[i];
    }
    int n = V;
    for (int i = 0; i < V; i++) kept[i] = i;

    /* top-k: scores below the k-th largest are removed; ties with it stay (TopKLogitsWarper) */
    if (p->top_k > 0 && p->top_k < n) {
        float *sel = (float *)pairs;   /* pairs is free until top-p */
        for (int i = 0; i < n; i++) sel[i] = z[kept[i]];
        float kth = kth_largest(sel, n, p->top_k);
        int m = 0;
        for (int i = 0; i < n; i++)
            if (z[kept[i]] >= kth) kept[m++] = kept[i];
        n = m;
    }

    /* top-p: sort ascending, remove the low tokens whose cumulative probability stays
     * <= 1 - top_p, keeping the highest (TopPLogitsWarper) */
    if (p->top_p < 1.0f && n > 1) {
        double total = 0;
        for (int i = 0; i < n; i++) {
            pairs[i].z = z[kept[i]];
            pairs[i].id = kept[i];
            total += exp((double)pairs[i].z - zmax);
        }
        qsort(pairs, (size_t)n, sizeof *pairs, cmp_ascending);
        double cum = 0, limit = 1.0 - (double)p->top_p;
        int first = 0;
        for (; first < n - 1; first++) {
            cum += exp((double)pairs[first].z - zmax) / total;
            if (cum > limit) break;
        }
        int m = 0;
        for (int i = 0; i < n; i++)   /* kept stays in ascending id order */
            if (z[kept[i]] > pairs[first].z || (z[kept[i]] == pairs[first].z && kept[i] <= pairs[first].id))
                kept[m++] = kept[i];
        n = m;
    }

    /* min-p: p < min_p * max p removed, i.e. z < zmax + log(min_p) (MinPLogitsWarper) */
    if (p->min_p > 0.0f && n > 1) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (exp((double)z[kept[i]] - zmax) >= (double)p->min_p) kept[m++] = kept[i];
        n = m;
    }
    *zmax_out = zmax;
    return n;
}

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* log sum_i exp(z_i) over the whole vocabulary. */
static double log_sum_exp(const float *z, int V, float zmax) {
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)z[i] - zmax);
    return zmax + log(s);
}

void sample_row(const sample_params *p, const float *logits, int V, double u, void *scratch, int32_t *token_out,
                float *logprob, float *policy_logprob) {
    float zmax;
    const float *z = scratch;
    if (p->temperature == 0.0f) {
        /* greedy: z = logits (T = 1) for the policy log-prob */
        int32_t best = argmax(logits, V);
        *token_out = best;
        *logprob = 0.0f;
        *policy_logprob = (float)((double)logits[best] - log_sum_exp(logits, V, logits[best]));
        return;
    }
    int n = truncate_tokens(p, logits, V, scratch, &zmax);
    const int32_t *kept = (const int32_t *)((const scored *)(z + V) + V);
    double total = 0;
    for (int i = 0; i < n; i++) total += exp((double)z[kept[i]] - zmax);
    double target = u * total, cum = 0;
    int32_t token = kept[n - 1];
    for (int i = 0; i < n; i++) {
        cum += exp((double)z[kept[i]] - zmax);
        if (cum > target) {
            token = kept[i];
            break;
        }
    }
    *token_out = token;
    *logprob = (float)((double)z[token] - zmax - log(total));
    *policy_logprob = (float)((double)z[token] - log_sum_exp(z, V, zmax));
}

int sample_distribution(const sample_params *p, const float *logits, int V, void *scratch, double *probs) {
    for (int i = 0; i < V; i++) probs[i] = 0.0;
    if (p->temperature == 0.0f) {
        probs[argmax(logits, V)] = 1.0;
        return 1;
    }
    float zmax;
    int n = truncate_tokens(p, logits, V, scratch, &zmax);
    const float *z = scratch;
    const int32_t *kept = (const int32_t *)((const scored *)(z + V) + V);
    double total = 0;
    for (int i = 0; i < n; i++) total += (probs[kept[i]] = exp((double)z[kept[i]] - zmax));
    for (int i = 0; i < n; i++) probs[kept[i]] /= total;
    return n;
}

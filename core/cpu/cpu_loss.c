/* Log-probabilities of given tokens under a row of logits, and their backward. This is
 * the policy-gradient and cross-entropy core: logprob = logit[target] - logsumexp(logits). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Row log-sum-exp with the max subtracted first (no overflow), the sum of exps in
 * double so a long vocabulary row loses nothing to rounding. */
static float row_logsumexp(const float *l, int V) {
    float mx = l[0];
    for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    if (isinf(mx) && mx < 0) return mx;   /* every logit -inf: the sum is 0, lse -inf */
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += (double)expf(l[j] - mx);
    return mx + (float)log(sum);
}

/* logits: [N, V], targets: [N] (< 0 = ignored), logprobs: [N], lse: [N].
 * lse is written for every row, ignored ones included; their logprob is 0. */
void cpu_token_logprobs_forward(backend *be, float *logprobs, float *lse, const float *logits,
                                const int32_t *targets, int N, int V) {
    (void)be;
    GRPO_ASSERTF(V > 0, "token_logprobs_forward: V=%d", V);
    CPU_OMP(parallel for schedule(static) if ((size_t)N * V >= CPU_PARALLEL_MIN))
    for (int i = 0; i < N; i++) {
        const float *l = logits + (size_t)i * V;
        int t = targets[i];
        GRPO_ASSERTF(t < V, "token_logprobs_forward: targets[%d] = %d is not below V = %d", i, t, V);
        float z = row_logsumexp(l, V);
        lse[i] = z;
        logprobs[i] = t < 0 ? 0.0f : l[t] - z;
    }
}

/* dlogits[i, j] = dlogprobs[i] * ([j == target] - exp(logits[i, j] - lse[i])), written;
 * rows with an ignored target get zeros. */
void cpu_token_logprobs_backward(backend *be, float *dlogits, const float *logits, const float *lse,
                                 const int32_t *targets, const float *dlogprobs, int N, int V) {
    (void)be;
    CPU_OMP(parallel for schedule(static) if ((size_t)N * V >= CPU_PARALLEL_MIN))
    for (int i = 0; i < N; i++) {
        float *d = dlogits + (size_t)i * V;
        int t = targets[i];
        GRPO_ASSERTF(t < V, "token_logprobs_backward: targets[%d] = %d is not below V = %d", i, t, V);
        if (t < 0) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *l = logits + (size_t)i * V;
        float g = dlogprobs[i], z = lse[i];
        for (int j = 0; j < V; j++) d[j] = -g * expf(l[j] - z);
        d[t] += g;
    }
}

/* Log-probabilities of given tokens under a row of logits, and their backward. This is
 * the policy-gradient and cross-entropy core: logprob = logit[target] - logsumexp(logits). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Row log-sum-exp with the max subtracted first (no overflow), the sum of exps
 * gathered in double so a long vocabulary row loses nothing to rounding. */
static float row_logsumexp(const float *l, int V) {
    float mx = cpu_vec_max(l, V);
    if (isinf(mx)) return mx;   /* every logit -inf (sum 0), or a +inf logit */
    return mx + (float)log(cpu_vec_sum_exp(l, (size_t)V, mx));
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
        cpu_vec_exp_scale(d, l, (size_t)V, z, -g);   /* -g softmax */
        d[t] += g;
    }
}

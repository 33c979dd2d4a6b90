/* Log-probabilities of given tokens under rows of logits, and their backward, on CUDA
 * (contract in core/backend.h, CPU reference core/cpu/cpu_loss.c):
 *   lse_i = logsumexp_j logits[i, j],  logprob_i = logits[i, target_i] - lse_i. */
#include "core/cuda/cuda_reduce.h"

/* One block per row i of logits: [N, V]. The row max first (no overflow), then the
 * sum of exp(l - max) in double (as the CPU), lse = max + log(sum); a row whose max
 * is infinite (all -inf, or a +inf logit) has lse = max. Ignored rows (target < 0)
 * get lse and logprob 0. */
__global__ void token_logprobs_forward_kernel(float *logprobs, float *lse, const float *logits,
                                              const int32_t *targets, int V) {
    __shared__ float shared_f[CUDA_REDUCE_THREADS];
    __shared__ double shared_d[CUDA_REDUCE_THREADS];
    size_t i = blockIdx.x;
    const float *l = logits + i * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = cuda_block_max(mx, shared_f);
    float z = mx;
    if (!isinf(mx)) {   /* the same branch in every thread of the block */
        double acc = 0.0;
        for (int j = threadIdx.x; j < V; j += blockDim.x) acc += (double)expf(l[j] - mx);
        double sum = cuda_block_sum(acc, shared_d);
        z = mx + (float)log(sum);
    }
    if (threadIdx.x == 0) {
        int t = targets[i];
        if (t >= V) CUDA_DEVICE_FAIL("token_logprobs_forward: targets[%d] = %d is not below V = %d\n", (int)i, t, V);
        lse[i] = z;
        logprobs[i] = t < 0 ? 0.0f : l[t] - z;
    }
}

/* dlogits[i, j] = dlogprobs[i] * ([j == target_i] - exp(logits[i, j] - lse_i)), written;
 * one thread per element; rows with target < 0 get zeros. */
__global__ void token_logprobs_backward_kernel(float *dlogits, const float *logits, const float *lse,
                                               const int32_t *targets, const float *dlogprobs, size_t total, int V) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t i = e / (size_t)V;
        int j = (int)(e % (size_t)V), t = targets[i];
        if (t >= V) CUDA_DEVICE_FAIL("token_logprobs_backward: targets[%d] = %d is not below V = %d\n", (int)i, t, V);
        if (t < 0) {
            dlogits[e] = 0.0f;
            continue;
        }
        float g = dlogprobs[i];
        float d = -g * expf(logits[e] - lse[i]);
        if (j == t) d += g;
        dlogits[e] = d;
    }
}

void cuda_token_logprobs_forward(backend *be, float *logprobs, float *lse, const float *logits,
                                 const int32_t *targets, int N, int V) {
    GRPO_ASSERTF(V > 0 && N >= 0, "token_logprobs_forward: N=%d V=%d", N, V);
    if (!N) return;
    token_logprobs_forward_kernel<<<N, CUDA_REDUCE_THREADS, 0, cuda_stream_of(be)>>>(logprobs, lse, logits,
                                                                                     targets, V);
    CUDA_CHECK_LAST();
}

void cuda_token_logprobs_backward(backend *be, float *dlogits, const float *logits, const float *lse,
                                  const int32_t *targets, const float *dlogprobs, int N, int V) {
    GRPO_ASSERTF(V > 0 && N >= 0, "token_logprobs_backward: N=%d V=%d", N, V);
    size_t total = (size_t)N * (size_t)V;
    if (!total) return;
    token_logprobs_backward_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(
        dlogits, logits, lse, targets, dlogprobs, total, V);
    CUDA_CHECK_LAST();
}

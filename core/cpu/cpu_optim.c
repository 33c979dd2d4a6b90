/* AdamW on the CPU: Adam (Kingma & Ba 2015, Algorithm 1, bias-corrected moments) with
 * decoupled weight decay (Loshchilov & Hutter 2019). */
#include "core/cpu/cpu_impl.h"

#include <math.h>

/* Elements per task (cpu_vec_adamw runs 16 at a time). */
#define CPU_ADAMW_BLOCK 8192

/* For each i (step is 1-based):
 *   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
 *   mhat = m / (1 - beta1^step);   vhat = v / (1 - beta2^step)
 *   param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param)
 * param, m, v: [n] updated in place; grad: [n]. */
void cpu_adamw(backend *be, float *param, const float *grad, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int step) {
    (void)be;
    GRPO_ASSERTF(step >= 1, "adamw: step=%d must be >= 1", step);
    /* The bias corrections, once per call in double: beta^step for large steps. */
    float inv_c1 = (float)(1.0 / (1.0 - pow((double)beta1, step)));
    float inv_c2 = (float)(1.0 / (1.0 - pow((double)beta2, step)));
    size_t nblocks = (n + CPU_ADAMW_BLOCK - 1) / CPU_ADAMW_BLOCK;
    CPU_OMP(parallel for schedule(static) if (n >= CPU_PARALLEL_MIN))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t i0 = blk * CPU_ADAMW_BLOCK, len = n - i0 < CPU_ADAMW_BLOCK ? n - i0 : CPU_ADAMW_BLOCK;
        cpu_vec_adamw(param + i0, grad + i0, m + i0, v + i0, len, lr, beta1, beta2, eps, weight_decay, inv_c1, inv_c2);
    }
}

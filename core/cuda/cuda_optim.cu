/* AdamW on CUDA: Adam (Kingma & Ba 2015, Algorithm 1, bias-corrected moments) with
 * decoupled weight decay (Loshchilov & Hutter 2019); contract in core/backend.h, CPU
 * reference core/cpu/cpu_optim.c (the same formula, term for term). */
#include "core/cuda/cuda_impl.h"

#include <math.h>

/* One thread per parameter i:
 *   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
 *   mhat = m * inv_c1;  vhat = v * inv_c2   (inv_c = 1 / (1 - beta^step))
 *   param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param) */
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float inv_c1, float inv_c2) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi * inv_c1, vhat = vi * inv_c2;
        float p = param[i];
        param[i] = p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    }
}

void cuda_adamw(backend *be, float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int step) {
    GRPO_ASSERTF(step >= 1, "adamw: step=%d must be >= 1", step);
    if (!n) return;
    /* The bias corrections on the host in double, exactly as the CPU backend does. */
    float inv_c1 = (float)(1.0 / (1.0 - pow((double)beta1, step)));
    float inv_c2 = (float)(1.0 / (1.0 - pow((double)beta2, step)));
    adamw_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(param, grad, m, v, n, lr, beta1, beta2, eps,
                                                                         weight_decay, inv_c1, inv_c2);
    CUDA_CHECK_LAST();
}

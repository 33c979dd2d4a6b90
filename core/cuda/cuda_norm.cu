/* RMSNorm forward and backward on CUDA (Zhang & Sennrich 2019; contract in
 * core/backend.h, CPU reference core/cpu/cpu_norm.c): out = x * rstd * w with
 * rstd = 1 / sqrt(mean(x^2) + eps), in float32. A row's sums run in one block of
 * CUDA_REDUCE_THREADS threads (cuda_reduce.h); dw is summed down the rows by one thread
 * per column, in double, in row order (as the CPU). */
#include "core/cuda/cuda_reduce.h"

/* One block per row n: out[n, :] = x[n, :] * r * w, rstd[n] = r. */
__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *x, const float *w, int D, float eps) {
    __shared__ float shared[CUDA_REDUCE_THREADS];
    size_t n = blockIdx.x;
    const float *xr = x + n * D;
    float *o = out + n * D;
    float acc = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) acc += xr[j] * xr[j];
    float ss = cuda_block_sum(acc, shared);
    float r = 1.0f / sqrtf(ss / (float)D + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int j = threadIdx.x; j < D; j += blockDim.x) o[j] = (xr[j] * r) * w[j];
}

/* One block per row n, with g = dout[n, :], r = rstd[n]:
 *   dx_j = r g_j w_j - x_j r^3 / D * sum_k g_k w_k x_k   (written) */
__global__ void rmsnorm_dx_kernel(float *dx, const float *dout, const float *x, const float *w, const float *rstd,
                                  int D) {
    __shared__ float shared[CUDA_REDUCE_THREADS];
    size_t n = blockIdx.x;
    const float *xr = x + n * D, *g = dout + n * D;
    float *d = dx + n * D;
    float acc = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) acc += g[j] * w[j] * xr[j];
    float dot = cuda_block_sum(acc, shared);
    float r = rstd[n];
    float c = r * r * r * dot / (float)D;
    for (int j = threadIdx.x; j < D; j += blockDim.x) d[j] = r * g[j] * w[j] - c * xr[j];
}

/* dw_j += sum over rows n of g[n, j] x[n, j] rstd[n] (each product in float, summed in
 * double); one thread per column. */
__global__ void rmsnorm_dw_kernel(float *dw, const float *dout, const float *x, const float *rstd, int N, int D) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= D) return;
    double acc = 0.0;
    for (int n = 0; n < N; n++) {
        size_t i = (size_t)n * D + j;
        float p = dout[i] * x[i] * rstd[n];
        acc += p;
    }
    dw[j] += (float)acc;
}

void cuda_rmsnorm_forward(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D,
                          float eps) {
    GRPO_ASSERTF(N >= 0 && D > 0, "rmsnorm_forward: bad size N=%d D=%d", N, D);
    if (!N) return;
    rmsnorm_forward_kernel<<<N, CUDA_REDUCE_THREADS, 0, cuda_stream_of(be)>>>(out, rstd, x, w, D, eps);
    CUDA_CHECK_LAST();
}

/* dw first: it reads dout, which the dx pass may overwrite if a caller aliases them. */
void cuda_rmsnorm_backward(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                           const float *rstd, int N, int D) {
    GRPO_ASSERTF(N >= 0 && D > 0, "rmsnorm_backward: bad size N=%d D=%d", N, D);
    if (!N) return;
    cudaStream_t s = cuda_stream_of(be);
    rmsnorm_dw_kernel<<<(D + CUDA_BLOCK - 1) / CUDA_BLOCK, CUDA_BLOCK, 0, s>>>(dw, dout, x, rstd, N, D);
    CUDA_CHECK_LAST();
    rmsnorm_dx_kernel<<<N, CUDA_REDUCE_THREADS, 0, s>>>(dx, dout, x, w, rstd, D);
    CUDA_CHECK_LAST();
}

/* Token embedding lookup and its backward on CUDA (contract in core/backend.h; the CPU
 * reference is core/cpu/cpu_embedding.c). */
#include "core/cuda/cuda_reduce.h"

/* out: [T, D] = table[ids[t]] (table: [V, D]); one thread per output element. */
__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const float *table, size_t total, int D) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / (size_t)D;
        int id = ids[t];
        if (id < 0) CUDA_DEVICE_FAIL("embedding_forward: ids[%d] = %d is negative\n", (int)t, id);
        out[i] = table[(size_t)id * D + i % (size_t)D];
    }
}

/* dtable[ids[t], j] += dout[t, j]: one thread per column j walks the tokens in order
 * t = 0..T-1, so a repeated id needs no atomics and the sums come out in the CPU's
 * order (the same bits). T steps per thread: fine for a once-per-step op. */
__global__ void embedding_backward_kernel(float *dtable, const int32_t *ids, const float *dout, int T, int D) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= D) return;
    for (int t = 0; t < T; t++) {
        int id = ids[t];
        if (id < 0) CUDA_DEVICE_FAIL("embedding_backward: ids[%d] = %d is negative\n", t, id);
        dtable[(size_t)id * D + j] += dout[(size_t)t * D + j];
    }
}

void cuda_embedding_forward(backend *be, float *out, const int32_t *ids, const float *table, int T, int D) {
    GRPO_ASSERTF(T >= 0 && D >= 0, "embedding_forward: negative size T=%d D=%d", T, D);
    size_t total = (size_t)T * (size_t)D;
    if (!total) return;
    embedding_forward_kernel<<<cuda_grid_for(total), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(out, ids, table, total,
                                                                                          D);
    CUDA_CHECK_LAST();
}

void cuda_embedding_backward(backend *be, float *dtable, const int32_t *ids, const float *dout, int T, int D) {
    GRPO_ASSERTF(T >= 0 && D >= 0, "embedding_backward: negative size T=%d D=%d", T, D);
    if (!T || !D) return;
    embedding_backward_kernel<<<(D + CUDA_BLOCK - 1) / CUDA_BLOCK, CUDA_BLOCK, 0, cuda_stream_of(be)>>>(
        dtable, ids, dout, T, D);
    CUDA_CHECK_LAST();
}

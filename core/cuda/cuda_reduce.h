/* Block-wide reductions for the row kernels of the CUDA backend (one block of exactly
 * CUDA_REDUCE_THREADS threads per row): a tree in shared memory, no warp shuffles.
 * Every thread of the block must call them (they synchronise) and every thread gets
 * the result; they end with a barrier, so the same shared array may be reused at once.
 * Private to core/cuda/ (.cu files only). */
#ifndef GRPO_CUDA_REDUCE_H
#define GRPO_CUDA_REDUCE_H

#include <cstdio>

#include "core/cuda/cuda_impl.h"

/* Sum of v over the block; shared: [CUDA_REDUCE_THREADS]. */
template <typename T>
static __device__ __forceinline__ T cuda_block_sum(T v, T *shared) {
    unsigned t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (unsigned stride = CUDA_REDUCE_THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) shared[t] += shared[t + stride];
        __syncthreads();
    }
    T total = shared[0];
    __syncthreads();
    return total;
}

/* Largest v over the block (fmaxf: a NaN loses to a number, as in the CPU's row max). */
static __device__ __forceinline__ float cuda_block_max(float v, float *shared) {
    unsigned t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (unsigned stride = CUDA_REDUCE_THREADS / 2; stride > 0; stride >>= 1) {
        if (t < stride) shared[t] = fmaxf(shared[t], shared[t + stride]);
        __syncthreads();
    }
    float total = shared[0];
    __syncthreads();
    return total;
}

/* Stops the kernel after printing why: a broken invariant such as a negative id. The
 * context is lost (cudaErrorLaunchFailure), which the next CUDA_CHECK on the host
 * reports and stops on; the device printf may be lost with it. */
#define CUDA_DEVICE_FAIL(...) do { printf(__VA_ARGS__); __trap(); } while (0)

#endif

/* Private to the CUDA backend (the .cu files of core/cuda/): the backend's state and the op
 * functions that cuda_backend.cu puts into the table. Every op follows the conventions
 * written in core/backend.h; every op is queued on the backend's stream, in order. */
#ifndef GRPO_CUDA_IMPL_H
#define GRPO_CUDA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/cuda/cuda_check.h"

extern "C" {
#include "core/backend.h"
}

/* Blocks of the first pass of a reduction: a fixed number, so the order of the sums
 * (and hence the result) does not depend on n or the device. */
#define CUDA_REDUCE_BLOCKS 1024
#define CUDA_REDUCE_THREADS 256
/* Threads per block of the elementwise kernels, and the largest grid they launch
 * (grid-stride loops cover the rest). */
#define CUDA_BLOCK 256
#define CUDA_MAX_GRID 65536u

typedef struct {
    int device;
    cudaStream_t stream;      /* every op and copy is queued here */
    cublasHandle_t cublas;    /* bound to `stream`; FP32 math (no TF32) */
    double *reduce_partial;   /* device [CUDA_REDUCE_BLOCKS + 1]: block sums, then the total */
    double *reduce_host;      /* pinned host [1]: the total read back */
} cuda_impl;

static inline cuda_impl *cuda_impl_of(backend *be) { return (cuda_impl *)be->impl; }
static inline cudaStream_t cuda_stream_of(backend *be) { return cuda_impl_of(be)->stream; }

/* Blocks for a grid-stride loop over n items, CUDA_BLOCK threads each; n > 0. */
static inline unsigned cuda_grid_for(size_t n) {
    size_t g = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    return g > CUDA_MAX_GRID ? CUDA_MAX_GRID : (unsigned)g;
}

/* ---- ops (cuda_matmul.cu) ---- */
void cuda_matmul(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* ---- ops (cuda_elementwise.cu) ---- */
void cuda_add(backend *be, float *out, const float *a, const float *b, size_t n);
void cuda_axpy(backend *be, float *y, float alpha, const float *x, size_t n);
void cuda_scale(backend *be, float *x, float alpha, size_t n);
void cuda_add_bias(backend *be, float *out, const float *bias, int rows, int d);
double cuda_sum_squares(backend *be, const float *x, size_t n);
void cuda_swiglu_forward(backend *be, float *out, const float *gate, const float *up, size_t n);
void cuda_swiglu_backward(backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n);
/* C: [M, N] rows ldc apart; C = beta == 0 ? 0 : beta * C (matmul with no product). */
void cuda_scale_rows(backend *be, float *C, int M, int N, int ldc, float beta);

#endif

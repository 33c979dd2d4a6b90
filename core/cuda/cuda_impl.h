/* Private to the CUDA backend (the .cu files of core/cuda/): the backend's state and the op
 * functions that cuda_backend.cu puts into the table. Every op follows the conventions
 * written in core/backend.h; every op is queued on the backend's stream, in order. */
#ifndef GRPO_CUDA_IMPL_H
#define GRPO_CUDA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>

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
    cublasLtHandle_t cublaslt;    /* cuda_lowp.cu's BF16 / FP8 products */
    void *lt_workspace;           /* device, made once at creation */
    size_t lt_workspace_bytes;
    struct cuda_lowp *lowp;       /* cuda_lowp.cu's scratch (cuda_lowp_create / cuda_lowp_free) */
} cuda_impl;

static inline cuda_impl *cuda_impl_of(backend *be) { return (cuda_impl *)be->impl; }
static inline cudaStream_t cuda_stream_of(backend *be) { return cuda_impl_of(be)->stream; }

/* Blocks for a grid-stride loop over n items, CUDA_BLOCK threads each; n > 0. */
static inline unsigned cuda_grid_for(size_t n) {
    size_t g = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    return g > CUDA_MAX_GRID ? CUDA_MAX_GRID : (unsigned)g;
}

/* ---- ops (cuda_lowp.cu): BF16 / FP8 block-scaled (cuBLASLt) and grouped products ---- */
typedef struct cuda_lowp cuda_lowp;
cuda_lowp *cuda_lowp_create(int device);   /* NULL when out of host memory */
void cuda_lowp_free(cuda_lowp *lp);        /* NULL does nothing */
void cuda_to_bf16(backend *be, uint16_t *out, int ldo, const float *x, int ldx, int rows, int cols);
void cuda_matmul_bf16(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A,
                      int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
void cuda_matmul_fp8(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint8_t *A,
                     int lda, const float *a_scales, int a_tile_rows, int a_tile_cols, const uint8_t *B, int ldb,
                     const float *b_scales, int b_tile_rows, int b_tile_cols, float beta, float *C, int ldc);
void cuda_matmul_grouped(backend *be, int trans_a, int trans_b, int count, const int *M, int N, int K, float alpha,
                         const float *const *A, int lda, const float *const *B, int ldb, float beta,
                         float *const *C, int ldc);

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
void cuda_bias_backward(backend *be, float *dbias, const float *dout, int rows, int d);

/* ---- ops (cuda_embedding.cu, cuda_norm.cu, cuda_rope.cu) ---- */
void cuda_embedding_forward(backend *be, float *out, const int32_t *ids, const float *table, int T, int D);
void cuda_embedding_backward(backend *be, float *dtable, const int32_t *ids, const float *dout, int T, int D);
void cuda_rmsnorm_forward(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D,
                          float eps);
void cuda_rmsnorm_backward(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                           const float *rstd, int N, int D);
void cuda_rope(backend *be, float *x, int T, int H, int head_stride, int rot_dim, const int32_t *positions,
               const float *cos, const float *sin, int interleaved, int inverse);

/* ---- ops (cuda_loss.cu, cuda_optim.cu) ---- */
void cuda_token_logprobs_forward(backend *be, float *logprobs, float *lse, const float *logits,
                                 const int32_t *targets, int N, int V);
void cuda_token_logprobs_backward(backend *be, float *dlogits, const float *logits, const float *lse,
                                  const int32_t *targets, const float *dlogprobs, int N, int V);
void cuda_adamw(backend *be, float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int step);

/* ---- ops (cuda_attention.cu) ---- */
void cuda_attention_forward(backend *be, float *out, float *lse, const float *q, const float *k, const float *v, int B,
                            int T, int Hq, int Hkv, int Dqk, int Dv, float scale);
void cuda_attention_backward(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse, int B, int T, int Hq,
                             int Hkv, int Dqk, int Dv, float scale);

/* ---- ops (cuda_decode.cu) ---- */
void cuda_cache_write_rows(backend *be, float *dst, const backend_paged_layout *layout, const float *src, int H,
                           int width, const int32_t *slots, int N);
void cuda_paged_attention(backend *be, float *out, const float *q, const float *k_cache,
                          const backend_paged_layout *k_layout, const float *v_cache,
                          const backend_paged_layout *v_layout, const int32_t *block_tables, int max_blocks,
                          const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                          float scale);

/* ---- ops (cuda_quant.cu) ---- */
void cuda_quantize_fp8(backend *be, uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols,
                       int tile_rows, int tile_cols);
void cuda_dequantize_fp8(backend *be, float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                         int tile_rows, int tile_cols);
void cuda_round_fp8(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows,
                    int tile_cols);
void cuda_round_bf16(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols);

/* ---- ops (cuda_sample.cu) ---- */
void cuda_sample(backend *be, int32_t *tokens, float *logprob, float *policy_logprob, const float *logits, int ldl,
                 int N, int V, const double *u, float temperature, int top_k, float top_p, float min_p);

#endif

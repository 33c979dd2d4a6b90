/* Private to the CPU backend (the files of core/cpu/): the backend's state, the per-thread
 * scratch arena, and the op functions that cpu_backend.c puts into the table.
 * Every op follows the conventions written in core/backend.h. */
#ifndef GRPO_CPU_IMPL_H
#define GRPO_CPU_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* CPU_OMP(parallel for ...) is `#pragma omp parallel for ...` when OpenMP is on and
 * nothing otherwise, so a build without OpenMP is serial and free of pragma warnings. */
#ifdef _OPENMP
#define CPU_PRAGMA_(x) _Pragma(#x)
#define CPU_OMP(x) CPU_PRAGMA_(omp x)
#else
#define CPU_OMP(x)
#endif

/* One scratch buffer per OpenMP thread, grown on demand and kept for the life of the
 * backend, so ops that need working memory do not allocate in the training loop. A
 * lock makes ops from several host threads on one backend safe (they take turns). */
typedef struct {
    float **scratch;        /* [n_slots] buffers of scratch_floats floats each */
    size_t scratch_floats;  /* capacity of each buffer, in floats */
    int n_slots;            /* number of buffers = threads the team may have */
    pthread_mutex_t scratch_lock;   /* held from cpu_scratch_acquire to cpu_scratch_release */
    float *gemm_panel;      /* cpu_gemm's shared panel of op(B), grown on demand; under the lock */
    size_t gemm_panel_floats;
    pthread_mutex_t lowp_lock;  /* cpu_lowp.c: one low-precision product at a time decodes */
    float *lowp_decode;         /* cpu_lowp.c's decoded operands, grown on demand; under lowp_lock */
    size_t lowp_decode_floats;
} cpu_impl;

/* Takes the scratch lock and makes sure every thread of the op's next parallel region
 * has `floats` floats of scratch (64-byte aligned). Call outside any OpenMP parallel
 * region (checked) and pair with cpu_scratch_release. Stops on allocation failure (an
 * out-of-memory here is not an input error the caller could handle). */
void cpu_scratch_acquire(backend *be, size_t floats);
void cpu_scratch_release(backend *be);
/* This thread's scratch buffer, between acquire and release, inside the region. */
float *cpu_scratch_thread(backend *be);

static inline int cpu_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int cpu_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Work below this many elements runs on one thread: a parallel region costs a few
 * microseconds, more than a small elementwise loop. */
#define CPU_PARALLEL_MIN 16384

/* ---- vector kernels (cpu_vec.c), for one thread inside an op's parallel region ----
 * C[m, n] = A[m, kd] B[kd, n] (accumulate = 0) or C += A B (accumulate = 1); rows of
 * A, B and C are lda, ldb and ldc floats apart. A tile product, not a BLAS call. */
void cpu_vec_gemm(float *restrict C, int ldc, const float *restrict A, int lda, const float *restrict B,
                  size_t ldb, int m, int n, int kd, int accumulate);
/* The exp below is ~1 ulp for arguments in [-87.3, 88]; below -87.3 (and -inf) it is
 * 0, above 88 it is exp(88). */
/* x[j] = exp(x[j] - shift) for j < n, in place; returns the sum of the new x. */
float cpu_vec_exp_sum(float *x, int n, float shift);
/* sum_j exp(x[j] - shift) for j < n, x unchanged, total in double. */
double cpu_vec_sum_exp(const float *x, size_t n, float shift);
/* y[j] = alpha * exp(x[j] - shift) for j < n (y may be x). */
void cpu_vec_exp_scale(float *y, const float *x, size_t n, float shift, float alpha);
/* max of x[0..n) (-inf when n == 0). */
float cpu_vec_max(const float *x, int n);
/* x[j] = exp(x[j] - shift[j]) for j < n, in place. */
void cpu_vec_exp_sub(float *x, const float *shift, int n);
/* p[j] = p[j] (dp[j] - d[j]) scale for j < n: the softmax backward, dS = P (dP - D). */
void cpu_vec_softmax_grad(float *p, const float *dp, const float *d, float scale, int n);
/* Streaming kernels for one thread's slice (sums in vector lanes, in a fixed order):
 * sum a b; sum a b c; y = (x s) w; dx = r g w - c x; acc += (double)(g x r);
 * sum x^2 in double; y += alpha x; x *= alpha; the RoPE pair turn
 * (a, b) -> (a c - b s', b c + a s') with s' = sign s; AdamW as cpu_adamw states it,
 * with inv_c1, inv_c2 = 1 / (1 - beta^step). */
float cpu_vec_dot(const float *a, const float *b, int n);
float cpu_vec_dot3(const float *a, const float *b, const float *c, int n);
void cpu_vec_scale_mul(float *y, const float *x, float s, const float *w, int n);
void cpu_vec_rmsnorm_dx(float *dx, const float *g, const float *w, const float *x, float r, float c, int n);
void cpu_vec_acc_gxr(double *acc, const float *g, const float *x, float r, int n);
double cpu_vec_sum_squares(const float *x, size_t n);
void cpu_vec_axpy(float *y, float alpha, const float *x, size_t n);
void cpu_vec_scale(float *x, float alpha, size_t n);
void cpu_vec_rotate(float *a, float *b, const float *c, const float *s, float sign, int n);
void cpu_vec_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, float inv_c1, float inv_c2);
/* out[j] = silu(gate[j]) * up[j] for j < n, the sigmoid through the exp above. */
void cpu_vec_swiglu(float *out, const float *gate, const float *up, size_t n);
/* SwiGLU backward over j < n: dgate = dout up silu'(gate), dup = dout silu(gate) (written). */
void cpu_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                             size_t n);

/* ---- cpu_gemm.c: the AVX-512 product cpu_matmul uses where it can ---- */
/* 1 when cpu_gemm should run this product: the CPU has AVX-512 (x86-64-v4), the build
 * has the kernels, GRPO_CPU_GEMM is not "blas", and the sizes are large enough. */
int cpu_gemm_wanted(int M, int N, int K);
/* cpu_matmul's contract, for M, N, K > 0 and alpha != 0. */
void cpu_gemm(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* ---- ops (cpu_matmul.c) ---- */
void cpu_matmul(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* ---- ops (cpu_elementwise.c) ---- */
void cpu_add(backend *be, float *out, const float *a, const float *b, size_t n);
void cpu_axpy(backend *be, float *y, float alpha, const float *x, size_t n);
void cpu_scale(backend *be, float *x, float alpha, size_t n);
void cpu_add_bias(backend *be, float *out, const float *bias, int rows, int d);
void cpu_bias_backward(backend *be, float *dbias, const float *dout, int rows, int d);
double cpu_sum_squares(backend *be, const float *x, size_t n);
void cpu_swiglu_forward(backend *be, float *out, const float *gate, const float *up, size_t n);
void cpu_swiglu_backward(backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n);

/* ---- ops (cpu_embedding.c) ---- */
void cpu_embedding_forward(backend *be, float *out, const int32_t *ids, const float *table, int T, int D);
void cpu_embedding_backward(backend *be, float *dtable, const int32_t *ids, const float *dout, int T, int D);

/* ---- ops (cpu_norm.c) ---- */
void cpu_rmsnorm_forward(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D,
                         float eps);
void cpu_rmsnorm_backward(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int D);

/* ---- ops (cpu_rope.c) ---- */
void cpu_rope(backend *be, float *x, int T, int H, int head_stride, int rot_dim, const int32_t *positions,
              const float *cos, const float *sin, int interleaved, int inverse);

/* ---- ops (cpu_attention.c) ---- */
void cpu_attention_forward(backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale);
void cpu_attention_backward(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse, int B, int T,
                            int Hq, int Hkv, int Dqk, int Dv, float scale);

/* ---- ops (cpu_loss.c) ---- */
void cpu_token_logprobs_forward(backend *be, float *logprobs, float *lse, const float *logits,
                                const int32_t *targets, int N, int V);
void cpu_token_logprobs_backward(backend *be, float *dlogits, const float *logits, const float *lse,
                                 const int32_t *targets, const float *dlogprobs, int N, int V);

/* ---- ops (cpu_decode.c): cached decoding over a paged cache ---- */
void cpu_cache_write_rows(backend *be, float *dst, const backend_paged_layout *layout, const float *src, int H,
                          int width, const int32_t *slots, int N);
void cpu_paged_attention(backend *be, float *out, const float *q, const float *k_cache,
                         const backend_paged_layout *k_layout, const float *v_cache,
                         const backend_paged_layout *v_layout, const int32_t *block_tables, int max_blocks,
                         const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                         float scale);

/* ---- ops (cpu_quant.c): the low-precision emulation ---- */
void cpu_quantize_fp8(backend *be, uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols,
                      int tile_rows, int tile_cols);
void cpu_dequantize_fp8(backend *be, float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                        int tile_rows, int tile_cols);
void cpu_round_fp8(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows,
                   int tile_cols);
void cpu_round_bf16(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols);

/* ---- ops (cpu_sample.c) ---- */
void cpu_sample(backend *be, int32_t *tokens, float *logprob, float *policy_logprob, const float *logits, int ldl,
                int N, int V, const double *u, float temperature, int top_k, float top_p, float min_p);

/* ---- ops (cpu_lowp.c): low-precision and grouped products ---- */
void cpu_to_bf16(backend *be, uint16_t *out, int ldo, const float *x, int ldx, int rows, int cols);
void cpu_matmul_bf16(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A,
                     int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
void cpu_matmul_fp8(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint8_t *A, int lda,
                    const float *a_scales, int a_tile_rows, int a_tile_cols, const uint8_t *B, int ldb,
                    const float *b_scales, int b_tile_rows, int b_tile_cols, float beta, float *C, int ldc);
void cpu_matmul_grouped(backend *be, int trans_a, int trans_b, int count, const int *M, int N, int K, float alpha,
                        const float *const *A, int lda, const float *const *B, int ldb, float beta, float *const *C,
                        int ldc);

/* ---- ops (cpu_optim.c) ---- */
void cpu_adamw(backend *be, float *param, const float *grad, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int step);

#endif

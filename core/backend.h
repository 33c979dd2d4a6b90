/* The backend interface: one table of operations with a CPU implementation (the
 * reference: plain C + BLAS + OpenMP, core/cpu/) and a CUDA one (core/cuda/). Model
 * code is written once against it and never includes CUDA headers.
 *
 * Conventions for every op:
 *  - Tensors are float32, row-major and contiguous unless a stride is given; pointers
 *    are "device" pointers of that backend (host memory for the CPU backend).
 *  - Integer arrays (token ids, targets, positions) are int32 in that backend's memory too.
 *  - Shapes are written out beside each argument: x: [N, D] means N rows of D.
 *  - A backward op ACCUMULATES into parameter gradients (dw += ...) and WRITES input
 *    gradients (dx = ...) unless it says otherwise.
 *  - An op a backend lacks is NULL in its table; callers use backend_require() to get a
 *    clear error naming it.
 *  - Ops are not called from inside an OpenMP parallel region (the CPU backend parallelises
 *    inside each op and stops with a message otherwise). Several host threads may share one
 *    backend; they take turns on its scratch memory.
 *  - Ids and positions are checked for >= 0 only; the upper bound (vocab, max positions) is
 *    the caller's to check for anything that comes from outside. */
#ifndef GRPO_BACKEND_H
#define GRPO_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct backend backend;

/* Where a paged cache keeps a vector (see cache_write_rows / paged_attention below);
 * strides in floats. */
typedef struct {
    size_t block_stride;   /* from one block to the next */
    size_t head_stride;    /* from one kv head to the next within a block */
    size_t token_stride;   /* from one position to the next within a block, same head */
    size_t dim_stride;     /* from one element of a vector to the next (1: contiguous) */
    int block_size;        /* positions per block */
} backend_paged_layout;

struct backend {
    const char *name;   /* "cpu" or "cuda" */
    void *impl;         /* backend-private state (cuBLAS handle, stream, ...) */
    void (*destroy)(backend *be);   /* frees impl and be itself; called by backend_free */
    void *pool;         /* the device memory pool serving alloc/free (core/backend_pool.h); NULL: none */

    /* ---- memory ---- */
    void *(*alloc)(backend *be, size_t bytes);          /* zero-filled; NULL on failure */
    void (*free)(backend *be, void *ptr);               /* free(NULL) does nothing */
    void (*to_device)(backend *be, void *dst, const void *host_src, size_t bytes);
    void (*to_host)(backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(backend *be, void *dst, const void *src, size_t bytes);   /* device to device */
    void (*zero)(backend *be, void *ptr, size_t bytes);
    void (*synchronize)(backend *be);

    /* ---- linear algebra ----
     * C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [M,K] (A stored [K,M]
     * when trans_a), op(B) is [K,N] (B stored [N,K] when trans_b). lda/ldb/ldc are row
     * strides in elements. A Linear layer y = x W^T (W: [out, in]) is
     * matmul(0, 1, T, out, in, 1, x, in, W, in, 0, y, out). */
    void (*matmul)(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

    /* ---- elementwise ---- */
    void (*add)(backend *be, float *out, const float *a, const float *b, size_t n);  /* out = a + b */
    void (*axpy)(backend *be, float *y, float alpha, const float *x, size_t n);      /* y += alpha x */
    void (*scale)(backend *be, float *x, float alpha, size_t n);                     /* x *= alpha */
    /* out[n, d] += bias[d] for every row. */
    void (*add_bias)(backend *be, float *out, const float *bias, int rows, int d);
    /* dbias[d] += sum over rows of dout[rows, d]. */
    void (*bias_backward)(backend *be, float *dbias, const float *dout, int rows, int d);
    /* Sum of squares of x[n], returned to the host as double (for gradient norms). */
    double (*sum_squares)(backend *be, const float *x, size_t n);

    /* ---- embedding ----  out: [T, D] = table[ids[t]]; backward: dtable[ids[t]] += dout[t]. */
    void (*embedding_forward)(backend *be, float *out, const int32_t *ids, const float *table, int T, int D);
    void (*embedding_backward)(backend *be, float *dtable, const int32_t *ids, const float *dout, int T, int D);

    /* ---- RMSNorm ----  out[N,D] = x / sqrt(mean(x^2) + eps) * w; rstd[N] saved for backward.
     * backward: dx = ..., dw += ... */
    void (*rmsnorm_forward)(backend *be, float *out, float *rstd, const float *x, const float *w,
                            int N, int D, float eps);
    void (*rmsnorm_backward)(backend *be, float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int N, int D);

    /* ---- rotary position embedding, in place ----
     * x: [T, H, head_stride]; the first rot_dim numbers of each head rotate.
     * cos, sin: [max_pos, rot_dim/2] tables made by the model (so YaRN and other scalings
     * live in the model); positions: [T] int32.
     * interleaved = 0: pairs (i, i + rot_dim/2) (HF rotate_half, Llama/Qwen2);
     * interleaved = 1: pairs (2i, 2i+1) (the layout DeepSeek's HF code permutes into).
     * inverse = 1 rotates by -angle, which is the backward of the forward rotation. */
    void (*rope)(backend *be, float *x, int T, int H, int head_stride, int rot_dim,
                 const int32_t *positions, const float *cos, const float *sin, int interleaved, int inverse);

    /* ---- causal self-attention with grouped-query heads ----
     * q: [B, T, Hq, Dqk], k: [B, T, Hkv, Dqk], v: [B, T, Hkv, Dv], out: [B, T, Hq, Dv];
     * head h of q attends to kv head h / (Hq / Hkv); position t sees 0..t.
     * lse: [B, Hq, T] log-sum-exp of the scaled scores, saved for backward.
     * backward writes dq, dk, dv (all of them, no accumulation). */
    void (*attention_forward)(backend *be, float *out, float *lse, const float *q, const float *k,
                              const float *v, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale);
    void (*attention_backward)(backend *be, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *out,
                               const float *lse, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale);

    /* ---- SwiGLU ----  out[n] = silu(gate[n]) * up[n]; backward writes dgate, dup. */
    void (*swiglu_forward)(backend *be, float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t n);

    /* ---- log-probabilities of given tokens ----
     * logits: [N, V]; targets: [N] int32 (< 0 = ignored row).
     * logprobs[i] = logits[i, targets[i]] - lse[i]; lse[N] saved (for ignored rows too);
     * ignored rows give logprob 0.
     * Cross-entropy is -logprobs. backward: dlogits[i, :] = dlogprobs[i] * (onehot - softmax),
     * written (not accumulated); ignored rows get 0. */
    void (*token_logprobs_forward)(backend *be, float *logprobs, float *lse, const float *logits,
                                   const int32_t *targets, int N, int V);
    void (*token_logprobs_backward)(backend *be, float *dlogits, const float *logits, const float *lse,
                                    const int32_t *targets, const float *dlogprobs, int N, int V);

    /* ---- AdamW, decoupled weight decay (Loshchilov & Hutter), bias-corrected ----
     * step is 1-based. param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param). */
    void (*adamw)(backend *be, float *param, const float *grad, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int step);

    /* ---- cached decoding over a paged cache (optional: NULL where a backend lacks them;
     * CPU in core/cpu/cpu_decode.c) ----
     * A paged cache is blocks of block_size token positions handed out by the rollout
     * engine's pool (vLLM-style); a layout says where element d of the vector of kv head h
     * at position p of sequence s lives:
     *   base + b * block_stride + h * head_stride + (p % block_size) * token_stride + d * dim_stride,
     *   b = block_tables[s * max_blocks + p / block_size].
     * E.g. a block of keys [H, dim, block_size] (dim_stride = block_size, token_stride = 1)
     * makes q . k over a block one small matrix product, and values [H, block_size, dim]
     * make p . v one; MLA keeps [block_size, kv_lora_rank + rope] rows.
     *
     * cache_write_rows: for i < N, h < H: the vector of head h at slot slots[i] (= b *
     * block_size + offset; width elements from dst under layout) = src[i, h, :]
     * (src: [N, H, width]). Slots are distinct.
     *
     * paged_attention: N query tokens; token i belongs to sequence seq_of[i] and sees that
     * sequence's positions 0 .. ctx_len[i] - 1 (its own K/V already written).
     * q: [N, Hq, Dqk], out: [N, Hq, Dv]; head h uses kv head hk = h / (Hq / Hkv): key at
     * position p is k_cache's vector (p, hk) under k_layout (Dqk floats), value v_cache's
     * under v_layout (Dv floats) (k_cache and v_cache may be the same memory: MLA's
     * absorbed attention reads its latent as both, Hkv = 1).
     *   out[i, h] = sum_p softmax_p(scale * q[i, h] . k_p) v_p
     * block_tables: [n_seqs, max_blocks], seq_of, ctx_len: [N], int32; ctx_len[i] >= 1. */
    void (*cache_write_rows)(backend *be, float *dst, const backend_paged_layout *layout, const float *src, int H,
                             int width, const int32_t *slots, int N);
    void (*paged_attention)(backend *be, float *out, const float *q, const float *k_cache,
                            const backend_paged_layout *k_layout, const float *v_cache,
                            const backend_paged_layout *v_layout, const int32_t *block_tables, int max_blocks,
                            const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                            float scale);

    /* ---- low-precision emulation (formats in core/quant.h; optional) ----
     * x: [rows, cols], rows ldx floats apart, cut into tile_rows x tile_cols tiles (partial
     * at the edges): 1x128 for activations, 128x128 for weights, 128x1 for an operand whose
     * contraction runs down its rows (wgrad's tiles along tokens).
     * quantize_fp8: q: [rows, cols] E4M3 codes, scales: [ceil(rows/tile_rows),
     *   ceil(cols/tile_cols)], each amax / 448 of its tile (1 for an all-zero tile).
     * dequantize_fp8: x = e4m3_value(q) * its tile's scale.
     * round_fp8: out ([rows, cols], rows ldo apart; may be x) = dequantize(quantize(x)),
     *   the values an FP8 matmul multiplies.
     * round_bf16: out = x rounded to bfloat16 (nearest even), as float32; may be in place. */
    void (*quantize_fp8)(backend *be, uint8_t *q, float *scales, const float *x, int ldx, int rows, int cols,
                         int tile_rows, int tile_cols);
    void (*dequantize_fp8)(backend *be, float *x, int ldx, const uint8_t *q, const float *scales, int rows, int cols,
                           int tile_rows, int tile_cols);
    void (*round_fp8)(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols, int tile_rows,
                      int tile_cols);
    void (*round_bf16)(backend *be, float *out, int ldo, const float *x, int ldx, int rows, int cols);

    /* ---- low-precision matrix products (optional; CPU reference core/cpu/cpu_lowp.c) ----
     * matmul's contract (C[M,N] = alpha op(A) op(B) + beta C, row-major, C float32) with
     * the operands in a compact storage and float32 accumulation, as the tensor cores
     * compute it: the CPU reference decodes both operands exactly and multiplies in float32.
     * to_bf16: out ([rows, cols] bfloat16 bit patterns, rows ldo apart) = x rounded to
     *   nearest even (round_bf16's values).
     * matmul_bf16: A, B bfloat16 bit patterns, lda/ldb in elements.
     * matmul_fp8: A, B E4M3 codes (quantize_fp8's) with their scales; a_tile_rows x
     *   a_tile_cols are the tiles of A AS STORED (scales [ceil(rows/tr), ceil(cols/tc)],
     *   row-major), likewise for B. The tiles along the contraction are 128 long (1x128
     *   activations, 128x128 weights, 128x1 for an operand stored with K down its rows):
     *   the products DeepSeek-V3 runs (report sec. 3.3) and cuBLASLt's VEC128_32F /
     *   BLK128x128_32F scale modes take. */
    void (*to_bf16)(backend *be, uint16_t *out, int ldo, const float *x, int ldx, int rows, int cols);
    void (*matmul_bf16)(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A,
                        int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
    void (*matmul_fp8)(backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha, const uint8_t *A,
                       int lda, const float *a_scales, int a_tile_rows, int a_tile_cols, const uint8_t *B, int ldb,
                       const float *b_scales, int b_tile_rows, int b_tile_cols, float beta, float *C, int ldc);

    /* ---- grouped matrix products (optional; the routed experts) ----
     * For g < count: C_g[M_g, N] = alpha op(A_g) op(B_g) + beta C_g with matmul's
     * conventions; every group shares trans flags, N, K and strides, M_g (host array, may
     * be 0) varies. A, B, C: host arrays of `count` backend pointers. One call, so a GPU
     * runs the experts of a layer as one launch (cublasGemmGroupedBatchedEx). */
    void (*matmul_grouped)(backend *be, int trans_a, int trans_b, int count, const int *M, int N, int K, float alpha,
                           const float *const *A, int lda, const float *const *B, int ldb, float beta,
                           float *const *C, int ldc);

    /* ---- sampling on the device (optional; the reference is core/sample.c) ----
     * For each row i < N of logits [N, V] (rows ldl floats apart; ldl = 0: every row is the
     * same logits, e.g. a prompt's G first tokens): core/sample.h's sample_row with
     * temperature / top_k / top_p / min_p (transformers' warper order and tie rules) and the
     * uniform number u[i] in [0, 1) (backend memory, double; the rollout engine's
     * sampler_uniform; may be NULL when temperature is 0: greedy, argmax with the lowest
     * id on ties); writes tokens[i], logprob[i] and policy_logprob[i] (backend memory), so
     * only 16 bytes a row travel instead of V floats. Sums are in double on every backend;
     * another backend's token differs from the CPU's only when u[i] lands within ~1e-12 of
     * a CDF boundary. */
    void (*sample)(backend *be, int32_t *tokens, float *logprob, float *policy_logprob, const float *logits, int ldl,
                   int N, int V, const double *u, float temperature, int top_k, float top_p, float min_p);
};

/* The CPU backend (always present). Threads: OpenMP's, capped by omp_set_num_threads. */
backend *backend_cpu_create(void);
/* The CUDA backend on device `device`; NULL (with a message) when CUDA is absent. */
backend *backend_cuda_create(int device);
/* Number of CUDA devices seen; 0 when built without CUDA or none is present. */
int backend_cuda_device_count(void);
/* A line describing each CUDA device (name, memory, compute capability), or a reason. */
void backend_cuda_describe(char *buf, size_t size);
void backend_free(backend *be);

/* Error unless op (a member of be) is non-NULL: "backend cuda lacks op attention_forward". */
grpo_status backend_require(const backend *be, const void *op, const char *op_name);
#define BACKEND_REQUIRE(be, op) backend_require((be), (const void *)(uintptr_t)(be)->op, #op)

#endif

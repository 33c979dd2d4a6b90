/* Index and tiling arithmetic of the CUDA attention kernels (cuda_attention.cu, the
 * training flash kernels, and cuda_decode.cu, paged decoding), kept in plain C so the
 * CPU tests check it (tests/test_cuda_attention.c) without a device. Included by .cu
 * files (functions are then __host__ __device__) and by C tests; no CUDA headers. */
#ifndef GRPO_CUDA_ATTENTION_PLAN_H
#define GRPO_CUDA_ATTENTION_PLAN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/backend.h"
#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#define ATTN_HD static inline __host__ __device__
#else
#define ATTN_HD static inline
#endif

/* Keys per tile: one per lane of a warp, so a row's scores are one warp's registers and
 * its max and sum are warp shuffles. The backward's dk/dv pass walks queries 32 at a time
 * for the same reason. */
#define ATTN_TILE 32
/* Warps per block of the training kernels; decode uses up to this many. */
#define ATTN_WARPS 8
/* Head sizes the training kernels take (dense 64/128, MLA training Dqk = 192, Dv = 128). */
#define ATTN_MAX_TRAIN_DIM 256
/* Head sizes the decode kernel takes (MLA's absorbed attention: 576 / 512 for V3), as far
 * as one block's shared memory holds them (attn_forward_smem with one head: up to about
 * 1000 when keys and values share memory, about 600 each when they do not). */
#define ATTN_MAX_DECODE_DIM 1024
/* Rows (queries, keys or heads) a block may own: tried from the largest down until the
 * block's shared memory fits the device. */
#define ATTN_MAX_ROWS 64
/* Split-K for decoding: each split covers at least this many positions (a multiple of
 * ATTN_TILE), and a query is cut into at most ATTN_MAX_SPLITS. */
#define ATTN_SPLIT_MIN 256
#define ATTN_MAX_SPLITS 64

/* Row stride (floats) of a shared tile whose rows are read one per lane: odd, so 32 lanes
 * reading the same column of 32 rows hit 32 different banks. */
ATTN_HD int attn_pad_stride(int width) { return width % 2 ? width : width + 1; }

ATTN_HD int attn_tiles(int n, int tile) { return (n + tile - 1) / tile; }

/* Keys of the tile [j0, j0 + nk) that causal query i sees (keys j <= i): 0 .. nk. */
ATTN_HD int attn_visible(int i, int j0, int nk) {
    int v = i - j0 + 1;
    return v < 0 ? 0 : v > nk ? nk : v;
}

/* Key tiles a causal query tile [i0, i0 + nq) meets: tiles 0 .. n-1 (the rest lie above
 * the diagonal and are skipped whole). */
ATTN_HD int attn_causal_key_tiles(int i0, int nq) { return attn_tiles(i0 + nq, ATTN_TILE); }

/* Element 0 of the vector of kv head h at position p of a sequence whose block table is
 * `table` (backend.h's paged layout); the vector's element d is dim_stride floats on. */
ATTN_HD size_t attn_paged_offset(const backend_paged_layout *L, const int32_t *table, int p, int h) {
    return (size_t)table[p / L->block_size] * L->block_stride + (size_t)h * L->head_stride +
           (size_t)(p % L->block_size) * L->token_stride;
}

/* ---- shared memory of one block, in bytes (rows = queries, keys or heads it owns) ---- */

/* Forward: Qs [rows, pad(Dqk)], Ks [32, pad(Dqk)], Vs [32, pad(Dv)], O [rows, Dv],
 * P [rows, 32], m and l [rows]. Also the decode kernel's (rows = heads; Vs absent when
 * keys and values are the same memory). */
static inline size_t attn_forward_smem(int rows, int Dqk, int Dv, int shared_kv) {
    size_t f = (size_t)rows * attn_pad_stride(Dqk) + (size_t)ATTN_TILE * attn_pad_stride(Dqk) +
               (shared_kv ? 0 : (size_t)ATTN_TILE * attn_pad_stride(Dv)) + (size_t)rows * Dv +
               (size_t)rows * ATTN_TILE + 2 * (size_t)rows;
    return f * sizeof(float);
}

/* dq pass: Qs [rows, pad(Dqk)], dOs [rows, pad(Dv)], Ks [32, pad(Dqk)], Vs [32, pad(Dv)],
 * dQ [rows, Dqk], dS [rows, 32], lse and D [rows]. */
static inline size_t attn_dq_smem(int rows, int Dqk, int Dv, int unused) {
    (void)unused;
    size_t f = (size_t)rows * attn_pad_stride(Dqk) + (size_t)rows * attn_pad_stride(Dv) +
               (size_t)ATTN_TILE * attn_pad_stride(Dqk) + (size_t)ATTN_TILE * attn_pad_stride(Dv) +
               (size_t)rows * Dqk + (size_t)rows * ATTN_TILE + 2 * (size_t)rows;
    return f * sizeof(float);
}

/* dk/dv pass (rows = keys): Ks [rows, pad(Dqk)], Vs [rows, pad(Dv)], dK [rows, Dqk],
 * dV [rows, Dv], Qs [32, pad(Dqk)], dOs [32, pad(Dv)], P and dS [rows, 32], lse and D [32]. */
static inline size_t attn_dkv_smem(int rows, int Dqk, int Dv, int unused) {
    (void)unused;
    size_t f = (size_t)rows * attn_pad_stride(Dqk) + (size_t)rows * attn_pad_stride(Dv) + (size_t)rows * Dqk +
               (size_t)rows * Dv + (size_t)ATTN_TILE * attn_pad_stride(Dqk) +
               (size_t)ATTN_TILE * attn_pad_stride(Dv) + 2 * (size_t)rows * ATTN_TILE + 2 * (size_t)ATTN_TILE;
    return f * sizeof(float);
}

/* The most rows, a power of two from `most` down to `least`, whose block fits `limit`
 * bytes of shared memory; 0 when not even `least` fits. */
static inline int attn_pick_rows(size_t (*smem)(int, int, int, int), int Dqk, int Dv, int shared_kv, size_t limit,
                                 int most, int least) {
    for (int rows = most; rows >= least && rows >= 1; rows /= 2)
        if (smem(rows, Dqk, Dv, shared_kv) <= limit) return rows;
    return 0;
}

/* ---- split-K over the context (decode) ----
 * blocks: blocks one split would launch; max_ctx: the longest context the block tables
 * allow (the real lengths live on the device). Splits so that about two blocks per SM
 * run, each over >= ATTN_SPLIT_MIN positions; *chunk (a multiple of ATTN_TILE) is the
 * positions per split: split s covers [s * chunk, (s + 1) * chunk) of each query's
 * context, and splits past a short context are empty. */
static inline int attn_decode_splits(long blocks, int sm_count, int max_ctx, int *chunk) {
    int splits = 1;
    if (blocks > 0 && blocks < 2L * sm_count && max_ctx > ATTN_SPLIT_MIN) {
        long want = (2L * sm_count + blocks - 1) / blocks;
        long most = max_ctx / ATTN_SPLIT_MIN;   /* so that chunk >= max_ctx / most >= ATTN_SPLIT_MIN */
        if (want > most) want = most;
        if (want > ATTN_MAX_SPLITS) want = ATTN_MAX_SPLITS;
        splits = want < 1 ? 1 : (int)want;
    }
    int c = attn_tiles(attn_tiles(max_ctx > 0 ? max_ctx : 1, splits), ATTN_TILE) * ATTN_TILE;
    *chunk = c;
    return attn_tiles(max_ctx > 0 ? max_ctx : 1, c);
}

/* Positions [*lo, *hi) of a context of ctx positions that split s of `chunk` covers
 * (empty when *lo >= *hi). */
ATTN_HD void attn_split_range(int s, int chunk, int ctx, int *lo, int *hi) {
    long a = (long)s * chunk, b = a + chunk;
    *lo = a < ctx ? (int)a : ctx;
    *hi = b < ctx ? (int)b : ctx;
}

/* Merging softmax partials (FlashAttention-2's rescaling, as in split-K "flash decoding"):
 * partial s attended to a disjoint part of the keys and has log-sum-exp lse[s] (-inf when
 * it saw none) and normalised output o_s. The whole softmax's output is
 * sum_s w[s] o_s with w[s] = exp(lse[s] - M) / sum_t exp(lse[t] - M), M = max lse;
 * writes w[0..n) and returns the merged log-sum-exp (-inf when every part is empty, and
 * then w is all 0). */
ATTN_HD float attn_merge_weights(const float *lse, int n, float *w) {
    float M = -INFINITY;
    for (int s = 0; s < n; s++) M = fmaxf(M, lse[s]);
    if (M == -INFINITY) {
        for (int s = 0; s < n; s++) w[s] = 0.0f;
        return M;
    }
    float sum = 0.0f;
    for (int s = 0; s < n; s++) {
        w[s] = expf(lse[s] - M);   /* exp(-inf) = 0 for an empty part */
        sum += w[s];
    }
    for (int s = 0; s < n; s++) w[s] /= sum;
    return M + logf(sum);
}

#endif

/* Device pieces shared by the attention kernels of core/cuda/ (cuda_attention.cu for
 * training, cuda_decode.cu for paged decoding): warp reductions, tile loads into shared
 * memory, and the per-row work on one tile of ATTN_TILE keys. A row (a query, or a
 * key in the dk/dv pass) is owned by one warp from start to end: its running max, sum
 * and accumulators are touched by that warp only, so no block barrier guards them and no
 * two threads ever add into the same element (no atomics: the same bits every run).
 * .cu files only. */
#ifndef GRPO_CUDA_ATTENTION_TILE_H
#define GRPO_CUDA_ATTENTION_TILE_H

#include "core/cuda/cuda_attention_plan.h"
#include "core/cuda/cuda_impl.h"

#define ATTN_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float attn_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(ATTN_FULL_MASK, v, o));
    return v;
}

static __device__ __forceinline__ float attn_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(ATTN_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float attn_dot(const float *x, const float *y, int n) {
    float acc = 0.0f;
    for (int d = 0; d < n; d++) acc = fmaf(x[d], y[d], acc);
    return acc;
}

/* dst[r, c] = alpha * src[r * src_ld + c] for r < n, 0 for n <= r < rows (c < width);
 * dst rows ld floats apart. Every thread of the block calls it; no barrier inside. */
static __device__ __forceinline__ void attn_load_rows(float *dst, int ld, const float *src, size_t src_ld, int n,
                                                      int rows, int width, float alpha) {
    for (int x = threadIdx.x; x < rows * width; x += blockDim.x) {
        int r = x / width, c = x % width;
        dst[(size_t)r * ld + c] = r < n ? alpha * src[(size_t)r * src_ld + c] : 0.0f;
    }
}

/* One key tile of the online softmax for one row (FlashAttention-2, Alg. 1, lines 8-10),
 * run by the 32 lanes of the owning warp; lane j scores key j.
 *   q: [Dqk] the row's query, already scaled; Ks: [32, ks]; Vs: [32, vs] (key j's
 *   value at Vs + j * vs); nvis >= 1: keys 0 .. nvis-1 of the tile are visible.
 *   o: [Dv] unnormalised output, p: [32] scratch, *m running max, *l running sum.
 * m_new = max(m, max_j s_j); o = o e^(m - m_new) + sum_j e^(s_j - m_new) v_j;
 * l = l e^(m - m_new) + sum_j e^(s_j - m_new). */
static __device__ __forceinline__ void attn_online_row(const float *q, const float *Ks, int ks, const float *Vs,
                                                       int vs, int Dqk, int Dv, int nvis, float *o, float *p,
                                                       float *m, float *l, int lane) {
    float s = lane < nvis ? attn_dot(q, Ks + (size_t)lane * ks, Dqk) : -INFINITY;
    float m_old = *m;
    float m_new = fmaxf(m_old, attn_warp_max(s));   /* finite: key 0 of the tile is visible */
    float corr = expf(m_old - m_new);               /* 0 on the row's first tile (m_old = -inf) */
    float e = lane < nvis ? expf(s - m_new) : 0.0f;
    float sum = attn_warp_sum(e);
    p[lane] = e;
    __syncwarp();
    for (int d = lane; d < Dv; d += 32) {
        float acc = o[d] * corr;
        for (int j = 0; j < nvis; j++) acc = fmaf(p[j], Vs[(size_t)j * vs + d], acc);
        o[d] = acc;
    }
    __syncwarp();   /* every lane has read *m and p before they change */
    if (lane == 0) {
        *m = m_new;
        *l = *l * corr + sum;
    }
    __syncwarp();
}

#endif

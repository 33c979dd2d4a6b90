/* Causal self-attention with grouped-query heads on CUDA, forward and backward, for
 * training (contract in core/backend.h; CPU reference core/cpu/cpu_attention.c, same
 * maths). Flash-style (Dao 2023, FlashAttention-2): a block owns a tile of query rows
 * (forward, dq) or key rows (dk, dv), walks the other side 32 rows at a time through
 * shared memory with the softmax running online, and keeps only lse per query: no T x T
 * matrix exists anywhere. Causal masking skips whole tiles above the diagonal. FP32
 * throughout (plain FMA on the CUDA cores); head sizes up to ATTN_MAX_TRAIN_DIM (256).
 *
 * With s_ij = scale q_i . k_j (j <= i), lse_i = logsumexp_j s_ij, P_ij = exp(s_ij - lse_i),
 * D_i = dout_i . out_i (FlashAttention-2, Alg. 1 and 2):
 *   out_i = sum_j P_ij v_j
 *   dS_ij = P_ij (dout_i . v_j - D_i)
 *   dq_i = scale sum_j dS_ij k_j;  dk_j = scale sum_{h, i >= j} dS_ij q_i;  dv_j = sum_{h, i >= j} P_ij dout_i
 * where dk and dv of a kv head sum over the Hq / Hkv query heads that share it.
 *
 * Work split (one warp owns a row; cuda_attention_tile.h):
 *  - forward: block = (query tile of R rows, query head, batch); R from 64 down to what
 *    fits the device's shared memory (attn_pick_rows).
 *  - dq: the same blocks; D_i is computed by the block from its rows of dout and out.
 *  - dk, dv: block = (key tile of R rows, kv head, batch); it walks every query head of
 *    the group and every query tile at or below the diagonal, recomputing D for each
 *    query tile, so it owns its rows of dk and dv outright. D is recomputed rather than
 *    written by a kernel of its own so the backward needs no scratch memory at all.
 * Every output element is written by one thread: the same bits on every run.
 *
 * What would make it faster (not done; correctness first): tensor-core MMA on BF16/TF32
 * tiles (mma.sync / wgmma) instead of FP32 FMA on shared memory; keeping O and the
 * dk/dv accumulators in registers; sharing a K/V tile between the query heads of a
 * group in one block (the CPU does); splitting the dk/dv pass over query ranges for long
 * T with few (batch, kv head) pairs; more blocks per SM (smaller tiles, fewer bytes). */
#include "core/cuda/cuda_attention_tile.h"

/* Layout of one launch: q: [B, T, Hq, Dqk], k: [B, T, Hkv, Dqk], v: [B, T, Hkv, Dv],
 * out/dout: [B, T, Hq, Dv]; lse: [B, Hq, T]. */
typedef struct {
    int T, Hq, Hkv, Dqk, Dv;
    float scale;
} att_shape;

static __device__ __forceinline__ size_t att_q_index(att_shape a, int b, int t, int h) {
    return (((size_t)b * a.T + t) * a.Hq + h) * a.Dqk;
}
static __device__ __forceinline__ size_t att_k_index(att_shape a, int b, int t, int hk) {
    return (((size_t)b * a.T + t) * a.Hkv + hk) * a.Dqk;
}
static __device__ __forceinline__ size_t att_v_index(att_shape a, int b, int t, int hk) {
    return (((size_t)b * a.T + t) * a.Hkv + hk) * a.Dv;
}
static __device__ __forceinline__ size_t att_o_index(att_shape a, int b, int t, int h) {
    return (((size_t)b * a.T + t) * a.Hq + h) * a.Dv;
}

/* D[r] = dout_r . out_r and L[r] = lse of the rows r < n of a query tile starting at i0
 * (dO: [*, vs] the tile's dout in shared memory); rows n .. rows-1 get 0. One warp per
 * row; every thread of the block calls it. */
static __device__ void att_load_lse_dot(float *L, float *Dd, const float *dO, int vs, const float *out,
                                        const float *lse, att_shape a, int b, int h, int i0, int n, int rows) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    for (int r = warp; r < rows; r += nwarps) {
        float acc = 0.0f;
        if (r < n) {
            const float *o = out + att_o_index(a, b, i0 + r, h), *g = dO + (size_t)r * vs;
            for (int d = lane; d < a.Dv; d += 32) acc = fmaf(g[d], o[d], acc);
        }
        acc = attn_warp_sum(acc);
        if (lane == 0) {
            Dd[r] = acc;
            L[r] = r < n ? lse[((size_t)b * a.Hq + h) * a.T + i0 + r] : 0.0f;
        }
    }
}

/* ---- forward ---- */

/* Block (blockIdx.x, blockIdx.y = h, blockIdx.z = b) owns query rows i0 .. i0+nq-1;
 * the last tiles (the most keys) are launched first. Shared: attn_forward_smem(rows). */
__global__ void attention_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                                         att_shape a, int rows) {
    extern __shared__ float smem[];
    const int qs = attn_pad_stride(a.Dqk), vs = attn_pad_stride(a.Dv);
    float *Qs = smem;                         /* [rows, qs] scaled queries */
    float *Ks = Qs + (size_t)rows * qs;       /* [32, qs] */
    float *Vs = Ks + (size_t)ATTN_TILE * qs;  /* [32, vs] */
    float *O = Vs + (size_t)ATTN_TILE * vs;   /* [rows, Dv] unnormalised output */
    float *P = O + (size_t)rows * a.Dv;       /* [rows, 32] weights of the current tile */
    float *m = P + (size_t)rows * ATTN_TILE;  /* [rows] running max */
    float *l = m + rows;                      /* [rows] running sum */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (a.Hq / a.Hkv);
    const int i0 = (attn_tiles(a.T, rows) - 1 - (int)blockIdx.x) * rows;
    const int nq = a.T - i0 < rows ? a.T - i0 : rows;
    const size_t q_ld = (size_t)a.Hq * a.Dqk, k_ld = (size_t)a.Hkv * a.Dqk, v_ld = (size_t)a.Hkv * a.Dv;

    attn_load_rows(Qs, qs, q + att_q_index(a, b, i0, h), q_ld, nq, rows, a.Dqk, a.scale);
    for (int x = threadIdx.x; x < rows * a.Dv; x += blockDim.x) O[x] = 0.0f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    const int n_kt = attn_causal_key_tiles(i0, nq);
    for (int kt = 0; kt < n_kt; kt++) {
        const int j0 = kt * ATTN_TILE, nk = a.T - j0 < ATTN_TILE ? a.T - j0 : ATTN_TILE;
        __syncthreads();   /* the previous tile is used up (and the initial state is written) */
        attn_load_rows(Ks, qs, k + att_k_index(a, b, j0, hk), k_ld, nk, ATTN_TILE, a.Dqk, 1.0f);
        attn_load_rows(Vs, vs, v + att_v_index(a, b, j0, hk), v_ld, nk, ATTN_TILE, a.Dv, 1.0f);
        __syncthreads();
        for (int r = warp; r < nq; r += nwarps) {
            const int nvis = attn_visible(i0 + r, j0, nk);
            if (nvis > 0)
                attn_online_row(Qs + (size_t)r * qs, Ks, qs, Vs, vs, a.Dqk, a.Dv, nvis, O + (size_t)r * a.Dv,
                                P + (size_t)r * ATTN_TILE, m + r, l + r, lane);
        }
    }
    for (int r = warp; r < nq; r += nwarps) {   /* rows this warp owns: no barrier needed */
        const float inv = 1.0f / l[r];
        float *dst = out + att_o_index(a, b, i0 + r, h);
        for (int d = lane; d < a.Dv; d += 32) dst[d] = O[(size_t)r * a.Dv + d] * inv;
        if (lane == 0) lse[((size_t)b * a.Hq + h) * a.T + i0 + r] = m[r] + logf(l[r]);
    }
}

/* ---- backward: dq ---- */

/* One key tile for query row i: lane j < nvis forms dS_ij; then dq_row += sum_j dS_ij k_j.
 * q: scaled query [Dqk]; g: dout [Dv]; L, D: the row's lse and dout . out. */
static __device__ __forceinline__ void att_dq_row(const float *q, const float *g, const float *Ks, int ks,
                                                  const float *Vs, int vs, int Dqk, int Dv, int nvis, float L,
                                                  float D, float *dq_row, float *ds, int lane) {
    float dsj = 0.0f;
    if (lane < nvis) {
        const float p = expf(attn_dot(q, Ks + (size_t)lane * ks, Dqk) - L);
        dsj = p * (attn_dot(g, Vs + (size_t)lane * vs, Dv) - D);
    }
    ds[lane] = dsj;
    __syncwarp();
    for (int d = lane; d < Dqk; d += 32) {
        float acc = dq_row[d];
        for (int j = 0; j < nvis; j++) acc = fmaf(ds[j], Ks[(size_t)j * ks + d], acc);
        dq_row[d] = acc;
    }
    __syncwarp();
}

/* Blocks as in the forward. Shared: attn_dq_smem(rows). */
__global__ void attention_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                                    const float *out, const float *lse, att_shape a, int rows) {
    extern __shared__ float smem[];
    const int qs = attn_pad_stride(a.Dqk), vs = attn_pad_stride(a.Dv);
    float *Qs = smem;                         /* [rows, qs] scaled queries */
    float *dO = Qs + (size_t)rows * qs;       /* [rows, vs] */
    float *Ks = dO + (size_t)rows * vs;       /* [32, qs] */
    float *Vs = Ks + (size_t)ATTN_TILE * qs;  /* [32, vs] */
    float *dQ = Vs + (size_t)ATTN_TILE * vs;  /* [rows, Dqk] sum_j dS_ij k_j */
    float *dS = dQ + (size_t)rows * a.Dqk;    /* [rows, 32] */
    float *L = dS + (size_t)rows * ATTN_TILE; /* [rows] lse */
    float *Dd = L + rows;                     /* [rows] dout . out */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (a.Hq / a.Hkv);
    const int i0 = (attn_tiles(a.T, rows) - 1 - (int)blockIdx.x) * rows;
    const int nq = a.T - i0 < rows ? a.T - i0 : rows;
    const size_t q_ld = (size_t)a.Hq * a.Dqk, k_ld = (size_t)a.Hkv * a.Dqk, v_ld = (size_t)a.Hkv * a.Dv;
    const size_t o_ld = (size_t)a.Hq * a.Dv;

    attn_load_rows(Qs, qs, q + att_q_index(a, b, i0, h), q_ld, nq, rows, a.Dqk, a.scale);
    attn_load_rows(dO, vs, dout + att_o_index(a, b, i0, h), o_ld, nq, rows, a.Dv, 1.0f);
    for (int x = threadIdx.x; x < rows * a.Dqk; x += blockDim.x) dQ[x] = 0.0f;
    __syncthreads();
    att_load_lse_dot(L, Dd, dO, vs, out, lse, a, b, h, i0, nq, rows);

    const int n_kt = attn_causal_key_tiles(i0, nq);
    for (int kt = 0; kt < n_kt; kt++) {
        const int j0 = kt * ATTN_TILE, nk = a.T - j0 < ATTN_TILE ? a.T - j0 : ATTN_TILE;
        __syncthreads();
        attn_load_rows(Ks, qs, k + att_k_index(a, b, j0, hk), k_ld, nk, ATTN_TILE, a.Dqk, 1.0f);
        attn_load_rows(Vs, vs, v + att_v_index(a, b, j0, hk), v_ld, nk, ATTN_TILE, a.Dv, 1.0f);
        __syncthreads();
        for (int r = warp; r < nq; r += nwarps) {
            const int nvis = attn_visible(i0 + r, j0, nk);
            if (nvis > 0)
                att_dq_row(Qs + (size_t)r * qs, dO + (size_t)r * vs, Ks, qs, Vs, vs, a.Dqk, a.Dv, nvis, L[r], Dd[r],
                           dQ + (size_t)r * a.Dqk, dS + (size_t)r * ATTN_TILE, lane);
        }
    }
    for (int r = warp; r < nq; r += nwarps) {
        float *dst = dq + att_q_index(a, b, i0 + r, h);
        for (int d = lane; d < a.Dqk; d += 32) dst[d] = a.scale * dQ[(size_t)r * a.Dqk + d];
    }
}

/* ---- backward: dk, dv ---- */

/* One query tile (lanes = queries first .. nq-1 of it; earlier ones are above the
 * diagonal for this key) for key row j: lane i forms P_ij and dS_ij; then
 * dv_row += sum_i P_ij dout_i and dk_row += sum_i dS_ij (scale q_i). Qs: [32, qs] scaled
 * queries; dO: [32, vs]; L, D: [32]. */
static __device__ __forceinline__ void att_dkv_row(const float *kj, const float *vj, const float *Qs, int qs,
                                                   const float *dO, int vs, const float *L, const float *D, int Dqk,
                                                   int Dv, int first, int nq, float *dk_row, float *dv_row, float *p,
                                                   float *ds, int lane) {
    float pi = 0.0f, dsi = 0.0f;
    if (lane >= first && lane < nq) {
        pi = expf(attn_dot(Qs + (size_t)lane * qs, kj, Dqk) - L[lane]);
        dsi = pi * (attn_dot(dO + (size_t)lane * vs, vj, Dv) - D[lane]);
    }
    p[lane] = pi;
    ds[lane] = dsi;
    __syncwarp();
    for (int d = lane; d < Dv; d += 32) {
        float acc = dv_row[d];
        for (int i = first; i < nq; i++) acc = fmaf(p[i], dO[(size_t)i * vs + d], acc);
        dv_row[d] = acc;
    }
    for (int d = lane; d < Dqk; d += 32) {
        float acc = dk_row[d];
        for (int i = first; i < nq; i++) acc = fmaf(ds[i], Qs[(size_t)i * qs + d], acc);
        dk_row[d] = acc;
    }
    __syncwarp();
}

/* Block (blockIdx.x = key tile, blockIdx.y = hk, blockIdx.z = b) owns key rows
 * j0 .. j0+nk-1. Shared: attn_dkv_smem(rows). */
__global__ void attention_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                                     const float *v, const float *out, const float *lse, att_shape a, int rows) {
    extern __shared__ float smem[];
    const int qs = attn_pad_stride(a.Dqk), vs = attn_pad_stride(a.Dv);
    float *Ks = smem;                          /* [rows, qs] */
    float *Vs = Ks + (size_t)rows * qs;        /* [rows, vs] */
    float *dK = Vs + (size_t)rows * vs;        /* [rows, Dqk] */
    float *dV = dK + (size_t)rows * a.Dqk;     /* [rows, Dv] */
    float *Qs = dV + (size_t)rows * a.Dv;      /* [32, qs] scaled queries */
    float *dO = Qs + (size_t)ATTN_TILE * qs;   /* [32, vs] */
    float *P = dO + (size_t)ATTN_TILE * vs;    /* [rows, 32] */
    float *dS = P + (size_t)rows * ATTN_TILE;  /* [rows, 32] */
    float *L = dS + (size_t)rows * ATTN_TILE;  /* [32] */
    float *Dd = L + ATTN_TILE;                 /* [32] */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const int hk = blockIdx.y, b = blockIdx.z, group = a.Hq / a.Hkv;
    const int j0 = (int)blockIdx.x * rows, nk = a.T - j0 < rows ? a.T - j0 : rows;
    const size_t q_ld = (size_t)a.Hq * a.Dqk, k_ld = (size_t)a.Hkv * a.Dqk, v_ld = (size_t)a.Hkv * a.Dv;
    const size_t o_ld = (size_t)a.Hq * a.Dv;

    attn_load_rows(Ks, qs, k + att_k_index(a, b, j0, hk), k_ld, nk, rows, a.Dqk, 1.0f);
    attn_load_rows(Vs, vs, v + att_v_index(a, b, j0, hk), v_ld, nk, rows, a.Dv, 1.0f);
    for (int x = threadIdx.x; x < rows * a.Dqk; x += blockDim.x) dK[x] = 0.0f;
    for (int x = threadIdx.x; x < rows * a.Dv; x += blockDim.x) dV[x] = 0.0f;
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        for (int i0 = j0; i0 < a.T; i0 += ATTN_TILE) {   /* query tiles at or below the diagonal */
            const int nq = a.T - i0 < ATTN_TILE ? a.T - i0 : ATTN_TILE;
            __syncthreads();   /* the previous query tile is used up */
            attn_load_rows(Qs, qs, q + att_q_index(a, b, i0, h), q_ld, nq, ATTN_TILE, a.Dqk, a.scale);
            attn_load_rows(dO, vs, dout + att_o_index(a, b, i0, h), o_ld, nq, ATTN_TILE, a.Dv, 1.0f);
            __syncthreads();
            att_load_lse_dot(L, Dd, dO, vs, out, lse, a, b, h, i0, nq, ATTN_TILE);
            __syncthreads();
            for (int r = warp; r < nk; r += nwarps) {
                /* queries i0 + first .. see key j0 + r (i >= j) */
                const int first = j0 + r - i0 > 0 ? j0 + r - i0 : 0;
                if (first < nq)
                    att_dkv_row(Ks + (size_t)r * qs, Vs + (size_t)r * vs, Qs, qs, dO, vs, L, Dd, a.Dqk, a.Dv, first,
                                nq, dK + (size_t)r * a.Dqk, dV + (size_t)r * a.Dv, P + (size_t)r * ATTN_TILE,
                                dS + (size_t)r * ATTN_TILE, lane);
            }
        }
    }
    for (int r = warp; r < nk; r += nwarps) {   /* Qs was scaled, so dK is dk already */
        float *dkr = dk + att_k_index(a, b, j0 + r, hk), *dvr = dv + att_v_index(a, b, j0 + r, hk);
        for (int d = lane; d < a.Dqk; d += 32) dkr[d] = dK[(size_t)r * a.Dqk + d];
        for (int d = lane; d < a.Dv; d += 32) dvr[d] = dV[(size_t)r * a.Dv + d];
    }
}

/* ---- host side ---- */

static att_shape att_check(const char *op, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq > 0 && Hq % Hkv == 0, "%s: Hq=%d is not a multiple of Hkv=%d", op, Hq, Hkv);
    GRPO_ASSERTF(Dqk <= ATTN_MAX_TRAIN_DIM && Dv <= ATTN_MAX_TRAIN_DIM,
                 "%s: head sizes Dqk=%d Dv=%d: the CUDA attention kernels take up to %d", op, Dqk, Dv,
                 ATTN_MAX_TRAIN_DIM);
    GRPO_ASSERTF(B >= 0 && T >= 0 && Dqk >= 1 && Dv >= 1, "%s: bad size B=%d T=%d Dqk=%d Dv=%d", op, B, T, Dqk, Dv);
    GRPO_ASSERTF(Hq <= 65535 && B <= 65535, "%s: Hq=%d, B=%d: a launch holds up to 65535 of each", op, Hq, B);
    att_shape a = {T, Hq, Hkv, Dqk, Dv, scale};
    return a;
}

/* Rows per block for a kernel with shared memory smem(rows), and that kernel opted in to
 * the bytes it needs (over the 48 KiB default). */
static int att_plan(backend *be, const void *kernel, size_t (*smem)(int, int, int, int), const char *op, int Dqk,
                    int Dv, size_t *bytes) {
    int limit = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, cuda_impl_of(be)->device));
    const int rows = attn_pick_rows(smem, Dqk, Dv, 0, (size_t)limit, ATTN_MAX_ROWS, 1);
    GRPO_ASSERTF(rows > 0, "%s: Dqk=%d Dv=%d need %zu bytes of shared memory per block, the device has %d", op, Dqk,
                 Dv, smem(1, Dqk, Dv, 0), limit);
    *bytes = smem(rows, Dqk, Dv, 0);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)*bytes));
    return rows;
}

void cuda_attention_forward(backend *be, float *out, float *lse, const float *q, const float *k, const float *v, int B,
                            int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    att_shape a = att_check("attention_forward", B, T, Hq, Hkv, Dqk, Dv, scale);
    if (!B || !T) return;
    size_t bytes = 0;
    const int rows = att_plan(be, (const void *)attention_forward_kernel, attn_forward_smem, "attention_forward",
                              Dqk, Dv, &bytes);
    dim3 grid((unsigned)attn_tiles(T, rows), (unsigned)Hq, (unsigned)B);
    attention_forward_kernel<<<grid, 32 * ATTN_WARPS, bytes, cuda_stream_of(be)>>>(out, lse, q, k, v, a, rows);
    CUDA_CHECK_LAST();
}

void cuda_attention_backward(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse, int B, int T, int Hq,
                             int Hkv, int Dqk, int Dv, float scale) {
    att_shape a = att_check("attention_backward", B, T, Hq, Hkv, Dqk, Dv, scale);
    if (!B || !T) return;
    cudaStream_t s = cuda_stream_of(be);
    size_t bytes = 0;
    int rows = att_plan(be, (const void *)attention_dq_kernel, attn_dq_smem, "attention_backward (dq)", Dqk, Dv,
                        &bytes);
    dim3 grid_q((unsigned)attn_tiles(T, rows), (unsigned)Hq, (unsigned)B);
    attention_dq_kernel<<<grid_q, 32 * ATTN_WARPS, bytes, s>>>(dq, dout, q, k, v, out, lse, a, rows);
    CUDA_CHECK_LAST();
    rows = att_plan(be, (const void *)attention_dkv_kernel, attn_dkv_smem, "attention_backward (dk, dv)", Dqk, Dv,
                    &bytes);
    dim3 grid_k((unsigned)attn_tiles(T, rows), (unsigned)Hkv, (unsigned)B);
    attention_dkv_kernel<<<grid_k, 32 * ATTN_WARPS, bytes, s>>>(dk, dv, dout, q, k, v, out, lse, a, rows);
    CUDA_CHECK_LAST();
}

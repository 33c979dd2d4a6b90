/* Cached decoding on CUDA (contracts in core/backend.h; CPU reference core/cpu/cpu_decode.c):
 * cache_write_rows puts the new tokens' vectors into a paged cache, and paged_attention
 * runs query tokens over their own sequence's cached positions through its block table
 * (vLLM's PagedAttention, Kwon et al. 2023), with the online softmax of FlashAttention-2
 * over tiles of 32 positions. FP32; any layout strides.
 *
 * Work split: a block = (query token, kv head, group of up to R query heads of that kv
 * head, split of the context). Each tile of 32 cache positions is gathered once into
 * shared memory and serves all R heads of the block, one warp per head
 * (cuda_attention_tile.h). MLA's absorbed attention (Hkv = 1, Dqk = kv_lora_rank + rope =
 * 576, Dv = kv_lora_rank = 512 for V3, k_cache and v_cache the same memory) reads each
 * latent row once per block as both key and value (the value is the row's first Dv
 * numbers), and R is as many heads as the shared memory holds (32 on an H100, 16 on an
 * A100 at V3's sizes), so a row is fetched Hq / R times per token from global memory (L2).
 * When few blocks would run (small N, long context), the context is split across blocks
 * (split-K, "flash decoding"): each split writes its normalised partial output and
 * log-sum-exp, and a second kernel merges them (attn_merge_weights) in split order. The
 * split count comes from the longest context the block tables allow (the real lengths
 * are in device memory): splits past a short context exit at once.
 * Every output element is written by one thread: the same bits on every run.
 *
 * What would make it faster (not done): BF16/FP8 latent cache; tensor-core MMA for the
 * [R heads, Dqk] x [Dqk, 32 positions] scores and the P V product (FlashMLA-style) -- at
 * Hq = 128 the FP32 FMAs, not the cache reads, bound this kernel; asynchronous copies
 * (cp.async / TMA) double-buffering the next tile while this one is scored. */
#include "core/cuda/cuda_attention_tile.h"
#include "core/cuda/cuda_reduce.h"

#include <string.h>

extern "C" {
#include "core/backend_pool.h"
}

typedef struct {
    backend_paged_layout kl, vl;
    int max_blocks, Hq, Hkv, Dqk, Dv;
    int group;       /* Hq / Hkv */
    int heads;       /* R: query heads per block */
    int head_tiles;  /* blocks per kv head: ceil(group / R) */
    int chunk;       /* positions per split */
    int splits;
    int shared_kv;   /* values are the first Dv numbers of the key vectors (same memory, same layout) */
    float scale;
} decode_shape;

/* ---- cache_write_rows ---- */

/* For x = (i * H + h) * width + c < N * H * width: the cache element c of (slots[i], head h) = src[x]. */
__global__ void cache_write_rows_kernel(float *dst, backend_paged_layout L, const float *src, int H, int width,
                                        const int32_t *slots, size_t n) {
    for (size_t x = (size_t)blockIdx.x * blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(x % width), h = (int)((x / width) % H);
        const size_t i = x / ((size_t)width * H);
        const int slot = slots[i];
        if (slot < 0) CUDA_DEVICE_FAIL("cache_write_rows: slots[%llu] = %d < 0\n", (unsigned long long)i, slot);
        dst[(size_t)(slot / L.block_size) * L.block_stride + (size_t)h * L.head_stride +
            (size_t)(slot % L.block_size) * L.token_stride + (size_t)c * L.dim_stride] = src[x];
    }
}

void cuda_cache_write_rows(backend *be, float *dst, const backend_paged_layout *layout, const float *src, int H,
                           int width, const int32_t *slots, int N) {
    if (N <= 0 || H <= 0 || width <= 0) return;
    GRPO_ASSERTF(layout->block_size > 0, "cache_write_rows: block_size %d", layout->block_size);
    const size_t n = (size_t)N * H * width;
    cache_write_rows_kernel<<<cuda_grid_for(n), CUDA_BLOCK, 0, cuda_stream_of(be)>>>(dst, *layout, src, H, width,
                                                                                    slots, n);
    CUDA_CHECK_LAST();
}

/* ---- paged_attention ---- */

/* Gathers positions lo .. lo+nk-1 (nk <= 32) of kv head hk into Ks [32, ld] (rows past nk
 * zero), element d of a vector width floats long. off: [32] the positions' offsets. */
static __device__ __forceinline__ void decode_gather(float *Ks, int ld, const float *cache,
                                                     const backend_paged_layout *L, const size_t *off, int nk,
                                                     int width) {
    if (L->dim_stride == 1 || L->token_stride != 1) {   /* a vector's numbers side by side: d fastest */
        for (int x = threadIdx.x; x < ATTN_TILE * width; x += blockDim.x) {
            const int j = x / width, d = x % width;
            Ks[(size_t)j * ld + d] = j < nk ? cache[off[j] + (size_t)d * L->dim_stride] : 0.0f;
        }
    } else {   /* positions side by side (keys stored [dim, block_size]): position fastest */
        for (int x = threadIdx.x; x < ATTN_TILE * width; x += blockDim.x) {
            const int j = x % ATTN_TILE, d = x / ATTN_TILE;
            Ks[(size_t)j * ld + d] = j < nk ? cache[off[j] + (size_t)d * L->dim_stride] : 0.0f;
        }
    }
}

/* blockIdx.x = (i * Hkv + hk) * head_tiles + head tile, blockIdx.y = split.
 * splits == 1: writes out [N, Hq, Dv]. Else part_o [N, Hq, splits, Dv] (normalised) and
 * part_lse [N, Hq, splits] (-inf for a split past the context).
 * Shared: attn_forward_smem(heads, Dqk, Dv, shared_kv). */
__global__ void paged_attention_kernel(float *out, float *part_o, float *part_lse, const float *q,
                                       const float *k_cache, const float *v_cache, const int32_t *block_tables,
                                       const int32_t *seq_of, const int32_t *ctx_len, decode_shape a) {
    extern __shared__ float smem[];
    __shared__ size_t koff[ATTN_TILE], voff[ATTN_TILE];
    const int ks = attn_pad_stride(a.Dqk), vs = attn_pad_stride(a.Dv), R = a.heads;
    float *Qs = smem;                                            /* [R, ks] scaled queries */
    float *Ks = Qs + (size_t)R * ks;                             /* [32, ks] */
    float *Vs = Ks + (size_t)ATTN_TILE * ks;                     /* [32, vs] unless shared_kv */
    float *O = Vs + (a.shared_kv ? 0 : (size_t)ATTN_TILE * vs);  /* [R, Dv] unnormalised */
    float *P = O + (size_t)R * a.Dv;                             /* [R, 32] */
    float *m = P + (size_t)R * ATTN_TILE;                        /* [R] */
    float *l = m + R;                                            /* [R] */
    const float *Vt = a.shared_kv ? Ks : Vs;
    const int vt_ld = a.shared_kv ? ks : vs;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const int tile = (int)(blockIdx.x % a.head_tiles), hk = (int)((blockIdx.x / a.head_tiles) % a.Hkv);
    const int i = (int)(blockIdx.x / ((unsigned)a.head_tiles * a.Hkv)), split = blockIdx.y;
    const int h0 = hk * a.group + tile * R, nh = a.group - tile * R < R ? a.group - tile * R : R;
    const int bs = a.kl.block_size, seq = seq_of[i], ctx = ctx_len[i];
    if (seq < 0 || ctx < 1 || ctx > (long)a.max_blocks * bs) {
        if (threadIdx.x == 0)
            CUDA_DEVICE_FAIL("paged_attention: token %d: seq %d, ctx_len %d (expected >= 1 and <= %d blocks of %d)\n",
                             i, seq, ctx, a.max_blocks, bs);
        return;
    }
    const int32_t *table = block_tables + (size_t)seq * a.max_blocks;
    int lo, hi;
    attn_split_range(split, a.chunk, ctx, &lo, &hi);

    attn_load_rows(Qs, ks, q + ((size_t)i * a.Hq + h0) * a.Dqk, (size_t)a.Dqk, nh, R, a.Dqk, a.scale);
    for (int x = threadIdx.x; x < R * a.Dv; x += blockDim.x) O[x] = 0.0f;
    for (int r = threadIdx.x; r < R; r += blockDim.x) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    for (int j0 = lo; j0 < hi; j0 += ATTN_TILE) {
        const int nk = hi - j0 < ATTN_TILE ? hi - j0 : ATTN_TILE;
        __syncthreads();   /* the previous tile is used up (and the initial state is written) */
        if (threadIdx.x < nk) {
            const int p = j0 + threadIdx.x, blk = table[p / bs];
            if (blk < 0) CUDA_DEVICE_FAIL("paged_attention: seq %d: block_tables[%d] = %d < 0\n", seq, p / bs, blk);
            koff[threadIdx.x] = (size_t)blk * a.kl.block_stride + (size_t)hk * a.kl.head_stride +
                                (size_t)(p % bs) * a.kl.token_stride;
            voff[threadIdx.x] = (size_t)blk * a.vl.block_stride + (size_t)hk * a.vl.head_stride +
                                (size_t)(p % bs) * a.vl.token_stride;
        }
        __syncthreads();
        decode_gather(Ks, ks, k_cache, &a.kl, koff, nk, a.Dqk);
        if (!a.shared_kv) decode_gather(Vs, vs, v_cache, &a.vl, voff, nk, a.Dv);
        __syncthreads();
        for (int r = warp; r < nh; r += nwarps)
            attn_online_row(Qs + (size_t)r * ks, Ks, ks, Vt, vt_ld, a.Dqk, a.Dv, nk, O + (size_t)r * a.Dv,
                            P + (size_t)r * ATTN_TILE, m + r, l + r, lane);
    }
    for (int r = warp; r < nh; r += nwarps) {   /* rows this warp owns: no barrier needed */
        const size_t row = (size_t)i * a.Hq + h0 + r;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        float *dst = a.splits == 1 ? out + row * a.Dv : part_o + (row * a.splits + split) * a.Dv;
        for (int d = lane; d < a.Dv; d += 32) dst[d] = O[(size_t)r * a.Dv + d] * inv;
        if (a.splits > 1 && lane == 0)
            part_lse[row * a.splits + split] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
    }
}

/* out[row, :] = sum_s w_s part_o[row, s, :] with the weights of attn_merge_weights, for
 * row = blockIdx.x < N * Hq. */
__global__ void paged_attention_merge_kernel(float *out, const float *part_o, const float *part_lse, int splits,
                                             int Dv) {
    __shared__ float w[ATTN_MAX_SPLITS];
    const size_t row = blockIdx.x;
    if (threadIdx.x == 0) attn_merge_weights(part_lse + row * splits, splits, w);
    __syncthreads();
    for (int d = threadIdx.x; d < Dv; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < splits; s++) acc = fmaf(w[s], part_o[(row * splits + s) * Dv + d], acc);
        out[row * Dv + d] = acc;
    }
}

void cuda_paged_attention(backend *be, float *out, const float *q, const float *k_cache,
                          const backend_paged_layout *k_layout, const float *v_cache,
                          const backend_paged_layout *v_layout, const int32_t *block_tables, int max_blocks,
                          const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                          float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq > 0 && Hq % Hkv == 0, "paged_attention: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
    const backend_paged_layout KL = *k_layout, VL = *v_layout;
    GRPO_ASSERTF(KL.block_size > 0 && KL.block_size == VL.block_size && max_blocks > 0,
                 "paged_attention: block sizes %d (keys) and %d (values), max_blocks=%d", KL.block_size,
                 VL.block_size, max_blocks);
    GRPO_ASSERTF(Dqk >= 1 && Dv >= 1 && Dqk <= ATTN_MAX_DECODE_DIM && Dv <= ATTN_MAX_DECODE_DIM,
                 "paged_attention: head sizes Dqk=%d Dv=%d: the CUDA kernel takes 1 .. %d", Dqk, Dv,
                 ATTN_MAX_DECODE_DIM);
    if (N <= 0) return;
    cuda_impl *impl = cuda_impl_of(be);
    decode_shape a;
    memset(&a, 0, sizeof a);
    a.kl = KL;
    a.vl = VL;
    a.max_blocks = max_blocks;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.Dqk = Dqk;
    a.Dv = Dv;
    a.group = Hq / Hkv;
    a.scale = scale;
    a.shared_kv = k_cache == v_cache && Dv <= Dqk && KL.block_stride == VL.block_stride &&
                  KL.head_stride == VL.head_stride && KL.token_stride == VL.token_stride &&
                  KL.dim_stride == VL.dim_stride;

    int limit = 0, sms = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, impl->device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, impl->device));
    int most = 1;
    while (most < a.group && most < ATTN_MAX_ROWS) most *= 2;
    limit -= (int)(2 * ATTN_TILE * sizeof(size_t));   /* the kernel's static koff, voff */
    a.heads = attn_pick_rows(attn_forward_smem, Dqk, Dv, a.shared_kv, (size_t)limit, most, 1);
    GRPO_ASSERTF(a.heads > 0, "paged_attention: Dqk=%d Dv=%d need %zu bytes of shared memory per block, the device "
                 "has %d", Dqk, Dv, attn_forward_smem(1, Dqk, Dv, a.shared_kv), limit);
    a.head_tiles = attn_tiles(a.group, a.heads);
    const long blocks = (long)N * Hkv * a.head_tiles;
    GRPO_ASSERTF(blocks <= 0x7fffffffL, "paged_attention: %ld blocks is more than one launch holds", blocks);
    const long max_ctx = (long)max_blocks * KL.block_size;
    a.splits = attn_decode_splits(blocks, sms, max_ctx > 0x7fffffffL ? 0x7fffffff : (int)max_ctx, &a.chunk);

    const size_t bytes = attn_forward_smem(a.heads, Dqk, Dv, a.shared_kv);
    CUDA_CHECK(cudaFuncSetAttribute((const void *)paged_attention_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    const int warps = a.heads < ATTN_WARPS ? a.heads : ATTN_WARPS;
    cudaStream_t s = impl->stream;
    dim3 grid((unsigned)blocks, (unsigned)a.splits);
    if (a.splits == 1) {
        paged_attention_kernel<<<grid, 32 * warps, bytes, s>>>(out, NULL, NULL, q, k_cache, v_cache, block_tables,
                                                               seq_of, ctx_len, a);
        CUDA_CHECK_LAST();
        return;
    }
    /* Partials: [N, Hq, splits, Dv] outputs then [N, Hq, splits] lse. Scratch from the
     * backend's memory pool when it has one (core/backend_pool.h: no cudaMalloc, reuse in
     * stream order), else stream-ordered from the driver's pool (cudaMallocAsync), so
     * neither waits for the device. */
    const size_t rows = (size_t)N * Hq, n_o = rows * a.splits * Dv;
    const size_t part_bytes = (n_o + rows * a.splits) * sizeof(float);
    GRPO_ASSERTF(rows <= 0x7fffffffu, "paged_attention: %zu rows is more than one launch holds", rows);
    float *part = NULL;
    if (be->pool) {
        part = (float *)backend_alloc(be, part_bytes, "paged_attention split-K partials");
        GRPO_ASSERTF(part, "%s", grpo_error_message());
    } else {
        CUDA_CHECK(cudaMallocAsync((void **)&part, part_bytes, s));
    }
    paged_attention_kernel<<<grid, 32 * warps, bytes, s>>>(out, part, part + n_o, q, k_cache, v_cache, block_tables,
                                                           seq_of, ctx_len, a);
    CUDA_CHECK_LAST();
    paged_attention_merge_kernel<<<(unsigned)rows, 128, 0, s>>>(out, part, part + n_o, a.splits, Dv);
    CUDA_CHECK_LAST();
    if (be->pool) be->free(be, part);
    else CUDA_CHECK(cudaFreeAsync(part, s));
}

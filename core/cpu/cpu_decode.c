/* Cached decoding on the CPU (contracts in core/backend.h): writing the new tokens'
 * vectors into a paged cache, and attention of query tokens over their own sequence's
 * cached positions, gathered through its block table (vLLM's PagedAttention, Kwon et al.
 * 2023, with the online softmax of FlashAttention-2 over key tiles). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Keys per tile (whole cache blocks on the block path). */
#define DECODE_BK 64

static size_t decode_round(size_t floats) { return (floats + 15) & ~(size_t)15; }

/* Element 0 of the vector of (position p, head h) of one sequence. */
static inline size_t vector_offset(const backend_paged_layout *L, const int32_t *table, int p, int h) {
    return (size_t)table[p / L->block_size] * L->block_stride + (size_t)h * L->head_stride +
           (size_t)(p % L->block_size) * L->token_stride;
}

void cpu_cache_write_rows(backend *be, float *dst, const backend_paged_layout *layout, const float *src, int H,
                          int width, const int32_t *slots, int N) {
    (void)be;
    if (N <= 0 || H <= 0 || width <= 0) return;
    for (int i = 0; i < N; i++) GRPO_ASSERTF(slots[i] >= 0, "cache_write_rows: slots[%d] = %d < 0", i, slots[i]);
    const backend_paged_layout L = *layout;
    CPU_OMP(parallel for schedule(static) if ((size_t)N * H * width > CPU_PARALLEL_MIN))
    for (int i = 0; i < N; i++) {
        const size_t base = (size_t)(slots[i] / L.block_size) * L.block_stride +
                            (size_t)(slots[i] % L.block_size) * L.token_stride;
        for (int h = 0; h < H; h++) {
            float *d = dst + base + (size_t)h * L.head_stride;
            const float *x = src + ((size_t)i * H + h) * width;
            if (L.dim_stride == 1) memcpy(d, x, (size_t)width * sizeof(float));
            else
                for (int c = 0; c < width; c++) d[(size_t)c * L.dim_stride] = x[c];
        }
    }
}

/* Online softmax update of one tile: rows of S ([group, ld]) hold nk scores and become
 * weights exp(s - m); m, l and O are rescaled when a row's max grows (FlashAttention-2). */
static void softmax_tile(float *S, int ld, int group, int nk, float *m, float *l, float *O, int Dv) {
    for (int g = 0; g < group; g++) {
        float *s = S + (size_t)g * ld;
        float mx = cpu_vec_max(s, nk);
        if (mx > m[g]) {
            float corr = expf(m[g] - mx);   /* 0 on the first tile (m = -inf) */
            l[g] *= corr;
            float *o = O + (size_t)g * Dv;
            for (int x = 0; x < Dv; x++) o[x] *= corr;
            m[g] = mx;
        }
        l[g] += cpu_vec_exp_sum(s, nk, m[g]);
    }
}

/* Compiled for several x86 levels, picked at load time (as in cpu_vec.c). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define DECODE_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DECODE_MULTIVERSION
#endif

typedef float vf16 __attribute__((vector_size(64)));
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(vf16))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(vf16))

/* S[g, c] = sum_d Q[g, d] K[d, c] for c < n rounded up to 16 (K: [Dqk, bs] rows bs apart,
 * bs a multiple of 16, so whole 16-column chunks stay inside the block). Four partial
 * sums per chunk keep four FMA chains in flight: the product is short (a few dozen
 * terms), so latency, not throughput, is what limits it. */
DECODE_MULTIVERSION
static void qk_block16(float *S, int ld, const float *Q, int group, int Dqk, const float *K, int bs, int n) {
    for (int c = 0; c < n; c += 16)
        for (int g = 0; g < group; g++) {
            const float *q = Q + (size_t)g * Dqk, *k = K + c;
            vf16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, k0, k1, k2, k3;
            int d = 0;
            for (; d + 4 <= Dqk; d += 4) {
                VLOAD(k0, k + (size_t)d * bs);
                VLOAD(k1, k + (size_t)(d + 1) * bs);
                VLOAD(k2, k + (size_t)(d + 2) * bs);
                VLOAD(k3, k + (size_t)(d + 3) * bs);
                a0 += q[d] * k0;
                a1 += q[d + 1] * k1;
                a2 += q[d + 2] * k2;
                a3 += q[d + 3] * k3;
            }
            for (; d < Dqk; d++) {
                VLOAD(k0, k + (size_t)d * bs);
                a0 += q[d] * k0;
            }
            a0 = (a0 + a1) + (a2 + a3);
            VSTORE(S + (size_t)g * ld + c, a0);
        }
}

/* O[g, :] += sum_{j < n} P[g, j] V[j, :] (V rows vs apart, Dv a multiple of 16), four
 * partial sums over j for the same reason. */
DECODE_MULTIVERSION
static void pv_block16(float *O, int Dv, const float *P, int ld, int group, const float *V, size_t vs, int n) {
    for (int g = 0; g < group; g++) {
        const float *p = P + (size_t)g * ld;
        for (int x = 0; x < Dv; x += 16) {
            vf16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v0, v1, v2, v3, o;
            const float *v = V + x;
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                VLOAD(v0, v + (size_t)j * vs);
                VLOAD(v1, v + (size_t)(j + 1) * vs);
                VLOAD(v2, v + (size_t)(j + 2) * vs);
                VLOAD(v3, v + (size_t)(j + 3) * vs);
                a0 += p[j] * v0;
                a1 += p[j + 1] * v1;
                a2 += p[j + 2] * v2;
                a3 += p[j + 3] * v3;
            }
            for (; j < n; j++) {
                VLOAD(v0, v + (size_t)j * vs);
                a0 += p[j] * v0;
            }
            VLOAD(o, O + (size_t)g * Dv + x);
            o += (a0 + a1) + (a2 + a3);
            VSTORE(O + (size_t)g * Dv + x, o);
        }
    }
}

/* Block path: keys stored [dim, block_size] per head (dim_stride = block_size,
 * token_stride = 1) and values [block_size, dim] (dim_stride = 1), so each cache block
 * is read in place by two small products, scores = Q K_b and O += P V_b, with no copy.
 * Qs: [group, Dqk] scaled; S: [group, tile] with tile = whole blocks. */
static void attend_blocks(const float *Qs, int group, int Dqk, int Dv, const float *k_cache,
                          const backend_paged_layout *KL, const float *v_cache, const backend_paged_layout *VL,
                          const int32_t *table, int hk, int ctx, int tile, float *S, float *O, float *m, float *l) {
    const int bs = KL->block_size, wide = bs % 16 == 0 && Dv % 16 == 0;
    for (int j0 = 0; j0 < ctx; j0 += tile) {
        const int nk = ctx - j0 < tile ? ctx - j0 : tile;
        for (int jb = 0; jb < nk; jb += bs) {
            const int n = nk - jb < bs ? nk - jb : bs;
            const float *Kb = k_cache + (size_t)table[(j0 + jb) / bs] * KL->block_stride + (size_t)hk * KL->head_stride;
            if (wide) qk_block16(S + jb, tile, Qs, group, Dqk, Kb, bs, n);
            else cpu_vec_gemm(S + jb, tile, Qs, Dqk, Kb, (size_t)bs, group, n, Dqk, 0);
        }
        softmax_tile(S, tile, group, nk, m, l, O, Dv);
        for (int jb = 0; jb < nk; jb += bs) {
            const int n = nk - jb < bs ? nk - jb : bs;
            const float *Vb = v_cache + (size_t)table[(j0 + jb) / bs] * VL->block_stride + (size_t)hk * VL->head_stride;
            if (wide) pv_block16(O, Dv, S + jb, tile, group, Vb, VL->token_stride, n);
            else cpu_vec_gemm(O, Dv, S + jb, tile, Vb, VL->token_stride, group, Dv, n, 1);   /* O += P V */
        }
    }
}

/* Any layout: each key tile gathered transposed and each value tile gathered, then
 * register-blocked products for all heads (cpu_vec_gemm). MLA's absorbed attention (one
 * latent row per position read by every head) goes here; the gather is shared by all
 * heads. Kt: [Dqk, DECODE_BK]; Vt: [DECODE_BK, Dv]; S: [group, DECODE_BK]. */
static void attend_gather(const float *Qs, int group, int Dqk, int Dv, const float *k_cache,
                          const backend_paged_layout *KL, const float *v_cache, const backend_paged_layout *VL,
                          const int32_t *table, int hk, int ctx, float *Kt, float *Vt, float *S, float *O, float *m,
                          float *l) {
    for (int j0 = 0; j0 < ctx; j0 += DECODE_BK) {
        const int nk = ctx - j0 < DECODE_BK ? ctx - j0 : DECODE_BK;
        for (int j = 0; j < nk; j++) {
            const float *kr = k_cache + vector_offset(KL, table, j0 + j, hk);
            const float *vr = v_cache + vector_offset(VL, table, j0 + j, hk);
            for (int d = 0; d < Dqk; d++) Kt[(size_t)d * DECODE_BK + j] = kr[(size_t)d * KL->dim_stride];
            if (VL->dim_stride == 1) memcpy(Vt + (size_t)j * Dv, vr, (size_t)Dv * sizeof(float));
            else
                for (int d = 0; d < Dv; d++) Vt[(size_t)j * Dv + d] = vr[(size_t)d * VL->dim_stride];
        }
        cpu_vec_gemm(S, DECODE_BK, Qs, Dqk, Kt, DECODE_BK, group, nk, Dqk, 0);
        softmax_tile(S, DECODE_BK, group, nk, m, l, O, Dv);
        cpu_vec_gemm(O, Dv, S, DECODE_BK, Vt, Dv, group, Dv, nk, 1);   /* O += P V */
    }
}

/* One task = (query token i, kv head hk): the group = Hq / Hkv query heads that share hk
 * run together, so each key/value read serves all of them. Results depend only on the
 * task's own inputs (never on N, the other sequences or the thread count). */
void cpu_paged_attention(backend *be, float *out, const float *q, const float *k_cache,
                         const backend_paged_layout *k_layout, const float *v_cache,
                         const backend_paged_layout *v_layout, const int32_t *block_tables, int max_blocks,
                         const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                         float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq % Hkv == 0, "paged_attention: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
    const backend_paged_layout KL = *k_layout, VL = *v_layout;
    const int bs = KL.block_size;
    GRPO_ASSERTF(bs > 0 && bs == VL.block_size && max_blocks > 0,
                 "paged_attention: block sizes %d (keys) and %d (values), max_blocks=%d", bs, VL.block_size,
                 max_blocks);
    if (N <= 0) return;
    for (int i = 0; i < N; i++)
        GRPO_ASSERTF(seq_of[i] >= 0 && ctx_len[i] >= 1 && ctx_len[i] <= (int64_t)max_blocks * bs,
                     "paged_attention: token %d: seq %d, ctx_len %d (expected >= 1 and <= %d blocks of %d)", i,
                     seq_of[i], ctx_len[i], max_blocks, bs);
    const int group = Hq / Hkv;
    const int by_block = KL.token_stride == 1 && KL.dim_stride == (size_t)bs && VL.dim_stride == 1;
    const int tile = by_block ? (bs >= DECODE_BK ? bs : DECODE_BK / bs * bs) : DECODE_BK;
    const size_t n_q = decode_round((size_t)group * Dqk);
    const size_t n_kt = by_block ? 0 : decode_round((size_t)Dqk * DECODE_BK);
    const size_t n_vt = by_block ? 0 : decode_round((size_t)DECODE_BK * Dv);
    const size_t n_s = decode_round((size_t)group * tile), n_o = decode_round((size_t)group * Dv);
    const size_t n_g = decode_round((size_t)group);
    cpu_scratch_acquire(be, n_q + n_kt + n_vt + n_s + n_o + 2 * n_g);
    const long n_tasks = (long)N * Hkv;
    /* one query against a short cache is a few microseconds: threads only pay off when the
     * whole call reads enough (the same threshold idea as CPU_PARALLEL_MIN) */
    double work = 0;
    for (int i = 0; i < N; i++) work += (double)ctx_len[i];
    work *= (double)Hq * (Dqk + Dv);
    const int parallel = n_tasks > 1 && work > 64.0 * CPU_PARALLEL_MIN;

    CPU_OMP(parallel for schedule(dynamic, 1) if (parallel))
    for (long task = 0; task < n_tasks; task++) {
        const int i = (int)(task / Hkv), hk = (int)(task % Hkv), ctx = ctx_len[i];
        const int32_t *table = block_tables + (size_t)seq_of[i] * max_blocks;
        float *Qs = cpu_scratch_thread(be);   /* [group, Dqk], scaled */
        float *Kt = Qs + n_q;                 /* [Dqk, DECODE_BK] (gather path) */
        float *Vt = Kt + n_kt;                /* [DECODE_BK, Dv] (gather path) */
        float *S = Vt + n_vt;                 /* [group, tile] scores, then weights */
        float *O = S + n_s;                   /* [group, Dv] unnormalised output */
        float *m = O + n_o;                   /* [group] running max */
        float *l = m + n_g;                   /* [group] running sum of exp */

        const float *qi = q + ((size_t)i * Hq + (size_t)hk * group) * Dqk;
        for (size_t x = 0; x < (size_t)group * Dqk; x++) Qs[x] = scale * qi[x];
        memset(O, 0, (size_t)group * Dv * sizeof(float));
        for (int g = 0; g < group; g++) {
            m[g] = -INFINITY;
            l[g] = 0.0f;
        }
        if (by_block) attend_blocks(Qs, group, Dqk, Dv, k_cache, &KL, v_cache, &VL, table, hk, ctx, tile, S, O, m, l);
        else attend_gather(Qs, group, Dqk, Dv, k_cache, &KL, v_cache, &VL, table, hk, ctx, Kt, Vt, S, O, m, l);
        float *dst = out + ((size_t)i * Hq + (size_t)hk * group) * Dv;
        for (int g = 0; g < group; g++) {
            const float inv = 1.0f / l[g];
            for (int x = 0; x < Dv; x++) dst[(size_t)g * Dv + x] = O[(size_t)g * Dv + x] * inv;
        }
    }
    cpu_scratch_release(be);
}

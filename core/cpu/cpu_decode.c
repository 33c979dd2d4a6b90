/* Cached decoding on the CPU (contracts in core/backend.h): writing the new tokens' rows
 * into a paged cache, and attention of query tokens over their own sequence's cached rows,
 * gathered through its block table (vLLM's PagedAttention, Kwon et al. 2023, computed
 * like the tiled forward in cpu_attention.c: online softmax over key tiles). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Keys per tile (gathered from however many cache blocks they span). */
#define DECODE_BK 64

static size_t decode_round(size_t floats) { return (floats + 15) & ~(size_t)15; }

void cpu_cache_write_rows(backend *be, float *dst, size_t dst_stride, const float *src, size_t src_stride, int width,
                          const int32_t *rows, int N) {
    (void)be;
    if (N <= 0 || width <= 0) return;
    for (int i = 0; i < N; i++) GRPO_ASSERTF(rows[i] >= 0, "cache_write_rows: rows[%d] = %d < 0", i, rows[i]);
    CPU_OMP(parallel for schedule(static) if ((size_t)N * width > CPU_PARALLEL_MIN))
    for (int i = 0; i < N; i++)
        memcpy(dst + (size_t)rows[i] * dst_stride, src + (size_t)i * src_stride, (size_t)width * sizeof(float));
}

/* One task = (query token i, kv head hk): the group = Hq / Hkv query heads that share hk
 * run together, so each gathered key/value tile serves all of them. Results depend only
 * on the task's own inputs (never on N, the other sequences or the thread count). */
void cpu_paged_attention(backend *be, float *out, const float *q, const float *k_cache, const float *v_cache,
                         size_t row_stride, const int32_t *block_tables, int max_blocks, int block_size,
                         const int32_t *seq_of, const int32_t *ctx_len, int N, int Hq, int Hkv, int Dqk, int Dv,
                         float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq % Hkv == 0, "paged_attention: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
    GRPO_ASSERTF(block_size > 0 && max_blocks > 0, "paged_attention: block_size=%d, max_blocks=%d", block_size,
                 max_blocks);
    if (N <= 0) return;
    for (int i = 0; i < N; i++)
        GRPO_ASSERTF(seq_of[i] >= 0 && ctx_len[i] >= 1 && ctx_len[i] <= (int64_t)max_blocks * block_size,
                     "paged_attention: token %d: seq %d, ctx_len %d (expected >= 1 and <= %d blocks of %d)", i,
                     seq_of[i], ctx_len[i], max_blocks, block_size);
    const int group = Hq / Hkv;
    const size_t n_q = decode_round((size_t)group * Dqk), n_kt = decode_round((size_t)Dqk * DECODE_BK);
    const size_t n_vt = decode_round((size_t)DECODE_BK * Dv), n_s = decode_round((size_t)group * DECODE_BK);
    const size_t n_o = decode_round((size_t)group * Dv), n_g = decode_round((size_t)group);
    cpu_scratch_acquire(be, n_q + n_kt + n_vt + n_s + n_o + 2 * n_g);
    const long n_tasks = (long)N * Hkv;

    CPU_OMP(parallel for schedule(dynamic, 1))
    for (long task = 0; task < n_tasks; task++) {
        const int i = (int)(task / Hkv), hk = (int)(task % Hkv), ctx = ctx_len[i];
        const int32_t *table = block_tables + (size_t)seq_of[i] * max_blocks;
        float *Qs = cpu_scratch_thread(be);   /* [group, Dqk], scaled */
        float *Kt = Qs + n_q;                 /* [Dqk, DECODE_BK] */
        float *Vt = Kt + n_kt;                /* [DECODE_BK, Dv] */
        float *S = Vt + n_vt;                 /* [group, DECODE_BK] scores, then weights */
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
        for (int j0 = 0; j0 < ctx; j0 += DECODE_BK) {
            const int nk = ctx - j0 < DECODE_BK ? ctx - j0 : DECODE_BK;
            for (int j = 0; j < nk; j++) {
                const int p = j0 + j;
                const size_t row = (size_t)table[p / block_size] * block_size + (size_t)(p % block_size);
                const float *kr = k_cache + row * row_stride + (size_t)hk * Dqk;
                const float *vr = v_cache + row * row_stride + (size_t)hk * Dv;
                for (int d = 0; d < Dqk; d++) Kt[(size_t)d * DECODE_BK + j] = kr[d];
                memcpy(Vt + (size_t)j * Dv, vr, (size_t)Dv * sizeof(float));
            }
            cpu_vec_gemm(S, DECODE_BK, Qs, Dqk, Kt, DECODE_BK, group, nk, Dqk, 0);
            for (int g = 0; g < group; g++) {
                float *s = S + (size_t)g * DECODE_BK;
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
            cpu_vec_gemm(O, Dv, S, DECODE_BK, Vt, Dv, group, Dv, nk, 1);   /* O += P V */
        }
        float *dst = out + ((size_t)i * Hq + (size_t)hk * group) * Dv;
        for (int g = 0; g < group; g++) {
            const float inv = 1.0f / l[g];
            for (int x = 0; x < Dv; x++) dst[(size_t)g * Dv + x] = O[(size_t)g * Dv + x] * inv;
        }
    }
    cpu_scratch_release(be);
}

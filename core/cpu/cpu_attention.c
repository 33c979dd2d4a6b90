/* Causal self-attention with grouped-query heads on the CPU, forward and backward.
 * Tiled like FlashAttention-2 (Dao 2023): a block of queries meets blocks of keys, the
 * softmax runs online, and only lse = logsumexp(scores) per query is saved. The
 * backward recomputes P = exp(s * scale - lse) and runs in two passes with no shared
 * writes: one over query blocks (dq), one over key blocks (dk, dv). */
#include "core/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

/* Queries and keys per tile. A tile's working set (about 64 KB to 200 KB for head
 * sizes 64 to 192) stays in a core's L2 cache. */
#define ATT_BQ 32
#define ATT_BK 64
/* The one-pass backward's per-thread scratch for one head's transposed q, dq and dout
 * (T * (2 Dqk + Dv) floats) stays under this (16 MiB); longer sequences take two passes. */
#define ATT_FUSED_MAX_FLOATS ((size_t)4 << 20)

/* Floats rounded up to a multiple of 16 (64 bytes), so every sub-buffer is aligned. */
static size_t att_round(size_t floats) { return (floats + 15) & ~(size_t)15; }

/* Dst[d][j] = alpha * Src[j][d] for j < n, d < dim: a strided block of rows of q, k,
 * v or dout copied transposed into a tile (Dst rows are ldd apart). */
static void tile_transpose(float *restrict Dst, int ldd, const float *restrict Src, size_t lds, int n, int dim,
                           float alpha) {
    for (int j = 0; j < n; j++) {
        const float *s = Src + (size_t)j * lds;
        for (int d = 0; d < dim; d++) Dst[(size_t)d * ldd + j] = alpha * s[d];
    }
}

/* Dst[j][:dim] = alpha * Src[j][:dim] (rows lds apart into a packed tile). */
static void tile_gather(float *restrict Dst, const float *restrict Src, size_t lds, int n, int dim, float alpha) {
    for (int j = 0; j < n; j++) {
        const float *s = Src + (size_t)j * lds;
        float *d = Dst + (size_t)j * dim;
        for (int x = 0; x < dim; x++) d[x] = alpha * s[x];
    }
}

/* ---- forward ---- */

/* out: [B, T, Hq, Dv], lse: [B, Hq, T]; q: [B, T, Hq, Dqk], k: [B, T, Hkv, Dqk],
 * v: [B, T, Hkv, Dv]. Query t of head h sees keys 0..t of kv head h / (Hq / Hkv):
 *   out_t = sum_j softmax_j(scale * q_t . k_j) v_j,  lse_t = logsumexp_j(scale * q_t . k_j).
 * One task = (batch, kv head, query tile) for all the query heads of the group, so each
 * key tile is transposed once for all of them; the softmax runs online over key tiles
 * (running max m and sum l, rescaled when the max grows; FlashAttention-2, Alg. 1). */
void cpu_attention_forward(backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq % Hkv == 0, "attention_forward: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
    if (B <= 0 || T <= 0 || Hq <= 0) return;
    const int group = Hq / Hkv;
    const size_t n_qs = att_round((size_t)ATT_BQ * Dqk), n_kt = att_round((size_t)Dqk * ATT_BK);
    const size_t n_s = att_round((size_t)ATT_BQ * ATT_BK), n_o = att_round((size_t)ATT_BQ * Dv);
    const size_t n_head = n_qs + n_o + 2 * att_round(ATT_BQ);   /* one query head's state */
    cpu_scratch_acquire(be, n_kt + n_s + (size_t)group * n_head);
    const int n_qtiles = (T + ATT_BQ - 1) / ATT_BQ;
    const long n_tasks = (long)B * Hkv * n_qtiles;
    const size_t q_row = (size_t)Hq * Dqk, k_row = (size_t)Hkv * Dqk, v_row = (size_t)Hkv * Dv;
    const size_t o_row = (size_t)Hq * Dv;

    CPU_OMP(parallel for schedule(dynamic, 1))
    for (long task = 0; task < n_tasks; task++) {
        /* Late query tiles see the most keys: hand them out first. */
        int qt = n_qtiles - 1 - (int)(task % n_qtiles);
        int hk = (int)((task / n_qtiles) % Hkv), b = (int)(task / ((long)n_qtiles * Hkv));
        int i0 = qt * ATT_BQ, nq = T - i0 < ATT_BQ ? T - i0 : ATT_BQ;

        float *Kt = cpu_scratch_thread(be);   /* [Dqk, ATT_BK] */
        float *S = Kt + n_kt;                 /* [nq, ATT_BK] scores, then weights */
        float *heads = S + n_s;               /* per query head of the group: */
        /* Qs [nq, Dqk] (scaled q), O [nq, Dv] unnormalised output, m [nq] running max,
         * l [nq] running sum of exp */
#define HEAD_QS(g) (heads + (size_t)(g) * n_head)
#define HEAD_O(g) (HEAD_QS(g) + n_qs)
#define HEAD_M(g) (HEAD_O(g) + n_o)
#define HEAD_L(g) (HEAD_M(g) + att_round(ATT_BQ))

        const float *kb = k + (size_t)b * T * k_row + (size_t)hk * Dqk;
        const float *vb = v + (size_t)b * T * v_row + (size_t)hk * Dv;
        for (int g = 0; g < group; g++) {
            int h = hk * group + g;
            tile_gather(HEAD_QS(g), q + ((size_t)b * T + i0) * q_row + (size_t)h * Dqk, q_row, nq, Dqk, scale);
            memset(HEAD_O(g), 0, (size_t)nq * Dv * sizeof(float));
            float *m = HEAD_M(g), *l = HEAD_L(g);
            for (int i = 0; i < nq; i++) {
                m[i] = -INFINITY;
                l[i] = 0.0f;
            }
        }
        for (int j0 = 0; j0 < i0 + nq; j0 += ATT_BK) {
            int nk = i0 + nq - j0 < ATT_BK ? i0 + nq - j0 : ATT_BK;
            tile_transpose(Kt, ATT_BK, kb + (size_t)j0 * k_row, k_row, nk, Dqk, 1.0f);
            for (int g = 0; g < group; g++) {
                float *O = HEAD_O(g), *m = HEAD_M(g), *l = HEAD_L(g);
                cpu_vec_gemm(S, ATT_BK, HEAD_QS(g), Dqk, Kt, ATT_BK, nq, nk, Dqk, 0);
                for (int i = 0; i < nq; i++) {
                    float *s = S + (size_t)i * ATT_BK;
                    int valid = i0 + i - j0 + 1;   /* keys j0 .. i0+i are visible */
                    if (valid > nk) valid = nk;
                    if (valid < 0) valid = 0;
                    float mx = cpu_vec_max(s, valid);
                    if (mx > m[i]) {
                        float corr = expf(m[i] - mx);   /* 0 on the first tile (m = -inf) */
                        l[i] *= corr;
                        float *o = O + (size_t)i * Dv;
                        for (int x = 0; x < Dv; x++) o[x] *= corr;
                        m[i] = mx;
                    }
                    if (valid > 0) l[i] += cpu_vec_exp_sum(s, valid, m[i]);
                    for (int j = valid; j < nk; j++) s[j] = 0.0f;
                }
                /* O += P V over this key tile (masked weights are 0). */
                cpu_vec_gemm(O, Dv, S, ATT_BK, vb + (size_t)j0 * v_row, v_row, nq, Dv, nk, 1);
            }
        }
        for (int g = 0; g < group; g++) {
            int h = hk * group + g;
            const float *m = HEAD_M(g), *l = HEAD_L(g);
            for (int i = 0; i < nq; i++) {
                float inv = 1.0f / l[i];
                const float *o = HEAD_O(g) + (size_t)i * Dv;
                float *dst = out + ((size_t)b * T + i0 + i) * o_row + (size_t)h * Dv;
                for (int x = 0; x < Dv; x++) dst[x] = o[x] * inv;
                lse[((size_t)b * Hq + h) * T + i0 + i] = m[i] + logf(l[i]);
            }
        }
#undef HEAD_QS
#undef HEAD_O
#undef HEAD_M
#undef HEAD_L
    }
    cpu_scratch_release(be);
}

/* ---- backward ----
 * With s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i) (i >= j, else 0), D_i = dout_i . out_i:
 *   dv_j = sum_i P_ij dout_i               dP_ij = dout_i . v_j
 *   dS_ij = P_ij (dP_ij - D_i)             (softmax backward; FlashAttention-2, Alg. 2)
 *   dq_i = scale sum_j dS_ij k_j           dk_j = scale sum_i dS_ij q_i
 * dk and dv of a kv head sum over the Hq / Hkv query heads that share it. */

/* Pass 1: dq. One task = (batch, query head, query tile). */
static void attention_backward_dq(backend *be, float *dq, const float *dout, const float *q, const float *k,
                                  const float *v, const float *out, const float *lse, int B, int T, int Hq,
                                  int Hkv, int Dqk, int Dv, float scale) {
    const int group = Hq / Hkv;
    const size_t n_qs = att_round((size_t)ATT_BQ * Dqk), n_do = att_round((size_t)ATT_BQ * Dv);
    const size_t n_kt = att_round((size_t)Dqk * ATT_BK), n_vt = att_round((size_t)Dv * ATT_BK);
    const size_t n_s = att_round((size_t)ATT_BQ * ATT_BK);
    cpu_scratch_acquire(be, 2 * n_qs + n_do + n_kt + n_vt + 2 * n_s + 2 * att_round(ATT_BQ));
    const int n_qtiles = (T + ATT_BQ - 1) / ATT_BQ;
    const long n_tasks = (long)B * Hq * n_qtiles;
    const size_t q_row = (size_t)Hq * Dqk, k_row = (size_t)Hkv * Dqk, v_row = (size_t)Hkv * Dv;
    const size_t o_row = (size_t)Hq * Dv;

    CPU_OMP(parallel for schedule(dynamic, 1))
    for (long task = 0; task < n_tasks; task++) {
        int qt = n_qtiles - 1 - (int)(task % n_qtiles);
        int h = (int)((task / n_qtiles) % Hq), b = (int)(task / ((long)n_qtiles * Hq));
        int hk = h / group;
        int i0 = qt * ATT_BQ, nq = T - i0 < ATT_BQ ? T - i0 : ATT_BQ;

        float *Qs = cpu_scratch_thread(be);   /* [nq, Dqk] scaled q */
        float *dQ = Qs + n_qs;                /* [nq, Dqk] accumulated dS k */
        float *dO = dQ + n_qs;                /* [nq, Dv] */
        float *Kt = dO + n_do;                /* [Dqk, ATT_BK] */
        float *Vt = Kt + n_kt;                /* [Dv, ATT_BK] */
        float *S = Vt + n_vt;                 /* [nq, ATT_BK] P, then dS */
        float *dP = S + n_s;                  /* [nq, ATT_BK] */
        float *L = dP + n_s;                  /* [nq] lse */
        float *Dd = L + att_round(ATT_BQ);    /* [nq] dout . out */

        const size_t row0 = (size_t)b * T + i0;
        tile_gather(Qs, q + row0 * q_row + (size_t)h * Dqk, q_row, nq, Dqk, scale);
        tile_gather(dO, dout + row0 * o_row + (size_t)h * Dv, o_row, nq, Dv, 1.0f);
        memset(dQ, 0, (size_t)nq * Dqk * sizeof(float));
        for (int i = 0; i < nq; i++) {
            const float *o = out + (row0 + i) * o_row + (size_t)h * Dv, *g = dO + (size_t)i * Dv;
            float dot = 0.0f;
            for (int x = 0; x < Dv; x++) dot += g[x] * o[x];
            Dd[i] = dot;
            L[i] = lse[((size_t)b * Hq + h) * T + i0 + i];
        }
        const float *kb = k + (size_t)b * T * k_row + (size_t)hk * Dqk;
        const float *vb = v + (size_t)b * T * v_row + (size_t)hk * Dv;
        for (int j0 = 0; j0 < i0 + nq; j0 += ATT_BK) {
            int nk = i0 + nq - j0 < ATT_BK ? i0 + nq - j0 : ATT_BK;
            tile_transpose(Kt, ATT_BK, kb + (size_t)j0 * k_row, k_row, nk, Dqk, 1.0f);
            tile_transpose(Vt, ATT_BK, vb + (size_t)j0 * v_row, v_row, nk, Dv, 1.0f);
            cpu_vec_gemm(S, ATT_BK, Qs, Dqk, Kt, ATT_BK, nq, nk, Dqk, 0);
            cpu_vec_gemm(dP, ATT_BK, dO, Dv, Vt, ATT_BK, nq, nk, Dv, 0);
            for (int i = 0; i < nq; i++) {
                float *s = S + (size_t)i * ATT_BK;
                const float *dp = dP + (size_t)i * ATT_BK;
                int valid = i0 + i - j0 + 1;
                if (valid > nk) valid = nk;
                if (valid < 0) valid = 0;
                cpu_vec_exp_sum(s, valid, L[i]);   /* P */
                for (int j = 0; j < valid; j++) s[j] *= dp[j] - Dd[i];   /* dS */
                for (int j = valid; j < nk; j++) s[j] = 0.0f;
            }
            cpu_vec_gemm(dQ, Dqk, S, ATT_BK, kb + (size_t)j0 * k_row, k_row, nq, Dqk, nk, 1);
        }
        for (int i = 0; i < nq; i++) {
            float *dst = dq + (row0 + i) * q_row + (size_t)h * Dqk;
            const float *src = dQ + (size_t)i * Dqk;
            for (int x = 0; x < Dqk; x++) dst[x] = scale * src[x];
        }
    }
    cpu_scratch_release(be);
}

/* Pass 2: dk, dv. One task = (batch, kv head, key tile); it visits every query tile at
 * or after the key tile, for each query head of the group, so it owns its rows of dk
 * and dv outright. Scores are computed transposed (keys down, queries across). */
static void attention_backward_dkv(backend *be, float *dk, float *dv, const float *dout, const float *q,
                                   const float *k, const float *v, const float *out, const float *lse, int B,
                                   int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    const int group = Hq / Hkv;
    const size_t n_kb = att_round((size_t)ATT_BK * Dqk), n_vb = att_round((size_t)ATT_BK * Dv);
    const size_t n_qt = att_round((size_t)Dqk * ATT_BQ), n_dot = att_round((size_t)Dv * ATT_BQ);
    const size_t n_s = att_round((size_t)ATT_BK * ATT_BQ);
    cpu_scratch_acquire(be, 2 * n_kb + 2 * n_vb + n_qt + n_dot + 2 * n_s + 2 * att_round(ATT_BQ));
    const int n_ktiles = (T + ATT_BK - 1) / ATT_BK;
    const long n_tasks = (long)B * Hkv * n_ktiles;
    const size_t q_row = (size_t)Hq * Dqk, k_row = (size_t)Hkv * Dqk, v_row = (size_t)Hkv * Dv;
    const size_t o_row = (size_t)Hq * Dv;

    CPU_OMP(parallel for schedule(dynamic, 1))
    for (long task = 0; task < n_tasks; task++) {
        /* Early key tiles are seen by the most queries: hand them out first. */
        int kt = (int)(task % n_ktiles);
        int hk = (int)((task / n_ktiles) % Hkv), b = (int)(task / ((long)n_ktiles * Hkv));
        int j0 = kt * ATT_BK, nk = T - j0 < ATT_BK ? T - j0 : ATT_BK;

        float *Kb = cpu_scratch_thread(be);   /* [nk, Dqk] */
        float *dK = Kb + n_kb;                /* [nk, Dqk] */
        float *Vb = dK + n_kb;                /* [nk, Dv] */
        float *dV = Vb + n_vb;                /* [nk, Dv] */
        float *Qt = dV + n_vb;                /* [Dqk, ATT_BQ] scaled q, transposed */
        float *dOt = Qt + n_qt;               /* [Dv, ATT_BQ] */
        float *S = dOt + n_dot;               /* [nk, ATT_BQ] P^T, then dS^T */
        float *dP = S + n_s;                  /* [nk, ATT_BQ] */
        float *L = dP + n_s;                  /* [nq] */
        float *Dd = L + att_round(ATT_BQ);    /* [nq] */

        const size_t krow0 = (size_t)b * T + j0;
        tile_gather(Kb, k + krow0 * k_row + (size_t)hk * Dqk, k_row, nk, Dqk, 1.0f);
        tile_gather(Vb, v + krow0 * v_row + (size_t)hk * Dv, v_row, nk, Dv, 1.0f);
        memset(dK, 0, (size_t)nk * Dqk * sizeof(float));
        memset(dV, 0, (size_t)nk * Dv * sizeof(float));
        for (int h = hk * group; h < (hk + 1) * group; h++) {
            for (int i0 = (j0 / ATT_BQ) * ATT_BQ; i0 < T; i0 += ATT_BQ) {
                int nq = T - i0 < ATT_BQ ? T - i0 : ATT_BQ;
                const size_t row0 = (size_t)b * T + i0;
                const float *qb = q + row0 * q_row + (size_t)h * Dqk;
                const float *gb = dout + row0 * o_row + (size_t)h * Dv;
                tile_transpose(Qt, ATT_BQ, qb, q_row, nq, Dqk, scale);
                tile_transpose(dOt, ATT_BQ, gb, o_row, nq, Dv, 1.0f);
                for (int i = 0; i < nq; i++) {
                    const float *o = out + (row0 + i) * o_row + (size_t)h * Dv, *g = gb + (size_t)i * o_row;
                    float dot = 0.0f;
                    for (int x = 0; x < Dv; x++) dot += g[x] * o[x];
                    Dd[i] = dot;
                    L[i] = lse[((size_t)b * Hq + h) * T + i0 + i];
                }
                cpu_vec_gemm(S, ATT_BQ, Kb, Dqk, Qt, ATT_BQ, nk, nq, Dqk, 0);
                cpu_vec_gemm(dP, ATT_BQ, Vb, Dv, dOt, ATT_BQ, nk, nq, Dv, 0);
                /* Row j (key j0+j) sees queries i0+i >= j0+j. P^T goes to S for dv, then
                 * dS^T (with scale folded in) replaces it for dk. */
                for (int j = 0; j < nk; j++) {
                    float *s = S + (size_t)j * ATT_BQ;
                    int first = j0 + j - i0;   /* first visible query in this tile */
                    if (first < 0) first = 0;
                    if (first > nq) first = nq;
                    for (int i = 0; i < first; i++) s[i] = 0.0f;
                    for (int i = first; i < nq; i++) s[i] -= L[i];
                    cpu_vec_exp_sum(s + first, nq - first, 0.0f);
                }
                cpu_vec_gemm(dV, Dv, S, ATT_BQ, gb, o_row, nk, Dv, nq, 1);
                for (int j = 0; j < nk; j++) {
                    float *s = S + (size_t)j * ATT_BQ;
                    const float *dp = dP + (size_t)j * ATT_BQ;
                    for (int i = 0; i < nq; i++) s[i] = s[i] * (dp[i] - Dd[i]) * scale;
                }
                cpu_vec_gemm(dK, Dqk, S, ATT_BQ, qb, q_row, nk, Dqk, nq, 1);
            }
        }
        for (int j = 0; j < nk; j++) {
            memcpy(dk + (krow0 + j) * k_row + (size_t)hk * Dqk, dK + (size_t)j * Dqk, (size_t)Dqk * sizeof(float));
            memcpy(dv + (krow0 + j) * v_row + (size_t)hk * Dv, dV + (size_t)j * Dv, (size_t)Dv * sizeof(float));
        }
    }
    cpu_scratch_release(be);
}

/* One pass (FlashAttention-2, Alg. 2: key tiles outside, query tiles inside). One task =
 * (batch, kv head): it owns the rows of dk and dv of that kv head and of dq of the query
 * heads sharing it, so it accumulates into them in place. Per query head the task
 * transposes q (scaled) and dout once for all T, keeps dq transposed ([Dqk, T], so the
 * dq product needs no transposed dS), and per key tile transposes k once; S, dP and dS
 * are computed transposed (keys down, queries across). 5 tile products per tile pair,
 * against 7 for the two passes, and no exp or mask work twice. */
static void attention_backward_fused(backend *be, float *dq, float *dk, float *dv, const float *dout,
                                     const float *q, const float *k, const float *v, const float *out,
                                     const float *lse, int B, int T, int Hq, int Hkv, int Dqk, int Dv, float scale) {
    const int group = Hq / Hkv;
    /* Rows of the transposed buffers: an odd number of cache lines apart, so a column
     * written down them touches every cache set (a power-of-two stride such as T = 256
     * would crowd a few sets and miss L1 on every store). */
    size_t ldt = att_round((size_t)T);
    if ((ldt / 16) % 2 == 0) ldt += 16;
    const size_t n_qt = (size_t)Dqk * ldt, n_dot = (size_t)Dv * ldt, n_d = att_round((size_t)T);
    const size_t n_kt = att_round((size_t)Dqk * ATT_BK), n_s = att_round((size_t)ATT_BK * ATT_BQ);
    cpu_scratch_acquire(be, 2 * n_qt + n_dot + n_d + n_kt + 2 * n_s);
    const long n_tasks = (long)B * Hkv;
    const size_t q_row = (size_t)Hq * Dqk, k_row = (size_t)Hkv * Dqk, v_row = (size_t)Hkv * Dv;
    const size_t o_row = (size_t)Hq * Dv;

    CPU_OMP(parallel for schedule(dynamic, 1))
    for (long task = 0; task < n_tasks; task++) {
        int hk = (int)(task % Hkv), b = (int)(task / Hkv);
        float *Qt = cpu_scratch_thread(be);   /* [Dqk, ldt] scaled q of one head, transposed */
        float *dQt = Qt + n_qt;               /* [Dqk, ldt] its dq, accumulated, transposed */
        float *dOt = dQt + n_qt;              /* [Dv, ldt] */
        float *Dd = dOt + n_dot;              /* [T] dout . out */
        float *Kt = Dd + n_d;                 /* [Dqk, ATT_BK] one key tile, transposed */
        float *St = Kt + n_kt;                /* [nk, ATT_BQ] P^T, then dS^T (scale folded in) */
        float *dPt = St + n_s;                /* [nk, ATT_BQ] */

        const size_t row_b = (size_t)b * T;
        const float *kb = k + row_b * k_row + (size_t)hk * Dqk;
        const float *vb = v + row_b * v_row + (size_t)hk * Dv;
        float *dkb = dk + row_b * k_row + (size_t)hk * Dqk, *dvb = dv + row_b * v_row + (size_t)hk * Dv;
        for (int t = 0; t < T; t++) {
            memset(dkb + (size_t)t * k_row, 0, (size_t)Dqk * sizeof(float));
            memset(dvb + (size_t)t * v_row, 0, (size_t)Dv * sizeof(float));
        }
        for (int h = hk * group; h < (hk + 1) * group; h++) {
            const float *qb = q + row_b * q_row + (size_t)h * Dqk;
            const float *gb = dout + row_b * o_row + (size_t)h * Dv;
            const float *ob = out + row_b * o_row + (size_t)h * Dv;
            const float *L = lse + ((size_t)b * Hq + h) * T;
            tile_transpose(Qt, (int)ldt, qb, q_row, T, Dqk, scale);
            tile_transpose(dOt, (int)ldt, gb, o_row, T, Dv, 1.0f);
            memset(dQt, 0, n_qt * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float *g = gb + (size_t)t * o_row, *o = ob + (size_t)t * o_row;
                float dot = 0.0f;
                for (int x = 0; x < Dv; x++) dot += g[x] * o[x];
                Dd[t] = dot;
            }
            for (int j0 = 0; j0 < T; j0 += ATT_BK) {
                int nk = T - j0 < ATT_BK ? T - j0 : ATT_BK;
                const float *kj = kb + (size_t)j0 * k_row, *vj = vb + (size_t)j0 * v_row;
                tile_transpose(Kt, ATT_BK, kj, k_row, nk, Dqk, 1.0f);
                for (int i0 = (j0 / ATT_BQ) * ATT_BQ; i0 < T; i0 += ATT_BQ) {
                    int nq = T - i0 < ATT_BQ ? T - i0 : ATT_BQ;
                    cpu_vec_gemm(St, ATT_BQ, kj, (int)k_row, Qt + i0, ldt, nk, nq, Dqk, 0);
                    cpu_vec_gemm(dPt, ATT_BQ, vj, (int)v_row, dOt + i0, ldt, nk, nq, Dv, 0);
                    /* Row j (key j0+j) sees queries i0+i >= j0+j: P^T, then dS^T. */
                    for (int j = 0; j < nk; j++) {
                        float *s = St + (size_t)j * ATT_BQ;
                        int first = j0 + j - i0;   /* first visible query in this tile */
                        if (first < 0) first = 0;
                        if (first > nq) first = nq;
                        for (int i = 0; i < first; i++) s[i] = 0.0f;
                        cpu_vec_exp_sub(s + first, L + i0 + first, nq - first);
                    }
                    cpu_vec_gemm(dvb + (size_t)j0 * v_row, (int)v_row, St, ATT_BQ, gb + (size_t)i0 * o_row, o_row, nk,
                                 Dv, nq, 1);
                    for (int j = 0; j < nk; j++)
                        cpu_vec_softmax_grad(St + (size_t)j * ATT_BQ, dPt + (size_t)j * ATT_BQ, Dd + i0, scale, nq);
                    cpu_vec_gemm(dkb + (size_t)j0 * k_row, (int)k_row, St, ATT_BQ, qb + (size_t)i0 * q_row, q_row, nk,
                                 Dqk, nq, 1);
                    /* dq^T[:, i0 : i0+nq] += k^T dS^T */
                    cpu_vec_gemm(dQt + i0, (int)ldt, Kt, ATT_BK, St, ATT_BQ, Dqk, nq, nk, 1);
                }
            }
            float *dqb = dq + row_b * q_row + (size_t)h * Dqk;
            for (int t = 0; t < T; t++) {
                float *dst = dqb + (size_t)t * q_row;
                for (int x = 0; x < Dqk; x++) dst[x] = dQt[(size_t)x * ldt + t];
            }
        }
    }
    cpu_scratch_release(be);
}

/* Writes dq: [B, T, Hq, Dqk], dk: [B, T, Hkv, Dqk], dv: [B, T, Hkv, Dv] (no accumulation),
 * from dout: [B, T, Hq, Dv] and the forward's inputs, out and lse. One pass when there
 * are (batch, kv head) pairs enough to keep every thread busy and a head's transposed
 * q, dq and dout fit a thread's scratch; else two passes that split the work finer. */
void cpu_attention_backward(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse, int B, int T,
                            int Hq, int Hkv, int Dqk, int Dv, float scale) {
    GRPO_ASSERTF(Hkv > 0 && Hq % Hkv == 0, "attention_backward: Hq=%d is not a multiple of Hkv=%d", Hq, Hkv);
    if (B <= 0 || T <= 0 || Hq <= 0) return;
    if ((long)B * Hkv >= 2L * cpu_max_threads() && (size_t)T * (2 * Dqk + Dv) <= ATT_FUSED_MAX_FLOATS) {
        attention_backward_fused(be, dq, dk, dv, dout, q, k, v, out, lse, B, T, Hq, Hkv, Dqk, Dv, scale);
        return;
    }
    attention_backward_dq(be, dq, dout, q, k, v, out, lse, B, T, Hq, Hkv, Dqk, Dv, scale);
    attention_backward_dkv(be, dk, dv, dout, q, k, v, out, lse, B, T, Hq, Hkv, Dqk, Dv, scale);
}

/* Cached decoding below the engine:
 *  - the CPU paged_attention op against a direct softmax(q k^T) v over gathered vectors
 *    (GQA, block tables in shuffled order, several tokens of one sequence; row and
 *    head-major layouts; the MLA use where keys and values are the same rows; the direct
 *    and the tiled paths) and cache_write_rows;
 *  - dense_decode against dense_forward: sequences of different lengths appended to a
 *    paged cache in chunks of varying size (prefill, single tokens, mixed in one call),
 *    every returned logit row equal to the full forward's row at that position;
 *  - the block pool's bookkeeping and the decoder's input checks. */
#include <math.h>
#include <stdlib.h>

#include "core/backend.h"
#include "model/dense.h"
#include "model/lm.h"
#include "rollouts/kv_pool.h"
#include "tests/harness.h"

static backend *be;

static uint64_t lcg_state = 99;
static double lcg_uniform(void) {   /* [0, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}
static float lcg_sym(void) { return (float)(2.0 * lcg_uniform() - 1.0); }

/* A permutation of 0..n-1 (so sequences get scattered, non-consecutive blocks). */
static void shuffle(int32_t *a, int n) {
    for (int i = 0; i < n; i++) a[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(lcg_uniform() * (i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- paged_attention against a direct reference ---- */

typedef enum { LAYOUT_ROWS, LAYOUT_HEAD_MAJOR, LAYOUT_DENSE, LAYOUT_MLA } layout_kind;

/* Element 0 of vector (p, h); element d is dim_stride further. */
static size_t at(const backend_paged_layout *L, const int32_t *table, int p, int h) {
    return (size_t)table[p / L->block_size] * L->block_stride + (size_t)h * L->head_stride +
           (size_t)(p % L->block_size) * L->token_stride;
}

/* Layouts: rows [K heads | V heads | 5 floats of padding] per position; head-major blocks
 * [K: Hkv, bs, Dqk][V: Hkv, bs, Dv]; dense_decode's blocks [K: Hkv, Dqk, bs][V: Hkv, bs,
 * Dv] (the op's block path); MLA rows [latent (Dv) | rope (Dqk - Dv)] read as both keys
 * (all Dqk) and values (the latent), Hkv = 1. */
static void check_paged_attention(int Hq, int Hkv, int Dqk, int Dv, layout_kind kind, int bs) {
    const int max_blocks = 6, n_seqs = 2, num_blocks = 12;
    const int lens[2] = {17, 8};
    /* queries: the last 3 positions of seq 0 and the last 2 of seq 1 */
    const int N = 5, seq_of[5] = {0, 0, 0, 1, 1}, ctx[5] = {15, 16, 17, 7, 8};
    size_t R = (size_t)Hkv * (Dqk + Dv) + 5, block = kind == LAYOUT_MLA ? (size_t)bs * Dqk : bs * R;
    backend_paged_layout kl, vl;
    size_t v_off;
    if (kind == LAYOUT_ROWS) {
        kl = (backend_paged_layout){block, (size_t)Dqk, R, 1, bs};
        vl = (backend_paged_layout){block, (size_t)Dv, R, 1, bs};
        v_off = (size_t)Hkv * Dqk;
    } else if (kind == LAYOUT_HEAD_MAJOR) {
        kl = (backend_paged_layout){block, (size_t)bs * Dqk, (size_t)Dqk, 1, bs};
        vl = (backend_paged_layout){block, (size_t)bs * Dv, (size_t)Dv, 1, bs};
        v_off = (size_t)Hkv * bs * Dqk;
    } else if (kind == LAYOUT_DENSE) {
        kl = (backend_paged_layout){block, (size_t)bs * Dqk, 1, (size_t)bs, bs};
        vl = (backend_paged_layout){block, (size_t)bs * Dv, (size_t)Dv, 1, bs};
        v_off = (size_t)Hkv * bs * Dqk;
    } else {
        kl = vl = (backend_paged_layout){block, 0, (size_t)Dqk, 1, bs};
        v_off = 0;
    }
    float *cache = calloc((size_t)num_blocks * block, sizeof(float));
    float *q = malloc((size_t)N * Hq * Dqk * sizeof(float)), *out = malloc((size_t)N * Hq * Dv * sizeof(float));
    int32_t perm[12], tables[2 * 6];
    shuffle(perm, num_blocks);
    for (int s = 0; s < n_seqs; s++)
        for (int b = 0; b < max_blocks; b++) tables[s * max_blocks + b] = perm[s * max_blocks + b];
    for (size_t i = 0; i < (size_t)num_blocks * block; i++) cache[i] = lcg_sym();
    for (int i = 0; i < N * Hq * Dqk; i++) q[i] = lcg_sym();
    const float *k_cache = cache, *v_cache = cache + v_off;
    float scale = 0.37f;
    be->paged_attention(be, out, q, k_cache, &kl, v_cache, &vl, tables, max_blocks, seq_of, ctx, N, Hq, Hkv, Dqk, Dv,
                        scale);
    double max_err = 0;
    for (int i = 0; i < N; i++) {
        CHECK(ctx[i] <= lens[seq_of[i]]);
        const int32_t *table = tables + seq_of[i] * max_blocks;
        for (int h = 0; h < Hq; h++) {
            int hk = h / (Hq / Hkv);
            double sc[32], mx = -INFINITY, sum = 0;
            for (int p = 0; p < ctx[i]; p++) {
                const float *k = k_cache + at(&kl, table, p, hk);
                double dot = 0;
                for (int d = 0; d < Dqk; d++) dot += (double)q[((size_t)i * Hq + h) * Dqk + d] * k[d * kl.dim_stride];
                sc[p] = scale * dot;
                if (sc[p] > mx) mx = sc[p];
            }
            for (int p = 0; p < ctx[i]; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int x = 0; x < Dv; x++) {
                double o = 0;
                for (int p = 0; p < ctx[i]; p++) o += sc[p] / sum * v_cache[at(&vl, table, p, hk) + x * vl.dim_stride];
                double err = fabs(o - out[((size_t)i * Hq + h) * Dv + x]);
                if (err > max_err) max_err = err;
            }
        }
    }
    CHECK_MSG(max_err < 1e-5, "paged_attention Hq=%d Hkv=%d Dqk=%d Dv=%d layout %d block %d: max error %.3g", Hq,
              Hkv, Dqk, Dv, (int)kind, bs, max_err);

    /* cache_write_rows: src [3, Hkv, Dqk] into three slots, nothing else touched */
    if (kind != LAYOUT_MLA) {
        float *before = malloc((size_t)num_blocks * block * sizeof(float));
        memcpy(before, cache, (size_t)num_blocks * block * sizeof(float));
        const int32_t slots[3] = {0 * bs + 2, 7 * bs + 0, 11 * bs + 1}, ident[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        float *src = malloc((size_t)3 * Hkv * Dqk * sizeof(float));
        for (int i = 0; i < 3 * Hkv * Dqk; i++) src[i] = 100.0f + (float)i;
        be->cache_write_rows(be, cache, &kl, src, Hkv, Dqk, slots, 3);
        int ok = 1;
        for (int i = 0; i < 3; i++)
            for (int h = 0; h < Hkv; h++) {
                size_t o = at(&kl, ident, slots[i], h);
                for (int d = 0; d < Dqk; d++) {
                    size_t e = o + d * kl.dim_stride;
                    ok &= cache[e] == src[((size_t)i * Hkv + h) * Dqk + d];
                    cache[e] = before[e];
                }
            }
        ok &= !memcmp(before, cache, (size_t)num_blocks * block * sizeof(float));
        CHECK_MSG(ok, "cache_write_rows (layout %d) wrote wrong vectors or touched others", (int)kind);
        free(before);
        free(src);
    }
    free(cache);
    free(q);
    free(out);
}

/* ---- dense_decode == dense_forward ---- */

static dense_config small_config(const char *type, int tied, int bias, int heads, int kv_heads) {
    dense_config c;
    hf_config_dense_defaults(&c, type);
    c.vocab_size = 37;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_hidden_layers = 3;
    c.num_attention_heads = heads;
    c.num_key_value_heads = kv_heads;
    c.head_dim = 32 / heads;
    c.max_position_embeddings = 64;
    c.rope.theta = 100.0;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = tied;
    c.attention_bias = bias;
    c.initializer_range = 0.2;
    return c;
}

#define N_SEQS 3
#define MAX_LEN 40

static void check_decode_matches_forward(const dense_config *cfg, int block_size) {
    dense_model *m;
    CHECK_OK(dense_model_create(be, cfg, &m));
    if (!m) return;
    dense_init_random(m, 7);
    /* nonzero biases so a bias the decoder forgot shows */
    param_set *ps = dense_model_params(m);
    for (int v = 0; v < ps->count; v++)
        if (strstr(ps->views[v].name, ".bias")) {
            float *h = malloc(ps->views[v].numel * sizeof(float));
            for (size_t i = 0; i < ps->views[v].numel; i++) h[i] = 0.3f * lcg_sym();
            be->to_device(be, param_ptr(ps, v), h, ps->views[v].numel * sizeof(float));
            free(h);
        }
    const int V = cfg->vocab_size, lens[N_SEQS] = {23, 9, 31}, max_blocks = MAX_LEN / block_size + 1;
    int32_t ids[N_SEQS][MAX_LEN];
    for (int s = 0; s < N_SEQS; s++)
        for (int t = 0; t < lens[s]; t++) ids[s][t] = (int32_t)(lcg_uniform() * V);

    /* reference: the full forward of each sequence on its own */
    float *ref[N_SEQS];
    CHECK_OK(dense_reserve_inference(m, 1, MAX_LEN));
    int32_t *dev_ids = be->alloc(be, MAX_LEN * sizeof(int32_t));
    for (int s = 0; s < N_SEQS; s++) {
        float *logits;
        be->to_device(be, dev_ids, ids[s], (size_t)lens[s] * sizeof(int32_t));
        CHECK_OK(dense_forward(m, dev_ids, NULL, 1, lens[s], &logits));
        ref[s] = malloc((size_t)lens[s] * V * sizeof(float));
        be->to_host(be, ref[s], logits, (size_t)lens[s] * V * sizeof(float));
    }

    /* the paged cache: blocks handed out in shuffled order */
    kv_pool *pool;
    CHECK_OK(kv_pool_create(be, cfg->num_hidden_layers, dense_cache_floats_per_token(cfg), block_size, 40, &pool));
    int32_t tables[N_SEQS][MAX_LEN / 4 + 1], perm[40];
    shuffle(perm, 40);
    for (int s = 0; s < N_SEQS; s++)
        for (int b = 0; b < max_blocks; b++) tables[s][b] = perm[s * max_blocks + b];
    lm_decode_limits lim = {.max_tokens = 64, .max_seqs = N_SEQS, .max_logits = 64, .max_blocks_per_seq = max_blocks};
    dense_decoder *d;
    CHECK_OK(dense_decoder_create(m, &lim, &d));
    int done[N_SEQS] = {0};
    double max_err = 0;
    int compared = 0;
    float *host = malloc((size_t)64 * V * sizeof(float));
    for (int step = 0; step < 40; step++) {
        lm_decode_seq seqs[N_SEQS];
        int n = 0, which[N_SEQS];
        for (int s = 0; s < N_SEQS; s++) {
            if (done[s] == lens[s]) continue;
            /* chunk sizes: a prefill of 1..8, then mostly single tokens */
            int left = lens[s] - done[s], chunk = done[s] == 0 ? 1 + (int)(lcg_uniform() * 8)
                                                                : (lcg_uniform() < 0.7 ? 1 : 1 + (int)(lcg_uniform() * 5));
            if (chunk > left) chunk = left;
            int n_logits = 1 + (int)(lcg_uniform() * chunk);
            seqs[n] = (lm_decode_seq){ids[s] + done[s], chunk, done[s], n_logits, tables[s]};
            which[n++] = s;
        }
        if (n == 0) break;
        float *logits;
        lm_cache cache = *kv_pool_cache(pool);
        CHECK_OK(dense_decode(d, &cache, seqs, n, &logits));
        int rows = 0;
        for (int i = 0; i < n; i++) rows += seqs[i].n_logits;
        be->to_host(be, host, logits, (size_t)rows * V * sizeof(float));
        int r = 0;
        for (int i = 0; i < n; i++) {
            int s = which[i];
            for (int j = seqs[i].n_new - seqs[i].n_logits; j < seqs[i].n_new; j++, r++) {
                int pos = done[s] + j;
                double err = harness_max_rel_err(host + (size_t)r * V, ref[s] + (size_t)pos * V, V, 1.0);
                if (err > max_err) max_err = err;
                compared++;
            }
            done[s] += seqs[i].n_new;
        }
    }
    for (int s = 0; s < N_SEQS; s++) CHECK_INT(lens[s], done[s]);
    CHECK(compared >= N_SEQS);
    /* float32 with a different summation order than the full forward's attention tiles */
    CHECK_MSG(max_err < 2e-5, "%s: decode logits vs forward: max relative error %.3g over %d rows", cfg->model_type,
              max_err, compared);
    printf("%s (Hq %d, Hkv %d, blocks of %d): %d decoded rows, max relative error %.3g\n", cfg->model_type,
           cfg->num_attention_heads, cfg->num_key_value_heads, block_size, compared, max_err);

    /* input checks: bad id, block outside the pool, too many tokens, cache of another shape */
    lm_cache cache = *kv_pool_cache(pool);
    int32_t bad_id = V, ok_id = 0, bad_table[2] = {0, 999};
    float *logits;
    lm_decode_seq one = {&bad_id, 1, 0, 1, tables[0]};
    CHECK_FAILS(dense_decode(d, &cache, &one, 1, &logits), "outside the vocabulary");
    one = (lm_decode_seq){&ok_id, 1, block_size, 1, bad_table};
    CHECK_FAILS(dense_decode(d, &cache, &one, 1, &logits), "outside the cache");
    one = (lm_decode_seq){ids[0], 1, 0, 2, tables[0]};
    CHECK_FAILS(dense_decode(d, &cache, &one, 1, &logits), "n_logits");
    one = (lm_decode_seq){&ok_id, 1, cfg->max_position_embeddings, 1, tables[0]};
    CHECK_FAILS(dense_decode(d, &cache, &one, 1, &logits), "max_position_embeddings");
    lm_cache other = cache;
    other.floats_per_token += 2;
    one = (lm_decode_seq){&ok_id, 1, 0, 1, tables[0]};
    CHECK_FAILS(dense_decode(d, &other, &one, 1, &logits), "floats per token");

    free(host);
    dense_decoder_free(d);
    kv_pool_free(pool);
    be->free(be, dev_ids);
    for (int s = 0; s < N_SEQS; s++) free(ref[s]);
    dense_model_free(m);
}

/* ---- the pool ---- */

static void check_pool(void) {
    kv_pool *p;
    CHECK_FAILS(kv_pool_create(be, 2, 8, 0, 4, &p), "expected all >= 1");
    CHECK(p == NULL);
    CHECK_OK(kv_pool_create(be, 2, 8, 4, 3, &p));
    CHECK_INT(2 * 8 * 4, kv_pool_bytes_per_token(p));
    CHECK_INT(3 * 4 * 2 * 8 * 4, kv_pool_bytes(p));
    int a = kv_pool_alloc(p), b = kv_pool_alloc(p), c = kv_pool_alloc(p);
    CHECK(a >= 0 && b >= 0 && c >= 0 && a != b && b != c && a != c);
    CHECK_INT(-1, kv_pool_alloc(p));
    CHECK_INT(0, kv_pool_num_free(p));
    CHECK_INT(3, kv_pool_peak_used(p));
    kv_pool_retain(p, b);
    CHECK_INT(2, kv_pool_refcount(p, b));
    kv_pool_release(p, b);
    CHECK_INT(0, kv_pool_num_free(p));
    kv_pool_release(p, b);
    CHECK_INT(1, kv_pool_num_free(p));
    CHECK_INT(b, kv_pool_alloc(p));
    /* copy on write: block a to block c in every layer */
    const lm_cache *cache = kv_pool_cache(p);
    size_t layer = (size_t)3 * 4 * 8;
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 4 * 8; i++) cache->base[l * layer + (size_t)a * 32 + i] = (float)(l * 100 + i + 1);
    kv_pool_copy_block(p, c, a);
    int same = 1;
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 4 * 8; i++) same &= cache->base[l * layer + (size_t)c * 32 + i] == (float)(l * 100 + i + 1);
    CHECK_MSG(same, "kv_pool_copy_block did not copy block a into c in every layer");
    kv_pool_release(p, a);
    kv_pool_release(p, b);
    kv_pool_release(p, c);
    CHECK_INT(3, kv_pool_num_free(p));
    kv_pool_free(p);
    kv_pool_free(NULL);
}

int main(void) {
    be = backend_cpu_create();
    for (layout_kind k = LAYOUT_ROWS; k <= LAYOUT_DENSE; k++)
        for (int bs = 3; bs <= 16; bs += 13) {   /* 16: the dense layout's 16-wide kernels */
            check_paged_attention(4, 2, 32, 32, k, bs);
            check_paged_attention(6, 1, 20, 12, k, bs);
            check_paged_attention(3, 3, 5, 7, k, bs);
            check_paged_attention(16, 2, 40, 48, k, bs);   /* groups of 8 */
        }
    check_paged_attention(4, 1, 24, 16, LAYOUT_MLA, 3);    /* [latent 16 | rope 8] rows, values = latent */
    check_paged_attention(16, 1, 48, 32, LAYOUT_MLA, 16);
    dense_config qwen = small_config("qwen2", 1, 1, 4, 2);
    check_decode_matches_forward(&qwen, 4);
    dense_config llama = small_config("llama", 0, 0, 2, 1);
    check_decode_matches_forward(&llama, 4);
    check_decode_matches_forward(&llama, 16);   /* head_dim 16, blocks of 16: the 16-wide kernels */
    dense_config mha = small_config("llama", 1, 1, 4, 4);
    check_decode_matches_forward(&mha, 8);
    check_pool();
    backend_free(be);
    TEST_MAIN_END();
}

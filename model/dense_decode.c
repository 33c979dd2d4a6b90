/* Cached decoding for the dense model (model/dense.h): dense_forward's maths for a batch
 * of sequences that each append n_new tokens to a paged K/V cache and attend over all
 * their cached positions. Every Linear runs once over all new tokens of all sequences
 * (that batching is where a decode step's speed comes from); attention gathers each
 * sequence's keys through its block table (backend paged_attention). */
#include "model/dense_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"

#define DECODE_ALIGN_FLOATS 64

struct dense_decoder {
    dense_model *m;
    lm_decode_limits lim;
    float *block;          /* backend memory carved into the views below */
    /* activations for T = lim.max_tokens new tokens, G = lim.max_logits output rows */
    float *x;              /* [T, D] residual stream */
    float *xn;             /* [T, D] norm output */
    float *rstd;           /* [T] */
    float *q;              /* [T, QD] */
    float *k, *v;          /* [T, KD] */
    float *att;            /* [T, QD] */
    float *gate, *up, *act;   /* [T, I] */
    float *x_last;         /* [G, D] rows whose logits are wanted */
    float *xn_last;        /* [G, D] */
    float *logits;         /* [G, V] */
    int32_t *ids, *positions, *rows, *seq_of, *ctx_len;   /* [T] backend int32; rows: cache slots */
    int32_t *block_tables;                                /* [S, max_blocks] backend int32 */
    int32_t *host;         /* host staging: 5 * T + S * max_blocks int32 */
};

size_t dense_cache_floats_per_token(const dense_config *cfg) { return 2 * (size_t)dense_config_kv_dim(cfg); }

typedef struct {
    float *base;
    size_t used;   /* floats */
} carver;

static float *carve(carver *cv, size_t floats) {
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (floats + DECODE_ALIGN_FLOATS - 1) / DECODE_ALIGN_FLOATS * DECODE_ALIGN_FLOATS;
    return p;
}

static void carve_all(dense_decoder *d, carver *cv) {
    const dense_config *c = &d->m->cfg;
    size_t T = d->lim.max_tokens, G = d->lim.max_logits, S = d->lim.max_seqs, B = d->lim.max_blocks_per_seq;
    size_t D = c->hidden_size, I = c->intermediate_size, QD = dense_config_q_dim(c), KD = dense_config_kv_dim(c);
    d->x = carve(cv, T * D);
    d->xn = carve(cv, T * D);
    d->rstd = carve(cv, T);
    d->q = carve(cv, T * QD);
    d->k = carve(cv, T * KD);
    d->v = carve(cv, T * KD);
    d->att = carve(cv, T * QD);
    d->gate = carve(cv, T * I);
    d->up = carve(cv, T * I);
    d->act = carve(cv, T * I);
    d->x_last = carve(cv, G * D);
    d->xn_last = carve(cv, G * D);
    d->logits = carve(cv, G * (size_t)c->vocab_size);
    d->ids = (int32_t *)carve(cv, T);   /* int32 and float are both 4 bytes */
    d->positions = (int32_t *)carve(cv, T);
    d->rows = (int32_t *)carve(cv, T);
    d->seq_of = (int32_t *)carve(cv, T);
    d->ctx_len = (int32_t *)carve(cv, T);
    d->block_tables = (int32_t *)carve(cv, S * B);
}

grpo_status dense_decoder_create(dense_model *m, const lm_decode_limits *limits, dense_decoder **out) {
    *out = NULL;
    const lm_decode_limits *l = limits;
    if (l->max_tokens < 1 || l->max_seqs < 1 || l->max_logits < 1 || l->max_blocks_per_seq < 1 ||
        l->max_seqs > l->max_tokens || (int64_t)l->max_seqs * l->max_blocks_per_seq > INT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "dense_decoder_create: limits tokens %d, seqs %d, logits %d, blocks per "
                         "seq %d: expected all >= 1 and seqs <= tokens", l->max_tokens, l->max_seqs, l->max_logits,
                         l->max_blocks_per_seq);
    backend *be = m->be;
    GRPO_TRY(BACKEND_REQUIRE(be, cache_write_rows));
    GRPO_TRY(BACKEND_REQUIRE(be, paged_attention));
    dense_decoder *d = calloc(1, sizeof *d);
    if (!d) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a dense decoder");
    d->m = m;
    d->lim = *l;
    carver cv = {NULL, 0};
    carve_all(d, &cv);
    d->host = malloc((5 * (size_t)l->max_tokens + (size_t)l->max_seqs * l->max_blocks_per_seq) * sizeof(int32_t));
    char what[80];
    snprintf(what, sizeof what, "dense decoding activations for %d tokens", l->max_tokens);
    if (!d->host || !(d->block = backend_alloc(be, cv.used * sizeof(float), what))) {
        grpo_status s = d->host ? GRPO_ERR_NOMEM   /* backend_alloc's message */
                                : grpo_fail(GRPO_ERR_NOMEM, "out of host memory for a dense decoder");
        dense_decoder_free(d);
        return s;
    }
    cv.base = d->block;
    cv.used = 0;
    carve_all(d, &cv);
    *out = d;
    return GRPO_OK;
}

void dense_decoder_free(dense_decoder *d) {
    if (!d) return;
    d->m->be->free(d->m->be, d->block);
    free(d->host);
    free(d);
}

/* y[N, out] = x[N, in] W^T (+ bias); beta = 1 adds into y (the residual). lin: the
 * precision of the product (model/linear.h); NULL keeps float32 (the head). */
static void proj(linear *lin, backend *be, float *y, const float *x, const float *W, const float *bias, int N, int in,
                 int out, float beta) {
    linear_forward(lin, be, y, out, x, in, W, N, in, out, beta);
    if (bias) be->add_bias(be, y, bias, N, out);
}

/* Checks the cache against the model, then the call and the host staging arrays
 * (lm_decode_stage; the block tables are never read past ctx_len). */
static grpo_status stage(dense_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs, int *T_out,
                         int *G_out) {
    const dense_config *c = &d->m->cfg;
    const lm_decode_limits *l = &d->lim;
    if (cache->num_layers != c->num_hidden_layers || cache->floats_per_token != dense_cache_floats_per_token(c) ||
        cache->block_size < 1 || cache->num_blocks < 1 || !cache->base)
        return grpo_fail(GRPO_ERR_INVALID, "dense_decode: cache of %d layers x %zu floats per token (block size %d, "
                         "%d blocks); the model needs %d layers x %zu", cache->num_layers, cache->floats_per_token,
                         cache->block_size, cache->num_blocks, c->num_hidden_layers, dense_cache_floats_per_token(c));
    return lm_decode_stage("dense_decode", l, cache, c->vocab_size, c->max_position_embeddings, seqs, n_seqs, d->host,
                           T_out, G_out);
}

grpo_status dense_decode(dense_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                         float **logits) {
    int T = 0, G = 0;
    GRPO_TRY(stage(d, cache, seqs, n_seqs, &T, &G));
    dense_model *m = d->m;
    backend *be = m->be;
    linear *lin = m->params.compute;   /* the projections' precision */
    const dense_config *c = &m->cfg;
    const int D = c->hidden_size, I = c->intermediate_size, Dh = c->head_dim, V = c->vocab_size;
    const int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, QD = Hq * Dh, KD = Hkv * Dh;
    const int MB = d->lim.max_blocks_per_seq;
    const float eps = (float)c->rms_norm_eps;
    const size_t F = cache->floats_per_token, layer_floats = (size_t)cache->num_blocks * cache->block_size * F;
    /* a block of one layer: keys [Hkv, Dh, block_size] then values [Hkv, block_size, Dh],
     * so the attention reads each block of a head in place as two small matrix products */
    const int bs = cache->block_size;
    const backend_paged_layout k_layout = {(size_t)bs * F, (size_t)bs * Dh, 1, (size_t)bs, bs};
    const backend_paged_layout v_layout = {(size_t)bs * F, (size_t)bs * Dh, (size_t)Dh, 1, bs};

    /* host staging -> backend: ids, positions, rows, seq_of, ctx_len are consecutive [T] arrays */
    const int32_t *h = d->host;
    be->to_device(be, d->ids, h, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->positions, h + T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->rows, h + 2 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->seq_of, h + 3 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->ctx_len, h + 4 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->block_tables, h + 5 * (size_t)T, (size_t)n_seqs * MB * sizeof(int32_t));

    be->embedding_forward(be, d->x, d->ids, dense_model_embed_tokens(m), T, D);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const dense_layer_weights *w = &m->weights[l];
        float *k_cache = cache->base + (size_t)l * layer_floats, *v_cache = k_cache + (size_t)bs * KD;
        /* x = x + o_proj(attention(rope(q), cached rope(k), cached v)) */
        be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->input_layernorm, T, D, eps);
        proj(lin, be, d->q, d->xn, w->q_proj, w->q_bias, T, D, QD, 0.0f);
        proj(lin, be, d->k, d->xn, w->k_proj, w->k_bias, T, D, KD, 0.0f);
        proj(lin, be, d->v, d->xn, w->v_proj, w->v_bias, T, D, KD, 0.0f);
        be->rope(be, d->q, T, Hq, Dh, Dh, d->positions, m->rope_cos, m->rope_sin, 0, 0);
        be->rope(be, d->k, T, Hkv, Dh, Dh, d->positions, m->rope_cos, m->rope_sin, 0, 0);
        be->cache_write_rows(be, k_cache, &k_layout, d->k, Hkv, Dh, d->rows, T);
        be->cache_write_rows(be, v_cache, &v_layout, d->v, Hkv, Dh, d->rows, T);
        be->paged_attention(be, d->att, d->q, k_cache, &k_layout, v_cache, &v_layout, d->block_tables, MB, d->seq_of,
                            d->ctx_len, T, Hq, Hkv, Dh, Dh, 1.0f / sqrtf((float)Dh));
        proj(lin, be, d->x, d->att, w->o_proj, w->o_bias, T, QD, D, 1.0f);
        /* x = x + down_proj(silu(gate_proj(n2)) * up_proj(n2)) */
        be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->post_attention_layernorm, T, D, eps);
        proj(lin, be, d->gate, d->xn, w->gate_proj, NULL, T, D, I, 0.0f);
        proj(lin, be, d->up, d->xn, w->up_proj, NULL, T, D, I, 0.0f);
        be->swiglu_forward(be, d->act, d->gate, d->up, (size_t)T * I);
        proj(lin, be, d->x, d->act, w->down_proj, NULL, T, I, D, 1.0f);
    }

    /* The rows whose logits are wanted: the last n_logits of each sequence. When every
     * sequence wants all its new rows (plain decoding), they are x itself. */
    const float *last = d->x;
    if (G != T) {
        int t = 0, g = 0;
        for (int s = 0; s < n_seqs; s++) {
            int skip = seqs[s].n_new - seqs[s].n_logits;
            be->copy(be, d->x_last + (size_t)g * D, d->x + (size_t)(t + skip) * D,
                     (size_t)seqs[s].n_logits * D * sizeof(float));
            t += seqs[s].n_new;
            g += seqs[s].n_logits;
        }
        last = d->x_last;
    }
    be->rmsnorm_forward(be, d->xn_last, d->rstd, last, dense_model_final_norm(m), G, D, eps);
    proj(NULL, be, d->logits, d->xn_last, dense_model_lm_head(m), NULL, G, D, V, 0.0f);
    *logits = d->logits;
    return GRPO_OK;
}

/* ---- the lm-level table ---- */

static void lm_dense_cache_layout(const lm *m, int *num_layers, size_t *floats_per_token) {
    const dense_config *c = dense_model_config(m->impl);
    *num_layers = c->num_hidden_layers;
    *floats_per_token = dense_cache_floats_per_token(c);
}

static grpo_status lm_dense_decoder_create(lm *m, const lm_decode_limits *limits, lm_decoder **out) {
    *out = NULL;
    lm_decoder *ld = calloc(1, sizeof *ld);
    if (!ld) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a decoder");
    dense_decoder *d;
    grpo_status s = dense_decoder_create(m->impl, limits, &d);
    if (s != GRPO_OK) {
        free(ld);
        return s;
    }
    ld->model = m;
    ld->limits = *limits;
    ld->impl = d;
    *out = ld;
    return GRPO_OK;
}

static void lm_dense_decoder_free(lm_decoder *ld) {
    if (!ld) return;
    dense_decoder_free(ld->impl);
    free(ld);
}

static grpo_status lm_dense_decode(lm_decoder *ld, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                                   float **logits) {
    return dense_decode(ld->impl, cache, seqs, n_seqs, logits);
}

const lm_decode_ops dense_lm_decode_ops = {lm_dense_cache_layout, lm_dense_decoder_create, lm_dense_decoder_free,
                                           lm_dense_decode, NULL, NULL};

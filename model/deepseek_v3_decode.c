/* Cached decoding for DeepSeek-V3 (lm_decode_ops, model/lm.h): deepseek_v3_forward's maths
 * for a batch of sequences appending tokens to a paged latent cache. Per layer and token
 * the cache keeps only [kv_lora_rank] normed latent c + [qk_rope_head_dim] rotated shared
 * RoPE key (V2 report sec. 2.1.2), and attention runs absorbed (V2 report appendix C; the
 * same algebra as model/mla_decode.c): per head h,
 *   q~[h]   = [q_nope[h] W_UK[h], q_pe[h]]              [kv_lora_rank + rope]
 *   score_j = softmax_scale * q~[h] . [c_j, k_pe_j]      (one key head shared by all: MQA)
 *   o[h]    = (sum_j softmax_j c_j) W_UV[h]^T
 * so the backend's paged_attention runs with Hkv = 1, keys = the whole cache row and values
 * = its latent part. MLPs (dense or DeepSeekMoE) run on the new tokens only. The MoE layers
 * route with a decoder-owned moe_layer, so decoding never adds to the training routing
 * statistics (nor the bias updates).
 *
 * Multi-token prediction (V3 report sec. 2.2, eq. 21-25) for speculative decoding: with a
 * cache that has one layer more than the main model (mtp_layers), decode keeps every new
 * token's final-normed hidden state h^0, and draft runs MTP module 1 over chosen positions:
 *   h'_i = eh_proj([enorm(emb(t_{i+1})); hnorm(h^0_i)]),  h_i = block(h'_i) (its MLA over
 *   its own cache layer), logits_i = lm_head(shared_head.norm(h_i)) guessing t_{i+2}. */
#include "model/deepseek_v3_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/backend_pool.h"

#define DECODE_ALIGN_FLOATS 64

typedef struct {
    deepseek_v3_model *m;
    lm_decode_limits lim;
    moe_layer *moe;        /* routing state for T tokens, shared by the MoE layers */
    float *block;
    float *x, *xn, *rstd, *tmp;   /* [T, D] (rstd [T]) */
    float *q_a, *q_a_n;    /* [T, q_lora_rank] */
    float *q;              /* [T, H, nope + rope] */
    float *latent_pre;     /* [T, kv_lora_rank] */
    float *latent;         /* [T, kv_lora_rank] */
    float *k_pe;           /* [T, rope] */
    float *q_cat;          /* [T, H, kv_lora_rank + rope] */
    float *o_latent;       /* [T, H, kv_lora_rank] */
    float *att;            /* [T, H, v_head] */
    float *gate, *up, *act;   /* [T, intermediate] (dense layers) */
    float *identity;       /* [rope, rope] */
    float *x_last, *xn_last, *logits;   /* [G, D], [G, D], [G, V] */
    float *h0;             /* [T, D] final-normed hidden of the last decode's tokens (MTP caches) */
    float *en, *hn;        /* [T, D] the draft's normed embedding and hidden halves */
    int hidden_rows;       /* rows of h0 valid for draft (0: none) */
    int32_t *ids, *positions, *slots, *seq_of, *ctx_len;   /* [T] */
    int32_t *block_tables; /* [S, max_blocks] */
    int32_t *host;         /* 5 T + S * max_blocks staging (decode and draft) */
} dsv3_decoder;

static size_t cache_floats(const deepseek_v3_model *m) {
    return (size_t)m->mla_cfg.kv_lora_rank + (size_t)m->mla_cfg.qk_rope_head_dim;
}

typedef struct {
    float *base;
    size_t used;
} carver;

static float *carve(carver *cv, size_t floats) {
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (floats + DECODE_ALIGN_FLOATS - 1) / DECODE_ALIGN_FLOATS * DECODE_ALIGN_FLOATS;
    return p;
}

static void carve_all(dsv3_decoder *d, carver *cv) {
    const deepseek_v3_config *c = &d->m->cfg;
    const mla_config *a = &d->m->mla_cfg;
    size_t T = d->lim.max_tokens, G = d->lim.max_logits, S = d->lim.max_seqs, MB = d->lim.max_blocks_per_seq;
    size_t D = c->hidden_size, H = a->num_heads, rq = a->q_lora_rank, rkv = a->kv_lora_rank;
    size_t dn = a->qk_nope_head_dim, dr = a->qk_rope_head_dim, dv = a->v_head_dim, I = c->intermediate_size;
    d->x = carve(cv, T * D);
    d->xn = carve(cv, T * D);
    d->rstd = carve(cv, T);
    d->tmp = carve(cv, T * D);
    d->q_a = carve(cv, T * (rq ? rq : 1));
    d->q_a_n = carve(cv, T * (rq ? rq : 1));
    d->q = carve(cv, T * H * (dn + dr));
    d->latent_pre = carve(cv, T * rkv);
    d->latent = carve(cv, T * rkv);
    d->k_pe = carve(cv, T * dr);
    d->q_cat = carve(cv, T * H * (rkv + dr));
    d->o_latent = carve(cv, T * H * rkv);
    d->att = carve(cv, T * H * dv);
    d->gate = carve(cv, T * I);
    d->up = carve(cv, T * I);
    d->act = carve(cv, T * I);
    d->identity = carve(cv, dr * dr);
    d->x_last = carve(cv, G * D);
    d->xn_last = carve(cv, G * D);
    d->logits = carve(cv, G * (size_t)c->vocab_size);
    d->h0 = carve(cv, T * D);
    d->en = carve(cv, T * D);
    d->hn = carve(cv, T * D);
    d->ids = (int32_t *)carve(cv, T);
    d->positions = (int32_t *)carve(cv, T);
    d->slots = (int32_t *)carve(cv, T);
    d->seq_of = (int32_t *)carve(cv, T);
    d->ctx_len = (int32_t *)carve(cv, T);
    d->block_tables = (int32_t *)carve(cv, S * MB);
}

static void decoder_free(dsv3_decoder *d) {
    if (!d) return;
    d->m->be->free(d->m->be, d->block);
    moe_layer_free(d->moe);
    free(d->host);
    free(d);
}

static grpo_status decoder_create(deepseek_v3_model *m, const lm_decode_limits *l, dsv3_decoder **out) {
    *out = NULL;
    if (l->max_tokens < 1 || l->max_seqs < 1 || l->max_logits < 1 || l->max_blocks_per_seq < 1 ||
        l->max_seqs > l->max_tokens || (int64_t)l->max_seqs * l->max_blocks_per_seq > INT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 decoder: limits tokens %d, seqs %d, logits %d, blocks per seq "
                         "%d: expected all >= 1 and seqs <= tokens", l->max_tokens, l->max_seqs, l->max_logits,
                         l->max_blocks_per_seq);
    backend *be = m->be;
    GRPO_TRY(BACKEND_REQUIRE(be, cache_write_rows));
    GRPO_TRY(BACKEND_REQUIRE(be, paged_attention));
    GRPO_TRY(BACKEND_REQUIRE(be, rope));
    dsv3_decoder *d = calloc(1, sizeof *d);
    if (!d) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a deepseek_v3 decoder");
    d->m = m;
    d->lim = *l;
    grpo_status s = GRPO_OK;
    if (m->n_moe > 0) {
        moe_config mc = m->moe_cfg;
        mc.seq_aux_alpha = 0.0f;   /* no balance loss while sampling */
        s = moe_layer_create(be, &mc, l->max_tokens, &d->moe);
    }
    carver cv = {NULL, 0};
    carve_all(d, &cv);
    if (!s) {
        d->host = malloc((5 * (size_t)l->max_tokens + (size_t)l->max_seqs * l->max_blocks_per_seq) * sizeof(int32_t));
        char what[80];
        snprintf(what, sizeof what, "deepseek_v3 decoding activations for %d tokens", l->max_tokens);
        if (!d->host) s = grpo_fail(GRPO_ERR_NOMEM, "out of host memory for a deepseek_v3 decoder");
        else if (!(d->block = backend_alloc(be, cv.used * sizeof(float), what))) s = GRPO_ERR_NOMEM;
    }
    if (s) {
        decoder_free(d);
        return s;
    }
    cv.base = d->block;
    cv.used = 0;
    carve_all(d, &cv);
    int dr = m->mla_cfg.qk_rope_head_dim;
    float *eye = calloc((size_t)dr * dr, sizeof(float));
    if (!eye) {
        decoder_free(d);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < dr; i++) eye[(size_t)i * dr + i] = 1.0f;
    be->to_device(be, d->identity, eye, (size_t)dr * dr * sizeof(float));
    free(eye);
    *out = d;
    return GRPO_OK;
}

/* Checks the cache against the model, then the call and the host staging arrays (lm_decode_stage). */
static grpo_status stage(dsv3_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs, int *T_out,
                         int *G_out) {
    const deepseek_v3_config *c = &d->m->cfg;
    const lm_decode_limits *l = &d->lim;
    int mtp = c->num_nextn_predict_layers > 0;
    if ((cache->num_layers != c->num_hidden_layers && cache->num_layers != c->num_hidden_layers + mtp) ||
        cache->floats_per_token != cache_floats(d->m) || cache->block_size < 1 || cache->num_blocks < 1 || !cache->base)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_decode: cache of %d layers x %zu floats per token (block size "
                         "%d, %d blocks); the model needs %d layers (+ %d for MTP) x %zu", cache->num_layers,
                         cache->floats_per_token, cache->block_size, cache->num_blocks, c->num_hidden_layers, mtp,
                         cache_floats(d->m));
    return lm_decode_stage("deepseek_v3_decode", l, cache, c->vocab_size, c->max_position_embeddings, seqs, n_seqs,
                           d->host, T_out, G_out);
}

/* y[N, out] = x[N, in] W^T + beta y, rows ldx / ldy apart. */
static void proj(linear *lin, backend *be, float *y, int ldy, const float *x, int ldx, const float *W, int N, int in,
                 int out, float beta) {
    linear_forward(lin, be, y, ldy, x, ldx, W, N, in, out, beta);
}

/* One layer's absorbed MLA over the paged latent cache: d->x += o_proj(attention(...)). */
static void mla_layer(dsv3_decoder *d, const dsv3_block_weights *w, float *layer, const lm_cache *cache, int T,
                      int n_seqs) {
    deepseek_v3_model *m = d->m;
    linear *lin = m->params.compute;   /* the projections' precision */
    backend *be = m->be;
    const mla_config *a = &m->mla_cfg;
    const int D = a->hidden_size, H = a->num_heads, rq = a->q_lora_rank, rkv = a->kv_lora_rank;
    const int dn = a->qk_nope_head_dim, dr = a->qk_rope_head_dim, dv = a->v_head_dim, Dqk = dn + dr;
    const int QD = H * Dqk, F = rkv + dr, bs = cache->block_size;
    const float *xn = d->xn;
    (void)n_seqs;

    /* queries [T, H, Dqk], the rope part rotated (interleaved pairs, as HF) */
    if (rq > 0) {
        proj(lin, be, d->q_a, rq, xn, D, w->attn.q_a_proj, T, D, rq, 0.0f);
        be->rmsnorm_forward(be, d->q_a_n, d->rstd, d->q_a, w->attn.q_a_layernorm, T, rq, a->rms_norm_eps);
        proj(lin, be, d->q, QD, d->q_a_n, rq, w->attn.q_b_proj, T, rq, QD, 0.0f);
    } else {
        proj(lin, be, d->q, QD, xn, D, w->attn.q_proj, T, D, QD, 0.0f);
    }
    be->rope(be, d->q + dn, T, H, Dqk, dr, d->positions, m->rope_cos, m->rope_sin, 1, 0);

    /* the new tokens' cache rows: c = kv_a_layernorm(x W_kva[:rkv]^T), k_pe = rope(x W_kva[rkv:]^T) */
    proj(lin, be, d->latent_pre, rkv, xn, D, w->attn.kv_a_proj_with_mqa, T, D, rkv, 0.0f);
    be->rmsnorm_forward(be, d->latent, d->rstd, d->latent_pre, w->attn.kv_a_layernorm, T, rkv, a->rms_norm_eps);
    linear_round_rows(lin, be, d->latent, rkv, T, rkv);   /* as training's kv_b_proj input (model/linear.h) */
    proj(lin, be, d->k_pe, dr, xn, D, w->attn.kv_a_proj_with_mqa + (size_t)rkv * D, T, D, dr, 0.0f);
    be->rope(be, d->k_pe, T, 1, dr, dr, d->positions, m->rope_cos, m->rope_sin, 1, 0);
    const backend_paged_layout row = {(size_t)bs * F, 0, (size_t)F, 1, bs};
    be->cache_write_rows(be, layer, &row, d->latent, 1, rkv, d->slots, T);
    be->cache_write_rows(be, layer + rkv, &row, d->k_pe, 1, dr, d->slots, T);

    /* q~ = [q_nope W_UK, q_pe] per head: [T, H, rkv + dr] */
    for (int h = 0; h < H; h++) {
        const float *wk = w->attn.kv_b_proj + (size_t)h * (dn + dv) * rkv;   /* W_UK[h]: [dn, rkv] */
        linear_matmul_weight_only(lin, be, 0, 0, T, rkv, dn, 1.0f, d->q + (size_t)h * Dqk, QD, wk, rkv, 0.0f,
                                  d->q_cat + (size_t)h * F, H * F);
    }
    be->matmul(be, 0, 0, T * H, dr, dr, 1.0f, d->q + dn, Dqk, d->identity, dr, 0.0f, d->q_cat + rkv, F);

    /* attention over the cache, all heads on the one latent key/value head */
    be->paged_attention(be, d->o_latent, d->q_cat, layer, &row, layer, &row, d->block_tables,
                        d->lim.max_blocks_per_seq, d->seq_of, d->ctx_len, T, H, 1, F, rkv, a->softmax_scale);

    /* o[h] = o_latent[h] W_UV[h]^T, then x += o_proj(o) */
    for (int h = 0; h < H; h++) {
        const float *wv = w->attn.kv_b_proj + ((size_t)h * (dn + dv) + dn) * rkv;   /* W_UV[h]: [dv, rkv] */
        linear_matmul_weight_only(lin, be, 0, 1, T, dv, rkv, 1.0f, d->o_latent + (size_t)h * rkv, H * rkv, wv, rkv,
                                  0.0f, d->att + (size_t)h * dv, H * dv);
    }
    proj(lin, be, d->x, D, d->att, H * dv, w->attn.o_proj, T, H * dv, D, 1.0f);
}

static grpo_status decode(dsv3_decoder *d, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                          float **logits) {
    int T = 0, G = 0;
    GRPO_TRY(stage(d, cache, seqs, n_seqs, &T, &G));
    deepseek_v3_model *m = d->m;
    linear *lin = m->params.compute;   /* the projections' precision */
    backend *be = m->be;
    const deepseek_v3_config *c = &m->cfg;
    const int D = c->hidden_size, I = c->intermediate_size, V = c->vocab_size, MB = d->lim.max_blocks_per_seq;
    const float eps = (float)c->rms_norm_eps;
    const size_t layer_floats = (size_t)cache->num_blocks * cache->block_size * cache->floats_per_token;

    const int32_t *h = d->host;
    be->to_device(be, d->ids, h, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->positions, h + T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->slots, h + 2 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->seq_of, h + 3 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->ctx_len, h + 4 * (size_t)T, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->block_tables, h + 5 * (size_t)T, (size_t)n_seqs * MB * sizeof(int32_t));

    be->embedding_forward(be, d->x, d->ids, param_ptr(&m->params, m->embed_view), T, D);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const dsv3_block_weights *w = &m->weights[l];
        be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->input_layernorm, T, D, eps);
        mla_layer(d, w, cache->base + (size_t)l * layer_floats, cache, T, n_seqs);
        be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->post_attention_layernorm, T, D, eps);
        if (m->views[l].moe < 0) {
            proj(lin, be, d->gate, I, d->xn, D, w->gate_proj, T, D, I, 0.0f);
            proj(lin, be, d->up, I, d->xn, D, w->up_proj, T, D, I, 0.0f);
            be->swiglu_forward(be, d->act, d->gate, d->up, (size_t)T * I);
            proj(lin, be, d->x, D, d->act, I, w->down_proj, T, I, D, 1.0f);
        } else {
            GRPO_TRY(moe_forward(d->moe, &w->moe, d->xn, 1, T, d->tmp));
            be->axpy(be, d->x, 1.0f, d->tmp, (size_t)T * D);
        }
    }
    /* with an MTP cache layer every row's h^0 is kept for draft; else only the logit rows' */
    const int keep_hidden = cache->num_layers > c->num_hidden_layers;
    const float *src = d->x;
    float *normed = d->xn_last;
    if (keep_hidden) {
        be->rmsnorm_forward(be, d->h0, d->rstd, d->x, param_ptr(&m->params, m->norm_view), T, D, eps);
        src = d->h0;
    }
    if (G != T) {
        int t = 0, g = 0;
        for (int s = 0; s < n_seqs; s++) {
            int skip = seqs[s].n_new - seqs[s].n_logits;
            be->copy(be, d->x_last + (size_t)g * D, src + (size_t)(t + skip) * D,
                     (size_t)seqs[s].n_logits * D * sizeof(float));
            t += seqs[s].n_new;
            g += seqs[s].n_logits;
        }
        src = d->x_last;
    }
    if (keep_hidden) normed = (float *)src;
    else be->rmsnorm_forward(be, d->xn_last, d->rstd, src, param_ptr(&m->params, m->norm_view), G, D, eps);
    proj(NULL, be, d->logits, V, normed, D, dsv3_lm_head(m), G, D, V, 0.0f);
    d->hidden_rows = keep_hidden ? T : 0;
    *logits = d->logits;
    return GRPO_OK;
}

/* x[R, D] = [en, hn] eh_proj^T, eh_proj: [D, 2D] with the embedding half first (as
 * deepseek_v3_mtp.c and the released V3 weights). */
static void eh_proj(linear *lin, backend *be, float *x, const float *en, const float *hn, const float *W, int R,
                    int D) {
    linear_matmul(lin, be, 0, 1, R, D, D, 1.0f, en, D, W, 2 * D, 0.0f, x, D);
    linear_matmul(lin, be, 0, 1, R, D, D, 1.0f, hn, D, W + D, 2 * D, 1.0f, x, D);
}

static grpo_status draft(dsv3_decoder *d, const lm_cache *cache, const lm_draft_seq *seqs, int n_seqs,
                         float **logits) {
    deepseek_v3_model *m = d->m;
    linear *lin = m->params.compute;   /* the projections' precision */
    const deepseek_v3_config *c = &m->cfg;
    const lm_decode_limits *l = &d->lim;
    const int L = c->num_hidden_layers, D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    if (c->num_nextn_predict_layers < 1)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "deepseek_v3 draft: the model has no MTP module");
    if (cache->num_layers != L + 1 || cache->floats_per_token != cache_floats(m))
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: cache of %d layers x %zu floats; MTP needs %d x %zu",
                         cache->num_layers, cache->floats_per_token, L + 1, cache_floats(m));
    if (n_seqs < 1 || n_seqs > l->max_seqs)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: %d sequences, expected 1 .. %d", n_seqs, l->max_seqs);
    /* stage like decode: next ids, positions, slots, owners, visible lengths, tables */
    int64_t R = 0, G = 0;
    for (int s = 0; s < n_seqs; s++) {
        const lm_draft_seq *q = &seqs[s];
        if (q->n < 1 || q->position < 0 || q->n_logits < 1 || q->n_logits > q->n || q->hidden_row < 0 ||
            q->hidden_row + q->n > d->hidden_rows || !q->next_ids || !q->block_table)
            return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: sequence %d: rows %d + %d of %d hidden rows kept, "
                             "position %d, n_logits %d", s, q->hidden_row, q->n, d->hidden_rows, q->position,
                             q->n_logits);
        int64_t len = (int64_t)q->position + q->n;
        if (len > c->max_position_embeddings || (len + cache->block_size - 1) / cache->block_size > l->max_blocks_per_seq)
            return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: sequence %d reaches %lld tokens, beyond the limits",
                             s, (long long)len);
        R += q->n;
        G += q->n_logits;
    }
    if (R > l->max_tokens || G > l->max_logits)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: %lld rows, %lld logit rows exceed %d, %d", (long long)R,
                         (long long)G, l->max_tokens, l->max_logits);
    int32_t *ids = d->host, *pos = ids + R, *slots = pos + R, *seq_of = slots + R, *ctx = seq_of + R;
    int32_t *tables = ctx + R;
    int64_t t = 0;
    for (int s = 0; s < n_seqs; s++) {
        const lm_draft_seq *q = &seqs[s];
        int n_blocks = (q->position + q->n + cache->block_size - 1) / cache->block_size;
        int32_t *table = tables + (size_t)s * l->max_blocks_per_seq;
        for (int b = 0; b < l->max_blocks_per_seq; b++) {
            if (b >= n_blocks) { table[b] = 0; continue; }
            if (q->block_table[b] < 0 || q->block_table[b] >= cache->num_blocks)
                return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: sequence %d: block_table[%d] = %d outside the "
                                 "cache's %d blocks", s, b, q->block_table[b], cache->num_blocks);
            table[b] = q->block_table[b];
        }
        for (int j = 0; j < q->n; j++, t++) {
            if (q->next_ids[j] < 0 || q->next_ids[j] >= V)
                return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3 draft: sequence %d: next id %d outside the vocabulary",
                                 s, q->next_ids[j]);
            int p = q->position + j;
            ids[t] = q->next_ids[j];
            pos[t] = p;
            slots[t] = table[p / cache->block_size] * cache->block_size + p % cache->block_size;
            seq_of[t] = s;
            ctx[t] = p + 1;
        }
    }
    backend *be = m->be;
    const param_set *ps = &m->params;
    const float eps = (float)c->rms_norm_eps;
    const int MB = l->max_blocks_per_seq, T = (int)R, b = L;
    const dsv3_mtp_views *mv = &m->mtp_views[0];
    const dsv3_block_weights *w = &m->weights[b];
    be->to_device(be, d->ids, ids, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->positions, pos, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->slots, slots, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->seq_of, seq_of, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->ctx_len, ctx, (size_t)T * sizeof(int32_t));
    be->to_device(be, d->block_tables, tables, (size_t)n_seqs * MB * sizeof(int32_t));

    /* h' = eh_proj([enorm(emb(next)); hnorm(h^0)]) */
    t = 0;
    for (int s = 0; s < n_seqs; s++) {
        be->copy(be, d->tmp + (size_t)t * D, d->h0 + (size_t)seqs[s].hidden_row * D, (size_t)seqs[s].n * D * sizeof(float));
        t += seqs[s].n;
    }
    be->rmsnorm_forward(be, d->hn, d->rstd, d->tmp, param_ptr(ps, mv->hnorm), T, D, eps);
    be->embedding_forward(be, d->tmp, d->ids, param_ptr(ps, m->embed_view), T, D);
    be->rmsnorm_forward(be, d->en, d->rstd, d->tmp, param_ptr(ps, mv->enorm), T, D, eps);
    eh_proj(lin, be, d->x, d->en, d->hn, param_ptr(ps, mv->eh_proj), T, D);

    /* the MTP block over its cache layer */
    be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->input_layernorm, T, D, eps);
    const size_t layer_floats = (size_t)cache->num_blocks * cache->block_size * cache->floats_per_token;
    mla_layer(d, w, cache->base + (size_t)b * layer_floats, cache, T, n_seqs);
    be->rmsnorm_forward(be, d->xn, d->rstd, d->x, w->post_attention_layernorm, T, D, eps);
    if (m->views[b].moe < 0) {
        proj(lin, be, d->gate, I, d->xn, D, w->gate_proj, T, D, I, 0.0f);
        proj(lin, be, d->up, I, d->xn, D, w->up_proj, T, D, I, 0.0f);
        be->swiglu_forward(be, d->act, d->gate, d->up, (size_t)T * I);
        proj(lin, be, d->x, D, d->act, I, w->down_proj, T, I, D, 1.0f);
    } else {
        GRPO_TRY(moe_forward(d->moe, &w->moe, d->xn, 1, T, d->tmp));
        be->axpy(be, d->x, 1.0f, d->tmp, (size_t)T * D);
    }

    /* logits of the last n_logits rows: lm_head(shared_head.norm(h)) */
    int r = 0, g = 0;
    for (int s = 0; s < n_seqs; s++) {
        int skip = seqs[s].n - seqs[s].n_logits;
        be->copy(be, d->x_last + (size_t)g * D, d->x + (size_t)(r + skip) * D,
                 (size_t)seqs[s].n_logits * D * sizeof(float));
        r += seqs[s].n;
        g += seqs[s].n_logits;
    }
    be->rmsnorm_forward(be, d->xn_last, d->rstd, d->x_last, param_ptr(ps, mv->shared_head_norm), (int)G, D, eps);
    proj(NULL, be, d->logits, V, d->xn_last, D, dsv3_lm_head(m), (int)G, D, V, 0.0f);
    *logits = d->logits;
    return GRPO_OK;
}

/* ---- the lm-level table ---- */

static void lm_cache_layout(const lm *l, int *num_layers, size_t *floats_per_token) {
    const deepseek_v3_model *m = l->impl;
    *num_layers = m->cfg.num_hidden_layers;
    *floats_per_token = cache_floats(m);
}

static grpo_status lm_decoder_make(lm *l, const lm_decode_limits *limits, lm_decoder **out) {
    *out = NULL;
    lm_decoder *ld = calloc(1, sizeof *ld);
    if (!ld) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a decoder");
    dsv3_decoder *d;
    grpo_status s = decoder_create(l->impl, limits, &d);
    if (s != GRPO_OK) {
        free(ld);
        return s;
    }
    ld->model = l;
    ld->limits = *limits;
    ld->impl = d;
    *out = ld;
    return GRPO_OK;
}

static void lm_decoder_release(lm_decoder *ld) {
    if (!ld) return;
    decoder_free(ld->impl);
    free(ld);
}

static grpo_status lm_decode_step(lm_decoder *ld, const lm_cache *cache, const lm_decode_seq *seqs, int n_seqs,
                                  float **logits) {
    return decode(ld->impl, cache, seqs, n_seqs, logits);
}

static int lm_mtp_layers(const lm *l) {
    const deepseek_v3_model *m = l->impl;
    return m->cfg.num_nextn_predict_layers > 0 ? 1 : 0;
}

static grpo_status lm_draft_step(lm_decoder *ld, const lm_cache *cache, const lm_draft_seq *seqs, int n_seqs,
                                 float **logits) {
    return draft(ld->impl, cache, seqs, n_seqs, logits);
}

const lm_decode_ops deepseek_v3_lm_decode_ops = {lm_cache_layout, lm_decoder_make, lm_decoder_release,
                                                 lm_decode_step, lm_mtp_layers, lm_draft_step};

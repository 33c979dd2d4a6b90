/* The dense model's structure: parameter declaration with HF names, RoPE tables, the
 * activation block carved into views, accessors and random initialisation. */
#include "model/dense_impl.h"

#include "core/backend_pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every activation view starts on a 256-byte boundary (GPU loads stay aligned). */
#define DENSE_ALIGN_FLOATS 64

static int declare(param_set *ps, const char *name, int64_t d0, int64_t d1, int no_decay) {
    int64_t shape[2] = {d0, d1};
    return param_set_add(ps, name, d1 > 0 ? 2 : 1, shape, no_decay);
}

/* Declares the tensors in the order transformers lists them (embed, layers, norm, lm_head). */
static void declare_params(dense_model *m) {
    const dense_config *c = &m->cfg;
    param_set *ps = &m->params;
    int D = c->hidden_size, I = c->intermediate_size, QD = dense_config_q_dim(c), KD = dense_config_kv_dim(c);
    int qkv_bias = dense_config_qkv_bias(c), o_bias = dense_config_o_bias(c);
    char name[PARAM_NAME_MAX];
    m->embed_view = declare(ps, "model.embed_tokens.weight", c->vocab_size, D, 0);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        dense_layer_views *v = &m->views[l];
#define LAYER_PARAM(field, suffix, d0, d1, nd) \
        (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), v->field = declare(ps, name, d0, d1, nd))
        LAYER_PARAM(input_layernorm, "input_layernorm.weight", D, 0, 1);
        LAYER_PARAM(q_proj, "self_attn.q_proj.weight", QD, D, 0);
        v->q_bias = -1;
        if (qkv_bias) LAYER_PARAM(q_bias, "self_attn.q_proj.bias", QD, 0, 1);
        LAYER_PARAM(k_proj, "self_attn.k_proj.weight", KD, D, 0);
        v->k_bias = -1;
        if (qkv_bias) LAYER_PARAM(k_bias, "self_attn.k_proj.bias", KD, 0, 1);
        LAYER_PARAM(v_proj, "self_attn.v_proj.weight", KD, D, 0);
        v->v_bias = -1;
        if (qkv_bias) LAYER_PARAM(v_bias, "self_attn.v_proj.bias", KD, 0, 1);
        LAYER_PARAM(o_proj, "self_attn.o_proj.weight", D, QD, 0);
        v->o_bias = -1;
        if (o_bias) LAYER_PARAM(o_bias, "self_attn.o_proj.bias", D, 0, 1);
        LAYER_PARAM(post_attention_layernorm, "post_attention_layernorm.weight", D, 0, 1);
        LAYER_PARAM(gate_proj, "mlp.gate_proj.weight", I, D, 0);
        LAYER_PARAM(up_proj, "mlp.up_proj.weight", I, D, 0);
        LAYER_PARAM(down_proj, "mlp.down_proj.weight", D, I, 0);
#undef LAYER_PARAM
    }
    m->norm_view = declare(ps, "model.norm.weight", D, 0, 1);
    m->lm_head_view = c->tie_word_embeddings ? -1 : declare(ps, "lm_head.weight", c->vocab_size, D, 0);
}

static float *view_or_null(const param_set *ps, int view) { return view >= 0 ? param_ptr(ps, view) : NULL; }

static void resolve_weights(dense_model *m) {
    const param_set *ps = &m->params;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const dense_layer_views *v = &m->views[l];
        dense_layer_weights *w = &m->weights[l];
        w->input_layernorm = param_ptr(ps, v->input_layernorm);
        w->q_proj = param_ptr(ps, v->q_proj);
        w->q_bias = view_or_null(ps, v->q_bias);
        w->k_proj = param_ptr(ps, v->k_proj);
        w->k_bias = view_or_null(ps, v->k_bias);
        w->v_proj = param_ptr(ps, v->v_proj);
        w->v_bias = view_or_null(ps, v->v_bias);
        w->o_proj = param_ptr(ps, v->o_proj);
        w->o_bias = view_or_null(ps, v->o_bias);
        w->post_attention_layernorm = param_ptr(ps, v->post_attention_layernorm);
        w->gate_proj = param_ptr(ps, v->gate_proj);
        w->up_proj = param_ptr(ps, v->up_proj);
        w->down_proj = param_ptr(ps, v->down_proj);
    }
}

/* RoPE inverse frequencies, in float32 as transformers computes them
 * (modeling_rope_utils: default, linear and llama3 types), then cos/sin of
 * angle = float(pos) * inv_freq rounded to float like torch's float32 product. */
static void rope_inv_freq(const dense_config *c, float *inv_freq) {
    int dim = c->head_dim, half = dim / 2;
    for (int i = 0; i < half; i++) {
        float f = (float)(1.0 / (double)(float)pow(c->rope.theta, (double)(2 * i) / dim));
        if (c->rope.type == HF_ROPE_LINEAR) f = (float)(f / c->rope.factor);
        if (c->rope.type == HF_ROPE_LLAMA3) {
            /* Llama 3.1: long wavelengths are divided by factor, short ones kept, the band
             * between blends the two (transformers' _compute_llama3_parameters). */
            double factor = c->rope.factor, lo = c->rope.low_freq_factor, hi = c->rope.high_freq_factor;
            double old_len = c->rope.original_max_position_embeddings;
            double wavelen = 2 * M_PI / f;
            double low_freq_wavelen = old_len / lo, high_freq_wavelen = old_len / hi;
            double scaled = wavelen > low_freq_wavelen ? f / factor : f;
            if (!(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen)) {
                double smooth = (old_len / wavelen - lo) / (hi - lo);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            f = (float)scaled;
        }
        inv_freq[i] = f;
    }
}

static grpo_status make_rope_tables(dense_model *m) {
    const dense_config *c = &m->cfg;
    size_t half = (size_t)c->head_dim / 2, n = (size_t)c->max_position_embeddings * half;
    float *host = malloc((2 * n + half) * sizeof(float));
    if (!host) return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate RoPE tables [%d, %zu]", c->max_position_embeddings, half);
    m->rope_block = backend_alloc(m->be, 2 * n * sizeof(float), "the RoPE cos/sin tables");
    if (!m->rope_block) {
        free(host);
        return GRPO_ERR_NOMEM;
    }
    float *inv_freq = host + 2 * n;
    rope_inv_freq(c, inv_freq);
    for (int p = 0; p < c->max_position_embeddings; p++)
        for (size_t i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i];
            host[(size_t)p * half + i] = (float)cos((double)angle);
            host[n + (size_t)p * half + i] = (float)sin((double)angle);
        }
    m->be->to_device(m->be, m->rope_block, host, 2 * n * sizeof(float));
    free(host);
    m->rope_cos = m->rope_block;
    m->rope_sin = m->rope_block + n;
    return GRPO_OK;
}

grpo_status dense_model_create(backend *be, const dense_config *cfg, dense_model **out) {
    *out = NULL;
    GRPO_TRY(hf_config_dense_validate(cfg, "dense config"));
    const void *ops[] = {be->matmul, be->add_bias, be->bias_backward, be->axpy, be->embedding_forward,
                         be->embedding_backward, be->rmsnorm_forward, be->rmsnorm_backward, be->rope,
                         be->attention_forward, be->attention_backward, be->swiglu_forward, be->swiglu_backward};
    const char *names[] = {"matmul", "add_bias", "bias_backward", "axpy", "embedding_forward", "embedding_backward",
                           "rmsnorm_forward", "rmsnorm_backward", "rope", "attention_forward", "attention_backward",
                           "swiglu_forward", "swiglu_backward"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) GRPO_TRY(backend_require(be, ops[i], names[i]));

    dense_model *m = calloc(1, sizeof *m);
    if (!m) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a dense model");
    m->be = be;
    m->cfg = *cfg;
    int L = cfg->num_hidden_layers;
    m->views = calloc((size_t)L, sizeof *m->views);
    m->weights = calloc((size_t)L, sizeof *m->weights);
    m->acts = calloc((size_t)L, sizeof *m->acts);
    param_set_init(&m->params, be);
    grpo_status s = GRPO_OK;
    if (!m->views || !m->weights || !m->acts) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a dense model");
    if (s == GRPO_OK) {
        declare_params(m);
        s = param_set_alloc(&m->params);
    }
    if (s == GRPO_OK) s = make_rope_tables(m);
    if (s != GRPO_OK) {
        dense_model_free(m);
        return s;
    }
    resolve_weights(m);
    *out = m;
    return GRPO_OK;
}

static void free_activations(dense_model *m) {
    m->be->free(m->be, m->act_block);
    m->act_block = NULL;
    free(m->positions_host);
    m->positions_host = NULL;
    m->capacity = 0;
    m->inference_only = 0;
    m->last_B = m->last_T = 0;
    m->reserved_B = m->reserved_T = 0;
    m->act_bytes = 0;
}

void dense_model_free(dense_model *m) {
    if (!m) return;
    free_activations(m);
    m->be->free(m->be, m->rope_block);
    param_set_deinit(&m->params);
    free(m->views);
    free(m->weights);
    free(m->acts);
    free(m);
}

const dense_config *dense_model_config(const dense_model *m) { return &m->cfg; }
backend *dense_model_backend(const dense_model *m) { return m->be; }
param_set *dense_model_params(dense_model *m) { return &m->params; }

const dense_layer_weights *dense_model_layer(const dense_model *m, int layer) {
    GRPO_ASSERT(layer >= 0 && layer < m->cfg.num_hidden_layers);
    return &m->weights[layer];
}

float *dense_model_embed_tokens(const dense_model *m) { return param_ptr(&m->params, m->embed_view); }
float *dense_model_final_norm(const dense_model *m) { return param_ptr(&m->params, m->norm_view); }
float *dense_model_lm_head(const dense_model *m) {
    return param_ptr(&m->params, m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view);
}

void dense_model_rope_tables(const dense_model *m, const float **cos, const float **sin) {
    *cos = m->rope_cos;
    *sin = m->rope_sin;
}

void dense_init_random(dense_model *m, uint64_t seed) {
    param_set_init_normal(&m->params, seed, (float)m->cfg.initializer_range);
}

/* ---- the activation block ---- */

/* Hands out aligned views of a block; with base == NULL it only counts (the sizing pass). */
typedef struct {
    float *base;
    size_t used;   /* floats */
} carver;

static float *carve(carver *cv, size_t floats) {
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (floats + DENSE_ALIGN_FLOATS - 1) / DENSE_ALIGN_FLOATS * DENSE_ALIGN_FLOATS;
    return p;
}

/* Training: every layer's activations and the backward scratch. Inference only: one
 * layer's views shared by all layers (each layer's output overwrites its input).
 * Recompute: one layer's views shared by all layers, but each layer's input x its own. */
static void carve_all(dense_model *m, carver *cv, size_t N, dense_acts_mode mode) {
    int inference_only = mode == DENSE_ACTS_INFERENCE;
    const dense_config *c = &m->cfg;
    size_t D = c->hidden_size, I = c->intermediate_size, QD = dense_config_q_dim(c), KD = dense_config_kv_dim(c);
    size_t V = c->vocab_size, H = c->num_attention_heads;
    int saved_layers = mode == DENSE_ACTS_TRAINING ? c->num_hidden_layers : 1;
    for (int l = 0; l < saved_layers; l++) {
        dense_layer_acts *a = &m->acts[l];
        a->x = carve(cv, N * D);
        a->rstd1 = carve(cv, N);
        a->xn1 = carve(cv, N * D);
        a->q = carve(cv, N * QD);
        a->k = carve(cv, N * KD);
        a->v = carve(cv, N * KD);
        a->att = carve(cv, N * QD);
        a->lse = carve(cv, N * H);
        a->xmid = carve(cv, N * D);
        a->rstd2 = carve(cv, N);
        a->xn2 = carve(cv, N * D);
        a->gate = carve(cv, N * I);
        a->up = carve(cv, N * I);
        a->act = carve(cv, N * I);
    }
    for (int l = saved_layers; l < c->num_hidden_layers; l++) {
        m->acts[l] = m->acts[0];
        if (mode == DENSE_ACTS_RECOMPUTE) m->acts[l].x = carve(cv, N * D);
    }
    m->x_final = carve(cv, N * D);
    m->rstd_final = carve(cv, N);
    m->xn_final = carve(cv, N * D);
    m->logits = carve(cv, N * V);
    m->ids = (int32_t *)carve(cv, N);         /* int32 and float are both 4 bytes */
    m->positions = (int32_t *)carve(cv, N);
    dense_grad_acts *g = &m->grads;
    if (inference_only) {
        memset(g, 0, sizeof *g);
        return;
    }
    g->dres = carve(cv, N * D);
    g->dxn = carve(cv, N * D);
    g->dtmp = carve(cv, N * D);
    g->dact = carve(cv, N * I);
    g->dgate = carve(cv, N * I);
    g->dup = carve(cv, N * I);
    g->dq = carve(cv, N * QD);
    g->datt = carve(cv, N * QD);
    g->dk = carve(cv, N * KD);
    g->dv = carve(cv, N * KD);
}

size_t dense_activation_bytes(const dense_config *cfg, int B, int T, dense_acts_mode mode) {
    dense_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    dense_layer_acts *acts = calloc((size_t)cfg->num_hidden_layers, sizeof *acts);
    if (!acts) return 0;
    tmp.acts = acts;
    carver cv = {NULL, 0};
    carve_all(&tmp, &cv, (size_t)B * (size_t)T, mode);
    free(acts);
    return cv.used * sizeof(float);
}

static grpo_status reserve(dense_model *m, int B, int T, int inference_only) {
    if (B < 1 || T < 1)
        return grpo_fail(GRPO_ERR_INVALID, "dense_reserve: batch [%d, %d] must be positive", B, T);
    if (T > m->cfg.max_position_embeddings)
        return grpo_fail(GRPO_ERR_INVALID, "dense_reserve: T (%d) exceeds max_position_embeddings (%d)", T,
                         m->cfg.max_position_embeddings);
    if ((int64_t)B * T > INT32_MAX)
        return grpo_fail(GRPO_ERR_INVALID, "dense_reserve: B*T (%lld) exceeds 2^31 - 1 tokens", (long long)B * T);
    free_activations(m);
    size_t N = (size_t)B * T;
    dense_acts_mode mode = inference_only ? DENSE_ACTS_INFERENCE : m->recompute ? DENSE_ACTS_RECOMPUTE
                                                                                : DENSE_ACTS_TRAINING;
    carver cv = {NULL, 0};
    carve_all(m, &cv, N, mode);
    m->positions_host = malloc(N * sizeof(int32_t));
    if (!m->positions_host) {
        free_activations(m);
        return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate host positions for %zu tokens", N);
    }
    char what[128];
    snprintf(what, sizeof what, "dense activations for %d x %d tokens (%s)", B, T,
             mode == DENSE_ACTS_INFERENCE ? "inference" : mode == DENSE_ACTS_RECOMPUTE ? "training, recompute"
                                                                                      : "training");
    m->act_block = backend_alloc(m->be, cv.used * sizeof(float), what);
    if (!m->act_block) {
        free_activations(m);
        return GRPO_ERR_NOMEM;   /* backend_alloc's message names the block and the pool's state */
    }
    cv.base = m->act_block;
    cv.used = 0;
    carve_all(m, &cv, N, mode);
    m->capacity = (int)N;
    m->inference_only = inference_only;
    m->reserved_B = B;
    m->reserved_T = T;
    m->act_bytes = cv.used * sizeof(float);
    return GRPO_OK;
}

grpo_status dense_set_recompute(dense_model *m, int on) {
    on = on != 0;
    if (on == m->recompute) return GRPO_OK;
    m->recompute = on;
    if (m->capacity > 0 && !m->inference_only) return reserve(m, m->reserved_B, m->reserved_T, 0);
    return GRPO_OK;
}

size_t dense_activation_block_bytes(const dense_model *m) { return m->act_bytes; }

grpo_status dense_reserve(dense_model *m, int B, int T) { return reserve(m, B, T, 0); }
grpo_status dense_reserve_inference(dense_model *m, int B, int T) { return reserve(m, B, T, 1); }

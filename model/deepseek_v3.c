/* The DeepSeek-V3 model's structure: parameter declaration with the official tensor
 * names, the YaRN RoPE tables, the activation block carved into views, the MoE layer
 * states, accessors, random initialisation and the balancing hooks. */
#include "model/deepseek_v3_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "core/log.h"
#include "model/moe_impl.h"

/* Every activation view starts on a 256-byte boundary (GPU loads stay aligned). */
#define DSV3_ALIGN_FLOATS 64

static int declare(param_set *ps, const char *name, int64_t d0, int64_t d1, int no_decay) {
    int64_t shape[2] = {d0, d1};
    return param_set_add(ps, name, d1 > 0 ? 2 : 1, shape, no_decay);
}

static void declare_block(deepseek_v3_model *m, int b) {
    const deepseek_v3_config *c = &m->cfg;
    param_set *ps = &m->params;
    dsv3_block_views *v = &m->views[b];
    int D = c->hidden_size, H = c->num_attention_heads, QK = deepseek_v3_qk_head_dim(c);
    int E = c->n_routed_experts, I = c->intermediate_size, MI = c->moe_intermediate_size;
    int SI = c->n_shared_experts * c->moe_intermediate_size;
    char name[PARAM_NAME_MAX];
    memset(v, -1, sizeof *v);
#define P(field, suffix, d0, d1, nd) \
    (snprintf(name, sizeof name, "model.layers.%d.%s", b, suffix), v->field = declare(ps, name, d0, d1, nd))
    if (c->q_lora_rank > 0) {
        P(q_a_proj, "self_attn.q_a_proj.weight", c->q_lora_rank, D, 0);
        P(q_a_layernorm, "self_attn.q_a_layernorm.weight", c->q_lora_rank, 0, 1);
        P(q_b_proj, "self_attn.q_b_proj.weight", (int64_t)H * QK, c->q_lora_rank, 0);
    } else {
        P(q_proj, "self_attn.q_proj.weight", (int64_t)H * QK, D, 0);
    }
    P(kv_a_proj_with_mqa, "self_attn.kv_a_proj_with_mqa.weight", c->kv_lora_rank + c->qk_rope_head_dim, D, 0);
    P(kv_a_layernorm, "self_attn.kv_a_layernorm.weight", c->kv_lora_rank, 0, 1);
    P(kv_b_proj, "self_attn.kv_b_proj.weight", (int64_t)H * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank, 0);
    P(o_proj, "self_attn.o_proj.weight", D, (int64_t)H * c->v_head_dim, 0);
    if (!deepseek_v3_layer_is_moe(c, b)) {
        P(gate_proj, "mlp.gate_proj.weight", I, D, 0);
        P(up_proj, "mlp.up_proj.weight", I, D, 0);
        P(down_proj, "mlp.down_proj.weight", D, I, 0);
    } else {
        v->moe = m->n_moe;
        m->moe_block[m->n_moe++] = b;
        P(gate, "mlp.gate.weight", E, D, 0);
        /* deepseek_v2 has no routing bias: the model routes with zeros (m->zero_bias). */
        if (!strcmp(c->model_type, "deepseek_v3"))
            P(e_score_correction_bias, "mlp.gate.e_score_correction_bias", E, 0, 1);
        static const char *proj[3] = {"gate_proj", "up_proj", "down_proj"};
        for (int e = 0; e < E; e++)
            for (int j = 0; j < 3; j++) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", b, e, proj[j]);
                int idx = declare(ps, name, j < 2 ? MI : D, j < 2 ? D : MI, 0);
                if (e == 0 && j == 0) v->expert0 = idx;
                GRPO_ASSERT(idx == v->expert0 + 3 * e + j);
            }
        if (SI > 0) {
            P(shared_gate_proj, "mlp.shared_experts.gate_proj.weight", SI, D, 0);
            P(shared_up_proj, "mlp.shared_experts.up_proj.weight", SI, D, 0);
            P(shared_down_proj, "mlp.shared_experts.down_proj.weight", D, SI, 0);
        }
    }
    P(input_layernorm, "input_layernorm.weight", D, 0, 1);
    P(post_attention_layernorm, "post_attention_layernorm.weight", D, 0, 1);
    if (b >= c->num_hidden_layers) {   /* an MTP module's own tensors (official V3 names) */
        dsv3_mtp_views *t = &m->mtp_views[b - c->num_hidden_layers];
#define PM(field, suffix, d0, d1, nd) \
        (snprintf(name, sizeof name, "model.layers.%d.%s", b, suffix), t->field = declare(ps, name, d0, d1, nd))
        PM(enorm, "enorm.weight", D, 0, 1);
        PM(hnorm, "hnorm.weight", D, 0, 1);
        PM(eh_proj, "eh_proj.weight", D, 2 * (int64_t)D, 0);
        PM(shared_head_norm, "shared_head.norm.weight", D, 0, 1);
#undef PM
    }
#undef P
}

static void declare_params(deepseek_v3_model *m) {
    const deepseek_v3_config *c = &m->cfg;
    m->embed_view = declare(&m->params, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, 0);
    for (int b = 0; b < m->n_blocks; b++) declare_block(m, b);
    m->norm_view = declare(&m->params, "model.norm.weight", c->hidden_size, 0, 1);
    m->lm_head_view = c->tie_word_embeddings ? -1 : declare(&m->params, "lm_head.weight", c->vocab_size, c->hidden_size, 0);
}

static float *ptr_or_null(const param_set *ps, int view, int grad) {
    if (view < 0) return NULL;
    return grad ? param_grad_ptr(ps, view) : param_ptr(ps, view);
}

/* Fills w (values or gradients) for every block; expert arrays live in m->expert_ptrs. */
static void resolve(deepseek_v3_model *m, dsv3_block_weights *ws, int grad) {
    const param_set *ps = &m->params;
    int E = m->cfg.n_routed_experts;
    float **experts = m->expert_ptrs + (grad ? (size_t)m->n_moe * 3 * E : 0);
    for (int b = 0; b < m->n_blocks; b++) {
        const dsv3_block_views *v = &m->views[b];
        dsv3_block_weights *w = &ws[b];
        memset(w, 0, sizeof *w);
        w->input_layernorm = ptr_or_null(ps, v->input_layernorm, grad);
        w->post_attention_layernorm = ptr_or_null(ps, v->post_attention_layernorm, grad);
        w->attn.q_a_proj = ptr_or_null(ps, v->q_a_proj, grad);
        w->attn.q_a_layernorm = ptr_or_null(ps, v->q_a_layernorm, grad);
        w->attn.q_b_proj = ptr_or_null(ps, v->q_b_proj, grad);
        w->attn.q_proj = ptr_or_null(ps, v->q_proj, grad);
        w->attn.kv_a_proj_with_mqa = ptr_or_null(ps, v->kv_a_proj_with_mqa, grad);
        w->attn.kv_a_layernorm = ptr_or_null(ps, v->kv_a_layernorm, grad);
        w->attn.kv_b_proj = ptr_or_null(ps, v->kv_b_proj, grad);
        w->attn.o_proj = ptr_or_null(ps, v->o_proj, grad);
        w->attn.compute = grad ? NULL : ps->compute;
        w->gate_proj = ptr_or_null(ps, v->gate_proj, grad);
        w->up_proj = ptr_or_null(ps, v->up_proj, grad);
        w->down_proj = ptr_or_null(ps, v->down_proj, grad);
        if (v->moe < 0) continue;
        moe_weights *mw = &w->moe;
        mw->gate = ptr_or_null(ps, v->gate, grad);
        /* the routing bias gets no gradient */
        mw->e_score_correction_bias = grad ? NULL : v->e_score_correction_bias >= 0 ? param_ptr(ps, v->e_score_correction_bias)
                                                                                     : m->zero_bias;
        float **arr = experts + (size_t)v->moe * 3 * E;
        mw->experts_gate_proj = arr;
        mw->experts_up_proj = arr + E;
        mw->experts_down_proj = arr + 2 * E;
        for (int e = 0; e < E; e++) {
            arr[e] = ptr_or_null(ps, v->expert0 + 3 * e, grad);
            arr[E + e] = ptr_or_null(ps, v->expert0 + 3 * e + 1, grad);
            arr[2 * E + e] = ptr_or_null(ps, v->expert0 + 3 * e + 2, grad);
        }
        mw->shared_gate_proj = ptr_or_null(ps, v->shared_gate_proj, grad);
        mw->shared_up_proj = ptr_or_null(ps, v->shared_up_proj, grad);
        mw->shared_down_proj = ptr_or_null(ps, v->shared_down_proj, grad);
        mw->compute = grad ? NULL : ps->compute;
    }
}

void dsv3_resolve_grads(deepseek_v3_model *m) {
    if (m->grads_resolved_for == m->params.grad) return;
    resolve(m, m->grads, 1);
    m->grads_resolved_for = m->params.grad;
}

/* ---- RoPE tables (transformers' modeling_rope_utils, float32 as torch computes) ---- */

/* inv_freq [dim/2] for the default or YaRN rope of the config (_compute_yarn_parameters). */
static void rope_inv_freq(const deepseek_v3_config *c, float *inv_freq) {
    const hf_yarn_rope *r = &c->rope;
    int dim = c->qk_rope_head_dim, half = dim / 2;
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)dim;
        float pos_freq = (float)pow(r->theta, (double)expo);
        inv_freq[i] = 1.0f / pos_freq;
    }
    if (!r->yarn) return;
    double beta_fast = r->beta_fast > 0 ? r->beta_fast : 32, beta_slow = r->beta_slow > 0 ? r->beta_slow : 1;
    double base = r->theta, orig = r->original_max_position_embeddings;
    /* find_correction_dim: the dimension whose wavelength turns num_rotations times over orig */
    double low = dim * log(orig / (beta_fast * 2 * M_PI)) / (2 * log(base));
    double high = dim * log(orig / (beta_slow * 2 * M_PI)) / (2 * log(base));
    if (r->truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001;   /* transformers: prevent singularity */
    float flow = (float)low, fspan = (float)(high - low);
    for (int i = 0; i < half; i++) {
        float pos_freq = (float)pow(base, (double)((float)(2 * i) / (float)dim));
        float extrapolation = 1.0f / pos_freq;
        float interpolation = 1.0f / ((float)r->factor * pos_freq);
        float ramp = ((float)i - flow) / fspan;
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float extrapolation_factor = 1.0f - ramp;
        inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
    }
}

static grpo_status make_rope_tables(deepseek_v3_model *m) {
    const deepseek_v3_config *c = &m->cfg;
    size_t half = (size_t)c->qk_rope_head_dim / 2, n = (size_t)c->max_position_embeddings * half;
    float *host = malloc((2 * n + half) * sizeof(float));
    if (!host) return grpo_fail(GRPO_ERR_NOMEM, "cannot allocate RoPE tables [%d, %zu]", c->max_position_embeddings, half);
    m->rope_block = backend_alloc(m->be, 2 * n * sizeof(float), "the RoPE cos/sin tables");
    if (!m->rope_block) {
        free(host);
        return GRPO_ERR_NOMEM;
    }
    float *inv_freq = host + 2 * n;
    rope_inv_freq(c, inv_freq);
    float attention_factor = (float)hf_config_v3_rope_attention_factor(c);
    for (int p = 0; p < c->max_position_embeddings; p++)
        for (size_t i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i];
            host[(size_t)p * half + i] = (float)cos((double)angle) * attention_factor;
            host[n + (size_t)p * half + i] = (float)sin((double)angle) * attention_factor;
        }
    m->be->to_device(m->be, m->rope_block, host, 2 * n * sizeof(float));
    free(host);
    m->rope_cos = m->rope_block;
    m->rope_sin = m->rope_block + n;
    return GRPO_OK;
}

/* ---- creation ---- */

static void make_layer_configs(deepseek_v3_model *m) {
    const deepseek_v3_config *c = &m->cfg;
    mla_config *a = &m->mla_cfg;
    a->hidden_size = c->hidden_size;
    a->num_heads = c->num_attention_heads;
    a->q_lora_rank = c->q_lora_rank;
    a->kv_lora_rank = c->kv_lora_rank;
    a->qk_nope_head_dim = c->qk_nope_head_dim;
    a->qk_rope_head_dim = c->qk_rope_head_dim;
    a->v_head_dim = c->v_head_dim;
    a->rms_norm_eps = (float)c->rms_norm_eps;
    a->softmax_scale = (float)hf_config_v3_softmax_scale(c);
    moe_config *e = &m->moe_cfg;
    e->hidden_size = c->hidden_size;
    e->moe_intermediate_size = c->moe_intermediate_size;
    e->n_routed_experts = c->n_routed_experts;
    e->n_shared_experts = c->n_shared_experts;
    e->num_experts_per_tok = c->num_experts_per_tok;
    e->n_group = c->n_group;
    e->topk_group = c->topk_group;
    e->norm_topk_prob = c->norm_topk_prob;
    e->routed_scaling_factor = (float)c->routed_scaling_factor;
    e->scoring_func = c->scoring_func == HF_SCORING_SIGMOID ? MOE_SCORING_SIGMOID : MOE_SCORING_SOFTMAX;
    e->group_score_top2 = c->topk_method == HF_TOPK_NOAUX_TC;
    e->seq_aux_alpha = m->seq_aux_alpha;
}

grpo_status deepseek_v3_create(backend *be, const deepseek_v3_config *cfg, deepseek_v3_model **out) {
    *out = NULL;
    GRPO_TRY(hf_config_v3_validate(cfg, "deepseek_v3 config"));
    const void *ops[] = {be->matmul, be->axpy, be->embedding_forward, be->embedding_backward, be->rmsnorm_forward,
                         be->rmsnorm_backward, be->swiglu_forward, be->swiglu_backward, be->token_logprobs_forward,
                         be->token_logprobs_backward};
    const char *names[] = {"matmul", "axpy", "embedding_forward", "embedding_backward", "rmsnorm_forward",
                           "rmsnorm_backward", "swiglu_forward", "swiglu_backward", "token_logprobs_forward",
                           "token_logprobs_backward"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) GRPO_TRY(backend_require(be, ops[i], names[i]));

    deepseek_v3_model *m = calloc(1, sizeof *m);
    if (!m) return grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a deepseek_v3 model");
    m->be = be;
    m->cfg = *cfg;
    m->n_blocks = cfg->num_hidden_layers + cfg->num_nextn_predict_layers;
    int NB = m->n_blocks, D = cfg->num_nextn_predict_layers, E = cfg->n_routed_experts;
    make_layer_configs(m);
    param_set_init(&m->params, be);
    m->views = calloc((size_t)NB, sizeof *m->views);
    m->mtp_views = calloc((size_t)D + 1, sizeof *m->mtp_views);
    m->weights = calloc((size_t)NB, sizeof *m->weights);
    m->grads = calloc((size_t)NB, sizeof *m->grads);
    m->acts = calloc((size_t)NB, sizeof *m->acts);
    m->mtp = calloc((size_t)D + 1, sizeof *m->mtp);
    m->moe_block = calloc((size_t)NB, sizeof *m->moe_block);
    m->moe = calloc((size_t)NB, sizeof *m->moe);
    grpo_status s = GRPO_OK;
    if (!m->views || !m->mtp_views || !m->weights || !m->grads || !m->acts || !m->mtp || !m->moe_block || !m->moe)
        s = grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a deepseek_v3 model");
    if (s == GRPO_OK) {
        declare_params(m);
        m->expert_ptrs = calloc((size_t)m->n_moe * 6 * E + 1, sizeof *m->expert_ptrs);
        if (!m->expert_ptrs) s = grpo_fail(GRPO_ERR_NOMEM, "out of memory creating a deepseek_v3 model");
        else if (!(m->zero_bias = backend_alloc(be, (size_t)E * sizeof(float), "the zero routing bias"))) s = GRPO_ERR_NOMEM;
    }
    if (s == GRPO_OK) s = param_set_alloc(&m->params);
    if (s == GRPO_OK) s = make_rope_tables(m);
    if (s != GRPO_OK) {
        deepseek_v3_free(m);
        return s;
    }
    resolve(m, m->weights, 0);
    *out = m;
    return GRPO_OK;
}

static void free_activations(deepseek_v3_model *m) {
    m->be->free(m->be, m->act_block);
    m->act_block = NULL;
    for (int i = 0; i < m->n_moe; i++) {
        moe_layer_free(m->moe[i]);
        m->moe[i] = NULL;
    }
    m->be->free(m->be, m->moe_shared);
    m->moe_shared = NULL;
    free(m->loads_saved);
    m->loads_saved = NULL;
    free(m->host_i32);
    free(m->host_f32);
    m->host_i32 = NULL;
    m->host_f32 = NULL;
    m->capacity = 0;
    m->last_B = m->last_T = 0;
    m->mtp_pending = 0;
    m->reserved_B = m->reserved_T = 0;
    m->act_bytes = 0;
    m->live_block = -1;
}

void deepseek_v3_free(deepseek_v3_model *m) {
    if (!m) return;
    if (m->moe) free_activations(m);
    m->be->free(m->be, m->rope_block);
    m->be->free(m->be, m->zero_bias);
    param_set_deinit(&m->params);
    free(m->views);
    free(m->mtp_views);
    free(m->weights);
    free(m->grads);
    free(m->acts);
    free(m->mtp);
    free(m->moe_block);
    free(m->moe);
    free(m->expert_ptrs);
    free(m);
}

const deepseek_v3_config *deepseek_v3_get_config(const deepseek_v3_model *m) { return &m->cfg; }
param_set *deepseek_v3_params(deepseek_v3_model *m) { return &m->params; }
const mla_config *deepseek_v3_mla_config(const deepseek_v3_model *m) { return &m->mla_cfg; }
const moe_config *deepseek_v3_moe_config(const deepseek_v3_model *m) { return &m->moe_cfg; }

void deepseek_v3_rope_tables(const deepseek_v3_model *m, const float **cos, const float **sin) {
    *cos = m->rope_cos;
    *sin = m->rope_sin;
}

const mla_weights *deepseek_v3_layer_attention(const deepseek_v3_model *m, int layer) {
    GRPO_ASSERT(layer >= 0 && layer < m->n_blocks);
    return &m->weights[layer].attn;
}

float *dsv3_lm_head(const deepseek_v3_model *m) {
    return param_ptr(&m->params, m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view);
}

void deepseek_v3_init_random(deepseek_v3_model *m, uint64_t seed) {
    param_set_init_normal(&m->params, seed, (float)m->cfg.initializer_range);
    /* the routing bias starts at 0 (transformers' _init_weights) */
    for (int b = 0; b < m->n_blocks; b++)
        if (m->views[b].e_score_correction_bias >= 0)
            m->be->zero(m->be, param_ptr(&m->params, m->views[b].e_score_correction_bias),
                        (size_t)m->cfg.n_routed_experts * sizeof(float));
}

/* ---- the activation block ---- */

typedef struct {
    float *base;
    size_t used;   /* floats */
} carver;

static float *carve(carver *cv, size_t floats) {
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (floats + DSV3_ALIGN_FLOATS - 1) / DSV3_ALIGN_FLOATS * DSV3_ALIGN_FLOATS;
    return p;
}

/* Every block's activations; with recompute, every block's input x but one set of the
 * other views, shared by all blocks (with the dense MLP's views when any block has one). */
static void carve_all(deepseek_v3_model *m, carver *cv, int B, int T, int recompute) {
    const deepseek_v3_config *c = &m->cfg;
    size_t N = (size_t)B * T, D = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int any_dense = 0;
    for (int b = 0; b < m->n_blocks; b++) any_dense |= !deepseek_v3_layer_is_moe(c, b);
    for (int b = 0; b < m->n_blocks; b++) {
        dsv3_block_acts *a = &m->acts[b];
        float *x = carve(cv, N * D);
        if (recompute && b > 0) {
            *a = m->acts[0];
            a->x = x;
            continue;
        }
        a->x = x;
        a->rstd1 = carve(cv, N);
        a->xn1 = carve(cv, N * D);
        a->mla = carve(cv, mla_activation_floats(&m->mla_cfg, B, T));
        a->xmid = carve(cv, N * D);
        a->rstd2 = carve(cv, N);
        a->xn2 = carve(cv, N * D);
        if (recompute ? any_dense : !deepseek_v3_layer_is_moe(c, b)) {
            a->gate = carve(cv, N * I);
            a->up = carve(cv, N * I);
            a->act = carve(cv, N * I);
        } else {
            a->gate = a->up = a->act = NULL;
        }
    }
    for (int k = 0; k < c->num_nextn_predict_layers; k++) {
        dsv3_mtp_acts *t = &m->mtp[k];
        t->ids = (int32_t *)carve(cv, N);   /* int32 and float are both 4 bytes */
        t->targets = (int32_t *)carve(cv, N);
        t->emb = carve(cv, N * D);
        t->rstd_e = carve(cv, N);
        t->en = carve(cv, N * D);
        t->rstd_h = carve(cv, N);
        t->hn = carve(cv, N * D);
        t->out = carve(cv, N * D);
        t->rstd_o = carve(cv, N);
        t->xo = carve(cv, N * D);
        t->logits = carve(cv, N * V);
        t->lse = carve(cv, N);
        t->logprobs = carve(cv, N);
        t->dlogprobs = carve(cv, N);
    }
    m->x_final = carve(cv, N * D);
    m->rstd_final = carve(cv, N);
    m->xn_final = carve(cv, N * D);
    m->logits = carve(cv, N * V);
    m->ids = (int32_t *)carve(cv, N);
    m->positions = (int32_t *)carve(cv, N);
    dsv3_grad_acts *g = &m->g;
    g->dres = carve(cv, N * D);
    g->dxn = carve(cv, N * D);
    g->dtmp = carve(cv, N * D);
    g->dcarry = carve(cv, N * D);
    g->dact = carve(cv, N * I);
    g->dgate = carve(cv, N * I);
    g->dup = carve(cv, N * I);
    g->mla = carve(cv, mla_scratch_floats(&m->mla_cfg, B, T));
}

size_t deepseek_v3_activation_bytes(const deepseek_v3_config *cfg, int B, int T, int recompute) {
    deepseek_v3_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    tmp.n_blocks = cfg->num_hidden_layers + cfg->num_nextn_predict_layers;
    make_layer_configs(&tmp);
    tmp.acts = calloc((size_t)tmp.n_blocks, sizeof *tmp.acts);
    tmp.mtp = calloc((size_t)cfg->num_nextn_predict_layers + 1, sizeof *tmp.mtp);
    size_t bytes = 0;
    if (tmp.acts && tmp.mtp) {
        carver cv = {NULL, 0};
        carve_all(&tmp, &cv, B, T, recompute);
        int n_moe = 0;
        for (int b = 0; b < tmp.n_blocks; b++) n_moe += deepseek_v3_layer_is_moe(cfg, b);
        size_t moe_layers = recompute ? (n_moe > 0) : (size_t)n_moe;   /* recompute: one shared block */
        bytes = cv.used * sizeof(float) + moe_layers * moe_layer_device_bytes(&tmp.moe_cfg, B * T);
    }
    free(tmp.acts);
    free(tmp.mtp);
    return bytes;
}

grpo_status deepseek_v3_reserve(deepseek_v3_model *m, int B, int T) {
    if (B < 1 || T < 1)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_reserve: batch [%d, %d] must be positive", B, T);
    if (T > m->cfg.max_position_embeddings)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_reserve: T (%d) exceeds max_position_embeddings (%d)", T,
                         m->cfg.max_position_embeddings);
    if ((int64_t)B * T * m->cfg.num_experts_per_tok > INT32_MAX / 2 ||
        (int64_t)B * T * m->cfg.vocab_size > INT32_MAX * (int64_t)64)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_reserve: batch [%d, %d] is too large", B, T);
    free_activations(m);
    size_t N = (size_t)B * T;
    carver cv = {NULL, 0};
    carve_all(m, &cv, B, T, m->recompute);
    m->host_i32 = malloc(2 * N * sizeof(int32_t));
    m->host_f32 = malloc(N * sizeof(float));
    grpo_status s = GRPO_OK;
    char what[128];
    snprintf(what, sizeof what, "deepseek_v3 activations for %d x %d tokens (%s)", B, T,
             m->recompute ? "training, recompute" : "training");
    if (!m->host_i32 || !m->host_f32)
        s = grpo_fail(GRPO_ERR_NOMEM, "cannot allocate host scratch for %zu tokens", N);
    else if (!(m->act_block = backend_alloc(m->be, cv.used * sizeof(float), what)))
        s = GRPO_ERR_NOMEM;   /* backend_alloc's message names the block and the pool's state */
    m->moe_cfg.seq_aux_alpha = m->seq_aux_alpha;
    size_t moe_bytes = m->n_moe > 0 ? moe_layer_device_bytes(&m->moe_cfg, (int)N) : 0;
    if (m->recompute && m->n_moe > 0 && s == GRPO_OK) {
        /* one block for every MoE layer: each one's forward runs again before its backward */
        snprintf(what, sizeof what, "MoE activations shared by %d layers for %zu tokens (recompute)", m->n_moe, N);
        m->loads_saved = malloc((size_t)m->moe_cfg.n_routed_experts * sizeof *m->loads_saved);
        if (!m->loads_saved) s = grpo_fail(GRPO_ERR_NOMEM, "out of host memory for the MoE loads");
        else if (!(m->moe_shared = backend_alloc(m->be, moe_bytes, what))) s = GRPO_ERR_NOMEM;
    }
    for (int i = 0; i < m->n_moe && s == GRPO_OK; i++)
        s = m->moe_shared ? moe_layer_create_over(m->be, &m->moe_cfg, (int)N, m->moe_shared, &m->moe[i])
                          : moe_layer_create(m->be, &m->moe_cfg, (int)N, &m->moe[i]);
    if (s != GRPO_OK) {
        free_activations(m);
        return s;
    }
    cv.base = m->act_block;
    cv.used = 0;
    carve_all(m, &cv, B, T, m->recompute);
    m->capacity = (int)N;
    m->reserved_B = B;
    m->reserved_T = T;
    m->act_bytes = cv.used * sizeof(float) + (m->moe_shared ? 1 : (size_t)m->n_moe) * moe_bytes;
    m->live_block = -1;
    m->moe_live = -1;
    return GRPO_OK;
}

grpo_status deepseek_v3_set_recompute(deepseek_v3_model *m, int on) {
    on = on != 0;
    if (on == m->recompute) return GRPO_OK;
    m->recompute = on;
    if (m->capacity > 0) return deepseek_v3_reserve(m, m->reserved_B, m->reserved_T);
    return GRPO_OK;
}

size_t deepseek_v3_activation_block_bytes(const deepseek_v3_model *m) { return m->act_bytes; }

/* ---- balancing ---- */

void deepseek_v3_update_bias(deepseek_v3_model *m, float gamma) {
    for (int i = 0; i < m->n_moe; i++) {
        if (!m->moe[i]) continue;
        dsv3_block_weights *w = &m->weights[m->moe_block[i]];
        moe_update_bias(m->moe[i], &w->moe, gamma);
    }
}

int deepseek_v3_num_moe_layers(const deepseek_v3_model *m) { return m->n_moe; }

int deepseek_v3_moe_layer_index(const deepseek_v3_model *m, int i) {
    GRPO_ASSERT(i >= 0 && i < m->n_moe);
    return m->moe_block[i];
}

int64_t *deepseek_v3_moe_loads(deepseek_v3_model *m, int i, int *n_experts) {
    GRPO_ASSERT(i >= 0 && i < m->n_moe);
    *n_experts = 0;
    if (!m->moe[i]) return NULL;
    *n_experts = m->moe[i]->cfg.n_routed_experts;
    return m->moe[i]->load_accum;
}

const moe_stats *deepseek_v3_moe_stats(const deepseek_v3_model *m, int i) {
    GRPO_ASSERT(i >= 0 && i < m->n_moe);
    GRPO_ASSERTF(m->moe[i] != NULL, "deepseek_v3_moe_stats before deepseek_v3_reserve");
    return moe_get_stats(m->moe[i]);
}

double deepseek_v3_max_violation(const deepseek_v3_model *m) {
    double worst = 0;
    for (int i = 0; i < m->n_moe; i++)
        if (m->moe[i] && m->moe_block[i] < m->cfg.num_hidden_layers) {
            double v = moe_get_stats(m->moe[i])->max_violation;
            if (v > worst) worst = v;
        }
    return worst;
}

void deepseek_v3_set_seq_aux_alpha(deepseek_v3_model *m, float alpha) { m->seq_aux_alpha = alpha; }

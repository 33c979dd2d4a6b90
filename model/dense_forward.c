/* The dense model's forward pass (transformers' Qwen2ForCausalLM / LlamaForCausalLM),
 * saving in the activation block what dense_backward needs. Every Linear is one matmul
 * y = x W^T on the backend; residual adds fold into the matmul's beta = 1. */
#include "model/dense_impl.h"

#include <math.h>

/* y[N, out] = x[N, in] W^T (+ bias); W: [out, in]. beta = 1 adds into y (the residual).
 * lin: the precision of the product (model/linear.h); NULL keeps float32 (the head). */
static void proj(linear *lin, backend *be, float *y, const float *x, const float *W, const float *bias, int N, int in,
                 int out, float beta) {
    linear_forward(lin, be, y, out, x, in, W, N, in, out, beta);
    if (bias) be->add_bias(be, y, bias, N, out);
}

/* Positions 0..T-1 in every row, written to backend memory. */
static void default_positions(dense_model *m, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) m->positions_host[(size_t)b * T + t] = t;
    m->be->to_device(m->be, m->positions, m->positions_host, (size_t)B * T * sizeof(int32_t));
}

/* One decoder layer: x (= a->x) -> out [N, D] (the next layer's input). */
void dense_layer_forward(dense_model *m, int l, float *out, int B, int T) {
    backend *be = m->be;
    linear *lin = m->params.compute;   /* the projections' precision */
    const dense_config *c = &m->cfg;
    const dense_layer_weights *w = &m->weights[l];
    dense_layer_acts *a = &m->acts[l];
    int N = B * T, D = c->hidden_size, I = c->intermediate_size, Dh = c->head_dim;
    int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, QD = Hq * Dh, KD = Hkv * Dh;
    float eps = (float)c->rms_norm_eps;

    /* attention block: xmid = x + o_proj(attention(rope(q), rope(k), v)) */
    be->rmsnorm_forward(be, a->xn1, a->rstd1, a->x, w->input_layernorm, N, D, eps);
    proj(lin, be, a->q, a->xn1, w->q_proj, w->q_bias, N, D, QD, 0.0f);
    proj(lin, be, a->k, a->xn1, w->k_proj, w->k_bias, N, D, KD, 0.0f);
    proj(lin, be, a->v, a->xn1, w->v_proj, w->v_bias, N, D, KD, 0.0f);
    be->rope(be, a->q, N, Hq, Dh, Dh, m->positions, m->rope_cos, m->rope_sin, 0, 0);
    be->rope(be, a->k, N, Hkv, Dh, Dh, m->positions, m->rope_cos, m->rope_sin, 0, 0);
    /* scaled dot-product with scale head_dim^-0.5 (Qwen2Attention.scaling) */
    be->attention_forward(be, a->att, a->lse, a->q, a->k, a->v, B, T, Hq, Hkv, Dh, Dh, 1.0f / sqrtf((float)Dh));
    be->copy(be, a->xmid, a->x, (size_t)N * D * sizeof(float));
    proj(lin, be, a->xmid, a->att, w->o_proj, w->o_bias, N, QD, D, 1.0f);

    /* MLP block: out = xmid + down_proj(silu(gate_proj(n2)) * up_proj(n2)) */
    be->rmsnorm_forward(be, a->xn2, a->rstd2, a->xmid, w->post_attention_layernorm, N, D, eps);
    proj(lin, be, a->gate, a->xn2, w->gate_proj, NULL, N, D, I, 0.0f);
    proj(lin, be, a->up, a->xn2, w->up_proj, NULL, N, D, I, 0.0f);
    be->swiglu_forward(be, a->act, a->gate, a->up, (size_t)N * I);
    be->copy(be, out, a->xmid, (size_t)N * D * sizeof(float));
    proj(lin, be, out, a->act, w->down_proj, NULL, N, I, D, 1.0f);
}

grpo_status dense_forward(dense_model *m, const int32_t *ids, const int32_t *positions, int B, int T,
                          float **logits) {
    const dense_config *c = &m->cfg;
    if (B < 1 || T < 1) return grpo_fail(GRPO_ERR_INVALID, "dense_forward: batch [%d, %d] must be positive", B, T);
    if (m->capacity == 0)
        return grpo_fail(GRPO_ERR_INVALID, "dense_forward: no activations reserved (call dense_reserve first)");
    if ((int64_t)B * T > m->capacity)
        return grpo_fail(GRPO_ERR_INVALID, "dense_forward: batch [%d, %d] = %lld tokens exceeds the %d reserved", B, T,
                         (long long)B * T, m->capacity);
    if (!positions && T > c->max_position_embeddings)
        return grpo_fail(GRPO_ERR_INVALID, "dense_forward: T (%d) exceeds max_position_embeddings (%d)", T,
                         c->max_position_embeddings);
    backend *be = m->be;
    int N = B * T, D = c->hidden_size, L = c->num_hidden_layers;

    be->copy(be, m->ids, ids, (size_t)N * sizeof(int32_t));
    if (positions) be->copy(be, m->positions, positions, (size_t)N * sizeof(int32_t));
    else default_positions(m, B, T);

    be->embedding_forward(be, m->acts[0].x, m->ids, dense_model_embed_tokens(m), N, D);
    for (int l = 0; l < L; l++) dense_layer_forward(m, l, l + 1 < L ? m->acts[l + 1].x : m->x_final, B, T);
    be->rmsnorm_forward(be, m->xn_final, m->rstd_final, m->x_final, dense_model_final_norm(m), N, D,
                        (float)c->rms_norm_eps);
    proj(NULL, be, m->logits, m->xn_final, dense_model_lm_head(m), NULL, N, D, c->vocab_size, 0.0f);
    m->last_B = B;
    m->last_T = T;
    *logits = m->logits;
    return GRPO_OK;
}

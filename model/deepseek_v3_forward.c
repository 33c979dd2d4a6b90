/* The DeepSeek-V3 model's forward and backward passes (transformers'
 * DeepseekV3ForCausalLM): embedding, blocks of MLA + (dense MLP | DeepSeekMoE) with
 * pre-norm residuals, final norm and head; the backward runs them in reverse over the
 * saved activations, after the MTP modules' backward when their loss was taken. */
#include "model/deepseek_v3_impl.h"

#include <string.h>

#include "model/moe_impl.h"

/* y[N, out] = x[N, in] W^T; W: [out, in]. beta = 1 adds into y (the residual). */
void dsv3_linear(backend *be, float *y, const float *x, const float *W, int N, int in, int out, float beta) {
    be->matmul(be, 0, 1, N, out, in, 1.0f, x, in, W, in, beta, y, out);
}

/* The same at the model's projection precision (model/linear.h): the dense MLP blocks. */
static void proj(deepseek_v3_model *m, float *y, const float *x, const float *W, int N, int in, int out, float beta) {
    linear_forward(m->params.compute, m->be, y, out, x, in, W, N, in, out, beta);
}

/* Backward of y = x W^T: dx[N, in] = dy W (beta = 0 writes, 1 adds); dW[out, in] += dy^T x. */
void dsv3_linear_backward(backend *be, float *dx, float dx_beta, float *dW, const float *dy, const float *x,
                          const float *W, int N, int in, int out) {
    if (dx) be->matmul(be, 0, 0, N, in, out, 1.0f, dy, out, W, in, dx_beta, dx, in);
    be->matmul(be, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

static void proj_backward(deepseek_v3_model *m, float *dx, float dx_beta, float *dW, const float *dy, const float *x,
                          const float *W, int N, int in, int out) {
    linear_backward(m->params.compute, m->be, dx, dx_beta, dW, dy, x, W, N, in, out);
}

/* Block b's forward. recompute (before its backward): `out` is scratch, a dense MLP's down
 * projection is skipped (its backward does not read it), and a MoE layer runs again only
 * when the shared MoE block holds another layer's activations, its loads restored after
 * (they count each forward once). */
static grpo_status block_forward(deepseek_v3_model *m, int b, float *out, int B, int T, int recompute) {
    backend *be = m->be;
    const deepseek_v3_config *c = &m->cfg;
    const dsv3_block_weights *w = &m->weights[b];
    const dsv3_block_views *v = &m->views[b];
    dsv3_block_acts *a = &m->acts[b];
    int N = B * T, D = c->hidden_size, I = c->intermediate_size;
    float eps = (float)c->rms_norm_eps;

    /* attention: xmid = x + mla(input_layernorm(x)) */
    be->rmsnorm_forward(be, a->xn1, a->rstd1, a->x, w->input_layernorm, N, D, eps);
    GRPO_TRY(mla_forward(be, &m->mla_cfg, &w->attn, a->mla, a->xn1, m->positions, m->rope_cos, m->rope_sin, B, T,
                         a->xmid));
    be->axpy(be, a->xmid, 1.0f, a->x, (size_t)N * D);

    /* MLP: out = xmid + mlp(post_attention_layernorm(xmid)) */
    be->rmsnorm_forward(be, a->xn2, a->rstd2, a->xmid, w->post_attention_layernorm, N, D, eps);
    if (v->moe < 0) {
        proj(m, a->gate, a->xn2, w->gate_proj, N, D, I, 0.0f);
        proj(m, a->up, a->xn2, w->up_proj, N, D, I, 0.0f);
        be->swiglu_forward(be, a->act, a->gate, a->up, (size_t)N * I);
        if (recompute) return GRPO_OK;
        be->copy(be, out, a->xmid, (size_t)N * D * sizeof(float));
        proj(m, out, a->act, w->down_proj, N, I, D, 1.0f);
    } else if (!recompute) {
        GRPO_TRY(moe_forward(m->moe[v->moe], &w->moe, a->xn2, B, T, out));
        be->axpy(be, out, 1.0f, a->xmid, (size_t)N * D);
        m->moe_live = v->moe;
    } else if (m->moe_shared && m->moe_live != v->moe) {
        moe_layer *l = m->moe[v->moe];
        size_t E = (size_t)m->moe_cfg.n_routed_experts;
        memcpy(m->loads_saved, l->load_accum, E * sizeof *m->loads_saved);
        GRPO_TRY(moe_forward(l, &w->moe, a->xn2, B, T, out));
        memcpy(l->load_accum, m->loads_saved, E * sizeof *m->loads_saved);
        m->moe_live = v->moe;
    }
    return GRPO_OK;
}

grpo_status dsv3_block_forward(deepseek_v3_model *m, int b, float *out, int B, int T) {
    m->live_block = b;
    return block_forward(m, b, out, B, T, 0);
}

grpo_status dsv3_block_backward(deepseek_v3_model *m, int b, int B, int T) {
    backend *be = m->be;
    const deepseek_v3_config *c = &m->cfg;
    const dsv3_block_weights *w = &m->weights[b];
    dsv3_block_weights *gw = &m->grads[b];
    const dsv3_block_views *v = &m->views[b];
    const dsv3_block_acts *a = &m->acts[b];
    const dsv3_grad_acts *g = &m->g;
    int N = B * T, D = c->hidden_size, I = c->intermediate_size;

    /* recomputation: the block's activations again from its saved input (unless the shared
     * views still hold them: the last block forwarded) */
    if (m->recompute && m->live_block != b) {
        GRPO_TRY(block_forward(m, b, g->dtmp, B, T, 1));   /* dtmp: written before read below */
        m->live_block = b;
    }

    /* MLP: out = xmid + mlp(xn2) */
    if (v->moe < 0) {
        proj_backward(m, g->dact, 0.0f, gw->down_proj, g->dres, a->act, w->down_proj, N, I, D);
        be->swiglu_backward(be, g->dgate, g->dup, g->dact, a->gate, a->up, (size_t)N * I);
        proj_backward(m, g->dxn, 0.0f, gw->gate_proj, g->dgate, a->xn2, w->gate_proj, N, D, I);
        proj_backward(m, g->dxn, 1.0f, gw->up_proj, g->dup, a->xn2, w->up_proj, N, D, I);
    } else {
        GRPO_TRY(moe_backward(m->moe[v->moe], &w->moe, &gw->moe, a->xn2, g->dres, g->dxn));
    }
    be->rmsnorm_backward(be, g->dtmp, gw->post_attention_layernorm, g->dxn, a->xmid, w->post_attention_layernorm,
                         a->rstd2, N, D);
    be->axpy(be, g->dres, 1.0f, g->dtmp, (size_t)N * D);   /* dres = d xmid */

    /* attention: xmid = x + mla(xn1) */
    GRPO_TRY(mla_backward(be, &m->mla_cfg, &w->attn, &gw->attn, a->mla, g->mla, a->xn1, m->positions, m->rope_cos,
                          m->rope_sin, g->dres, B, T, g->dxn));
    be->rmsnorm_backward(be, g->dtmp, gw->input_layernorm, g->dxn, a->x, w->input_layernorm, a->rstd1, N, D);
    be->axpy(be, g->dres, 1.0f, g->dtmp, (size_t)N * D);   /* dres = d x */
    return GRPO_OK;
}

/* Positions 0..T-1 in every row, written to backend memory. */
static void default_positions(deepseek_v3_model *m, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) m->host_i32[(size_t)b * T + t] = t;
    m->be->to_device(m->be, m->positions, m->host_i32, (size_t)B * T * sizeof(int32_t));
}

grpo_status deepseek_v3_forward(deepseek_v3_model *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                float **logits) {
    const deepseek_v3_config *c = &m->cfg;
    if (B < 1 || T < 1)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_forward: batch [%d, %d] must be positive", B, T);
    if (m->capacity == 0)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_forward: no activations reserved (call deepseek_v3_reserve)");
    if ((int64_t)B * T > m->capacity)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_forward: batch [%d, %d] = %lld tokens exceeds the %d reserved",
                         B, T, (long long)B * T, m->capacity);
    if (!positions && T > c->max_position_embeddings)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_forward: T (%d) exceeds max_position_embeddings (%d)", T,
                         c->max_position_embeddings);
    backend *be = m->be;
    int N = B * T, D = c->hidden_size, L = c->num_hidden_layers;
    m->last_B = m->last_T = 0;
    m->mtp_pending = 0;

    be->copy(be, m->ids, ids, (size_t)N * sizeof(int32_t));
    if (positions) be->copy(be, m->positions, positions, (size_t)N * sizeof(int32_t));
    else default_positions(m, B, T);

    be->embedding_forward(be, m->acts[0].x, m->ids, param_ptr(&m->params, m->embed_view), N, D);
    for (int l = 0; l < L; l++) GRPO_TRY(dsv3_block_forward(m, l, l + 1 < L ? m->acts[l + 1].x : m->x_final, B, T));
    be->rmsnorm_forward(be, m->xn_final, m->rstd_final, m->x_final, param_ptr(&m->params, m->norm_view), N, D,
                        (float)c->rms_norm_eps);
    dsv3_linear(be, m->logits, m->xn_final, dsv3_lm_head(m), N, D, c->vocab_size, 0.0f);
    m->last_B = B;
    m->last_T = T;
    *logits = m->logits;
    return GRPO_OK;
}

grpo_status deepseek_v3_backward(deepseek_v3_model *m, const float *dlogits) {
    const deepseek_v3_config *c = &m->cfg;
    param_set *ps = &m->params;
    if (m->last_B == 0) return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_backward: no forward pass to differentiate");
    if (!ps->grad)
        return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_backward: gradients are not allocated "
                         "(param_set_alloc_grad(deepseek_v3_params(m)))");
    dsv3_resolve_grads(m);
    backend *be = m->be;
    const dsv3_grad_acts *g = &m->g;
    int B = m->last_B, T = m->last_T, N = B * T, D = c->hidden_size, V = c->vocab_size;
    int head_grad_view = m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view;

    /* MTP first: it leaves d h^0 (= d xn_final) in g->dcarry */
    int with_mtp = m->mtp_pending;
    if (with_mtp) GRPO_TRY(dsv3_mtp_backward(m));
    m->mtp_pending = 0;

    /* logits = xn_final lm_head^T; then model.norm */
    dsv3_linear_backward(be, g->dxn, 0.0f, param_grad_ptr(ps, head_grad_view), dlogits, m->xn_final, dsv3_lm_head(m),
                         N, D, V);
    if (with_mtp) be->axpy(be, g->dxn, 1.0f, g->dcarry, (size_t)N * D);
    be->rmsnorm_backward(be, g->dres, param_grad_ptr(ps, m->norm_view), g->dxn, m->x_final,
                         param_ptr(ps, m->norm_view), m->rstd_final, N, D);
    for (int l = c->num_hidden_layers - 1; l >= 0; l--) GRPO_TRY(dsv3_block_backward(m, l, B, T));
    be->embedding_backward(be, param_grad_ptr(ps, m->embed_view), m->ids, g->dres, N, D);
    return GRPO_OK;
}

/* The dense model's backward pass: the forward of dense_forward.c run in reverse over the
 * saved activations. Weight gradients accumulate (matmul beta = 1, the ops' dw +=);
 * activation gradients live in the reused scratch views of m->grads. */
#include "model/dense_impl.h"

#include <math.h>

/* Backward of y[N, out] = x[N, in] W^T + bias:
 *   dx[N, in] = dy W (beta = 0 writes, beta = 1 adds), dW[out, in] += dy^T x, dbias += sum_rows dy. */
/* lin: the precision of both products (model/linear.h); NULL keeps float32 (the head). */
static void proj_backward(linear *lin, backend *be, float *dx, float dx_beta, float *dW, float *dbias, const float *dy,
                          const float *x, const float *W, int N, int in, int out) {
    linear_backward(lin, be, dx, dx_beta, dW, dy, x, W, N, in, out);
    if (dbias) be->bias_backward(be, dbias, dy, N, out);
}

static float *grad_or_null(const param_set *ps, int view) { return view >= 0 ? param_grad_ptr(ps, view) : NULL; }

/* On entry g->dres holds d(out of layer l); on exit d(x of layer l). */
static void layer_backward(dense_model *m, int l, int B, int T) {
    backend *be = m->be;
    linear *lin = m->params.compute;   /* the projections' precision */
    const dense_config *c = &m->cfg;
    const param_set *ps = &m->params;
    const dense_layer_views *v = &m->views[l];
    const dense_layer_weights *w = &m->weights[l];
    const dense_layer_acts *a = &m->acts[l];
    const dense_grad_acts *g = &m->grads;
    int N = B * T, D = c->hidden_size, I = c->intermediate_size, Dh = c->head_dim;
    int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, QD = Hq * Dh, KD = Hkv * Dh;

    /* MLP block: out = xmid + down(act), act = silu(gate) * up, gate/up = xn2 W^T */
    proj_backward(lin, be, g->dact, 0.0f, param_grad_ptr(ps, v->down_proj), NULL, g->dres, a->act, w->down_proj, N, I,
                    D);
    be->swiglu_backward(be, g->dgate, g->dup, g->dact, a->gate, a->up, (size_t)N * I);
    proj_backward(lin, be, g->dxn, 0.0f, param_grad_ptr(ps, v->gate_proj), NULL, g->dgate, a->xn2, w->gate_proj, N, D,
                    I);
    proj_backward(lin, be, g->dxn, 1.0f, param_grad_ptr(ps, v->up_proj), NULL, g->dup, a->xn2, w->up_proj, N, D, I);
    be->rmsnorm_backward(be, g->dtmp, param_grad_ptr(ps, v->post_attention_layernorm), g->dxn, a->xmid,
                         w->post_attention_layernorm, a->rstd2, N, D);
    be->axpy(be, g->dres, 1.0f, g->dtmp, (size_t)N * D);   /* dres = d xmid */

    /* attention block: xmid = x + o_proj(att) */
    proj_backward(lin, be, g->datt, 0.0f, param_grad_ptr(ps, v->o_proj), grad_or_null(ps, v->o_bias), g->dres, a->att,
                    w->o_proj, N, QD, D);
    be->attention_backward(be, g->dq, g->dk, g->dv, g->datt, a->q, a->k, a->v, a->att, a->lse, B, T, Hq, Hkv, Dh, Dh,
                           1.0f / sqrtf((float)Dh));
    /* RoPE is a rotation: its backward rotates the gradient back by -angle. */
    be->rope(be, g->dq, N, Hq, Dh, Dh, m->positions, m->rope_cos, m->rope_sin, 0, 1);
    be->rope(be, g->dk, N, Hkv, Dh, Dh, m->positions, m->rope_cos, m->rope_sin, 0, 1);
    proj_backward(lin, be, g->dxn, 0.0f, param_grad_ptr(ps, v->q_proj), grad_or_null(ps, v->q_bias), g->dq, a->xn1,
                    w->q_proj, N, D, QD);
    proj_backward(lin, be, g->dxn, 1.0f, param_grad_ptr(ps, v->k_proj), grad_or_null(ps, v->k_bias), g->dk, a->xn1,
                    w->k_proj, N, D, KD);
    proj_backward(lin, be, g->dxn, 1.0f, param_grad_ptr(ps, v->v_proj), grad_or_null(ps, v->v_bias), g->dv, a->xn1,
                    w->v_proj, N, D, KD);
    be->rmsnorm_backward(be, g->dtmp, param_grad_ptr(ps, v->input_layernorm), g->dxn, a->x, w->input_layernorm,
                         a->rstd1, N, D);
    be->axpy(be, g->dres, 1.0f, g->dtmp, (size_t)N * D);   /* dres = d x */
}

grpo_status dense_backward(dense_model *m, const float *dlogits) {
    const dense_config *c = &m->cfg;
    param_set *ps = &m->params;
    if (m->inference_only)
        return grpo_fail(GRPO_ERR_INVALID, "dense_backward: activations were reserved for inference only "
                         "(dense_reserve_inference); use dense_reserve");
    if (m->last_B == 0) return grpo_fail(GRPO_ERR_INVALID, "dense_backward: no forward pass to differentiate");
    if (!ps->grad)
        return grpo_fail(GRPO_ERR_INVALID, "dense_backward: gradients are not allocated "
                         "(param_set_alloc_grad(dense_model_params(m)))");
    backend *be = m->be;
    const dense_grad_acts *g = &m->grads;
    int B = m->last_B, T = m->last_T, N = B * T, D = c->hidden_size, V = c->vocab_size;
    int lm_head_grad_view = m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view;   /* tied: into the embedding */

    /* logits = xn_final lm_head^T; then model.norm */
    proj_backward(NULL, be, g->dxn, 0.0f, param_grad_ptr(ps, lm_head_grad_view), NULL, dlogits, m->xn_final,
                    dense_model_lm_head(m), N, D, V);
    be->rmsnorm_backward(be, g->dres, param_grad_ptr(ps, m->norm_view), g->dxn, m->x_final, dense_model_final_norm(m),
                         m->rstd_final, N, D);
    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        /* recomputation: the layer's activations again from its saved input (the last
         * layer's are still in the shared views from the forward); its output goes to
         * dtmp, which layer_backward writes before reading */
        if (m->recompute && l < c->num_hidden_layers - 1) dense_layer_forward(m, l, g->dtmp, B, T);
        layer_backward(m, l, B, T);
    }
    be->embedding_backward(be, param_grad_ptr(ps, m->embed_view), m->ids, g->dres, N, D);
    return GRPO_OK;
}

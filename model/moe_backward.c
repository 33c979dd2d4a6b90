/* DeepSeekMoE backward: moe_forward.c in reverse over the saved routing and activations.
 * dx is the sum of three paths: the shared experts, the routed experts (rows scattered
 * back to their tokens) and the gate (through the routing weights and, when on, the
 * sequence-wise balance loss). Weight gradients accumulate; the bias gets none. */
#include "model/moe_impl.h"

/* dx[N, in] = dy W (beta 0 writes, 1 adds); dW[out, in] += dy^T x; y = x W^T, W: [out, in]. */
/* At lin's precision (model/linear.h; NULL: fp32). */
static void proj_backward(linear *lin, backend *be, float *dx, float dx_beta, float *dW, const float *dy,
                          const float *x, const float *W, int N, int in, int out) {
    linear_backward(lin, be, dx, dx_beta, dW, dy, x, W, N, in, out);
}

grpo_status moe_backward(moe_layer *l, const moe_weights *w, moe_weights *g, const float *x, const float *dout,
                         float *dx) {
    const moe_config *c = &l->cfg;
    if (l->last_B == 0) return grpo_fail(GRPO_ERR_INVALID, "moe_backward: no forward pass to differentiate");
    GRPO_TRY(moe_check_weights(l, w, "moe_backward (weights)"));
    GRPO_TRY(moe_check_weights(l, g, "moe_backward (gradients)"));
    backend *be = l->be;
    int B = l->last_B, T = l->last_T, N = B * T, H = c->hidden_size, I = c->moe_intermediate_size;
    int E = c->n_routed_experts, IS = l->shared_inter, NK = N * c->num_experts_per_tok;

    /* shared experts: out = down(silu(x Wg^T) * (x Wu^T)) */
    if (IS > 0) {
        proj_backward(w->compute, be, l->ds_act, 0.0f, g->shared_down_proj, dout, l->s_act, w->shared_down_proj, N, IS,
                      H);
        be->swiglu_backward(be, l->ds_gate, l->ds_up, l->ds_act, l->s_gate, l->s_up, (size_t)N * IS);
        proj_backward(w->compute, be, dx, 0.0f, g->shared_gate_proj, l->ds_gate, x, w->shared_gate_proj, N, H, IS);
        proj_backward(w->compute, be, dx, 1.0f, g->shared_up_proj, l->ds_up, x, w->shared_up_proj, N, H, IS);
    } else {
        be->zero(be, dx, (size_t)N * H * sizeof(float));
    }

    /* d weight of slot (t, k) = dout[t] . y_rows[row]: host, for the routing backward */
    moe_weight_grad(l, dout, N);

    /* routed experts: d y_rows = weight * dout[token]; then down, SwiGLU, gate/up per expert */
    moe_gather(l, l->d_rows, dout, N, 1);
    /* Grouped (fp32 with matmul_grouped): the input gradients d act = d y_rows W_down as one
     * call per projection; the weight gradients stay one product per expert (their
     * contraction runs over the expert's rows, which differ in number: no grouped shape). */
    int grouped = moe_experts_matmul(l, w->compute, 0, w->experts_down_proj, l->d_rows, H, l->d_act, I, 0.0f);
    for (int e = 0; e < E; e++) {
        int r0 = l->expert_offset[e], n = l->expert_offset[e + 1] - r0;
        if (n == 0) continue;
        proj_backward(w->compute, be, grouped ? NULL : l->d_act + (size_t)r0 * I, 0.0f, g->experts_down_proj[e],
                      l->d_rows + (size_t)r0 * H, l->act + (size_t)r0 * I, w->experts_down_proj[e], n, I, H);
    }
    be->swiglu_backward(be, l->d_gate, l->d_up, l->d_act, l->h_gate, l->h_up, (size_t)NK * I);
    /* d_rows now becomes d xs (every expert's d y_rows has been consumed above) */
    grouped = moe_experts_matmul(l, w->compute, 0, w->experts_gate_proj, l->d_gate, I, l->d_rows, H, 0.0f) &&
              moe_experts_matmul(l, w->compute, 0, w->experts_up_proj, l->d_up, I, l->d_rows, H, 1.0f);
    for (int e = 0; e < E; e++) {
        int r0 = l->expert_offset[e], n = l->expert_offset[e + 1] - r0;
        if (n == 0) continue;
        float *dxs = grouped ? NULL : l->d_rows + (size_t)r0 * H;
        const float *xs = l->xs + (size_t)r0 * H;
        proj_backward(w->compute, be, dxs, 0.0f, g->experts_gate_proj[e], l->d_gate + (size_t)r0 * I, xs,
                      w->experts_gate_proj[e], n, H, I);
        proj_backward(w->compute, be, dxs, 1.0f, g->experts_up_proj[e], l->d_up + (size_t)r0 * I, xs,
                      w->experts_up_proj[e], n, H, I);
    }
    moe_scatter_add(l, dx, l->d_rows, N, 0);

    /* gate: d logits from the routing weights (+ balance loss), then logits = x gate^T */
    moe_route_backward(c, l->scores_h, l->topk_idx, l->dweight_h, B, T, 1.0, l->dlogits_h, l->dscore, l->counts);
    be->to_device(be, l->dlogits, l->dlogits_h, (size_t)N * E * sizeof(float));
    proj_backward(NULL, be, dx, 1.0f, g->gate, l->dlogits, x, w->gate, N, H, E);
    return GRPO_OK;
}

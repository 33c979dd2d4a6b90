/* DeepSeekMoE forward (HF DeepseekV3MoE): gate logits on the backend, routing on the host
 * (moe_route.c), token rows sorted by expert, one matmul per expert over its contiguous
 * rows (a grouped matmul), SwiGLU, down projection, weighted scatter-add, plus the shared
 * experts as one dense SwiGLU MLP. Saves in the layer what moe_backward needs. */
#include "model/moe_impl.h"

#include <string.h>

/* y[N, out] = x[N, in] W^T at lin's precision (NULL: fp32); beta = 1 adds into y. */
static void proj(linear *lin, backend *be, float *y, const float *x, const float *W, int N, int in, int out,
                 float beta) {
    linear_forward(lin, be, y, out, x, in, W, N, in, out, beta);
}

int moe_experts_matmul(moe_layer *l, linear *lin, int trans_w, float *const *W, const float *A, int K, float *C, int N,
                       float beta) {
    backend *be = l->be;
    if (!be->matmul_grouped || linear_get_precision(lin) != QUANT_FP32) return 0;
    int E = l->cfg.n_routed_experts;
    for (int e = 0; e < E; e++) {
        int r0 = l->expert_offset[e];
        l->group_m[e] = l->expert_offset[e + 1] - r0;   /* 0 rows: the op skips the expert */
        l->group_a[e] = A + (size_t)r0 * K;
        l->group_b[e] = W[e];
        l->group_c[e] = C + (size_t)r0 * N;
    }
    /* W_e: [N, K] taken transposed (forward), or [K, N] as it is (input gradient). */
    be->matmul_grouped(be, 0, trans_w, E, l->group_m, N, K, 1.0f, l->group_a, K, l->group_b, trans_w ? K : N, beta,
                       l->group_c, N);
    return 1;
}

grpo_status moe_check_weights(const moe_layer *l, const moe_weights *w, const char *what) {
    const moe_config *c = &l->cfg;
    if (!w || !w->gate || !w->experts_gate_proj || !w->experts_up_proj || !w->experts_down_proj)
        return grpo_fail(GRPO_ERR_INVALID, "%s: the gate and the expert arrays must be set", what);
    for (int e = 0; e < c->n_routed_experts; e++)
        if (!w->experts_gate_proj[e] || !w->experts_up_proj[e] || !w->experts_down_proj[e])
            return grpo_fail(GRPO_ERR_INVALID, "%s: expert %d lacks a gate_proj, up_proj or down_proj pointer", what,
                             e);
    if (c->n_shared_experts > 0 && (!w->shared_gate_proj || !w->shared_up_proj || !w->shared_down_proj))
        return grpo_fail(GRPO_ERR_INVALID, "%s: n_shared_experts = %d but a shared expert pointer is NULL", what,
                         c->n_shared_experts);
    return GRPO_OK;
}

grpo_status moe_forward(moe_layer *l, const moe_weights *w, const float *x, int B, int T, float *out) {
    const moe_config *c = &l->cfg;
    if (B < 1 || T < 1 || (int64_t)B * T > l->max_tokens)
        return grpo_fail(GRPO_ERR_INVALID, "moe_forward: batch [%d, %d] must be positive and at most %d tokens", B, T,
                         l->max_tokens);
    GRPO_TRY(moe_check_weights(l, w, "moe_forward"));
    backend *be = l->be;
    int N = B * T, H = c->hidden_size, I = c->moe_intermediate_size, E = c->n_routed_experts, IS = l->shared_inter;
    int NK = N * c->num_experts_per_tok;

    /* routing: logits [N, E] = x gate^T in float32 (HF computes the router in float32) */
    proj(NULL, be, l->logits, x, w->gate, N, H, E, 0.0f);
    be->to_host(be, l->logits_h, l->logits, (size_t)N * E * sizeof(float));
    if (w->e_score_correction_bias)
        be->to_host(be, l->bias_h, w->e_score_correction_bias, (size_t)E * sizeof(float));
    else
        memset(l->bias_h, 0, (size_t)E * sizeof(float));
    moe_route_tokens(c, l->logits_h, l->bias_h, N, l->scores_h, l->topk_idx, l->topk_weight, &l->route);
    l->stats.aux_loss = moe_route_aux_loss(c, l->scores_h, l->topk_idx, B, T, l->counts);
    moe_dispatch_plan(l, N);

    /* routed experts over their contiguous rows: y_rows = down(silu(xs Wg^T) * (xs Wu^T)) */
    moe_gather(l, l->xs, x, N, 0);
    if (!moe_experts_matmul(l, w->compute, 1, w->experts_gate_proj, l->xs, H, l->h_gate, I, 0.0f) ||
        !moe_experts_matmul(l, w->compute, 1, w->experts_up_proj, l->xs, H, l->h_up, I, 0.0f))
        for (int e = 0; e < E; e++) {
            int r0 = l->expert_offset[e], n = l->expert_offset[e + 1] - r0;
            if (n == 0) continue;
            proj(w->compute, be, l->h_gate + (size_t)r0 * I, l->xs + (size_t)r0 * H, w->experts_gate_proj[e], n, H,
                 I, 0.0f);
            proj(w->compute, be, l->h_up + (size_t)r0 * I, l->xs + (size_t)r0 * H, w->experts_up_proj[e], n, H, I,
                 0.0f);
        }
    be->swiglu_forward(be, l->act, l->h_gate, l->h_up, (size_t)NK * I);
    if (!moe_experts_matmul(l, w->compute, 1, w->experts_down_proj, l->act, I, l->y_rows, H, 0.0f))
        for (int e = 0; e < E; e++) {
            int r0 = l->expert_offset[e], n = l->expert_offset[e + 1] - r0;
            if (n == 0) continue;
            proj(w->compute, be, l->y_rows + (size_t)r0 * H, l->act + (size_t)r0 * I, w->experts_down_proj[e], n, I,
                 H, 0.0f);
        }

    /* out = shared(x) + sum_k weight_k y_k */
    if (IS > 0) {
        proj(w->compute, be, l->s_gate, x, w->shared_gate_proj, N, H, IS, 0.0f);
        proj(w->compute, be, l->s_up, x, w->shared_up_proj, N, H, IS, 0.0f);
        be->swiglu_forward(be, l->s_act, l->s_gate, l->s_up, (size_t)N * IS);
        proj(w->compute, be, out, l->s_act, w->shared_down_proj, N, IS, H, 0.0f);
    } else {
        be->zero(be, out, (size_t)N * H * sizeof(float));
    }
    moe_scatter_add(l, out, l->y_rows, N, 1);
    l->last_B = B;
    l->last_T = T;
    return GRPO_OK;
}

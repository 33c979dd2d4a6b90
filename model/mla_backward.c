/* MLA backward for training: the forward's steps in reverse (mla_forward.c), writing dx
 * and accumulating every weight's gradient. The shared RoPE key's gradient is the sum of
 * its per-head copies' gradients; RoPE's backward is the inverse rotation. */
#include "model/mla_impl.h"

grpo_status mla_backward(backend *be, const mla_config *cfg, const mla_weights *w, mla_weights *g,
                         const float *acts, float *scratch, const float *x, const int32_t *positions,
                         const float *cos, const float *sin, const float *dout, int B, int T, float *dx) {
    GRPO_TRY(mla_check_config(cfg, "mla_backward"));
    GRPO_TRY(mla_check_weights(cfg, w, "mla_backward", "weight"));
    GRPO_TRY(mla_check_weights(cfg, g, "mla_backward", "gradient"));
    GRPO_TRY(mla_require_ops(be, "mla_backward", 1));
    if (B < 1 || T < 1) return grpo_fail(GRPO_ERR_INVALID, "mla_backward: batch [%d, %d] must be positive", B, T);
    if (!acts || !scratch || !x || !positions || !cos || !sin || !dout || !dx)
        return grpo_fail(GRPO_ERR_INVALID, "mla_backward: a buffer or table argument is NULL");
    if ((long long)B * T > 1 << 30)
        return grpo_fail(GRPO_ERR_INVALID, "mla_backward: B*T = %lld is too large", (long long)B * T);
    mla_acts a;
    mla_grads d;
    mla_acts_layout(cfg, B, T, (float *)acts, &a);   /* read only below */
    mla_grads_layout(cfg, B, T, scratch, &d);
    const int N = B * T, D = cfg->hidden_size, H = cfg->num_heads, rq = cfg->q_lora_rank, rkv = cfg->kv_lora_rank;
    const int dn = cfg->qk_nope_head_dim, dr = cfg->qk_rope_head_dim, dv = cfg->v_head_dim, Dqk = dn + dr;
    const int QD = H * Dqk, VD = H * dv;

    /* out = att o_proj^T: d_att = dout o_proj, d o_proj += dout^T att. */
    linear_matmul(w->compute, be, 0, 0, N, VD, D, 1.0f, dout, D, w->o_proj, VD, 0.0f, d.d_att, VD);
    linear_matmul(w->compute, be, 1, 0, D, VD, N, 1.0f, dout, D, a.att, VD, 1.0f, g->o_proj, VD);

    be->attention_backward(be, d.d_q, d.d_k, d.d_v, d.d_att, a.q, a.k, a.v, a.att, a.lse, B, T, H, H, Dqk, dv,
                           cfg->softmax_scale);
    be->rope(be, d.d_q + dn, N, H, Dqk, dr, positions, cos, sin, 1, 1);

    /* Per head: the rope slot's gradient sums into d_k_pe (d_k_pe = sum_h d_k[:, h, dn:] I);
     * k_nope = latent W_UK[h]^T and v = latent W_UV[h]^T send theirs to the latent and to
     * kv_b_proj's two row blocks. */
    for (int h = 0; h < H; h++) {
        const float *dk = d.d_k + (size_t)h * Dqk, *dvh = d.d_v + (size_t)h * dv;
        const float *wk = w->kv_b_proj + (size_t)h * (dn + dv) * rkv, *wv = wk + (size_t)dn * rkv;
        float *gk = g->kv_b_proj + (size_t)h * (dn + dv) * rkv, *gv = gk + (size_t)dn * rkv;
        float beta = h == 0 ? 0.0f : 1.0f;
        be->matmul(be, 0, 0, N, dr, dr, 1.0f, dk + dn, QD, a.identity, dr, beta, d.d_k_pe, dr);
        linear_matmul(w->compute, be, 0, 0, N, rkv, dv, 1.0f, dvh, VD, wv, rkv, beta, d.d_latent, rkv);
        linear_matmul(w->compute, be, 1, 0, dv, rkv, N, 1.0f, dvh, VD, a.latent, rkv, 1.0f, gv, rkv);
        if (dn > 0) {
            linear_matmul(w->compute, be, 0, 0, N, rkv, dn, 1.0f, dk, QD, wk, rkv, 1.0f, d.d_latent, rkv);
            linear_matmul(w->compute, be, 1, 0, dn, rkv, N, 1.0f, dk, QD, a.latent, rkv, 1.0f, gk, rkv);
        }
    }
    be->rope(be, d.d_k_pe, N, 1, dr, dr, positions, cos, sin, 1, 1);
    be->rmsnorm_backward(be, d.d_kv_a, g->kv_a_layernorm, d.d_latent, a.kv_a, w->kv_a_layernorm, a.kv_a_rstd, N,
                         rkv);

    /* kv_a_proj_with_mqa's two row blocks: dx = d_kv_a W_a + d_k_pe W_pe (written here,
     * the q path adds to it). */
    const float *w_pe = w->kv_a_proj_with_mqa + (size_t)rkv * D;
    float *g_pe = g->kv_a_proj_with_mqa + (size_t)rkv * D;
    linear_matmul(w->compute, be, 0, 0, N, D, rkv, 1.0f, d.d_kv_a, rkv, w->kv_a_proj_with_mqa, D, 0.0f, dx, D);
    linear_matmul(w->compute, be, 0, 0, N, D, dr, 1.0f, d.d_k_pe, dr, w_pe, D, 1.0f, dx, D);
    linear_matmul(w->compute, be, 1, 0, rkv, D, N, 1.0f, d.d_kv_a, rkv, x, D, 1.0f, g->kv_a_proj_with_mqa, D);
    linear_matmul(w->compute, be, 1, 0, dr, D, N, 1.0f, d.d_k_pe, dr, x, D, 1.0f, g_pe, D);

    /* q path. */
    if (rq > 0) {
        linear_matmul(w->compute, be, 0, 0, N, rq, QD, 1.0f, d.d_q, QD, w->q_b_proj, rq, 0.0f, d.d_q_a_normed, rq);
        linear_matmul(w->compute, be, 1, 0, QD, rq, N, 1.0f, d.d_q, QD, a.q_a_normed, rq, 1.0f, g->q_b_proj, rq);
        be->rmsnorm_backward(be, d.d_q_a, g->q_a_layernorm, d.d_q_a_normed, a.q_a, w->q_a_layernorm, a.q_a_rstd, N,
                             rq);
        linear_matmul(w->compute, be, 0, 0, N, D, rq, 1.0f, d.d_q_a, rq, w->q_a_proj, D, 1.0f, dx, D);
        linear_matmul(w->compute, be, 1, 0, rq, D, N, 1.0f, d.d_q_a, rq, x, D, 1.0f, g->q_a_proj, D);
    } else {
        linear_matmul(w->compute, be, 0, 0, N, D, QD, 1.0f, d.d_q, QD, w->q_proj, D, 1.0f, dx, D);
        linear_matmul(w->compute, be, 1, 0, QD, D, N, 1.0f, d.d_q, QD, x, D, 1.0f, g->q_proj, D);
    }
    return GRPO_OK;
}

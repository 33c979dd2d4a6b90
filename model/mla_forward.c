/* MLA forward for training: K and V materialised per head (transformers'
 * DeepseekV3Attention.forward, eager path), saving in the caller's activation block what
 * mla_backward needs. Every Linear is one matmul; the per-head split of kv_b_proj's
 * output and the broadcast of the shared RoPE key are matmuls that write strided rows,
 * so the layer needs no copy op beyond the backend table. */
#include "model/mla_impl.h"

grpo_status mla_forward(backend *be, const mla_config *cfg, const mla_weights *w, float *acts, const float *x,
                        const int32_t *positions, const float *cos, const float *sin, int B, int T, float *out) {
    GRPO_TRY(mla_check_config(cfg, "mla_forward"));
    GRPO_TRY(mla_check_weights(cfg, w, "mla_forward", "weight"));
    GRPO_TRY(mla_require_ops(be, "mla_forward", 0));
    if (B < 1 || T < 1) return grpo_fail(GRPO_ERR_INVALID, "mla_forward: batch [%d, %d] must be positive", B, T);
    if (!acts || !x || !positions || !cos || !sin || !out)
        return grpo_fail(GRPO_ERR_INVALID, "mla_forward: a buffer or table argument is NULL");
    if ((long long)B * T > 1 << 30) return grpo_fail(GRPO_ERR_INVALID, "mla_forward: B*T = %lld is too large",
                                                     (long long)B * T);
    mla_acts a;
    mla_acts_layout(cfg, B, T, acts, &a);
    const int N = B * T, D = cfg->hidden_size, H = cfg->num_heads, rq = cfg->q_lora_rank, rkv = cfg->kv_lora_rank;
    const int dn = cfg->qk_nope_head_dim, dr = cfg->qk_rope_head_dim, dv = cfg->v_head_dim, Dqk = dn + dr;
    const int QD = H * Dqk, VD = H * dv;
    const float eps = cfg->rms_norm_eps;

    /* q = q_b_proj(q_a_layernorm(q_a_proj(x))) or q_proj(x): [N, H, Dqk]; rotate q_pe
     * (interleaved pairs, HF apply_rotary_pos_emb_interleave). */
    if (rq > 0) {
        mla_linear(w->compute, be, a.q_a, rq, x, D, w->q_a_proj, N, D, rq, 0.0f);
        be->rmsnorm_forward(be, a.q_a_normed, a.q_a_rstd, a.q_a, w->q_a_layernorm, N, rq, eps);
        mla_linear(w->compute, be, a.q, QD, a.q_a_normed, rq, w->q_b_proj, N, rq, QD, 0.0f);
    } else {
        mla_linear(w->compute, be, a.q, QD, x, D, w->q_proj, N, D, QD, 0.0f);
    }
    be->rope(be, a.q + dn, N, H, Dqk, dr, positions, cos, sin, 1, 0);

    /* kv_a_proj_with_mqa(x) = [kv_a (kv_lora_rank), k_pe (rope)]: two products over its
     * two blocks of rows, so each lands contiguous. */
    mla_linear(w->compute, be, a.kv_a, rkv, x, D, w->kv_a_proj_with_mqa, N, D, rkv, 0.0f);
    mla_linear(w->compute, be, a.k_pe, dr, x, D, w->kv_a_proj_with_mqa + (size_t)rkv * D, N, D, dr, 0.0f);
    be->rmsnorm_forward(be, a.latent, a.kv_a_rstd, a.kv_a, w->kv_a_layernorm, N, rkv, eps);
    be->rope(be, a.k_pe, N, 1, dr, dr, positions, cos, sin, 1, 0);

    /* Per head h: kv_b_proj's rows h*(dn+dv) .. +dn give k_nope, the next dv give v
     * (HF views kv_b_proj's output as [.., H, dn + dv]); k_pe is copied into every head's
     * rope slot as k_pe @ I. */
    mla_write_identity(be, a.identity, dr);
    for (int h = 0; h < H; h++) {
        const float *wk = w->kv_b_proj + (size_t)h * (dn + dv) * rkv, *wv = wk + (size_t)dn * rkv;
        if (dn > 0) mla_linear(w->compute, be, a.k + (size_t)h * Dqk, QD, a.latent, rkv, wk, N, rkv, dn, 0.0f);
        mla_linear(w->compute, be, a.v + (size_t)h * dv, VD, a.latent, rkv, wv, N, rkv, dv, 0.0f);
        be->matmul(be, 0, 0, N, dr, dr, 1.0f, a.k_pe, dr, a.identity, dr, 0.0f, a.k + (size_t)h * Dqk + dn, QD);
    }

    /* softmax(q k^T * softmax_scale, causal) v, then o_proj. */
    be->attention_forward(be, a.att, a.lse, a.q, a.k, a.v, B, T, H, H, Dqk, dv, cfg->softmax_scale);
    mla_linear(w->compute, be, out, D, a.att, VD, w->o_proj, N, VD, D, 0.0f);
    return GRPO_OK;
}

/* MLA inference over the latent cache (DeepSeek-V2 report sec. 2.1.2 and appendix C,
 * "absorbed" attention): the cache keeps per token only the normed latent c and the
 * rotated shared RoPE key; kv_b_proj never expands the cache. Per head h, with
 * W_UK[h] = kv_b_proj rows h*(nope+v) .. +nope and W_UV[h] the next v rows:
 *   score(t, j) = softmax_scale * ((q_nope[t,h] W_UK[h]) . c_j + q_pe[t,h] . k_pe_j)
 *   out[t, h]   = (sum_j softmax_j(score(t, j)) c_j) W_UV[h]^T
 * which equals the training path's q_nope . (c_j W_UK[h]^T) and sum_j p_j (c_j W_UV[h]^T).
 * The key side is one head shared by all query heads (like MQA), so the scores of every
 * (token, head) row come from two matmuls against the cache. */
#include "model/mla_impl.h"

#include <limits.h>

grpo_status mla_decode(backend *be, const mla_config *cfg, const mla_weights *w, const float *x,
                       const int32_t *positions, const float *cos, const float *sin, float *cache_latent,
                       float *cache_rope, int n_cached, int T, float *scratch, float *out) {
    GRPO_TRY(mla_check_config(cfg, "mla_decode"));
    if (T < 1 || n_cached < 0 || (long long)n_cached + T > INT_MAX / 2)
        return grpo_fail(GRPO_ERR_INVALID, "mla_decode: T = %d new tokens after n_cached = %d: expected T >= 1, "
                         "n_cached >= 0", T, n_cached);
    return mla_decode_blocked(be, cfg, w, x, positions, cos, sin, cache_latent, cache_rope, n_cached, T,
                              mla_decode_query_block(cfg, T, n_cached + T), scratch, out);
}

grpo_status mla_decode_blocked(backend *be, const mla_config *cfg, const mla_weights *w, const float *x,
                               const int32_t *positions, const float *cos, const float *sin,
                               float *cache_latent, float *cache_rope, int n_cached, int T, int query_block,
                               float *scratch, float *out) {
    GRPO_TRY(mla_check_config(cfg, "mla_decode"));
    GRPO_TRY(mla_check_weights(cfg, w, "mla_decode", "weight"));
    GRPO_TRY(mla_require_ops(be, "mla_decode", 2));
    if (T < 1 || n_cached < 0 || (long long)n_cached + T > INT_MAX / 2 || query_block < 1)
        return grpo_fail(GRPO_ERR_INVALID, "mla_decode: T = %d new tokens after n_cached = %d in query blocks of %d: "
                         "expected T >= 1, n_cached >= 0, blocks >= 1", T, n_cached, query_block);
    if (!x || !positions || !cos || !sin || !cache_latent || !cache_rope || !scratch || !out)
        return grpo_fail(GRPO_ERR_INVALID, "mla_decode: a buffer or table argument is NULL");
    for (int t = 0; t < T; t++)
        if (positions[t] < 0)
            return grpo_fail(GRPO_ERR_INVALID, "mla_decode: positions[%d] = %d, expected >= 0", t, positions[t]);
    const int L = n_cached + T, QB = query_block < T ? query_block : T;
    const int D = cfg->hidden_size, H = cfg->num_heads, rq = cfg->q_lora_rank, rkv = cfg->kv_lora_rank;
    const int dn = cfg->qk_nope_head_dim, dr = cfg->qk_rope_head_dim, dv = cfg->v_head_dim, Dqk = dn + dr;
    const int QD = H * Dqk, VD = H * dv, AD = H * rkv;
    const float eps = cfg->rms_norm_eps;
    mla_decode_buffers d;
    mla_decode_layout(cfg, T, L, query_block, scratch, &d);
    be->to_device(be, d.positions, positions, (size_t)T * sizeof(int32_t));

    /* Queries, as in training: [T, H, Dqk], q_pe rotated. */
    if (rq > 0) {
        mla_linear(w->compute, be, d.q_a, rq, x, D, w->q_a_proj, T, D, rq, 0.0f);
        be->rmsnorm_forward(be, d.q_a_normed, d.q_a_rstd, d.q_a, w->q_a_layernorm, T, rq, eps);
        mla_linear(w->compute, be, d.q, QD, d.q_a_normed, rq, w->q_b_proj, T, rq, QD, 0.0f);
    } else {
        mla_linear(w->compute, be, d.q, QD, x, D, w->q_proj, T, D, QD, 0.0f);
    }
    be->rope(be, d.q + dn, T, H, Dqk, dr, d.positions, cos, sin, 1, 0);

    /* Append the new tokens: latent c = kv_a_layernorm(kv_a) and the rotated k_pe go
     * straight into the cache rows n_cached .. L-1. */
    float *new_latent = cache_latent + (size_t)n_cached * rkv, *new_rope = cache_rope + (size_t)n_cached * dr;
    mla_linear(w->compute, be, d.kv_a, rkv, x, D, w->kv_a_proj_with_mqa, T, D, rkv, 0.0f);
    be->rmsnorm_forward(be, new_latent, d.kv_a_rstd, d.kv_a, w->kv_a_layernorm, T, rkv, eps);
    linear_round_rows(w->compute, be, new_latent, rkv, T, rkv);   /* as training's kv_b_proj input */
    mla_linear(w->compute, be, new_rope, dr, x, D, w->kv_a_proj_with_mqa + (size_t)rkv * D, T, D, dr, 0.0f);
    be->rope(be, new_rope, T, 1, dr, dr, d.positions, cos, sin, 1, 0);

    /* Absorb W_UK: q_absorbed[:, h] = q_nope[:, h] W_UK[h]  ([T, nope] x [nope, kv_lora]). */
    for (int h = 0; h < H; h++) {
        const float *wk = w->kv_b_proj + (size_t)h * (dn + dv) * rkv;
        linear_matmul_weight_only(w->compute, be, 0, 0, T, rkv, dn, 1.0f, d.q + (size_t)h * Dqk, QD, wk, rkv, 0.0f,
                   d.q_absorbed + (size_t)h * rkv, AD);
    }

    /* Softmax without a softmax op: with logits = scores, target = a dummy column held at
     * MLA_MASKED and dlogprob = -1, token_logprobs_backward writes
     * -1 * (onehot(dummy) - softmax) = softmax on every real column (the dummy's own
     * probability is exactly 0). The causal mask is added row block by row block as a
     * window of `mask` = [0 x L, MLA_MASKED x QB]: token t of a block ending at key Lb sees
     * keys 0 .. n_cached + t. */
    be->zero(be, d.mask, (size_t)L * sizeof(float));
    mla_fill_f32(be, d.mask + L, MLA_MASKED, (size_t)QB);
    mla_fill_f32(be, d.dlogprobs, -1.0f, (size_t)QB * H);
    for (int t0 = 0; t0 < T; t0 += QB) {
        const int nb = T - t0 < QB ? T - t0 : QB, Lb = n_cached + t0 + nb, V = Lb + 1, R = nb * H;
        float *qa = d.q_absorbed + (size_t)t0 * AD;
        /* scores: [R, V], row (t, h); columns 0 .. Lb-1 are the keys, Lb the dummy. */
        be->zero(be, d.scores, (size_t)R * V * sizeof(float));
        be->matmul(be, 0, 1, R, Lb, rkv, cfg->softmax_scale, qa, rkv, cache_latent, rkv, 0.0f, d.scores, V);
        be->matmul(be, 0, 1, R, Lb, dr, cfg->softmax_scale, d.q + (size_t)t0 * QD + dn, Dqk, cache_rope, dr, 1.0f,
                   d.scores, V);
        for (int i = 0; i < nb; i++)
            be->add_bias(be, d.scores + (size_t)i * H * V, d.mask + (L - Lb + nb - 1 - i), H, V);
        mla_fill_i32(be, d.targets, Lb, (size_t)R);
        be->token_logprobs_forward(be, d.logprobs, d.lse, d.scores, d.targets, R, V);
        be->token_logprobs_backward(be, d.probs, d.scores, d.lse, d.targets, d.dlogprobs, R, V);
        /* attention-weighted latents [R, kv_lora] = probs[:, :Lb] c[:Lb], over this block's
         * q_absorbed rows (already read above). */
        be->matmul(be, 0, 0, R, rkv, Lb, 1.0f, d.probs, V, cache_latent, rkv, 0.0f, qa, rkv);
    }

    /* Apply W_UV per head: att[:, h] = o_latent[:, h] W_UV[h]^T, then o_proj. */
    for (int h = 0; h < H; h++) {
        const float *wv = w->kv_b_proj + ((size_t)h * (dn + dv) + dn) * rkv;
        linear_matmul_weight_only(w->compute, be, 0, 1, T, dv, rkv, 1.0f, d.q_absorbed + (size_t)h * rkv, AD, wv, rkv,
                                  0.0f, d.att + (size_t)h * dv, VD);
    }
    mla_linear(w->compute, be, out, D, d.att, VD, w->o_proj, T, VD, D, 0.0f);
    return GRPO_OK;
}

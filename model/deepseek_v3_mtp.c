/* Multi-Token Prediction (DeepSeek-V3 report sec. 2.2, eq. 21-25): module k sees the
 * previous depth's representation h^{k-1} (h^0 = the main model's final-normed hidden
 * state) and the embedding of token t_{i+k}, runs one transformer block and predicts
 * t_{i+k+1} through the shared head. The loss is taken here; its gradient is applied by
 * the next deepseek_v3_backward (dsv3_mtp_backward), which hands d h^0 to the main model. */
#include "model/deepseek_v3_impl.h"

/* x[N, D] = [en, hn] W^T with W = eh_proj [D, 2D]: two matmuls on the column halves of W
 * (embedding half first, as the released V3 weights are laid out). */
static void eh_proj_forward(linear *lin, backend *be, float *x, const float *en, const float *hn, const float *W, int N,
                            int D) {
    linear_matmul(lin, be, 0, 1, N, D, D, 1.0f, en, D, W, 2 * D, 0.0f, x, D);
    linear_matmul(lin, be, 0, 1, N, D, D, 1.0f, hn, D, W + D, 2 * D, 1.0f, x, D);
}

grpo_status deepseek_v3_mtp_loss(deepseek_v3_model *m, float lambda, double *loss) {
    const deepseek_v3_config *c = &m->cfg;
    *loss = 0;
    int depth = c->num_nextn_predict_layers;
    if (depth == 0) return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_mtp_loss: the model has no MTP module "
                                     "(num_nextn_predict_layers = 0)");
    if (m->last_B == 0) return grpo_fail(GRPO_ERR_INVALID, "deepseek_v3_mtp_loss: no forward pass to extend");
    backend *be = m->be;
    const param_set *ps = &m->params;
    int B = m->last_B, T = m->last_T, N = B * T, D = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    float eps = (float)c->rms_norm_eps;
    int32_t *ids = m->host_i32, *shifted = m->host_i32 + N;
    be->to_host(be, ids, m->ids, (size_t)N * sizeof(int32_t));

    const float *h_prev = m->xn_final;
    double total = 0;
    for (int k = 1; k <= depth; k++) {
        dsv3_mtp_acts *t = &m->mtp[k - 1];
        const dsv3_mtp_views *mv = &m->mtp_views[k - 1];
        int b = L + k - 1;
        /* inputs t_{i+k} (0 where past the row: those rows have no target) and targets t_{i+k+1} */
        for (int r = 0; r < B; r++)
            for (int i = 0; i < T; i++) shifted[(size_t)r * T + i] = i + k < T ? ids[(size_t)r * T + i + k] : 0;
        be->to_device(be, t->ids, shifted, (size_t)N * sizeof(int32_t));
        for (int r = 0; r < B; r++)
            for (int i = 0; i < T; i++) shifted[(size_t)r * T + i] = i + k + 1 < T ? ids[(size_t)r * T + i + k + 1] : -1;
        be->to_device(be, t->targets, shifted, (size_t)N * sizeof(int32_t));

        be->embedding_forward(be, t->emb, t->ids, param_ptr(ps, m->embed_view), N, D);
        be->rmsnorm_forward(be, t->en, t->rstd_e, t->emb, param_ptr(ps, mv->enorm), N, D, eps);
        be->rmsnorm_forward(be, t->hn, t->rstd_h, h_prev, param_ptr(ps, mv->hnorm), N, D, eps);
        eh_proj_forward(m->params.compute, be, m->acts[b].x, t->en, t->hn, param_ptr(ps, mv->eh_proj), N, D);
        GRPO_TRY(dsv3_block_forward(m, b, t->out, B, T));
        be->rmsnorm_forward(be, t->xo, t->rstd_o, t->out, param_ptr(ps, mv->shared_head_norm), N, D, eps);
        dsv3_linear(be, t->logits, t->xo, dsv3_lm_head(m), N, D, V, 0.0f);
        be->token_logprobs_forward(be, t->logprobs, t->lse, t->logits, t->targets, N, V);

        /* mean cross-entropy over the rows with a target; d loss / d logprob for the backward */
        int64_t valid = (int64_t)B * (T - k - 1 > 0 ? T - k - 1 : 0);
        float *lp = m->host_f32;
        be->to_host(be, lp, t->logprobs, (size_t)N * sizeof(float));
        double sum = 0;
        for (int i = 0; i < N; i++) sum += lp[i];   /* rows without a target give 0 */
        if (valid > 0) total -= sum / (double)valid;
        float d = valid > 0 ? -lambda / (float)((double)depth * (double)valid) : 0.0f;
        for (int i = 0; i < N; i++) lp[i] = d;
        be->to_device(be, t->dlogprobs, lp, (size_t)N * sizeof(float));
        /* the logits buffer becomes d loss / d logits (rows without a target get 0) */
        be->token_logprobs_backward(be, t->logits, t->logits, t->lse, t->targets, t->dlogprobs, N, V);
        h_prev = t->out;
    }
    *loss = (double)lambda / depth * total;
    m->mtp_pending = 1;
    return GRPO_OK;
}

grpo_status dsv3_mtp_backward(deepseek_v3_model *m) {
    const deepseek_v3_config *c = &m->cfg;
    backend *be = m->be;
    const param_set *ps = &m->params;
    const dsv3_grad_acts *g = &m->g;
    int B = m->last_B, T = m->last_T, N = B * T, D = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    int depth = c->num_nextn_predict_layers;
    int head_grad_view = m->lm_head_view >= 0 ? m->lm_head_view : m->embed_view;
    for (int k = depth; k >= 1; k--) {
        const dsv3_mtp_acts *t = &m->mtp[k - 1];
        const dsv3_mtp_views *mv = &m->mtp_views[k - 1];
        int b = L + k - 1;
        const float *h_prev = k > 1 ? m->mtp[k - 2].out : m->xn_final;
        /* head and shared_head.norm; plus d h^k from module k+1 (in dcarry) */
        dsv3_linear_backward(be, g->dxn, 0.0f, param_grad_ptr(ps, head_grad_view), t->logits, t->xo, dsv3_lm_head(m),
                             N, D, V);
        be->rmsnorm_backward(be, g->dres, param_grad_ptr(ps, mv->shared_head_norm), g->dxn, t->out,
                             param_ptr(ps, mv->shared_head_norm), t->rstd_o, N, D);
        if (k < depth) be->axpy(be, g->dres, 1.0f, g->dcarry, (size_t)N * D);
        GRPO_TRY(dsv3_block_backward(m, b, B, T));   /* g->dres = d h'^k */
        /* eh_proj: h' = en W_e^T + hn W_h^T */
        const float *W = param_ptr(ps, mv->eh_proj);
        float *dW = param_grad_ptr(ps, mv->eh_proj);
        linear *lin = m->params.compute;
        linear_matmul(lin, be, 1, 0, D, D, N, 1.0f, g->dres, D, t->en, D, 1.0f, dW, 2 * D);
        linear_matmul(lin, be, 1, 0, D, D, N, 1.0f, g->dres, D, t->hn, D, 1.0f, dW + D, 2 * D);
        linear_matmul(lin, be, 0, 0, N, D, D, 1.0f, g->dres, D, W, 2 * D, 0.0f, g->dxn, D);       /* d en */
        linear_matmul(lin, be, 0, 0, N, D, D, 1.0f, g->dres, D, W + D, 2 * D, 0.0f, g->dtmp, D);  /* d hn */
        /* hnorm: d h^{k-1} into dcarry; enorm and the shared embedding */
        be->rmsnorm_backward(be, g->dcarry, param_grad_ptr(ps, mv->hnorm), g->dtmp, h_prev, param_ptr(ps, mv->hnorm),
                             t->rstd_h, N, D);
        be->rmsnorm_backward(be, g->dres, param_grad_ptr(ps, mv->enorm), g->dxn, t->emb, param_ptr(ps, mv->enorm),
                             t->rstd_e, N, D);
        be->embedding_backward(be, param_grad_ptr(ps, m->embed_view), t->ids, g->dres, N, D);
    }
    return GRPO_OK;
}

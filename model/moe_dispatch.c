/* DeepSeekMoE token dispatch: the counting sort of token slots by expert, the gather of
 * token rows into the per-expert contiguous buffer and the weighted scatter-add back.
 * Backend memory that is host memory (the CPU backend) is read directly; any other
 * backend goes through its op table one row at a time (correct, slow: the place for a
 * CUDA gather/scatter kernel). */
#include "model/moe_impl.h"

#include <string.h>

void moe_dispatch_plan(moe_layer *l, int N) {
    const moe_config *c = &l->cfg;
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    int64_t *cursor = l->counts;
    memset(l->load, 0, (size_t)E * sizeof *l->load);
    for (size_t slot = 0; slot < (size_t)N * K; slot++) l->load[l->topk_idx[slot]]++;
    l->expert_offset[0] = 0;
    int64_t max_load = 0;
    for (int e = 0; e < E; e++) {
        l->expert_offset[e + 1] = l->expert_offset[e] + (int)l->load[e];
        cursor[e] = l->expert_offset[e];
        l->load_accum[e] += l->load[e];
        max_load = l->load[e] > max_load ? l->load[e] : max_load;
    }
    /* stable in the token order: an expert's rows follow its tokens in order */
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            size_t slot = (size_t)t * K + k;
            int r = (int)cursor[l->topk_idx[slot]]++;
            l->row_token[r] = t;
            l->slot_row[slot] = r;
            l->row_weight[r] = l->topk_weight[slot];
        }
    double mean_load = (double)N * K / E;
    l->stats.max_violation = (double)max_load / mean_load - 1.0;
}

void moe_gather(moe_layer *l, float *dst, const float *src, int N, int weighted) {
    backend *be = l->be;
    int H = l->cfg.hidden_size, NK = N * l->cfg.num_experts_per_tok;
    for (int r = 0; r < NK; r++) {
        float *d = dst + (size_t)r * H;
        const float *s = src + (size_t)l->row_token[r] * H;
        float w = weighted ? l->row_weight[r] : 1.0f;
        if (l->is_host) {
            if (weighted) for (int j = 0; j < H; j++) d[j] = w * s[j];
            else memcpy(d, s, (size_t)H * sizeof *d);
        } else {
            be->copy(be, d, s, (size_t)H * sizeof *d);
            if (weighted) be->scale(be, d, w, (size_t)H);
        }
    }
}

void moe_scatter_add(moe_layer *l, float *out, const float *rows, int N, int weighted) {
    backend *be = l->be;
    int H = l->cfg.hidden_size, K = l->cfg.num_experts_per_tok;
    /* token by token, slots in k order: the sum order does not depend on the sort */
    for (int t = 0; t < N; t++) {
        float *o = out + (size_t)t * H;
        for (int k = 0; k < K; k++) {
            int r = l->slot_row[(size_t)t * K + k];
            const float *y = rows + (size_t)r * H;
            float w = weighted ? l->row_weight[r] : 1.0f;
            if (l->is_host) for (int j = 0; j < H; j++) o[j] += w * y[j];
            else be->axpy(be, o, w, y, (size_t)H);
        }
    }
}

void moe_weight_grad(moe_layer *l, const float *dout, int N) {
    backend *be = l->be;
    int H = l->cfg.hidden_size, K = l->cfg.num_experts_per_tok, NK = N * K;
    if (l->is_host) {
        for (int r = 0; r < NK; r++) {
            const float *g = dout + (size_t)l->row_token[r] * H, *y = l->y_rows + (size_t)r * H;
            double dot = 0.0;
            for (int j = 0; j < H; j++) dot += (double)g[j] * y[j];
            l->dot_h[r] = (float)dot;
        }
    } else {
        /* dot[r] = dout[t] . y_rows[r] as a [1, 1] = [1, H] [H, 1] product */
        for (int r = 0; r < NK; r++)
            be->matmul(be, 0, 1, 1, 1, H, 1.0f, dout + (size_t)l->row_token[r] * H, H, l->y_rows + (size_t)r * H, H,
                       0.0f, l->dot + r, 1);
        be->to_host(be, l->dot_h, l->dot, (size_t)NK * sizeof(float));
    }
    for (size_t slot = 0; slot < (size_t)NK; slot++) l->dweight_h[slot] = l->dot_h[l->slot_row[slot]];
}

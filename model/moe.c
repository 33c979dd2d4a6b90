/* DeepSeekMoE layer state: config checks, the one backend block and the one host block
 * carved into views, the routing statistics and the auxiliary-loss-free bias update
 * (V3 report sec. 2.1.2). */
#include "model/moe_impl.h"

#include "core/backend_pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every backend view starts on a 256-byte boundary (GPU loads stay aligned). */
#define MOE_ALIGN_FLOATS 64

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static grpo_status check_config(const moe_config *c, int max_tokens) {
#define BAD(...) grpo_fail(GRPO_ERR_INVALID, "moe config: " __VA_ARGS__)
    if (c->hidden_size < 1) return BAD("hidden_size must be >= 1, found %d", c->hidden_size);
    if (c->moe_intermediate_size < 1)
        return BAD("moe_intermediate_size must be >= 1, found %d", c->moe_intermediate_size);
    if (c->n_routed_experts < 1) return BAD("n_routed_experts must be >= 1, found %d", c->n_routed_experts);
    if (c->n_shared_experts < 0) return BAD("n_shared_experts must be >= 0, found %d", c->n_shared_experts);
    if (c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->n_routed_experts)
        return BAD("num_experts_per_tok must be in [1, n_routed_experts = %d], found %d", c->n_routed_experts,
                   c->num_experts_per_tok);
    if (c->n_group < 1 || c->n_routed_experts % c->n_group != 0)
        return BAD("n_group must be >= 1 and divide n_routed_experts (%d), found %d", c->n_routed_experts,
                   c->n_group);
    if (c->topk_group < 1 || c->topk_group > c->n_group)
        return BAD("topk_group must be in [1, n_group = %d], found %d", c->n_group, c->topk_group);
    if ((int64_t)c->topk_group * (c->n_routed_experts / c->n_group) < c->num_experts_per_tok)
        return BAD("topk_group (%d) groups of %d experts hold fewer than num_experts_per_tok (%d)", c->topk_group,
                   c->n_routed_experts / c->n_group, c->num_experts_per_tok);
    if (c->scoring_func != MOE_SCORING_SIGMOID && c->scoring_func != MOE_SCORING_SOFTMAX)
        return BAD("scoring_func must be sigmoid (0) or softmax (1), found %d", (int)c->scoring_func);
    if (!isfinite(c->routed_scaling_factor))
        return BAD("routed_scaling_factor must be finite, found %g", (double)c->routed_scaling_factor);
    if (!(c->seq_aux_alpha >= 0) || !isfinite(c->seq_aux_alpha))
        return BAD("seq_aux_alpha must be finite and >= 0, found %g", (double)c->seq_aux_alpha);
    if (max_tokens < 1) return BAD("max_tokens must be >= 1, found %d", max_tokens);
    /* row offsets are int and N * K * max(H, I) elements must fit size_t comfortably */
    if ((int64_t)max_tokens * c->num_experts_per_tok > INT32_MAX / 2)
        return BAD("max_tokens (%d) * num_experts_per_tok (%d) is too large", max_tokens, c->num_experts_per_tok);
#undef BAD
    return GRPO_OK;
}

/* Lays out (or, with base == NULL, only measures) the backend views; returns floats used. */
static size_t carve_device(moe_layer *l, float *base) {
    const moe_config *c = &l->cfg;
    size_t N = (size_t)l->max_tokens, NK = N * c->num_experts_per_tok, H = (size_t)c->hidden_size;
    size_t I = (size_t)c->moe_intermediate_size, IS = (size_t)l->shared_inter, E = (size_t)c->n_routed_experts;
    size_t off = 0;
#define VIEW(field, n) (l->field = base ? base + off : NULL, off += align_up((n), MOE_ALIGN_FLOATS))
    VIEW(logits, N * E);
    VIEW(xs, NK * H);
    VIEW(h_gate, NK * I);
    VIEW(h_up, NK * I);
    VIEW(act, NK * I);
    VIEW(y_rows, NK * H);
    VIEW(s_gate, N * IS);
    VIEW(s_up, N * IS);
    VIEW(s_act, N * IS);
    VIEW(d_rows, NK * H);
    VIEW(d_act, NK * I);
    VIEW(d_gate, NK * I);
    VIEW(d_up, NK * I);
    VIEW(ds_act, N * IS);
    VIEW(ds_gate, N * IS);
    VIEW(ds_up, N * IS);
    VIEW(dlogits, N * E);
    VIEW(dot, NK);
#undef VIEW
    return off;
}

/* Same for the host block (bytes, every view 16-byte aligned). */
static size_t carve_host(moe_layer *l, char *base) {
    const moe_config *c = &l->cfg;
    size_t N = (size_t)l->max_tokens, NK = N * c->num_experts_per_tok, E = (size_t)c->n_routed_experts;
    size_t G = (size_t)c->n_group, off = 0;
#define HVIEW(field, n) (l->field = base ? (void *)(base + off) : NULL, off += align_up((n) * sizeof *l->field, 16))
    HVIEW(logits_h, N * E);
    HVIEW(scores_h, N * E);
    HVIEW(bias_h, E);
    HVIEW(topk_idx, NK);
    HVIEW(topk_weight, NK);
    HVIEW(dweight_h, NK);
    HVIEW(dlogits_h, N * E);
    HVIEW(dscore, E);
    HVIEW(counts, E);
    HVIEW(load, E);
    HVIEW(load_accum, E);
    HVIEW(expert_offset, E + 1);
    HVIEW(row_token, NK);
    HVIEW(slot_row, NK);
    HVIEW(row_weight, NK);
    HVIEW(dot_h, NK);
    HVIEW(group_m, E);
    HVIEW(group_a, E);
    HVIEW(group_b, E);
    HVIEW(group_c, E);
    HVIEW(route.choice, E);
    HVIEW(route.group_score, G);
    HVIEW(route.keep, E);
#undef HVIEW
    return off;
}

size_t moe_layer_device_bytes(const moe_config *cfg, int max_tokens) {
    moe_layer tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    tmp.max_tokens = max_tokens;
    tmp.shared_inter = cfg->n_shared_experts * cfg->moe_intermediate_size;
    return carve_device(&tmp, NULL) * sizeof(float);
}

/* over: the caller's block (NULL: allocate one, owned by the layer). */
static grpo_status create(backend *be, const moe_config *cfg, int max_tokens, float *over, moe_layer **out) {
    *out = NULL;
    GRPO_TRY(check_config(cfg, max_tokens));
    GRPO_TRY(BACKEND_REQUIRE(be, matmul));
    GRPO_TRY(BACKEND_REQUIRE(be, swiglu_forward));
    GRPO_TRY(BACKEND_REQUIRE(be, swiglu_backward));
    GRPO_TRY(BACKEND_REQUIRE(be, copy));
    GRPO_TRY(BACKEND_REQUIRE(be, zero));
    GRPO_TRY(BACKEND_REQUIRE(be, scale));
    GRPO_TRY(BACKEND_REQUIRE(be, axpy));
    moe_layer *l = calloc(1, sizeof *l);
    if (!l) return grpo_fail(GRPO_ERR_NOMEM, "moe_layer_create: cannot allocate the layer state");
    l->be = be;
    l->cfg = *cfg;
    l->max_tokens = max_tokens;
    l->is_host = strcmp(be->name, "cpu") == 0;
    l->shared_inter = cfg->n_shared_experts * cfg->moe_intermediate_size;
    size_t dev_floats = carve_device(l, NULL), host_bytes = carve_host(l, NULL);
    l->host_block = calloc(1, host_bytes);
    if (!l->host_block) {
        moe_layer_free(l);
        return grpo_fail(GRPO_ERR_NOMEM, "moe_layer_create: cannot allocate %zu bytes of host memory for %d tokens",
                         host_bytes, max_tokens);
    }
    char what[80];
    snprintf(what, sizeof what, "MoE layer activations for %d tokens", max_tokens);
    l->block = over ? over : backend_alloc(be, dev_floats * sizeof(float), what);
    l->borrowed_block = over != NULL;
    if (!l->block) {
        moe_layer_free(l);
        return GRPO_ERR_NOMEM;   /* backend_alloc's message names the size and the pool's state */
    }
    carve_device(l, l->block);
    carve_host(l, l->host_block);
    l->stats.load = l->load;
    *out = l;
    return GRPO_OK;
}

grpo_status moe_layer_create(backend *be, const moe_config *cfg, int max_tokens, moe_layer **out) {
    return create(be, cfg, max_tokens, NULL, out);
}

grpo_status moe_layer_create_over(backend *be, const moe_config *cfg, int max_tokens, float *block, moe_layer **out) {
    GRPO_ASSERT(block != NULL);
    return create(be, cfg, max_tokens, block, out);
}

void moe_layer_free(moe_layer *l) {
    if (!l) return;
    if (l->block && !l->borrowed_block) l->be->free(l->be, l->block);
    free(l->host_block);
    free(l);
}

const moe_stats *moe_get_stats(const moe_layer *l) { return &l->stats; }

/* V3 report sec. 2.1.2: "decrease the bias term by gamma if its corresponding expert is
 * overloaded and increase it by gamma if it is underloaded" (sign(0) = 0). */
void moe_update_bias(moe_layer *l, moe_weights *w, float gamma) {
    if (gamma == 0.0f) return;
    if (!w->e_score_correction_bias) {   /* nothing to steer; the loads still restart */
        memset(l->load_accum, 0, (size_t)l->cfg.n_routed_experts * sizeof *l->load_accum);
        return;
    }
    int E = l->cfg.n_routed_experts;
    int64_t total = 0;
    for (int e = 0; e < E; e++) total += l->load_accum[e];
    if (total > 0) {
        double mean = (double)total / E;
        backend *be = l->be;
        be->to_host(be, l->bias_h, w->e_score_correction_bias, (size_t)E * sizeof(float));
        for (int e = 0; e < E; e++) {
            double diff = mean - (double)l->load_accum[e];
            l->bias_h[e] += gamma * (float)((diff > 0) - (diff < 0));
        }
        be->to_device(be, w->e_score_correction_bias, l->bias_h, (size_t)E * sizeof(float));
    }
    memset(l->load_accum, 0, (size_t)E * sizeof *l->load_accum);
}

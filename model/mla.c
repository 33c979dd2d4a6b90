/* Multi-head Latent Attention: sizes, checks and the carving of the caller's blocks into
 * named views (shared by forward, backward and decode), cache accounting, and the small
 * device fills the layer needs. */
#include "model/mla_impl.h"

#include <math.h>
#include <string.h>

grpo_status mla_check_config(const mla_config *cfg, const char *who) {
    if (!cfg) return grpo_fail(GRPO_ERR_INVALID, "%s: no mla_config", who);
    struct {
        const char *name;
        int value, min;
    } sizes[] = {
        {"hidden_size", cfg->hidden_size, 1},           {"num_heads", cfg->num_heads, 1},
        {"q_lora_rank", cfg->q_lora_rank, 0},           {"kv_lora_rank", cfg->kv_lora_rank, 1},
        {"qk_nope_head_dim", cfg->qk_nope_head_dim, 0}, {"qk_rope_head_dim", cfg->qk_rope_head_dim, 2},
        {"v_head_dim", cfg->v_head_dim, 1},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value < sizes[i].min)
            return grpo_fail(GRPO_ERR_INVALID, "%s: %s = %d, expected at least %d", who, sizes[i].name,
                             sizes[i].value, sizes[i].min);
    if (cfg->qk_rope_head_dim % 2 != 0)
        return grpo_fail(GRPO_ERR_INVALID, "%s: qk_rope_head_dim = %d, expected an even number (RoPE turns pairs)",
                         who, cfg->qk_rope_head_dim);
    if (!(cfg->rms_norm_eps > 0.0f) || !isfinite(cfg->rms_norm_eps))
        return grpo_fail(GRPO_ERR_INVALID, "%s: rms_norm_eps = %g, expected a positive number", who,
                         (double)cfg->rms_norm_eps);
    if (!(cfg->softmax_scale > 0.0f) || !isfinite(cfg->softmax_scale))
        return grpo_fail(GRPO_ERR_INVALID, "%s: softmax_scale = %g, expected a positive number", who,
                         (double)cfg->softmax_scale);
    /* Every matmul dimension must fit an int. */
    long long widest = (long long)cfg->num_heads * (cfg->qk_nope_head_dim + cfg->qk_rope_head_dim + cfg->v_head_dim +
                                                    cfg->kv_lora_rank);
    if (widest > 1 << 30)
        return grpo_fail(GRPO_ERR_INVALID, "%s: num_heads * head sizes = %lld is too large", who, widest);
    return GRPO_OK;
}

grpo_status mla_check_weights(const mla_config *cfg, const mla_weights *w, const char *who, const char *what) {
    if (!w) return grpo_fail(GRPO_ERR_INVALID, "%s: no %ss given", who, what);
    int lora = cfg->q_lora_rank > 0;
    struct {
        const char *name;
        const float *ptr;
        int used;
    } list[] = {
        {"q_a_proj", w->q_a_proj, lora},
        {"q_a_layernorm", w->q_a_layernorm, lora},
        {"q_b_proj", w->q_b_proj, lora},
        {"q_proj", w->q_proj, !lora},
        {"kv_a_proj_with_mqa", w->kv_a_proj_with_mqa, 1},
        {"kv_a_layernorm", w->kv_a_layernorm, 1},
        {"kv_b_proj", w->kv_b_proj, 1},
        {"o_proj", w->o_proj, 1},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i].used && !list[i].ptr)
            return grpo_fail(GRPO_ERR_INVALID, "%s: %s %s is NULL (q_lora_rank = %d)", who, what, list[i].name,
                             cfg->q_lora_rank);
    return GRPO_OK;
}

grpo_status mla_require_ops(const backend *be, const char *who, int kind) {
    if (!be) return grpo_fail(GRPO_ERR_INVALID, "%s: no backend", who);
    grpo_status s = GRPO_OK;
    if (!s) s = BACKEND_REQUIRE(be, matmul);
    if (!s) s = BACKEND_REQUIRE(be, rope);
    if (!s && kind != 1) s = BACKEND_REQUIRE(be, rmsnorm_forward);
    if (!s) s = BACKEND_REQUIRE(be, zero);
    if (!s) s = BACKEND_REQUIRE(be, to_device);
    if (!s) s = BACKEND_REQUIRE(be, copy);
    if (!s && kind == 0) s = BACKEND_REQUIRE(be, attention_forward);
    if (!s && kind == 1) s = BACKEND_REQUIRE(be, attention_backward);
    if (!s && kind == 1) s = BACKEND_REQUIRE(be, rmsnorm_backward);
    if (!s && kind == 2) s = BACKEND_REQUIRE(be, token_logprobs_forward);
    if (!s && kind == 2) s = BACKEND_REQUIRE(be, token_logprobs_backward);
    if (!s && kind == 2) s = BACKEND_REQUIRE(be, add_bias);
    if (s) grpo_error_prefix("%s", who);
    return s;
}

/* ---- carving ---- */

typedef struct {
    float *base;
    size_t used;
} carver;

/* The next n floats, starting on a 16-float boundary; NULL when only sizing. */
static float *take(carver *c, size_t n) {
    size_t at = c->used;
    c->used += (n + 15) & ~(size_t)15;
    return c->base ? c->base + at : NULL;
}

size_t mla_acts_layout(const mla_config *cfg, int B, int T, float *base, mla_acts *a) {
    mla_acts views;
    if (!a) a = &views;
    size_t N = (size_t)B * T, H = (size_t)cfg->num_heads, Dqk = (size_t)cfg->qk_nope_head_dim + cfg->qk_rope_head_dim;
    size_t rq = (size_t)cfg->q_lora_rank, rkv = (size_t)cfg->kv_lora_rank, dr = (size_t)cfg->qk_rope_head_dim;
    size_t dv = (size_t)cfg->v_head_dim;
    carver c = {base, 0};
    a->identity = take(&c, dr * dr);
    a->q_a = rq ? take(&c, N * rq) : NULL;
    a->q_a_rstd = rq ? take(&c, N) : NULL;
    a->q_a_normed = rq ? take(&c, N * rq) : NULL;
    a->q = take(&c, N * H * Dqk);
    a->kv_a = take(&c, N * rkv);
    a->kv_a_rstd = take(&c, N);
    a->latent = take(&c, N * rkv);
    a->k_pe = take(&c, N * dr);
    a->k = take(&c, N * H * Dqk);
    a->v = take(&c, N * H * dv);
    a->att = take(&c, N * H * dv);
    a->lse = take(&c, N * H);
    return c.used;
}

size_t mla_grads_layout(const mla_config *cfg, int B, int T, float *base, mla_grads *g) {
    mla_grads views;
    if (!g) g = &views;
    size_t N = (size_t)B * T, H = (size_t)cfg->num_heads, Dqk = (size_t)cfg->qk_nope_head_dim + cfg->qk_rope_head_dim;
    size_t rq = (size_t)cfg->q_lora_rank, rkv = (size_t)cfg->kv_lora_rank, dr = (size_t)cfg->qk_rope_head_dim;
    size_t dv = (size_t)cfg->v_head_dim;
    carver c = {base, 0};
    g->d_att = take(&c, N * H * dv);
    g->d_q = take(&c, N * H * Dqk);
    g->d_k = take(&c, N * H * Dqk);
    g->d_v = take(&c, N * H * dv);
    g->d_k_pe = take(&c, N * dr);
    g->d_latent = take(&c, N * rkv);
    g->d_kv_a = take(&c, N * rkv);
    g->d_q_a_normed = rq ? take(&c, N * rq) : NULL;
    g->d_q_a = rq ? take(&c, N * rq) : NULL;
    return c.used;
}

size_t mla_decode_layout(const mla_config *cfg, int T, int total_len, int query_block, float *base,
                         mla_decode_buffers *d) {
    mla_decode_buffers views;
    if (!d) d = &views;
    size_t H = (size_t)cfg->num_heads, Dqk = (size_t)cfg->qk_nope_head_dim + cfg->qk_rope_head_dim;
    size_t rq = (size_t)cfg->q_lora_rank, rkv = (size_t)cfg->kv_lora_rank, dv = (size_t)cfg->v_head_dim;
    size_t n = (size_t)T, L = (size_t)total_len, QB = (size_t)query_block, R = QB * H;
    carver c = {base, 0};
    d->positions = (int32_t *)take(&c, n);   /* int32 and float have the same size */
    d->q_a = rq ? take(&c, n * rq) : NULL;
    d->q_a_rstd = rq ? take(&c, n) : NULL;
    d->q_a_normed = rq ? take(&c, n * rq) : NULL;
    d->q = take(&c, n * H * Dqk);
    d->kv_a = take(&c, n * rkv);
    d->kv_a_rstd = take(&c, n);
    d->q_absorbed = take(&c, n * H * rkv);
    d->mask = take(&c, L + QB);
    d->scores = take(&c, R * (L + 1));
    d->probs = take(&c, R * (L + 1));
    d->targets = (int32_t *)take(&c, R);
    d->dlogprobs = take(&c, R);
    d->logprobs = take(&c, R);
    d->lse = take(&c, R);
    d->att = take(&c, n * H * dv);
    return c.used;
}

/* ---- public sizes ---- */

size_t mla_activation_floats(const mla_config *cfg, int B, int T) { return mla_acts_layout(cfg, B, T, NULL, NULL); }

size_t mla_scratch_floats(const mla_config *cfg, int B, int T) { return mla_grads_layout(cfg, B, T, NULL, NULL); }

size_t mla_cache_floats_per_token(const mla_config *cfg) {
    return (size_t)cfg->kv_lora_rank + (size_t)cfg->qk_rope_head_dim;
}

size_t mla_mha_floats_per_token(const mla_config *cfg) {
    return (size_t)cfg->num_heads * ((size_t)cfg->qk_nope_head_dim + cfg->qk_rope_head_dim + cfg->v_head_dim);
}

/* Scores of one query block: QB * H rows of total_len + 1 floats, kept under this. */
#define MLA_SCORE_BUDGET_FLOATS ((size_t)1 << 24)

int mla_decode_query_block(const mla_config *cfg, int T, int total_len) {
    size_t per_token = (size_t)cfg->num_heads * ((size_t)total_len + 1);
    size_t qb = MLA_SCORE_BUDGET_FLOATS / (per_token ? per_token : 1);
    if (qb < 1) qb = 1;
    if (qb > (size_t)T) qb = (size_t)(T > 0 ? T : 1);
    return (int)qb;
}

size_t mla_decode_scratch_floats(const mla_config *cfg, int T, int total_len) {
    return mla_decode_layout(cfg, T, total_len, mla_decode_query_block(cfg, T, total_len), NULL, NULL);
}

/* ---- device fills ---- */

/* dst holds `period` elements of elem bytes; repeats them until n elements are written.
 * Each device copy doubles what is in place, so n elements take log2(n / period) copies
 * (source and destination never overlap). */
static void repeat_prefix(backend *be, void *dst, size_t elem, size_t period, size_t n) {
    char *d = dst;
    size_t have = period;
    while (have < n) {
        size_t m = have < n - have ? have : n - have;
        be->copy(be, d + have * elem, d, m * elem);
        have += m;
    }
}

void mla_fill_f32(backend *be, float *dst, float value, size_t n) {
    if (n == 0) return;
    be->to_device(be, dst, &value, sizeof value);
    repeat_prefix(be, dst, sizeof value, 1, n);
}

void mla_fill_i32(backend *be, int32_t *dst, int32_t value, size_t n) {
    if (n == 0) return;
    be->to_device(be, dst, &value, sizeof value);
    repeat_prefix(be, dst, sizeof value, 1, n);
}

/* The n x n identity flattened is the period [1, 0 x n] repeated and cut at n * n. */
void mla_write_identity(backend *be, float *dst, int n) {
    if (n <= 0) return;
    const float one = 1.0f;
    be->zero(be, dst, ((size_t)n + 1 < (size_t)n * n ? (size_t)n + 1 : (size_t)n * n) * sizeof(float));
    be->to_device(be, dst, &one, sizeof one);
    repeat_prefix(be, dst, sizeof(float), (size_t)n + 1, (size_t)n * n);
}

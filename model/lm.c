/* The family-independent model interface (model/lm.h): dispatch on config.json's
 * model_type to the family's implementation. */
#include "model/lm.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/deepseek_v3.h"
#include "model/dense.h"
#include "model/hf_config.h"
#include "model/linear.h"

/* ---- dense (Qwen2 / Llama) ---- */

static grpo_status dense_lm_forward(lm *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                    float **logits) {
    return dense_forward(m->impl, ids, positions, B, T, logits);
}
static grpo_status dense_lm_backward(lm *m, const float *dlogits) { return dense_backward(m->impl, dlogits); }
static grpo_status dense_lm_reserve(lm *m, int B, int T) { return dense_reserve(m->impl, B, T); }
static grpo_status dense_lm_save(lm *m, const char *dir) { return dense_save(m->impl, dir); }
static void dense_lm_destroy(lm *m) { dense_model_free(m->impl); }
static grpo_status dense_lm_set_recompute(lm *m, int on) { return dense_set_recompute(m->impl, on); }
static size_t dense_lm_activation_bytes(const lm *m) { return dense_activation_block_bytes(m->impl); }

static const lm_ops dense_lm_ops = {dense_lm_forward, dense_lm_backward, dense_lm_reserve, dense_lm_save,
                                     dense_lm_destroy, &dense_lm_decode_ops, NULL, NULL, NULL, NULL, NULL,
                                     dense_lm_set_recompute, dense_lm_activation_bytes};

static grpo_status wrap_dense(backend *be, dense_model *dm, lm **out) {
    lm *m = calloc(1, sizeof *m);
    if (!m) {
        dense_model_free(dm);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    const dense_config *cfg = dense_model_config(dm);
    m->ops = &dense_lm_ops;
    m->impl = dm;
    m->be = be;
    m->params = dense_model_params(dm);
    snprintf(m->model_type, sizeof m->model_type, "%s", cfg->model_type);
    m->vocab_size = cfg->vocab_size;
    m->max_position_embeddings = cfg->max_position_embeddings;
    for (int i = 0; i < m->params->count; i++) m->num_parameters += (int64_t)m->params->views[i].numel;
    *out = m;
    return GRPO_OK;
}

static int is_dense_type(const char *type) { return !strcmp(type, "qwen2") || !strcmp(type, "llama"); }

/* ---- DeepSeek-V3 / V2 (MLA + DeepSeekMoE; the MTP loss is reached through deepseek_v3.h) ---- */

static grpo_status dsv3_lm_forward(lm *m, const int32_t *ids, const int32_t *positions, int B, int T,
                                   float **logits) {
    return deepseek_v3_forward(m->impl, ids, positions, B, T, logits);
}
static grpo_status dsv3_lm_backward(lm *m, const float *dlogits) { return deepseek_v3_backward(m->impl, dlogits); }
static grpo_status dsv3_lm_reserve(lm *m, int B, int T) { return deepseek_v3_reserve(m->impl, B, T); }
static grpo_status dsv3_lm_save(lm *m, const char *dir) { return deepseek_v3_save(m->impl, dir); }
static void dsv3_lm_destroy(lm *m) { deepseek_v3_free(m->impl); }

static void dsv3_lm_update_bias(lm *m, float gamma) { deepseek_v3_update_bias(m->impl, gamma); }
static double dsv3_lm_max_violation(const lm *m) { return deepseek_v3_max_violation(m->impl); }

static int dsv3_lm_num_moe_layers(const lm *m) { return deepseek_v3_num_moe_layers(m->impl); }
static double dsv3_lm_moe_layer_violation(const lm *m, int i, int *layer_index) {
    if (layer_index) *layer_index = deepseek_v3_moe_layer_index(m->impl, i);
    const moe_stats *st = deepseek_v3_moe_stats(m->impl, i);
    return st ? st->max_violation : NAN;
}

static int64_t *dsv3_lm_moe_layer_loads(lm *m, int i, int *n_experts) {
    return deepseek_v3_moe_loads(m->impl, i, n_experts);
}
static grpo_status dsv3_lm_set_recompute(lm *m, int on) { return deepseek_v3_set_recompute(m->impl, on); }
static size_t dsv3_lm_activation_bytes(const lm *m) { return deepseek_v3_activation_block_bytes(m->impl); }

static const lm_ops dsv3_lm_ops = {dsv3_lm_forward, dsv3_lm_backward, dsv3_lm_reserve, dsv3_lm_save,
                                    dsv3_lm_destroy, &deepseek_v3_lm_decode_ops, dsv3_lm_update_bias,
                                    dsv3_lm_max_violation, dsv3_lm_num_moe_layers, dsv3_lm_moe_layer_violation,
                                    dsv3_lm_moe_layer_loads, dsv3_lm_set_recompute, dsv3_lm_activation_bytes};

static grpo_status wrap_dsv3(backend *be, deepseek_v3_model *dm, lm **out) {
    lm *m = calloc(1, sizeof *m);
    if (!m) {
        deepseek_v3_free(dm);
        return grpo_fail(GRPO_ERR_NOMEM, "out of memory");
    }
    const deepseek_v3_config *cfg = deepseek_v3_get_config(dm);
    m->ops = &dsv3_lm_ops;
    m->impl = dm;
    m->be = be;
    m->params = deepseek_v3_params(dm);
    snprintf(m->model_type, sizeof m->model_type, "%s", cfg->model_type);
    m->vocab_size = cfg->vocab_size;
    m->max_position_embeddings = cfg->max_position_embeddings;
    for (int i = 0; i < m->params->count; i++) m->num_parameters += (int64_t)m->params->views[i].numel;
    *out = m;
    return GRPO_OK;
}

static int is_deepseek_type(const char *type) { return !strcmp(type, "deepseek_v3") || !strcmp(type, "deepseek_v2"); }

/* model_type of config.json text, or "" when absent / not JSON (the family parser then reports it). */
static void text_model_type(const char *json, size_t len, char *out, size_t size) {
    out[0] = 0;
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    json_t *t = root && json_is_object(root) ? json_object_get(root, "model_type") : NULL;
    if (json_is_string(t)) snprintf(out, size, "%s", json_string_value(t));
    json_decref(root);
}

grpo_status lm_load_dir(backend *be, const char *dir, lm **out) {
    *out = NULL;
    char path[PATH_MAX], type[64];
    snprintf(path, sizeof path, "%s/config.json", dir);
    GRPO_TRY(hf_config_model_type(path, type, sizeof type));
    if (is_deepseek_type(type)) {
        deepseek_v3_model *dm;
        GRPO_TRY(deepseek_v3_load_dir(be, dir, &dm));
        return wrap_dsv3(be, dm, out);
    }
    if (!is_dense_type(type))
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected qwen2, llama, "
                         "deepseek_v3 or deepseek_v2)", path, type);
    dense_model *dm;
    GRPO_TRY(dense_model_load_dir(be, dir, &dm));
    return wrap_dense(be, dm, out);
}

grpo_status lm_create_random(backend *be, const char *config_json, size_t len, const char *origin, uint64_t seed,
                             lm **out) {
    *out = NULL;
    char type[64];
    text_model_type(config_json, len, type, sizeof type);
    if (is_deepseek_type(type)) {
        deepseek_v3_config v3;
        GRPO_TRY(hf_config_v3_parse(config_json, len, origin, &v3));
        deepseek_v3_model *dm;
        GRPO_TRY(deepseek_v3_create(be, &v3, &dm));
        deepseek_v3_init_random(dm, seed);
        return wrap_dsv3(be, dm, out);
    }
    dense_config cfg;
    GRPO_TRY(hf_config_dense_parse(config_json, len, origin, &cfg));
    dense_model *dm;
    GRPO_TRY(dense_model_create(be, &cfg, &dm));
    dense_init_random(dm, seed);
    return wrap_dense(be, dm, out);
}

double lm_max_load_violation(const lm *m) {
    return m->ops->max_load_violation ? m->ops->max_load_violation(m) : NAN;
}

int lm_moe_metrics(const lm *m, int max, char (*name_store)[48], const char **names, double *values) {
    if (!m->ops->num_moe_layers || !m->ops->moe_layer_violation || max < 1) return 0;
    int n = 0, layers = m->ops->num_moe_layers(m);
    snprintf(name_store[n], 48, "moe/max_violation");
    names[n] = name_store[n];
    values[n++] = lm_max_load_violation(m);
    for (int i = 0; i < layers && n < max; i++) {
        int layer = i;
        double v = m->ops->moe_layer_violation(m, i, &layer);
        snprintf(name_store[n], 48, "moe/layer%d/max_violation", layer);
        names[n] = name_store[n];
        values[n++] = v;
    }
    return n;
}

void lm_free(lm *m) {
    if (!m) return;
    m->ops->destroy(m);
    free(m);
}

grpo_status lm_set_precision(lm *m, quant_precision p) {
    if (!m->params->compute)
        return grpo_fail(GRPO_ERR_INVALID, "lm_set_precision: model %s has no parameters allocated", m->model_type);
    return linear_set_precision(m->params->compute, p);
}

quant_precision lm_get_precision(const lm *m) { return linear_get_precision(m->params->compute); }

grpo_status lm_set_recompute(lm *m, int on) {
    if (!m->ops->set_recompute)
        return grpo_fail(GRPO_ERR_UNSUPPORTED, "model_type %s has no activation recomputation (run.recompute)",
                         m->model_type);
    size_t before = lm_activation_bytes(m);
    GRPO_TRY(m->ops->set_recompute(m, on));
    size_t after = lm_activation_bytes(m);
    if (before && after != before) {   /* a reserved block was re-reserved: say what it saved */
        char a[32], b[32];
        log_info("%s: activation recomputation %s: activation block %s (was %s)", m->model_type, on ? "on" : "off",
                 backend_pool_format_bytes(after, a, sizeof a), backend_pool_format_bytes(before, b, sizeof b));
    }
    return GRPO_OK;
}

size_t lm_activation_bytes(const lm *m) { return m->ops->activation_bytes ? m->ops->activation_bytes(m) : 0; }
